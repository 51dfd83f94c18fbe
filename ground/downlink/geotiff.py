"""Writing a product's class map as a GeoTIFF, one pixel per tile, georeferenced from the
scene's footprint when the product carries one."""

from __future__ import annotations

import io
from pathlib import Path

import tifffile

from onboard.contracts.product import NODATA, Product
from onboard.files import write_verified

# GeoTIFF tags and keys (GeoTIFF 1.1, OGC 19-008r4).
MODEL_PIXEL_SCALE, MODEL_TIEPOINT, GEO_KEY_DIRECTORY, GDAL_NODATA = 33550, 33922, 34735, 42113
GT_MODEL_TYPE, GT_RASTER_TYPE, PROJECTED_CRS, GEOGRAPHIC_CRS = 1024, 1025, 3072, 2048


def _geo_tags(product: Product) -> list[tuple]:
    fp = product.footprint or {}
    transform, crs = fp.get("transform"), fp.get("crs")
    if not transform:
        return []
    a, _, c, _, e, f = transform
    g = product.grid
    tags = [(MODEL_PIXEL_SCALE, "d", 3, (a * g.stride_cols, -e * g.stride_rows, 0.0), False),
            (MODEL_TIEPOINT, "d", 6, (0.0, 0.0, 0.0, c, f, 0.0), False)]
    code = int(str(crs).split(":")[1]) if crs and str(crs).upper().startswith("EPSG:") else None
    geographic = code is not None and 4000 <= code < 5000  # EPSG's geographic 2-D CRSs
    keys = [(GT_MODEL_TYPE, 2 if geographic else 1), (GT_RASTER_TYPE, 1)]  # pixel is area
    if code is not None:
        keys.append((GEOGRAPHIC_CRS if geographic else PROJECTED_CRS, code))
    directory = [1, 1, 0, len(keys)] + [v for key, value in keys for v in (key, 0, 1, value)]
    tags.append((GEO_KEY_DIRECTORY, "H", len(directory), tuple(directory), False))
    return tags


def write_class_map(product: Product, path: Path) -> Path:
    """The class map (uint8, NODATA for tiles not classified) as a GeoTIFF with the class names
    in its description."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, product.class_map, description=",".join(product.classes), software="orbitlite",
                     extratags=[(GDAL_NODATA, "s", 0, str(NODATA), False), *_geo_tags(product)])
    return write_verified(Path(path), buf.getvalue())
