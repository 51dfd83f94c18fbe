"""`orbitlite onboard serve`: the service that takes scenes from a spool directory and runs them,
under the configured budgets, into products in the crash-safe store.

The spool, by convention:
- a scene is a `.npy` or GeoTIFF (`.tif`, `.tiff`) file directly in the spool. The config's `bands`
  name a `.npy` scene's bands in file order, and pick bands by name from a GeoTIFF that names its
  own (as `--bands` does for `orbitlite onboard run`);
- a producer writes `NAME.npy.part` (or a dot-file) and renames it to `NAME.npy` when complete,
  so the service never sees half a scene: it ignores every other name (and the folders in it);
- scenes are taken oldest first (by modification time, then name); the file's stem is the scene id,
  which must be unique for the life of the store;
- a scene whose product is stored moves to `done/`; a scene the runtime refuses (unreadable, a band
  missing, NaNs, journaled with another tile grid) moves to `failed/`, beside `NAME.npy.reason`,
  one line saying why. A product the store's quota refuses leaves its scene in the spool: its tiles
  stay journaled and finishing it is retried at the next poll.

The store's journal makes any stop safe: a killed service resumes an interrupted scene from its
last committed tile, and a scene whose product is stored is never run again (if it is found in
the spool, it just moves to `done/`). A scene begun with other models (a model slot switched
since) starts again with the current ones. SIGTERM or SIGINT stop it between two strips of tiles.

With a `link` section it also answers commands on a serial port, in a thread of its own
(onboard/endpoint.py); what they change (budgets, the model slot) takes effect between scenes.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import numpy as np

from onboard.budget import BOARDS, BoardProfile, Budget, BudgetError, FixedPower, PowerSource, Scheduler
from onboard.link import Endpoint, LinkError, open_port, read_key
from onboard.errors import OrbitliteError, OutputError, QuotaError, StoreError
from onboard.files import ensure_writable_dir, write_verified
from onboard.model import LoadedModel, load_model
from onboard.product import NODATA
from onboard.runner import Plan, classify_scene
from onboard.raster import Raster, open_raster
from onboard.screening import Screening
from onboard.store import DropPolicy, SceneRecord, SceneState, Store, StoreConfig
from onboard.tiling import TileGrid

SCENE_SUFFIXES = (".npy", ".tif", ".tiff")
DONE, FAILED = "done", "failed"
REASON_SUFFIX = ".reason"


class ConfigError(OrbitliteError):
    """A service configuration that is missing, malformed, or names things that do not fit."""


def open_spooled(path: Path, bands: Sequence[str]) -> Raster:
    """The scene in a spool file (one of SCENE_SUFFIXES): the one place the service opens scenes."""
    return open_raster(path, bands)


# -- configuration ---------------------------------------------------------------------------------


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
    """The serial link the service answers commands on (onboard/endpoint.py). `root` holds the
    upload areas (files/, slots/a|b/, and the spool when it lies inside) and the link's state."""

    port: str
    baud: int
    key: bytes
    root: Path
    state: Path  # the replay counter and refusal counts
    budget: Path  # budgets set over the link, which outlive a restart


_REQUIRED = object()


