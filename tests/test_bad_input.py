"""Every user mistake ends with one line naming it and a non-zero exit."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from tests.conftest import SPYNDEX_BANDS, SPYNDEX_NPY, assert_one_line_error, orbitlite


@pytest.fixture
def model_copy(ground_models, tmp_path):
    """A private copy of the converted model and its manifest, to damage."""
    model = tmp_path / "m.tflite"
    shutil.copy(ground_models["tflite"], model)
    shutil.copy(f"{ground_models['tflite']}.json", f"{model}.json")
    return model


def _run(model, scene=SPYNDEX_NPY, bands=SPYNDEX_BANDS, out=None, tmp_path=None):
    args = ["onboard", "run", str(scene), "--model", str(model), "--out", str(out or tmp_path / "out")]
    if bands:
        args += ["--bands", bands]
    return orbitlite(*args)


def _restamp(model):
    """Make the manifest agree with the (damaged) model, so the loader itself must notice."""
    manifest = json.loads(open(f"{model}.json").read())
    manifest["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
    open(f"{model}.json", "w").write(json.dumps(manifest))


def test_missing_model(tmp_path):
    assert_one_line_error(_run(tmp_path / "nope.tflite", tmp_path=tmp_path), "nope.tflite", "not found")


def test_missing_manifest(model_copy, tmp_path):
    (tmp_path / "m.tflite.json").unlink()
    assert_one_line_error(_run(model_copy, tmp_path=tmp_path), "manifest", "not found")


def test_truncated_model_is_caught_by_its_checksum(model_copy, tmp_path):
    model_copy.write_bytes(model_copy.read_bytes()[:3000])
    assert_one_line_error(_run(model_copy, tmp_path=tmp_path), "does not match its manifest", "sha256")


def test_truncated_model_with_matching_manifest(model_copy, tmp_path):
    model_copy.write_bytes(model_copy.read_bytes()[:3000])
    _restamp(model_copy)
    assert_one_line_error(_run(model_copy, tmp_path=tmp_path), "cannot be loaded")


def test_corrupt_model_is_caught_by_its_checksum(model_copy, tmp_path):
    data = bytearray(model_copy.read_bytes())
    data[1500:1700] = np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()
    model_copy.write_bytes(bytes(data))
    assert_one_line_error(_run(model_copy, tmp_path=tmp_path), "does not match its manifest")


def test_corrupt_flatbuffer_with_matching_manifest(model_copy, tmp_path):
    data = bytearray(model_copy.read_bytes())
    data[0:4] = (len(data) + 1000).to_bytes(4, "little")  # the root table offset points past the end
    model_copy.write_bytes(bytes(data))
    _restamp(model_copy)
    assert_one_line_error(_run(model_copy, tmp_path=tmp_path), "cannot be loaded")


def test_not_a_tflite_file(model_copy, tmp_path):
    model_copy.write_bytes(b"<html>404 not found</html>" * 20)
    _restamp(model_copy)
    assert_one_line_error(_run(model_copy, tmp_path=tmp_path), "not a TFLite flatbuffer")


def test_manifest_of_another_model(model_copy, tmp_path):
    manifest = json.loads(open(f"{model_copy}.json").read())
    manifest["sha256"] = "0" * 64
    open(f"{model_copy}.json", "w").write(json.dumps(manifest))
    assert_one_line_error(_run(model_copy, tmp_path=tmp_path), "does not match its manifest")


def test_manifest_quantization_mismatch(model_copy, tmp_path):
    manifest = json.loads(open(f"{model_copy}.json").read())
    manifest["input"]["quantization"]["zero_point"] += 1
    open(f"{model_copy}.json", "w").write(json.dumps(manifest))
    assert_one_line_error(_run(model_copy, tmp_path=tmp_path), "input does not match its manifest", "quantization")


def test_the_model_carries_its_manifest(model_copy):
    from onboard.contracts.manifest import EMBEDDED_NAME, read_manifest
    from onboard.inference.tflite_file import metadata

    carried = json.loads(metadata(model_copy.read_bytes(), EMBEDDED_NAME))
    sidecar = json.loads(open(f"{model_copy}.json").read())
    assert carried == {k: v for k, v in sidecar.items() if k not in ("size_bytes", "sha256", "training")}
    assert json.loads(read_manifest(f"{model_copy}.json").embedded()) == carried


def test_a_sidecar_edited_against_the_model_it_describes(model_copy, tmp_path):
    manifest = json.loads(open(f"{model_copy}.json").read())
    manifest["bands"] = ["B01", "B03", "B04", "B08"]  # the checksum still matches: only the embedded copy knows
    open(f"{model_copy}.json", "w").write(json.dumps(manifest))
    assert_one_line_error(_run(model_copy, bands="B01,B03,B04,B08", tmp_path=tmp_path),
                          "carries a manifest that differs from its sidecar in bands")


def test_scene_lacking_a_band(model_copy, tmp_path):
    line = assert_one_line_error(_run(model_copy, bands="B02,B03,B04,B05", tmp_path=tmp_path), "lacks band(s) B08")
    assert "B02,B03,B04,B05" in line


def test_scene_without_band_names(model_copy, tmp_path):
    assert_one_line_error(_run(model_copy, bands=None, tmp_path=tmp_path), "--bands")


def test_band_count_mismatch(model_copy, tmp_path):
    assert_one_line_error(_run(model_copy, bands="B02,B03,B04", tmp_path=tmp_path), "has 4 band(s) but 3 band name(s)")


def test_scene_with_nans(model_copy, spyndex_scene, tmp_path):
    scene = spyndex_scene.astype(np.float32)
    scene[2, 150, 150] = np.nan
    np.save(tmp_path / "nan.npy", scene)
    assert_one_line_error(_run(model_copy, scene=tmp_path / "nan.npy", tmp_path=tmp_path), "NaN", "from row 128,")
    assert not list((tmp_path / "out").glob("*.msgpack")), "no product from a scene with NaNs"


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_scene_of_wrong_dtype(model_copy, spyndex_scene, tmp_path, dtype):
    np.save(tmp_path / "s.npy", spyndex_scene.astype(dtype))
    assert_one_line_error(_run(model_copy, scene=tmp_path / "s.npy", tmp_path=tmp_path), np.dtype(dtype).name, "supported")


def test_scene_not_an_array(model_copy, tmp_path):
    (tmp_path / "s.npy").write_bytes(b"\x93NUMPY garbage")
    assert_one_line_error(_run(model_copy, scene=tmp_path / "s.npy", tmp_path=tmp_path), "not a readable .npy")


def test_two_dimensional_scene(model_copy, spyndex_scene, tmp_path):
    np.save(tmp_path / "s.npy", spyndex_scene[0])
    assert_one_line_error(_run(model_copy, scene=tmp_path / "s.npy", bands="B02", tmp_path=tmp_path), "(band, row, col)")


def test_output_directory_that_cannot_be_written(model_copy, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    line = assert_one_line_error(_run(model_copy, out=blocker / "products"), "cannot write to output directory")
    assert "a-file" in line


def test_corrupt_product_on_decode(tmp_path):
    (tmp_path / "p.msgpack").write_bytes(b"\xc1\xc1\xc1")
    assert_one_line_error(orbitlite("downlink", "decode", str(tmp_path / "p.msgpack")), "not a msgpack product")
