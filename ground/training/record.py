"""The record that travels with a Keras model between ground steps (`model.keras.json`): what
the model reads and predicts, how it was trained and compressed. `convert` turns it into the
model manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from msgspec import Meta
from msgspec.structs import asdict as struct_fields

from ground.datasets.patches import SINGLE_LABEL
from ground.errors import KerasModelError
from onboard.contracts.manifest import Stage, sidecar_path
from onboard.files import write_verified
from onboard.schema import (Count, Finite, Fraction, Int64, Name, Positive, Schema, Text, decode, encode_json,
                            read_bounded)

MAX_BYTES = 4 * 2**20  # a record larger than this is refused unread (one is a few kB)
Names = Annotated[tuple[Name, ...], Meta(min_length=1, max_length=255)]


@dataclass
class ModelRecord:
    architecture: str
    bands: tuple[str, ...]
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    parameters: int
    dataset: str  # the dataset's source; synthetic sets say so
    split_seed: int
    task: str = SINGLE_LABEL
    sparsity: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per training stage

    def save(self, model_path: Path) -> Path:
        return write_verified(sidecar_path(model_path), encode_json(asdict(self), indent=2) + b"\n")

    @classmethod
    def load(cls, model_path: Path) -> "ModelRecord":
        path = sidecar_path(model_path)
        if not path.is_file():
            raise KerasModelError(f"{path} not found: a Keras model needs the record `orbitlite ground train` writes "
                                  "beside it")
        data = read_bounded(path, MAX_BYTES, error=KerasModelError, what="model record")
        return cls(**struct_fields(decode(data, RecordFile, source=f"{path} is not a model record",
                                          error=KerasModelError)))


class RecordFile(Schema, kw_only=True):
    """A model record as its file holds it (see `ModelRecord`)."""

    architecture: Name
    bands: Names
    classes: Names
    mean: tuple[Finite, ...]
    std: tuple[Positive, ...]
    parameters: Count
    dataset: Text
    split_seed: Int64
    task: Literal["single-label", "multi-label"] = SINGLE_LABEL
    sparsity: Fraction = 0.0
    history: list[Stage] = []

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.bands) or len(self.std) != len(self.bands):
            raise ValueError(f"needs a mean and a positive std for each of its {len(self.bands)} bands")
