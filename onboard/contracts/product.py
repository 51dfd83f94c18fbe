"""Contract 2, the product: what goes down instead of the scene. A msgpack map with a schema
version; rasters are uint8 and zlib-compressed. A reader rejects a version it does not know."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgpack
import numpy as np
from msgspec import Meta

from onboard.contracts.tiling import TileGrid
from onboard.errors import ProductError
from onboard.files import write_verified
from onboard.schema import (Count, Data, FileName, Finite, Name, PositiveInt, Schema, Text, convert, decode_contract,
                            file_name, read_bounded)

SCHEMA = "orbitlite/product"
VERSION = 1
NODATA = 255  # class and confidence of a tile that was not classified
# What a reader takes at most: a larger product file is refused unread, and a larger grid before any
# raster is inflated (2**24 tiles: a 10980 px Sentinel-2 scene in 32 px tiles at a stride of 3 px).
MAX_BYTES = 16 * 2**20
MAX_TILES = 2**24


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
        return [int(n) for n in _counts(self.class_map)[: len(self.classes)]]

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


def product_file_name(scene_id: str, model_id: str) -> str:
    """The file name of the product of `scene_id` by `model_id` (see Product.file_name); a
    ProductError when either id, or the name they make, cannot name a file in its directory."""
    file_name(scene_id, what="scene id", error=ProductError)
    file_name(model_id, what="model id", error=ProductError)
    return file_name(f"{scene_id}.{model_id.replace('|', '+').replace('>', '+')}.msgpack",
                     what="the product's file name", error=ProductError)


def name_from_head(head: bytes) -> str | None:
    """The file name of the product whose encoding starts with `head` (a product that arrived in
    part), if that start holds its scene and model ids and they make a file name; else None."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(head), 1))
    unpacker.feed(head)
    ids: dict[str, object] = {}
    try:
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key in ("scene", "model"):
                value = unpacker.unpack()
                ids[key] = value.get("id") if isinstance(value, dict) else None
            else:
                unpacker.skip()
            if len(ids) == 2:
                return product_file_name(ids["scene"], ids["model"])
    except (msgpack.UnpackException, ValueError, TypeError, ProductError):
        pass  # the start is cut before both ids, or is not a product's
    return None


Pair = tuple[PositiveInt, PositiveInt]


class _Scene(Schema):
    id: FileName
    shape: Pair
    bands: Annotated[tuple[Name, ...], Meta(max_length=1024)]
    bytes: Count
    footprint: dict[Name, Data] | None


class _Model(Schema):
    id: FileName
    # One sha256 per model of the plan, comma-separated.
    sha256: Annotated[str, Meta(max_length=65 * 64, pattern=r"^[0-9a-f]{64}(,[0-9a-f]{64})*\Z")]
    classes: Annotated[tuple[Name, ...], Meta(min_length=1, max_length=NODATA)]


class _Grid(Schema):
    tile: Pair
    stride: Pair
    shape: tuple[Count, Count]


class _Raster(Schema):
    codec: Literal["zlib"]
    dtype: Literal["uint8"]
    shape: tuple[Count, Count]
    data: bytes


class _Uncertain(Schema):
    below: Annotated[int, Meta(ge=0, le=256)]
    tiles: Annotated[list[Count], Meta(max_length=MAX_TILES)]


class _Skipped(Schema):
    reason: Name
    tiles: PositiveInt


class Footprint(Schema, forbid_unknown_fields=False):
    """What ground tools read of a footprint; a scene's sidecar may add other keys."""

    crs: Annotated[str, Meta(max_length=255, pattern=r"(?i)^(epsg:[0-9]{1,9}|(?!epsg:).*)\Z")] | None = None
    transform: tuple[Finite, Finite, Finite, Finite, Finite, Finite] | None = None
    bbox: tuple[Finite, Finite, Finite, Finite] | None = None


class _Body(Schema, kw_only=True):
    """A product as it travels (see `Product.encode`), with the relations between its parts."""

    schema: Literal["orbitlite/product"]
    version: Literal[1]
    scene: _Scene
    model: _Model
    grid: _Grid
    class_map: _Raster
    confidence: _Raster
    histogram: Annotated[list[Count], Meta(max_length=NODATA)]
    uncertain: _Uncertain
    skipped: Annotated[list[_Skipped], Meta(max_length=NODATA - 1)]
    skip_map: _Raster | None = None
    created: Text
    runtime: dict[Name, Data]

    def __post_init__(self) -> None:
        grid = TileGrid.covering(self.scene.shape, self.grid.tile, self.grid.stride)
        if grid.rows * grid.cols > MAX_TILES:
            raise ValueError(f"a grid of {grid.rows} x {grid.cols} tiles is more than the {MAX_TILES:,} a product "
                             "holds")
        for key in ("class_map", "confidence", "skip_map"):
            raster = getattr(self, key)
            if raster is not None and raster.shape != (grid.rows, grid.cols):
                name = key.replace("_", " ")
                raise ValueError(f"{name} {raster.shape} does not fit its tile grid ({grid.rows} x {grid.cols} tiles "
                                 f"of {self.grid.tile} px every {self.grid.stride} px over a {self.scene.shape} scene)")
        if self.grid.shape != (grid.rows, grid.cols):
            raise ValueError(f"grid shape {self.grid.shape} is not the {grid.rows} x {grid.cols} tiles that its tile "
                             f"and stride lay over a {self.scene.shape} scene")
        if len(self.histogram) != len(self.model.classes):
            raise ValueError(f"a histogram of {len(self.histogram)} counts for {len(self.model.classes)} classes")
        if len({s.reason for s in self.skipped}) != len(self.skipped):
            raise ValueError("skipped names a reason twice")
        if self.skip_map is None and sum(s.tiles for s in self.skipped) > grid.rows * grid.cols:
            raise ValueError("skipped counts more tiles than its grid holds")
        try:
            product_file_name(self.scene.id, self.model.id)
        except ProductError as exc:
            raise ValueError(str(exc)) from None


