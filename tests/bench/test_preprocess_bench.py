"""onboard._native tile pre-processing against its numpy equivalent, on the real Sentinel-2
scene: 32 x 32 x 4 int8 tiles, as a model-zoo CNN takes them. `make bench` prints the timings;
the ratio is measured within one run, so it holds whatever the machine's speed, and is asserted
only when benchmarks are enabled (`make bench`): a loaded machine (CI) can upset any timing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from onboard import _native
from onboard.contracts.tiling import TileGrid
from tests import reference

TILE = 32


@pytest.fixture(scope="module")
def job(spyndex_scene):
    origins = TileGrid.covering(spyndex_scene.shape[1:], (TILE, TILE), (8, 8)).origins()  # 1,225 overlapping tiles
    bands = np.array([3, 2, 1, 0], np.int64)
    mean = np.array([2200, 860, 700, 480], np.float32)
    factor = np.array([1 / 900, 1 / 500, 1 / 400, 1 / 300], np.float32) / np.float32(0.04)
    return spyndex_scene, origins, bands, mean, factor


def _native_run(scene, origins, bands, mean, factor):
    out = np.empty((len(origins), TILE, TILE, 4), np.int8)
    _native.preprocess_tiles(scene, origins, TILE, TILE, bands, mean, factor, -3, out)
    return out


def _numpy_run(scene, origins, bands, mean, factor):
    return reference.preprocess_tiles(scene, origins, TILE, TILE, bands, mean, factor, -3, np.int8)


def _best_of(fn, args, repeats=5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return min(times)


def test_bench_native_preprocess(benchmark, job):
    out = benchmark(_native_run, *job)
    assert out.shape == (len(job[1]), TILE, TILE, 4)


def test_bench_numpy_preprocess(benchmark, job):
    out = benchmark(_numpy_run, *job)
    assert out.shape == (len(job[1]), TILE, TILE, 4)


def test_native_is_faster_than_numpy(job, record_property, benchmarks_enabled):
    native, numpy_ = _best_of(_native_run, job), _best_of(_numpy_run, job)
    ratio = numpy_ / native
    record_property("native_over_numpy_speedup", round(ratio, 1))
    print(f"\n{len(job[1])} tiles: native {native / len(job[1]) * 1e6:.2f} us/tile, "
          f"numpy {numpy_ / len(job[1]) * 1e6:.2f} us/tile, {ratio:.1f}x")
    if benchmarks_enabled:
        assert ratio > 2
