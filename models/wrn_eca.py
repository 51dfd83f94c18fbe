"""Wide ResNets (Zagoruyko & Komodakis, BMVC 2016) with Efficient Channel Attention in every
residual block (ECA-Net, Wang et al., CVPR 2020), compound-scaled in depth, width and input
resolution the EfficientNet way (Tan & Le, ICML 2019), as Papoutsis et al. scale their WRN-B0
on BigEarthNet ("Benchmarking and scaling of deep learning models for land cover image
classification", ISPRS J. Photogramm. Remote Sens. 195, 2023).

The phi=0 baseline is their WRN-B0, a WRN-10-2 (one pre-activation basic block in each of three
groups, widening factor 2, 16-channel stem): about 0.3 M parameters, small enough to train on a
CPU. Each step of phi multiplies blocks per group by alpha, the widening factor by beta and the
tile side by gamma."""

from __future__ import annotations

import math
from dataclasses import dataclass

import tf_keras as keras

from models.heads import batch_norm, check_task, classifier
from models.rounding import make_divisible

_STEM = 16
# WRN's three groups: base channels (times the widening factor) and the stride entering each.
_GROUPS = ((16, 1), (32, 2), (64, 2))
# Scaled channel counts are rounded to a multiple of this, as in the authors' code
# (Orion-AI-Lab/EfficientBigEarthNet, `_make_divisible(..., divisor=4)`).
_CHANNEL_DIVISOR = 4
# Scaled tile sides are rounded up to a multiple of this, so both stride-2 groups halve exactly.
_RESOLUTION_DIVISOR = 4
# ECA's mapping from channels to kernel size, with the paper's constants.
_ECA_GAMMA, _ECA_B = 2, 1


@dataclass(frozen=True)
class WrnEcaConfig:
    """The phi=0 baseline and the compound-scaling coefficients.

    alpha, beta and gamma are EfficientNet's (alpha * beta**2 * gamma**2 ~= 2, so each step of phi
    about doubles the FLOPs). Papoutsis et al. derive their own for WRN-B0 on BigEarthNet; their
    values could not be confirmed from the paper text here. The training config published with
    their code (Orion-AI-Lab/EfficientBigEarthNet, configs/base.json) sets alpha=1.4, beta=1.8,
    gamma=1.4; set those to follow it."""

    phi: int = 0
    depth: int = 10  # WRN depth 6n + 4 at phi=0: n pre-activation basic blocks per group
    width: float = 2.0  # WRN widening factor k at phi=0
    resolution: int = 32  # tile side (pixels) at phi=0
    alpha: float = 1.2  # depth coefficient
    beta: float = 1.1  # width coefficient
    gamma: float = 1.15  # resolution coefficient
    dropout: float = 0.0  # between the two convolutions of a block, as in WRN
    seed: int = 0

    def __post_init__(self) -> None:
        if self.depth < 10 or (self.depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4 with n >= 1 (10, 16, 22, ...), got {self.depth}")
        if self.phi < 0:
            raise ValueError(f"phi must be >= 0 (0 is the baseline), got {self.phi}")
        if self.width <= 0 or self.resolution < _RESOLUTION_DIVISOR:
            raise ValueError(f"width must be > 0 and resolution >= {_RESOLUTION_DIVISOR} px, "
                             f"got width={self.width}, resolution={self.resolution}")
        if min(self.alpha, self.beta, self.gamma) < 1:
            raise ValueError(f"alpha, beta and gamma must be >= 1 so that a larger phi never shrinks the network, "
                             f"got {self.alpha}, {self.beta}, {self.gamma}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class Scaling:
    """A WRN-`depth`-`width` network and the tile side it is meant to see."""

    depth: int
    width: float
    resolution: int

    @property
    def blocks(self) -> int:
        """Residual blocks per group."""
        return (self.depth - 4) // 6

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(make_divisible(base * self.width, _CHANNEL_DIVISOR) for base, _ in _GROUPS)


def compound_scaling(config: WrnEcaConfig = WrnEcaConfig()) -> Scaling:
    """Depth, width and resolution at `config.phi`: blocks per group times alpha**phi (rounded up,
    as EfficientNet rounds repeats), widening factor times beta**phi, tile side times gamma**phi
    (rounded up to a multiple of 4). The model is built for whatever input shape it is given;
    the resolution is the tile side the data should be prepared at."""
    blocks = math.ceil((config.depth - 4) // 6 * config.alpha ** config.phi - 1e-9)
    side = config.resolution * config.gamma ** config.phi
    return Scaling(depth=6 * blocks + 4, width=config.width * config.beta ** config.phi,
                   resolution=math.ceil(side / _RESOLUTION_DIVISOR - 1e-9) * _RESOLUTION_DIVISOR)


def eca_kernel_size(channels: int) -> int:
    """ECA's adaptive kernel size: |log2(C) / gamma + b / gamma| made odd (gamma=2, b=1)."""
    t = int(abs((math.log2(channels) + _ECA_B) / _ECA_GAMMA))
    return t if t % 2 else t + 1


def build_wrn_eca(input_shape: tuple[int, int, int], n_classes: int, config: WrnEcaConfig = WrnEcaConfig(),
                  head: str = "softmax") -> keras.Model:
    check_task(input_shape, n_classes, head)
    scaling = compound_scaling(config)
    keras.utils.set_random_seed(config.seed)
    x = inputs = keras.Input(input_shape, name="tiles")
    x = _conv(x, _STEM, 3, 1, "stem")
    for g, ((_, stride), channels) in enumerate(zip(_GROUPS, scaling.channels), start=1):
        for b in range(1, scaling.blocks + 1):
            x = _block(x, channels, stride if b == 1 else 1, config.dropout, f"g{g}b{b}")
    x = _bn_relu(x, "final")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, classifier(x, n_classes, head), name=f"wrn-eca-b{config.phi}")


def _conv(x, filters: int, kernel: int, stride: int, name: str):
    # No bias: a batch normalization follows (in the next block, for pre-activation).
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                               kernel_initializer="he_normal", name=name)(x)


def _bn_relu(x, name: str):
    x = batch_norm(x, f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _block(x, channels: int, stride: int, dropout: float, name: str):
    """WRN's pre-activation basic block, BN-ReLU-conv3x3-BN-ReLU-conv3x3, with ECA on the
    residual branch; the shortcut is a 1x1 projection of the pre-activated input where the
    shape changes."""
    pre = _bn_relu(x, f"{name}_pre")
    same_shape = stride == 1 and x.shape[-1] == channels
    shortcut = x if same_shape else _conv(pre, channels, 1, stride, f"{name}_shortcut")
    y = _conv(pre, channels, 3, stride, f"{name}_conv1")
    y = _bn_relu(y, f"{name}_mid")
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = _conv(y, channels, 3, 1, f"{name}_conv2")
    y = _eca(y, f"{name}_eca")
    return keras.layers.Add(name=f"{name}_add")([shortcut, y])


def _eca(x, name: str):
    """Efficient Channel Attention: global average pooling, a 1-D convolution across channels
    (local cross-channel interaction, no dimensionality reduction) and a sigmoid gate."""
    channels = x.shape[-1]
    w = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    w = keras.layers.Reshape((channels, 1), name=f"{name}_to_seq")(w)
    w = keras.layers.Conv1D(1, eca_kernel_size(channels), padding="same", use_bias=False, name=f"{name}_conv")(w)
    w = keras.layers.Activation("sigmoid", name=f"{name}_gate")(w)
    w = keras.layers.Reshape((1, 1, channels), name=f"{name}_to_map")(w)
    return keras.layers.Multiply(name=f"{name}_scale")([x, w])
