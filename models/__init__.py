"""Keras architecture families for on-board land-cover classification (tf-keras, so that
tensorflow-model-optimization can prune and quantize them), and the Edge TPU pre-flight check.

Every family has a frozen config dataclass and a builder called as
`build(input_shape, n_classes, config, head="softmax" | "sigmoid")`. FAMILIES names them; a
family's module is imported only when its builder or config is asked for, so that
`models.edgetpu` stays usable without TensorFlow."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Family:
    module: str
    builder: str
    config_class: str

    @property
    def build(self) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), self.builder)

    @property
    def config(self) -> type:
        return getattr(importlib.import_module(self.module), self.config_class)


FAMILIES: dict[str, Family] = {
    "zoo-cnn": Family("models.zoo_cnn", "build_zoo_cnn", "ZooConfig"),
    "wrn-eca": Family("models.wrn_eca", "build_wrn_eca", "WrnEcaConfig"),
    "mobile": Family("models.mobile", "build_mobile", "MobileConfig"),
    "nas-cell": Family("models.nas_cell", "build_nas_cell", "NasCellConfig"),
}
