"""The synthetic EuroSAT-like generator (ground/synthetic.py) behind the shape every dataset
shares, so a command that takes a dataset can run on it. SYNTHETIC: every split says so in its
`source`, and it never stands in for a real-data claim."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ground.datasets import register
from ground.datasets.base import SPLIT_FRACTIONS, SPLITS, Dataset
from ground.patches import PatchSet
from ground.synthetic import CLASSES, S2_BANDS, generate_patches


@register
class Synthetic(Dataset):
    name = "synthetic"
    all_bands = S2_BANDS
    classes = CLASSES
    layout = "nothing: the synthetic patches are generated, and root is not read"

    def __init__(self, root: Path, split: str = "train", bands: Sequence[str] | None = None, seed: int = 0, *,
                 per_class: int = 400, size: int = 32) -> None:
        self.per_class = per_class
        self.size = size
        super().__init__(root, split, bands, seed)

    def _check(self) -> None:
        """Nothing to check: no file is read."""

    def load(self) -> PatchSet:
        patches = generate_patches(self.per_class, size=self.size, bands=self.bands, seed=self.seed)
        return patches.split(SPLIT_FRACTIONS, self.seed)[SPLITS.index(self.split)]
