"""Training Keras classifiers on labelled patches: the objective per task, the fit loop with
progress and samples/s, prediction and loading."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click
import numpy as np

from ground.tf import keras, tfmot
from ground.datasets.patches import MULTI_LABEL, PatchSet
from ground.errors import DatasetError, KerasModelError, TrainingError
from ground.training.record import ModelRecord
from onboard.progress import progress_bar

# The split every ground step uses: train, validation, test.
SPLIT = (0.7, 0.15, 0.15)
# Targets of 0.9 + 0.1 / classes rather than 1: without it, cross-entropy keeps pushing the logits
# of classes that are plainly absent towards minus infinity (-218 after 12 epochs of cnn-s), and
# the int8 model's per-tensor scale of its logits, stretched over that range, becomes coarser
# than the gaps between the classes it has to tell apart: an int8 model then decides unlike its
# own Keras model on one tile in five. Smoothed, the logits stay within a few units, and int8
# resolves gaps 25 times finer (see the int8 agreement bench in tests/bench).
LABEL_SMOOTHING = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """The optimizer axes of the model zoo."""

    epochs: int = 15
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0


def normalize(x: np.ndarray, record: ModelRecord) -> np.ndarray:
    """The float input of the Keras model: (x - mean) / std per band."""
    return (x.astype(np.float32) - np.asarray(record.mean, np.float32)) / np.asarray(record.std, np.float32)


def check_bands(patches: PatchSet, record: ModelRecord) -> None:
    if patches.bands != record.bands or patches.classes != record.classes:
        raise DatasetError(
            f"dataset ({','.join(patches.bands)}; {','.join(patches.classes)}) does not match the model "
            f"({','.join(record.bands)}; {','.join(record.classes)})"
        )


class EpochProgress(keras.callbacks.Callback):
    """A progress bar per epoch on stderr, and the epoch's metrics and samples/s after it."""

    def __init__(self, label: str, samples: int, batch_size: int) -> None:
        super().__init__()
        self.label, self.samples, self.batch_size = label, samples, batch_size
        self.log: list[dict[str, Any]] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.started = epoch, time.perf_counter()
        steps = -(-self.samples // self.batch_size)
        self.bar_context = progress_bar(steps, f"{self.label} epoch {epoch + 1}/{self.params['epochs']}")
        self.bar = self.bar_context.__enter__()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.bar.update(1)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.bar_context.__exit__(None, None, None)
        seconds = time.perf_counter() - self.started
        entry = {"epoch": epoch + 1, "samples_per_s": round(self.samples / seconds, 1),
                 **{k: round(float(v), 4) for k, v in (logs or {}).items()}}
        self.log.append(entry)
        metrics = "  ".join(f"{k} {v}" for k, v in entry.items() if k != "epoch")
        click.echo(f"  {self.label} epoch {epoch + 1}: {metrics}", err=True)


def _optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    kinds = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD}
    if config.optimizer not in kinds:
        raise TrainingError(f"unknown optimizer {config.optimizer!r}; choose from {', '.join(kinds)}")
    kwargs: dict[str, Any] = {"learning_rate": config.learning_rate}
    if config.weight_decay:
        kwargs["weight_decay"] = config.weight_decay
    return kinds[config.optimizer](**kwargs)


@dataclass
class Objective:
    """What a fit minimises and reports, and the targets it compares the model's output with.
    Its headline metric is always named `accuracy`, so every stage logs `val_accuracy`."""

    loss: Any
    metrics: list
    train_targets: np.ndarray
    val_targets: np.ndarray


def objective_for(task: str, train: PatchSet, val: PatchSet) -> Objective:
    if task == MULTI_LABEL:
        return Objective(keras.losses.BinaryCrossentropy(label_smoothing=LABEL_SMOOTHING),
                         [keras.metrics.BinaryAccuracy(name="accuracy")],
                         train.y.astype(np.float32), val.y.astype(np.float32))
    n = len(train.classes)
    return Objective(keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
                     [keras.metrics.CategoricalAccuracy(name="accuracy")],
                     np.eye(n, dtype=np.float32)[train.y], np.eye(n, dtype=np.float32)[val.y])


def fit(model: keras.Model, record: ModelRecord, train: PatchSet, val: PatchSet, config: TrainConfig,
        stage: str, callbacks: list | None = None, objective: Objective | None = None) -> dict[str, Any]:
    """Compile and fit `model`; append the stage's log to the record and return it."""
    keras.utils.set_random_seed(config.seed)
    objective = objective or objective_for(record.task, train, val)
    model.compile(optimizer=_optimizer(config), loss=objective.loss, metrics=objective.metrics)
    progress = EpochProgress(stage, len(train), config.batch_size)
    model.fit(normalize(train.x, record), objective.train_targets,
              validation_data=(normalize(val.x, record), objective.val_targets),
              epochs=config.epochs, batch_size=config.batch_size, shuffle=True, verbose=0,
              callbacks=[*(callbacks or []), progress])  # progress last: it logs what the others add
    entry = {"stage": stage, "config": config.__dict__, "epochs": progress.log}
    record.history.append(entry)
    return entry


def predict(model: keras.Model, record: ModelRecord, patches: PatchSet) -> np.ndarray:
    """Class probabilities of `patches`."""
    return model.predict(normalize(patches.x, record), batch_size=256, verbose=0)


def load_keras(path) -> keras.Model:
    try:
        with tfmot.quantization.keras.quantize_scope():  # quantization-aware models need its layers
            # Uncompiled: every step compiles for its own objective, and a distilled model's loss
            # is a closure that cannot be reloaded.
            return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, TypeError) as exc:
        raise KerasModelError(f"{path} is not a loadable Keras model: {exc}") from None

