"""The shape every dataset shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Sequence

from ground.patches import SINGLE_LABEL, DatasetError, PatchSet

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


class Dataset(ABC):
    """A labelled dataset in its original layout under `root`.

    Subclasses set `name` (the CLI's name for it), `all_bands` (in the order `load` returns them
    when `bands` is None), `classes`, `task` and `layout` (one line a user can check their files
    against), and implement `_check` (raise DatasetError naming what is missing) and `load`.
    """

    name: ClassVar[str]
    all_bands: ClassVar[tuple[str, ...]]
    classes: ClassVar[tuple[str, ...]]
    task: ClassVar[str] = SINGLE_LABEL
    layout: ClassVar[str]

    def __init__(self, root: Path, split: str = "train", bands: Sequence[str] | None = None, seed: int = 0) -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise DatasetError(f"{self.name}: unknown split {split!r}; choose from {', '.join(SPLITS)}")
        self.split = split
        self.bands = tuple(bands) if bands else self.all_bands
        unknown = [b for b in self.bands if b not in self.all_bands]
        if unknown:
            raise DatasetError(f"{self.name} has no band(s) {','.join(unknown)}; it has {','.join(self.all_bands)}")
        self.seed = seed
        if not self.root.is_dir():
            raise DatasetError(f"{self.name}: root {self.root} is not a directory (expected {self.layout})")
        self._check()

    def missing(self, path: Path) -> DatasetError:
        """The error for a file or folder that should be there."""
        return DatasetError(f"{self.name}: {path} is missing (expected {self.layout})")

    @abstractmethod
    def _check(self) -> None: ...

    @abstractmethod
    def load(self) -> PatchSet:
        """The patches of this split, in `self.bands` order."""
