"""Pruning while fine-tuning, with tensorflow-model-optimization: unstructured magnitude pruning
(constant or polynomial schedule, to a target sparsity), 2:4 structured sparsity, and pruning
for XNNPACK's sparse kernels (only the layers they can use, and only in a model they accept)."""

from __future__ import annotations

from dataclasses import dataclass

from ground.tf import keras, tfmot
from ground.datasets.patches import PatchSet
from ground.errors import PruningError
from ground.training.record import ModelRecord
from ground.training.train import TrainConfig, fit

METHODS = ("magnitude", "2:4", "xnnpack")
SCHEDULES = ("polynomial", "constant")


@dataclass(frozen=True)
class PruneSpec:
    method: str = "magnitude"
    sparsity: float = 0.5  # the target of magnitude and xnnpack pruning; 2:4 is always 50%
    schedule: str = "polynomial"

    def label(self) -> str:
        return "prune-2:4" if self.method == "2:4" else f"prune-{self.method}-{self.sparsity:g}"


def measured_sparsity(model: keras.Model) -> float:
    """Fraction of exact zeros among the conv and dense kernels."""
    kernels = [w.numpy() for layer in model.layers for w in layer.trainable_weights if "kernel" in w.name]
    total = sum(k.size for k in kernels)
    return float(sum(int((k == 0).sum()) for k in kernels) / total) if total else 0.0


def _schedule(spec: PruneSpec, steps: int):
    frequency = max(1, steps // 20)
    if spec.schedule == "constant":
        return tfmot.sparsity.keras.ConstantSparsity(spec.sparsity, begin_step=0, frequency=frequency)
    if spec.schedule == "polynomial":
        # Reach the target two thirds of the way through, then fine-tune at it.
        return tfmot.sparsity.keras.PolynomialDecay(0.0, spec.sparsity, begin_step=0,
                                                    end_step=max(1, steps * 2 // 3), frequency=frequency)
    raise PruningError(f"unknown pruning schedule {spec.schedule!r}; choose from {', '.join(SCHEDULES)}")


def prune(model: keras.Model, record: ModelRecord, train: PatchSet, val: PatchSet, spec: PruneSpec,
          config: TrainConfig) -> keras.Model:
    """Prune `model` by `spec` while fine-tuning, strip the pruning wrappers, and record the
    measured sparsity."""
    if spec.method not in METHODS:
        raise PruningError(f"unknown pruning method {spec.method!r}; choose from {', '.join(METHODS)}")
    if not 0 < spec.sparsity < 1:
        raise PruningError(f"sparsity must be between 0 and 1, got {spec.sparsity}")
    steps = config.epochs * -(-len(train) // config.batch_size)
    if spec.method == "2:4":
        # Two of every four consecutive weights along the input channels stay.
        pruned = tfmot.sparsity.keras.prune_low_magnitude(
            model, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=max(1, steps // 20)),
            sparsity_m_by_n=(2, 4))
    elif spec.method == "xnnpack":
        try:
            pruned = tfmot.sparsity.keras.prune_low_magnitude(
                model, pruning_schedule=_schedule(spec, steps),
                pruning_policy=tfmot.sparsity.keras.PruneForLatencyOnXNNPack())
        except ValueError as exc:
            raise PruningError(f"{record.architecture} cannot be pruned for XNNPACK's sparse kernels: {exc}") from None
    else:
        pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=_schedule(spec, steps))
    fit(pruned, record, train, val, config, stage=spec.label(), callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    record.sparsity = round(measured_sparsity(stripped), 4)
    return stripped
