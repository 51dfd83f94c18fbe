"""Loading a TFLite model with its manifest, checked against each other, into an interpreter."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onboard.errors import ManifestError, ModelError
from onboard.manifest import Manifest, Quantization, read_manifest, sidecar_path


def interpreter_class() -> tuple[type, str]:
    """The TFLite interpreter this board has: LiteRT (`ai_edge_litert`) by default, the older
    `tflite_runtime` on boards that cannot run numpy 2."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        raise ModelError(
            "no TFLite interpreter installed: pip install ai-edge-litert (or tflite-runtime on numpy<2 boards)"
        ) from None


@dataclass
class LoadedModel:
    path: Path
    manifest: Manifest
    interpreter: Any
    interpreter_name: str
    threads: int
    batch: int
    input_index: int
    output_index: int

    def resize(self, batch: int) -> None:
        """Give the input a batch dimension of `batch` tiles (one invoke for all of them)."""
        if batch != self.batch:
            shape = [batch, *self.manifest.input.shape[1:]]
            self.interpreter.resize_tensor_input(self.input_index, shape, strict=True)
            self.interpreter.allocate_tensors()
            self.batch = batch


def load_model(path: Path, threads: int = 1, batch: int = 1) -> LoadedModel:
    """Load `path` and its manifest (`path` + `.json`), refusing a model that is missing, corrupt,
    truncated, or not the one its manifest describes."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model {path} not found")
    manifest = read_manifest(sidecar_path(path))
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model {path} cannot be read: {exc.strerror}") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != manifest.sha256:
        raise ManifestError(
            f"model {path} does not match its manifest (sha256 {digest[:12]}…, manifest says "
            f"{manifest.sha256[:12]}…): the file is corrupt or truncated, or the manifest is another model's"
        )
    if content[4:8] != b"TFL3":
        raise ModelError(f"model {path} is not a TFLite flatbuffer")
    cls, name = interpreter_class()
    try:
        interpreter = cls(model_content=content, num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"model {path} cannot be loaded by {name}: {exc}") from None
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"model {path} has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and 1")
    _check_tensor(path, "input", inputs[0], manifest.input.shape, manifest.input.dtype, manifest.input.quantization)
    _check_tensor(path, "output", outputs[0], manifest.output.shape, manifest.output.dtype, manifest.output.quantization)
    if manifest.output.shape[-1] != len(manifest.classes):
        raise ManifestError(
            f"manifest of {path} names {len(manifest.classes)} classes but the model outputs {manifest.output.shape[-1]}"
        )
    model = LoadedModel(path, manifest, interpreter, name, threads, 1, inputs[0]["index"], outputs[0]["index"])
    # A model converted with a fixed batch of 1 runs one tile per invoke.
    if inputs[0]["shape_signature"][0] == -1:
        model.resize(batch)
    return model


def _check_tensor(path: Path, what: str, detail: dict, shape: tuple[int, ...], dtype: str, quant: Quantization | None) -> None:
    got_shape = tuple(int(s) for s in detail["shape"][1:])
    got_dtype = np.dtype(detail["dtype"]).name
    scale, zero_point = detail["quantization"]
    problems = []
    if got_shape != tuple(shape[1:]):
        problems.append(f"shape {got_shape} vs manifest {tuple(shape[1:])}")
    if got_dtype != dtype:
        problems.append(f"dtype {got_dtype} vs manifest {dtype}")
    if quant is None and scale != 0:
        problems.append("the model is quantized, the manifest says it is not")
    if quant is not None and (not np.isclose(scale, quant.scale, rtol=1e-6) or zero_point != quant.zero_point):
        problems.append(f"quantization ({scale}, {zero_point}) vs manifest ({quant.scale}, {quant.zero_point})")
    if problems:
        raise ManifestError(f"model {path} {what} does not match its manifest: {'; '.join(problems)}")
