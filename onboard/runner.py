"""Classifying a scene tile by tile: pre-process a batch straight into the interpreter's input
tensor, invoke, keep the top class and its confidence."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from onboard.files import ensure_writable_dir
from onboard.model import LoadedModel, load_model
from onboard.preprocess import TilePreprocessor
from onboard.progress import progress_bar
from onboard.product import Product
from onboard.scene import Scene
from onboard.tiling import TileGrid

Clock = Callable[[], float]
Progress = Callable[[int], None]


def classify_tiles(model: LoadedModel, pre: TilePreprocessor, origins: np.ndarray,
                   progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 class and confidence (probability x 255, uint8) of the tiles at `origins`."""
    n = len(origins)
    classes = np.empty(n, dtype=np.uint8)
    confidence = np.empty(n, dtype=np.uint8)
    interp, batch = model.interpreter, model.batch
    quant = model.manifest.output.quantization
    scale, zero_point = (quant.scale, quant.zero_point) if quant else (1.0, 0)
    for start in range(0, n, batch):
        chunk = origins[start:start + batch]
        k = len(chunk)
        if k < batch:  # the last batch: repeat its last tile rather than re-allocating tensors
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - k, axis=0)])
        buffer = interp.tensor(model.input_index)()
        pre(chunk, buffer)
        del buffer  # the interpreter refuses to run while a view of its memory is held
        interp.invoke()
        scores = interp.get_tensor(model.output_index)[:k]
        top = scores.argmax(axis=1)
        prob = (scores[np.arange(k), top].astype(np.float32) - zero_point) * scale
        classes[start:start + k] = top
        confidence[start:start + k] = np.clip(np.rint(prob * 255), 0, 255)
        if progress:
            progress(k)
    return classes, confidence


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def classify_scene(scene: Scene, model: LoadedModel, *, clock: Clock, now: Callable[[], datetime] = utc_now,
                   uncertain_below: int = 128) -> Product:
    """Run `model` over every tile of `scene` (with a progress bar at a terminal) and return the
    product."""
    manifest = model.manifest
    pre = TilePreprocessor(scene, manifest)
    grid = TileGrid.covering(scene.shape, manifest.tile_shape)
    with progress_bar(len(grid), f"classifying {scene.id}") as bar:
        started = clock()
        classes, confidence = classify_tiles(model, pre, grid.origins(), bar.update)
        seconds = clock() - started
    return Product(
        scene_id=scene.id, scene_shape=scene.shape, scene_bands=scene.bands, scene_bytes=scene.nbytes,
        footprint=scene.footprint, model_id=manifest.id, model_sha256=manifest.sha256,
        classes=manifest.classes, grid=grid,
        class_map=classes.reshape(grid.rows, grid.cols), confidence=confidence.reshape(grid.rows, grid.cols),
        uncertain_below=uncertain_below, created=now().isoformat(timespec="seconds"),
        runtime={"interpreter": model.interpreter_name, "threads": model.threads, "batch": model.batch,
                 "tiles": len(grid), "seconds": round(seconds, 6),
                 "tiles_per_s": round(len(grid) / seconds, 1) if seconds > 0 else None},
    )


def product_path(out_dir: Path, scene: Scene, model: LoadedModel) -> Path:
    return out_dir / f"{scene.id}.{model.manifest.id}.msgpack"


def run_scene(scene: Scene, model_path: Path, out_dir: Path, *, threads: int = 1, batch: int = 256,
              clock: Clock = time.perf_counter) -> tuple[Product, Path]:
    """Classify `scene` with the model at `model_path` and write the product into `out_dir`.
    The output directory is checked before any work is done."""
    ensure_writable_dir(out_dir)
    model = load_model(model_path, threads=threads, batch=batch)
    product = classify_scene(scene, model, clock=clock)
    return product, product.write(product_path(out_dir, scene, model))
