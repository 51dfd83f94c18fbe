"""Pictures of scenes and products."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402

from onboard.contracts.product import NODATA, Product  # noqa: E402
from onboard.files import write_verified  # noqa: E402
from onboard.scenes.scene import Scene, band_positions  # noqa: E402

# Colours by class name, so every picture of a class looks the same.
CLASS_COLOURS = {
    "water": "#1f5fbf", "forest": "#1b7a2e", "crop": "#c7d93f", "bare_soil": "#a8773a",
    "urban": "#d62728", "cloud": "#f0f0f0",
}
NODATA_COLOUR = "#000000"


def true_colour(scene: Scene) -> np.ndarray:
    """An RGB picture (B04, B03, B02) stretched between the 2nd and 98th percentiles."""
    rgb = np.stack([np.asarray(scene.data[i], dtype=np.float32)
                    for i in band_positions(scene.bands, ("B04", "B03", "B02"), scene.id)], axis=-1)
    lo, hi = np.percentile(rgb, (2, 98))
    return np.clip((rgb - lo) / max(hi - lo, 1e-6), 0, 1)


def _class_colours(product: Product) -> ListedColormap:
    palette = plt.get_cmap("tab10")
    colours = [CLASS_COLOURS.get(c, palette(i % 10)) for i, c in enumerate(product.classes)]
    return ListedColormap(colours + [NODATA_COLOUR])


def _class_map_image(product: Product) -> np.ndarray:
    """Class indices with NODATA moved to the last colour."""
    cm = product.class_map.astype(np.int32)
    return np.where(cm == NODATA, len(product.classes), cm)


def _legend(ax, product: Product) -> None:
    cmap = _class_colours(product)
    hist = product.histogram
    total = max(sum(hist), 1)
    handles = [Patch(facecolor=cmap(i), edgecolor="grey", label=f"{c} {100 * hist[i] / total:.0f}%")
               for i, c in enumerate(product.classes)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)


def save_png(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return write_verified(Path(path), buf.getvalue())


def scene_and_class_map(scene: Scene, product: Product, path: Path) -> Path:
    """The scene in true colour beside its class map, tile for tile on the same extent."""
    rows, cols = scene.shape
    g = product.grid
    extent = (0, g.cols * g.stride_cols, g.rows * g.stride_rows, 0)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.6))
    a.imshow(true_colour(scene), extent=(0, cols, rows, 0))
    a.set_title(f"{scene.id} (true colour)")
    b.imshow(_class_map_image(product), cmap=_class_colours(product), vmin=0, vmax=len(product.classes),
             extent=extent, interpolation="nearest")
    b.set_xlim(0, cols)
    b.set_ylim(rows, 0)
    b.set_title(f"{product.model_id}: {g.rows} x {g.cols} tiles")
    _legend(b, product)
    return save_png(fig, path)


def class_map(product: Product, path: Path) -> Path:
    """The class map of a product alone, one cell per tile."""
    fig, ax = plt.subplots(figsize=(5.5, 4.6))
    ax.imshow(_class_map_image(product), cmap=_class_colours(product), vmin=0, vmax=len(product.classes),
              interpolation="nearest")
    ax.set_title(f"{product.scene_id} / {product.model_id}")
    _legend(ax, product)
    return save_png(fig, path)


def pareto(points: list[tuple[str, float, float, float]], metric: str, path: Path, size: str = "size") -> Path:
    """Accuracy against size and against latency, one point per model (name, metric, size in
    bytes, latency in us), with the Pareto front of each panel drawn through the points no other
    point beats on both axes; the points are named while there are few of them. `size` names
    the size measured (e.g. "size gzipped")."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, col, label in ((axes[0], 2, f"{size} (kB)"), (axes[1], 3, "host latency, batch 1 (us)")):
        xs = np.array([p[col] / (1000 if col == 2 else 1) for p in points])
        ys = np.array([p[1] for p in points])
        ax.scatter(xs, ys, s=30, color="#1f5fbf", zorder=3)
        for (name, *_), x, y in zip(points if len(points) <= 20 else [], xs, ys):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        order = np.lexsort((-ys, xs))
        front, best = [], -np.inf
        for i in order:
            if ys[i] > best:
                front.append(i)
                best = ys[i]
        ax.step(xs[front], ys[front], where="post", color="#d62728", lw=1, marker="o", mfc="none", ms=9,
                label="Pareto front", zorder=2)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{metric} against size and latency")
    return save_png(fig, path)
