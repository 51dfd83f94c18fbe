"""Tile pre-processing for one model, through the fused C kernel."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from onboard import _native
from onboard.contracts.manifest import Manifest
from onboard.errors import SceneError
from onboard.scenes.scene import band_positions


class TilePreprocessor:
    """Writes model-ready tiles straight into a buffer (the interpreter's input tensor): the
    model's bands picked by name from arrays whose bands are `bands`, (x - mean) / std, then the
    model's input quantization."""

    def __init__(self, bands: Sequence[str], manifest: Manifest, source: str) -> None:
        self.source = source
        self.tile_rows, self.tile_cols = manifest.tile_shape
        self.band_index = np.asarray(band_positions(bands, manifest.bands, source), dtype=np.int64)
        self.offset = np.asarray(manifest.mean, dtype=np.float32)
        std = np.asarray(manifest.std, dtype=np.float32)
        quant = manifest.input.quantization
        if quant is None:
            self.factor = np.float32(1) / std
            self.zero_point = 0
        else:
            self.factor = np.float32(1) / (std * np.float32(quant.scale))
            self.zero_point = quant.zero_point
        self.dtype = np.dtype(manifest.input.dtype)

    def __call__(self, data: np.ndarray, origins: np.ndarray, out: np.ndarray, row0: int = 0) -> None:
        """Fill `out` (len(origins) x rows x cols x bands) with the tiles of `data` (band, row,
        col) at `origins`; `data` starts at scene row `row0` (a strip), for the error message."""
        bad = _native.preprocess_tiles(data, origins, self.tile_rows, self.tile_cols,
                                       self.band_index, self.offset, self.factor, self.zero_point, out)
        if bad:
            r, c = origins[0]
            raise SceneError(
                f"scene {self.source} has {bad} NaN or infinite value(s) (in the {len(origins)} tiles "
                f"from row {row0 + r}, col {c} on): mask them as no-data before running"
            )
