"""The sidecar `<file>.json` that describes a raw (band, row, col) file: its shape, dtype, band
names and footprint, e.g. {"shape": [13, 10980, 10980], "dtype": "uint16", "bands": ["B01", ...]}."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onboard.errors import SceneError
from onboard.scenes.raster import one_line

SIDECAR_KEYS = ("shape", "dtype", "bands", "footprint")


@dataclass(frozen=True)
class Sidecar:
    shape: list[int]
    dtype: np.dtype
    bands: list[str]
    footprint: dict[str, Any] | None


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_sidecar(path: Path) -> Sidecar:
    """The sidecar of the raw file at `path`, checked."""
    sidecar = sidecar_path(path)
    example = '{"shape": [4, 300, 300], "dtype": "uint16", "bands": ["B02", "B03", "B04", "B08"]}'
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise SceneError(f"sidecar {sidecar} is not readable JSON ({one_line(exc)}): write it like {example}") from None
    if not isinstance(meta, dict) or any(k not in meta for k in ("shape", "dtype", "bands")):
        raise SceneError(f"sidecar {sidecar} needs shape, dtype and bands, like {example}")
    unknown = sorted(set(meta) - set(SIDECAR_KEYS))
    if unknown:
        raise SceneError(f"sidecar {sidecar} has unknown key(s) {','.join(unknown)}; known: {','.join(SIDECAR_KEYS)}")
    shape, bands, footprint = meta["shape"], meta["bands"], meta.get("footprint")
    if (not isinstance(shape, list) or not all(isinstance(n, int) for n in shape)
            or not isinstance(bands, list) or not all(isinstance(b, str) for b in bands)
            or not isinstance(footprint, (dict, type(None)))):
        raise SceneError(f"sidecar {sidecar}: shape is a list of 3 integers, bands a list of names, footprint "
                         f"an object, like {example}")
    try:
        dtype = np.dtype(meta["dtype"])
    except TypeError:
        raise SceneError(f"sidecar {sidecar}: unknown dtype {meta['dtype']!r}; use uint8, uint16 or float32") from None
    return Sidecar(shape, dtype, bands, footprint)
