"""Labelled patch sets: the in-memory and on-disk (`.npz`) form every ground step reads."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onboard.errors import OrbitliteError
from onboard.files import write_verified


class DatasetError(OrbitliteError):
    """A dataset that is missing, malformed or does not fit the task."""


SINGLE_LABEL, MULTI_LABEL = "single-label", "multi-label"


@dataclass
class PatchSet:
    x: np.ndarray  # N x rows x cols x bands: uint16 reflectance x 10000, uint8 or float32
    y: np.ndarray  # N class indices (single-label), or N x classes of 0/1 (multi-label)
    bands: tuple[str, ...]
    classes: tuple[str, ...]
    source: str  # where the pixels came from; synthetic sets say so

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
        return PatchSet(self.x[index], self.y[index], self.bands, self.classes, self.source)

    def split(self, fractions: tuple[float, ...], seed: int) -> list["PatchSet"]:
        """A stratified split: each class is shuffled with `seed` and cut at the same fractions.
        Multi-label patches are stratified by their rarest class."""
        rng = np.random.default_rng(seed)
        parts: list[list[np.ndarray]] = [[] for _ in fractions]
        bounds = np.cumsum((0.0, *fractions))
        strata = self.y
        if self.task == MULTI_LABEL:
            rarity = np.where(self.y > 0, self.class_counts()[None, :], np.iinfo(np.int64).max)
            strata = np.where(self.y.any(axis=1), rarity.argmin(axis=1), -1)
        for c in np.unique(strata):
            members = rng.permutation(np.flatnonzero(strata == c))
            cuts = np.round(bounds / bounds[-1] * len(members)).astype(int)
            for i in range(len(fractions)):
                parts[i].append(members[cuts[i]:cuts[i + 1]])
        return [self.subset(np.sort(np.concatenate(p))) for p in parts]

    def band_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean and std, the normalization a model trained on this set expects."""
        flat = self.x.reshape(-1, self.x.shape[3]).astype(np.float64)
        return flat.mean(axis=0), np.maximum(flat.std(axis=0), 1e-6)

    def save(self, path: Path) -> Path:
        buf = io.BytesIO()
        np.savez_compressed(buf, x=self.x, y=self.y, bands=np.array(self.bands), classes=np.array(self.classes),
                            source=np.array(self.source))
        return write_verified(Path(path), buf.getvalue())


def load_patches(path: Path) -> PatchSet:
    path = Path(path)
    layout = "an .npz with x (N, rows, cols, bands), y (N,), bands, classes and source"
    try:
        with np.load(path, allow_pickle=False) as z:
            return PatchSet(z["x"], z["y"].astype(np.int64), tuple(str(b) for b in z["bands"]),
                            tuple(str(c) for c in z["classes"]), str(z["source"]))
    except FileNotFoundError:
        raise DatasetError(f"dataset {path} not found (expected {layout})") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"dataset {path} is not {layout}: {exc}") from None
