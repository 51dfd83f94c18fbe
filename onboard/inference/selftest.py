"""Self-test vectors, part of contract 4 (the bundle; onboard/contracts/bundle.py): reference tiles for one model and the raw
outputs the ground recorded for them, so the board can check, before it switches to a slot, that
its runtime (interpreter, `onboard._native` pre-processing, the model file) computes what the
ground computed. A bundle carries one per model, `MODEL.tflite.selftest` (msgpack):

    {"schema": "orbitlite/selftest", "version": 1, "model_sha256": "...",
     "tiles": <float32 bytes, N x bands x rows x cols>, "count": N,
     "output": <raw output bytes, N x classes, the model's output dtype>}

The tiles are drawn, from a seed of the model's sha256, around the model's training mean and
standard deviation per band, so they land in its input range. The outputs are recorded through
TFLite's reference kernels, and checked twice on the board:
- through the reference kernels, exactly for an int8 or uint8 model (integer arithmetic is the
  same bits on every CPU), to `FLOAT_TOLERANCE` for a float one: the model, the interpreter and the
  pre-processing compute what the ground computed;
- through the kernels that fly (XNNPACK), to within `FLIGHT_LSB` of the output's quantization (or
  `FLOAT_TOLERANCE`): XNNPACK rounds its int8 requantization differently on x86 and on Arm NEON, so
  a Cortex-A72 gives 1 LSB more or less than this machine on 1 output of 1 in 16 reference tiles,
  while a broken CPU or emulator is far off (qemu's default "max" CPU put every tile up to 47 LSB off).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from onboard.contracts.manifest import Manifest
from onboard.errors import OrbitliteError, SlotError
from onboard.inference.model import LoadedModel, load_model
from onboard.inference.preprocess import TilePreprocessor
from onboard.inference.scoring import iter_scores
from onboard.schema import Schema, Sha256, decode_contract, read_bounded

SCHEMA = "orbitlite/selftest"
VERSION = 1
SUFFIX = ".selftest"
TILES = 16
MAX_BYTES = 64 * 2**20  # 16 tiles of 13 bands of 120 x 120 float32 is 12 MB
FLOAT_TOLERANCE = 1e-3  # absolute, on a float model's outputs (probabilities)
FLIGHT_LSB = 1  # how far the flight kernels' int8 outputs may be from the reference kernels'


class Vectors(Schema):
    schema: str
    version: int
    model_sha256: Sha256
    count: int
    tiles: bytes
    output: bytes


def vectors_path(model: Path) -> Path:
    return Path(f"{model}{SUFFIX}")


def _tiles(manifest: Manifest, count: int) -> np.ndarray:
    rows, cols = manifest.tile_shape
    rng = np.random.default_rng(int(manifest.sha256[:16], 16))
    mean = np.asarray(manifest.mean, dtype=np.float32)[None, :, None, None]
    std = np.asarray(manifest.std, dtype=np.float32)[None, :, None, None]
    tiles = mean + std * rng.standard_normal((count, len(manifest.bands), rows, cols), dtype=np.float32)
    return np.maximum(tiles, 0, out=tiles)  # reflectances are never negative


def _outputs(model: LoadedModel, tiles: np.ndarray) -> np.ndarray:
    """The model's raw outputs for `tiles` (N x bands x rows x cols), through the runtime's own
    pre-processing: the tiles side by side as one strip."""
    n, bands, rows, cols = tiles.shape
    strip = np.ascontiguousarray(tiles.transpose(1, 2, 0, 3).reshape(bands, rows, n * cols))
    origins = np.array([(0, i * cols) for i in range(n)], dtype=np.int64)
    pre = TilePreprocessor(model.manifest.bands, model.manifest, source="self-test tiles")
    out = np.empty((n, len(model.manifest.classes)), dtype=np.dtype(model.manifest.output.dtype))
    for start, raw in iter_scores(model, pre, strip, origins):
        out[start:start + len(raw)] = raw.reshape(len(raw), -1)
    return out


def record(model_path: Path) -> bytes:
    """The self-test vectors of the model at `model_path` (its manifest beside it), computed here."""
    model = load_model(model_path, reference=True)
    tiles = _tiles(model.manifest, TILES)
    out = _outputs(model, tiles)
    return msgspec.msgpack.encode(Vectors(SCHEMA, VERSION, model.manifest.sha256, TILES, tiles.tobytes(),
                                          out.tobytes()))


def check(model_path: Path, threads: int = 1) -> str:
    """Load the model at `model_path` and check it against its vectors beside it; its id, or
    SlotError in one line saying what differs."""
    path = vectors_path(model_path)
    source = str(path)
    body = decode_contract(read_bounded(path, MAX_BYTES, error=SlotError, what="self-test vectors"), Vectors,
                           contract=SCHEMA, version=VERSION, what="orbitlite self-test file", source=source,
                           error=SlotError, unreadable=f"{path} is not readable msgpack", format="msgpack")
    try:
        reference = load_model(model_path, threads=threads, reference=True)
        flight = load_model(model_path, threads=threads)
    except OrbitliteError as exc:
        raise SlotError(f"self-test: {exc}") from None
    manifest = reference.manifest
    if body.model_sha256 != manifest.sha256:
        raise SlotError(f"{source} was recorded for another model (sha256 {body.model_sha256[:12]}...)")
    rows, cols = manifest.tile_shape
    classes, dtype = len(manifest.classes), np.dtype(manifest.output.dtype)
    if not 1 <= body.count <= TILES or len(body.tiles) != body.count * len(manifest.bands) * rows * cols * 4 \
            or len(body.output) != body.count * classes * dtype.itemsize:
        raise SlotError(f"{source}: its tiles or outputs are not the size the model's manifest gives")
    tiles = np.frombuffer(body.tiles, dtype="<f4").reshape(body.count, len(manifest.bands), rows, cols)
    expected = np.frombuffer(body.output, dtype=dtype.newbyteorder("<")).reshape(body.count, classes)
    exact = 0 if dtype.kind in "iu" else FLOAT_TOLERANCE
    near = FLIGHT_LSB if dtype.kind in "iu" else FLOAT_TOLERANCE
    for model, kernels, tolerance in ((reference, "reference", exact), (flight, "flight", near)):
        got = _outputs(model, tiles).astype(np.float64)
        wrong = np.flatnonzero((np.abs(got - expected) > tolerance).any(axis=1))
        if wrong.size:
            raise SlotError(f"self-test: {model_path.name} through the {kernels} kernels gives other outputs than "
                            f"the ground recorded on {wrong.size} of its {body.count} reference tiles (first: tile "
                            f"{wrong[0]}, off by up to {np.abs(got - expected).max():g})")
    return manifest.id