def _inflate(raster: _Raster, key: str, source: str) -> np.ndarray:
    """A raster's bytes, inflated no further than its validated shape needs: a stream that holds
    more (a zlib bomb), less, or anything after its end is refused."""
    size = raster.shape[0] * raster.shape[1]
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(raster.data, size)
        more = inflater.decompress(inflater.unconsumed_tail, 1)
    except zlib.error as exc:
        raise ProductError(f"{source} is malformed: {key}: not a zlib stream ({exc})") from None
    if more or len(raw) != size or not inflater.eof or inflater.unused_data:
        raise ProductError(f"{source} is malformed: {key}: its zlib stream does not hold exactly the {size:,} "
                           f"bytes of its {raster.shape[0]} x {raster.shape[1]} tiles")
    return np.frombuffer(raw, dtype=np.uint8).reshape(raster.shape)


def decode_product(data: bytes, source: str = "product") -> Product:
    """Decode and validate a product; any fault is a ProductError naming `source`."""
    if len(data) > MAX_BYTES:
        raise ProductError(f"{source} of {len(data):,} bytes is larger than the {MAX_BYTES:,} a product may be")
    body = decode_contract(data, _Body, contract=SCHEMA, version=VERSION, what="orbitlite product", source=source,
                           error=ProductError, unreadable=f"{source} is not a msgpack product", format="msgpack")
    if body.scene.footprint is not None:
        convert(body.scene.footprint, Footprint, source=f"{source} is malformed: scene.footprint", error=ProductError)
    class_map = _inflate(body.class_map, "class_map", source)
    confidence = _inflate(body.confidence, "confidence", source)
    skip_map = None if body.skip_map is None else _inflate(body.skip_map, "skip_map", source)
    product = Product(
        scene_id=body.scene.id, scene_shape=body.scene.shape, scene_bands=body.scene.bands,
        scene_bytes=body.scene.bytes, footprint=body.scene.footprint, model_id=body.model.id,
        model_sha256=body.model.sha256, classes=body.model.classes,
        grid=TileGrid.covering(body.scene.shape, body.grid.tile, body.grid.stride),
        class_map=class_map, confidence=confidence, uncertain_below=body.uncertain.below,
        skipped=[{"reason": s.reason, "tiles": s.tiles} for s in body.skipped], skip_map=skip_map,
        created=body.created, runtime=body.runtime,
    )
    problem = _disagreement(product, body)
    if problem:
        raise ProductError(f"{source} is malformed: {problem}")
    return product


def _disagreement(product: Product, body: _Body) -> str | None:
    """What in a product's rasters disagrees with the rest of it, if anything."""
    n = len(product.classes)
    counts = _counts(product.class_map)
    if counts[n:NODATA].any():
        return f"class_map holds a class beyond its {n}"
    if [int(c) for c in counts[:n]] != body.histogram:
        return "histogram is not its class map's"
    classified = product.class_map != NODATA
    unsure = classified & (product.confidence < product.uncertain_below)
    if np.count_nonzero(unsure) != len(body.uncertain.tiles) or not np.array_equal(np.flatnonzero(unsure),
                                                                                   body.uncertain.tiles):
        return "uncertain tiles are not those of its confidence raster"
    if product.skip_map is None:
        if sum(s["tiles"] for s in product.skipped) > int(counts[NODATA]):
            return "skipped counts more tiles than its class map leaves unclassified"
        return None
    skips = _counts(product.skip_map)
    if skips[len(product.skipped) + 1:].any():
        return "skip_map names a reason that skipped does not list"
    if [int(c) for c in skips[1:len(product.skipped) + 1]] != [s["tiles"] for s in product.skipped]:
        return "skipped does not count its skip map's tiles"
    if np.any(classified & (product.skip_map != 0)):
        return "skip_map marks tiles skipped that its class map classifies"
    return None


def _counts(raster: np.ndarray, chunk: int = 2**20) -> np.ndarray:
    """How many tiles hold each of the 256 values of a uint8 raster, a chunk at a time (bincount
    widens what it counts to int64)."""
    flat, counts = raster.ravel(), np.zeros(256, np.int64)
    for start in range(0, len(flat), chunk):
        counts += np.bincount(flat[start:start + chunk], minlength=256)
    return counts


def read_product(path: Path) -> Product:
    """Read and validate a product file (at most MAX_BYTES)."""
    path = Path(path)
    return decode_product(read_bounded(path, MAX_BYTES, error=ProductError, what="product"), source=f"product {path}")
