"""Loading a TFLite model with its manifest, checked against each other, into an interpreter."""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onboard.contracts.manifest import EMBEDDED_NAME, Manifest, Quantization, read_manifest, sidecar_path
from onboard.errors import ManifestError, ModelError
from onboard.inference.tflite_file import metadata


# The interpreters this runtime can drive, in the order `auto` tries them. `tensorflow` (tf.lite)
# is for the ground only: it is never installed on the board.
INTERPRETERS = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", None),
    "tflite_runtime": ("tflite_runtime.interpreter", None),
    "tensorflow": ("tensorflow", "lite"),  # tf.lite exists only as an attribute of the top package
}
INSTALL = {
    "ai_edge_litert": "pip install ai-edge-litert",
    "tflite_runtime": "pip install tflite-runtime (numpy<2 boards)",
    "tensorflow": "pip install 'orbitlite[ground]' (the ground only)",
}
# The Coral Edge TPU's delegate library, by platform.
EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}


def _module(name: str):
    module, attribute = INTERPRETERS[name]
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


def interpreter_class(name: str = "auto") -> tuple[type, str]:
    """The TFLite interpreter to use: by default LiteRT (`ai_edge_litert`), else the older
    `tflite_runtime` on boards that cannot run numpy 2."""
    if name != "auto" and name not in INTERPRETERS:
        raise ModelError(f"unknown interpreter {name!r}; choose auto, {', '.join(INTERPRETERS)}")
    for candidate in ([name] if name != "auto" else ["ai_edge_litert", "tflite_runtime"]):
        try:
            return _module(candidate).Interpreter, candidate
        except ImportError:
            continue
    if name != "auto":
        raise ModelError(f"interpreter {name} is not installed: {INSTALL[name]}")
    raise ModelError(
        "no TFLite interpreter installed: pip install ai-edge-litert (or tflite-runtime on numpy<2 boards)"
    )


def edgetpu_delegate(interpreter_name: str) -> Any:
    """The Coral Edge TPU delegate, from its library (libedgetpu)."""
    library = EDGETPU_LIBRARY.get(platform.system(), EDGETPU_LIBRARY["Linux"])
    module = _module(interpreter_name)
    load = getattr(module, "load_delegate", None) or module.experimental.load_delegate
    try:
        # Probe the library first: a failed load_delegate leaves a half-built Delegate whose
        # destructor prints a traceback.
        ctypes.CDLL(library)
        return load(library)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"the Edge TPU needs its delegate library {library}, which cannot be loaded ({exc}): install the "
            "Coral runtime (libedgetpu1-std) or run with --accelerator cpu"
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


def load_model(path: Path, threads: int = 1, batch: int = 1, interpreter: str = "auto",
               accelerator: str = "cpu", reference: bool = False) -> LoadedModel:
    """Load `path` and its manifest (`path` + `.json`), refusing a model that is missing, corrupt,
    truncated, or not the one its manifest describes. `accelerator="edgetpu"` runs it through the
    Coral Edge TPU delegate; `reference` through TFLite's reference kernels alone (portable integer
    arithmetic, the same bits on every CPU; slow), not the optimized ones (XNNPACK) that fly."""
    if accelerator not in ("cpu", "edgetpu"):
        raise ModelError(f"unknown accelerator {accelerator!r}; choose cpu or edgetpu")
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
    cls, name = interpreter_class(interpreter)
    delegates = [edgetpu_delegate(name)] if accelerator == "edgetpu" else None
    kernels = {"experimental_op_resolver_type": importlib.import_module(cls.__module__).OpResolverType.BUILTIN_REF} \
        if reference else {}
    try:
        interpreter = cls(model_content=content, num_threads=threads, experimental_delegates=delegates, **kernels)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"model {path} cannot be loaded by {name}: {exc}") from None
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"model {path} has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and 1")
    _check_tensor(path, "input", inputs[0], manifest.input.shape, manifest.input.dtype, manifest.input.quantization)
    _check_tensor(path, "output", outputs[0], manifest.output.shape, manifest.output.dtype, manifest.output.quantization)
    manifest.check_embedded(metadata(content, EMBEDDED_NAME, f"model {path}"), f"model {path}")
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
