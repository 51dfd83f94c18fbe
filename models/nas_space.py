"""The NAS-Bench-101 cell space without TensorFlow (Ying et al., ICML 2019; google-research/nasbench,
lib/model_spec.py): the ops, the bounds, the README's example cell, and `prune_cell`, which checks
a cell against the benchmark's rules and drops, as its ModelSpec does, the vertices off every path
from input to output. `models.nas_cell` builds the networks; `ground.nas` samples, hashes and
trains cells, and reads this module without loading TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

INPUT, OUTPUT = "input", "output"
CONV1X1, CONV3X3, MAXPOOL3X3 = "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"
OPS = (CONV1X1, CONV3X3, MAXPOOL3X3)
# The bounds of the NAS-Bench-101 search space.
MAX_VERTICES, MAX_EDGES = 7, 9

# The example cell of the NAS-Bench-101 README.
EXAMPLE_MATRIX = (
    (0, 1, 1, 1, 0, 1, 0),
    (0, 0, 0, 0, 0, 0, 1),
    (0, 0, 0, 0, 0, 0, 1),
    (0, 0, 0, 0, 1, 0, 0),
    (0, 0, 0, 0, 0, 0, 1),
    (0, 0, 0, 0, 0, 0, 1),
    (0, 0, 0, 0, 0, 0, 0),
)
EXAMPLE_OPS = (INPUT, CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT)


@dataclass(frozen=True)
class Cell:
    """A valid, pruned cell."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]


def prune_cell(matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str]) -> Cell:
    """Check a cell against the NAS-Bench-101 rules and drop, as its ModelSpec does, the vertices
    that are not on a path from input to output. Raises ValueError naming the broken rule."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"cell matrix must be square (vertices x vertices), got shape {m.shape}")
    n = m.shape[0]
    if not 2 <= n <= MAX_VERTICES:
        raise ValueError(f"cell has {n} vertices; NAS-Bench-101 cells have 2 to {MAX_VERTICES} "
                         f"(input, up to {MAX_VERTICES - 2} operations, output)")
    if not np.isin(m, (0, 1)).all():
        raise ValueError(f"cell matrix entries must be 0 or 1, got {sorted(set(m.ravel().tolist()) - {0, 1})}")
    m = m.astype(np.int64)
    below = np.argwhere(np.tril(m))
    if len(below):
        i, j = below[0]
        raise ValueError(f"cell matrix must be strictly upper triangular (an edge i -> j needs i < j, which keeps "
                         f"the cell acyclic), but entry [{i}, {j}] is 1")
    ops = tuple(ops)
    if len(ops) != n:
        raise ValueError(f"{len(ops)} ops for a {n}-vertex matrix; give one op per vertex")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise ValueError(f"ops must start with {INPUT!r} and end with {OUTPUT!r}, got {ops[0]!r} ... {ops[-1]!r}")
    for v, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            raise ValueError(f"unknown op {op!r} at vertex {v}; choose from {', '.join(OPS)}")
    keep = _reachable(m, 0) & _reachable(m.T, n - 1)
    if n - 1 not in keep:
        raise ValueError("the cell has no path from input to output, so it computes nothing; connect them")
    index = sorted(keep)
    pruned = m[np.ix_(index, index)]
    if pruned.sum() > MAX_EDGES:
        raise ValueError(f"the cell has {int(pruned.sum())} edges; NAS-Bench-101 allows at most {MAX_EDGES}")
    return Cell(tuple(tuple(int(v) for v in row) for row in pruned), tuple(ops[v] for v in index))


def _reachable(adjacency: np.ndarray, start: int) -> set[int]:
    seen, frontier = {start}, [start]
    while frontier:
        for v in np.flatnonzero(adjacency[frontier.pop()]):
            if int(v) not in seen:
                seen.add(int(v))
                frontier.append(int(v))
    return seen
