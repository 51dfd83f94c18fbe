"""The ground steps end to end on one patch set: train, prune, convert. Shared by the CLI
commands and the demo, so both do exactly the same thing."""

from __future__ import annotations

from pathlib import Path


from ground.tf import keras
from ground.convert import write_tflite
from ground.patches import PatchSet
from ground.record import ModelRecord
from ground.train import SPLIT, TrainConfig, check_bands, fit, load_keras, prune
from models.zoo_cnn import ZooConfig, build_zoo_cnn
from onboard.manifest import Manifest


def split(patches: PatchSet, seed: int) -> tuple[PatchSet, PatchSet, PatchSet]:
    train, val, test = patches.split(SPLIT, seed)
    return train, val, test


def train_model(patches: PatchSet, out: Path, zoo: ZooConfig, config: TrainConfig, split_seed: int = 0) -> tuple[keras.Model, ModelRecord, dict]:
    train, val, _ = split(patches, split_seed)
    mean, std = train.band_stats()
    model = build_zoo_cnn(patches.x.shape[1:], len(patches.classes), zoo)
    record = ModelRecord(
        architecture=f"zoo-{zoo.size}", bands=patches.bands, classes=patches.classes,
        mean=tuple(round(float(m), 4) for m in mean), std=tuple(round(float(s), 4) for s in std),
        parameters=int(model.count_params()), dataset=patches.source, split_seed=split_seed,
    )
    entry = fit(model, record, train, val, config, stage="train")
    save_keras(model, record, out)
    return model, record, entry


def prune_model(patches: PatchSet, model_path: Path, out: Path, sparsity: float, config: TrainConfig,
                schedule: str = "polynomial") -> tuple[keras.Model, ModelRecord, dict]:
    model, record = load_keras(model_path), ModelRecord.load(model_path)
    check_bands(patches, record)
    train, val, _ = split(patches, record.split_seed)
    pruned = prune(model, record, train, val, sparsity, config, schedule)
    save_keras(pruned, record, out)
    return pruned, record, record.history[-1]


def convert_model(patches: PatchSet, model_path: Path, out: Path, model_id: str) -> Manifest:
    model, record = load_keras(model_path), ModelRecord.load(model_path)
    check_bands(patches, record)
    train, _, test = split(patches, record.split_seed)
    return write_tflite(model, record, train, test, out, model_id)


def save_keras(model: keras.Model, record: ModelRecord, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    record.save(out)
