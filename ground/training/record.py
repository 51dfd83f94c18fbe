"""The record that travels with a Keras model between ground steps (`model.keras.json`): what
the model reads and predicts, how it was trained and compressed. `convert` turns it into the
model manifest."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ground.datasets.patches import SINGLE_LABEL
from ground.errors import KerasModelError
from onboard.files import write_verified
from onboard.contracts.manifest import sidecar_path


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
        return write_verified(sidecar_path(model_path), (json.dumps(asdict(self), indent=2) + "\n").encode())

    @classmethod
    def load(cls, model_path: Path) -> "ModelRecord":
        path = sidecar_path(model_path)
        try:
            body = json.loads(path.read_text())
            body["bands"], body["classes"] = tuple(body["bands"]), tuple(body["classes"])
            body["mean"], body["std"] = tuple(body["mean"]), tuple(body["std"])
            return cls(**body)
        except FileNotFoundError:
            raise KerasModelError(f"{path} not found: a Keras model needs the record `orbitlite ground train` writes beside it") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise KerasModelError(f"{path} is not a model record: {exc}") from None
