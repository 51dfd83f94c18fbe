"""Model slots: `slots/a/` and `slots/b/` under the payload's root and `slots/active`, a symbolic
link to one of them, switched in one atomic rename.

A slot is switched to only once it checks (`check_slot`): its bundle manifest (contract 4,
onboard/contracts/bundle.py) lists every file the service's models need, each model with its
manifest and self-test vectors, and nothing else lies in the slot; every file matches its size and
sha256; and each model reproduces the outputs its vectors recorded (onboard/contracts/selftest.py).
`switch_to` is the one way the link switches: the `switch_slot` command, and
`serve` falling back to the other slot when the active one's models cannot be loaded
(onboard/link/commands.py, `slot_fallback`). The active slot is never written over the link
(onboard/link/files.py).
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path, PurePosixPath

from onboard.contracts import bundle
from onboard.inference import selftest
from onboard.contracts.manifest import sidecar_path
from onboard.errors import SlotError
from onboard.service.supervisor import switch_link

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
    bundle.verify(folder, needs=[str(n) for m in models
                                 for n in (m, sidecar_path(Path(m)), selftest.vectors_path(Path(m)))])
    return [selftest.check(folder / m, threads) for m in models]


def switch_to(slots: Path, slot: str, models: list[PurePosixPath], threads: int = 1) -> list[str]:
    """Check `slot` (`check_slot`) and, only if it passes, make it the active slot; the models' ids."""
    with _SWITCHING:
        ids = check_slot(slots, slot, models, threads)
        switch_link(slots, slot)
    return ids
