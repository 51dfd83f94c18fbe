"""The one place the ground toolchain imports TensorFlow, tf-keras and tfmot from.

TensorFlow's GPU build and its TFLite converter write to stderr from C++ (CUDA probing on a
CPU-only machine, quantizer settings), outside its log level; those calls run with stderr
pointed at /dev/null, so a user's terminal shows only orbitlite. Their errors still arrive as
Python exceptions."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


with quiet_stderr():
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

# The same seed gives the same model on the same machine: ops that have a deterministic kernel use
# it, and one without raises instead of varying from run to run. Each fit seeds Python, numpy and
# TensorFlow from its TrainConfig (ground.training.train.fit). Other CPUs and thread counts may still round
# differently, so tests assert margins measured across seeds and thread counts, not one run's figures.
tf.config.experimental.enable_op_determinism()

# Its Python-side advice (e.g. on retracing when models of several shapes are evaluated in one
# process) is for TensorFlow developers, not for orbitlite's users.
tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "keras", "tfmot", "quiet_stderr"]
