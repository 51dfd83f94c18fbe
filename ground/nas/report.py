"""The landscape report of a NAS database: `landscape.md` with every measure beside the figures
Traoré, Camero and Zhu report for NAS-Bench-101 on CIFAR-10 and on So2Sat LCZ42 (arXiv
2111.01584), and three plots: the fitness histogram, fitness against distance to the best cell,
and the random walks' autocorrelation."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ground.downlink.render import save_png  # noqa: E402
from ground.nas.landscape import Analysis  # noqa: E402
from onboard.files import ensure_writable_dir, write_verified  # noqa: E402

# Traoré et al.'s figures (see ../shared/ANCHORS.md); None where the anchors give none.
PUBLISHED = {
    "mean": (0.835, 0.822), "std": (0.091, 0.099), "acf1": (0.517, 0.572), "length": (1.93, 1.75),
}


def write_report(a: Analysis, db: Path, source: str, out: Path) -> list[Path]:
    """landscape.md and its plots in `out`; their paths."""
    ensure_writable_dir(out)
    plots = [_histogram(a, out / "fitness-histogram.png"), _fdc(a, out / "fitness-distance.png"),
             _acf(a, out / "autocorrelation.png")]
    report = write_verified(out / "landscape.md", markdown(a, db, source, [p.name for p in plots]).encode())
    return [report, *plots]


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def markdown(a: Analysis, db: Path, source: str, plots: list[str]) -> str:
    land = a.landscape
    n = len(land.hashes)
    cif, lcz = "CIFAR-10 (Traoré et al.)", "So2Sat LCZ42 (Traoré et al.)"
    rows = [
        ("cells", f"{n}", "423,624 (all of NAS-Bench-101)", "a sample, trained for the paper"),
        ("fitness mean", _f(a.mean), *map(_f, (PUBLISHED["mean"]))),
        ("fitness std", _f(a.std), *map(_f, (PUBLISHED["std"]))),
        ("seed noise: mean std between a cell's repeats", _f(a.seed_noise), "—", "—"),
        ("correlation between repeat 0 and repeat 1 across cells", _f(a.repeat_correlation), "—", "—"),
        ("FDC to the best cell (edit distance)", _f(a.fdc), "—", "—"),
        ("ACF(1) of random walks", _f(a.acf[1]), *map(_f, PUBLISHED["acf1"])),
        ("correlation length −1/ln ACF(1)", _f(a.correlation_length, 2) if a.acf[1] > 0 else "none (ACF(1) ≤ 0)",
         *map(_f, PUBLISHED["length"], [2, 2])),
        ("mean over walks of −1/ln ACF_w(1) (0 where ACF_w(1) ≤ 0)", _f(a.walk_lengths, 2), "—", "—"),
        (f"local optima by hill climbing ({a.starts} starts)", f"{len(a.optima)}", "1× (reference)",
         "≈ 1.75× CIFAR-10's"),
        ("cells without a better neighbour (exact)", f"{a.optima_exact} of {a.connected}", "—", "—"),
        *[(f"persistence: {k}", _f(v, 2), "—", "—") for k, v in a.persistence.items()],
        (f"neutrality (\\|Δf\\| ≤ {a.tolerance:.4f})", _f(a.neutrality, 2), "—", "—"),
    ]
    table = ["| measure | this database | " + cif + " | " + lcz + " |", "|---|---|---|---|",
             *[f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]]
    best = land.cells[a.best]
    degree = [len(x) for x in land.neighbours]
    lines = [
        f"# Fitness landscape of {db}", "",
        f"Fitness: {land.metric} accuracy after {land.epochs} epochs, the mean of "
        f"{land.repeats.shape[1]} repeat(s), measured on {land.evaluated} patches (one patch is "
        f"{1 / max(1, land.evaluated):.4f}), from `{source}`.",
        *(["", "**The patches are SYNTHETIC: these figures show the analysis works, not how NAS behaves on real "
           "imagery.**"] if source.startswith("synthetic") else []), "",
        f"Neighbourhood: one edge flipped, one op changed, or one vertex added on a new path, between cells of "
        f"the database (taken both ways). {a.links} neighbour pair{'s' * (a.links != 1)} found among {n} cells; {a.connected} cells have "
        f"at least one neighbour (most {max(degree)}, mean {np.mean(degree):.2f}); {n - a.connected} have none.",
        f"Random walks: {len(a.walks)} of {a.steps} steps (asked {a.walks_asked[0]} of {a.walks_asked[1]}; "
        "scaled to the database: at most one walk per cell with neighbours, five steps per such cell).",
        f"Hill climbing: best improvement from {a.starts} distinct starts among the cells with neighbours.", "",
        *table, "",
        f"Best cell: `{land.hashes[a.best]}`, fitness {_f(float(land.fitness[a.best]), 4)}, "
        f"{len(best.ops)} vertices, ops {', '.join(best.ops[1:-1]) or 'none'}.", "",
        "What differs from Traoré et al.: they analyse all of NAS-Bench-101 on CIFAR-10 (trained 4 to 108 "
        "epochs on TPUs; fitness the test accuracy at 36 epochs in their local search) and a sample of it on "
        "So2Sat LCZ42, with the neighbourhood of one bit flipped in their 136-bit encoding; here the cells are "
        "what the database holds, trained on a CPU, and neighbours must have been trained too. Their correlation "
        "lengths are not −1/ln of the ACF(1) they report (that gives 1.52 and 1.79), so they are likely "
        "averaged over walks; both readings are given.", "",
        *[f"![{p}]({p})" for p in plots], "",
    ]
    return "\n".join(lines)


def _histogram(a: Analysis, path: Path) -> Path:
    land = a.landscape
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(land.fitness, bins=min(30, max(5, len(land.fitness) // 3)), color="#1f5fbf", alpha=0.85)
    ax.axvline(a.mean, color="#d62728", lw=1.5, label=f"mean {a.mean:.3f} (std {a.std:.3f})")
    ax.set_xlabel(f"{land.metric} accuracy after {land.epochs} epochs (mean of repeats)")
    ax.set_ylabel("cells")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Fitness of {len(land.fitness)} cells")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def _fdc(a: Analysis, path: Path) -> Path:
    land = a.landscape
    fig, ax = plt.subplots(figsize=(6, 4))
    rng = np.random.default_rng(0)
    others = np.arange(len(a.distance)) != a.best
    jitter = rng.uniform(-0.15, 0.15, int(others.sum()))  # distances are integers
    ax.scatter(a.distance[others] + jitter, land.fitness[others], s=16, color="#1f5fbf", alpha=0.7,
               label="other cells (jittered sideways)")
    ax.scatter([0], [land.fitness[a.best]], s=60, marker="*", color="#d62728", label="best cell", zorder=3)
    ax.set_xlabel("edit distance to the best cell")
    ax.set_ylabel(f"{land.metric} accuracy")
    ax.set_title(f"Fitness against distance: FDC {_f(a.fdc)}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def _acf(a: Analysis, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    lags = np.arange(len(a.acf))
    ax.plot(lags, a.acf, marker="o", color="#1f5fbf", label=f"this database ({len(a.walks)} walks of {a.steps} steps)")
    ax.scatter([1], [PUBLISHED["acf1"][0]], marker="s", color="#2ca02c", label="CIFAR-10, Traoré et al.", zorder=3)
    ax.scatter([1], [PUBLISHED["acf1"][1]], marker="^", color="#ff7f0e", label="So2Sat LCZ42, Traoré et al.", zorder=3)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("lag (steps)")
    ax.set_ylabel("autocorrelation of fitness")
    ax.set_title("Random-walk autocorrelation")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


__all__ = ["PUBLISHED", "markdown", "write_report"]
