"""The files of a NAS database, each a versioned contract checked by the schema library:

```
DB/cells.json            the cells to train (`nas sample`): hash, matrix, ops, how each was sampled
DB/setup.json            how every cell is trained (the first `nas train` writes it; later ones must match)
DB/cells/<hash>/         one finished job per cell (ground.cluster): record.json, cell.tflite (+ manifest,
                         evaluation), the job's marker; DB/cells/.jobs/ holds logs and failure records
DB/index.parquet         one row per (cell, budget, repeat), rebuilt from the cell folders
DB/landscape/            `nas landscape`: landscape.md and its plots
```

A cell's record names the setup it was trained under by the sha256 of setup.json, so a folder
copied in from another database is never mixed into this one's index."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta

from ground.errors import NasError
from ground.nas.space import cell_hash
from models.nas_space import MAX_VERTICES, prune_cell
from onboard.files import write_verified
from onboard.schema import (Count, Fraction, Int64, Name, NonNegative, PathText, Positive, PositiveInt, Schema, Sha256,
                            Text, decode_contract, encode_json, read_bounded)

CELLS, SETUP, RECORD, INDEX = "cells.json", "setup.json", "record.json", "index.parquet"
CELL_FOLDERS = "cells"
MAX_BYTES = 64 * 2**20  # a plan of ~200k cells; a record is a few kB

Hash = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}\Z")]
Bit = Annotated[int, Meta(ge=0, le=1)]
Matrix = Annotated[tuple[Annotated[tuple[Bit, ...], Meta(min_length=2, max_length=MAX_VERTICES)], ...],
                   Meta(min_length=2, max_length=MAX_VERTICES)]
Op = Literal["input", "output", "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"]
Ops = Annotated[tuple[Op, ...], Meta(min_length=2, max_length=MAX_VERTICES)]
Budgets = Annotated[tuple[Annotated[int, Meta(ge=1, le=10_000)], ...], Meta(min_length=1, max_length=16)]


def _check_cell(hash: str, matrix: tuple, ops: tuple) -> None:
    """A stored cell is pruned already and carries its own hash (ValueError otherwise)."""
    cell = prune_cell(matrix, ops)
    if cell.matrix != tuple(matrix) or cell.ops != tuple(ops):
        raise ValueError("the cell is not in its pruned form")
    if cell_hash(cell) != hash:
        raise ValueError(f"hash {hash} is not the cell's (NAS-Bench-101 hash {cell_hash(cell)})")


class PlannedCell(Schema):
    hash: Hash
    matrix: Matrix
    ops: Ops
    method: Literal["uniform", "lhs", "walk", "given"]
    seed: Int64

    def __post_init__(self) -> None:
        _check_cell(self.hash, self.matrix, self.ops)


class CellsFile(Schema, kw_only=True):
    schema: Literal["orbitlite/nas-cells"] = "orbitlite/nas-cells"
    version: Literal[1] = 1
    cells: tuple[PlannedCell, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for c in self.cells:
            if c.hash in seen:
                raise ValueError(f"cell {c.hash} is listed twice")
            seen.add(c.hash)


class DataRef(Schema):
    """The patch set every cell trains on, pinned by its sha256."""

    path: PathText
    sha256: Sha256
    source: Text
    task: Literal["single-label", "multi-label"]
    classes: Annotated[tuple[Name, ...], Meta(min_length=2, max_length=255)]
    bands: Annotated[tuple[Name, ...], Meta(min_length=1, max_length=255)]
    patch: tuple[PositiveInt, PositiveInt]
    split: tuple[Count, Count, Count]  # train, validation, test patches


class Setup(Schema, kw_only=True):
    """How every cell of a database is trained (see README, `nas train`)."""

    schema: Literal["orbitlite/nas-setup"] = "orbitlite/nas-setup"
    version: Literal[1] = 1
    data: DataRef
    budgets: Budgets
    repeats: Annotated[int, Meta(ge=1, le=100)]
    # snapshots: one run per repeat to the largest budget, measured at each budget's epoch, under a
    # constant learning rate; separate: a run per budget and repeat (NAS-Bench-101), cosine-decayed
    budgets_as: Literal["snapshots", "separate"] = "snapshots"
    schedule: Literal["constant", "cosine"] = "constant"
    stem: Annotated[int, Meta(ge=1, le=1024)] = 16
    stacks: Annotated[int, Meta(ge=1, le=8)] = 3
    cells_per_stack: Annotated[int, Meta(ge=1, le=16)] = 1
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: Positive = 3e-3
    batch_size: Annotated[int, Meta(ge=1, le=65536)] = 32
    seed: Int64 = 0  # repeat r trains with seed + r
    split_seed: Int64 = 0
    latency_runs: Annotated[int, Meta(ge=1, le=100_000)] = 100
    threads: Annotated[int, Meta(ge=1, le=256)] = 1  # TensorFlow threads per cell job

    def __post_init__(self) -> None:
        if list(self.budgets) != sorted(set(self.budgets)):
            raise ValueError(f"budgets {list(self.budgets)} must be distinct and increasing")
        if self.budgets_as == "snapshots" and self.schedule != "constant":
            raise ValueError("snapshots of one run stand for separate runs only under a constant learning rate")

    @property
    def runs(self) -> list[tuple[int, int]]:
        return [(b, r) for b in self.budgets for r in range(self.repeats)]


class Run(Schema):
    budget: PositiveInt
    repeat: Count
    seed: Int64
    train_accuracy: Fraction
    validation_accuracy: Fraction
    test_accuracy: Fraction
    training_time: NonNegative  # s of training up to this budget, on `threads` threads


class Int8(Schema):
    """The full-integer int8 TFLite model of the largest budget's first repeat, as `ground convert`
    and `ground evaluate` make and measure it."""

    budget: PositiveInt
    repeat: Count
    size_bytes: Count
    keras_test_accuracy: Fraction
    tflite_test_accuracy: Fraction
    agreement: Fraction
    latency_avg_us: NonNegative
    latency_p50_us: NonNegative
    latency_p90_us: NonNegative
    interpreter: Text


class CellRecord(Schema, kw_only=True):
    schema: Literal["orbitlite/nas-cell"] = "orbitlite/nas-cell"
    version: Literal[1] = 1
    hash: Hash
    matrix: Matrix
    ops: Ops
    setup_sha256: Sha256
    metric: Literal["top-1 accuracy", "micro F1"]
    parameters: Count
    flops: Count  # TensorFlow profiler's float operations of the inference graph at batch 1
    budgets: Budgets
    repeats: Annotated[int, Meta(ge=1, le=100)]
    runs: tuple[Run, ...]
    int8: Int8
    host: Text
    tensorflow: Text
    seconds: NonNegative

    def __post_init__(self) -> None:
        _check_cell(self.hash, self.matrix, self.ops)
        expected = sorted((b, r) for b in self.budgets for r in range(self.repeats))
        if sorted((run.budget, run.repeat) for run in self.runs) != expected:
            raise ValueError(f"runs must cover each of budgets {list(self.budgets)} x {self.repeats} repeats once")


def setup_sha256(setup: Setup) -> str:
    return hashlib.sha256(encode_json(setup)).hexdigest()


def read_cells(db: Path) -> CellsFile | None:
    path = db / CELLS
    if not path.exists():
        return None
    return decode_contract(read_bounded(path, MAX_BYTES, error=NasError, what="cell list"), CellsFile,
                           contract="orbitlite/nas-cells", version=1, what="NAS cell list", source=str(path),
                           error=NasError, unreadable=f"{path} is not readable JSON")


def write_cells(db: Path, cells: CellsFile) -> Path:
    db.mkdir(parents=True, exist_ok=True)
    return write_verified(db / CELLS, encode_json(cells, indent=1) + b"\n")


def add_cells(db: Path, cells: list, method: str, seed: int) -> tuple[int, int]:
    """List `cells` (models.nas_space.Cell, pruned) in `db/cells.json` to be trained, each not
    listed yet; the number added and the number listed in all. `method` says where they came
    from (`given` for cells chosen by hand)."""
    plan = read_cells(db) or CellsFile(cells=())
    listed = {c.hash for c in plan.cells}
    added: dict[str, PlannedCell] = {}
    for c in cells:
        key = cell_hash(c)
        if key not in listed and key not in added:
            added[key] = PlannedCell(hash=key, matrix=c.matrix, ops=c.ops, method=method, seed=seed)
    write_cells(db, CellsFile(cells=plan.cells + tuple(added.values())))
    return len(added), len(plan.cells) + len(added)


def read_setup(db: Path) -> Setup | None:
    path = db / SETUP
    if not path.exists():
        return None
    return decode_contract(read_bounded(path, 1 << 20, error=NasError, what="setup"), Setup,
                           contract="orbitlite/nas-setup", version=1, what="NAS database setup", source=str(path),
                           error=NasError, unreadable=f"{path} is not readable JSON")


def write_setup(db: Path, setup: Setup) -> Path:
    db.mkdir(parents=True, exist_ok=True)
    return write_verified(db / SETUP, encode_json(setup, indent=2) + b"\n")


def read_record(folder: Path) -> CellRecord:
    path = folder / RECORD
    return decode_contract(read_bounded(path, 1 << 20, error=NasError, what="cell record"), CellRecord,
                           contract="orbitlite/nas-cell", version=1, what="NAS cell record", source=str(path),
                           error=NasError, unreadable=f"{path} is not readable JSON")


def write_record(folder: Path, record: CellRecord) -> Path:
    return write_verified(folder / RECORD, encode_json(record, indent=2) + b"\n")


__all__ = ["CELLS", "CELL_FOLDERS", "INDEX", "RECORD", "SETUP", "CellRecord", "CellsFile", "DataRef", "Int8",
           "PlannedCell", "Run", "Setup", "add_cells", "read_cells", "read_record", "read_setup", "setup_sha256", "write_cells",
           "write_record", "write_setup"]
