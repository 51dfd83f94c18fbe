"""Choosing the cells a NAS database trains, seeded, each cell once by its hash.

- `uniform`: every cell of the space equally likely. A vertex count is drawn in proportion to its
  number of spellings (upper-triangular full-DAG matrices with at most 9 edges, times the op
  labellings), then one spelling uniformly, and the cell is kept with probability one over its
  number of spellings (`space.representations`): each of the 423,624 cells then comes out with
  the same probability, whatever its size or symmetry. About one draw in three is kept.
- `lhs`: a Latin hypercube (scipy.stats.qmc) over the 26-number encoding of a 7-vertex spec, 21
  edge bits (present where the coordinate is below `density`) and 5 ops (the coordinate's third);
  each spec is pruned, and one that is outside the space or repeats a cell is passed over for
  the next point, from a fresh hypercube when one runs out. Each coordinate is stratified over
  the hypercube; what is kept is not uniform over cells (small cells have many spellings).
- `walk`: random walks of `length` cells, each step to a uniformly chosen neighbour (one edge,
  one op, or one vertex on a new path: `space.neighbours`), from uniform starts. A landscape
  needs neighbours in the database, and a uniform sample of a few hundred cells out of 423,624
  has almost none.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.stats import qmc

from ground.errors import NasError
from ground.nas.space import cell_hash, full_dag_masks, matrix_of, neighbours, representations, spellings
from models.nas_space import INPUT, MAX_VERTICES, OPS, OUTPUT, Cell, prune_cell

Method = Literal["uniform", "lhs", "walk"]
METHODS = ("uniform", "lhs", "walk")
EDGE_BITS = MAX_VERTICES * (MAX_VERTICES - 1) // 2


def sample(method: Method, n: int, seed: int, *, density: float = 0.3, length: int = 10,
           exclude: set[str] = frozenset()) -> list[Cell]:
    """`n` distinct cells, none of whose hashes is in `exclude`, by `method` (see the module)."""
    if n < 1:
        raise NasError(f"--n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    draw = {"uniform": lambda: _uniform(rng), "lhs": _lhs(rng, density), "walk": _walks(rng, length)}[method]
    seen, cells = set(exclude), []
    attempts = 0
    while len(cells) < n:
        attempts += 1
        if attempts > 1000 * n + 10_000:
            raise NasError(f"{method} sampling found only {len(cells)} new cells of the {n} asked for")
        cell = draw()
        if cell is None:
            continue
        key = cell_hash(cell)
        if key not in seen:
            seen.add(key)
            cells.append(cell)
    return cells


def uniform_cell(rng: np.random.Generator, vertices: tuple[int, ...] = tuple(range(2, MAX_VERTICES + 1))) -> Cell:
    """One cell drawn uniformly from the cells with a vertex count in `vertices`."""
    while (cell := _uniform(rng, vertices)) is None:
        pass
    return cell


def _uniform(rng: np.random.Generator, vertices: tuple[int, ...] = tuple(range(2, MAX_VERTICES + 1))) -> Cell | None:
    weights = np.array([spellings(v) for v in vertices], np.float64)
    n = int(rng.choice(vertices, p=weights / weights.sum()))
    masks = full_dag_masks(n)
    matrix = matrix_of(int(masks[rng.integers(len(masks))]), n)
    ops = tuple(OPS[i] for i in rng.integers(len(OPS), size=n - 2))
    cell = Cell(tuple(tuple(int(x) for x in row) for row in matrix), (INPUT, *ops, OUTPUT))
    return cell if rng.random() * representations(cell) < 1.0 else None


def _lhs(rng: np.random.Generator, density: float):
    if not 0.0 < density < 1.0:
        raise NasError(f"--density must lie strictly between 0 and 1, got {density}")
    hypercube = qmc.LatinHypercube(d=EDGE_BITS + MAX_VERTICES - 2, rng=rng)
    rows, cols = np.triu_indices(MAX_VERTICES, 1)
    points: list[np.ndarray] = []

    def draw() -> Cell | None:
        if not points:
            points.extend(hypercube.random(64))
        u = points.pop(0)
        matrix = np.zeros((MAX_VERTICES, MAX_VERTICES), np.int64)
        matrix[rows, cols] = u[:EDGE_BITS] < density
        ops = tuple(OPS[min(int(x * len(OPS)), len(OPS) - 1)] for x in u[EDGE_BITS:])
        try:
            cell = prune_cell(matrix, (INPUT, *ops, OUTPUT))
        except ValueError:
            return None
        return cell

    return draw


def _walks(rng: np.random.Generator, length: int):
    if length < 1:
        raise NasError(f"--length must be at least 1, got {length}")
    state: dict[str, object] = {"cell": None, "left": 0}

    def draw() -> Cell:
        if not state["left"]:
            state["cell"], state["left"] = uniform_cell(rng), length
        else:
            options = neighbours(state["cell"])
            state["cell"] = options[rng.integers(len(options))]
        state["left"] -= 1
        return state["cell"]

    return draw


__all__ = ["EDGE_BITS", "METHODS", "Method", "sample", "uniform_cell"]
