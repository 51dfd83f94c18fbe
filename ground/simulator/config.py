"""The simulation's configuration: the orbit, ground stations, link, imaging plan, processing
and power, each with defaults, read from a JSON or TOML file checked against the schema
`SimulateFile` (every error names the file and the key path; an unknown key is an error)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from ground.downlink.link import MAX_RATE, MIN_RATE, Link, parse_link
from ground.errors import LinkRateError, SimulationError
from ground.simulator.orbit import Orbit, Station
from onboard.contracts.bench import BenchReport, read_bench
from onboard.contracts.tiling import TileGrid
from onboard.errors import BenchError, BudgetError
from onboard.run.boards import BOARDS, BoardProfile
from onboard.schema import (Bytes, Fraction, Name, NonNegative, PathText, Positive, PositiveInt, Schema,
                            decode, read_bounded)


Rate = Annotated[float, Meta(ge=MIN_RATE, le=MAX_RATE)]  # bit/s


class LinkPlan(Schema):
    rate: Annotated[str, Meta(min_length=1, max_length=64)] | Rate = "s-band"  # a preset of ground.downlink.LINKS or bit/s
    setup_s: NonNegative = 60.0  # per contact, before data flows: acquisition, lock, handshake
    # Space Packet (6 B per 1024 B) + TM frame header and CRC (8 B per 1115 B) + ASM (4 B) +
    # Reed-Solomon (255,223) parity: what is not payload on air.
    protocol_overhead: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.14
    transmit_watts: NonNegative = 6.0  # the transmitter's draw while it sends

    def __post_init__(self) -> None:
        try:
            parse_link(str(self.rate))  # refuse a bad rate now
        except LinkRateError as exc:
            raise ValueError(str(exc)) from None

    @property
    def link(self) -> Link:
        return parse_link(str(self.rate))

    @property
    def payload_bytes_per_s(self) -> float:
        return self.link.bits_per_second / 8 * (1 - self.protocol_overhead)


class ImagingPlan(Schema):
    scenes_per_orbit: Annotated[int, Meta(ge=0, le=1000)] = 4
    over: Literal["land", "any"] = "land"  # where scenes are taken, when the ground below is sunlit
    min_sun_elevation_deg: Annotated[float, Meta(ge=-90.0, le=90.0)] = 10.0  # at the sub-satellite point
    scene_bytes: Bytes = 600_000_000  # a Sentinel-2 L1C tile
    tiles_per_scene: PositiveInt = len(TileGrid.covering((10980, 10980), (32, 32)))  # its 10 m grid in 32 px tiles
    # Class map at one pixel per tile (344 x 344), compressed, with histogram and header; per-tile
    # confidences would add some 50 kB.
    product_bytes: Bytes = 20_000
    extract_bytes: Bytes = 6_000_000  # `value` mode: ~1% of the scene, raw tiles around what it found
    seed: Annotated[int, Meta(ge=0, le=2**63 - 1)] = 0  # of the scenes' value scores


@dataclass(frozen=True)
class Processing:
    board: BoardProfile = BOARDS["rpi-4b"]
    # Assumed for the 10.9k-parameter CNN-l int8 on a Raspberry Pi 4, one thread, batch 256;
    # measure it with `orbitlite hil bench` on the board and give its result.json instead.
    tiles_per_s: float = 2000.0
    source: str = "assumed"  # where tiles_per_s comes from
    run_in_eclipse: bool = True


class PowerPlan(Schema):
    battery_wh: Positive = 80.0
    initial_charge: Fraction = 1.0  # of battery_wh
    solar_watts: NonNegative = 30.0  # generated in full sunlight, averaged over the attitude
    platform_watts: NonNegative = 8.0  # the bus and the camera, always drawn (the board's idle draw is added)
    reserve: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.3  # of the battery, never used by processing and transmitting

    def __post_init__(self) -> None:
        if self.reserve > self.initial_charge:
            raise ValueError(f"needs reserve <= initial_charge, got {self.reserve} and {self.initial_charge}")


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
    storage_bytes: float = 64_000_000_000
    step_s: float = 10.0
    start: datetime | None = None  # UTC; None: the TLE's epoch

    @property
    def start_time(self) -> datetime:
        return self.start or self.orbit.epoch

    def with_link(self, rate: str) -> "Config":
        parse_link(rate)  # a bad rate is a LinkRateError, as anywhere else
        return replace(self, link=msgspec.structs.replace(self.link, rate=rate))


class OrbitFile(Schema, kw_only=True):
    name: Name = "satellite"
    tle: tuple[Annotated[str, Meta(max_length=256)], Annotated[str, Meta(max_length=256)]]  # its two lines


class ProcessingFile(Schema):
    """Watts from a board (a BOARDS name, or idle_watts and busy_watts); tiles/s given, or read
    with the board's watts from an `orbitlite hil bench` result (`bench`, its result.json, a path
    relative to the config): a board or watts given here take precedence over the result's."""

    board: Name | None = None  # absent: the bench result's board, else rpi-4b
    idle_watts: NonNegative | None = None
    busy_watts: NonNegative | None = None
    tiles_per_s: Positive | None = None  # absent: Processing.tiles_per_s, assumed
    bench: PathText | None = None
    run_in_eclipse: bool = Processing.run_in_eclipse

    def __post_init__(self) -> None:
        if (self.idle_watts is None) != (self.busy_watts is None):
            raise ValueError("give both idle_watts and busy_watts, or neither")
        if self.bench is not None and self.tiles_per_s is not None:
            raise ValueError("give tiles_per_s or bench, not both")


