"""Training a NAS database: the setup every cell trains under, and one `ground.cluster` job per
cell of `cells.json` (local processes or SLURM), after which the index is rebuilt from the cell
folders. Nothing here loads TensorFlow; the jobs do (`ground.nas.cell_job`).

A database holds one setup: the first `nas train` writes `setup.json` (the patch set pinned by
its sha256, the budgets, repeats, network and optimizer); a later one resumes with it, and
refuses an option that would train some cells differently from others."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from ground.cluster import Backend, Job, Limits, State, run
from ground.datasets.patches import load_patches, split_indices
from ground.errors import NasError
from ground.nas.database import rebuild_index
from ground.nas.records import CELL_FOLDERS, CellsFile, DataRef, Setup, read_cells, read_setup, write_setup
from onboard.files import sha256_file
from onboard.schema import convert, to_builtins

# ground.training.train.SPLIT, the split every ground step uses (that module loads TensorFlow)
SPLIT = (0.7, 0.15, 0.15)


def data_ref(path: Path, split_seed: int) -> DataRef:
    """The patch set at `path` as a setup pins it."""
    patches = load_patches(path)
    if patches.parts is not None:
        sizes = tuple(int((patches.parts == i).sum()) for i in range(3))
    else:
        sizes = tuple(len(i) for i in split_indices(patches.y, SPLIT, split_seed))
    return DataRef(path=str(Path(path).resolve()), sha256=sha256_file(path), source=patches.source, task=patches.task,
                   classes=patches.classes, bands=patches.bands, patch=tuple(patches.x.shape[1:3]), split=sizes)


def resolve_setup(db: Path, data: Path | None, options: dict[str, Any]) -> tuple[Setup, bool]:
    """The database's setup, and whether it is new: the stored one, checked against what was
    asked for (`options` left None were not asked for), or a new one made of them."""
    asked = {k: v for k, v in options.items() if v is not None}
    stored = read_setup(db)
    if stored is None:
        if data is None:
            raise NasError(f"{db} has no setup yet: the first `nas train` needs --data")
        ref = data_ref(data, asked.get("split_seed", 0))
        setup = convert({**asked, "data": to_builtins(ref)}, Setup, source="nas train options", error=NasError)
        return setup, True
    current = to_builtins(stored)
    clashes = [f"--{k.replace('_', '-')} {_show(v)} (set up with {_show(current[k])})"
               for k, v in asked.items() if _show(v) != _show(current[k])]
    if data is not None and sha256_file(data) != stored.data.sha256:
        clashes.insert(0, f"--data {data} (set up with {stored.data.path}, another file)")
    if clashes:
        raise NasError(f"{db} trains every cell alike, and was set up otherwise: {'; '.join(clashes)}; "
                       "use another database for another setup")
    return stored, False


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def planned(db: Path) -> CellsFile:
    """The cells `db` lists to train (at least one)."""
    cells = read_cells(db)
    if cells is None or not cells.cells:
        raise NasError(f"{db} lists no cells to train: run `orbitlite ground nas sample --out {db}` first")
    return cells


def jobs_for(db: Path, limits: Limits) -> list[Job]:
    """One job per planned cell, writing DB/cells/<hash>/."""
    cells = planned(db)
    root = db / CELL_FOLDERS
    return [Job(c.hash, root / c.hash, functools.partial(_train_cell, c.matrix, c.ops, str(db.resolve())), limits)
            for c in cells.cells]


def _train_cell(matrix: tuple, ops: tuple, db: str, part: Path) -> None:
    from ground.nas.cell_job import train_cell  # in the job's own process: TensorFlow loads there

    train_cell(matrix, ops, db, part)


def train_database(db: Path, setup: Setup, new: bool, backend: Backend, limits: Limits,
                   say: Callable[[str], None]) -> dict[str, State]:
    """Train every planned cell that has not finished, then rebuild the index; the state each
    attempted cell ended in."""
    jobs = jobs_for(db, limits)  # before the setup is written: a database without cells stays empty
    if new:
        write_setup(db, setup)
    ended = run(jobs, backend, say)
    rebuild_index(db)
    return ended


__all__ = ["SPLIT", "data_ref", "jobs_for", "planned", "resolve_setup", "train_database"]
