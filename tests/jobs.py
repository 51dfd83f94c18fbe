"""Job functions for the tests of `ground.cluster`'s backends (local and SLURM): top-level, so a
job pickles by reference and its process (or SLURM task) imports them from here."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def write_file(name: str, text: str, part: Path) -> None:
    (part / name).write_text(text)


def fail(message: str, part: Path) -> None:
    (part / "half.txt").write_text("half")
    raise ValueError(message)


def crash(part: Path) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def sleep(seconds: float, part: Path) -> None:
    time.sleep(seconds)


def once_then_fine(flag: str, part: Path) -> None:
    if not Path(flag).exists():
        Path(flag).write_text("tried")
        raise RuntimeError("first attempt fails")
    (part / "ok").write_text("ok")
