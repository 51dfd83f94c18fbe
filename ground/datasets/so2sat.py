"""So2Sat LCZ42 (Zhu et al. 2020): co-registered Sentinel-1 and Sentinel-2 patches of 32 x 32 px
at 10 m over 42 cities (plus 10 for validation and testing), labelled with 17 local climate
zones. One HDF5 file per split, so a split reads only its own file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ground.datasets.base import Dataset
from ground.datasets.patches import PatchSet

FILES = {"train": "training.h5", "val": "validation.h5", "test": "testing.h5"}
# sen1, in file order: the unfiltered complex VH and VV (real, imaginary), the refined-Lee-filtered
# VH and VV intensities, and the real and imaginary part of the filtered covariance matrix's
# off-diagonal element (So2Sat LCZ42 documentation).
S1_CHANNELS = ("VH_real", "VH_imag", "VV_real", "VV_imag", "VH_lee", "VV_lee", "VH_VV_real", "VH_VV_imag")
S2_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")  # sen2, in file order
SENSORS = {"sen1": S1_CHANNELS, "sen2": S2_BANDS}
# LCZ 1-10 and A-G, as Stewart and Oke (2012) name them; label column i is class i.
LCZ_CLASSES = (
    "Compact high-rise", "Compact midrise", "Compact low-rise", "Open high-rise", "Open midrise",
    "Open low-rise", "Lightweight low-rise", "Large low-rise", "Sparsely built", "Heavy industry",
    "Dense trees", "Scattered trees", "Bush, scrub", "Low plants", "Bare rock or paved", "Bare soil or sand",
    "Water",
)
SIZE = 32
CHUNK = 1024  # patches read and converted from float64 at a time: bounds the extra memory to ~170 MB


class So2SatLCZ42(Dataset):
    name = "so2sat-lcz42"
    all_bands = S1_CHANNELS + S2_BANDS
    classes = LCZ_CLASSES
    layout = ("<root>/training.h5, validation.h5 and testing.h5 of So2Sat LCZ42, each with sen1 "
              "(N x 32 x 32 x 8), sen2 (N x 32 x 32 x 10) and label (N x 17 one-hot), float64")

    @property
    def path(self) -> Path:
        return self.root / FILES[self.split]

    def _check(self) -> None:
        if not self.path.is_file():
            raise self.missing(self.path)

    def load(self) -> PatchSet:
        with self.reading(self.path), h5py.File(self.path, "r") as f:
            for key in ("label", *SENSORS):
                if key not in f or not isinstance(f[key], h5py.Dataset):
                    raise self.malformed(self.path, f"it has no dataset {key!r}")
            label = f["label"][()]
            n = len(label)
            if label.shape != (n, len(LCZ_CLASSES)):
                raise self.malformed(self.path, f"label is {label.shape}, not N x {len(LCZ_CLASSES)}")
            x = np.empty((n, SIZE, SIZE, len(self.bands)), dtype=np.float32)
            for key, names in SENSORS.items():
                wanted = [(j, names.index(b)) for j, b in enumerate(self.bands) if b in names]
                if not wanted:
                    continue  # this sensor's dataset is never read
                data = f[key]
                if data.shape != (n, SIZE, SIZE, len(names)):
                    raise self.malformed(self.path, f"{key} is {data.shape}, not {(n, SIZE, SIZE, len(names))}")
                out, src = (list(t) for t in zip(*wanted))
                for start in range(0, n, CHUNK):
                    x[start:start + CHUNK, :, :, out] = data[start:start + CHUNK][..., src]
        one_hot = ((label == 0) | (label == 1)).all(axis=1) & (label.sum(axis=1) == 1)
        if not one_hot.all():
            raise self.malformed(self.path, f"label row {int(np.argmin(one_hot))} is not one-hot")
        return PatchSet(x, label.argmax(axis=1).astype(np.int64), self.bands, self.classes, self.source)
