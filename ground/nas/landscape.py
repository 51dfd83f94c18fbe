"""Fitness landscape analysis of a NAS database, after Traoré, Camero and Zhu ("Fitness Landscape
Footprint: A Framework to Compare Neural Architecture Search Problems", arXiv 2111.01584; code
kalifou/fitness_landscape_analysis_NAS).

A landscape is a fitness per point and a neighbourhood. The measures below take any (they are
tested on landscapes whose answers are known); `cell_landscape` makes the one of a database: a
cell's fitness is its accuracy (test or validation) at one budget, averaged over its repeats, and
its neighbours are the cells *of the database* one edit away (`space.neighbours`: one edge, one
op, or one vertex on a new path), taken both ways so the relation is symmetric. Distances are edit
distances (`space.edit_distance`).

- fitness distribution: mean and standard deviation over the cells;
- fitness-distance correlation (FDC): Pearson's r between fitness and the distance to the best
  cell (-1: fitness rises steadily towards the best cell; 0: distance says nothing);
- random walks: W walks of S steps, each step to a uniformly chosen neighbour, from uniformly
  chosen cells that have one; ACF(s) pools the walks' products of deviations from the walks' mean,
  over their variance; the correlation length is -1/ln ACF(1) (none when ACF(1) <= 0), and is also
  given as the mean over walks of each walk's own (0 for a walk with ACF(1) <= 0);
- local optima: best-improvement hill climbing (to the best strictly better neighbour, until
  none is better) from distinct starts; the distinct ends are the local optima found. The cells
  without a better neighbour are also counted exactly, since a database is small;
- persistence of the top 25%: the share of the cells in the top quarter by one fitness (the
  smallest budget; the first repeat) that are in the top quarter by another (the largest budget;
  the second repeat);
- neutrality: over the cells with neighbours, the mean share of neighbours whose fitness differs
  by at most a tolerance (by default the seed noise: the mean standard deviation between repeats).

With two repeats or more, the report also says how much of the landscape is the cells' and how
much the seeds': the seed noise, and the correlation across cells between two repeats' fitness
(near 1: repeats rank the cells alike; near 0: the differences between cells are seed noise, and
so are the measures above).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ground.errors import NasError
from ground.nas.space import cell_hash, edit_distance, neighbours as cell_neighbours
from models.nas_space import Cell

Metric = Literal["test", "validation"]


# --- measures on any landscape ------------------------------------------------------------------

def fitness_distance_correlation(fitness: np.ndarray, distance: np.ndarray) -> float:
    if len(fitness) < 2 or np.std(fitness) == 0 or np.std(distance) == 0:
        return float("nan")
    return float(np.corrcoef(fitness, distance)[0, 1])


def random_walks(neighbours: list[np.ndarray], walks: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`walks` walks of `steps` steps (steps + 1 points) from distinct uniformly chosen points that
    have a neighbour (fewer walks when fewer such points)."""
    starts = np.flatnonzero([len(n) > 0 for n in neighbours])
    if len(starts) == 0:
        return []
    paths = []
    for start in rng.permutation(starts)[:walks]:
        path = [int(start)]
        for _ in range(steps):
            options = neighbours[path[-1]]
            path.append(int(options[rng.integers(len(options))]))
        paths.append(np.array(path))
    return paths


def autocorrelation(fitness: np.ndarray, walks: list[np.ndarray], max_lag: int) -> np.ndarray:
    """ACF(0..max_lag) of the fitness along the walks, pooled over them."""
    if not walks:
        return np.full(max_lag + 1, np.nan)
    series = [fitness[w] for w in walks]
    values = np.concatenate(series)
    mean, var = values.mean(), values.var()
    if var == 0:
        return np.full(max_lag + 1, np.nan)
    acf = []
    for lag in range(max_lag + 1):
        products = [(s[:len(s) - lag] - mean) * (s[lag:] - mean) for s in series if len(s) > lag]
        acf.append(float(np.concatenate(products).mean() / var) if products else np.nan)
    return np.array(acf)


