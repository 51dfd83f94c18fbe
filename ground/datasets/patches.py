"""Labelled patch sets: the in-memory and on-disk (`.npz`) form every ground step reads."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ground.errors import DatasetError
from onboard.files import write_verified


SINGLE_LABEL, MULTI_LABEL = "single-label", "multi-label"


@dataclass
class PatchSet:
    x: np.ndarray  # N x rows x cols x bands: uint16 reflectance x 10000, uint8 or float32
    y: np.ndarray  # N class indices (single-label), or N x classes of 0/1 (multi-label)
    bands: tuple[str, ...]
    classes: tuple[str, ...]
    source: str  # where the pixels came from; synthetic sets say so
    # The dataset's own split of each patch (0 train, 1 val, 2 test), where it defines one.
    parts: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or len(self.x) != len(self.y) or self.x.shape[3] != len(self.bands):
            raise DatasetError(
                f"{self.source}: patches {self.x.shape} do not fit {len(self.y)} labels and bands {self.bands}"
            )
        if self.y.ndim == 2 and self.y.shape[1] != len(self.classes):
            raise DatasetError(f"{self.source}: multi-hot labels of width {self.y.shape[1]} for {len(self.classes)} classes")

    @property
    def task(self) -> str:
        return MULTI_LABEL if self.y.ndim == 2 else SINGLE_LABEL

    def class_counts(self) -> np.ndarray:
        """Patches per class (a multi-label patch counts once for each of its classes)."""
        if self.task == MULTI_LABEL:
            return self.y.sum(axis=0).astype(np.int64)
        return np.bincount(self.y, minlength=len(self.classes))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def synthetic(self) -> bool:
        return self.source.startswith("synthetic")

    def subset(self, index: np.ndarray) -> "PatchSet":
        return PatchSet(self.x[index], self.y[index], self.bands, self.classes, self.source,
                        None if self.parts is None else self.parts[index])

    def split(self, fractions: tuple[float, ...], seed: int) -> list["PatchSet"]:
        """Train, val and test: the dataset's own split where it has one (a benchmark's official
        split must be kept), else a seeded stratified one (see `split_indices`)."""
        if self.parts is not None:
            return [self.subset(np.flatnonzero(self.parts == i)) for i in range(len(fractions))]
        return [self.subset(index) for index in split_indices(self.y, fractions, seed)]

    def band_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean and std, the normalization a model trained on this set expects."""
        flat = self.x.reshape(-1, self.x.shape[3]).astype(np.float64)
        return flat.mean(axis=0), np.maximum(flat.std(axis=0), 1e-6)

    def save(self, path: Path) -> Path:
        buf = io.BytesIO()
        extra = {} if self.parts is None else {"parts": self.parts}
        np.savez_compressed(buf, x=self.x, y=self.y, bands=np.array(self.bands), classes=np.array(self.classes),
                            source=np.array(self.source), **extra)
        return write_verified(Path(path), buf.getvalue())


def split_indices(y: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """The sorted indices of each part of a stratified split of labels `y` (N class indices, or
    N x classes multi-hot): each class is shuffled with `seed` and cut at the same fractions.
    Multi-label patches are stratified by their rarest class. Loaders split their file lists with
    it before reading, so a split reads only its own files and matches `PatchSet.split`."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum((0.0, *fractions))
    strata = y
    if y.ndim == 2:
        rarity = np.where(y > 0, y.sum(axis=0, dtype=np.int64)[None, :], np.iinfo(np.int64).max)
        strata = np.where(y.any(axis=1), rarity.argmin(axis=1), -1)
    for c in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == c))
        cuts = np.round(bounds / bounds[-1] * len(members)).astype(int)
        for i in range(len(fractions)):
            parts[i].append(members[cuts[i]:cuts[i + 1]])
    return [np.sort(np.concatenate(p)) for p in parts]


def load_patches(path: Path) -> PatchSet:
    path = Path(path)
    layout = "an .npz with x (N, rows, cols, bands), y (N,) or (N, classes), bands, classes, source and optionally parts"
    try:
        with np.load(path, allow_pickle=False) as z:
            y = z["y"]
            return PatchSet(z["x"], y.astype(np.int64) if y.ndim == 1 else y.astype(np.uint8),
                            tuple(str(b) for b in z["bands"]), tuple(str(c) for c in z["classes"]), str(z["source"]),
                            z["parts"].astype(np.int8) if "parts" in z.files else None)
    except FileNotFoundError:
        raise DatasetError(f"dataset {path} not found (expected {layout})") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"dataset {path} is not {layout}: {exc}") from None
