"""The sidecar `<file>.json` that describes a raw (band, row, col) file: its shape, dtype, band
names and footprint, e.g. {"shape": [13, 10980, 10980], "dtype": "uint16", "bands": ["B01", ...]}."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
from msgspec import Meta

from onboard.contracts.product import Footprint
from onboard.errors import SceneError
from onboard.scenes.raster import MAX_BANDS, MAX_SIDE
from onboard.schema import Data, Name, Schema, convert, decode, read_bounded

MAX_BYTES = 2**20  # a sidecar larger than this is refused unread (one is a few hundred bytes)
EXAMPLE = '{"shape": [4, 300, 300], "dtype": "uint16", "bands": ["B02", "B03", "B04", "B08"]}'
Side = Annotated[int, Meta(ge=1, le=MAX_SIDE)]
BandName = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+\Z")]  # no control character


class Sidecar(Schema):
    shape: tuple[Annotated[int, Meta(ge=1, le=MAX_BANDS)], Side, Side]  # bands, rows, cols
    # a numpy dtype name: uint8, uint16, float32, >u2 (a name, not numpy's other dtype strings)
    dtype: Annotated[str, Meta(pattern=r"^[<>=|]?(?!a[0-9]*\Z)[a-z]{1,8}[0-9]{0,2}\Z")]  # numpy deprecates "a"
    bands: Annotated[tuple[BandName, ...], Meta(min_length=1, max_length=MAX_BANDS)]
    footprint: dict[Name, Data] | None = None  # crs, transform and bbox as in Raster.footprint; other keys kept

    def __post_init__(self) -> None:
        try:
            np.dtype(self.dtype)
        except TypeError:
            raise ValueError(f"unknown dtype {self.dtype!r}; use uint8, uint16 or float32") from None

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path) -> Sidecar:
    """The sidecar of the raw file at `path`, checked; a fault is one SceneError line naming the
    sidecar, the key path and what a sidecar holds."""
    sidecar = sidecar_path(path)
    data = read_bounded(sidecar, MAX_BYTES, error=SceneError, what="sidecar")
    tree = decode(data, Any, source=f"sidecar {sidecar} is not readable JSON", error=SceneError)
    try:
        meta = convert(tree, Sidecar, source=f"sidecar {sidecar}", error=SceneError)
        if meta.footprint is not None:
            convert(meta.footprint, Footprint, source=f"sidecar {sidecar}: footprint", error=SceneError)
    except SceneError as exc:
        raise SceneError(f"{exc}; a sidecar needs shape, dtype and bands (footprint optional), shape a list of "
                         f"3 integers, like {EXAMPLE}") from None
    return meta
