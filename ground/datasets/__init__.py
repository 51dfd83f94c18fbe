"""Labelled EO datasets read from their original file layouts.

Every dataset is one class with the same constructor shape, `Name(root, split, bands, seed)`,
checks on construction that its files are there (failing with the missing file and the expected
layout), and returns the requested split as a PatchSet from `load()`. `DATASETS` maps the names
the CLI takes to the classes."""

from __future__ import annotations

from typing import TypeVar

from ground.datasets.base import SPLITS, Dataset

DATASETS: dict[str, type[Dataset]] = {}
D = TypeVar("D", bound=type[Dataset])


def register(cls: D) -> D:
    DATASETS[cls.name] = cls
    return cls


__all__ = ["DATASETS", "SPLITS", "Dataset", "register"]


# Each loader registers itself on import; they come last because they import `register` from here.
from ground.datasets import bigearthnet, eurosat, hyperspectral, so2sat, synthetic  # noqa: E402,F401
