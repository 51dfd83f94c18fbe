"""Conversion of a Keras classifier to TFLite under a named profile, with its manifest. The
TFLite accuracy is measured through the on-board runtime itself (manifest checks, the fused C
pre-processing, LiteRT), so the figure in the manifest is the one the board will see."""

from __future__ import annotations

import hashlib
import tempfile
import time
import warnings
from pathlib import Path

import msgspec
import numpy as np

from ground.tf import keras, quiet_stderr, tf
from ground.datasets.patches import MULTI_LABEL, PatchSet
from ground.errors import ConversionError
from ground.training.record import ModelRecord
from ground.conversion.metrics import agreement, top1_accuracy
from ground.training.train import normalize, predict
from onboard.files import ensure_writable_dir, write_verified
from onboard.contracts.manifest import EMBEDDED_NAME, Accuracy, Manifest, Quantization, TensorSpec, sidecar_path
from onboard.inference.model import interpreter_class, load_model
from onboard.inference.preprocess import TilePreprocessor
from onboard.inference.scoring import score_tiles
from onboard.scenes.scene import Scene
from onboard.inference.tflite_file import with_metadata

REPRESENTATIVE_SAMPLES = 256

PROFILES = {
    "fp32": "float32 weights and activations",
    "fp16": "float16 weights, float32 activations and input",
    "dynamic": "int8 weights, float32 activations and input (dynamic-range quantization)",
    "int8": "full-integer int8 weights, activations, input and output, calibrated on training data",
    "edgetpu": "full-integer int8 with a static batch of 1, as the Edge TPU compiler requires",
}


def convert(model: keras.Model, record: ModelRecord, representative: PatchSet, profile: str = "int8") -> bytes:
    """The TFLite flatbuffer of `model` under `profile` (see PROFILES). Integer profiles are
    calibrated on samples drawn across the whole training set (it is ordered by class)."""
    if profile not in PROFILES:
        raise ConversionError(f"unknown conversion profile {profile!r}; choose from {', '.join(PROFILES)}")
    if profile == "edgetpu":
        spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
        fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if profile != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if profile == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if profile in ("int8", "edgetpu"):
        pick = np.random.default_rng(0).permutation(len(representative))[:REPRESENTATIVE_SAMPLES]
        calib = normalize(representative.x[np.sort(pick)], record)
        converter.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings(), quiet_stderr():
        # The input statistics it asks for are the representative dataset's; nothing is missing.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        return converter.convert()


def _tensor_spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    return TensorSpec(shape=tuple(int(s) for s in detail["shape"]), dtype=np.dtype(detail["dtype"]).name,
                      quantization=Quantization(float(scale), int(zero_point)) if scale else None)


def patches_as_scene(patches: PatchSet) -> tuple[Scene, np.ndarray]:
    """View N patches as one tall (band, N x rows, cols) scene, without copying, and the
    origin of each patch in it."""
    n, rows, cols, bands = patches.x.shape
    data = patches.x.transpose(3, 0, 1, 2).reshape(bands, n * rows, cols)
    origins = np.stack([np.arange(n, dtype=np.int64) * rows, np.zeros(n, dtype=np.int64)], axis=1)
    return Scene(id="patches", data=data, bands=patches.bands), origins


def tflite_scores(model_path: Path, patches: PatchSet, threads: int = 1) -> np.ndarray:
    """Class probabilities of `patches` through the on-board runtime."""
    loaded = load_model(model_path, threads=threads, batch=256)
    scene, origins = patches_as_scene(patches)
    return score_tiles(loaded, TilePreprocessor(scene.bands, loaded.manifest, scene.id), scene.data, origins)


def write_tflite(model: keras.Model, record: ModelRecord, train: PatchSet, test: PatchSet, out: Path,
                 model_id: str, profile: str = "int8") -> Manifest:
    """Convert, measure Keras and TFLite accuracy on `test`, and write `out` and its manifest.
    The TFLite model is evaluated from a scratch copy, so `out` only ever holds a finished pair."""
    ensure_writable_dir(out.parent)
    started = time.perf_counter()
    content = convert(model, record, train, profile)
    seconds = time.perf_counter() - started
    cls, _ = interpreter_class()
    interp = cls(model_content=content)
    manifest = Manifest(
        id=model_id, architecture=record.architecture, task=record.task,
        input=_tensor_spec(interp.get_input_details()[0]), output=_tensor_spec(interp.get_output_details()[0]),
        bands=record.bands, mean=record.mean, std=record.std, classes=record.classes,
        parameters=record.parameters, sparsity=record.sparsity,
        accuracy=Accuracy(dataset=record.dataset, split="test", samples=len(test), keras=0.0, tflite=0.0, agreement=0.0),
        size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest(),
        conversion={"profile": profile, "tensorflow": tf.__version__, "seconds": round(seconds, 2),
                    **({"representative_samples": min(REPRESENTATIVE_SAMPLES, len(train))}
                       if profile in ("int8", "edgetpu") else {})},
        target="edgetpu" if profile == "edgetpu" else "cpu",
        training={"history": record.history, "split_seed": record.split_seed},
    )
    keras_scores = predict(model, record, test)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".convert-") as scratch:
        draft = Path(scratch) / out.name
        write_verified(draft, content)
        manifest.write(sidecar_path(draft))
        lite_scores = tflite_scores(draft, test)
    manifest = msgspec.structs.replace(manifest, accuracy=Accuracy(
        dataset=record.dataset, split="test", samples=len(test),
        keras=round(top1_accuracy(keras_scores, test), 4), tflite=round(top1_accuracy(lite_scores, test), 4),
        agreement=round(agreement(keras_scores, lite_scores, record.task), 4),
        metric="micro F1" if record.task == MULTI_LABEL else "top-1 accuracy"))
    content = with_metadata(content, EMBEDDED_NAME, manifest.embedded())
    manifest = msgspec.structs.replace(manifest, size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest())
    write_verified(out, content)
    manifest.write(sidecar_path(out))
    return manifest
