"""What the orbit gives each step of a simulation: sunlight, passes and contacts, the link's
capacity, and the scenes captured."""

from __future__ import annotations

import importlib.resources
import math
import zipfile
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import numpy as np

from ground.errors import SimulationError
from ground.simulator.config import Config
from ground.simulator.orbit import Pass, find_passes, ground_track, schedule_contacts


@cache
def _land_mask() -> np.ndarray:
    """Land (True) on a 0.1 deg grid, rows from 90 N, columns from 180 W: the 1 km GLOBE mask that
    the global-land-mask package ships, read block by block so its 933 MB never sit in memory."""
    try:
        source = importlib.resources.files("global_land_mask") / "globe_combined_mask_compressed.npz"
    except ModuleNotFoundError:
        raise SimulationError("imaging over land needs the global-land-mask package (pip install "
                              "'orbitlite[ground]'), or set imaging.over = \"any\"") from None
    cell, chunk = 12, 120  # 1/120 deg cells -> 0.1 deg, keeping the middle one; rows read at once
    with source.open("rb") as raw, zipfile.ZipFile(raw) as npz, npz.open("mask.npy") as f:
        version = np.lib.format.read_magic(f)
        (rows, cols), _, _ = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)(f)
        ocean = [np.frombuffer(f.read(cols * chunk), dtype=np.bool_).reshape(chunk, cols)[cell // 2::cell, cell // 2::cell]
                 for _ in range(rows // chunk)]
    return ~np.concatenate(ocean)


def _over_land(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    mask = _land_mask()
    rows = np.clip(((90 - np.degrees(lat)) / 0.1).astype(np.int64), 0, mask.shape[0] - 1)
    cols = np.clip(((np.degrees(lon) + 180) / 0.1).astype(np.int64), 0, mask.shape[1] - 1)
    return mask[rows, cols]


def _capture_steps(eligible: np.ndarray, orbit_number: np.ndarray, per_orbit: int) -> np.ndarray:
    """`per_orbit` steps of each orbit's eligible ones, at the middle of equal shares of them."""
    steps = np.flatnonzero(eligible)
    orbits = orbit_number[steps]
    rank = np.arange(len(steps)) - np.searchsorted(orbits, orbits)
    quota = per_orbit / np.bincount(orbits)[orbits]  # scenes per eligible step of the orbit
    return steps[np.floor((rank + 1) * quota + 0.5) > np.floor(rank * quota + 0.5)]


@dataclass(frozen=True)
class Geometry:
    """What the orbit gives each step: light, contacts, link capacity and captures."""

    start: datetime
    step_s: float
    t: np.ndarray  # step starts, seconds after `start`
    illumination: np.ndarray  # 1 in sunlight, 0 in the Earth's shadow
    passes: list[Pass]
    contacts: list[Pass]
    capacity: np.ndarray  # payload bytes the link carries in each step
    captures: np.ndarray  # each scene's step
    values: np.ndarray  # each scene's value score in [0, 1)

    @property
    def eclipse_fraction(self) -> float:
        return float(1 - self.illumination.mean())


def step_count(config: Config, days: float) -> int:
    if not 0 < days <= 366:
        raise SimulationError(f"days must be more than 0 and at most 366, got {days:g}")
    return math.ceil(days * 86400 / config.step_s)


def geometry(config: Config, days: float) -> Geometry:
    start, dt, n = config.start_time, config.step_s, step_count(config, days)
    t = np.arange(n) * dt
    track = ground_track(config.orbit, start, t)
    im = config.imaging
    eligible = track.sun_elevation_deg >= im.min_sun_elevation_deg
    if im.over == "land":
        eligible &= _over_land(track.lat, track.lon)
    captures = _capture_steps(eligible, (t // config.orbit.period_s).astype(np.int64), im.scenes_per_orbit)

    passes = find_passes(config.orbit, config.stations, start, n * dt, dt)
    contacts = schedule_contacts(passes)
    begin = np.array([c.aos + config.link.setup_s for c in contacts])
    end = np.array([c.los for c in contacts])
    used = np.clip(end - begin, 0, None)
    knots = np.column_stack([begin, np.maximum(begin, end)]).ravel()
    sent_by = np.column_stack([np.cumsum(used) - used, np.cumsum(used)]).ravel()  # link seconds at the knots
    link_seconds = np.interp(np.append(t, n * dt), knots, sent_by) if len(contacts) else np.zeros(n + 1)
    return Geometry(start, dt, t, track.sunlit, passes, contacts,
                    np.diff(link_seconds) * config.link.payload_bytes_per_s, captures,
                    np.random.default_rng(im.seed).random(len(captures)))
