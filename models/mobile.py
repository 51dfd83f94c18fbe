"""A mobile family whose full-integer int8 TFLite graph runs entirely on the Coral Edge TPU:
MobileNetV2 inverted residual blocks (Sandler et al., CVPR 2018) with the EfficientNet-Lite
restrictions (Tan & Le; TensorFlow blog, March 2020): ReLU6 everywhere, no swish or hard-swish
and no squeeze-and-excitation, a width multiplier, and nothing whose shape depends on the data.

Each layer is chosen for what the converter turns it into (see models.edgetpu): convolutions
with batch normalization folded and ReLU6 fused (CONV_2D, DEPTHWISE_CONV_2D), residual ADD,
global average pooling as MEAN over rows and columns, FULLY_CONNECTED, SOFTMAX or LOGISTIC.
EfficientNet-Lite replaced swish with ReLU6 because it quantizes better after training, and
dropped squeeze-and-excitation as poorly supported by mobile accelerators; both lower to
LOGISTIC and MUL, which are on the Edge TPU's list, so an op check alone does not catch them.
Hard-swish (MobileNetV3) becomes HARD_SWISH, which the Edge TPU cannot run."""

from __future__ import annotations

from dataclasses import dataclass

import tf_keras as keras

from models.heads import batch_norm, check_task, classifier
from models.rounding import make_divisible

# Channel counts are rounded to a multiple of 8, as MobileNetV2 does for its hardware.
_DIVISOR = 8


@dataclass(frozen=True)
class MobileConfig:
    """`blocks` rows are MobileNetV2's table 2: (expansion t, output channels c, repeats n,
    stride s of the first repeat). The defaults are the first four rows of MobileNetV2 with
    fewer repeats and 48 channels in the last, for 32 x 32 to 64 x 64 tiles on a CPU."""

    width: float = 1.0  # multiplies every channel count but the expansion factors
    stem: int = 16
    blocks: tuple[tuple[int, int, int, int], ...] = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 48, 2, 2))
    features: int = 128  # the 1x1 convolution before pooling (MobileNetV2's 1280); not shrunk below width 1
    dropout: float = 0.0  # before the classifier
    seed: int = 0

    def __post_init__(self) -> None:
        if self.width <= 0:
            raise ValueError(f"width multiplier must be > 0, got {self.width}")
        if not self.blocks:
            raise ValueError("blocks is empty; give at least one (t, c, n, s) row")
        for row in self.blocks:
            if len(row) != 4 or min(row[:3]) < 1 or row[3] not in (1, 2):
                raise ValueError(f"block row {row} must be "
                                 "(expansion >= 1, channels >= 1, repeats >= 1, stride 1 or 2)")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def build_mobile(input_shape: tuple[int, int, int], n_classes: int, config: MobileConfig = MobileConfig(),
                 head: str = "softmax") -> keras.Model:
    """The batch stays open for training and CPU inference; the Edge TPU needs it fixed at 1,
    which the `edgetpu` conversion profile (ground.conversion.convert) does."""
    check_task(input_shape, n_classes, head)
    keras.utils.set_random_seed(config.seed)
    x = inputs = keras.Input(input_shape, name="tiles")
    x = _conv_bn(x, make_divisible(config.stem * config.width, _DIVISOR), 3, 2, "stem")
    index = 0
    for expansion, channels, repeats, stride in config.blocks:
        for r in range(repeats):
            index += 1
            x = _inverted_residual(x, expansion, make_divisible(channels * config.width, _DIVISOR),
                                   stride if r == 0 else 1, f"block{index}")
    x = _conv_bn(x, make_divisible(config.features * max(1.0, config.width), _DIVISOR), 1, 1, "features")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, seed=config.seed, name="dropout")(x)
    return keras.Model(inputs, classifier(x, n_classes, head), name=f"mobile-{config.width:g}")


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu6: bool = True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)(x)
    x = batch_norm(x, f"{name}_bn")
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu6 else x


def _inverted_residual(x, expansion: int, channels: int, stride: int, name: str):
    """1x1 expansion (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 projection, and the identity
    added back where the shape allows."""
    y = x
    if expansion != 1:
        y = _conv_bn(y, x.shape[-1] * expansion, 1, 1, f"{name}_expand")
    y = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_depthwise")(y)
    y = batch_norm(y, f"{name}_depthwise_bn")
    y = keras.layers.ReLU(6.0, name=f"{name}_depthwise_relu6")(y)
    y = _conv_bn(y, channels, 1, 1, f"{name}_project", relu6=False)
    if stride == 1 and x.shape[-1] == channels:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y
