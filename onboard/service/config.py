"""The service's configuration: a JSON file checked against the schema `ServeFile` (every error
names the file and the key path; a key the schema does not know, a typo, is an error too), then
resolved into a `ServiceConfig`: paths against the config file's directory, the board by name or
profile file, the budgets, the screening and the store's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta

from onboard.errors import ConfigError, OrbitliteError
from onboard.inference.screening import Screening
from onboard.run.boards import BOARDS, BoardProfile
from onboard.run.budget import MAX_SCENE_SECONDS, Budget
from onboard.schema import (Count, Finite, Fraction, Int64, Name, PathText, Positive, PositiveInt, Schema, decode,
                            read_bounded)
from onboard.store.store import DropPolicy, StoreConfig

MAX_BYTES = 2**20  # a config larger than this is refused unread (one is a few hundred bytes)

Level = Annotated[int, Meta(ge=0, le=256)]  # a confidence (0..255) below which a tile counts; 256: all
SceneSeconds = Annotated[float, Meta(gt=0.0, le=MAX_SCENE_SECONDS)]
# Between looks at the spool (and tries to open a failed port): often enough for a test, seldom
# enough that an idle service's telemetry (a line a look) stays small.
PollSeconds = Annotated[float, Meta(ge=0.05, le=86400.0)]
# Sentinel-2's digital numbers are reflectance x 10000; a float scene may hold reflectance itself.
PerDn = Annotated[float, Meta(ge=1e-9, le=1.0)]


class Models(Schema):
    ladder: Annotated[tuple[PathText, ...], Meta(min_length=1, max_length=64)]  # .tflite files, best first
    cascade: PathText | None = None
    cascade_below: Level = 128
    threads: Annotated[int, Meta(ge=1, le=64)] = 1
    batch: Annotated[int, Meta(ge=1, le=65536)] = 256
    interpreter: Literal["auto", "ai_edge_litert", "tflite_runtime"] = "auto"
    accelerator: Literal["cpu", "edgetpu"] = "cpu"

    def __post_init__(self) -> None:
        if len(set(self.ladder)) != len(self.ladder):
            raise ValueError(f"ladder names a model twice: {', '.join(self.ladder)}")


class Store(Schema):
    path: PathText
    capacity_bytes: PositiveInt
    capacity_count: PositiveInt | None = None
    policy: DropPolicy = StoreConfig.policy
    resend_after: Positive | None = None  # s
    max_file_bytes: PositiveInt | None = None


class Budgets(Schema):
    """Per-scene budgets: in the config's `budget` section, and as the link saves them."""

    cpu_seconds: SceneSeconds | None = Budget.cpu_seconds
    deadline_seconds: SceneSeconds | None = Budget.deadline_seconds
    reserve: Annotated[float, Meta(ge=0.0, lt=1.0)] = Budget.reserve
    run_in_eclipse: bool = Budget.run_in_eclipse

    def budget(self) -> Budget:
        return Budget(self.cpu_seconds, self.deadline_seconds, self.reserve, self.run_in_eclipse)


class ScreeningSettings(Schema):
    nodata_value: Finite | None = Screening.nodata_value  # null turns the no-data test off
    max_nodata: Fraction = Screening.max_nodata
    cloud: bool = Screening.cloud
    max_cloud: Fraction = Screening.max_cloud
    reflectance_per_dn: PerDn = Screening.reflectance_per_dn
    roi: tuple[Count, Count, Count, Count] | None = Screening.roi  # row0, col0, row1, col1
    step: Annotated[int, Meta(ge=1, le=64)] = Screening.step

    def __post_init__(self) -> None:
        if self.roi is not None and not (self.roi[0] < self.roi[2] and self.roi[1] < self.roi[3]):
            raise ValueError(f"roi must be [row0, col0, row1, col1] in scene pixels with row0 < row1 and "
                             f"col0 < col1, got {list(self.roi)}")


class Link(Schema):
    port: Name
    key_file: PathText
    baud: Annotated[int, Meta(ge=1, le=2**31 - 1)] = 115200
    state: PathText = "link-state.json"  # the replay counter, refusal counts and key once re-keyed
    budget: PathText = "budget.json"  # budgets set over the link, which outlive a restart


class ServeFile(Schema):
    """The serve config as its file holds it (README, "orbitlite onboard serve")."""

    spool: PathText
    bands: Annotated[tuple[Name, ...], Meta(min_length=1, max_length=256)]
    board: Name  # a name of BOARDS, or a board profile JSON file
    models: Models
    store: Store
    telemetry: PathText
    budget: Budgets = Budgets()
    screening: ScreeningSettings | None = None  # absent: every tile goes through the models
    priority: Int64 = 0
    uncertain_below: Level = 128
    poll_seconds: PollSeconds = 5.0
    link: Link | None = None  # absent: no link

    def __post_init__(self) -> None:
        if len(set(self.bands)) != len(self.bands):
            raise ValueError(f"bands names one twice: {', '.join(self.bands)}")


