"""Downlink budget simulation: an orbit from a TLE (SGP4), passes over ground stations, sunlight
and eclipse, an imaging plan, on-board processing paid from a battery, and the store and downlink
queue, stepped over days in three modes:

- `raw`: every scene goes down raw;
- `products`: scenes are processed on board and only their products go down;
- `value`: products of every scene, then raw extracts (thumbnails or alert tiles) of the most
  valuable scenes, highest value first, as the link allows.

Geometry is computed for every step at once with numpy; the store, queues and battery are then
stepped in order, since each step depends on the one before.
"""

from __future__ import annotations

import bisect
import importlib.resources
import io
import json
import math
import tomllib
import zipfile
from collections import deque
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Callable, get_type_hints

import numpy as np
from sgp4.api import SGP4_ERRORS, Satrec, jday
from sgp4.conveniences import sat_epoch_datetime

from ground.downlink import Link, format_bytes, format_seconds, parse_link
from onboard.contracts.tiling import TileGrid
from onboard.errors import OrbitliteError
from onboard.files import write_verified
from onboard.run.boards import BOARDS, BoardProfile


class SimulationError(OrbitliteError):
    """A simulation config, TLE or request that makes no sense."""


MODES = ("raw", "products", "value")

# WGS84 (km); the Sun (km).
EARTH_A = 6378.137
EARTH_F = 1 / 298.257223563
EARTH_E2 = EARTH_F * (2 - EARTH_F)
SUN_RADIUS = 696_000.0
AU = 149_597_870.7

_BISECTIONS = 14  # halvings of a time step when refining AOS and LOS: 10 s -> under 1 ms
_GOLDEN_STEPS = 20  # golden-section steps when refining a culmination: 20 s -> 2 ms


# ---------------------------------------------------------------- configuration


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


@dataclass(frozen=True)
class Station:
    name: str
    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0
    min_elevation_deg: float = 5.0

    def __post_init__(self) -> None:
        if not (-90 <= self.lat_deg <= 90 and -180 <= self.lon_deg <= 180 and math.isfinite(self.alt_m)):
            raise SimulationError(f"station {self.name}: latitude must be in [-90, 90] and longitude in "
                                  f"[-180, 180], got {self.lat_deg}, {self.lon_deg} (altitude {self.alt_m} m)")
        if not 0 <= self.min_elevation_deg < 90:
            raise SimulationError(f"station {self.name}: min_elevation_deg must be in [0, 90), got {self.min_elevation_deg}")


@dataclass(frozen=True)
class LinkPlan:
    rate: str | float = "s-band"  # a preset of ground.downlink.LINKS or a rate in bit/s
    setup_s: float = 60.0  # per contact, before data flows: acquisition, lock, handshake
    # Space Packet (6 B per 1024 B) + TM frame header and CRC (8 B per 1115 B) + ASM (4 B) +
    # Reed-Solomon (255,223) parity: what is not payload on air.
    protocol_overhead: float = 0.14
    transmit_watts: float = 6.0  # the transmitter's draw while it sends

    def __post_init__(self) -> None:
        parse_link(str(self.rate))  # refuse a bad rate now
        if not (self.setup_s >= 0 and 0 <= self.protocol_overhead < 1 and self.transmit_watts >= 0):
            raise SimulationError(f"link: needs setup_s >= 0, protocol_overhead in [0, 1) and transmit_watts >= 0, "
                                  f"got {self.setup_s}, {self.protocol_overhead}, {self.transmit_watts}")

    @property
    def link(self) -> Link:
        return parse_link(str(self.rate))

    @property
    def payload_bytes_per_s(self) -> float:
        return self.link.bits_per_second / 8 * (1 - self.protocol_overhead)


@dataclass(frozen=True)
class ImagingPlan:
    scenes_per_orbit: int = 4
    over: str = "land"  # "land" or "any": where scenes are taken, when the ground below is sunlit
    min_sun_elevation_deg: float = 10.0  # at the sub-satellite point
    scene_bytes: int = 600_000_000  # a Sentinel-2 L1C tile
    tiles_per_scene: int = len(TileGrid.covering((10980, 10980), (32, 32)))  # its 10 m grid in 32 px tiles
    # Class map at one pixel per tile (344 x 344), compressed, with histogram and header; per-tile
    # confidences would add some 50 kB.
    product_bytes: int = 20_000
    extract_bytes: int = 6_000_000  # `value` mode: ~1% of the scene, raw tiles around what it found
    seed: int = 0  # of the scenes' value scores

    def __post_init__(self) -> None:
        if self.over not in ("land", "any"):
            raise SimulationError(f"imaging.over must be \"land\" or \"any\", got {self.over!r}")
        if self.scenes_per_orbit < 0 or min(self.scene_bytes, self.tiles_per_scene, self.product_bytes,
                                             self.extract_bytes) <= 0:
            raise SimulationError("imaging: scenes_per_orbit must be >= 0 and the sizes and tiles positive")
        if not -90 <= self.min_sun_elevation_deg <= 90:
            raise SimulationError(f"imaging.min_sun_elevation_deg must be in [-90, 90], got {self.min_sun_elevation_deg}")


