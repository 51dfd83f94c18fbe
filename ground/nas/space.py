"""The NAS-Bench-101 cell space as a set of graphs: hashing, neighbours, distances, counting.

- `cell_hash` is NAS-Bench-101's isomorphism-invariant fingerprint (google-research/nasbench,
  lib/graph_util.py `hash_module`, reached through ModelSpec.hash_spec): each vertex starts from the
  md5 of the text of its (out-degree, in-degree, label) triple, labels being -1 for the input, -2
  for the output and the op's index in the benchmark's `available_ops` order (conv3x3, conv1x1,
  maxpool3x3) otherwise; |V| times, each vertex becomes the md5 of its in-neighbours' sorted hashes,
  `|`, its out-neighbours' sorted hashes, `|`, its own; the cell's hash is the md5 of the text of
  the sorted list. Isomorphic cells share one hash, and a cell's hash here is its hash in
  NAS-Bench-101 (the README's example cell is 28cfc7874f6d200472e1a9dcd8650aa0).
- `neighbours` are the cells one edit away: one edge added or removed (then pruned), one
  interior op changed, or one vertex added on a new path between two vertices (the edit that
  undoes the removal of a vertex's only in-edge).
- `edit_distance` is the graph edit distance in those edits: the fewest op changes (a vertex
  present in one cell and not the other counts as one) and edge flips over every matching of
  the two cells' interior vertices.
- `representations` counts the upper-triangular (matrix, ops) pairs that spell a cell (its
  topological orders over its automorphisms), which the uniform sampler divides out, and
  `count_cells` counts the space by Burnside's lemma: 423,624 cells, NAS-Bench-101's count.

Pure numpy: sampling and the landscape never load TensorFlow."""

from __future__ import annotations

import functools
import hashlib
import itertools
from typing import Sequence

import numpy as np

from ground.errors import InvalidCellError
from models.nas_space import CONV1X1, CONV3X3, INPUT, MAX_EDGES, MAX_VERTICES, MAXPOOL3X3, OPS, OUTPUT, Cell, prune_cell

# NAS-Bench-101's `available_ops` order, whose indices label the vertices in its hash.
HASH_OPS = (CONV3X3, CONV1X1, MAXPOOL3X3)
INTERIOR = MAX_VERTICES - 2
# Short names the command line also takes.
ALIASES = {"conv3x3": CONV3X3, "conv1x1": CONV1X1, "maxpool": MAXPOOL3X3, "maxpool3x3": MAXPOOL3X3,
           CONV3X3: CONV3X3, CONV1X1: CONV1X1, INPUT: INPUT, OUTPUT: OUTPUT}


def as_cell(matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str]) -> Cell:
    """The pruned cell of `matrix` and `ops`, or InvalidCellError naming the broken rule."""
    try:
        return prune_cell(matrix, ops)
    except ValueError as exc:
        raise InvalidCellError(f"not a NAS-Bench-101 cell: {exc}") from None


def is_valid(matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str]) -> bool:
    """Whether `matrix` and `ops` prune to a cell of the space (NASBench.is_valid)."""
    try:
        prune_cell(matrix, ops)
    except ValueError:
        return False
    return True


def parse_ops(text: str) -> tuple[str, ...]:
    """`input,conv3x3,maxpool3x3,output` (full or short names) as the space's op names."""
    names = tuple(t.strip() for t in text.split(","))
    unknown = [n for n in names if n not in ALIASES]
    if unknown:
        raise InvalidCellError(f"--ops: unknown op {unknown[0]!r}; use input, output and "
                               f"{', '.join(OPS)} (or conv1x1, conv3x3, maxpool)")
    return tuple(ALIASES[n] for n in names)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def cell_hash(cell: Cell) -> str:
    """NAS-Bench-101's hash of a pruned cell (see the module's docstring)."""
    m = np.asarray(cell.matrix, dtype=np.int64)
    n = len(cell.ops)
    labels = [-1] + [HASH_OPS.index(op) for op in cell.ops[1:-1]] + [-2]
    out_degree, in_degree = m.sum(axis=1).tolist(), m.sum(axis=0).tolist()
    hashes = [_md5(str((out_degree[v], in_degree[v], labels[v]))) for v in range(n)]
    sources = [np.flatnonzero(m[:, v]).tolist() for v in range(n)]
    targets = [np.flatnonzero(m[v]).tolist() for v in range(n)]
    for _ in range(n):
        hashes = [_md5("".join(sorted(hashes[w] for w in sources[v])) + "|"
                       + "".join(sorted(hashes[w] for w in targets[v])) + "|" + hashes[v]) for v in range(n)]
    return _md5(str(sorted(hashes)))


