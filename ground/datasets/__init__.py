"""Labelled EO datasets read from their original file layouts.

Every dataset is one class with the same constructor shape, `Name(root, split, bands, seed)`,
checks on construction that its files are there (failing with the missing file and the expected
layout), and returns the requested split as a PatchSet from `load()`. `DATASETS` maps the names
the CLI takes to the classes."""

from __future__ import annotations

from ground.datasets.base import SPLITS, Dataset

DATASETS: dict[str, type[Dataset]] = {}


def register(cls: type[Dataset]) -> type[Dataset]:
    DATASETS[cls.name] = cls
    return cls


__all__ = ["DATASETS", "SPLITS", "Dataset", "register"]
