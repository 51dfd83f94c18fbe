"""The ground steps on one patch set: train, prune, distill, quantization-aware training,
convert, evaluate. Shared by the CLI commands and the demo, so both do exactly the same thing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ground.tf import keras
from ground.conversion.convert import write_tflite
from ground.conversion.evaluate import Evaluation, card_path, evaluate, evaluation_path, model_card
from ground.datasets.patches import MULTI_LABEL, PatchSet
from ground.errors import TrainingError
from ground.training.architectures import build
from ground.training.distill import distillation_objective
from ground.training.prune import PruneSpec, prune
from ground.training.qat import quantization_aware
from ground.training.record import ModelRecord
from ground.training.transfer import source_model, transfer
from ground.training.train import SPLIT, TrainConfig, check_bands, fit, load_keras, predict
from onboard.files import write_verified
from onboard.contracts.manifest import Manifest


def split(patches: PatchSet, seed: int) -> tuple[PatchSet, PatchSet, PatchSet]:
    train, val, test = patches.split(SPLIT, seed)
    return train, val, test


def new_model(patches: PatchSet, arch: str, overrides: dict[str, Any], seed: int,
              split_seed: int) -> tuple[keras.Model, ModelRecord]:
    """An untrained `arch` for `patches`, and its record with the training split's band statistics."""
    train, _, _ = split(patches, split_seed)
    mean, std = train.band_stats()
    head = "sigmoid" if patches.task == MULTI_LABEL else "softmax"
    model = build(arch, patches.x.shape[1:], len(patches.classes), head, overrides, seed)
    record = ModelRecord(
        architecture=model.name, bands=patches.bands, classes=patches.classes,
        mean=tuple(round(float(m), 4) for m in mean), std=tuple(round(float(s), 4) for s in std),
        parameters=int(model.count_params()), dataset=patches.source, split_seed=split_seed, task=patches.task,
    )
    return model, record


def train_model(patches: PatchSet, out: Path, arch: str, overrides: dict[str, Any], config: TrainConfig,
                split_seed: int = 0) -> tuple[keras.Model, ModelRecord, dict]:
    model, record = new_model(patches, arch, overrides, config.seed, split_seed)
    train, val, _ = split(patches, split_seed)
    entry = fit(model, record, train, val, config, stage="train")
    save_keras(model, record, out)
    return model, record, entry


def fine_tune_model(patches: PatchSet, source: Path, out: Path, config: TrainConfig, freeze_encoder: bool,
                    relearn_input: bool, split_seed: int = 0) -> tuple[keras.Model, ModelRecord, dict]:
    """Train a new classifier for `patches` on the encoder of the model at `source` (a zoo
    member's folder or a model file), with the encoder frozen or fine-tuned."""
    train, val, _ = split(patches, split_seed)
    model, record = transfer(source, patches, train, relearn_input, freeze_encoder, config.seed, split_seed)
    stage = "fine-tune" + ("-frozen-encoder" if freeze_encoder else "") + ("-new-input" if relearn_input else "")
    entry = fit(model, record, train, val, config, stage=stage)
    entry["config"]["init_from"] = str(source_model(source))
    save_keras(model, record, out)
    return model, record, entry


def _load(patches: PatchSet, model_path: Path) -> tuple[keras.Model, ModelRecord]:
    record = ModelRecord.load(model_path)  # the cheap check first
    check_bands(patches, record)
    return load_keras(model_path), record


def prune_model(patches: PatchSet, model_path: Path, out: Path, spec: PruneSpec,
                config: TrainConfig) -> tuple[keras.Model, ModelRecord, dict]:
    model, record = _load(patches, model_path)
    train, val, _ = split(patches, record.split_seed)
    pruned = prune(model, record, train, val, spec, config)
    save_keras(pruned, record, out)
    return pruned, record, record.history[-1]


def distill_model(patches: PatchSet, teacher_path: Path, out: Path, student: str, overrides: dict[str, Any],
                  config: TrainConfig, temperature: float, alpha: float) -> tuple[keras.Model, ModelRecord, dict]:
    """Train a new `student` architecture on `patches` with the teacher at `teacher_path`, on
    the teacher's split."""
    teacher, teacher_record = _load(patches, teacher_path)
    model, record = new_model(patches, student, overrides, config.seed, teacher_record.split_seed)
    train, val, _ = split(patches, record.split_seed)
    objective = distillation_objective(teacher, teacher_record, record.task, train, val, temperature, alpha)
    entry = fit(model, record, train, val, config, stage=f"distill-from-{teacher_record.architecture}-T{temperature:g}",
                objective=objective)
    save_keras(model, record, out)
    return model, record, entry


def qat_model(patches: PatchSet, model_path: Path, out: Path, config: TrainConfig) -> tuple[keras.Model, ModelRecord, dict]:
    if out.suffix != ".h5":
        # tf-keras cannot reload tfmot's quantize layers from the .keras format (their variables
        # are re-created differently); HDF5 round-trips them.
        raise TrainingError(f"{out}: quantization-aware models are saved as HDF5; name the output *.h5")
    model, record = _load(patches, model_path)
    train, val, _ = split(patches, record.split_seed)
    qat = quantization_aware(model, record, train, val, config)
    save_keras(qat, record, out)
    return qat, record, record.history[-1]


def convert_model(patches: PatchSet, model_path: Path, out: Path, model_id: str, profile: str = "int8") -> Manifest:
    model, record = _load(patches, model_path)
    train, _, test = split(patches, record.split_seed)
    return write_tflite(model, record, train, test, out, model_id, profile)


def evaluate_model(patches: PatchSet, manifest: Manifest, model_path: Path, keras_path: Path | None, split_name: str,
                   runs: int) -> tuple[Evaluation, Path, Path]:
    """Evaluate the converted model at `model_path` on `split_name` of its own split of
    `patches`, against its Keras original where given; write the evaluation and the model card
    beside it, and return them with their paths."""
    part = dict(zip(("train", "val", "test"), split(patches, int(manifest.training.get("split_seed", 0)))))[split_name]
    keras_scores = None
    if keras_path:
        record = ModelRecord.load(keras_path)
        check_bands(patches, record)
        keras_scores = predict(load_keras(keras_path), record, part)
    ev = evaluate(model_path, part, split_name, keras_scores, runs)
    return (ev, ev.write(evaluation_path(model_path)),
            write_verified(card_path(model_path), model_card(manifest, ev).encode()))


def save_keras(model: keras.Model, record: ModelRecord, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    record.save(out)
