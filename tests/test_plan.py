"""The runner's plan on a real scene: pre-screening, budgets at their edges, a model ladder and a
cascade, driven by an injected clock that advances by each model's cost per tile."""

from __future__ import annotations

import numpy as np
import pytest

from onboard.contracts.product import NODATA, decode_product
from onboard.inference.model import load_model
from onboard.inference.screening import Screening
from onboard.run.boards import BOARDS
from onboard.run.budget import DEADLINE, Budget, FixedPower, PowerState, Scheduler
from onboard.run.plan import Plan
from onboard.run.strips import classify_scene
from onboard.scenes.scene import Scene

BANDS = ("B02", "B03", "B04", "B08")


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _costed(path, time: FakeTime, seconds_per_tile: float, batch: int = 16):
    """A model whose every invoke advances the fake time by its cost for the batch."""
    model = load_model(path, batch=batch)
    real = model.interpreter.invoke

    def invoke():
        real()
        time.t += seconds_per_tile * model.batch

    model.interpreter.invoke = invoke
    return model


@pytest.fixture(scope="module")
def big_model(ground_models, tmp_path_factory):
    """The unpruned model of the ground fixture, as fp32: a different, 'larger' twin."""
    import ground  # noqa: F401
    from ground.datasets.patches import load_patches
    from ground.pipeline.steps import convert_model

    out = tmp_path_factory.mktemp("big") / "big.tflite"
    convert_model(load_patches(ground_models["patches"]), ground_models["keras"], out, "big", "fp32")
    return out


def _scheduler(time: FakeTime, budget: Budget) -> Scheduler:
    return Scheduler(budget, BOARDS["rpi-4b"], time, time, FixedPower(PowerState(1.0, 100.0, True)))


def test_screening_skips_cloud_and_no_data_and_says_so(ground_models, spyndex_scene):
    data = spyndex_scene.copy()
    data[:, 0:64, 0:96] = 6500  # thick cloud over the first 2 x 3 tiles
    data[:, 256:300, :] = 0  # no data along the two bottom rows of tiles (the last is 12 px high)
    model = load_model(ground_models["tflite"], batch=32)
    product = classify_scene(Scene("s", data, BANDS), Plan([model], screening=Screening()), clock=lambda: 0.0)
    p = decode_product(product.encode())
    assert {s["reason"]: s["tiles"] for s in p.skipped} == {"cloud": 6, "no-data": 20}
    names = [s["reason"] for s in p.skipped]
    assert (p.skip_map[:2, :3] == 1 + names.index("cloud")).all()
    assert (p.skip_map[8:, :] == 1 + names.index("no-data")).all()
    assert (p.class_map[p.skip_map > 0] == NODATA).all() and (p.class_map[p.skip_map == 0] != NODATA).all()
    assert sum(p.histogram) == 100 - 26


def test_deadline_stops_cleanly_and_deterministically(ground_models, spyndex_scene):
    reads = []

    class CountingScene(Scene):
        def read_strip(self, band_index, row0, out):
            reads.append(row0)
            return super().read_strip(band_index, row0, out)

    def run():
        time = FakeTime()
        model = _costed(ground_models["tflite"], time, 0.01, batch=10)  # one invoke per strip of 10 tiles
        plan = Plan([model], scheduler=_scheduler(time, Budget(deadline_seconds=0.5, reserve=0.0)), clock=time)
        return classify_scene(CountingScene("s", spyndex_scene, BANDS), plan)

    a, b = run(), run()
    assert len(reads) <= 2 * 7, "once the budget is spent, no more strips are read (beyond one prefetched)"
    assert a.skipped == b.skipped and (a.class_map == b.class_map).all()
    (skip,) = a.skipped
    assert skip["reason"] == DEADLINE and 100 - skip["tiles"] == 50  # 10 ms a tile in 0.5 s
    classified = a.class_map.ravel() != NODATA
    assert classified[:30].all() and not classified[-30:].any(), "tiles run in order until the budget ends"


