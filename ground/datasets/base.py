"""The shape every dataset shares."""

from __future__ import annotations

import zipfile
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

from ground.datasets.patches import SINGLE_LABEL, PatchSet
from ground.errors import DatasetError
from onboard.schema import decode

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)

# What the readers (tifffile, Pillow, h5py, numpy, json) raise on a truncated or foreign file.
READ_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


class Dataset(ABC):
    """A labelled dataset in its original layout under `root`.

    Subclasses set `name` (the CLI's name for it), `all_bands` (in the order `load` returns them
    when `bands` is None), `classes`, `task` and `layout` (one line a user can check their files
    against), and implement `_check` (raise DatasetError naming what is missing) and `load`.
    Options a dataset needs beyond the shared four are keyword arguments after them, set before
    calling `Dataset.__init__` (which runs `_check`).
    """

    name: ClassVar[str]
    all_bands: ClassVar[tuple[str, ...]]
    classes: tuple[str, ...]  # a class attribute, unless an option picks the nomenclature
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

    @property
    def source(self) -> str:
        """Where a loaded split's pixels came from, for its PatchSet."""
        return f"{self.name} {self.split} split of {self.root}"

    def missing(self, path: Path) -> DatasetError:
        """The error for a file or folder that should be there."""
        return DatasetError(f"{self.name}: {path} is missing (expected {self.layout})")

    def malformed(self, path: Path | str, problem: object) -> DatasetError:
        """The error for a file that is there but is not what the layout says."""
        return DatasetError(f"{self.name}: {path} is not readable as this dataset ({problem}; expected {self.layout})")

    def empty(self, why: str) -> DatasetError:
        """The error for a split that holds no patches."""
        return DatasetError(f"{self.name}: the {self.split} split of {self.root} holds no patches ({why})")

    def read_json(self, path: Path) -> Any:
        """The JSON file at `path` (labels, metadata), parsed by the project's schema library, so
        nesting, numbers and bytes that are not JSON end in one DatasetError like any other fault."""
        with self.reading(path):
            data = path.read_bytes()
        try:
            return decode(data, Any, source="not JSON", error=DatasetError)
        except DatasetError as exc:
            raise self.malformed(path, exc) from None

    @contextmanager
    def reading(self, path: Path, *also: type[Exception]) -> Iterator[None]:
        """Turns a reader's failure on `path` into a DatasetError naming it and the layout; `also`
        adds a reader's own error types that are not among READ_ERRORS."""
        try:
            yield
        except FileNotFoundError:
            raise self.missing(path) from None
        except (*READ_ERRORS, *also) as exc:
            raise self.malformed(path, exc) from None

    @abstractmethod
    def _check(self) -> None: ...

    @abstractmethod
    def load(self) -> PatchSet:
        """The patches of this split, in `self.bands` order."""