class _Section:
    """One JSON object of the config, read field by field; every error names the file and the
    field, and a field nobody reads (a typo) is an error too."""

    def __init__(self, source: Path, body: Any, prefix: str = "") -> None:
        self.source, self.prefix = source, prefix
        if not isinstance(body, dict):
            raise self.error("", f"must be a JSON object, got {type(body).__name__}")
        self.body: dict[str, Any] = body
        self.read: set[str] = set()

    def error(self, key: str, problem: str) -> ConfigError:
        name = f"{self.prefix}{key}".rstrip(".") or "the top level"
        return ConfigError(f"config {self.source}: {name} {problem}")

    def value(self, key: str, default: Any) -> Any:
        """The field's value; None when it is absent or null and has a default."""
        self.read.add(key)
        value = self.body.get(key)
        if value is None and default is _REQUIRED:
            raise self.error(key, "is missing: add it (see `orbitlite onboard serve --help`)")
        return value

    def number(self, key: str, default: Any = _REQUIRED, *, positive: bool = False,
               low: float | None = None, high: float | None = None) -> Any:
        value = self.value(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"must be a number, got {value!r}")
        if positive and value <= 0:
            raise self.error(key, f"must be positive, got {value}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, f"must lie in [{low}, {high}], got {value}")
        return value

    def integer(self, key: str, default: Any = _REQUIRED, **bounds: Any) -> Any:
        value = self.number(key, default, **bounds)
        if value is not None and value != int(value):
            raise self.error(key, f"must be a whole number, got {value}")
        return None if value is None else int(value)

    def text(self, key: str, default: Any = _REQUIRED, choices: Sequence[str] | None = None) -> Any:
        value = self.value(key, default)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(key, f"is {value!r}: use one of {', '.join(choices)}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.value(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def path(self, key: str, default: Any = _REQUIRED) -> Any:
        """A path, relative to the config file's directory."""
        value = self.text(key, default)
        return default if value is default else self.source.parent / value

    def names(self, key: str, what: str = "names") -> tuple[str, ...]:
        value = self.value(key, _REQUIRED)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a non-empty list of {what}, got {value!r}")
        if len(set(value)) != len(value):
            raise self.error(key, f"names one twice: {value}")
        return tuple(value)

    def section(self, key: str, required: bool = False) -> "_Section | None":
        value = self.value(key, _REQUIRED if required else None)
        return None if value is None else _Section(self.source, value, f"{self.prefix}{key}.")

    def done(self) -> None:
        unknown = sorted(set(self.body) - self.read)
        if unknown:
            raise self.error(unknown[0], f"is not a setting here (known: {', '.join(sorted(self.read))})")


def load_config(path: Path) -> ServiceConfig:
    """Read and check a service configuration; raises ConfigError naming the field at fault.

    Example (paths relative to the config file):
        {"spool": "spool", "bands": ["B02", "B03", "B04", "B08"], "board": "rpi-4",
         "models": {"ladder": ["cnn-l.tflite", "cnn-s.tflite"], "cascade": "wrn.tflite", "cascade_below": 100},
         "store": {"path": "store.db", "capacity_bytes": 50000000, "policy": "drop-lowest-priority-oldest"},
         "budget": {"cpu_seconds": 60, "deadline_seconds": 120, "reserve": 0.2, "run_in_eclipse": false},
         "screening": {"nodata_value": 0, "cloud": true, "max_cloud": 0.6},
         "priority": 1, "poll_seconds": 5, "telemetry": "telemetry.jsonl"}
    """
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"config {path} cannot be read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"config {path} is not JSON: {exc}") from None
    top = _Section(path, body)
    spool = top.path("spool")
    if not spool.is_dir():
        raise top.error("spool", f"is {spool}, which is not a directory: create it or fix the path")

    models = top.section("models", required=True)
    ladder = tuple(path.parent / p for p in models.names("ladder", ".tflite paths, best first"))
    cascade = models.path("cascade", None)
    cascade_below = models.integer("cascade_below", 128, low=0, high=256)
    threads = models.integer("threads", 1, low=1, high=64)
    batch = models.integer("batch", 256, low=1, high=65536)
    interpreter = models.text("interpreter", "auto", ("auto", "ai_edge_litert", "tflite_runtime"))
    accelerator = models.text("accelerator", "cpu", ("cpu", "edgetpu"))
    models.done()

    store = top.section("store", required=True)
    store_path = store.path("path")
    store_config = StoreConfig(
        capacity_bytes=store.integer("capacity_bytes", positive=True),
        capacity_count=store.integer("capacity_count", None, positive=True),
        policy=DropPolicy(store.text("policy", DropPolicy.DROP_LOWEST_PRIORITY_OLDEST.value,
                                     [p.value for p in DropPolicy])),
        resend_after=store.number("resend_after", None, positive=True),
        max_file_bytes=store.integer("max_file_bytes", None, positive=True))
    store.done()

    budget = top.section("budget")
    budget_config = Budget()
    if budget is not None:
        try:
            budget_config = Budget(
                cpu_seconds=budget.number("cpu_seconds", None, positive=True),
                deadline_seconds=budget.number("deadline_seconds", None, positive=True),
                reserve=budget.number("reserve", Budget.reserve), run_in_eclipse=budget.flag("run_in_eclipse", True))
        except BudgetError as exc:
            raise ConfigError(f"config {path}: budget: {exc}") from None
        budget.done()

    config = ServiceConfig(
        source=path, spool=spool, store_path=store_path, store=store_config, ladder=ladder, bands=top.names("bands"),
        board=_board(top), telemetry=top.path("telemetry"), cascade=cascade, cascade_below=cascade_below,
        threads=threads, batch=batch, interpreter=interpreter, accelerator=accelerator, budget=budget_config,
        screening=_screening(top.section("screening")), priority=top.integer("priority", 0),
        uncertain_below=top.integer("uncertain_below", 128, low=0, high=256),
        poll_seconds=top.number("poll_seconds", 5.0, positive=True), link=_link(top.section("link")))
    top.done()
    return config


def _link(section: _Section | None) -> LinkConfig | None:
    """The link settings; no `link` section runs the service without one."""
    if section is None:
        return None
    key_file = section.path("key_file")
    try:
        key = read_key(key_file)
    except OrbitliteError as exc:
        raise section.error("key_file", f"is unusable: {exc}") from None
    root = section.source.parent
    config = LinkConfig(port=section.text("port"), baud=section.integer("baud", 115200, positive=True), key=key,
                        root=root, state=section.path("state", root / "link-state.json"),
                        budget=section.path("budget", root / "budget.json"))
    section.done()
    return config


def _board(top: _Section) -> BoardProfile:
    """A board by name from BOARDS, or a profile file (a path, relative to the config)."""
    name = top.text("board")
    if name in BOARDS:
        return BOARDS[name]
    profile = top.source.parent / name
    if not profile.is_file():
        raise top.error("board", f"is {name!r}: name one of {', '.join(BOARDS)}, or a board profile JSON file")
    try:
        return BoardProfile.load(profile)
    except OrbitliteError as exc:
        raise top.error("board", f"is unusable: {exc}") from None


def _screening(section: _Section | None) -> Screening | None:
    """Pre-screening settings; no `screening` section runs every tile through the models."""
    if section is None:
        return None
    section.read.add("nodata_value")
    roi = section.value("roi", None)
    if roi is not None and not (isinstance(roi, list) and len(roi) == 4
                                and all(isinstance(v, int) and not isinstance(v, bool) for v in roi)
                                and roi[0] < roi[2] and roi[1] < roi[3]):
        raise section.error("roi", f"must be [row0, col0, row1, col1] in scene pixels, row0 < row1 and "
                                   f"col0 < col1, got {roi!r}")
    # null turns the no-data test off, so here it does not mean "the default"
    nodata_off = "nodata_value" in section.body and section.body["nodata_value"] is None
    screening = Screening(
        nodata_value=None if nodata_off else section.number("nodata_value", Screening.nodata_value),
        max_nodata=section.number("max_nodata", Screening.max_nodata, low=0, high=1),
        cloud=section.flag("cloud", Screening.cloud),
        max_cloud=section.number("max_cloud", Screening.max_cloud, low=0, high=1),
        reflectance_per_dn=section.number("reflectance_per_dn", Screening.reflectance_per_dn, positive=True),
        roi=None if roi is None else tuple(roi), step=section.integer("step", Screening.step, low=1, high=64))
    section.done()
    return screening


# -- the spool ---------------------------------------------------------------------------------------


def scan_spool(spool: Path) -> list[Path]:
    """The complete scenes waiting in the spool, oldest first (modification time, then name)."""
    found = []
    for entry in os.scandir(spool):
        if entry.name.startswith(".") or not entry.name.lower().endswith(SCENE_SUFFIXES):
            continue
        try:
            if entry.is_file():
                found.append((entry.stat().st_mtime_ns, entry.name))
        except FileNotFoundError:  # taken away between the listing and the look
            continue
    return [spool / name for _, name in sorted(found)]


# -- telemetry ---------------------------------------------------------------------------------------


@dataclass
class Telemetry:
    """One line of the telemetry log (JSON). `budget_left` is Scheduler.left() for the scene in
    progress (None on a poll line); `store` is Store.telemetry()."""

    time: str  # UTC ISO 8601, from the injected clock
    event: str  # poll, strip, scene, finished-before, failed, refused, stopped
    scene: str | None
    tiles_done: int | None
    tiles_total: int | None
    tiles_per_s: float | None
    budget_left: dict[str, Any] | None
    spool_depth: int  # scenes waiting in the spool, not counting the one in progress
    store: dict[str, int | None]
    rss_bytes: int | None
    cpu_temp_c: float | None
    reason: str | None = None  # why a scene failed, was refused or stopped


def rss_bytes(root: Path = Path("/")) -> int | None:
    """The process's resident set size from /proc/self/status, or None where there is no /proc."""
    try:
        status = (root / "proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


def cpu_temperature(root: Path = Path("/")) -> float | None:
    """The CPU's temperature in degrees C from the kernel's thermal zones (a zone whose type
    names the CPU first, as cpu-thermal on a Raspberry Pi), or None where none is readable."""
    def names_cpu(zone: Path) -> bool:
        try:
            return "cpu" in (zone / "type").read_text().lower()
        except OSError:
            return False

    zones = (root / "sys/class/thermal").glob("thermal_zone*")
    for zone in sorted(zones, key=lambda z: (not names_cpu(z), len(z.name), z.name)):
        try:
            return round(int((zone / "temp").read_text().strip()) / 1000.0, 1)  # millidegrees
        except (OSError, ValueError):
            continue
    return None


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


class _TelemetryLog:
    """The telemetry log: a JSON object per line, appended and flushed line by line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: TextIO = open(path, "a", encoding="utf-8")
            if self._file.tell() and _last_byte(path) != b"\n":
                self._file.write("\n")  # a line torn by a power cut must not swallow the next one
        except OSError as exc:
            raise OutputError(f"cannot open telemetry log {path}: {exc.strerror}: fix `telemetry` in the "
                              f"config") from None

    def write(self, line: Telemetry) -> None:
        try:
            self._file.write(json.dumps(asdict(line), separators=(",", ":")) + "\n")
            self._file.flush()
        except OSError as exc:
            raise OutputError(f"cannot write telemetry log {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        self._file.close()


# -- the service -------------------------------------------------------------------------------------


class _Stopped(Exception):
    """Raised after a strip of tiles is journaled, when the service is asked to stop."""


class _JournalingStore(Store):
    """The store, telling the service of every run of tiles the runner journals: the service
    reports each strip once it is committed, and stops the runner there when asked to."""

    def __init__(self, path: Path, config: StoreConfig, *, clock: Callable[[], float],
                 on_commit: Callable[[str, int], None]) -> None:
        super().__init__(path, config, clock=clock)
        self._on_commit = on_commit

    def commit_tiles(self, scene_id: str, model_id: str, start: int, classes: np.ndarray,
                     confidence: np.ndarray) -> int:
        next_tile = super().commit_tiles(scene_id, model_id, start, classes, confidence)
        self._on_commit(scene_id, next_tile)
        return next_tile

    def commit_skipped(self, scene_id: str, model_id: str, start: int, count: int, reason: str) -> int:
        next_tile = super().commit_skipped(scene_id, model_id, start, count, reason)
        self._on_commit(scene_id, next_tile)
        return next_tile


@dataclass
class _InProgress:
    """The scene the runner is on, for the telemetry of its strips."""

    scene_id: str
    grid: TileGrid
    resumed_at: int  # its tiles journaled before this run
    started: float  # monotonic seconds
    waiting: int  # scenes behind it in the spool


@dataclass
class Summary:
    """What became of the scenes a run of the service looked at, by name."""

    done: list[str] = field(default_factory=list)
    finished_before: list[str] = field(default_factory=list)  # found in the spool with a stored product
    failed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # the store's quota refused the product
    stopped: str | None = None  # the scene interrupted by a stop, resumed at the next start


class Service:
    """Watches the spool and runs each scene under the budgets into the store. Time, sleeping,
    the power source and the root of /proc and /sys are injected, so a test drives it without
    waiting. `sleep` defaults to a wait that `stop()` cuts short."""

    def __init__(self, config: ServiceConfig, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, cpu: Callable[[], float] = time.process_time,
                 sleep: Callable[[float], object] | None = None, power: PowerSource | None = None,
                 host_root: Path = Path("/"), report: Callable[[str], None] = lambda line: None) -> None:
        self.config = config
        self._clock, self._monotonic, self._host_root, self._report = clock, monotonic, host_root, report
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self._lock = threading.Lock()  # between the link's thread and the spool's
        self._models_changed = False
        self._pending_budget: Budget | None = None
        ensure_writable_dir(config.spool / DONE)
        ensure_writable_dir(config.spool / FAILED)
        budget = self._saved_budget() or config.budget
        self._scheduler = Scheduler(budget, config.board, monotonic, cpu, power or FixedPower())
        self._store = _JournalingStore(config.store_path, config.store, clock=clock, on_commit=self._on_commit)
        self._current: _InProgress | None = None
        try:
            self._plan = self._build_plan()
            self._log = _TelemetryLog(config.telemetry)
        except BaseException:
            self._store.close()
            raise

    def _build_plan(self) -> Plan:
        config = self.config
        ladder = [self._load(p, f"models.ladder[{i}]") for i, p in enumerate(config.ladder)]
        cascade = self._load(config.cascade, "models.cascade") if config.cascade else None
        self._check_models(ladder, cascade)
        self._tile_shape = ladder[0].manifest.tile_shape
        return Plan(ladder, cascade=cascade, cascade_below=config.cascade_below, screening=config.screening,
                    scheduler=self._scheduler, store=self._store, priority=config.priority,
                    uncertain_below=config.uncertain_below, clock=self._monotonic, now=self._now)

    def _saved_budget(self) -> Budget | None:
        """The budgets last set over the link, which replace the config's."""
        if self.config.link is None or not self.config.link.budget.exists():
            return None
        try:
            return Budget(**json.loads(self.config.link.budget.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"budgets set over the link, {self.config.link.budget}, are unreadable ({exc}): "
                              f"remove the file to go back to the config's") from None

    def _load(self, path: Path, name: str) -> LoadedModel:
        try:
            return load_model(path, threads=self.config.threads, batch=self.config.batch,
                              interpreter=self.config.interpreter, accelerator=self.config.accelerator)
        except OrbitliteError as exc:
            raise ConfigError(f"config {self.config.source}: {name}: {exc}") from None

    def _check_models(self, ladder: list[LoadedModel], cascade: LoadedModel | None) -> None:
        first = ladder[0].manifest
        for i, model in enumerate([*ladder, *([cascade] if cascade else [])]):
            name = f"models.ladder[{i}]" if i < len(ladder) else "models.cascade"
            m = model.manifest
            if m.tile_shape != first.tile_shape or m.classes != first.classes:
                raise ConfigError(f"config {self.config.source}: {name}: {m.id} does not share {first.id}'s tile "
                                  f"size and classes; a ladder and its cascade must")
            missing = [b for b in m.bands if b not in self.config.bands]
            if missing:
                raise ConfigError(f"config {self.config.source}: bands lacks {','.join(missing)}, which {name} "
                                  f"({m.id}) needs: name the scenes' bands in file order")

    def close(self) -> None:
        self._log.close()
        self._store.close()

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Stop after the strip in progress (safe to call from a signal handler)."""
        self._stopping.set()

    # -- what the link's commands see and change (onboard/endpoint.py), from the link's thread ------

    @property
    def store(self) -> Store:
        return self._store

    def clock(self) -> float:
        return self._clock()

    def spool(self) -> list[Path]:
        return scan_spool(self.config.spool)

    def budget(self) -> Budget:
        with self._lock:
            return self._pending_budget or self._scheduler.budget

    def set_budget(self, budget: Budget) -> Budget:
        """Budgets for the scenes after the one in progress, kept across restarts."""
        assert self.config.link is not None
        write_verified(self.config.link.budget, json.dumps(asdict(budget)).encode())
        with self._lock:
            self._pending_budget = budget
        return budget

    def slot_models(self, active: Path, slot: Path) -> list[Path]:
        """The service's model files named through `active`, as they lie in `slot`."""
        paths = [*self.config.ladder, *([self.config.cascade] if self.config.cascade else [])]
        return [slot / p.relative_to(active) for p in paths if p.is_relative_to(active)]

    def models_changed(self) -> None:
        """The model files moved under the service (a slot switch): load them before the next scene."""
        with self._lock:
            self._models_changed = True

    def status(self) -> dict[str, Any]:
        current = self._current
        return {
            "scene": current.scene_id if current else None,
            "tiles_total": len(current.grid) if current else None,
            "spool_depth": len(self.spool()),
            "models": self._plan.id,
            "budget": asdict(self.budget()),
            "budget_left": self._scheduler.left() if current else None,
            "store": self._store.telemetry(),
            "rss_bytes": rss_bytes(self._host_root),
            "cpu_temp_c": cpu_temperature(self._host_root),
        }

    def _between_scenes(self) -> None:
        """Take up what the link changed while a scene ran."""
        with self._lock:
            budget, self._pending_budget = self._pending_budget, None
            reload, self._models_changed = self._models_changed, False
        if budget is not None:
            self._scheduler.budget = budget
        if reload:
            try:
                self._plan = self._build_plan()
            except OrbitliteError as exc:  # switch_slot self-tested them: this is the storage failing
                self._report(f"the switched models cannot be loaded ({exc}); the service keeps {self._plan.id}")
                return
            self._report(f"models switched: {self._plan.id}")

    def _serve_link(self) -> threading.Thread | None:
        link = self.config.link
        if link is None:
            return None
        from onboard.endpoint import PayloadCommands

        commands = PayloadCommands(self, link.root)
        commands.endpoint = Endpoint(open_port(link.port, link.baud), link.key, link.state, commands.handlers())
        thread = threading.Thread(target=self._answer, args=(commands.endpoint, link), name="link", daemon=True)
        thread.start()
        self._report(f"link: answering commands on {link.port} at {link.baud} baud")
        return thread

    def _answer(self, endpoint: Endpoint, link: LinkConfig) -> None:
        """Serve the link until stop(); a port that fails (a cable pulled, a USB adapter gone) is
        reported in one line and opened again every poll, keeping the link's counters."""
        while not self._stopping.is_set():
            try:
                endpoint.serve(self._stopping)
            except OSError as exc:  # pyserial's SerialException is one
                self._report(f"link: {link.port} failed ({exc}); opening it again in {self.config.poll_seconds:g} s")
                endpoint.close_port()
                while not self._stopping.is_set():
                    self._sleep(self.config.poll_seconds)
                    try:
                        endpoint.use_port(open_port(link.port, link.baud))
                        break
                    except LinkError:
                        continue

    def run(self, once: bool = False) -> Summary:
        """Process the spool: with `once`, the scenes found there now, and return; else poll every
        `poll_seconds` until stop()."""
        summary = Summary()
        link = None if once else self._serve_link()
        try:
            self._poll(once, summary)
        finally:
            if link is not None:
                self._stopping.set()
                link.join()
        if self._stopping.is_set() and summary.stopped is None:  # stopped between scenes
            self._emit("stopped", reason="stop requested")
        return summary

    def _poll(self, once: bool, summary: Summary) -> None:
        while not self._stopping.is_set():
            self._between_scenes()
            queue = scan_spool(self.config.spool)
            self._emit("poll", spool_depth=len(queue))
            moved = 0
            for i, path in enumerate(queue):
                if self._stopping.is_set():
                    break
                moved += self._handle(path, len(queue) - i - 1, summary)
            if once or self._stopping.is_set():
                break
            if not moved:  # nothing new, or only refused scenes: wait before looking again
                self._sleep(self.config.poll_seconds)

    def _handle(self, path: Path, waiting: int, summary: Summary) -> bool:
        """Run one spooled scene; whether it left the spool."""
        self._between_scenes()
        try:
            scene = open_spooled(path, self.config.bands)
        except OrbitliteError as exc:
            return self._fail(path, path.stem, str(exc), waiting, summary)
        with scene:
            return self._process(path, scene, waiting, summary)

    def _process(self, path: Path, scene: Raster, waiting: int, summary: Summary) -> bool:
        record = self._store.scene(scene.id)
        if record is not None and record.state is not SceneState.OPEN:
            self._move(path, DONE)
            self._emit("finished-before", scene.id, waiting, tiles_done=record.n_tiles, tiles_total=record.n_tiles)
            self._report(f"{path.name}: its product {record.product_id} is already stored -> {DONE}/")
            summary.finished_before.append(path.name)
            return True
        grid = TileGrid.covering(scene.shape, self._tile_shape)
        total = len(grid)
        if record is not None and record.model_id != self._plan.id:
            # begun with other models (a slot switched since): their tiles cannot mix with these
            dropped = self._store.restart_scene(scene.id)
            self._report(f"{path.name}: begun with {record.model_id}; its {dropped} committed tiles are dropped "
                         f"and it starts again with {self._plan.id}")
            record = None
        conflict = self._journal_conflict(scene.id, record, total)
        if conflict:
            return self._fail(path, scene.id, conflict, waiting, summary)
        self._current = _InProgress(scene.id, grid, record.next_tile if record else 0, self._monotonic(), waiting)
        try:
            product = classify_scene(scene, self._plan)
        except _Stopped:
            next_tile = self._store.scene(scene.id).next_tile
            self._emit("stopped", scene.id, waiting, tiles_done=next_tile, tiles_total=total,
                       reason=f"stopped; resumes at tile {next_tile} on restart")
            self._report(f"{path.name}: stopped after tile {next_tile} of {total}; it resumes there on restart")
            summary.stopped = path.name
            return False
        except QuotaError as exc:
            self._emit("refused", scene.id, waiting, tiles_done=total, tiles_total=total, reason=str(exc))
            self._report(f"{path.name}: {exc}; it stays in the spool and is retried")
            summary.refused.append(path.name)
            return False
        except StoreError:
            raise  # the store itself fails: no scene can go on
        except OrbitliteError as exc:
            return self._fail(path, scene.id, str(exc), waiting, summary)
        finally:
            self._current = None
        self._move(path, DONE)
        classified = int((product.class_map != NODATA).sum())
        self._emit("scene", scene.id, waiting, tiles_done=total, tiles_total=total,
                   tiles_per_s=product.runtime.get("tiles_per_s"), budget_left=product.runtime.get("budget_left"))
        skipped = ", ".join(f"{s['tiles']} {s['reason']}" for s in product.skipped)
        self._report(f"{path.name}: {classified} of {total} tiles classified"
                     + (f" ({skipped} skipped)" if skipped else "")
                     + f", product {self._store.scene(scene.id).product_id} stored -> {DONE}/")
        summary.done.append(path.name)
        return True

    def _on_commit(self, scene_id: str, next_tile: int) -> None:
        """After each run of tiles the runner journals: at the end of a strip, a telemetry line,
        and the stop when one is asked for (a finished strip of the last row lets the scene end)."""
        now = self._current
        if now is None or now.scene_id != scene_id or (next_tile % now.grid.cols and next_tile < len(now.grid)):
            return
        self._emit("strip", scene_id, now.waiting, tiles_done=next_tile, tiles_total=len(now.grid),
                   tiles_per_s=_rate(next_tile - now.resumed_at, self._monotonic() - now.started),
                   budget_left=self._plan.scheduler.left())
        if self._stopping.is_set() and next_tile < len(now.grid):
            raise _Stopped

    def _journal_conflict(self, scene_id: str, record: SceneRecord | None, total: int) -> str | None:
        """Why the journal cannot take this scene up again, if it cannot."""
        if record is None:
            return None
        if record.n_tiles != total:
            return (f"scene {scene_id} is journaled with {record.n_tiles} tiles, not {total}: the file is not "
                    f"the one begun; rename it to give it a new scene id")
        return None

    def _fail(self, path: Path, scene_id: str, reason: str, waiting: int, summary: Summary) -> bool:
        """Move a scene the runtime refuses to failed/, beside a one-line reason."""
        one_line = " ".join(reason.split())
        write_verified(self.config.spool / FAILED / (path.name + REASON_SUFFIX), (one_line + "\n").encode())
        self._move(path, FAILED)
        self._emit("failed", scene_id, waiting, reason=one_line)
        self._report(f"{path.name}: failed: {one_line} -> {FAILED}/")
        summary.failed.append(path.name)
        return True

    def _move(self, path: Path, folder: str) -> None:
        try:
            os.replace(path, self.config.spool / folder / path.name)
        except FileNotFoundError:  # taken away meanwhile: nothing left to move
            pass
        except OSError as exc:
            raise OutputError(f"cannot move {path} to {folder}/: {exc.strerror}") from None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), timezone.utc)

    def _emit(self, event: str, scene: str | None = None, spool_depth: int = 0, *, tiles_done: int | None = None,
              tiles_total: int | None = None, tiles_per_s: float | None = None,
              budget_left: dict[str, Any] | None = None, reason: str | None = None) -> None:
        self._log.write(Telemetry(
            time=self._now().isoformat(timespec="milliseconds"), event=event, scene=scene, tiles_done=tiles_done,
            tiles_total=tiles_total, tiles_per_s=tiles_per_s, budget_left=budget_left, spool_depth=spool_depth,
            store=self._store.telemetry(), rss_bytes=rss_bytes(self._host_root),
            cpu_temp_c=cpu_temperature(self._host_root), reason=reason))


def _rate(tiles: int, seconds: float) -> float | None:
    return round(tiles / seconds, 1) if seconds > 0 else None
