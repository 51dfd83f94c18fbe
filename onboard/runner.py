"""Classifying a scene tile by tile: pre-process a batch straight into the interpreter's input
tensor, invoke, keep the top class and its confidence."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

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


def iter_scores(model: LoadedModel, pre: TilePreprocessor, data: np.ndarray,
                origins: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """For each batch of the tiles of `data` at `origins`: its first index and the model's raw
    output for it (quantized for an int8 model; see `dequantize`)."""
    n = len(origins)
    interp, batch = model.interpreter, model.batch
    for start in range(0, n, batch):
        chunk = origins[start:start + batch]
        k = len(chunk)
        if k < batch:  # the last batch: repeat its last tile rather than re-allocating tensors
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - k, axis=0)])
        buffer = interp.tensor(model.input_index)()
        pre(data, chunk, buffer)
        del buffer  # the interpreter refuses to run while a view of its memory is held
        interp.invoke()
        yield start, interp.get_tensor(model.output_index)[:k]


def dequantize(model: LoadedModel, raw: np.ndarray) -> np.ndarray:
    """Probabilities (float32) from the model's raw output."""
    quant = model.manifest.output.quantization
    if quant is None:
        return raw.astype(np.float32, copy=False)
    return (raw.astype(np.float32) - np.float32(quant.zero_point)) * np.float32(quant.scale)


def classify_tiles(model: LoadedModel, pre: TilePreprocessor, data: np.ndarray, origins: np.ndarray,
                   progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 class and confidence (probability x 255, uint8) of the tiles at `origins`."""
    classes = np.empty(len(origins), dtype=np.uint8)
    confidence = np.empty(len(origins), dtype=np.uint8)
    for start, raw in iter_scores(model, pre, data, origins):
        k = len(raw)
        top = raw.argmax(axis=1)  # dequantizing is monotonic: the top class is the same
        prob = dequantize(model, raw[np.arange(k), top])
        classes[start:start + k] = top
        confidence[start:start + k] = np.clip(np.rint(prob * 255), 0, 255)
        if progress:
            progress(k)
    return classes, confidence


def score_tiles(model: LoadedModel, pre: TilePreprocessor, data: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """Probabilities of every class for every tile at `origins` (for evaluation on the ground)."""
    scores = np.empty((len(origins), len(model.manifest.classes)), dtype=np.float32)
    for start, raw in iter_scores(model, pre, data, origins):
        scores[start:start + len(raw)] = dequantize(model, raw)
    return scores


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def classify_scene(scene: Scene, model: LoadedModel, *, clock: Clock, now: Callable[[], datetime] = utc_now,
                   uncertain_below: int = 128) -> Product:
    """Run `model` over every tile of `scene` (with a progress bar at a terminal) and return the
    product."""
    manifest = model.manifest
    pre = TilePreprocessor(scene.bands, manifest, scene.id)
    grid = TileGrid.covering(scene.shape, manifest.tile_shape)
    with progress_bar(len(grid), f"classifying {scene.id}") as bar:
        started = clock()
        classes, confidence = classify_tiles(model, pre, scene.data, grid.origins(), bar.update)
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
              interpreter: str = "auto", accelerator: str = "cpu",
              clock: Clock = time.perf_counter) -> tuple[Product, Path]:
    """Classify `scene` with the model at `model_path` and write the product into `out_dir`.
    The output directory is checked before any work is done."""
    ensure_writable_dir(out_dir)
    model = load_model(model_path, threads=threads, batch=batch, interpreter=interpreter, accelerator=accelerator)
    product = classify_scene(scene, model, clock=clock)
    return product, product.write(product_path(out_dir, scene, model))
