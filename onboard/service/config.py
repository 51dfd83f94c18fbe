"""The service's configuration: a JSON file read field by field into a `ServiceConfig`; every
error names the file and the field, and a field nobody reads (a typo) is an error too."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from onboard.errors import BudgetError, ConfigError, OrbitliteError
from onboard.inference.screening import Screening
from onboard.run.boards import BOARDS, BoardProfile
from onboard.run.budget import Budget
from onboard.store.store import DropPolicy, StoreConfig


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
    root = section.source.parent
    config = LinkConfig(port=section.text("port"), baud=section.integer("baud", 115200, positive=True),
                        key_file=section.path("key_file"), root=root,
                        state=section.path("state", root / "link-state.json"),
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
