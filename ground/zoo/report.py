"""`orbitlite ground zoo report`: what a zoo says, in Markdown and PNG, from its index.

- the accuracy distribution per hyperparameter (every axis the zoo varies);
- each twin's accuracy against its dense model's, per form (magnitude and variational dropout
  at each sparsity), and how well the dense accuracy predicts the twin's (Pearson and Spearman
  correlation across members, as the sparsified model zoos paper reports);
- size gzipped and host latency against accuracy for every model, with the Pareto front.
All figures are the int8 models' (what flies), measured on the test split."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from ground.downlink.render import pareto, save_png  # noqa: E402
from ground.errors import ZooError  # noqa: E402
from ground.zoo.grid import MODEL_AXES  # noqa: E402
from ground.zoo.index import Zoo  # noqa: E402
from onboard.files import write_verified  # noqa: E402

AXES = ("architecture", *MODEL_AXES, "optimizer", "learning_rate", "weight_decay", "batch_size", "epochs", "seed")


def write_report(zoo: Zoo, out: Path) -> list[Path]:
    rows = zoo.table.to_pylist()
    if not rows:
        raise ZooError("the zoo has no member to report on (none finished, or all diverged)")
    dense = {r["member"]: r for r in rows if r["form"] == "dense"}
    forms = sorted({r["form"] for r in rows} - {"dense"}, key=_form_order)
    metric = rows[0]["metric"]
    written = [_per_axis(dense, metric, out / "zoo-hyperparameters.png")]
    correlations = []
    if forms:
        written.append(_twins(rows, dense, forms, metric, out / "zoo-twins.png"))
        for form in forms:
            pairs = [(dense[r["member"]]["int8"], r["int8"]) for r in rows if r["form"] == form and r["member"] in dense]
            correlations.append((form, *_summary([t for _, t in pairs]), *_correlation(pairs)))
    written.append(pareto([(f"{r['member']}/{r['form']}", r["int8"], r["size_gzip_bytes"], r["latency_us"]) for r in rows],
                          f"{metric} (int8)", out / "zoo-pareto.png", size="size gzipped"))
    written.insert(0, write_verified(out / "zoo-report.md", _markdown(rows, dense, correlations, metric, zoo).encode()))
    return written


def _markdown(rows, dense, correlations, metric, zoo: Zoo) -> str:
    datasets = sorted({r["dataset"] for r in rows})
    lines = [f"# Model zoo: {len(dense)} members, {len(rows)} models", "",
             f"Data: {', '.join(datasets)}. Figures are int8 TFLite {metric} on the test split."]
    if any(d.startswith("synthetic") for d in datasets):
        lines.append("The data are SYNTHETIC: the figures compare members with each other, not with real-data results.")
    if zoo.dropped:
        lines.append(f"{len(zoo.dropped)} diverged member(s) left out.")
    lines += ["", "| form | models | int8 mean | std | sparsity | size gzipped (B) | host latency (us) |",
              "|---|---|---|---|---|---|---|"]
    for form in sorted({r["form"] for r in rows}, key=_form_order):
        sel = [r for r in rows if r["form"] == form]
        lines.append(f"| {form} | {len(sel)} | {np.mean([r['int8'] for r in sel]):.4f} | {np.std([r['int8'] for r in sel]):.4f} "
                     f"| {np.mean([r['sparsity'] for r in sel]):.1%} | {np.mean([r['size_gzip_bytes'] for r in sel]):.0f} "
                     f"| {np.mean([r['latency_us'] for r in sel]):.1f} |")
    if correlations:
        lines += ["", "## Twins predicted by their dense model", "",
                  "| twin | members | twin mean | twin std | Pearson r | Spearman rho |", "|---|---|---|---|---|---|"]
        lines += [f"| {form} | {n} | {mean:.4f} | {std:.4f} | {_r(p)} | {_r(s)} |" for form, n, mean, std, p, s in correlations]
        lines += ["", "![twins](zoo-twins.png)"]
    lines += ["", "## Accuracy per hyperparameter", "", "![hyperparameters](zoo-hyperparameters.png)",
              "", "## Size, latency and accuracy", "", "![pareto](zoo-pareto.png)", ""]
    return "\n".join(lines)


def _per_axis(dense: dict, metric: str, path: Path) -> Path:
    varied = [a for a in AXES if len({r[a] for r in dense.values()}) > 1] or ["architecture"]
    fig, axes = plt.subplots(1, len(varied), figsize=(3.2 * len(varied) + 1, 3.6), sharey=True, squeeze=False)
    for ax, axis in zip(axes[0], varied):
        values = sorted({r[axis] for r in dense.values()}, key=lambda v: (v is None, v))
        groups = [[r["int8"] for r in dense.values() if r[axis] == v] for v in values]
        ax.boxplot(groups, showmeans=True)
        ax.set_xticks(range(1, len(values) + 1), [f"{v:g}" if isinstance(v, float) else str(v) for v in values],
                      rotation=30, fontsize=8)
        ax.set_title(axis, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel(f"{metric} (int8, dense)")
    fig.suptitle("Dense members' accuracy per hyperparameter value")
    return save_png(fig, path)


def _twins(rows, dense, forms, metric, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 5.2))
    colours = plt.get_cmap("tab10")
    for i, form in enumerate(forms):
        pairs = np.array([(dense[r["member"]]["int8"], r["int8"]) for r in rows if r["form"] == form and r["member"] in dense])
        ax.scatter(pairs[:, 0], pairs[:, 1], s=18, color=colours(i % 10), label=form,
                   marker="o" if form.startswith("magnitude") else "^")
    values = [r["int8"] for r in rows]
    low, high = min(values) - 0.02, max(values) + 0.02
    ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--", label="twin = dense")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel(f"dense {metric} (int8)")
    ax.set_ylabel(f"twin {metric} (int8)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Each sparsified twin against its dense model")
    return save_png(fig, path)


def _summary(values: list[float]) -> tuple[int, float, float]:
    return len(values), float(np.mean(values)), float(np.std(values))


def _correlation(pairs: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    a = np.array(pairs, dtype=np.float64)
    if len(a) < 3 or np.ptp(a[:, 0]) == 0 or np.ptp(a[:, 1]) == 0:
        return None, None  # undefined for fewer than 3 members or a constant accuracy
    return float(stats.pearsonr(a[:, 0], a[:, 1])[0]), float(stats.spearmanr(a[:, 0], a[:, 1])[0])


def _r(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _form_order(form: str) -> tuple:
    kind, _, sparsity = form.partition("-")
    return ({"dense": 0, "magnitude": 1, "vd": 2}.get(kind, 3), float(sparsity) if sparsity else -1.0)
