"""Training and magnitude pruning of Keras classifiers on labelled patches."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click
import numpy as np

from ground.tf import keras, tfmot
from ground.patches import DatasetError, PatchSet
from ground.record import ModelRecord
from onboard.progress import progress_bar

# The split every ground step uses: train, validation, test.
SPLIT = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class TrainConfig:
    """The optimizer axes of the model zoo."""

    epochs: int = 15
    batch_size: int = 64
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
        raise DatasetError(f"unknown optimizer {config.optimizer!r}; choose from {', '.join(kinds)}")
    kwargs: dict[str, Any] = {"learning_rate": config.learning_rate}
    if config.weight_decay:
        kwargs["weight_decay"] = config.weight_decay
    return kinds[config.optimizer](**kwargs)


def fit(model: keras.Model, record: ModelRecord, train: PatchSet, val: PatchSet, config: TrainConfig,
        stage: str, callbacks: list | None = None) -> dict[str, Any]:
    """Compile and fit `model`; append the stage's log to the record and return it."""
    keras.utils.set_random_seed(config.seed)
    model.compile(optimizer=_optimizer(config), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    progress = EpochProgress(stage, len(train), config.batch_size)
    model.fit(normalize(train.x, record), train.y, validation_data=(normalize(val.x, record), val.y),
              epochs=config.epochs, batch_size=config.batch_size, shuffle=True, verbose=0,
              callbacks=[progress, *(callbacks or [])])
    entry = {"stage": stage, "config": config.__dict__, "epochs": progress.log}
    record.history.append(entry)
    return entry


def measured_sparsity(model: keras.Model) -> float:
    """Fraction of exact zeros among the conv and dense kernels."""
    kernels = [w.numpy() for layer in model.layers for w in layer.trainable_weights if "kernel" in w.name]
    total = sum(k.size for k in kernels)
    return float(sum(int((k == 0).sum()) for k in kernels) / total) if total else 0.0


def prune(model: keras.Model, record: ModelRecord, train: PatchSet, val: PatchSet, sparsity: float,
          config: TrainConfig, schedule: str = "polynomial") -> keras.Model:
    """Magnitude-prune `model` to `sparsity` while fine-tuning, and strip the pruning wrappers."""
    if not 0 < sparsity < 1:
        raise DatasetError(f"sparsity must be between 0 and 1, got {sparsity}")
    steps = config.epochs * -(-len(train) // config.batch_size)
    if schedule == "constant":
        sched = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=max(1, steps // 20))
    elif schedule == "polynomial":
        sched = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=max(1, steps * 2 // 3),
                                                     frequency=max(1, steps // 20))
    else:
        raise DatasetError(f"unknown pruning schedule {schedule!r}; choose constant or polynomial")
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=sched)
    fit(pruned, record, train, val, config, stage=f"prune-{sparsity:g}",
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    record.sparsity = round(measured_sparsity(stripped), 4)
    return stripped


def predict(model: keras.Model, record: ModelRecord, patches: PatchSet) -> np.ndarray:
    return model.predict(normalize(patches.x, record), batch_size=256, verbose=0).argmax(axis=1)


def load_keras(path) -> keras.Model:
    try:
        return keras.models.load_model(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not a loadable Keras model: {exc}") from None