@dataclass(frozen=True)
class Processing:
    board: BoardProfile = BOARDS["rpi-4"]
    # Assumed for the 10.9k-parameter CNN-l int8 on a Raspberry Pi 4, one thread, batch 256;
    # measure it with `orbitlite hil bench --json` on the board and give that file instead.
    tiles_per_s: float = 2000.0
    source: str = "assumed"  # where tiles_per_s comes from
    run_in_eclipse: bool = True

    def __post_init__(self) -> None:
        if not self.tiles_per_s > 0:
            raise SimulationError(f"processing.tiles_per_s must be positive, got {self.tiles_per_s}")


@dataclass(frozen=True)
class PowerPlan:
    battery_wh: float = 80.0
    initial_charge: float = 1.0  # fraction of battery_wh
    solar_watts: float = 30.0  # generated in full sunlight, averaged over the attitude
    platform_watts: float = 8.0  # the bus and the camera, always drawn (the board's idle draw is added)
    reserve: float = 0.3  # fraction of the battery that processing and transmitting never use

    def __post_init__(self) -> None:
        if not (self.battery_wh > 0 and self.solar_watts >= 0 and self.platform_watts >= 0):
            raise SimulationError("power: battery_wh must be positive, solar_watts and platform_watts >= 0")
        if not 0 <= self.reserve < 1 or not self.reserve <= self.initial_charge <= 1:
            raise SimulationError(f"power: needs 0 <= reserve < 1 and reserve <= initial_charge <= 1, "
                                  f"got {self.reserve} and {self.initial_charge}")


# A Sentinel-2A-like element set: 786 km sun-synchronous, 98.57 deg, 10:30 descending node
# (RAAN set from the mean Sun at the epoch, the March 2025 equinox).
DEFAULT_ORBIT = Orbit(
    "SENTINEL-2A",
    "1 40697U 15028A   25079.50000000  .00000082  00000-0  47860-4 0  9999",
    "2 40697  98.5689 155.7726 0001138  95.2431 264.8893 14.30817521506736",
)
DEFAULT_STATIONS = (
    Station("SvalSat", 78.23, 15.39, 500.0, 5.0),
    Station("Inuvik", 68.32, -133.55, 100.0, 5.0),
)


@dataclass(frozen=True)
class Config:
    orbit: Orbit = DEFAULT_ORBIT
    stations: tuple[Station, ...] = DEFAULT_STATIONS
    link: LinkPlan = LinkPlan()
    imaging: ImagingPlan = ImagingPlan()
    processing: Processing = Processing()
    power: PowerPlan = PowerPlan()
    storage_bytes: int = 64_000_000_000
    step_s: float = 10.0
    start: datetime | None = None  # UTC; None: the TLE's epoch

    def __post_init__(self) -> None:
        if not self.stations:
            raise SimulationError("stations: give at least one ground station")
        if not (self.storage_bytes > 0 and 1 <= self.step_s <= 60):
            raise SimulationError(f"storage_bytes must be positive and step_s in [1, 60], "
                                  f"got {self.storage_bytes} and {self.step_s}")

    @property
    def start_time(self) -> datetime:
        return self.start or self.orbit.epoch

    def with_link(self, rate: str) -> "Config":
        return replace(self, link=replace(self.link, rate=rate))


