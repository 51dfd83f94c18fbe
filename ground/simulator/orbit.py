"""The orbit and what it sees: a satellite from a TLE (SGP4), ground stations and their passes,
and the ground track's sunlight from skyfield with the JPL DE421 ephemeris that skyfield-data
ships (nothing is downloaded)."""

from __future__ import annotations

import importlib.resources
import math
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache, cached_property
from typing import Annotated

import numpy as np
from msgspec import Meta
from sgp4.api import SGP4_ERRORS, Satrec, jday
from sgp4.conveniences import sat_epoch_datetime
from skyfield.api import EarthSatellite, load, load_file, wgs84
from skyfield.errors import EphemerisRangeError
from skyfield.nutationlib import iau2000b_radians

from ground.downlink.link import format_seconds
from ground.errors import SimulationError
from onboard.schema import Name, Schema

# WGS84 (km)
EARTH_A = 6378.137
EARTH_F = 1 / 298.257223563
EARTH_E2 = EARTH_F * (2 - EARTH_F)

_BISECTIONS = 14  # halvings of a time step when refining AOS and LOS: 10 s -> under 1 ms
_GOLDEN_STEPS = 20  # golden-section steps when refining a culmination: 20 s -> 2 ms


def tle_checksum(line: str) -> int:
    """The TLE checksum of a line's first 68 columns: digits summed, each '-' counting 1, mod 10."""
    return sum(int(c) if c.isdigit() else c == "-" for c in line[:68]) % 10


@dataclass(frozen=True)
class Orbit:
    """A satellite's orbit as a two-line element set."""

    name: str
    line1: str
    line2: str

    def __post_init__(self) -> None:
        for number, line in ((1, self.line1), (2, self.line2)):
            if len(line) != 69 or not line.startswith(f"{number} "):
                raise SimulationError(f"TLE line {number} must be 69 columns starting with '{number} ', got {line!r}")
            if not line[68].isdigit() or int(line[68]) != tle_checksum(line):
                raise SimulationError(f"TLE line {number} fails its checksum (column 69 is {line[68]!r}, "
                                      f"the line sums to {tle_checksum(line)})")
        if self.line1[2:7] != self.line2[2:7]:
            raise SimulationError(f"TLE lines are of two satellites ({self.line1[2:7]} and {self.line2[2:7]})")
        try:
            error, _, _ = self.satrec.sgp4(self.satrec.jdsatepoch, self.satrec.jdsatepochF)
        except ValueError as exc:
            raise SimulationError(f"TLE of {self.name} cannot be read: {exc}") from None
        if error:
            raise SimulationError(f"TLE of {self.name} does not propagate: {SGP4_ERRORS[error]}")

    @cached_property
    def satrec(self) -> Satrec:
        return Satrec.twoline2rv(self.line1, self.line2)

    @property
    def epoch(self) -> datetime:
        return sat_epoch_datetime(self.satrec)

    @property
    def period_s(self) -> float:
        return 2 * math.pi / self.satrec.no_kozai * 60

    def positions(self, start: datetime, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TEME and Earth-fixed positions (km, n x 3) at `t` seconds after `start`, and the Julian
        dates (UTC) they are for."""
        jd0, fr0 = jday(start.year, start.month, start.day, start.hour, start.minute,
                        start.second + start.microsecond / 1e6)
        fr = fr0 + np.asarray(t, dtype=np.float64) / 86400
        jd = np.full_like(fr, jd0)
        error, teme, _ = self.satrec.sgp4_array(jd, fr)
        if error.any():
            first = int(np.flatnonzero(error)[0])
            raise SimulationError(f"SGP4 fails for {self.name} {format_seconds(float(t[first]))} after "
                                  f"{start:%Y-%m-%d %H:%M} UTC: {SGP4_ERRORS[int(error[first])]}")
        return teme, _teme_to_earth_fixed(teme, jd + fr), jd + fr


class Station(Schema, kw_only=False):
    """A ground station: where it is, and the elevation (deg) above which it talks."""

    name: Name
    lat_deg: Annotated[float, Meta(ge=-90.0, le=90.0)]
    lon_deg: Annotated[float, Meta(ge=-180.0, le=180.0)]
    alt_m: Annotated[float, Meta(ge=-1e4, le=1e5)] = 0.0
    min_elevation_deg: Annotated[float, Meta(ge=0.0, lt=90.0)] = 5.0


def _gmst(jd: np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal angle (IAU 1982, the angle of SGP4's TEME frame), radians; UTC
    stands in for UT1 (under a second, 0.004 deg)."""
    t = (jd - 2451545.0) / 36525.0
    seconds = 67310.54841 + (876600.0 * 3600 + 8640184.812866) * t + 0.093104 * t**2 - 6.2e-6 * t**3
    return np.radians(seconds / 240.0) % (2 * np.pi)


def _teme_to_earth_fixed(r: np.ndarray, jd: np.ndarray) -> np.ndarray:
    theta = _gmst(jd)
    c, s = np.cos(theta), np.sin(theta)
    return np.column_stack([c * r[:, 0] + s * r[:, 1], -s * r[:, 0] + c * r[:, 1], r[:, 2]])


def _up(lat: np.ndarray | float, lon: np.ndarray | float) -> np.ndarray:
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]).reshape(-1, 3)


