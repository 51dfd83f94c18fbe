"""The simulation's configuration: the orbit, ground stations, link, imaging plan, processing
and power, each with defaults, and read from a JSON or TOML file."""

from __future__ import annotations

import json
import tomllib
from dataclasses import MISSING, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_type_hints

from ground.downlink.link import Link, parse_link
from ground.errors import SimulationError
from ground.simulator.orbit import Orbit, Station
from onboard.run.boards import BOARDS, BoardProfile
from onboard.errors import OrbitliteError
from onboard.contracts.tiling import TileGrid


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