def load_config(path: Path | None) -> Config:
    """The config in a JSON (.json) or TOML (.toml) file, each key defaulting as in `Config`;
    None gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SimulationError(f"config {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SimulationError(f"config {path} is not text") from None
    try:
        if path.suffix == ".json":
            raw = json.loads(text)
        elif path.suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            raise SimulationError(f"config {path}: name it .json or .toml")
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise SimulationError(f"config {path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    try:
        return _config(raw, path.parent)
    except OrbitliteError as exc:
        raise SimulationError(f"config {path}: {exc}") from None


def _config(raw: Any, base: Path) -> Config:
    top = _mapping(raw, "the config", {f.name for f in fields(Config)})
    values: dict[str, Any] = {}
    if "orbit" in top:
        orbit = _mapping(top["orbit"], "orbit", {"name", "tle"})
        tle = orbit.get("tle")
        if not (isinstance(tle, list) and len(tle) == 2 and all(isinstance(line, str) for line in tle)):
            raise SimulationError("orbit.tle must be a list of the TLE's two lines")
        values["orbit"] = Orbit(str(orbit.get("name", "satellite")), tle[0].rstrip(), tle[1].rstrip())
    if "stations" in top:
        if not isinstance(top["stations"], list):
            raise SimulationError("stations must be a list of tables (name, lat_deg, lon_deg, alt_m, min_elevation_deg)")
        values["stations"] = tuple(_dataclass(Station, s, f"stations[{i}]") for i, s in enumerate(top["stations"]))
    for name, cls in (("link", LinkPlan), ("imaging", ImagingPlan), ("power", PowerPlan)):
        if name in top:
            values[name] = _dataclass(cls, top[name], name)
    if "processing" in top:
        values["processing"] = _processing(top["processing"], base)
    if "storage_bytes" in top:
        values["storage_bytes"] = _coerce(top["storage_bytes"], int, "storage_bytes")
    if "step_s" in top:
        values["step_s"] = _coerce(top["step_s"], float, "step_s")
    if "start" in top:
        values["start"] = _datetime(top["start"])
    return Config(**values)


def _mapping(raw: Any, where: str, known: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SimulationError(f"{where} must be a table of keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - known)
    if unknown:
        prefix = "" if where == "the config" else f"{where}."
        raise SimulationError(f"unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(known))})")
    return raw


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` as the type `hint` (float, int, str, bool, or a union of them), or an error."""
    options = getattr(hint, "__args__", (hint,))
    if isinstance(value, bool):
        if bool in options:
            return value
    elif isinstance(value, (int, float)):
        if float in options:
            return float(value)
        if int in options and float(value).is_integer():
            return int(value)
    elif isinstance(value, str) and str in options:
        return value
    wanted = " or ".join("a number" if t in (int, float) else t.__name__ for t in options)
    raise SimulationError(f"{where} must be {wanted}, got {value!r}")


def _dataclass(cls: type, raw: Any, where: str) -> Any:
    hints = get_type_hints(cls)
    table = _mapping(raw, where, {f.name for f in fields(cls)})
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in table]
    if missing:
        raise SimulationError(f"{where} needs {', '.join(missing)}")
    return cls(**{key: _coerce(value, hints[key], f"{where}.{key}") for key, value in table.items()})


