"""Cheap pre-screening of tiles before any model runs: no-data, cloud by spectral tests, and a
region of interest. Tests look at every `step`-th pixel of a tile in each direction, which is
enough to estimate a fraction and costs a small share of an inference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEEP, NODATA, CLOUD, OUTSIDE = 0, 1, 2, 3
REASONS = {NODATA: "no-data", CLOUD: "cloud", OUTSIDE: "outside region of interest"}
CLOUD_BANDS = ("B02", "B04", "B08")


@dataclass(frozen=True)
class Screening:
    nodata_value: float | None = 0  # a pixel with this value in every band has no data
    max_nodata: float = 0.5  # skip a tile with more no-data than this fraction
    cloud: bool = True  # needs the scene to have B02, B04 and B08
    max_cloud: float = 0.6  # skip a tile with more cloudy pixels than this fraction
    reflectance_per_dn: float = 1e-4  # Sentinel-2 L1C/L2A digital numbers are reflectance x 10000
    roi: tuple[int, int, int, int] | None = None  # row0, col0, row1, col1 in scene pixels
    step: int = 4


def cloudy(b02: np.ndarray, b04: np.ndarray, b08: np.ndarray, reflectance_per_dn: float) -> np.ndarray:
    """Thick cloud: bright in the blue and the red, and spectrally flat into the near infrared
    (vegetation and soil are not), after the single-threshold tests of Sen2Cor's cloud screening."""
    blue, red, nir = (b.astype(np.float32) * np.float32(reflectance_per_dn) for b in (b02, b04, b08))
    flat = np.abs(nir - red) < 0.25 * (nir + red) + 1e-6
    return (blue > 0.18) & (red > 0.18) & flat


def _fraction_per_tile(mask: np.ndarray, cols: np.ndarray, width: int, step: int) -> np.ndarray:
    """Fraction of True in each tile's columns [c, c + width) of a decimated (rows, cols/step)
    mask, through a running sum over its columns."""
    per_col = np.concatenate([[0], np.cumsum(mask.sum(axis=0))])
    lo = np.clip(-(-cols // step), 0, mask.shape[1])
    hi = np.clip(-(-(cols + width) // step), 0, mask.shape[1])
    n = np.maximum((hi - lo) * mask.shape[0], 1)
    return (per_col[hi] - per_col[lo]) / n


def screen_tiles(strip: np.ndarray, bands: tuple[str, ...], row0: int, cols: np.ndarray,
                 tile: tuple[int, int], config: Screening) -> np.ndarray:
    """A reason code per tile (KEEP, NODATA, CLOUD or OUTSIDE) for one row of tiles: those whose
    top-left corners are (row0, c) for c in `cols`, in `strip` (band, rows from row0, all scene
    columns)."""
    th, tw = tile
    s = config.step
    codes = np.zeros(len(cols), dtype=np.uint8)
    window = strip[:, :th:s, ::s]
    if config.nodata_value is not None:
        empty = (window == config.nodata_value).all(axis=0)
        codes[_fraction_per_tile(empty, cols, tw, s) > config.max_nodata] = NODATA
    if config.cloud and all(b in bands for b in CLOUD_BANDS):
        b02, b04, b08 = (window[bands.index(b)] for b in CLOUD_BANDS)
        cloud = _fraction_per_tile(cloudy(b02, b04, b08, config.reflectance_per_dn), cols, tw, s) > config.max_cloud
        codes[(codes == KEEP) & cloud] = CLOUD
    if config.roi is not None:
        r0, c0, r1, c1 = config.roi
        outside = (row0 >= r1) | (row0 + th <= r0) | (cols >= c1) | (cols + tw <= c0)
        codes[outside] = OUTSIDE
    return codes
