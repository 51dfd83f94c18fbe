"""A product decoded on the ground: its summary, what it and its scene cost on a link, and its
class map as PNG and GeoTIFF (one pixel per tile, georeferenced when the scene was)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ground.downlink.geotiff import write_class_map
from ground.downlink.link import Link, format_bytes, format_seconds
from onboard.files import ensure_writable_dir, write_verified
from onboard.contracts.product import NODATA, Product


def summary(p: Product, size: int) -> dict[str, Any]:
    """The product as JSON-ready data; `size` is its file's size in bytes."""
    return {
        "scene": p.scene_id, "scene_shape": list(p.scene_shape), "bands": list(p.scene_bands), "model": p.model_id,
        "created": p.created, "grid": [p.grid.rows, p.grid.cols], "tile": [p.grid.tile_rows, p.grid.tile_cols],
        "classified_tiles": _classified(p), "histogram": dict(zip(p.classes, p.histogram)),
        "uncertain_tiles": len(p.uncertain), "skipped": p.skipped, "runtime": p.runtime,
        "product_bytes": size, "scene_bytes": p.scene_bytes,
    }


def _classified(p: Product) -> int:
    return int((p.class_map != NODATA).sum())


def describe(p: Product, size: int, rate: Link) -> str:
    """A few lines: the scene, the grid, the classes, what was skipped, and the product against
    its scene on `rate`."""
    total = _classified(p)
    lines = [
        f"{p.scene_id} ({p.scene_shape[0]} x {p.scene_shape[1]} px, {','.join(p.scene_bands)}) by {p.model_id}, {p.created}",
        f"{p.grid.rows} x {p.grid.cols} tiles of {p.grid.tile_rows} x {p.grid.tile_cols} px, {total} classified, "
        f"{len(p.uncertain)} uncertain (confidence < {p.uncertain_below}/255)",
        *[f"  {name:<12} {n:>7}  {100 * n / max(total, 1):5.1f}%" for name, n in zip(p.classes, p.histogram)],
        *[f"  skipped {s['tiles']} tiles: {s['reason']}" for s in p.skipped],
        f"product {format_bytes(size)} ({format_seconds(rate.seconds(size))} on {rate.name}) "
        f"for a {format_bytes(p.scene_bytes)} scene ({format_seconds(rate.seconds(p.scene_bytes))})",
    ]
    return "\n".join(lines)


def write_decoded(p: Product, product_path: Path, out_dir: Path) -> tuple[Path, Path, Path]:
    """The class map (PNG and GeoTIFF) and the summary (JSON) of the product at `product_path`,
    in `out_dir`."""
    from ground.downlink.render import class_map  # matplotlib: only when pictures are asked for

    ensure_writable_dir(out_dir)
    stem = product_path.name.removesuffix(".msgpack")
    js = json.dumps(summary(p, product_path.stat().st_size), indent=2) + "\n"
    return (class_map(p, out_dir / f"{stem}.classmap.png"), write_class_map(p, out_dir / f"{stem}.classmap.tif"),
            write_verified(out_dir / f"{stem}.json", js.encode()))
