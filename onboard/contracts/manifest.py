"""Contract 1, the model manifest: the sidecar JSON that travels with every `.tflite`, and the
same manifest embedded in the model file as TFLite metadata (less the file's size and sha256).

In the spirit of the STAC Machine Learning Model extension: what the model expects as input
(shape, dtype, quantization, band names in order, per-band normalization), what it returns
(classes, task), how it was made and how well it did. A reader rejects a version it does not know.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypedDict

from msgspec import Meta

from onboard.errors import ManifestError
from onboard.files import write_verified
from onboard.schema import (Count, Data, FileName, Finite, Fraction, Int64, Name, Positive, PositiveInt, Schema, Sha256,
                            decode_contract, encode_json, read_bounded, to_builtins)

SCHEMA = "orbitlite/model-manifest"
VERSION = 1
EMBEDDED_NAME = "orbitlite.manifest"  # the TFLite metadata entry that carries the manifest
MAX_BYTES = 4 * 2**20  # a sidecar larger than this is refused unread (a manifest is a few kB)

Dim = Annotated[int, Meta(ge=1, le=2**31 - 1)]
# The integer range of each quantized dtype; float tensors carry no quantization.
_INTEGER_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


class Quantization(Schema):
    scale: Positive
    zero_point: Int64


class TensorSpec(Schema):
    shape: Annotated[tuple[Dim, ...], Meta(min_length=1, max_length=8)]
    dtype: Literal["int8", "uint8", "int16", "float16", "float32"]  # numpy dtype name
    quantization: Quantization | None = None

    def __post_init__(self) -> None:
        span = _INTEGER_RANGE.get(self.dtype)
        if span is None and self.quantization is not None:
            raise ValueError(f"a {self.dtype} tensor is not quantized")
        if span is not None and self.quantization is None:
            raise ValueError(f"an {self.dtype} tensor needs its quantization")
        if span is not None and not span[0] <= self.quantization.zero_point <= span[1]:
            raise ValueError(f"zero point {self.quantization.zero_point} is outside {self.dtype}")


class Accuracy(Schema):
    dataset: Name
    split: Name
    samples: Count
    keras: Fraction
    tflite: Fraction
    agreement: Fraction  # how often the TFLite model decides as the Keras model did
    metric: Literal["top-1 accuracy", "micro F1"] = "top-1 accuracy"  # micro F1 for multi-label tasks


Names = Annotated[tuple[Name, ...], Meta(min_length=1, max_length=255)]


class Stage(TypedDict):
    """One stage of training (train, prune, distill, QAT) and its log per epoch (a figure that was
    not finite, a diverged loss, is null)."""

    stage: Name
    config: dict[Name, Data]
    epochs: list[dict[Name, Finite | None]]


class Training(TypedDict, total=False):
    history: list[Stage]
    split_seed: Int64


class Embedded(Schema, kw_only=True):
    """The manifest as the model file carries it (TFLite metadata `EMBEDDED_NAME`): all of it but
    the size and sha256, which describe the file that carries it, and the training history, which
    would grow a small model by a fifth on its way up the link."""

    schema: Literal["orbitlite/model-manifest"] = SCHEMA
    version: Literal[1] = VERSION
    id: FileName  # it names the products the model makes (onboard.contracts.product.product_file_name)
    architecture: Name
    task: Literal["single-label", "multi-label"]
    input: TensorSpec
    output: TensorSpec
    bands: Names  # in the order the model takes them
    mean: tuple[Finite, ...]
    std: tuple[Positive, ...]
    classes: Names  # at most 255: a product's class map is uint8 with 255 for "not classified"
    parameters: Count
    sparsity: Fraction
    accuracy: Accuracy
    conversion: dict[Name, Data] = {}
    target: Literal["cpu", "edgetpu"] = "cpu"

    def __post_init__(self) -> None:
        n = len(self.bands)
        if len(set(self.bands)) != n or len(set(self.classes)) != len(self.classes):
            raise ValueError("a band or a class is named twice")
        if len(self.input.shape) != 4 or self.input.shape[3] != n:
            raise ValueError(f"input shape {self.input.shape} does not take {n} bands")
        if len(self.mean) != n or len(self.std) != n:
            raise ValueError(f"needs a mean and a positive std for each of its {n} bands")
        if self.output.shape[-1] != len(self.classes):
            raise ValueError(f"names {len(self.classes)} classes but its output shape is {self.output.shape}")


class Manifest(Embedded, kw_only=True):
    size_bytes: PositiveInt
    sha256: Sha256
    training: Training = {}

    def to_json(self) -> str:
        return encode_json(self, indent=2).decode() + "\n"

    def write(self, path: Path) -> Path:
        return write_verified(Path(path), self.to_json().encode())

    def embedded(self) -> bytes:
        """What the model file carries (see `Embedded`)."""
        body = to_builtins(self)
        del body["size_bytes"], body["sha256"], body["training"]
        return encode_json(body)

    def check_embedded(self, embedded: bytes | None, source: str) -> None:
        """Refuse a sidecar that disagrees with the manifest the model file carries."""
        if embedded is None:
            return  # a model converted before manifests were embedded, or by another tool
        carried = decode_contract(embedded, Embedded, contract=SCHEMA, version=VERSION, what="orbitlite model manifest",
                                  source=f"the manifest {source} carries", error=ManifestError,
                                  unreadable=f"{source} carries a manifest that is not JSON")
        differ = [k for k in Embedded.__struct_fields__ if getattr(self, k) != getattr(carried, k)]
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


def read_manifest(path: Path) -> Manifest:
    """Read and validate a manifest; any fault is a ManifestError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"manifest {path} not found: every model needs its manifest beside it")
    data = read_bounded(path, MAX_BYTES, error=ManifestError, what="manifest")
    return decode_contract(data, Manifest, contract=SCHEMA, version=VERSION, what="orbitlite model manifest",
                           source=f"manifest {path}", error=ManifestError,
                           unreadable=f"manifest {path} is not readable JSON")