class SimulateFile(Schema):
    """The simulate config as its file holds it (README, "orbitlite downlink simulate")."""

    orbit: OrbitFile | None = None  # absent: DEFAULT_ORBIT
    stations: Annotated[tuple[Station, ...], Meta(min_length=1, max_length=256)] = DEFAULT_STATIONS
    link: LinkPlan = LinkPlan()
    imaging: ImagingPlan = ImagingPlan()
    processing: ProcessingFile = ProcessingFile()
    power: PowerPlan = PowerPlan()
    storage_bytes: Bytes = Config.storage_bytes
    step_s: Annotated[float, Meta(ge=1.0, le=60.0)] = Config.step_s
    start: datetime | None = None  # ISO 8601, UTC when it names no zone; absent: the TLE's epoch


MAX_BYTES = 2**20  # a config larger than this is refused unread
FORMATS: dict[str, Literal["json", "toml"]] = {".json": "json", ".toml": "toml"}


def load_config(path: Path | None) -> Config:
    """The config in a JSON (.json) or TOML (.toml) file, each key defaulting as in `Config`;
    None gives the defaults. SimulationError in one line naming the file and the key path."""
    if path is None:
        return Config()
    path = Path(path)
    source = f"config {path}"
    if path.suffix not in FORMATS:
        raise SimulationError(f"{source}: name it .json or .toml")
    data = read_bounded(path, MAX_BYTES, error=SimulationError, what="config")
    body = decode(data, SimulateFile, source=source, error=SimulationError, format=FORMATS[path.suffix])
    try:
        orbit = DEFAULT_ORBIT if body.orbit is None else Orbit(body.orbit.name, *(line.rstrip() for line in body.orbit.tle))
    except SimulationError as exc:
        raise SimulationError(f"{source}: orbit.tle: {exc}") from None
    start = body.start
    if start is not None:
        start = start.replace(tzinfo=timezone.utc) if start.tzinfo is None else start.astimezone(timezone.utc)
    return Config(orbit=orbit, stations=body.stations, link=body.link, imaging=body.imaging,
                  processing=_processing(body.processing, path.parent, source), power=body.power,
                  storage_bytes=body.storage_bytes, step_s=body.step_s, start=start)


def _processing(given: ProcessingFile, base: Path, source: str) -> Processing:
    result = None if given.bench is None else _read_bench(base / given.bench, f"{source}: processing.bench")
    if given.idle_watts is not None and given.busy_watts is not None:
        try:
            board = BoardProfile(given.board or "board", given.idle_watts, given.busy_watts)
        except BudgetError as exc:
            raise SimulationError(f"{source}: processing: {exc}") from None
    elif given.board is None:
        board = BOARDS[Processing.board.name] if result is None else bench_board(result)
    elif given.board in BOARDS:
        board = BOARDS[given.board]
    else:
        raise SimulationError(f"{source}: processing.board {given.board!r} is not one of {', '.join(BOARDS)}; "
                              "or give idle_watts and busy_watts")
    if result is None:
        tiles_per_s = Processing.tiles_per_s if given.tiles_per_s is None else given.tiles_per_s
        return Processing(board, tiles_per_s, "assumed" if given.tiles_per_s is None else "given", given.run_in_eclipse)
    return Processing(board, result.tiles_per_s, bench_source(result, base / given.bench), given.run_in_eclipse)


def _read_bench(path: Path, source: str) -> BenchReport:
    try:
        return read_bench(path)
    except BenchError as exc:
        raise SimulationError(f"{source}: {exc}") from None


def bench_board(result: BenchReport) -> BoardProfile:
    """The board of a bench result, with its idle watts and its busy watts as the bench had them
    (measured by its meter, or the profile's)."""
    e = result.energy
    return BoardProfile(result.board.name, min(e.idle_watts, e.busy_watts), e.busy_watts)


def bench_source(result: BenchReport, path: Path) -> str:
    e2e = "end to end" if result.measured.end_to_end else "invoke alone"
    emulated = ", EMULATED" if result.board.emulated else ""
    valid = "" if result.measured.valid else ", NOT VALID"
    return (f"hil bench of {result.model.file} on {result.board.name}{emulated}, {e2e}, "
            f"{result.energy.source} watts{valid} ({path.name})")


def with_bench(config: Config, path: Path) -> Config:
    """`config` with the board's rate and watts from the bench result in `path` (`--bench`)."""
    result = _read_bench(Path(path), "--bench")
    processing = Processing(bench_board(result), result.tiles_per_s, bench_source(result, Path(path)),
                            config.processing.run_in_eclipse)
    return replace(config, processing=processing)