def _processing(raw: Any, base: Path) -> Processing:
    """Watts from a board profile (a BOARDS name, or idle_watts and busy_watts), tiles/s given or
    read from an `orbitlite hil bench --json` result."""
    table = _mapping(raw, "processing", {"board", "idle_watts", "busy_watts", "tiles_per_s", "bench", "run_in_eclipse"})
    name = _coerce(table.get("board", "rpi-4"), str, "processing.board")
    if "idle_watts" in table or "busy_watts" in table:
        board = BoardProfile(name, _coerce(table.get("idle_watts"), float, "processing.idle_watts"),
                             _coerce(table.get("busy_watts"), float, "processing.busy_watts"))
    elif name in BOARDS:
        board = BOARDS[name]
    else:
        raise SimulationError(f"processing.board {name!r} is not one of {', '.join(BOARDS)}; "
                              "or give idle_watts and busy_watts")
    if "bench" in table and "tiles_per_s" in table:
        raise SimulationError("processing: give tiles_per_s or bench, not both")
    run_in_eclipse = _coerce(table.get("run_in_eclipse", True), bool, "processing.run_in_eclipse")
    if "bench" in table:
        path = base / _coerce(table["bench"], str, "processing.bench")
        try:
            result = json.loads(path.read_text())
            tiles_per_s = float(result["tiles_per_s"])
        except OSError as exc:
            raise SimulationError(f"processing.bench {path} cannot be read: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError):
            raise SimulationError(f"processing.bench {path} is not an `orbitlite hil bench --json` result "
                                  "(JSON with tiles_per_s)") from None
        source = f"hil bench of {Path(str(result.get('model', '?'))).name}, batch {result.get('batch', '?')} ({path.name})"
        return Processing(board, tiles_per_s, source, run_in_eclipse)
    tiles_per_s = _coerce(table.get("tiles_per_s", Processing.tiles_per_s), float, "processing.tiles_per_s")
    return Processing(board, tiles_per_s, "given", run_in_eclipse)


def _datetime(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise SimulationError(f"start must be an ISO 8601 time such as 2025-03-20T12:00:00Z, got {value!r}") from None
    if not isinstance(value, datetime):
        raise SimulationError(f"start must be an ISO 8601 time, got {value!r}")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# ---------------------------------------------------------------- geometry


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


def _sun(jd: np.ndarray) -> np.ndarray:
    """The Sun's position (km, n x 3, equator and equinox of date), by the Astronomical Almanac's
    low-precision formulae (0.01 deg)."""
    n = jd - 2451545.0
    mean_longitude = np.radians(280.460 + 0.9856474 * n)
    anomaly = np.radians(357.528 + 0.9856003 * n)
    ecliptic_longitude = mean_longitude + np.radians(1.915 * np.sin(anomaly) + 0.020 * np.sin(2 * anomaly))
    obliquity = np.radians(23.439 - 4e-7 * n)
    distance = AU * (1.00014 - 0.01671 * np.cos(anomaly) - 0.00014 * np.cos(2 * anomaly))
    return distance[:, None] * np.column_stack([
        np.cos(ecliptic_longitude),
        np.cos(obliquity) * np.sin(ecliptic_longitude),
        np.sin(obliquity) * np.sin(ecliptic_longitude),
    ])


def illumination(r: np.ndarray, sun: np.ndarray) -> np.ndarray:
    """The fraction of the Sun's disc seen from `r` past a spherical Earth (conical shadow:
    umbra 0, penumbra between; Montenbruck and Gill, Satellite Orbits, 3.4.2)."""
    to_sun = sun - r
    d_sun, d_r = np.linalg.norm(to_sun, axis=1), np.linalg.norm(r, axis=1)
    a = np.arcsin(SUN_RADIUS / d_sun)  # apparent radius of the Sun
    b = np.arcsin(EARTH_A / d_r)  # and of the Earth
    c = np.arccos(np.clip(-(r * to_sun).sum(axis=1) / (d_r * d_sun), -1, 1))  # their separation
    lit = (c >= a + b).astype(np.float64)
    partial = (c > b - a) & (c < a + b)
    a, b, c = a[partial], b[partial], c[partial]
    x = (c**2 + a**2 - b**2) / (2 * c)
    y = np.sqrt(np.clip(a**2 - x**2, 0, None))
    hidden = a**2 * np.arccos(np.clip(x / a, -1, 1)) + b**2 * np.arccos(np.clip((c - x) / b, -1, 1)) - c * y
    lit[partial] = 1 - hidden / (np.pi * a**2)
    return lit


def _geodetic(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Geodetic latitude and longitude (radians) of Earth-fixed positions (Bowring's formula)."""
    p = np.hypot(r[:, 0], r[:, 1])
    b = EARTH_A * (1 - EARTH_F)
    theta = np.arctan2(r[:, 2] * EARTH_A, p * b)
    lat = np.arctan2(r[:, 2] + EARTH_E2 / (1 - EARTH_E2) * b * np.sin(theta) ** 3,
                     p - EARTH_E2 * EARTH_A * np.cos(theta) ** 3)
    return lat, np.arctan2(r[:, 1], r[:, 0])


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
    illumination: np.ndarray  # fraction of the Sun's disc seen from the satellite
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
    teme, earth_fixed, jd = config.orbit.positions(start, t)
    sun = _sun(jd)
    lat, lon = _geodetic(earth_fixed)
    sun_earth_fixed = _teme_to_earth_fixed(sun / np.linalg.norm(sun, axis=1)[:, None], jd)
    sun_elevation = np.degrees(np.arcsin((_up(lat, lon) * sun_earth_fixed).sum(axis=1)))
    im = config.imaging
    eligible = sun_elevation >= im.min_sun_elevation_deg
    if im.over == "land":
        eligible &= _over_land(lat, lon)
    captures = _capture_steps(eligible, (t // config.orbit.period_s).astype(np.int64), im.scenes_per_orbit)

    passes = find_passes(config.orbit, config.stations, start, n * dt, dt)
    contacts = schedule_contacts(passes)
    begin = np.array([c.aos + config.link.setup_s for c in contacts])
    end = np.array([c.los for c in contacts])
    used = np.clip(end - begin, 0, None)
    knots = np.column_stack([begin, np.maximum(begin, end)]).ravel()
    sent_by = np.column_stack([np.cumsum(used) - used, np.cumsum(used)]).ravel()  # link seconds at the knots
    link_seconds = np.interp(np.append(t, n * dt), knots, sent_by) if len(contacts) else np.zeros(n + 1)
    return Geometry(start, dt, t, illumination(teme, sun), passes, contacts,
                    np.diff(link_seconds) * config.link.payload_bytes_per_s, captures,
                    np.random.default_rng(im.seed).random(len(captures)))


# ---------------------------------------------------------------- the store, queues and battery


@dataclass(frozen=True)
class Series:
    """One value per step, at its end."""

    storage_bytes: np.ndarray
    backlog_bytes: np.ndarray  # waiting for the downlink
    waiting_scenes: np.ndarray  # waiting to be processed
    state_of_charge: np.ndarray
    delivered_bytes: np.ndarray  # cumulative
    covered_scenes: np.ndarray  # cumulative


@dataclass(frozen=True)
class ModeResult:
    mode: str
    captured: int
    dropped: int  # scenes lost for want of storage
    processed: int
    covered: int  # scenes whose information reached the ground in full (raw scene or product)
    extracts_delivered: int
    extracts_dropped: int
    delivered_bytes: float
    latency_median_s: float | None  # from capture to the last byte of what covers the scene
    latency_p90_s: float | None
    extract_latency_median_s: float | None
    backlog_bytes_end: float
    storage_max_bytes: float
    processing_wh: float
    transmit_wh: float
    platform_wh: float
    min_state_of_charge: float
    series: Series = field(repr=False)
    covered_at_s: np.ndarray = field(repr=False)  # per scene, seconds after the start; NaN: not covered
    extract_at_s: np.ndarray = field(repr=False)  # per scene, when its extract was down; NaN: it was not


class _Payload:
    """The store, the processing queue and the downlink queue of one mode.

    Drop policy when a capture finds the store full: value-mode extracts go first, lowest value
    first; then raw scenes waiting (to go down in `raw` mode, to be processed in the others),
    oldest first, sparing the one being sent or processed; products are never dropped. If that
    does not make room, the new scene is dropped."""

    def __init__(self, mode: str, config: Config, geo: Geometry) -> None:
        self.mode, self.config, self.geo = mode, config, geo
        n = len(geo.captures)
        im = config.imaging
        self.tiles_left = [float(im.tiles_per_scene)] * n
        self.raw_left = [0.0] * n
        self.product_left = [0.0] * n
        self.extract_left = [0.0] * n
        self.covered_at = [math.nan] * n
        self.extract_at = [math.nan] * n
        self.waiting: deque[int] = deque()  # raw scenes, oldest first: to send (raw) or to process
        self.products: deque[int] = deque()
        self.extracts: list[tuple[float, int]] = []  # (value, scene), lowest value first
        self.stored = self.queued = self.delivered = 0.0
        self.dropped = self.processed = self.covered = self.extracts_dropped = self.extracts_delivered = 0

    @property
    def free(self) -> float:
        return self.config.storage_bytes - self.stored

    def capture(self, scene: int) -> None:
        need = self.config.imaging.scene_bytes
        while self.free < need and len(self.extracts) > 1:
            _, s = self.extracts.pop(0)
            self._forget(self.extract_left, s)
            self.extracts_dropped += 1
        while self.free < need and len(self.waiting) > 1:
            s = self.waiting[1]
            del self.waiting[1]
            self._forget(self.raw_left, s)
            self.dropped += 1
        if self.free < need:
            self.dropped += 1
            return
        self.raw_left[scene] = need
        self.stored += need
        self.queued += need * (self.mode == "raw")
        self.waiting.append(scene)

    def _forget(self, left: list[float], scene: int) -> None:
        self.stored -= left[scene]
        self.queued -= left[scene] * (left is not self.raw_left or self.mode == "raw")
        left[scene] = 0.0

    def process(self, tiles: float) -> float:
        """Spend up to `tiles` on the waiting scenes, oldest first; the tiles it used."""
        im, budget = self.config.imaging, tiles
        while self.waiting and budget > 0:
            s = self.waiting[0]
            done = min(budget, self.tiles_left[s])
            self.tiles_left[s] -= done
            budget -= done
            if self.tiles_left[s] > 0:
                break
            self.waiting.popleft()
            self.processed += 1
            self.stored -= self.raw_left[s]
            self.raw_left[s] = 0.0
            self._keep(self.product_left, s, im.product_bytes)
            self.products.append(s)
            if self.mode == "value":
                self._keep(self.extract_left, s, im.extract_bytes)
                bisect.insort(self.extracts, (float(self.geo.values[s]), s))
        return tiles - budget

    def _keep(self, left: list[float], scene: int, nbytes: int) -> None:
        left[scene] = nbytes
        self.stored += nbytes
        self.queued += nbytes

    def send(self, nbytes: float, now: float) -> float:
        """Send up to `nbytes` from the head of the downlink queue; the bytes it sent."""
        budget = nbytes
        while budget > 0:
            if self.mode == "raw" and self.waiting:
                s, left, done = self.waiting[0], self.raw_left, self.waiting.popleft
            elif self.products:
                s, left, done = self.products[0], self.product_left, self.products.popleft
            elif self.extracts:
                s, left, done = self.extracts[-1][1], self.extract_left, self.extracts.pop
            else:
                break
            part = min(budget, left[s])
            left[s] -= part
            budget -= part
            if left[s] > 1e-6:
                continue
            left[s] = 0.0
            done()
            if left is self.extract_left:
                self.extract_at[s] = now
                self.extracts_delivered += 1
            else:
                self.covered_at[s] = now
                self.covered += 1
        sent = nbytes - budget
        self.stored -= sent
        self.queued -= sent
        self.delivered += sent
        return sent


def _shadow_need(deficit: np.ndarray) -> np.ndarray:
    """For each step, what the platform will draw from the battery (`deficit` per step) over the
    next stretch of steps that have a deficit (the rest of this eclipse, or all of the next)."""
    n = len(deficit)
    short, index = np.append(deficit > 0, False), np.arange(n + 1)
    next_short = np.minimum.accumulate(np.where(short, index, n)[::-1])[::-1]
    next_lit = np.minimum.accumulate(np.where(short, n, index)[::-1])[::-1]
    to_end = np.append(np.cumsum(deficit[::-1])[::-1], 0.0)  # deficit from each step to the end
    begin = next_short[1:]
    return to_end[begin] - to_end[next_lit[begin]]


def run_mode(mode: str, config: Config, geo: Geometry, progress: Callable[[int], None] | None = None) -> ModeResult:
    """Step one mode through the simulation: capture, charge, send, process, in each step.
    Processing and transmitting spend only what leaves the battery its reserve plus what the
    platform will draw through the coming eclipse, so a platform whose own draw the battery
    carries through eclipse never goes below its reserve."""
    if mode not in MODES:
        raise SimulationError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    pw, pr, dt = config.power, config.processing, geo.step_s
    payload = _Payload(mode, config, geo)
    n = len(geo.t)
    series = {f.name: np.empty(n) for f in fields(Series)}
    capacity_wh, reserve_wh = pw.battery_wh, pw.reserve * pw.battery_wh
    base_w = pw.platform_watts + pr.board.idle_watts
    extra_w = pr.board.busy_watts - pr.board.idle_watts
    tx_w, rate = config.link.transmit_watts, config.link.payload_bytes_per_s
    energy, used = pw.initial_charge * capacity_wh, {"processing": 0.0, "transmit": 0.0, "platform": 0.0}
    captures = np.searchsorted(geo.captures, np.arange(n + 1)).tolist()  # scenes captured before each step
    light, capacity = geo.illumination.tolist(), geo.capacity.tolist()
    deficit = np.maximum(base_w - pw.solar_watts * geo.illumination, 0) * dt / 3600
    floor = (reserve_wh + _shadow_need(deficit)).tolist()  # what the payload leaves in the battery
    for i in range(n):
        for scene in range(captures[i], captures[i + 1]):
            payload.capture(scene)
        energy = max(min(energy + (pw.solar_watts * light[i] - base_w) * dt / 3600, capacity_wh), 0.0)
        used["platform"] += base_w * dt / 3600
        if capacity[i] > 0 and payload.queued > 0:
            allowed = capacity[i] if tx_w == 0 else min(capacity[i], max(energy - floor[i], 0.0) * 3600 / tx_w * rate)
            wh = tx_w * payload.send(allowed, geo.t[i] + dt) / rate / 3600
            energy -= wh
            used["transmit"] += wh
        if mode != "raw" and payload.waiting and (pr.run_in_eclipse or light[i] > 0.5):
            seconds = dt if extra_w == 0 else min(dt, max(energy - floor[i], 0.0) * 3600 / extra_w)
            wh = extra_w * payload.process(seconds * pr.tiles_per_s) / pr.tiles_per_s / 3600
            energy -= wh
            used["processing"] += wh
        for name, value in (("storage_bytes", payload.stored), ("backlog_bytes", payload.queued),
                            ("waiting_scenes", len(payload.waiting) * (mode != "raw")),
                            ("state_of_charge", energy / capacity_wh), ("delivered_bytes", payload.delivered),
                            ("covered_scenes", payload.covered)):
            series[name][i] = value
        if progress and (i + 1) % 2000 == 0:
            progress(2000)
    if progress:
        progress(n % 2000)
    capture_t = geo.t[geo.captures]
    covered_at, extract_at = np.asarray(payload.covered_at), np.asarray(payload.extract_at)
    latency_p50, latency_p90 = _percentiles(covered_at - capture_t, (50, 90))
    return ModeResult(
        mode=mode, captured=len(geo.captures), dropped=payload.dropped, processed=payload.processed,
        covered=payload.covered, extracts_delivered=payload.extracts_delivered,
        extracts_dropped=payload.extracts_dropped, delivered_bytes=payload.delivered,
        latency_median_s=latency_p50, latency_p90_s=latency_p90,
        extract_latency_median_s=_percentiles(extract_at - capture_t, (50,))[0],
        backlog_bytes_end=payload.queued, storage_max_bytes=float(series["storage_bytes"].max(initial=0)),
        processing_wh=used["processing"], transmit_wh=used["transmit"], platform_wh=used["platform"],
        min_state_of_charge=float(min(pw.initial_charge, series["state_of_charge"].min(initial=1))),
        series=Series(**series), covered_at_s=covered_at, extract_at_s=extract_at)


def _percentiles(values: np.ndarray, q: tuple[int, ...]) -> list[float | None]:
    values = values[~np.isnan(values)]
    return [float(np.percentile(values, p)) if len(values) else None for p in q]


@dataclass(frozen=True)
class Simulation:
    config: Config
    days: float
    geometry: Geometry
    modes: dict[str, ModeResult]


def simulate(config: Config, days: float, progress: Callable[[int], None] | None = None) -> Simulation:
    """Simulate `days` from the config's start in every mode; `progress` is told of the steps
    done, `step_count` of them per mode."""
    geo = geometry(config, days)
    return Simulation(config, days, geo, {mode: run_mode(mode, config, geo, progress) for mode in MODES})


# ---------------------------------------------------------------- reports


def _iso(start: datetime, seconds: float) -> str:
    return (start + timedelta(seconds=round(seconds))).isoformat(timespec="seconds")


def report(sim: Simulation, every_s: float = 600.0) -> dict[str, Any]:
    """The simulation as JSON-ready data; the series sampled every `every_s`."""
    c, geo = sim.config, sim.geometry
    config = asdict(c)
    config["start"] = c.start_time.isoformat()
    config["link"]["bits_per_second"] = c.link.link.bits_per_second
    every = max(1, round(every_s / geo.step_s))
    picked = np.arange(every - 1, len(geo.t), every)
    modes = {}
    for name, m in sim.modes.items():
        body: dict[str, Any] = {f.name: getattr(m, f.name) for f in fields(m) if f.repr}
        body["covered_at"] = [None if math.isnan(s) else _iso(geo.start, s) for s in m.covered_at_s]
        body["extract_at"] = [None if math.isnan(s) else _iso(geo.start, s) for s in m.extract_at_s]
        body["series"] = {f.name: np.round(getattr(m.series, f.name)[picked], 4).tolist() for f in fields(Series)}
        modes[name] = body
    return {
        "config": config,
        "days": sim.days,
        "start": c.start_time.isoformat(),
        "orbit_period_s": round(c.orbit.period_s, 1),
        "eclipse_fraction": round(geo.eclipse_fraction, 4),
        "passes": [{"station": p.station, "aos": _iso(geo.start, p.aos), "los": _iso(geo.start, p.los),
                    "duration_s": round(p.los - p.aos, 1), "max_elevation_deg": round(p.max_elevation_deg, 2)}
                   for p in geo.passes],
        "contacts": [{"station": p.station, "start": _iso(geo.start, p.aos), "end": _iso(geo.start, p.los)}
                     for p in geo.contacts],
        "link_capacity_bytes": float(geo.capacity.sum()),
        "scenes": {"captured": len(geo.captures), "capture_times": [_iso(geo.start, s) for s in geo.t[geo.captures]],
                   "values": np.round(geo.values, 4).tolist()},
        "series_t_s": (geo.t[picked] + geo.step_s).tolist(),
        "modes": modes,
    }


def _span(seconds: float | None) -> str:
    return "-" if seconds is None else format_seconds(seconds) if seconds < 86400 else f"{seconds / 86400:.1f} d"


def summary(sim: Simulation) -> str:
    """A few lines and a table, one row per mode."""
    c, geo = sim.config, sim.geometry
    contact = sum(p.los - p.aos for p in geo.contacts)
    im = c.imaging
    lines = [
        f"{c.orbit.name} from {geo.start:%Y-%m-%d %H:%M} UTC for {sim.days:g} d in {geo.step_s:g} s steps: "
        f"{c.orbit.period_s / 60:.1f} min orbit, {100 * geo.eclipse_fraction:.1f}% in eclipse",
        f"{len(geo.passes)} passes over {', '.join(s.name for s in c.stations)}, {format_seconds(contact)} of contact; "
        f"{c.link.link.name}, {c.link.setup_s:g} s set-up, {100 * c.link.protocol_overhead:g}% protocol overhead "
        f"-> {format_bytes(geo.capacity.sum())} of payload",
        f"{len(geo.captures)} scenes ({im.scenes_per_orbit} per orbit over sunlit {'land' if im.over == 'land' else 'ground'}) of "
        f"{format_bytes(im.scene_bytes)} raw, {format_bytes(im.product_bytes)} product, "
        f"{format_bytes(im.extract_bytes)} extract; {format_bytes(c.storage_bytes)} store; "
        f"{c.processing.board.name} at {c.processing.tiles_per_s:g} tiles/s ({c.processing.source})",
        "",
        f"{'mode':<9}{'covered':>12}{'dropped':>9}{'delivered':>11}{'latency p50':>13}{'p90':>9}"
        f"{'backlog':>11}{'energy':>10}{'min charge':>12}",
    ]
    for m in sim.modes.values():
        lines.append(
            f"{m.mode:<9}{f'{m.covered}/{m.captured}':>12}{m.dropped:>9}{format_bytes(m.delivered_bytes):>11}"
            f"{_span(m.latency_median_s):>13}{_span(m.latency_p90_s):>9}{format_bytes(m.backlog_bytes_end):>11}"
            f"{m.processing_wh + m.transmit_wh:>7.1f} Wh{100 * m.min_state_of_charge:>11.0f}%"
            + (f"   + {m.extracts_delivered} raw extracts" if m.mode == "value" else ""))
    lines.append("covered: scenes whose raw data (raw) or product (products, value) reached the ground in full; "
                 "latency: from capture to the last byte")
    lines.append("energy: spent on processing and transmitting; the platform and the idle board draw "
                 f"{next(iter(sim.modes.values())).platform_wh:.0f} Wh besides")
    return "\n".join(lines)


_COLOURS = {"raw": "#d62728", "products": "#1f77b4", "value": "#2ca02c"}


def _positive(values: np.ndarray) -> np.ndarray:
    """For a log axis: zeros left out."""
    return np.where(values > 0, values, np.nan)


def write_outputs(sim: Simulation, out_dir: Path) -> list[Path]:
    """`simulation.json` and the plots (storage, delivered, passes, power) in `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    geo, start = sim.geometry, sim.geometry.start
    days = (geo.t + geo.step_s) / 86400
    xlabel = f"days since {start:%Y-%m-%d %H:%M} UTC"
    paths = [write_verified(out_dir / "simulation.json", (json.dumps(report(sim), indent=1) + "\n").encode())]

    def save(fig: Any, name: str) -> None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(write_verified(out_dir / name, buffer.getvalue()))

    fig, (ax_store, ax_backlog, ax_wait) = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    for name, m in sim.modes.items():
        ax_store.plot(days, m.series.storage_bytes / 1e9, color=_COLOURS[name], label=name)
        ax_backlog.plot(days, _positive(m.series.backlog_bytes), color=_COLOURS[name], label=name)
        if name != "raw":
            ax_wait.plot(days, m.series.waiting_scenes, color=_COLOURS[name], label=name)
    ax_store.axhline(sim.config.storage_bytes / 1e9, color="k", ls="--", lw=1, label="capacity")
    ax_store.set(ylabel="on-board storage (GB)", title="Storage and backlog")
    ax_backlog.set(yscale="log", ylabel="waiting for downlink (bytes)")
    ax_wait.set(ylabel="scenes waiting\nfor processing", xlabel=xlabel)
    for ax in (ax_store, ax_backlog, ax_wait):
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    save(fig, "storage.png")

    fig, (ax_bytes, ax_scenes) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for name, m in sim.modes.items():
        ax_bytes.plot(days, _positive(m.series.delivered_bytes), color=_COLOURS[name], label=name)
        ax_scenes.plot(days, m.series.covered_scenes, color=_COLOURS[name], label=name)
    ax_scenes.step(np.append(0, geo.t[geo.captures] / 86400), np.arange(len(geo.captures) + 1), where="post",
                   color="k", ls="--", lw=1, label="captured")
    ax_bytes.set(yscale="log", ylabel="delivered (bytes)", title="What reached the ground")
    ax_scenes.set(ylabel="scenes covered", xlabel=xlabel)
    for ax in (ax_bytes, ax_scenes):
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    save(fig, "delivered.png")

    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.5 * (len(sim.config.stations) + 2)))
    rows = [s.name for s in sim.config.stations]
    for y, name in enumerate(rows):
        ax.broken_barh([(p.aos / 86400, (p.los - p.aos) / 86400) for p in geo.passes if p.station == name],
                       (y - 0.35, 0.7), color="#9ecae1")
        ax.broken_barh([(p.aos / 86400, (p.los - p.aos) / 86400) for p in geo.contacts if p.station == name],
                       (y - 0.2, 0.4), color="#08519c")
    y_light, y_captures = len(rows), len(rows) + 1
    shadow = geo.illumination < 0.5
    ax.fill_between(geo.t / 86400, y_light - 0.35, y_light + 0.35, where=shadow, color="#444444", step="post", lw=0)
    ax.vlines(geo.t[geo.captures] / 86400, y_captures - 0.35, y_captures + 0.35, color="#e6550d", lw=0.6)
    ax.set_yticks(range(len(rows) + 2), [*rows, "eclipse", "captures"])
    ax.set(xlabel=xlabel, xlim=(0, len(geo.t) * geo.step_s / 86400),
           title="Passes (light: in view, dark: used for downlink), eclipses and captures")
    save(fig, "passes.png")

    fig, ax = plt.subplots(figsize=(11, 3.5))
    for (name, m), style in zip(sim.modes.items(), ("-", "--", ":")):
        ax.plot(days, 100 * m.series.state_of_charge, color=_COLOURS[name], label=name, lw=1.2, ls=style)
    ax.axhline(100 * sim.config.power.reserve, color="k", ls="--", lw=1, label="reserve")
    ax.fill_between(geo.t / 86400, 0, 1, where=shadow, transform=ax.get_xaxis_transform(), color="#bbbbbb",
                    alpha=0.4, step="post", lw=0, label="eclipse")
    ax.set(ylabel="battery charge (%)", xlabel=xlabel, ylim=(0, 102), title="Battery")
    ax.legend(loc="lower left", fontsize=8, ncol=5)
    save(fig, "power.png")
    return paths
