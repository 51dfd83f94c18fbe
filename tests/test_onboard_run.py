"""`orbitlite onboard run` on a real Sentinel-2 scene, checked tile by tile against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest

from onboard.contracts.product import read_product
from onboard.contracts.tiling import TileGrid
from onboard.inference.model import load_model
from onboard.inference.preprocess import TilePreprocessor
from onboard.run.strips import classify_scene
from onboard.scenes.scene import Scene
from tests import reference
from tests.conftest import SPYNDEX_BANDS, SPYNDEX_NPY, orbitlite


def _plain_loop(scene: np.ndarray, model_path) -> np.ndarray:
    """One tile per invoke, pre-processed by the numpy reference."""
    model = load_model(model_path)
    m = model.manifest
    pre = TilePreprocessor(tuple(SPYNDEX_BANDS.split(",")), m, "s")
    grid = TileGrid.covering(scene.shape[1:], m.tile_shape)
    tiles = reference.preprocess_tiles(scene, grid.origins(), *m.tile_shape, pre.band_index, pre.offset,
                                       pre.factor, pre.zero_point, pre.dtype)
    out = []
    for tile in tiles:
        model.interpreter.set_tensor(model.input_index, tile[None])
        model.interpreter.invoke()
        out.append(model.interpreter.get_tensor(model.output_index)[0].argmax())
    return np.array(out, dtype=np.uint8).reshape(grid.rows, grid.cols)


def test_run_on_real_scene_matches_a_plain_loop(ground_models, spyndex_scene, tmp_path):
    result = orbitlite("onboard", "run", str(SPYNDEX_NPY), "--bands", SPYNDEX_BANDS,
                       "--model", str(ground_models["tflite"]), "--out", str(tmp_path / "out"), "--threads", "2")
    assert result.returncode == 0, result.stderr
    products = list((tmp_path / "out").glob("*.msgpack"))
    assert len(products) == 1 and str(products[0]) in result.stdout
    p = read_product(products[0])
    assert p.scene_shape == (300, 300) and p.scene_bands == ("B02", "B03", "B04", "B08")
    assert p.class_map.shape == (10, 10) and sum(p.histogram) == 100
    assert p.runtime["interpreter"] == "ai_edge_litert" and p.runtime["threads"] == 2
    np.testing.assert_array_equal(p.class_map, _plain_loop(spyndex_scene, ground_models["tflite"]))
    assert products[0].stat().st_size < spyndex_scene.nbytes / 100


@pytest.mark.parametrize("batch", [1, 7, 100, 256])
def test_batch_size_does_not_change_the_result(ground_models, spyndex_scene, batch):
    scene = Scene("s", spyndex_scene[::-1].copy(), ("B08", "B04", "B03", "B02"))  # other band order
    model = load_model(ground_models["tflite"], batch=batch)
    assert model.batch == batch
    p = classify_scene(scene, model, clock=iter(np.arange(0, 10, 0.5)).__next__)
    assert p.runtime["seconds"] == 0.5
    reference_product = classify_scene(scene, load_model(ground_models["tflite"], batch=1), clock=lambda: 0.0)
    np.testing.assert_array_equal(p.class_map, reference_product.class_map)
    np.testing.assert_array_equal(p.confidence, reference_product.confidence)


def test_tf_lite_interpreter_gives_the_same_product(ground_models, spyndex_scene):
    scene = Scene("s", spyndex_scene, tuple(SPYNDEX_BANDS.split(",")))
    litert = load_model(ground_models["tflite"], batch=64)
    tflite = load_model(ground_models["tflite"], batch=64, interpreter="tensorflow")
    assert (litert.interpreter_name, tflite.interpreter_name) == ("ai_edge_litert", "tensorflow")
    a = classify_scene(scene, litert, clock=lambda: 0.0)
    b = classify_scene(scene, tflite, clock=lambda: 0.0)
    np.testing.assert_array_equal(a.class_map, b.class_map)
    np.testing.assert_array_equal(a.confidence, b.confidence)


def test_edgetpu_without_its_library_is_one_clear_line(ground_models, tmp_path):
    from tests.conftest import assert_one_line_error

    result = orbitlite("onboard", "run", str(SPYNDEX_NPY), "--bands", SPYNDEX_BANDS, "--model",
                       str(ground_models["tflite"]), "--out", str(tmp_path), "--accelerator", "edgetpu")
    assert_one_line_error(result, "libedgetpu.so.1", "--accelerator cpu")


def test_an_interpreter_that_is_not_installed(ground_models):
    from onboard.errors import ModelError

    with pytest.raises(ModelError, match="tflite_runtime is not installed: pip install tflite-runtime"):
        load_model(ground_models["tflite"], interpreter="tflite_runtime")


def test_run_under_a_budget_with_a_ladder_says_what_it_skipped(ground_models, spyndex_scene, tmp_path):
    scene = tmp_path / "big.npy"
    # 12,769 tiles: over 0.3 s of work on any machine (40,000 tiles/s is twice this one's best), six
    # times the deadline, so some are always skipped, while the first strip always runs
    np.save(scene, np.tile(spyndex_scene, (1, 12, 12)))
    model = ground_models["tflite"]
    result = orbitlite("onboard", "run", str(scene), "--bands", SPYNDEX_BANDS, "--model", str(model), "--model",
                       str(model), "--deadline-seconds", "0.05", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    (path,) = (tmp_path / "out").glob("*.msgpack")
    product = read_product(path)
    skipped = sum(s["tiles"] for s in product.skipped)
    assert product.class_map.shape == (113, 113)  # the last tile of a row or column ends at the scene's edge
    assert [s["reason"] for s in product.skipped] == ["deadline"] and 0 < skipped < 113 * 113
    assert f"skipped: {skipped} deadline" in result.stdout
    assert int((product.class_map != 255).sum()) == 113 * 113 - skipped


def test_run_with_screening_skips_tiles_outside_the_region(ground_models, tmp_path):
    args = ["onboard", "run", str(SPYNDEX_NPY), "--bands", SPYNDEX_BANDS, "--model", str(ground_models["tflite"]),
            "--out", str(tmp_path)]
    result = orbitlite(*args, "--screen", "--roi", "0,0,150,300")
    assert result.returncode == 0, result.stderr
    assert "skipped: 50 outside region of interest" in result.stdout
    assert "--roi takes effect with --screen" in orbitlite(*args, "--roi", "0,0,150,300").stderr
    assert "row0 < row1" in orbitlite(*args, "--screen", "--roi", "150,0,0,300").stderr
