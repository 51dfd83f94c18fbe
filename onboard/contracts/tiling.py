"""The tile grid laid over a scene."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TileGrid:
    """Tiles of tile_rows x tile_cols every stride pixels, covering the whole scene: the last row
    and column of tiles may reach past its edge, where pre-processing repeats the edge pixels."""

    scene_rows: int
    scene_cols: int
    tile_rows: int
    tile_cols: int
    stride_rows: int
    stride_cols: int

    @classmethod
    def covering(cls, scene_shape: tuple[int, int], tile: tuple[int, int], stride: tuple[int, int] | None = None) -> "TileGrid":
        stride = stride or tile
        return cls(scene_shape[0], scene_shape[1], tile[0], tile[1], stride[0], stride[1])

    @property
    def rows(self) -> int:
        return _count(self.scene_rows, self.tile_rows, self.stride_rows)

    @property
    def cols(self) -> int:
        return _count(self.scene_cols, self.tile_cols, self.stride_cols)

    def __len__(self) -> int:
        return self.rows * self.cols

    def origins(self) -> np.ndarray:
        """Top-left pixel of every tile, row-major, as an n x 2 int64 array."""
        r, c = np.meshgrid(
            np.arange(self.rows, dtype=np.int64) * self.stride_rows,
            np.arange(self.cols, dtype=np.int64) * self.stride_cols,
            indexing="ij",
        )
        return np.ascontiguousarray(np.stack([r.ravel(), c.ravel()], axis=1))


def _count(extent: int, tile: int, stride: int) -> int:
    if extent <= tile:
        return 1
    return -(-(extent - tile) // stride) + 1
