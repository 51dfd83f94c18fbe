"""Model slots: `slots/a/` and `slots/b/` under the payload's root and `slots/active`, a symbolic
link to one of them, switched in one atomic rename, after a self-test of the models in the slot."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from onboard.errors import SlotError
from onboard.files import fsync_dir
from onboard.inference.model import load_model

SLOTS = ("a", "b")
ACTIVE = "active"


def active_slot(slots: Path) -> str | None:
    try:
        target = os.readlink(slots / ACTIVE)
    except OSError:
        return None
    return target if target in SLOTS else None


def switch_active(slots: Path, slot: str) -> None:
    """Point `slots/active` at `slot` in one atomic rename."""
    tmp = slots / f".{ACTIVE}.new"
    tmp.unlink(missing_ok=True)
    os.symlink(slot, tmp)
    os.replace(tmp, slots / ACTIVE)
    fsync_dir(slots)


def self_test(model_paths: list[Path], threads: int = 1) -> list[str]:
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
