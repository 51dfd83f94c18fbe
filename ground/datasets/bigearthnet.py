"""BigEarthNet-S2 v1 (Sumbul et al. 2019): Sentinel-2 L2A patches of 1.2 x 1.2 km with multi-label
CORINE Land Cover 2018 labels, read from the archive's folder layout or from the npz of configilm's
BigEarthNet v1 sample; labels in the 43 CORINE classes of the archive or the 19 classes of
BigEarthNet-MM (Sumbul et al. 2021). Bands come at 10, 20 and 60 m and are resampled to one grid."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ground.datasets.base import SPLIT_FRACTIONS, SPLITS, Dataset
from ground.datasets.geotiff import read_geotiff
from ground.datasets.patches import MULTI_LABEL, PatchSet, split_indices
from ground.errors import DatasetError

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
RESOLUTION_M = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
                "B8A": 20, "B09": 60, "B11": 20, "B12": 20}
EXTENT_M = 1200  # every band of a patch covers the same 1.2 km square
UPSAMPLING = ("nearest", "bilinear")

# The 43 CORINE classes of BigEarthNet v1 in the archive's order, and the class of the 19-class
# nomenclature each becomes (Sumbul et al. 2021, BigEarthNet-MM, Table I); None: dropped, as the
# class cannot be told apart from Sentinel-2 pixels at this scale.
CLC_43_TO_19: tuple[tuple[str, str | None], ...] = (
    ("Continuous urban fabric", "Urban fabric"),
    ("Discontinuous urban fabric", "Urban fabric"),
    ("Industrial or commercial units", "Industrial or commercial units"),
    ("Road and rail networks and associated land", None),
    ("Port areas", None),
    ("Airports", None),
    ("Mineral extraction sites", None),
    ("Dump sites", None),
    ("Construction sites", None),
    ("Green urban areas", None),
    ("Sport and leisure facilities", None),
    ("Non-irrigated arable land", "Arable land"),
    ("Permanently irrigated land", "Arable land"),
    ("Rice fields", "Arable land"),
    ("Vineyards", "Permanent crops"),
    ("Fruit trees and berry plantations", "Permanent crops"),
    ("Olive groves", "Permanent crops"),
    ("Pastures", "Pastures"),
    ("Annual crops associated with permanent crops", "Permanent crops"),
    ("Complex cultivation patterns", "Complex cultivation patterns"),
    ("Land principally occupied by agriculture, with significant areas of natural vegetation",
     "Land principally occupied by agriculture, with significant areas of natural vegetation"),
    ("Agro-forestry areas", "Agro-forestry areas"),
    ("Broad-leaved forest", "Broad-leaved forest"),
    ("Coniferous forest", "Coniferous forest"),
    ("Mixed forest", "Mixed forest"),
    ("Natural grassland", "Natural grassland and sparsely vegetated areas"),
    ("Moors and heathland", "Moors, heathland and sclerophyllous vegetation"),
    ("Sclerophyllous vegetation", "Moors, heathland and sclerophyllous vegetation"),
    ("Transitional woodland/shrub", "Transitional woodland, shrub"),
    ("Beaches, dunes, sands", "Beaches, dunes, sands"),
    ("Bare rock", None),
    ("Sparsely vegetated areas", "Natural grassland and sparsely vegetated areas"),
    ("Burnt areas", None),
    ("Inland marshes", "Inland wetlands"),
    ("Peatbogs", "Inland wetlands"),
    ("Salt marshes", "Coastal wetlands"),
    ("Salines", "Coastal wetlands"),
    ("Intertidal flats", None),
    ("Water courses", "Inland waters"),
    ("Water bodies", "Inland waters"),
    ("Coastal lagoons", "Marine waters"),
    ("Estuaries", "Marine waters"),
    ("Sea and ocean", "Marine waters"),
)
LABELS_43 = tuple(clc for clc, _ in CLC_43_TO_19)
LABELS_19 = (
    "Urban fabric", "Industrial or commercial units", "Arable land", "Permanent crops", "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas", "Broad-leaved forest", "Coniferous forest", "Mixed forest",
    "Natural grassland and sparsely vegetated areas", "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub", "Beaches, dunes, sands", "Inland wetlands", "Coastal wetlands",
    "Inland waters", "Marine waters",
)
NOMENCLATURES = {43: LABELS_43, 19: LABELS_19}


def resample(band: np.ndarray, size: int, upsampling: str = "nearest") -> np.ndarray:
    """A square band brought to size x size pixels by an integer factor, in its own dtype: the
    mean of each block when shrinking; when growing, each pixel repeated (nearest) or bilinear
    interpolation between pixel centres, clamped at the edges (as GDAL's bilinear resampling)."""
    n = band.shape[0]
    if n == size:
        return band
    if n > size:
        f = n // size
        return np.rint(band.reshape(size, f, size, f).mean(axis=(1, 3))).astype(band.dtype)
    f = size // n
    if upsampling == "nearest":
        return np.repeat(np.repeat(band, f, axis=0), f, axis=1)
    centre = np.clip((np.arange(size) + 0.5) / f - 0.5, 0, n - 1)
    lo = np.floor(centre).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    w = centre - lo
    b = band.astype(np.float64)
    rows = b[lo] * (1 - w)[:, None] + b[hi] * w[:, None]
    out = rows[:, lo] * (1 - w)[None, :] + rows[:, hi] * w[None, :]
    return np.rint(out).astype(band.dtype)


class _BigEarthNet(Dataset):
    """What both layouts share: options, label conversion, band checks and resampling."""

    all_bands = BANDS
    task = MULTI_LABEL

    def __init__(self, root: Path, split: str = "train", bands: Sequence[str] | None = None, seed: int = 0, *,
                 nomenclature: int = 19, resolution: int = 10, upsampling: str = "nearest") -> None:
        if nomenclature not in NOMENCLATURES:
            raise DatasetError(f"{self.name}: nomenclature {nomenclature} is not 43 or 19 classes")
        if resolution not in (10, 20, 60):
            raise DatasetError(f"{self.name}: resolution {resolution} m is not one of the bands' 10, 20 or 60 m")
        if upsampling not in UPSAMPLING:
            raise DatasetError(f"{self.name}: upsampling {upsampling!r} is not {' or '.join(UPSAMPLING)}")
        self.nomenclature = nomenclature
        self.classes = NOMENCLATURES[nomenclature]
        self.size = EXTENT_M // resolution
        self.upsampling = upsampling
        super().__init__(root, split, bands, seed)

    def _band(self, data: np.ndarray, band: str, where: Path | str) -> np.ndarray:
        """A band as read, checked against its native grid and resampled to the chosen one."""
        native = EXTENT_M // RESOLUTION_M[band]
        if data.shape != (native, native) or data.dtype != np.uint16:
            raise self.malformed(where, f"band {band} is {data.dtype} {data.shape}, not uint16 {native} x {native}")
        return resample(data, self.size, self.upsampling)

    def _targets(self, labels: object, where: Path | str) -> np.ndarray:
        """The multi-hot row of a patch's CORINE labels in the chosen nomenclature."""
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise self.malformed(where, f"labels {labels!r} are not a list of CORINE class names")
        unknown = [label for label in labels if label not in LABELS_43]
        if unknown:
            raise self.malformed(where, f"label(s) {unknown} are not among BigEarthNet's 43 CORINE classes")
        mapping = dict(CLC_43_TO_19) if self.nomenclature == 19 else {clc: clc for clc in LABELS_43}
        row = np.zeros(len(self.classes), dtype=np.uint8)
        for label in labels:
            if mapping[label] is not None:
                row[self.classes.index(mapping[label])] = 1
        return row

    def _split_list(self, path: Path) -> list[str]:
        """The patch names of a split file: one a line, the Sentinel-2 name first (BigEarthNet-MM's
        lists add the matching Sentinel-1 name after a comma)."""
        with self.reading(path):
            lines = path.read_text().splitlines()
        names = [line.split(",")[0].strip() for line in lines if line.strip()]
        if not names:
            raise self.empty(f"{path} names no patch")
        return names

    def _allocate(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return (np.empty((n, self.size, self.size, len(self.bands)), dtype=np.uint16),
                np.empty((n, len(self.classes)), dtype=np.uint8))


class BigEarthNetS2(_BigEarthNet):
    """The archive's layout (BigEarthNet-S2-v1.0.tar.gz, or bigearthnet-common's examples): one
    folder per patch. With train.csv, val.csv and test.csv in root (the official lists), those
    are the splits; without, a seeded split stratified by the patches' rarest label."""

    name = "bigearthnet-s2"
    layout = ("<root>/<patch>/<patch>_B01.tif ... _B12.tif and _B8A.tif (uint16; 120 x 120 px at 10 m, "
              "60 x 60 at 20 m, 20 x 20 at 60 m) and <patch>/<patch>_labels_metadata.json with 'labels', one "
              "folder per patch as in BigEarthNet-v1.0; optionally <root>/train.csv, val.csv, test.csv of patch names")

    def _check(self) -> None:
        if next((p for p in self.root.iterdir() if p.is_dir()), None) is None:
            raise self.missing(self.root / "<patch>" / "<patch>_labels_metadata.json")
        lists = [self.root / f"{split}.csv" for split in SPLITS]
        if any(p.exists() for p in lists):
            for p in lists:
                if not p.exists():
                    raise self.missing(p)

    def _targets_of(self, name: str) -> np.ndarray:
        path = self.root / name / f"{name}_labels_metadata.json"
        metadata = self.read_json(path)
        return self._targets(metadata.get("labels") if isinstance(metadata, dict) else None, path)

    def patch_names(self) -> list[str]:
        """The split's patch names in load order, from its list or from the seeded stratified split."""
        listed = self.root / f"{self.split}.csv"
        if listed.exists():
            return self._split_list(listed)
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        y = np.stack([self._targets_of(name) for name in names])
        index = split_indices(y, SPLIT_FRACTIONS, self.seed)[SPLITS.index(self.split)]
        if not len(index):
            raise self.empty(f"the seeded split of {len(names)} patches, stratified by their rarest label, leaves it "
                             f"none; add the official train.csv, val.csv and test.csv to {self.root}")
        return [names[i] for i in index]

    def load(self) -> PatchSet:
        names = self.patch_names()
        x, y = self._allocate(len(names))
        for i, name in enumerate(names):
            for j, band in enumerate(self.bands):
                path = self.root / name / f"{name}_{band}.tif"
                with self.reading(path):
                    data = read_geotiff(path)
                x[i, :, :, j] = self._band(data[:, :, 0] if data.shape[2] == 1 else data, band, path)
            y[i] = self._targets_of(name)
        return PatchSet(x, y, self.bands, self.classes, self.source)


class BigEarthNetS2Npz(_BigEarthNet):
    """BigEarthNet v1 patches packed in one npz, as in ../shared/data/bigearthnet/configilm_BENv1
    (converted from configilm's encoded sample): arrays '<patch>/<band>' at native size, a labels
    json beside it, and the split lists train.csv, val.csv, test.csv. Only the split's arrays are
    read from the npz."""

    name = "bigearthnet-s2-npz"
    layout = ("<root>/<name>.npz with uint16 arrays '<patch>/01' ... '<patch>/12' and '<patch>/8A' at native "
              "size (120, 60 or 20 px), <root>/<name>_labels.json mapping each patch to its 'labels', and "
              "<root>/train.csv, val.csv, test.csv of patch names")

    def _check(self) -> None:
        for path in (self._npz(), self._labels_path(), self.root / f"{self.split}.csv"):
            if not path.is_file():
                raise self.missing(path)

    def _npz(self) -> Path:
        found = sorted(self.root.glob("*.npz"))
        if len(found) > 1:
            raise DatasetError(f"{self.name}: {self.root} holds {len(found)} .npz files; expected one ({self.layout})")
        return found[0] if found else self.root / "<name>.npz"

    def _labels_path(self) -> Path:
        npz = self._npz()
        return npz.with_name(f"{npz.stem}_labels.json")

    def patch_names(self) -> list[str]:
        """The split's patch names in load order, from its list."""
        return self._split_list(self.root / f"{self.split}.csv")

    def load(self) -> PatchSet:
        names = self.patch_names()
        labels_path = self._labels_path()
        labels = self.read_json(labels_path)
        if not isinstance(labels, dict):
            raise self.malformed(labels_path, "it is not a map of patch names to their labels")
        x, y = self._allocate(len(names))
        npz = self._npz()
        with self.reading(npz), np.load(npz, allow_pickle=False) as arrays:
            for i, name in enumerate(names):
                for j, band in enumerate(self.bands):
                    key = f"{name}/{band[1:]}"  # the npz drops the B: '01' .. '12', '8A'
                    if key not in arrays:
                        raise self.malformed(npz, f"it has no array {key!r}")
                    x[i, :, :, j] = self._band(arrays[key], band, f"{npz}[{key!r}]")
                if not isinstance(labels.get(name), dict):
                    raise self.malformed(labels_path, f"it has no entry for patch {name}")
                y[i] = self._targets(labels[name].get("labels"), labels_path)
        return PatchSet(x, y, self.bands, self.classes, self.source)
