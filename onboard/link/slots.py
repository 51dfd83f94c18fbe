"""Model slots: `slots/a/` and `slots/b/` under the payload's root and `slots/active`, a symbolic
link to one of them, switched in one atomic rename.

A slot is switched to only once it checks (`check_slot`): its bundle manifest (contract 4,
onboard/contracts/bundle.py) lists every file the service's models need, each model with its
manifest, and nothing else lies in the slot; every file matches its size and sha256; and each model
passes a self-test. `switch_to` is the one way the link switches: the `switch_slot` command, and
`serve` falling back to the other slot when the active one's models cannot be loaded
(onboard/link/commands.py, `slot_fallback`). The active slot is never written over the link
(onboard/link/files.py).
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path, PurePosixPath

import numpy as np

from onboard.contracts import bundle
from onboard.contracts.manifest import sidecar_path
from onboard.errors import SlotError
from onboard.files import fsync_dir
from onboard.inference.model import load_model

SLOTS = ("a", "b")
ACTIVE = "active"
_SWITCHING = threading.Lock()  # the link's thread and the service's may both switch


def active_slot(slots: Path) -> str | None:
    """The slot `slots/active` leads to, or None."""
    try:
        target = (slots / ACTIVE).resolve(strict=True)
        return next((s for s in SLOTS if (slots / s).resolve(strict=True) == target), None)
    except OSError:
        return None


def slot_models(model_paths: list[Path], slots: Path) -> list[PurePosixPath]:
    """The model files among `model_paths` named through `slots/active`, relative to it."""
    active = slots / ACTIVE
    return [PurePosixPath(p.relative_to(active).as_posix()) for p in model_paths if p.is_relative_to(active)]


def check_slot(slots: Path, slot: str, models: list[PurePosixPath], threads: int = 1) -> list[str]:
    """Check `slot` against its bundle, which must list the `models` (relative to the slot) and
    their manifests, and self-test the models; their ids."""
    folder = slots / slot
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise SlotError(f"slot {slot} is a symbolic link or no folder: it cannot be switched to")
    except FileNotFoundError:
        raise SlotError(f"slot {slot} does not exist: deploy a bundle into it first") from None
    bundle.verify(folder, needs=[str(n) for m in models for n in (m, sidecar_path(Path(m)))])
    return _self_test([folder / m for m in models], threads)


def switch_to(slots: Path, slot: str, models: list[PurePosixPath], threads: int = 1) -> list[str]:
    """Check `slot` (`check_slot`) and, only if it passes, make it the active slot; the models' ids."""
    with _SWITCHING:
        ids = check_slot(slots, slot, models, threads)
        _switch_active(slots, slot)
    return ids


def _switch_active(slots: Path, slot: str) -> None:
    """Point `slots/active` at `slot` in one atomic rename."""
    tmp = slots / f".{ACTIVE}.new"
    tmp.unlink(missing_ok=True)
    os.symlink(slot, tmp)
    os.replace(tmp, slots / ACTIVE)
    fsync_dir(slots)


def _self_test(model_paths: list[Path], threads: int = 1) -> list[str]:
    """Load each model against its manifest and run one tile of zeros through it; the ids."""
    ids = []
    for path in model_paths:
        model = load_model(path, threads=threads)
        inp = model.manifest.input
        model.interpreter.set_tensor(model.input_index, np.zeros(inp.shape, dtype=np.dtype(inp.dtype)))
        model.interpreter.invoke()
        out = model.interpreter.get_tensor(model.output_index)
        if out.shape[-1] != len(model.manifest.classes) or not np.isfinite(out.astype(np.float64)).all():
            raise SlotError(f"{path}: the self-test output is {out.shape} with non-finite values or the wrong "
                            f"number of classes")
        ids.append(model.manifest.id)
    return ids
