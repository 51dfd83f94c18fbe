"""The scoring kernels: batches of tiles through a model, its raw output dequantized, the top
class and confidence of each tile. The flight runtime and the ground's evaluation share them."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from onboard.inference.model import LoadedModel
from onboard.inference.preprocess import TilePreprocessor

Progress = Callable[[int], None]


def iter_scores(model: LoadedModel, pre: TilePreprocessor, data: np.ndarray, origins: np.ndarray,
                staged: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """For each batch of the tiles of `data` at `origins`: its first index and the model's raw
    output for it (quantized for an int8 model; see `dequantize`). `staged`, when given, holds
    the tiles already pre-processed (one per origin), and is copied in instead."""
    n = len(origins)
    interp, batch = model.interpreter, model.batch
    for start in range(0, n, batch):
        k = min(batch, n - start)
        buffer = interp.tensor(model.input_index)()
        # The last batch repeats its last tile rather than re-allocating tensors.
        if staged is not None:
            buffer[:k] = staged[start:start + k]
            buffer[k:] = staged[start + k - 1]
        else:
            chunk = origins[start:start + k]
            if k < batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - k, axis=0)])
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
                   progress: Progress | None = None, staged: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 class and confidence (probability x 255, uint8) of the tiles at `origins`."""
    classes = np.empty(len(origins), dtype=np.uint8)
    confidence = np.empty(len(origins), dtype=np.uint8)
    for start, raw in iter_scores(model, pre, data, origins, staged):
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
