"""Tile pre-processing for one model and one scene, through the fused C kernel."""

from __future__ import annotations

import numpy as np

from onboard import _native
from onboard.errors import SceneError
from onboard.manifest import Manifest
from onboard.scene import Scene


class TilePreprocessor:
    """Writes model-ready tiles of `scene` for `manifest`'s model straight into a buffer (the
    interpreter's input tensor): bands by name, (x - mean) / std, then the input quantization."""

    def __init__(self, scene: Scene, manifest: Manifest) -> None:
        self.scene = scene
        self.tile_rows, self.tile_cols = manifest.tile_shape
        self.band_index = np.asarray(scene.band_indices(manifest.bands), dtype=np.int64)
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

    def __call__(self, origins: np.ndarray, out: np.ndarray) -> None:
        """Fill `out` (len(origins) x rows x cols x bands) with the tiles at `origins`."""
        bad = _native.preprocess_tiles(
            self.scene.data, origins, self.tile_rows, self.tile_cols,
            self.band_index, self.offset, self.factor, self.zero_point, out,
        )
        if bad:
            r, c = origins[0]
            raise SceneError(
                f"scene {self.scene.id} has {bad} NaN or infinite value(s) (in the {len(origins)} tiles "
                f"from row {r}, col {c} on): mask them as no-data before running"
            )
