"""In-memory scenes: a (band, row, col) array with band names, read a strip at a time like a
raster on disk (onboard.scenes.raster). Scene files are opened with `onboard.scenes.reader.open_raster`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from onboard.errors import SceneError

# What onboard._native reads without a conversion pass.
SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


@dataclass(frozen=True)
class Scene:
    id: str
    data: np.ndarray  # band, row, col; often a read-only memory map
    bands: tuple[str, ...]
    footprint: dict[str, Any] | None = None  # e.g. {"crs": ..., "bbox": [...]}, when known

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise SceneError(f"scene {self.id}: expected (band, row, col), got shape {self.data.shape}")
        if len(self.bands) != self.data.shape[0]:
            raise SceneError(
                f"scene {self.id} has {self.data.shape[0]} bands but {len(self.bands)} band names "
                f"({','.join(self.bands)})"
            )
        if len(set(self.bands)) != len(self.bands):
            raise SceneError(f"scene {self.id}: band names repeat ({','.join(self.bands)})")
        if self.data.dtype not in SUPPORTED_DTYPES:
            raise SceneError(
                f"scene {self.id} has dtype {self.data.dtype}; supported are "
                f"{', '.join(d.name for d in SUPPORTED_DTYPES)} (convert it, e.g. reflectance x 10000 as uint16)"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[1]), int(self.data.shape[2])

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        """Copy rows [row0, row0 + len) of the bands at `band_index` into `out` (band, rows,
        cols); returns how many rows the scene had left to give."""
        n = max(0, min(out.shape[1], self.shape[0] - row0))
        out[:, :n, :] = self.data[list(band_index), row0:row0 + n, :]
        return n


def parse_bands(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(b.strip() for b in text.split(",") if b.strip())
    if not names:
        raise SceneError("--bands needs a comma-separated list of band names, e.g. B02,B03,B04,B08")
    return names


def band_positions(available: Sequence[str], needed: Sequence[str], source: str) -> list[int]:
    """Positions of the `needed` bands among the `available` ones, matched by name; refuses a
    source lacking one."""
    missing = [b for b in needed if b not in available]
    if missing:
        raise SceneError(
            f"scene {source} lacks band(s) {','.join(missing)} that the model needs "
            f"(scene has {','.join(available)})"
        )
    return [list(available).index(b) for b in needed]
