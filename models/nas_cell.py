"""Cell networks from the NAS-Bench-101 search space (Ying et al., "NAS-Bench-101: Towards
Reproducible Neural Architecture Search", ICML 2019), built the way its reference code
(google-research/nasbench, lib/model_spec.py and lib/model_builder.py) builds them, so a cell
from the benchmark gives the same architecture here.

A cell is a DAG of at most 7 vertices given by an upper-triangular 0/1 adjacency matrix and one
op per vertex: `input`, then conv1x1-bn-relu, conv3x3-bn-relu or maxpool3x3, then `output`.
Vertices not on a path from input to output are pruned. The cell's output channels are split
among the vertices feeding the output, whose results are concatenated; the cell input reaches a
vertex through a 1x1 conv-bn-relu projection to that vertex's channels, and is added, projected,
to the output where the two are connected.

The network is a 3x3 conv-bn-relu stem, stacks of cells with 2x2 max-pooling and doubled
channels between stacks, global average pooling and the classifier. NAS-Bench-101 trains 3
stacks of 3 cells on a 128-channel stem; the defaults here (3 stacks of 1 cell, 16 channels)
train on a CPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tf_keras as keras

from models.heads import batch_norm, check_task, classifier
from models.nas_space import (CONV1X1, CONV3X3, EXAMPLE_MATRIX, EXAMPLE_OPS, INPUT, MAX_EDGES, MAX_VERTICES,
                              MAXPOOL3X3, OPS, OUTPUT, Cell, prune_cell)

__all__ = ["CONV1X1", "CONV3X3", "EXAMPLE_MATRIX", "EXAMPLE_OPS", "INPUT", "MAX_EDGES", "MAX_VERTICES", "MAXPOOL3X3",
           "OPS", "OUTPUT", "Cell", "NasCellConfig", "build_nas_cell", "prune_cell", "vertex_channels"]


def vertex_channels(input_channels: int, output_channels: int,
                    matrix: Sequence[Sequence[int]] | np.ndarray) -> list[int]:
    """Output channels of each vertex of a pruned cell, as NAS-Bench-101's
    compute_vertex_channels: the cell's output channels split evenly among the vertices feeding
    the output (the first of them one more each while a remainder lasts), and every other
    interior vertex as wide as the widest vertex it feeds."""
    m = np.asarray(matrix)
    n = m.shape[0]
    channels = [0] * n
    channels[0], channels[-1] = input_channels, output_channels
    if n == 2:
        return channels
    feeding = m[1:, n - 1].sum()  # interior vertices feeding the output; the input is added, not concatenated
    share, remainder = divmod(output_channels, int(feeding))
    for v in range(1, n - 1):
        if m[v, n - 1]:
            channels[v] = share + (1 if remainder > 0 else 0)
            remainder -= 1
    for v in range(n - 3, 0, -1):
        if not m[v, n - 1]:
            channels[v] = max(channels[dst] for dst in range(v + 1, n - 1) if m[v, dst])
    return channels


@dataclass(frozen=True)
class NasCellConfig:
    """A cell (as given; pruned when built) and the network around it."""

    matrix: tuple[tuple[int, ...], ...] = EXAMPLE_MATRIX
    ops: tuple[str, ...] = EXAMPLE_OPS
    stem: int = 16  # stem channels, and the channels of the first stack
    stacks: int = 3
    cells_per_stack: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        prune_cell(self.matrix, self.ops)
        # Stored as tuples, so that configs compare and hash by value whatever they were given as.
        object.__setattr__(self, "matrix", tuple(tuple(int(v) for v in row) for row in self.matrix))
        object.__setattr__(self, "ops", tuple(self.ops))
        if self.stem < 1 or self.stacks < 1 or self.cells_per_stack < 1:
            raise ValueError(f"stem, stacks and cells_per_stack must be >= 1, "
                             f"got {self.stem}, {self.stacks}, {self.cells_per_stack}")

    @property
    def cell(self) -> Cell:
        return prune_cell(self.matrix, self.ops)


def build_nas_cell(input_shape: tuple[int, int, int], n_classes: int, config: NasCellConfig = NasCellConfig(),
                   head: str = "softmax") -> keras.Model:
    check_task(input_shape, n_classes, head)
    cell = config.cell
    keras.utils.set_random_seed(config.seed)
    x = inputs = keras.Input(input_shape, name="tiles")
    x = _conv_bn_relu(x, config.stem, 3, "stem")
    channels = config.stem
    for s in range(1, config.stacks + 1):
        if s > 1:
            x = keras.layers.MaxPool2D(2, strides=2, padding="same", name=f"stack{s}_downsample")(x)
            channels *= 2
        for c in range(1, config.cells_per_stack + 1):
            x = _cell(x, cell, channels, f"stack{s}_cell{c}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, classifier(x, n_classes, head), name="nas-cell")


def _conv_bn_relu(x, filters: int, kernel: int, name: str):
    x = keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=name)(x)
    x = batch_norm(x, f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _cell(x, cell: Cell, channels: int, name: str):
    m = np.asarray(cell.matrix)
    n = len(cell.ops)
    widths = vertex_channels(x.shape[-1], channels, m)
    tensors, concat = [x], []
    for t in range(1, n - 1):
        # Interior inputs are at least as wide as t (one wider where the split left a remainder)
        # and are cut to width, as NAS-Bench-101's truncate; the cell input is projected.
        fan_in = [tensors[src][:, :, :, :widths[t]] if tensors[src].shape[-1] > widths[t] else tensors[src]
                  for src in range(1, t) if m[src, t]]
        if m[0, t]:
            fan_in.append(_conv_bn_relu(x, widths[t], 1, f"{name}_v{t}_projection"))
        y = fan_in[0] if len(fan_in) == 1 else keras.layers.Add(name=f"{name}_v{t}_sum")(fan_in)
        if cell.ops[t] == MAXPOOL3X3:
            y = keras.layers.MaxPool2D(3, strides=1, padding="same", name=f"{name}_v{t}_maxpool3x3")(y)
        else:
            y = _conv_bn_relu(y, widths[t], 1 if cell.ops[t] == CONV1X1 else 3, f"{name}_v{t}_{cell.ops[t][:7]}")
        tensors.append(y)
        if m[t, n - 1]:
            concat.append(y)
    if not concat:  # input straight to output
        return _conv_bn_relu(x, channels, 1, f"{name}_output_projection")
    out = concat[0] if len(concat) == 1 else keras.layers.Concatenate(name=f"{name}_concat")(concat)
    if m[0, n - 1]:
        projected = _conv_bn_relu(x, channels, 1, f"{name}_output_projection")
        out = keras.layers.Add(name=f"{name}_residual")([out, projected])
    return out
