"""What every scene on disk is: a `Raster`, read a strip of rows at a time into a buffer the
caller owns, and the helpers the format readers share (band names, data types, reads)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from onboard.errors import SceneError
from onboard.scenes.scene import SUPPORTED_DTYPES, band_positions

JP2_FIX = "convert it to GeoTIFF on the ground (e.g. gdal_translate -of GTiff IN.jp2 OUT.tif)"
# What a scene may be: far past any sensor's (a Sentinel-2 tile is 13 x 10980 x 10980), and small
# enough that a file stating more is refused before a buffer or a byte offset is sized from it.
MAX_SIDE = 2**20  # rows or columns
MAX_BANDS = 1024
MAX_SAMPLES = 2**40  # bands x rows x cols


class Raster(ABC):
    """A scene on disk, read a strip of rows at a time.

    `bands` are the band names in source order; `shape` is (rows, cols) of the output grid (for a
    band folder, the finest band's grid); `dtype` is uint8, uint16 or float32 in native byte order;
    `footprint`, when the file georeferences itself, is {"crs": "EPSG:32633" (or None when the
    file's CRS has no EPSG code), "transform": [a, b, c, d, e, f], "bbox": [xmin, ymin, xmax, ymax]}
    with x = a * col + b * row + c and y = d * col + e * row + f at pixel corners."""

    path: Path
    id: str
    bands: tuple[str, ...]
    shape: tuple[int, int]
    dtype: np.dtype
    footprint: dict[str, Any] | None

    @abstractmethod
    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        """Fill out[i, :n, :] with rows row0 .. row0 + n - 1 of band `band_index[i]` and return n:
        as many rows as `out` holds (out.shape[1]), fewer at the bottom of the scene. `out` is a
        C-contiguous (len(band_index), strip_rows, cols) array of this raster's dtype."""

    @abstractmethod
    def close(self) -> None:
        """Release the files; the raster cannot be read afterwards."""

    def band_indices(self, names: Sequence[str]) -> list[int]:
        """Positions of `names` in this raster, matched by name."""
        return band_positions(self.bands, names, str(self.path))

    def __enter__(self) -> "Raster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows_to_fill(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        # A wrong buffer or index is the caller's bug, not a fault of the scene: ValueError.
        rows, cols = self.shape
        if not 0 <= row0 < rows:
            raise ValueError(f"{self.path}: row {row0} is outside the scene's {rows} rows")
        if out.ndim != 3 or out.shape[0] != len(band_index) or out.shape[2] != cols or out.dtype != self.dtype:
            raise ValueError(f"{self.path}: out must be ({len(band_index)}, rows, {cols}) {self.dtype}, "
                             f"got {out.shape} {out.dtype}")
        if not out.flags.c_contiguous:
            raise ValueError(f"{self.path}: out must be C-contiguous")
        if any(not 0 <= b < len(self.bands) for b in band_index):
            raise ValueError(f"{self.path}: band index out of range in {list(band_index)} ({len(self.bands)} bands)")
        return min(out.shape[1], rows - row0)


class BandSubset(Raster):
    """Some of a source's bands, by name, in the order asked for."""

    def __init__(self, source: Raster, names: Sequence[str]) -> None:
        names = tuple(names)
        if len(set(names)) != len(names) or not names:
            raise SceneError(f"scene {source.path}: name each band you want once, got {','.join(names)}")
        self._source, self._index = source, source.band_indices(names)
        self.path, self.id, self.bands = source.path, source.id, names
        self.shape, self.dtype, self.footprint = source.shape, source.dtype, source.footprint

    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        self._rows_to_fill(band_index, row0, out)
        return self._source.read_strip([self._index[b] for b in band_index], row0, out)

    def close(self) -> None:
        self._source.close()


def with_bands(raster: Raster, bands: Sequence[str] | None, named: bool) -> Raster:
    if bands is None:
        return raster
    try:
        if named:
            return BandSubset(raster, bands)
        raster.bands = checked_names(raster.path, bands, len(raster.bands))
        return raster
    except SceneError:
        raster.close()
        raise


def checked_names(path: Path, names: Sequence[str], count: int) -> tuple[str, ...]:
    names = tuple(names)
    if not all(name.isprintable() for name in names):
        raise SceneError(f"scene {path}: band names must be printable text, got {names!r}")
    if len(names) != count:
        raise SceneError(f"scene {path} has {count} band(s) but {len(names)} band name(s) ({','.join(names)}) "
                         f"were given: name each band once, in file order")
    if len(set(names)) != len(names) or not all(names):
        raise SceneError(f"scene {path}: band names must be non-empty and distinct, got {','.join(names)}")
    return names


def check_shape(path: Path, bands: int, rows: int, cols: int) -> None:
    """Refuse a (bands, rows, cols) that no scene has: empty, or past the limits above."""
    if not (1 <= bands <= MAX_BANDS and 1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE
            and bands * rows * cols <= MAX_SAMPLES):
        raise SceneError(f"scene {path} states {bands} band(s) of {rows} x {cols} px; a scene has 1 to {MAX_BANDS} "
                         f"bands of 1 to {MAX_SIDE:,} px a side: the file is corrupt, copy it again or re-export it")


def native_dtype(path: Path, dtype: np.dtype) -> np.dtype:
    native = dtype.newbyteorder("=")
    if native not in SUPPORTED_DTYPES:
        raise SceneError(
            f"scene {path} has dtype {native}; supported are {', '.join(d.name for d in SUPPORTED_DTYPES)} "
            f"(convert it, e.g. reflectance x 10000 as uint16)"
        )
    return native


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_fd(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SceneError(f"scene {path} cannot be opened ({exc.strerror}): check its permissions") from None


def pread(fd: int, path: Path, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise SceneError(f"scene {path} is truncated: {size} bytes expected at byte {offset}, "
                         f"{len(data)} there; copy the file again")
    return data
