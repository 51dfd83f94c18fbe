"""The datasets the CLI takes by name, and what it does with one: open a split, or merge the
three into one patch set that keeps them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ground.datasets.base import SPLITS, Dataset
from ground.datasets.bigearthnet import BigEarthNetS2, BigEarthNetS2Npz
from ground.datasets.eurosat import EuroSATMS, EuroSATRGB
from ground.datasets.hyperspectral import IndianPines, PaviaUniversity
from ground.datasets.patches import PatchSet
from ground.datasets.so2sat import So2SatLCZ42
from ground.datasets.synthetic import Synthetic
from ground.errors import DatasetError
from onboard.scenes.scene import parse_bands

DATASETS: dict[str, type[Dataset]] = {cls.name: cls for cls in (
    EuroSATMS, EuroSATRGB, BigEarthNetS2, BigEarthNetS2Npz, So2SatLCZ42, IndianPines, PaviaUniversity, Synthetic)}


def open_dataset(name: str, root: Path, split: str, bands: str | None, seed: int) -> Dataset:
    """Dataset `name` under `root`, its `split`, with `bands` (comma-separated; None: all)."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose from {', '.join(sorted(DATASETS))}")
    return DATASETS[name](root, split=split, bands=parse_bands(bands), seed=seed)


def export(name: str, root: Path, bands: str | None, seed: int) -> tuple[PatchSet, dict[str, int]]:
    """The dataset's train, val and test splits as one patch set that keeps them, and the
    patches in each."""
    parts = [open_dataset(name, root, split, bands, seed).load() for split in SPLITS]
    first = parts[0]
    merged = PatchSet(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]), first.bands,
                      first.classes, f"{name} ({root})",
                      np.concatenate([np.full(len(p), i, np.int8) for i, p in enumerate(parts)]))
    return merged, {split: len(p) for split, p in zip(SPLITS, parts)}