def correlation_length(acf1: float) -> float:
    """-1/ln ACF(1): the steps over which fitness stays correlated; none (nan) when ACF(1) <= 0."""
    if not np.isfinite(acf1) or acf1 <= 0:
        return float("nan")
    return float("inf") if acf1 >= 1 else float(-1.0 / np.log(acf1))


def hill_climb(fitness: np.ndarray, neighbours: list[np.ndarray], start: int) -> int:
    """Best-improvement hill climbing from `start`: the local optimum it ends on."""
    current = start
    while len(neighbours[current]):
        best = neighbours[current][np.argmax(fitness[neighbours[current]])]
        if fitness[best] <= fitness[current]:
            break
        current = int(best)
    return current


def local_optima(fitness: np.ndarray, neighbours: list[np.ndarray], starts: int,
                 rng: np.random.Generator) -> tuple[set[int], int, int]:
    """The local optima hill climbing reaches from `starts` distinct points with neighbours (all
    of them when fewer), how many starts it used, and the exact number of points with neighbours
    none of which is strictly better."""
    connected = np.flatnonzero([len(n) > 0 for n in neighbours])
    chosen = rng.permutation(connected)[:starts]
    ends = {hill_climb(fitness, neighbours, int(s)) for s in chosen}
    exact = sum(1 for v in connected if fitness[neighbours[v]].max() <= fitness[v])
    return ends, len(chosen), exact


def persistence(first: np.ndarray, second: np.ndarray, top: float = 0.25) -> float:
    """The share of the top `top` by `first` that is also in the top `top` by `second`."""
    a = first >= np.quantile(first, 1 - top)
    b = second >= np.quantile(second, 1 - top)
    return float((a & b).sum() / a.sum()) if a.any() else float("nan")


def neutrality(fitness: np.ndarray, neighbours: list[np.ndarray], tolerance: float) -> float:
    shares = [float((np.abs(fitness[n] - fitness[v]) <= tolerance).mean()) for v, n in enumerate(neighbours) if len(n)]
    return float(np.mean(shares)) if shares else float("nan")


# --- a database's landscape ---------------------------------------------------------------------

@dataclass
class CellLandscape:
    """The landscape of a database at one budget."""

    hashes: list[str]
    cells: list[Cell]
    fitness: np.ndarray  # mean over repeats
    repeats: np.ndarray  # cells x repeats
    by_budget: dict[int, np.ndarray]  # mean over repeats at each budget
    neighbours: list[np.ndarray]
    epochs: int
    metric: Metric
    evaluated: int  # samples the metric was measured on (its resolution is one over it)


def cell_landscape(db, epochs: int | None = None, metric: Metric = "test") -> CellLandscape:
    """The landscape of NasDatabase `db` at `epochs` (default: its largest budget)."""
    epochs = max(db.valid_epochs) if epochs is None else epochs
    if epochs not in db.valid_epochs:
        raise NasError(f"--epochs {epochs}: {db.path} was trained for {', '.join(map(str, db.valid_epochs))} epochs")
    if len(db) < 2:
        raise NasError(f"{db.path} holds {len(db)} trained cell(s); a landscape needs at least 2")
    key = f"{metric}_accuracy"
    hashes = sorted(db.hash_iterator())
    cells, repeats, by_budget = [], [], {b: [] for b in db.valid_epochs}
    for h in hashes:
        fixed, computed = db.get_metrics_from_hash(h)
        cells.append(Cell(tuple(tuple(int(x) for x in row) for row in fixed["module_adjacency"]),
                          tuple(fixed["module_operations"])))
        repeats.append([r[key] for r in computed[epochs]])
        for b in by_budget:
            by_budget[b].append(np.mean([r[key] for r in computed[b]]))
    index = {h: i for i, h in enumerate(hashes)}
    links: list[set[int]] = [set() for _ in hashes]
    for i, cell in enumerate(cells):
        for other in cell_neighbours(cell):
            j = index.get(cell_hash(other))
            if j is not None:
                links[i].add(j)
                links[j].add(i)
    split = db.setup.data.split
    return CellLandscape(hashes=hashes, cells=cells, fitness=np.array(repeats).mean(axis=1), repeats=np.array(repeats),
                         by_budget={b: np.array(v) for b, v in by_budget.items()},
                         neighbours=[np.array(sorted(s), dtype=np.int64) for s in links], epochs=epochs,
                         metric=metric, evaluated=split[2] if metric == "test" else split[1])


