"""Contract 1, the model manifest: the sidecar JSON that travels with every `.tflite`, and the
same manifest embedded in the model file as TFLite metadata (less the file's size and sha256).

In the spirit of the STAC Machine Learning Model extension: what the model expects as input
(shape, dtype, quantization, band names in order, per-band normalization), what it returns
(classes, task), how it was made and how well it did. A reader rejects a version it does not know.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from onboard.errors import ManifestError
from onboard.files import write_verified

SCHEMA = "orbitlite/model-manifest"
VERSION = 1
EMBEDDED_NAME = "orbitlite.manifest"  # the TFLite metadata entry that carries the manifest


@dataclass(frozen=True)
class Quantization:
    scale: float
    zero_point: int


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: int8, uint8, float32
    quantization: Quantization | None = None


@dataclass(frozen=True)
class Accuracy:
    dataset: str
    split: str
    samples: int
    keras: float
    tflite: float
    agreement: float  # how often the TFLite model decides as the Keras model did
    metric: str = "top-1 accuracy"  # or "micro F1" for multi-label tasks


@dataclass(frozen=True)
class Manifest:
    id: str
    architecture: str
    task: str  # "single-label" or "multi-label"
    input: TensorSpec
    output: TensorSpec
    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    parameters: int
    sparsity: float
    accuracy: Accuracy
    size_bytes: int
    sha256: str
    conversion: dict[str, Any] = field(default_factory=dict)
    target: str = "cpu"
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        body = {"schema": SCHEMA, "version": VERSION, **asdict(self)}
        return json.dumps(body, indent=2) + "\n"

    def write(self, path: Path) -> Path:
        return write_verified(Path(path), self.to_json().encode())

    def embedded(self) -> bytes:
        """The manifest as the model file carries it (TFLite metadata `EMBEDDED_NAME`): all of it
        but the size and sha256, which describe the file that carries it, and the training history,
        which would grow a small model by a fifth on its way up the link."""
        body = {"schema": SCHEMA, "version": VERSION, **asdict(self)}
        del body["size_bytes"], body["sha256"], body["training"]
        return json.dumps(body, separators=(",", ":")).encode()

    def check_embedded(self, embedded: bytes | None, source: str) -> None:
        """Refuse a sidecar that disagrees with the manifest the model file carries."""
        if embedded is None:
            return  # a model converted before manifests were embedded, or by another tool
        try:
            carried = json.loads(embedded)
        except ValueError:
            raise ManifestError(f"{source} carries a manifest that is not JSON") from None
        ours = json.loads(self.embedded())
        differ = sorted(k for k in ours.keys() | carried.keys() if ours.get(k) != carried.get(k))
        if differ:
            raise ManifestError(f"{source} carries a manifest that differs from its sidecar in "
                                f"{', '.join(differ)}: the sidecar was edited or belongs to another model")

    @property
    def tile_shape(self) -> tuple[int, int]:
        """Rows and columns of one input tile (the input is batch x rows x cols x bands)."""
        return self.input.shape[1], self.input.shape[2]


def sidecar_path(model_path: Path) -> Path:
    """Where a model's manifest lives: next to it, with `.json` appended (`m.tflite.json`)."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def _tensor(d: dict[str, Any]) -> TensorSpec:
    q = d.get("quantization")
    return TensorSpec(
        shape=tuple(int(s) for s in d["shape"]),
        dtype=str(d["dtype"]),
        quantization=Quantization(float(q["scale"]), int(q["zero_point"])) if q else None,
    )


def read_manifest(path: Path) -> Manifest:
    """Read and validate a manifest; any fault is a ManifestError naming the file."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} not found: every model needs its manifest beside it") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest {path} is not readable JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("schema") != SCHEMA:
        raise ManifestError(f"{path} is not an orbitlite model manifest (schema {SCHEMA!r})")
    if body.get("version") != VERSION:
        raise ManifestError(
            f"manifest {path} has version {body.get('version')!r}; this runtime reads version {VERSION}"
        )
    try:
        manifest = Manifest(
            id=str(body["id"]),
            architecture=str(body["architecture"]),
            task=str(body["task"]),
            input=_tensor(body["input"]),
            output=_tensor(body["output"]),
            bands=tuple(str(b) for b in body["bands"]),
            mean=tuple(float(v) for v in body["mean"]),
            std=tuple(float(v) for v in body["std"]),
            classes=tuple(str(c) for c in body["classes"]),
            parameters=int(body["parameters"]),
            sparsity=float(body["sparsity"]),
            accuracy=Accuracy(**body["accuracy"]),
            size_bytes=int(body["size_bytes"]),
            sha256=str(body["sha256"]),
            conversion=dict(body.get("conversion", {})),
            target=str(body.get("target", "cpu")),
            training=dict(body.get("training", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"manifest {path} is malformed: {type(exc).__name__} {exc}") from None
    n = len(manifest.bands)
    if len(manifest.input.shape) != 4 or manifest.input.shape[3] != n:
        raise ManifestError(f"manifest {path}: input shape {manifest.input.shape} does not take {n} bands")
    if len(manifest.mean) != n or len(manifest.std) != n or min(manifest.std) <= 0:
        raise ManifestError(f"manifest {path}: needs a mean and a positive std for each of its {n} bands")
    return manifest
