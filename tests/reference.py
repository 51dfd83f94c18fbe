"""Plain numpy statements of what the C kernels promise, for bit-exact comparison."""

from __future__ import annotations

import numpy as np


def preprocess_tiles(scene: np.ndarray, origins: np.ndarray, tile_rows: int, tile_cols: int,
                     band_index: np.ndarray, offset: np.ndarray, factor: np.ndarray, zero_point: int,
                     dtype: np.dtype) -> np.ndarray:
    """The tiles at `origins` of a (band, row, col) scene, NHWC, edge-padded, normalised and
    quantised exactly as onboard._native.preprocess_tiles documents."""
    _, rows, cols = scene.shape
    out = []
    for r0, c0 in origins:
        rr = np.clip(np.arange(r0, r0 + tile_rows), 0, rows - 1)
        cc = np.clip(np.arange(c0, c0 + tile_cols), 0, cols - 1)
        x = scene[np.asarray(band_index)][:, rr][:, :, cc].astype(np.float32)  # band, row, col
        v = (x - offset[:, None, None].astype(np.float32)) * factor[:, None, None].astype(np.float32)
        if np.dtype(dtype) != np.float32:
            info = np.iinfo(dtype)
            v = np.clip(np.rint(v) + np.float32(zero_point), info.min, info.max)
        out.append(v.transpose(1, 2, 0).astype(dtype))
    return np.stack(out)
