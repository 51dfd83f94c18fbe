"""Raster sources: a scene on disk, with band names, that fills a strip of rows into a buffer the
caller owns, so a whole scene streams through bounded memory.

`open_raster` picks the source by what the path is:
- a `.npy` (band, row, col) array, or a raw (band, row, col) file described by a sidecar
  `<file>.json` such as {"shape": [13, 10980, 10980], "dtype": "uint16", "bands": ["B01", ...]};
- a GeoTIFF (read with tifffile): band-sequential or pixel-interleaved, tiled or striped,
  uncompressed or compressed; a read touches only the strips or tiles that cover its rows;
- a folder of one GeoTIFF per band named `*_<band>.tif` (Sentinel-2 granules converted to GeoTIFF,
  BigEarthNet patches), coarser bands repeated onto the finest band's grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from onboard.errors import SceneError
from onboard.scenes.band_folder import BandFolderRaster
from onboard.scenes.geotiff import TiffRaster
from onboard.scenes.npy import ArrayFileRaster
from onboard.scenes.raster import JP2_FIX, Raster, with_bands
from onboard.scenes.sidecar import sidecar_path


def open_raster(path: Path, bands: Sequence[str] | None = None) -> Raster:
    """Open the scene at `path` (see the module's docstring for the formats) without reading its
    pixels. Where the file names its bands (a sidecar, GDAL band descriptions in a GeoTIFF, the
    file names of a band folder), `bands` picks some of them, in the order given; where it does
    not (`.npy`, a GeoTIFF without band descriptions), `bands` names them in file order: `.npy`
    needs it, a GeoTIFF's bands are otherwise called B1, B2, ... Raises SceneError, naming the
    file and the way out, for anything it cannot read."""
    path = Path(path)
    if path.is_dir():
        return with_bands(BandFolderRaster(path), bands, named=True)
    if not path.is_file():
        raise SceneError(f"scene {path} not found: check the path")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if bands is None:
            raise SceneError(f"scene {path} carries no band names: name its bands with --bands, e.g. B02,B03,B04,B08")
        return ArrayFileRaster.from_npy(path, bands)
    if suffix in (".tif", ".tiff"):
        raster = TiffRaster(path)
        return with_bands(raster, bands, named=raster.named)
    if suffix == ".jp2":
        raise SceneError(f"scene {path} is JPEG 2000, which the board cannot read without GDAL or glymur: {JP2_FIX}")
    if sidecar_path(path).is_file():
        return with_bands(ArrayFileRaster.from_sidecar(path), bands, named=True)
    raise SceneError(
        f"scene {path}: unsupported format {suffix!r} (supported: .npy, GeoTIFF .tif/.tiff, a folder of "
        f"per-band GeoTIFFs, or a raw (band, row, col) file described by {sidecar_path(path).name})"
    )
