"""orbitlite's ground toolchain: datasets, training, compression, conversion, evaluation,
product decoding and downlink budgets."""

import os

# tensorflow-model-optimization works on tf-keras models only; this must be set before
# TensorFlow is first imported, and only where the ground toolchain starts.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter (CUDA probing on a CPU-only machine) is not for users;
# errors reach them as Python exceptions. Set it yourself to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
