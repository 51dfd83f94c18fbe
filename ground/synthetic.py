"""A synthetic generator of EuroSAT-like labelled Sentinel-2 patches. SYNTHETIC: every set it
makes says so in its `source`; it serves smoke tests and the demo, never a real-data claim.

Each class has a surface-reflectance signature over the 13 Sentinel-2 bands (typical values for
the cover type, reflectance x 10000) and a texture: smooth water, blobby forest canopy, striped
crop fields, mottled bare soil, blocky urban fabric with shadows, and soft cloud over ground.
"""

from __future__ import annotations

import numpy as np

from ground.patches import DatasetError, PatchSet

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
    unknown = [b for b in bands if b not in S2_BANDS]
    if unknown:
        raise DatasetError(f"the synthetic generator makes Sentinel-2 bands only, not {','.join(unknown)}")
    missing = [c for c in classes if c not in SIGNATURES]
    if missing:
        raise DatasetError(f"no synthetic signature for class(es) {','.join(missing)}; known: {','.join(CLASSES)}")
    rng = np.random.default_rng(seed)
    band_idx = [S2_BANDS.index(b) for b in bands]
    xs, ys = [], []
    for label, cls in enumerate(classes):
        signature = np.asarray(SIGNATURES[cls], dtype=np.float64)[band_idx]
        # Per patch: overall brightness (illumination, moisture) and a per-band colour jitter.
        gain = rng.uniform(0.8, 1.2, (per_class, 1, 1, 1)) * rng.normal(1, 0.06, (per_class, 1, 1, len(bands)))
        x = _texture(cls, rng, per_class, size)[..., None] * signature * gain
        if cls == "cloud":
            # Cloud thins out over some of the patch and lets a random ground cover through.
            ground = np.stack([np.asarray(SIGNATURES[c], dtype=np.float64)[band_idx]
                               for c in rng.choice(["water", "forest", "crop", "bare_soil", "urban"], per_class)])
            opacity = np.clip(0.9 + 0.4 * smooth_noise(rng, per_class, size, 6), 0.35, 1)[..., None]
            x = opacity * x + (1 - opacity) * ground[:, None, None, :]
        else:
            x = _mix_in_neighbour(rng, x, cls, band_idx, size)
        x = x + rng.normal(0, 1, x.shape) * (0.01 * x + 15)  # sensor noise
        xs.append(np.clip(np.rint(x), 0, 65535).astype(np.uint16))
        ys.append(np.full(per_class, label, dtype=np.int64))
    return PatchSet(np.concatenate(xs), np.concatenate(ys), tuple(bands), tuple(classes), SOURCE)


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