def edges(cell: Cell) -> int:
    return int(np.sum(cell.matrix))


# --- neighbours ---------------------------------------------------------------------------------

def neighbours(cell: Cell) -> list[Cell]:
    """The distinct cells one edit from `cell` (an edge flipped, an op changed, a vertex added
    on a new path), each once, `cell` itself excluded."""
    m = np.asarray(cell.matrix, dtype=np.int64)
    n = len(cell.ops)
    found: dict[str, Cell] = {}
    own = cell_hash(cell)

    def keep(candidate: Cell) -> None:
        key = cell_hash(candidate)
        if key != own:
            found.setdefault(key, candidate)

    for i, j in zip(*np.triu_indices(n, 1)):
        flipped = m.copy()
        flipped[i, j] ^= 1
        try:
            keep(prune_cell(flipped, cell.ops))
        except ValueError:
            pass  # disconnected or over the edge limit
    for v in range(1, n - 1):
        for op in OPS:
            if op != cell.ops[v]:
                keep(Cell(cell.matrix, cell.ops[:v] + (op,) + cell.ops[v + 1:]))
    if n < MAX_VERTICES and edges(cell) + 2 <= MAX_EDGES:
        for u, w in zip(*np.triu_indices(n, 1)):
            for op in OPS:
                keep(_with_vertex(m, cell.ops, int(u), int(w), op))
    return list(found.values())


def _with_vertex(m: np.ndarray, ops: tuple[str, ...], u: int, w: int, op: str) -> Cell:
    """`m` with a new vertex of `op` inserted just before vertex `w`, fed by `u`, feeding `w`."""
    grown = np.insert(np.insert(m, w, 0, axis=0), w, 0, axis=1)
    grown[u, w] = grown[w, w + 1] = 1
    return Cell(tuple(tuple(int(x) for x in row) for row in grown), ops[:w] + (op,) + ops[w:])


# --- distances ----------------------------------------------------------------------------------

@functools.cache
def _interior_matchings() -> np.ndarray:
    """Every permutation of the padded interior vertices 1..5, with input 0 and output 6 fixed."""
    perms = np.array(list(itertools.permutations(range(1, INTERIOR + 1))), dtype=np.int64)
    return np.concatenate([np.zeros((len(perms), 1), np.int64), perms,
                           np.full((len(perms), 1), MAX_VERTICES - 1, np.int64)], axis=1)


def padded(cell: Cell) -> tuple[np.ndarray, np.ndarray]:
    """The cell in 7 vertices (absent interior vertices have no edges and op -1, the output is
    last) and its op codes."""
    n = len(cell.ops)
    index = list(range(n - 1)) + [MAX_VERTICES - 1]
    m = np.zeros((MAX_VERTICES, MAX_VERTICES), np.int8)
    m[np.ix_(index, index)] = np.asarray(cell.matrix, np.int8)
    codes = np.full(MAX_VERTICES, -1, np.int8)
    codes[0], codes[-1] = -2, -3
    codes[1:n - 1] = [OPS.index(op) for op in cell.ops[1:-1]]
    return m, codes


def edit_distance(a: Cell, b: Cell) -> int:
    """The fewest op changes and edge flips that turn `a` into `b` (0 for isomorphic cells)."""
    ma, ca = padded(a)
    mb, cb = padded(b)
    p = _interior_matchings()
    edge_cost = (mb[p[:, :, None], p[:, None, :]] != ma).sum(axis=(1, 2))
    op_cost = (cb[p] != ca).sum(axis=1)
    return int((edge_cost + op_cost).min())


