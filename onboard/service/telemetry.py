"""The service's telemetry: one JSON line per event, with the host's memory and CPU temperature."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from onboard.errors import OutputError


@dataclass
class Telemetry:
    """One line of the telemetry log (JSON). `budget_left` is Scheduler.left() for the scene in
    progress (None on a poll line); `store` is Store.telemetry()."""

    time: str  # UTC ISO 8601, from the injected clock
    event: str  # poll, strip, scene, finished-before, failed, refused, stopped, models
    scene: str | None
    tiles_done: int | None
    tiles_total: int | None
    tiles_per_s: float | None
    budget_left: dict[str, Any] | None
    spool_depth: int  # scenes waiting in the spool, not counting the one in progress
    store: dict[str, int | None]
    rss_bytes: int | None
    cpu_temp_c: float | None
    reason: str | None = None  # why a scene failed, was refused or stopped; why the models are not as configured


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


class TelemetryLog:
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
