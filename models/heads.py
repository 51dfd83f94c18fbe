"""What every family shares: the check of its input and task, the classifier head (softmax for
single-label tasks such as EuroSAT, sigmoid for multi-label ones such as BigEarthNet, where each
class is an independent yes/no), and batch normalization set for short schedules."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import tf_keras as keras

HEADS = ("softmax", "sigmoid")


def check_task(input_shape: tuple[int, ...], n_classes: int, head: str) -> None:
    """Fail before any layer is built, naming the argument at fault."""
    if len(input_shape) != 3 or not all(isinstance(s, Integral) and s > 0 for s in input_shape):
        raise ValueError(f"input_shape must be (rows, cols, bands) of positive ints, got {tuple(input_shape)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose softmax (single-label) or sigmoid (multi-label)")
    if n_classes < (2 if head == "softmax" else 1):
        raise ValueError(f"n_classes={n_classes} is too few for a {head} head: a softmax needs at least 2 "
                         "classes (its output over one class is constant); use sigmoid for a single yes/no")


def classifier(features: Any, n_classes: int, head: str, initializer: Any = "glorot_uniform") -> Any:
    """The output layer, named `classes` in every family so tools can find it."""
    return keras.layers.Dense(n_classes, activation=head, kernel_initializer=initializer, name="classes")(features)


# Keras' default momentum of 0.99 needs several hundred steps before the moving statistics that
# inference uses forget their initial values; the short schedules of small EO training sets (a
# few hundred steps) end before that, and the model then predicts one class at evaluation.
BN_MOMENTUM = 0.9


def batch_norm(x: Any, name: str) -> Any:
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)(x)