# --- counting -----------------------------------------------------------------------------------

@functools.cache
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


@functools.cache
def full_dag_masks(n: int) -> np.ndarray:
    """Every upper-triangular n-vertex matrix (as a bit mask over `np.triu_indices(n, 1)`)
    whose vertices all lie on a path from input to output, with at most 9 edges: the pruned
    cells' matrices, each labelling of one."""
    rows, cols = _pairs(n)
    masks = np.arange(1 << len(rows), dtype=np.int64)
    ok = np.bitwise_count(masks) <= MAX_EDGES
    for v in range(n):
        if v < n - 1:  # an out-edge
            ok &= (masks & int(sum(1 << k for k in np.flatnonzero(rows == v)))) != 0
        if v > 0:  # an in-edge
            ok &= (masks & int(sum(1 << k for k in np.flatnonzero(cols == v)))) != 0
    return masks[ok]


def matrix_of(mask: int, n: int) -> np.ndarray:
    rows, cols = _pairs(n)
    m = np.zeros((n, n), np.int64)
    m[rows, cols] = (int(mask) >> np.arange(len(rows))) & 1
    return m


@functools.cache
def _orders(n: int) -> np.ndarray:
    """Every ordering of an n-vertex cell's interior vertices, input first and output last."""
    perms = list(itertools.permutations(range(1, n - 1)))
    return np.array([(0, *p, n - 1) for p in perms], dtype=np.int64)


def representations(cell: Cell) -> int:
    """How many upper-triangular (matrix, ops) pairs spell `cell`: its topological orders over
    its automorphisms."""
    m = np.asarray(cell.matrix, np.int64)
    codes = np.array([OPS.index(op) if op in OPS else -1 for op in cell.ops])
    p = _orders(len(cell.ops))
    permuted = m[p[:, :, None], p[:, None, :]]
    topological = ~np.tril(permuted).any(axis=(1, 2))
    automorphic = (permuted == m).all(axis=(1, 2)) & (codes[p] == codes).all(axis=1)
    return int(topological.sum()) // int(automorphic.sum())


def count_cells(vertices: int | None = None, chunk: int = 4096) -> int:
    """The number of distinct cells (isomorphism classes) with `vertices` vertices, or in the
    whole space, by Burnside's lemma over each full-DAG matrix: sum over matrices of (sum over
    the matrix's automorphisms g of 3^(cycles of g on the interior)) / (its topological orders)."""
    if vertices is None:
        return sum(count_cells(n, chunk) for n in range(2, MAX_VERTICES + 1))
    n = vertices
    if n == 2:
        return 1
    p = _orders(n)
    cycles = np.array([_cycles(q[1:-1] - 1) for q in p])
    weight = 3 ** cycles
    total = 0.0
    masks = full_dag_masks(n)
    for start in range(0, len(masks), chunk):
        ms = np.stack([matrix_of(k, n) for k in masks[start:start + chunk]])  # (M, n, n)
        permuted = ms[:, p[:, :, None], p[:, None, :]]  # (M, P, n, n)
        topological = ~np.tril(permuted).any(axis=(2, 3))
        automorphic = (permuted == ms[:, None]).all(axis=(2, 3))
        total += float(((automorphic * weight).sum(axis=1) / topological.sum(axis=1)).sum())
    return int(round(total))


def _cycles(perm: np.ndarray) -> int:
    seen, count = set(), 0
    for start in range(len(perm)):
        if start not in seen:
            count += 1
            v = start
            while v not in seen:
                seen.add(v)
                v = int(perm[v])
    return count


def spellings(n: int) -> int:
    """The number of upper-triangular (matrix, ops) pairs of pruned n-vertex cells."""
    return len(full_dag_masks(n)) * 3 ** (n - 2)


__all__ = ["ALIASES", "HASH_OPS", "as_cell", "cell_hash", "count_cells", "edit_distance", "full_dag_masks",
           "is_valid", "matrix_of", "neighbours", "padded", "parse_ops", "representations", "spellings"]
