"""Labelled EO data: patch sets (`patches`), the datasets read from their original file layouts
and the registry of their names (`registry`), the synthetic generator (`synthetic`), and the
real scene the demo runs on (`scenes`).

Every dataset is one class with the same constructor shape, `Name(root, split, bands, seed)`,
checks on construction that its files are there (failing with the missing file and the expected
layout), and returns the requested split as a PatchSet from `load()`."""
