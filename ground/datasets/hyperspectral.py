"""Hyperspectral scenes (Indian Pines, Pavia University): one image cube and its ground-truth map
as MATLAB files, cut into square patches centred on labelled pixels.

Neighbouring pixels are near copies of each other and patches around them overlap, so a random
draw of pixels would put test pixels inside training windows. Train, val and test instead come
from spatially disjoint areas: the scene is cut into a grid of blocks, the blocks are dealt to
the splits with the seed, and a patch is kept only when its whole window lies in its own split's
blocks (and inside the scene)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Sequence

import h5py
import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from ground.datasets.base import SPLIT_FRACTIONS, SPLITS, Dataset
from ground.datasets.patches import PatchSet, split_indices
from ground.errors import DatasetError


def band_names(n: int) -> tuple[str, ...]:
    """Hyperspectral bands are named by their index in the cube: b000, b001, ..."""
    return tuple(f"b{i:03d}" for i in range(n))


class _Scene(Dataset):
    cube_file: ClassVar[str]
    cube_key: ClassVar[str]
    gt_file: ClassVar[str]
    gt_key: ClassVar[str]

    def __init__(self, root: Path, split: str = "train", bands: Sequence[str] | None = None, seed: int = 0, *,
                 patch_size: int = 9, blocks: tuple[int, int] = (4, 4)) -> None:
        if patch_size < 1 or patch_size % 2 == 0:
            raise DatasetError(f"{self.name}: patch size {patch_size} must be odd, so a patch has a centre pixel")
        if len(blocks) != 2 or min(blocks) < 1:
            raise DatasetError(f"{self.name}: blocks {blocks} must be (rows, cols) of at least 1 each")
        self.patch_size = patch_size
        self.blocks = (int(blocks[0]), int(blocks[1]))
        super().__init__(root, split, bands, seed)

    def _check(self) -> None:
        for file in (self.cube_file, self.gt_file):
            if not (self.root / file).is_file():
                raise self.missing(self.root / file)

    def _variable(self, file: str, key: str) -> np.ndarray:
        """One variable of a .mat file, MATLAB v5 (scipy) or v7.3 (HDF5)."""
        path = self.root / file
        with self.reading(path, MatReadError):
            if h5py.is_hdf5(path):
                with h5py.File(path, "r") as f:
                    # MATLAB writes v7.3 arrays column-major, so h5py sees every axis reversed.
                    data = f[key][()].T if isinstance(f.get(key), h5py.Dataset) else None
            else:
                data = scipy.io.loadmat(path, variable_names=[key]).get(key)
        if data is None:
            raise self.malformed(path, f"it has no variable {key!r}")
        return data

    def split_map(self, rows: int, cols: int) -> np.ndarray:
        """rows x cols: the index in SPLITS of the split that owns each pixel."""
        grid_rows, grid_cols = self.blocks
        owner = np.empty(grid_rows * grid_cols, dtype=np.int64)
        # One stratum: the blocks are shuffled with the seed and cut at SPLIT_FRACTIONS.
        for s, part in enumerate(split_indices(np.zeros(len(owner), dtype=np.int64), SPLIT_FRACTIONS, self.seed)):
            if not len(part):
                raise DatasetError(f"{self.name}: {grid_rows} x {grid_cols} blocks leave the {SPLITS[s]} split no "
                                   f"area; use more blocks")
            owner[part] = s
        block_row = np.arange(rows) * grid_rows // rows
        block_col = np.arange(cols) * grid_cols // cols
        return owner[block_row[:, None] * grid_cols + block_col[None, :]]

    def load(self) -> PatchSet:
        cube = self._variable(self.cube_file, self.cube_key)
        if cube.ndim != 3 or cube.shape[2] != len(self.all_bands):
            raise self.malformed(self.root / self.cube_file,
                                 f"{self.cube_key} is {cube.shape}, not rows x cols x {len(self.all_bands)}")
        gt = self._variable(self.gt_file, self.gt_key)
        labels = gt.astype(np.int64)
        if gt.shape != cube.shape[:2] or (labels != gt).any() or labels.min() < 0 or labels.max() > len(self.classes):
            raise self.malformed(self.root / self.gt_file, f"{self.gt_key} is not a {cube.shape[:2]} map of class "
                                                           f"numbers 0 (unlabelled) .. {len(self.classes)}")
        rows, cols = labels.shape
        if self.patch_size > min(rows, cols):
            raise DatasetError(f"{self.name}: patch size {self.patch_size} does not fit the {rows} x {cols} px scene")
        half = self.patch_size // 2
        own = self.split_map(rows, cols) == SPLITS.index(self.split)
        windows = np.lib.stride_tricks.sliding_window_view(own, (self.patch_size, self.patch_size))
        fits = np.zeros_like(own)
        fits[half:rows - half, half:cols - half] = windows.all(axis=(2, 3))
        r, c = np.nonzero(fits & (labels > 0))
        if not len(r):
            raise self.empty(f"no labelled pixel has its {self.patch_size} x {self.patch_size} window inside the "
                             f"split's blocks; use fewer blocks or a smaller patch size")
        pixels = cube[:, :, [self.all_bands.index(b) for b in self.bands]].astype(np.float32)
        offsets = np.arange(-half, half + 1)
        x = pixels[r[:, None, None] + offsets[None, :, None], c[:, None, None] + offsets[None, None, :]]
        return PatchSet(x, labels[r, c] - 1, self.bands, self.classes, self.source)


class IndianPines(_Scene):
    """AVIRIS over Indiana, 145 x 145 px at 20 m, 200 bands (the water-absorption bands removed)."""

    name = "indian-pines"
    all_bands = band_names(200)
    classes = ("Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees",
               "Grass-pasture-mowed", "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill",
               "Soybean-clean", "Wheat", "Woods", "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers")
    cube_file, cube_key = "Indian_pines_corrected.mat", "indian_pines_corrected"
    gt_file, gt_key = "Indian_pines_gt.mat", "indian_pines_gt"
    layout = ("<root>/Indian_pines_corrected.mat (variable indian_pines_corrected, 145 x 145 x 200) and "
              "<root>/Indian_pines_gt.mat (indian_pines_gt, 145 x 145, 0 unlabelled, 1..16 the classes)")


class PaviaUniversity(_Scene):
    """ROSIS over the University of Pavia, 610 x 340 px at 1.3 m, 103 bands."""

    name = "pavia-university"
    all_bands = band_names(103)
    classes = ("Asphalt", "Meadows", "Gravel", "Trees", "Painted metal sheets", "Bare Soil", "Bitumen",
               "Self-Blocking Bricks", "Shadows")
    cube_file, cube_key = "PaviaU.mat", "paviaU"
    gt_file, gt_key = "PaviaU_gt.mat", "paviaU_gt"
    layout = ("<root>/PaviaU.mat (variable paviaU, 610 x 340 x 103) and <root>/PaviaU_gt.mat (paviaU_gt, "
              "610 x 340, 0 unlabelled, 1..9 the classes)")
