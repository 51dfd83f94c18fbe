"""Quantization-aware training: fake-quantization nodes in the forward pass while fine-tuning,
so the int8 model the converter makes from it has learnt to live with its rounding."""

from __future__ import annotations

from ground.tf import keras, tfmot
from ground.datasets.patches import PatchSet
from ground.training.record import ModelRecord
from ground.training.train import TrainConfig, fit


def quantization_aware(model: keras.Model, record: ModelRecord, train: PatchSet, val: PatchSet,
                       config: TrainConfig) -> keras.Model:
    """Fine-tune a quantization-aware copy of `model`; convert it with the int8 profile."""
    qat = tfmot.quantization.keras.quantize_model(model)
    fit(qat, record, train, val, config, stage="qat")
    return qat
