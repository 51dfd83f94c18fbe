"""Reading the pixels of a GeoTIFF patch, whatever its band interleaving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def read_geotiff(path: Path) -> np.ndarray:
    """The image of a one-image TIFF as rows x cols x bands (bands = 1 for a single band), read
    with tifffile; raises ValueError for a TIFF that holds something else (pages of a stack,
    a pyramid), OSError or tifffile's TiffFileError (a ValueError) for one it cannot read."""
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ValueError("a TIFF without an image")
        series = tif.series[0]
        data = series.asarray()
        axes = series.axes
    # GDAL writes multi-band GeoTIFFs pixel-interleaved (YXS) by default, band-interleaved (SYX)
    # when asked; both are the same raster.
    if axes == "YX":
        return data[:, :, None]
    if axes == "YXS":
        return data
    if axes == "SYX":
        return np.moveaxis(data, 0, 2)
    raise ValueError(f"a TIFF of axes {axes} {data.shape}, not one image of rows x cols (x bands)")
