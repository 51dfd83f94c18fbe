"""`.npy` scenes, and raw (band, row, col) files described by a sidecar: read band by band at
the rows asked for, straight from the file."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from onboard.errors import SceneError
from onboard.scenes.raster import Raster, check_shape, checked_names, native_dtype, one_line, open_fd
from onboard.scenes.sidecar import read_sidecar


class ArrayFileRaster(Raster):
    """A C-ordered (band, row, col) array stored raw in a file from byte `offset`: a `.npy` file,
    or a raw file with a sidecar. Reads go through pread into the caller's buffer: no page of the
    file stays mapped into the process, where (unlike the page cache) it would count in its RSS."""

    def __init__(self, path: Path, bands: Sequence[str], shape: Sequence[int], dtype: np.dtype, offset: int,
                 footprint: dict[str, Any] | None = None) -> None:
        if len(shape) != 3 or min(shape) < 1:
            raise SceneError(f"scene {path} has shape {tuple(shape)}; expected (band, row, col), e.g. (4, 300, 300)")
        check_shape(path, *shape)
        self.path, self.id, self.footprint = path, path.stem, footprint
        self.dtype = native_dtype(path, dtype)
        self.bands = checked_names(path, bands, shape[0])
        self.shape = (int(shape[1]), int(shape[2]))
        self._swap = not dtype.isnative
        self._offset = offset
        self._fd = open_fd(path)
        size = os.fstat(self._fd).st_size
        need = offset + math.prod(shape) * dtype.itemsize
        if size < need:
            self.close()
            raise SceneError(f"scene {path} is truncated: {size} bytes where shape {tuple(shape)} {dtype} needs "
                             f"{need}; copy the file again")

    @classmethod
    def from_npy(cls, path: Path, bands: Sequence[str]) -> "ArrayFileRaster":
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f".npy format version {version} is not supported")
                offset = f.tell()
        except Exception as exc:  # OSError, and numpy's header parser's ValueError, EOFError, tokenize.TokenError, ...
            raise SceneError(f"scene {path} is not a readable .npy file ({one_line(exc)}): save it with numpy.save") from None
        if fortran_order:
            raise SceneError(f"scene {path} is stored in Fortran order: save it C-ordered, "
                             f"numpy.save(path, numpy.ascontiguousarray(a))")
        return cls(path, bands, shape, dtype, offset)

    @classmethod
    def from_sidecar(cls, path: Path) -> "ArrayFileRaster":
        meta = read_sidecar(path)
        return cls(path, meta.bands, meta.shape, meta.numpy_dtype, 0, meta.footprint)

    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        n = self._rows_to_fill(band_index, row0, out)
        rows, cols = self.shape
        for i, b in enumerate(band_index):
            dst = out[i, :n]
            offset = self._offset + (b * rows + row0) * cols * self.dtype.itemsize
            if os.preadv(self._fd, [dst], offset) != dst.nbytes:
                raise SceneError(f"scene {self.path} is truncated (band {self.bands[b]}, rows from {row0}): "
                                 f"copy the file again")
            if self._swap:
                dst.byteswap(inplace=True)
        return n

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
