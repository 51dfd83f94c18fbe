"""Real scenes that ship inside registry packages, so the demo needs no download."""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np

from ground.errors import DatasetError
from onboard.scenes.scene import Scene

SPYNDEX_BANDS = ("B02", "B03", "B04", "B08")


def spyndex_sentinel2() -> Scene:
    """The real Sentinel-2 10 m patch (B02, B03, B04, B08; reflectance x 10000; 300 x 300 px)
    that the `spyndex` wheel ships as `spyndex/data/S2_10m.json`, read straight from the installed
    package (without importing spyndex, which would pull in xarray)."""
    try:
        path = importlib.metadata.distribution("spyndex").locate_file("spyndex/data/S2_10m.json")
        values = json.loads(path.read_text())
    except importlib.metadata.PackageNotFoundError:
        raise DatasetError("the demo scene ships in the spyndex wheel: pip install 'orbitlite[ground]'") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"spyndex's S2_10m.json cannot be read: {exc}") from None
    data = np.asarray(values, dtype=np.uint16)
    if data.shape != (len(SPYNDEX_BANDS), 300, 300):
        raise DatasetError(f"spyndex's S2_10m.json has shape {data.shape}, expected (4, 300, 300)")
    return Scene(id="spyndex-S2-10m", data=data, bands=SPYNDEX_BANDS)
