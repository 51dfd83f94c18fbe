"""EuroSAT (Helber et al. 2019): 27,000 Sentinel-2 patches of 64 x 64 px in 10 land-use classes,
one folder per class; MS as 13-band uint16 GeoTIFFs, RGB as JPEGs."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from ground.datasets.base import SPLIT_FRACTIONS, SPLITS, Dataset
from ground.datasets.geotiff import read_geotiff
from ground.datasets.patches import PatchSet, split_indices

CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake")
SIZE = 64


class _EuroSAT(Dataset):
    """One class folder per class, one file per patch; the split is drawn from the file list
    (stratified, seeded) before any pixel is read, so a split reads only its own files."""

    classes = CLASSES
    suffix: ClassVar[str]
    dtype: ClassVar[type[np.generic]]

    def _check(self) -> None:
        for cls in CLASSES:
            folder = self.root / cls
            if not folder.is_dir():
                raise self.missing(folder)
            if next(folder.glob(f"*{self.suffix}"), None) is None:
                raise self.missing(folder / f"{cls}_1{self.suffix}")

    def _files(self) -> tuple[list[Path], np.ndarray]:
        """Every patch file in class order, then name order, and its class index."""
        paths: list[Path] = []
        labels: list[int] = []
        for label, cls in enumerate(CLASSES):
            found = sorted((self.root / cls).glob(f"*{self.suffix}"))
            paths += found
            labels += [label] * len(found)
        return paths, np.asarray(labels, dtype=np.int64)

    def load(self) -> PatchSet:
        paths, labels = self._files()
        index = split_indices(labels, SPLIT_FRACTIONS, self.seed)[SPLITS.index(self.split)]
        if not len(index):
            raise self.empty(f"{len(paths)} files in all splits are too few to stratify")
        band_index = [self.all_bands.index(b) for b in self.bands]
        x = np.empty((len(index), SIZE, SIZE, len(self.bands)), dtype=self.dtype)
        for i, k in enumerate(index):
            x[i] = self._read(paths[k])[:, :, band_index]
        return PatchSet(x, labels[index], self.bands, self.classes, self.source)

    @abstractmethod
    def _read(self, path: Path) -> np.ndarray:
        """One patch, SIZE x SIZE x all_bands, in `dtype`."""


class EuroSATMS(_EuroSAT):
    name = "eurosat-ms"
    all_bands = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
    suffix = ".tif"
    dtype = np.uint16
    layout = ("<root>/<class>/<class>_<n>.tif for the 10 EuroSAT classes (AnnualCrop ... SeaLake), each a "
              "64 x 64 px GeoTIFF of the 13 Sentinel-2 bands B01..B12 with B8A, uint16 (EuroSAT MS, e.g. "
              "EuroSATallBands/ds/images/remote_sensing/otherDatasets/sentinel_2/tif)")

    def _read(self, path: Path) -> np.ndarray:
        with self.reading(path):
            data = read_geotiff(path)
        if data.shape != (SIZE, SIZE, len(self.all_bands)) or data.dtype != self.dtype:
            raise self.malformed(path, f"a {data.dtype} image of {data.shape}")
        return data


class EuroSATRGB(_EuroSAT):
    name = "eurosat-rgb"
    all_bands = ("B04", "B03", "B02")  # red, green, blue: the JPEG's channel order
    suffix = ".jpg"
    dtype = np.uint8
    layout = ("<root>/<class>/<class>_<n>.jpg for the 10 EuroSAT classes (AnnualCrop ... SeaLake), each a "
              "64 x 64 px RGB JPEG (EuroSAT RGB, e.g. EuroSAT_RGB or 2750)")

    def _read(self, path: Path) -> np.ndarray:
        with self.reading(path), Image.open(path) as image:
            mode, size = image.mode, image.size
            data = np.asarray(image)
        if mode != "RGB" or size != (SIZE, SIZE):
            raise self.malformed(path, f"a {mode} image of {size[0]} x {size[1]} px")
        return data
