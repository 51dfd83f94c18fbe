"""Contract 2, the product: what goes down instead of the scene. A msgpack map with a schema
version; rasters are uint8 and zlib-compressed. A reader rejects a version it does not know."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from onboard.contracts.tiling import TileGrid
from onboard.errors import ProductError
from onboard.files import write_verified

SCHEMA = "orbitlite/product"
VERSION = 1
NODATA = 255  # class and confidence of a tile that was not classified


@dataclass
class Product:
    scene_id: str
    scene_shape: tuple[int, int]
    scene_bands: tuple[str, ...]
    scene_bytes: int
    footprint: dict[str, Any] | None
    model_id: str
    model_sha256: str
    classes: tuple[str, ...]
    grid: TileGrid
    class_map: np.ndarray  # uint8, grid.rows x grid.cols, NODATA where not classified
    confidence: np.ndarray  # uint8, top-1 probability x 255
    uncertain_below: int  # tiles with confidence under this are listed as uncertain
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"reason": str, "tiles": int}
    # Per tile: 0 if classified, else 1 + the index of its reason in `skipped`. None: none skipped.
    skip_map: np.ndarray | None = None
    created: str = ""  # UTC ISO 8601, from the injected clock
    runtime: dict[str, Any] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        """What a product is stored under on board and on the ground: scene and model (a plan's
        `|` and `>` between its models become `+`)."""
        return product_file_name(self.scene_id, self.model_id)

    @property
    def histogram(self) -> list[int]:
        counts = np.bincount(self.class_map.ravel(), minlength=256)
        return [int(n) for n in counts[: len(self.classes)]]

    @property
    def uncertain(self) -> list[int]:
        """Row-major indices of classified tiles whose confidence is under the threshold."""
        flat_c, flat_m = self.confidence.ravel(), self.class_map.ravel()
        return [int(i) for i in np.flatnonzero((flat_c < self.uncertain_below) & (flat_m != NODATA))]

    def encode(self) -> bytes:
        body = {
            "schema": SCHEMA,
            "version": VERSION,
            "scene": {"id": self.scene_id, "shape": list(self.scene_shape), "bands": list(self.scene_bands),
                      "bytes": self.scene_bytes, "footprint": self.footprint},
            "model": {"id": self.model_id, "sha256": self.model_sha256, "classes": list(self.classes)},
            "grid": {"tile": [self.grid.tile_rows, self.grid.tile_cols],
                     "stride": [self.grid.stride_rows, self.grid.stride_cols],
                     "shape": [self.grid.rows, self.grid.cols]},
            "class_map": _encode_raster(self.class_map),
            "confidence": _encode_raster(self.confidence),
            "histogram": self.histogram,
            "uncertain": {"below": self.uncertain_below, "tiles": self.uncertain},
            "skipped": self.skipped,
            "skip_map": None if self.skip_map is None else _encode_raster(self.skip_map),
            "created": self.created,
            "runtime": self.runtime,
        }
        return msgpack.packb(body, use_bin_type=True)

    def write(self, path: Path) -> Path:
        return write_verified(Path(path), self.encode())


def _encode_raster(a: np.ndarray) -> dict[str, Any]:
    return {"codec": "zlib", "dtype": "uint8", "shape": list(a.shape),
            "data": zlib.compress(np.ascontiguousarray(a, dtype=np.uint8).tobytes(), 9)}


def _decode_raster(d: dict[str, Any]) -> np.ndarray:
    if d.get("codec") != "zlib" or d.get("dtype") != "uint8":
        raise ProductError(f"unknown raster encoding {d.get('codec')!r}/{d.get('dtype')!r}")
    shape = tuple(int(s) for s in d["shape"])
    raw = zlib.decompress(d["data"])
    if len(raw) != int(np.prod(shape)):
        raise ProductError(f"raster holds {len(raw)} bytes, its shape {shape} needs {int(np.prod(shape))}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def product_file_name(scene_id: str, model_id: str) -> str:
    """The file name of the product of `scene_id` by `model_id` (see Product.file_name)."""
    return f"{scene_id}.{model_id.replace('|', '+').replace('>', '+')}.msgpack"


def decode_product(data: bytes, source: str = "product") -> Product:
    try:
        body = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProductError(f"{source} is not a msgpack product: {exc}") from None
    if not isinstance(body, dict) or body.get("schema") != SCHEMA:
        raise ProductError(f"{source} is not an orbitlite product (schema {SCHEMA!r})")
    if body.get("version") != VERSION:
        raise ProductError(f"{source} has product version {body.get('version')!r}; this reader knows {VERSION}")
    try:
        scene, model, grid = body["scene"], body["model"], body["grid"]
        shape = tuple(scene["shape"])
        product = Product(
            scene_id=scene["id"], scene_shape=shape, scene_bands=tuple(scene["bands"]),
            scene_bytes=int(scene["bytes"]), footprint=scene["footprint"],
            model_id=model["id"], model_sha256=model["sha256"], classes=tuple(model["classes"]),
            grid=TileGrid.covering(shape, tuple(grid["tile"]), tuple(grid["stride"])),
            class_map=_decode_raster(body["class_map"]), confidence=_decode_raster(body["confidence"]),
            uncertain_below=int(body["uncertain"]["below"]), skipped=list(body["skipped"]),
            skip_map=None if body.get("skip_map") is None else _decode_raster(body["skip_map"]),
            created=body["created"], runtime=dict(body["runtime"]),
        )
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise ProductError(f"{source} is malformed: {type(exc).__name__} {exc}") from None
    if product.class_map.shape != (product.grid.rows, product.grid.cols):
        raise ProductError(f"{source}: class map {product.class_map.shape} does not fit its tile grid")
    return product


def read_product(path: Path) -> Product:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProductError(f"product {path} cannot be read: {exc.strerror}") from None
    return decode_product(data, source=f"product {path}")