def elevation(station: Station, r: np.ndarray) -> np.ndarray:
    """The elevation (deg) of Earth-fixed positions `r` (km, n x 3) seen from `station`."""
    lat, lon = math.radians(station.lat_deg), math.radians(station.lon_deg)
    n = EARTH_A / math.sqrt(1 - EARTH_E2 * math.sin(lat) ** 2)
    h = station.alt_m / 1000
    site = np.array([(n + h) * math.cos(lat) * math.cos(lon), (n + h) * math.cos(lat) * math.sin(lon),
                     (n * (1 - EARTH_E2) + h) * math.sin(lat)])
    d = r - site
    return np.degrees(np.arcsin(d @ _up(lat, lon)[0] / np.linalg.norm(d, axis=1)))


@dataclass(frozen=True)
class Pass:
    station: str
    aos: float  # seconds after the start
    los: float
    max_elevation_deg: float


def find_passes(orbit: Orbit, stations: tuple[Station, ...], start: datetime, seconds: float,
                step_s: float = 10.0) -> list[Pass]:
    """Every pass over `stations` in [start, start + seconds], by AOS: sampled every `step_s`,
    then AOS and LOS refined by bisection and the culmination by golden-section search. A pass
    under way at either end is cut there."""
    t = np.linspace(0.0, seconds, math.ceil(seconds / step_s) + 1)
    _, r, _ = orbit.positions(start, t)
    found: list[Pass] = []
    for station in stations:
        el = elevation(station, r)
        above = el >= station.min_elevation_deg
        edges = np.flatnonzero(above[1:] != above[:-1])  # each crossing lies between t[edge] and t[edge + 1]
        crossings = _crossings(orbit, station, start, t[edges], t[edges + 1], above[edges])
        aos = np.array([0.0] * bool(above[0]) + [c for c, k in zip(crossings, edges) if not above[k]])
        los = np.array([c for c, k in zip(crossings, edges) if above[k]] + [seconds] * bool(above[-1]))
        # the highest sample of each pass, or of its neighbours for a pass shorter than a step
        first, last = np.maximum(np.searchsorted(t, aos) - 1, 0), np.searchsorted(t, los, side="right")
        top = t[np.array([a + int(np.argmax(el[a:b + 1])) for a, b in zip(first, last)], dtype=np.int64)]
        peaks = _culminations(orbit, station, start, np.maximum(top - step_s, aos), np.minimum(top + step_s, los))
        found += [Pass(station.name, *map(float, p)) for p in zip(aos, los, peaks)]
    return sorted(found, key=lambda p: p.aos)


