"""What a dataset split holds, as plain text: `orbitlite ground data inspect --dataset NAME --root DIR`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ground.datasets.base import Dataset
from ground.datasets.patches import MULTI_LABEL, PatchSet


@dataclass(frozen=True)
class BandStats:
    band: str
    min: float
    max: float
    mean: float
    std: float


def band_statistics(patches: PatchSet) -> list[BandStats]:
    """Min, max, mean and std of every band over all pixels of all patches."""
    stats = []
    for i, band in enumerate(patches.bands):
        # One band at a time in float64: exact sums without a float64 copy of the whole set.
        values = patches.x[..., i].astype(np.float64)
        stats.append(BandStats(band, float(values.min()), float(values.max()), float(values.mean()),
                               float(values.std())))
    return stats


def inspect_dataset(dataset: Dataset) -> str:
    """Loads the dataset's split and reports its size, patches per class and per-band statistics."""
    patches = dataset.load()
    n, rows, cols, _ = patches.x.shape
    lines = [
        f"{dataset.name} ({dataset.split} split of {dataset.root}): {n} patches of {rows} x {cols} px, "
        f"{len(patches.bands)} bands ({patches.x.dtype}), {patches.task}, {len(patches.classes)} classes",
        f"source: {patches.source}" + ("  (SYNTHETIC)" if patches.synthetic else ""),
        "",
    ]
    width = max(len(c) for c in patches.classes)
    # A multi-label patch counts for each of its classes, so the shares are of patches, not of labels.
    lines.append(f"{'class':<{width}}  {'patches':>8}  {'share':>6}")
    for cls, count in zip(patches.classes, patches.class_counts()):
        lines.append(f"{cls:<{width}}  {count:>8d}  {count / n:>6.1%}")
    if patches.task == MULTI_LABEL:
        lines.append(f"{'(no label)':<{width}}  {int((~patches.y.any(axis=1)).sum()):>8d}")
    lines += ["", f"{'band':<10}  {'min':>12}  {'max':>12}  {'mean':>12}  {'std':>12}"]
    for s in band_statistics(patches):
        lines.append(f"{s.band:<10}  {s.min:>12.6g}  {s.max:>12.6g}  {s.mean:>12.6g}  {s.std:>12.6g}")
    return "\n".join(lines)