@dataclass(frozen=True)
class ServiceConfig:
    """What `serve` runs, read from a JSON file by `load_config`. Paths are resolved against the
    config file's directory."""

    source: Path  # the config file, named in errors
    spool: Path
    store_path: Path
    store: StoreConfig
    ladder: tuple[Path, ...]
    bands: tuple[str, ...]
    board: BoardProfile
    telemetry: Path
    cascade: Path | None = None
    cascade_below: int = 128
    threads: int = 1
    batch: int = 256
    interpreter: str = "auto"
    accelerator: str = "cpu"
    budget: Budget = field(default_factory=Budget)
    screening: Screening | None = None
    priority: int = 0
    uncertain_below: int = 128
    poll_seconds: float = 5.0
    link: "LinkConfig | None" = None


@dataclass(frozen=True)
class LinkConfig:
    """The serial link `serve` answers commands on (onboard/link/commands.py). `root` holds the
    upload areas (files/, slots/a|b/, and the spool when it lies inside) and the link's state."""

    port: str
    baud: int
    key_file: Path
    root: Path
    state: Path  # the replay counter, refusal counts and, once re-keyed, the key (onboard/link/endpoint.py)
    budget: Path  # budgets set over the link, which outlive a restart


def load_config(path: Path) -> ServiceConfig:
    """Read and check a service configuration; raises ConfigError in one line naming the file and
    the key at fault.

    Example (paths relative to the config file):
        {"spool": "spool", "bands": ["B02", "B03", "B04", "B08"], "board": "rpi-4b",
         "models": {"ladder": ["cnn-l.tflite", "cnn-s.tflite"], "cascade": "wrn.tflite", "cascade_below": 100},
         "store": {"path": "store.db", "capacity_bytes": 50000000, "policy": "drop-lowest-priority-oldest"},
         "budget": {"cpu_seconds": 60, "deadline_seconds": 120, "reserve": 0.2, "run_in_eclipse": false},
         "screening": {"nodata_value": 0, "cloud": true, "max_cloud": 0.6},
         "priority": 1, "poll_seconds": 5, "telemetry": "telemetry.jsonl"}
    """
    path = Path(path)
    source = f"config {path}"
    data = read_bounded(path, MAX_BYTES, error=ConfigError, what="config")
    body = decode(data, ServeFile, source=source, error=ConfigError)
    base = path.parent
    spool = base / body.spool
    if not _is(spool, Path.is_dir):
        raise ConfigError(f"{source}: spool is {spool}, which is not a directory: create it or fix the path")
    models, store = body.models, body.store
    return ServiceConfig(
        source=path, spool=spool, store_path=base / store.path,
        store=StoreConfig(capacity_bytes=store.capacity_bytes, capacity_count=store.capacity_count,
                          policy=store.policy, resend_after=store.resend_after, max_file_bytes=store.max_file_bytes),
        ladder=tuple(base / p for p in models.ladder), bands=body.bands, board=_board(body.board, base, source),
        telemetry=base / body.telemetry, cascade=None if models.cascade is None else base / models.cascade,
        cascade_below=models.cascade_below, threads=models.threads, batch=models.batch,
        interpreter=models.interpreter, accelerator=models.accelerator, budget=body.budget.budget(),
        screening=None if body.screening is None else _screening(body.screening), priority=body.priority,
        uncertain_below=body.uncertain_below, poll_seconds=body.poll_seconds,
        link=None if body.link is None else LinkConfig(
            port=body.link.port, baud=body.link.baud, key_file=base / body.link.key_file, root=base,
            state=base / body.link.state, budget=base / body.link.budget))


def _board(name: str, base: Path, source: str) -> BoardProfile:
    """A board by name from BOARDS, or a profile file (a path, relative to the config)."""
    if name in BOARDS:
        return BOARDS[name]
    profile = base / name
    if not _is(profile, Path.is_file):
        raise ConfigError(f"{source}: board is {name!r}: name one of {', '.join(BOARDS)}, or a board profile JSON file")
    try:
        return BoardProfile.load(profile)
    except OrbitliteError as exc:
        raise ConfigError(f"{source}: board is unusable: {exc}") from None


def _screening(settings: ScreeningSettings) -> Screening:
    return Screening(nodata_value=settings.nodata_value, max_nodata=settings.max_nodata, cloud=settings.cloud,
                     max_cloud=settings.max_cloud, reflectance_per_dn=settings.reflectance_per_dn, roi=settings.roi,
                     step=settings.step)


def _is(path: Path, test) -> bool:
    """`test(path)`, False for a path the system refuses to look at (a name too long)."""
    try:
        return test(path)
    except OSError:
        return False