def _elevations(orbit: Orbit, station: Station, start: datetime, t: np.ndarray) -> np.ndarray:
    return elevation(station, orbit.positions(start, t)[1])


def _crossings(orbit: Orbit, station: Station, start: datetime, lo: np.ndarray, hi: np.ndarray,
               above_lo: np.ndarray) -> list[float]:
    """The times between `lo` and `hi` where the elevation crosses the station's minimum, all
    bisected together."""
    for _ in range(_BISECTIONS if len(lo) else 0):
        mid = (lo + hi) / 2
        before = (_elevations(orbit, station, start, mid) >= station.min_elevation_deg) == above_lo
        lo, hi = np.where(before, mid, lo), np.where(before, hi, mid)
    return ((lo + hi) / 2).tolist()


def _culminations(orbit: Orbit, station: Station, start: datetime, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The highest elevation between `lo` and `hi` (one peak each), by golden-section search, all
    together."""
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(_GOLDEN_STEPS if len(lo) else 0):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        left = _elevations(orbit, station, start, a) >= _elevations(orbit, station, start, b)
        lo, hi = np.where(left, lo, a), np.where(left, b, hi)
    return _elevations(orbit, station, start, (lo + hi) / 2) if len(lo) else np.zeros(0)


def schedule_contacts(passes: list[Pass]) -> list[Pass]:
    """The satellite talks to one station at a time: it keeps a station until LOS, then takes
    whichever is still or next in view. Passes are cut to the time they are used."""
    contacts: list[Pass] = []
    busy_until = -math.inf
    for p in passes:
        begin = max(p.aos, busy_until)
        if p.los > begin:
            contacts.append(replace(p, aos=begin))
            busy_until = p.los
    return contacts


@dataclass(frozen=True)
class Track:
    """The ground track's sunlight, one value per time."""

    sunlit: np.ndarray  # 1.0 where the satellite is in sunlight, 0.0 in the Earth's shadow
    lat: np.ndarray  # geodetic latitude (radians) of the point below the satellite
    lon: np.ndarray  # and its longitude
    sun_elevation_deg: np.ndarray  # the Sun's elevation at that point


@cache
def _ephemeris():
    """JPL DE421 as the skyfield-data package ships it (read directly: the package's path helper
    warns about its Earth-orientation table, which this does not use)."""
    return load_file(str(importlib.resources.files("skyfield_data") / "data" / "de421.bsp"))


def ground_track(orbit: Orbit, start: datetime, t: np.ndarray) -> Track:
    """Sunlight on the satellite and below it at `t` seconds after `start`, by skyfield: the
    satellite is sunlit unless the Earth (a sphere) hides the Sun's centre from it."""
    ts = load.timescale(builtin=True)  # the leap seconds and Delta T skyfield ships: no download
    times = ts.utc(start.year, start.month, start.day, start.hour, start.minute,
                   start.second + start.microsecond / 1e6 + np.asarray(t, dtype=np.float64))
    # IAU 2000B nutation (1 mas) for 100,000s of times, as skyfield's own almanac does; 2000A's
    # 1,400 terms would take seconds and change nothing here.
    times._nutation_angles_radians = iau2000b_radians(times)
    eph = _ephemeris()
    try:
        satellite = EarthSatellite(orbit.line1, orbit.line2, orbit.name, ts).at(times)
        lat, lon = wgs84.latlon_of(satellite)
        below = eph["earth"] + wgs84.latlon(lat.degrees, lon.degrees)
        sun_elevation, _, _ = below.at(times).observe(eph["sun"]).apparent().altaz()
        sunlit = satellite.is_sunlit(eph)
    except EphemerisRangeError:
        raise SimulationError(f"the Sun's ephemeris (JPL DE421) covers 1900 to 2050, not {start:%Y-%m-%d}") from None
    return Track(np.asarray(sunlit, dtype=np.float64), lat.radians, lon.radians, sun_elevation.degrees)
