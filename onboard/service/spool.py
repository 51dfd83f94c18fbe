"""The spool directory: the scenes waiting in it, oldest first, and how each is opened; finished
scenes move to done/, refused ones to failed/ beside a one-line reason."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from onboard.scenes.raster import Raster
from onboard.scenes.reader import open_raster

SCENE_SUFFIXES = (".npy", ".tif", ".tiff")
DONE, FAILED = "done", "failed"
REASON_SUFFIX = ".reason"


def open_spooled(path: Path, bands: Sequence[str]) -> Raster:
    """The scene in a spool file (one of SCENE_SUFFIXES): the one place the service opens scenes."""
    return open_raster(path, bands)


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