@dataclass
class Analysis:
    """Every measure of one landscape, and how it was taken."""

    landscape: CellLandscape
    mean: float
    std: float
    best: int
    distance: np.ndarray
    fdc: float
    walks: list[np.ndarray]
    walks_asked: tuple[int, int]
    steps: int
    acf: np.ndarray
    correlation_length: float
    walk_lengths: float  # mean over walks of -1/ln ACF_w(1), 0 where ACF_w(1) <= 0
    optima: set[int]
    starts: int
    optima_exact: int
    persistence: dict[str, float] = field(default_factory=dict)
    neutrality: float = float("nan")
    tolerance: float = float("nan")
    seed_noise: float = float("nan")  # mean over cells of the std between repeats
    repeat_correlation: float = float("nan")  # across cells, between repeat 0 and repeat 1

    @property
    def connected(self) -> int:
        return sum(1 for n in self.landscape.neighbours if len(n))

    @property
    def links(self) -> int:
        return sum(len(n) for n in self.landscape.neighbours) // 2


def analyse(land: CellLandscape, walks: int = 30, steps: int = 100, starts: int = 200, seed: int = 0,
            tolerance: float | None = None, max_lag: int = 10) -> Analysis:
    """Every measure of `land`. Walks are scaled to the database: at most one per cell that has
    neighbours, and at most five steps per such cell."""
    rng = np.random.default_rng(seed)
    f = land.fitness
    best = int(np.argmax(f))
    distance = np.array([edit_distance(c, land.cells[best]) for c in land.cells], np.float64)
    connected = sum(1 for n in land.neighbours if len(n))
    n_walks, n_steps = min(walks, connected), min(steps, 5 * connected)
    paths = random_walks(land.neighbours, n_walks, n_steps, rng)
    acf = autocorrelation(f, paths, max_lag)
    # Per walk: its own ACF(1) about its own mean; no correlation (ACF(1) <= 0) is a length of 0, and
    # a walk along which fitness never changes has none.
    per_walk = [0.0 if r <= 0 else correlation_length(r)
                for r in (autocorrelation(f, [p], 1)[1] for p in paths) if np.isfinite(r)]
    per_walk = [x for x in per_walk if np.isfinite(x)]
    optima, used, exact = local_optima(f, land.neighbours, starts, rng)
    several = land.repeats.shape[1] > 1
    noise = float(land.repeats.std(axis=1).mean()) if several else float("nan")
    if tolerance is None:
        tolerance = noise if several else 1.0 / max(1, land.evaluated)
    kept = {}
    budgets = sorted(land.by_budget)
    if len(budgets) > 1:
        kept[f"top 25% at {_epochs(budgets[0])}, still top 25% at {budgets[-1]}"] = persistence(
            land.by_budget[budgets[0]], land.by_budget[budgets[-1]])
    if land.repeats.shape[1] > 1:
        kept[f"top 25% by repeat 0, still top 25% by repeat 1 ({_epochs(land.epochs)})"] = persistence(
            land.repeats[:, 0], land.repeats[:, 1])
    return Analysis(landscape=land, mean=float(f.mean()), std=float(f.std()), best=best, distance=distance,
                    fdc=fitness_distance_correlation(f, distance), walks=paths, walks_asked=(walks, steps),
                    steps=n_steps, acf=acf, correlation_length=correlation_length(acf[1]),
                    walk_lengths=float(np.mean(per_walk)) if per_walk else float("nan"), optima=optima, starts=used,
                    optima_exact=exact, persistence=kept, neutrality=neutrality(f, land.neighbours, tolerance),
                    tolerance=tolerance, seed_noise=noise,
                    repeat_correlation=fitness_distance_correlation(land.repeats[:, 0], land.repeats[:, 1])
                    if several else float("nan"))


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' * (n != 1)}"


__all__ = ["Analysis", "CellLandscape", "analyse", "autocorrelation", "cell_landscape", "correlation_length",
           "fitness_distance_correlation", "hill_climb", "local_optima", "neutrality", "persistence", "random_walks"]
