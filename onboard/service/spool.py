"""The spool directory: the scenes waiting in it, oldest first, and how each is opened (so that
any fault of its own, found opening or reading it, is a SceneError); finished scenes move to
done/, refused ones to failed/ beside a one-line reason."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from onboard.errors import OrbitliteError, SceneError
from onboard.scenes.raster import Raster, one_line
from onboard.scenes.reader import open_raster

SCENE_SUFFIXES = (".npy", ".tif", ".tiff")
DONE, FAILED = "done", "failed"
REASON_SUFFIX = ".reason"


def open_spooled(path: Path, bands: Sequence[str]) -> Raster:
    """The scene in a spool file (one of SCENE_SUFFIXES): the one place the service opens scenes.
    Opening it and reading it fail only with the project's own errors (a SceneError for what the
    readers refuse), so one scene cannot stop the service: an exception of another type, a fault
    a hostile file trips that the readers do not foresee, becomes a SceneError naming it."""
    try:
        return _Guarded(open_raster(path, bands))
    except OrbitliteError:
        raise
    except Exception as exc:
        raise _unforeseen(path, exc) from None


class _Guarded(Raster):
    """A spooled scene whose reads raise only the project's errors (see `open_spooled`)."""

    def __init__(self, source: Raster) -> None:
        self._source = source
        self.path, self.id, self.bands = source.path, source.id, source.bands
        self.shape, self.dtype, self.footprint = source.shape, source.dtype, source.footprint

    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        try:
            return self._source.read_strip(band_index, row0, out)
        except OrbitliteError:
            raise
        except Exception as exc:
            raise _unforeseen(self.path, exc) from None

    def close(self) -> None:
        self._source.close()


def _unforeseen(path: Path, exc: Exception) -> SceneError:
    what = one_line(exc)
    what = what if len(what) <= 200 else what[:197] + "..."
    return SceneError(f"scene {path} cannot be read ({type(exc).__name__}: {what}): the file is corrupt or of a "
                      f"kind the readers do not know; check it on the ground")


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
