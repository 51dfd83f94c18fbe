"""A folder of one GeoTIFF per band named `*_<band>.tif` (Sentinel-2 granules converted to
GeoTIFF, BigEarthNet patches), coarser bands repeated onto the finest band's grid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from onboard.errors import SceneError
from onboard.scenes.geotiff import TiffRaster
from onboard.scenes.raster import JP2_FIX, Raster

# `<anything>_B02.tif`, `_B8A.tif`, `_B02_10m.tif` (Sentinel-2 L2A), `_B4.TIF` (Landsat)
BAND_FILE = re.compile(r"_(B\d{1,2}A?)(?:_\d+m)?\.(tiff?|jp2)$", re.IGNORECASE)


def _band_order(name: str) -> tuple[int, str]:
    # B8A sits between B08 and B09, as in Sentinel-2's own band order.
    return int(name[1:].rstrip("Aa")), name


class BandFolderRaster(Raster):
    """A folder of single-band GeoTIFFs named `*_<band>.tif`, on the grid of the finest band;
    a band of 1/k its size (20 m or 60 m beside 10 m) is repeated k x k, reading only the source
    rows a strip needs. Other files in the folder are ignored."""

    def __init__(self, folder: Path) -> None:
        self.path, self.id = folder, folder.name
        tifs: dict[str, Path] = {}
        jp2s: list[Path] = []
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            raise SceneError(f"scene {folder} cannot be listed ({exc.strerror}): check its permissions") from None
        for entry in entries:
            match = BAND_FILE.search(entry.name)
            if not match or not entry.is_file():
                continue
            if match.group(2).lower() == "jp2":
                jp2s.append(entry)
                continue
            band = match.group(1).upper()
            if band in tifs:
                raise SceneError(f"scene {folder} has two files for band {band} ({tifs[band].name}, {entry.name}): "
                                 f"keep one")
            tifs[band] = entry
        if not tifs:
            if jp2s:
                raise SceneError(f"scene {folder} holds its bands as JPEG 2000 ({jp2s[0].name}, ...), which the board "
                                 f"cannot read without GDAL or glymur: {JP2_FIX}")
            raise SceneError(f"scene {folder} holds no band files: expected one GeoTIFF per band named like "
                             f"<scene>_B02.tif")
        self.bands = tuple(sorted(tifs, key=_band_order))
        self._members: list[TiffRaster] = []
        try:
            for band in self.bands:
                self._members.append(TiffRaster(tifs[band]))
            self._fit_grid()
        except SceneError:
            self.close()
            raise

    def _fit_grid(self) -> None:
        finest = max(self._members, key=lambda m: m.shape[0] * m.shape[1])
        self.shape, self.dtype, self.footprint = finest.shape, finest.dtype, finest.footprint
        rows, cols = self.shape
        self._factors = []
        for member in self._members:
            if len(member.bands) != 1:
                raise SceneError(f"scene {member.path} holds {len(member.bands)} bands; a band folder needs one band "
                                 f"per file: open that file on its own")
            if member.dtype != self.dtype:
                raise SceneError(f"scene {member.path} is {member.dtype} but {finest.path.name} is {self.dtype}: "
                                 f"a band folder's files must share one data type")
            k = rows // member.shape[0]
            if (member.shape[0] * k, member.shape[1] * k) != (rows, cols):
                raise SceneError(
                    f"scene {member.path} is {member.shape[0]} x {member.shape[1]} px, not 1/k of the finest band's "
                    f"{rows} x {cols} px ({finest.path.name}): resample it to an integer fraction of that grid"
                )
            self._factors.append(k)

    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        n = self._rows_to_fill(band_index, row0, out)
        for i, b in enumerate(band_index):
            member, k = self._members[b], self._factors[b]
            if k == 1:
                member.read_strip([0], row0, out[i:i + 1, :n])
                continue
            first, last = row0 // k, (row0 + n - 1) // k
            source = np.empty((1, last - first + 1, member.shape[1]), self.dtype)
            member.read_strip([0], first, source)
            blocks = out[i, :n].reshape(n, member.shape[1], k)  # a view, as out is C-contiguous
            blocks[...] = source[0, np.arange(row0, row0 + n) // k - first, :, None]
        return n

    def close(self) -> None:
        for member in self._members:
            member.close()
