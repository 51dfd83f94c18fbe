"""A synthetic generator of EuroSAT-like labelled Sentinel-2 patches, and of full-size scenes
written to disk strip by strip. SYNTHETIC: every set and scene it makes says so in its `source`;
they serve smoke tests, the demo, and scale and memory benchmarks, never a real-data claim.

Each class has a surface-reflectance signature over the 13 Sentinel-2 bands (typical values for
the cover type, reflectance x 10000) and a texture: smooth water, blobby forest canopy, striped
crop fields, mottled bare soil, blocky urban fabric with shadows, and soft cloud over ground.

`Synthetic` puts the generator behind the shape every dataset shares, so a command that takes a
dataset can run on it.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np

from ground.datasets.base import SPLIT_FRACTIONS, SPLITS, Dataset
from ground.datasets.patches import PatchSet
from ground.errors import DatasetError
from onboard.files import write_verified

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")

#                    B01   B02   B03   B04   B05   B06   B07   B08   B8A   B09  B10   B11   B12
SIGNATURES = {
    "water":      (800,  600,  520,  320,  250,  200,  180,  150,  130,  100,  20,   80,   60),
    "forest":     (300,  250,  450,  260,  700,  2200, 2800, 3000, 3100, 1000, 30,   1400, 600),
    "crop":       (400,  420,  760,  520,  1250, 2800, 3400, 3800, 3900, 1200, 40,   2100, 1050),
    "bare_soil":  (1000, 1100, 1400, 1800, 2100, 2300, 2450, 2600, 2750, 900,  50,   3300, 2800),
    "urban":      (1200, 1150, 1200, 1250, 1350, 1500, 1600, 1700, 1750, 600,  40,   1900, 1700),
    "cloud":      (6000, 6200, 6100, 6200, 6300, 6400, 6500, 6600, 6500, 2800, 900,  4000, 3000),
}
CLASSES = tuple(SIGNATURES)
SOURCE = "synthetic-eurosat-like"
SCENE_SOURCE = "synthetic-sentinel2-scene"
# How often each class covers a region of a synthetic scene.
SCENE_CLASS_SHARE = {"water": 0.14, "forest": 0.24, "crop": 0.26, "bare_soil": 0.12, "urban": 0.14, "cloud": 0.10}
GROUND_CLASSES = ("water", "forest", "crop", "bare_soil", "urban")  # what shows through thin cloud


def smooth_noise(rng: np.random.Generator, n: int, size: int, scale: float) -> np.ndarray:
    """n fields of unit-variance noise with a correlation length of about `scale` pixels."""
    white = rng.standard_normal((n, size, size))
    f = np.fft.fftfreq(size)
    kernel = np.exp(-2 * (np.pi * scale) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    field = np.fft.ifft2(np.fft.fft2(white) * kernel).real
    return field / np.sqrt(np.mean(kernel ** 2))  # the filtered noise's expected std


def _texture(cls: str, rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Relative brightness modulation (around 1) of each patch of a class."""
    if cls == "water":
        return 1 + 0.04 * smooth_noise(rng, n, size, 6)
    if cls == "forest":
        return 1 + 0.15 * smooth_noise(rng, n, size, 1.5) + 0.05 * smooth_noise(rng, n, size, 8)
    if cls == "crop":
        yy, xx = np.mgrid[0:size, 0:size]
        angle = rng.uniform(0, np.pi, (n, 1, 1))
        period = rng.uniform(3, 8, (n, 1, 1))
        stripes = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
        # Two fields at different growth stages, split along a random straight boundary.
        cut = (xx - size / 2) * np.cos(angle + 1.2) + (yy - size / 2) * np.sin(angle + 1.2)
        stage = np.where(cut > rng.uniform(-size / 3, size / 3, (n, 1, 1)), 1.0, rng.uniform(0.7, 1.1, (n, 1, 1)))
        return stage * (1 + 0.08 * stripes) + 0.04 * smooth_noise(rng, n, size, 2)
    if cls == "bare_soil":
        return 1 + 0.10 * smooth_noise(rng, n, size, 4) + 0.05 * smooth_noise(rng, n, size, 0.8)
    if cls == "urban":
        block = int(rng.integers(2, 5))
        cells = -(-size // block)
        roofs = rng.uniform(0.6, 1.5, (n, cells, cells))
        blocks = np.kron(roofs, np.ones((block, block)))[:, :size, :size]
        shadow = np.roll(blocks, 1, axis=2) > blocks + 0.3
        return blocks * np.where(shadow, 0.6, 1.0) + 0.05 * smooth_noise(rng, n, size, 1)
    if cls == "cloud":
        return 1 + 0.12 * smooth_noise(rng, n, size, 5)
    raise DatasetError(f"the synthetic generator has no texture for class {cls!r}")


def generate_patches(per_class: int, size: int = 32, bands: tuple[str, ...] = S2_BANDS,
                     classes: tuple[str, ...] = CLASSES, seed: int = 0) -> PatchSet:
    """`per_class` synthetic patches of size x size pixels for each class, uint16 reflectance
    x 10000 in the given Sentinel-2 bands."""
    band_idx = _band_indices(bands)
    missing = [c for c in classes if c not in SIGNATURES]
    if missing:
        raise DatasetError(f"no synthetic signature for class(es) {','.join(missing)}; known: {','.join(CLASSES)}")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, cls in enumerate(classes):
        signature = np.asarray(SIGNATURES[cls], dtype=np.float64)[band_idx]
        # Per patch: overall brightness (illumination, moisture) and a per-band colour jitter.
        gain = rng.uniform(0.8, 1.2, (per_class, 1, 1, 1)) * rng.normal(1, 0.06, (per_class, 1, 1, len(bands)))
        x = _texture(cls, rng, per_class, size)[..., None] * signature * gain
        if cls == "cloud":
            # Cloud thins out over some of the patch and lets a random ground cover through.
            ground = np.stack([np.asarray(SIGNATURES[c], dtype=np.float64)[band_idx]
                               for c in rng.choice(GROUND_CLASSES, per_class)])
            opacity = np.clip(0.9 + 0.4 * smooth_noise(rng, per_class, size, 6), 0.35, 1)[..., None]
            x = opacity * x + (1 - opacity) * ground[:, None, None, :]
        else:
            x = _mix_in_neighbour(rng, x, cls, band_idx, size)
        x = x + rng.normal(0, 1, x.shape) * (0.01 * x + 15)  # sensor noise
        xs.append(np.clip(np.rint(x), 0, 65535).astype(np.uint16))
        ys.append(np.full(per_class, label, dtype=np.int64))
    return PatchSet(np.concatenate(xs), np.concatenate(ys), tuple(bands), tuple(classes), SOURCE)


def _band_indices(bands: tuple[str, ...]) -> list[int]:
    unknown = [b for b in bands if b not in S2_BANDS]
    if unknown:
        raise DatasetError(f"the synthetic generator makes Sentinel-2 bands only, not {','.join(unknown)}")
    return [S2_BANDS.index(b) for b in bands]


def _mix_in_neighbour(rng: np.random.Generator, x: np.ndarray, cls: str, band_idx: list[int], size: int) -> np.ndarray:
    """A third of the patches get a corner (under a quarter of the area) of another ground
    cover, as real patches straddle boundaries; the label stays the dominant class."""
    n = len(x)
    others = [c for c in CLASSES if c not in (cls, "cloud")]
    chosen = rng.random(n) < 1 / 3
    for i in np.flatnonzero(chosen):
        other = np.asarray(SIGNATURES[others[rng.integers(len(others))]], dtype=np.float64)[band_idx]
        h, w = rng.integers(max(1, size // 8), size // 2 + 1, 2)
        r0 = 0 if rng.random() < 0.5 else size - h
        c0 = 0 if rng.random() < 0.5 else size - w
        x[i, r0:r0 + h, c0:c0 + w, :] = other * rng.uniform(0.85, 1.15)
    return x


@dataclass(frozen=True)
class SyntheticScene:
    """A SYNTHETIC Sentinel-2 scene on disk: a (band, row, col) uint16 `.npy` of reflectance x 10000
    made of square land-cover regions of tile x tile pixels, one class each; region (i, j), rows
    i * tile .. and cols j * tile .., is of class classes[class_map[i, j]]."""

    path: Path
    layout_path: Path  # the class map with its classes, bands, tile, seed and source (`.npz`)
    shape: tuple[int, int]
    bands: tuple[str, ...]
    classes: tuple[str, ...]
    class_map: np.ndarray  # ceil(rows / tile) x ceil(cols / tile), uint8
    tile: int
    source: str = SCENE_SOURCE


def write_synthetic_scene(path: Path, rows: int = 10980, cols: int = 10980, bands: tuple[str, ...] = S2_BANDS,
                          seed: int = 0, tile: int = 256, workers: int = 2) -> SyntheticScene:
    """Write a SYNTHETIC scene of rows x cols pixels (a full Sentinel-2 L1C tile by default: 10980 x
    10980 x 13 bands, 3.1 GB) to `path` (`.npy`), one strip of regions (tile x cols px) at a time in
    `workers` processes, each holding a few float32 arrays of one strip (about 110 MB peak RSS at
    full size); the whole scene is never in memory. Its class map goes beside it as
    `<name>.classes.npz`. The scene appears under `path` only once complete. Each region takes its
    class's signature and texture, as the synthetic patches do; cloud regions let a random ground
    cover through where they thin out."""
    path = Path(path)
    bands = tuple(bands)
    _band_indices(bands)
    if rows < 1 or cols < 1 or tile < 8:
        raise DatasetError(f"a synthetic scene needs rows, cols >= 1 and tile >= 8, got {rows} x {cols}, tile {tile}")
    class_map = np.random.default_rng(seed).choice(
        [CLASSES.index(c) for c in SCENE_CLASS_SHARE], p=list(SCENE_CLASS_SHARE.values()),
        size=(-(-rows // tile), -(-cols // tile)),
    ).astype(np.uint8)
    part = path.with_name(path.name + ".part")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(np.dtype("<u2")), "fortran_order": False,
                 "shape": (len(bands), rows, cols)})
    try:
        with open(part, "wb") as f:
            f.write(header.getvalue())
            f.truncate(header.tell() + len(bands) * rows * cols * 2)
        jobs = [(str(part), header.tell(), rows, cols, bands, seed, tile, i, class_map[i]) for i in range(len(class_map))]
        if workers <= 1 or len(jobs) == 1:
            for job in jobs:
                _write_region_row(*job)
        else:
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
                for _ in pool.map(_write_region_row, *zip(*jobs)):
                    pass
        os.replace(part, path)
    except OSError as exc:
        raise DatasetError(f"cannot write the synthetic scene {path}: {exc.strerror or exc}") from None
    finally:
        part.unlink(missing_ok=True)
    layout_path = path.with_name(path.stem + ".classes.npz")
    layout = io.BytesIO()
    np.savez(layout, class_map=class_map, classes=np.array(CLASSES), bands=np.array(bands), tile=tile, seed=seed,
             source=SCENE_SOURCE)
    write_verified(layout_path, layout.getvalue())
    return SyntheticScene(path, layout_path, (rows, cols), bands, CLASSES, class_map, tile)


def _write_region_row(part: str, header_bytes: int, rows: int, cols: int, bands: tuple[str, ...], seed: int,
                      tile: int, i: int, classes_row: np.ndarray) -> None:
    """Generate the strip of regions i (rows i * tile ..) of every band and write it in place."""
    rng = np.random.default_rng([seed, i])  # per strip, so the scene does not depend on the worker count
    band_idx = _band_indices(bands)
    r0 = i * tile
    h = min(tile, rows - r0)
    texture = np.empty((h, cols), np.float32)
    veil = np.zeros((h, cols), np.float32)  # how much ground shows through cloud
    gain = np.empty((len(classes_row), len(bands)), np.float32)
    ground = np.zeros_like(gain)
    for j, label in enumerate(classes_row):
        cls = CLASSES[label]
        c0, c1 = j * tile, min((j + 1) * tile, cols)
        region = _texture(cls, rng, 1, tile)[0, :h, :c1 - c0]
        signature = np.asarray(SIGNATURES[cls], dtype=np.float64)[band_idx]
        gain[j] = signature * rng.uniform(0.8, 1.2) * rng.normal(1, 0.06, len(bands))
        if cls == "cloud":
            opacity = np.clip(0.9 + 0.4 * smooth_noise(rng, 1, tile, 6)[0, :h, :c1 - c0], 0.35, 1)
            region = region * opacity
            veil[:, c0:c1] = 1 - opacity
            ground[j] = np.asarray(SIGNATURES[GROUND_CLASSES[rng.integers(len(GROUND_CLASSES))]])[band_idx]
        texture[:, c0:c1] = region
    gain_cols = np.repeat(gain, tile, axis=0)[:cols]
    ground_cols = np.repeat(ground, tile, axis=0)[:cols]
    # One field of sensor noise for the strip, each band reading it from its own random offset:
    # fresh normals for every band would cost more than all the rest of the generator.
    noise = rng.standard_normal(h * cols + 65536, dtype=np.float32)
    offsets = rng.integers(0, 65536, len(bands))
    cloudy = bool(veil.any())
    fd = os.open(part, os.O_WRONLY)
    try:
        for b in range(len(bands)):
            x = texture * gain_cols[:, b]
            if cloudy:
                x += veil * ground_cols[:, b]
            x += noise[offsets[b]:offsets[b] + h * cols].reshape(h, cols) * (np.float32(0.01) * x + np.float32(15))
            np.rint(x, out=x)
            np.clip(x, 0, 65535, out=x)
            data = x.astype("<u2")
            offset = header_bytes + (b * rows + r0) * cols * 2
            if os.pwrite(fd, data, offset) != data.nbytes:
                raise OSError(f"short write at byte {offset}")
    finally:
        os.close(fd)


class Synthetic(Dataset):
    """The generated patches as a dataset; every split says SYNTHETIC in its `source`."""

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
