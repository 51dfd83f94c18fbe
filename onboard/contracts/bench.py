"""The benchmark result contract, `orbitlite/hil-bench` version 1: what `orbitlite hil bench`
writes (result.json) and what `hil compare` and `orbitlite downlink simulate` read back.

    {"schema": "orbitlite/hil-bench", "version": 1, "created": "...",
     "board": {name, arch, cores, accelerator, idle_watts, busy_watts, meter, transport, emulated},
     "model": {file, id, sha256, size_bytes, tile, dtype},
     "measured": {versions, machine, cores, accelerator, rule, main, threads_sweep, batch_sweep,
                  latencies_us, end_to_end, cpu_before, cpu_after, throttling},
     "energy": {source, meter, idle_watts, busy_watts, busy_seconds, tiles, mj_per_tile, ...}}

`measured` is what the board prints (`orbitlite onboard bench --json -`), the ground adds the rest.
Each `Timings` holds TFLite benchmark_model's figures by the same names (init, first inference,
warm-up runs and their average, the counted runs' count, min, max, avg, std, the peak memory
footprint) in microseconds and MB, plus p50, p90 and p99 of every counted run's own time, and
whether the run met the validity rule (`Rule`: at least `min_runs` counted runs and at least
`min_seconds` of them, in MLPerf's spirit) with the reasons when it did not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta

from onboard.errors import BenchError
from onboard.schema import (Count, Finite, Name, NonNegative, Positive, PositiveInt, Schema, Sha256, Text,
                            decode, decode_contract, encode_json, read_bounded)

SCHEMA = "orbitlite/hil-bench"
VERSION = 1
MAX_BYTES = 16 * 2**20  # a result larger than this is refused unread
MAX_LATENCIES = 100_000  # every counted run's time of the main measurement, at most
Reasons = Annotated[tuple[Text, ...], Meta(max_length=16)]


class Rule(Schema):
    """When a measurement counts: it runs until both minimums are met, stopping at `max_seconds`
    (benchmark_model's num_runs, min_secs, max_secs); one that stops short is not valid."""

    min_runs: PositiveInt = 50
    min_seconds: NonNegative = 1.0
    max_seconds: Positive = 150.0
    warmup_runs: Count = 1


class Timings(Schema):
    interpreter: Name
    threads: PositiveInt
    batch: PositiveInt
    init_us: NonNegative
    first_inference_us: NonNegative
    warmup_runs: Count
    warmup_avg_us: NonNegative | None  # None: no warm-up run
    count: PositiveInt  # counted runs
    seconds: NonNegative  # the counted runs' total time
    min_us: NonNegative
    max_us: NonNegative
    avg_us: NonNegative
    std_us: NonNegative
    p50_us: NonNegative
    p90_us: NonNegative
    p99_us: NonNegative
    tiles_per_s: NonNegative
    peak_memory_mb: NonNegative  # the process's peak resident memory, as benchmark_model's footprint
    valid: bool
    not_valid: Reasons = ()  # why not, when not valid

    def __post_init__(self) -> None:
        if not self.min_us <= self.p50_us <= self.p90_us <= self.p99_us <= self.max_us:
            raise ValueError("needs min_us <= p50_us <= p90_us <= p99_us <= max_us")
        if self.valid == bool(self.not_valid):
            raise ValueError("a valid measurement gives no reason, a measurement that is not valid gives one")


class Cpu(Schema):
    """The CPU as /sys shows it; null where the board does not say."""

    freq_mhz: NonNegative | None = None  # the cores' current frequency, averaged
    max_freq_mhz: NonNegative | None = None
    temp_c: Finite | None = None
    throttled: Text | None = None  # `vcgencmd get_throttled`, on a Raspberry Pi


class EndToEnd(Schema):
    """`orbitlite onboard run` on a scene: every tile, pre-processing and product included."""

    scene: Name
    tiles: PositiveInt
    seconds: Positive
    tiles_per_s: Positive
    peak_rss_mb: NonNegative
    threads: PositiveInt
    batch: PositiveInt


class Versions(Schema):
    orbitlite: Name
    numpy: Name
    interpreter: Name  # the TFLite interpreter's package and version
    python: Name
    system: Name  # uname: system, release, machine


class Measured(Schema):
    """What the board measured and printed."""

    versions: Versions
    machine: Name  # the board's arch as it reports it
    cores: PositiveInt
    accelerator: Literal["cpu", "edgetpu"]
    rule: Rule
    main: Timings
    threads_sweep: tuple[Timings, ...]
    batch_sweep: tuple[Timings, ...]
    latencies_us: Annotated[tuple[NonNegative, ...], Meta(min_length=1, max_length=MAX_LATENCIES)]
    end_to_end: EndToEnd | None
    cpu_before: Cpu
    cpu_after: Cpu
    throttling: Text | None  # how it was detected, or null

    @property
    def valid(self) -> bool:
        return all(t.valid for t in (self.main, *self.threads_sweep, *self.batch_sweep))


class BoardInfo(Schema):
    """The board as its profile describes it."""

    name: Name
    arch: Name
    cores: PositiveInt
    accelerator: Name
    idle_watts: NonNegative
    busy_watts: NonNegative
    meter: Name  # `modelled` when the profile has none
    transport: Name
    emulated: bool = False


class ModelInfo(Schema):
    file: Name
    id: Name
    sha256: Sha256
    size_bytes: PositiveInt
    tile: tuple[PositiveInt, PositiveInt]
    dtype: Name


class Energy(Schema):
    """Energy per tile and per km^2: `busy_watts` x `busy_seconds` / `tiles` (the whole board while
    it works), and the part above idle (`extra_mj_per_tile`, what inference adds). `source` says
    whether `busy_watts` was read from a power meter or modelled from the profile's figures."""

    source: Literal["meter", "modelled"]
    meter: Name
    idle_watts: NonNegative
    busy_watts: NonNegative
    busy_seconds: Positive
    tiles: PositiveInt
    of: Literal["end-to-end", "invoke"]  # which measurement's time and tiles
    mj_per_tile: NonNegative
    extra_mj_per_tile: NonNegative
    gsd_m: Positive  # the tiles' ground sampling distance (`hil bench --gsd`)
    km2_per_tile: Positive
    mj_per_km2: NonNegative


class BenchReport(Schema, kw_only=True):
    schema: Literal["orbitlite/hil-bench"] = SCHEMA
    version: Literal[1] = VERSION
    created: Name
    board: BoardInfo
    model: ModelInfo
    measured: Measured
    energy: Energy

    @property
    def tiles_per_s(self) -> float:
        """The board's rate: end to end where measured, else invoke alone."""
        e2e = self.measured.end_to_end
        return e2e.tiles_per_s if e2e else self.measured.main.tiles_per_s

    def to_json(self) -> bytes:
        return encode_json(self, indent=2) + b"\n"


def decode_measured(data: bytes, source: str) -> Measured:
    """What a board printed, validated; BenchError in one line naming `source` otherwise."""
    return decode(data, Measured, source=source, error=BenchError)


def read_bench(path: Path) -> BenchReport:
    """A result file read back and validated; BenchError in one line naming the file otherwise."""
    path = Path(path)
    data = read_bounded(path, MAX_BYTES, error=BenchError, what="bench result")
    return decode_contract(data, BenchReport, contract=SCHEMA, version=VERSION, what="orbitlite hil-bench result",
                           source=f"bench result {path}", error=BenchError,
                           unreadable=f"bench result {path} is not readable JSON")