def test_ladder_hands_the_rest_to_a_cheaper_twin(ground_models, big_model, spyndex_scene):
    time = FakeTime()
    big = _costed(big_model, time, 0.02, batch=10)
    small = _costed(ground_models["tflite"], time, 0.001, batch=10)
    plan = Plan([big, small], scheduler=_scheduler(time, Budget(deadline_seconds=0.5, reserve=0.0)), clock=time)
    product = classify_scene(Scene("s", spyndex_scene, BANDS), plan)
    assert product.model_id == "big|p" and product.skipped == []
    assert (product.class_map != NODATA).all()
    alone = classify_scene(Scene("s", spyndex_scene, BANDS), load_model(ground_models["tflite"]), clock=lambda: 0.0)
    big_alone = classify_scene(Scene("s", spyndex_scene, BANDS), load_model(big_model), clock=lambda: 0.0)
    # The big model's first strip (0.2 s) shows it cannot finish in time, so its twin takes over;
    # by the last strip the 0.22 s left afford the big model again for its 10 tiles.
    np.testing.assert_array_equal(product.class_map[0], big_alone.class_map[0])
    np.testing.assert_array_equal(product.class_map[1:9], alone.class_map[1:9])
    np.testing.assert_array_equal(product.class_map[9], big_alone.class_map[9])
    big_only = Plan([_costed(big_model, time, 0.02, batch=10)], clock=time,
                    scheduler=_scheduler(time, Budget(deadline_seconds=0.5, reserve=0.0)))
    (skip,) = classify_scene(Scene("s", spyndex_scene, BANDS), big_only).skipped
    assert skip["reason"] == DEADLINE and 74 <= skip["tiles"] <= 76  # 0.5 s of 20 ms tiles, the last batch cut


def test_cascade_reclassifies_unsure_tiles(ground_models, big_model, spyndex_scene):
    scene = Scene("s", spyndex_scene, BANDS)
    cheap, big = load_model(ground_models["tflite"], batch=8), load_model(big_model, batch=8)
    everything = classify_scene(scene, Plan([cheap], cascade=big, cascade_below=256), clock=lambda: 0.0)
    big_alone = classify_scene(scene, big, clock=lambda: 0.0)
    np.testing.assert_array_equal(everything.class_map, big_alone.class_map)
    cheap_alone = classify_scene(scene, cheap, clock=lambda: 0.0)
    nothing = classify_scene(scene, Plan([cheap], cascade=big, cascade_below=0), clock=lambda: 0.0)
    np.testing.assert_array_equal(nothing.class_map, cheap_alone.class_map)
    some = classify_scene(scene, Plan([cheap], cascade=big, cascade_below=200), clock=lambda: 0.0)
    unsure = cheap_alone.confidence < 200
    np.testing.assert_array_equal(some.class_map[unsure], big_alone.class_map[unsure])
    np.testing.assert_array_equal(some.class_map[~unsure], cheap_alone.class_map[~unsure])


def test_overlapping_tiles_stream_like_a_whole_scene(ground_models, spyndex_scene):
    from onboard.contracts.tiling import TileGrid
    from onboard.inference.preprocess import TilePreprocessor
    from onboard.inference.scoring import classify_tiles

    model = load_model(ground_models["tflite"], batch=8)
    product = classify_scene(Scene("s", spyndex_scene, BANDS), Plan([model], stride=(16, 16)), clock=lambda: 0.0)
    assert product.class_map.shape == (18, 18) and (product.grid.stride_rows, product.grid.tile_rows) == (16, 32)
    grid = TileGrid.covering((300, 300), (32, 32), (16, 16))
    whole, _ = classify_tiles(load_model(ground_models["tflite"]), TilePreprocessor(BANDS, model.manifest, "s"),
                              spyndex_scene, grid.origins())
    np.testing.assert_array_equal(product.class_map.ravel(), whole)
