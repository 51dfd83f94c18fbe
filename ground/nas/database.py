"""The NAS database's index and its query API, after NAS-Bench-101's (`nasbench.api.NASBench`).

The cell folders are the truth; `index.parquet` (one row per cell, budget and repeat) is rebuilt
from them after training, or when it no longer lists the finished folders. `NasDatabase` reads it:

```python
db = NasDatabase("db")                      # seed=... makes the sampled repeats reproducible
db.query((matrix, ops), epochs=4)           # one repeat, sampled; counts the training time spent
db.is_valid((matrix, ops))                  # in the NAS-Bench-101 space (not necessarily trained)
fixed, computed = db.get_metrics_from_spec(cell)   # every repeat of every budget; counts nothing
db.get_budget_counters()                    # (training seconds, epochs) spent by queries
```

A cell is a `models.nas_space.Cell`, a (matrix, ops) pair, or anything with `.matrix` and `.ops`
(NAS-Bench-101's ModelSpec). A cell outside the space raises InvalidCellError, one the database
has not trained (or a budget it was not trained for) CellNotFoundError, each in one line."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ground.cluster.jobs import done_record
from ground.errors import CellNotFoundError, NasError
from ground.nas.board import latencies
from ground.nas.records import CELL_FOLDERS, INDEX, Hash, read_record, read_setup, setup_sha256
from ground.nas.space import as_cell, cell_hash, is_valid as space_is_valid
from models.nas_space import Cell
from onboard.errors import OrbitliteError
from onboard.files import write_verified
from onboard.schema import Count, Fraction, Int64, NonNegative, PositiveInt, Schema, Text, convert

COLUMNS = pa.schema([
    ("hash", pa.string()), ("matrix", pa.string()), ("ops", pa.string()), ("vertices", pa.int8()),
    ("edges", pa.int8()), ("parameters", pa.int64()), ("flops", pa.int64()), ("budget", pa.int32()),
    ("repeat", pa.int32()), ("seed", pa.int64()), ("train_accuracy", pa.float64()),
    ("validation_accuracy", pa.float64()), ("test_accuracy", pa.float64()), ("training_time", pa.float64()),
    ("int8_size_bytes", pa.int64()), ("int8_test_accuracy", pa.float64()), ("int8_latency_us", pa.float64()),
    ("metric", pa.string()),
])


class Row(Schema):
    """One row of the index, as read back."""

    hash: Hash
    matrix: Text
    ops: Text
    vertices: PositiveInt
    edges: Count
    parameters: Count
    flops: Count
    budget: PositiveInt
    repeat: Count
    seed: Int64
    train_accuracy: Fraction
    validation_accuracy: Fraction
    test_accuracy: Fraction
    training_time: NonNegative
    int8_size_bytes: Count
    int8_test_accuracy: Fraction
    int8_latency_us: NonNegative
    metric: Text


def finished_folders(db: Path) -> list[Path]:
    root = db / CELL_FOLDERS
    if not root.is_dir():
        return []
    return sorted(f for f in root.iterdir() if f.is_dir() and not f.name.startswith(".")
                  and not f.name.endswith(".part") and done_record(f) is not None)


def rebuild_index(db: Path) -> tuple[int, list[str]]:
    """Write `db/index.parquet` from the finished cell folders; the number of cells indexed, and
    a line for each folder left out (unreadable, or trained under another setup)."""
    rows, skipped = _rows(db)
    buf = io.BytesIO()
    table = pa.Table.from_pylist(rows, schema=COLUMNS)
    table = table.replace_schema_metadata({"setup_sha256": setup_sha256(_setup(db)),
                                           "left_out": json.dumps(sorted(name for name, _ in skipped))})
    pq.write_table(table, buf)
    write_verified(db / INDEX, buf.getvalue())
    return len({r["hash"] for r in rows}), [line for _, line in skipped]


def _setup(db: Path):
    setup = read_setup(db)
    if setup is None:
        raise NasError(f"{db} is not a NAS database (no setup.json): build one with `orbitlite ground nas sample` "
                       "and `nas train`")
    return setup


def _rows(db: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    sha = setup_sha256(_setup(db))
    rows, skipped = [], []
    for folder in finished_folders(db):
        try:
            record = read_record(folder)
        except OrbitliteError as exc:
            skipped.append((folder.name, str(exc)))
            continue
        if record.setup_sha256 != sha or record.hash != folder.name:
            skipped.append((folder.name, f"{folder}: trained under another setup, or named for another cell"))
            continue
        fixed = {"hash": record.hash, "matrix": json.dumps(record.matrix), "ops": ",".join(record.ops),
                 "vertices": len(record.ops), "edges": int(np.sum(record.matrix)), "parameters": record.parameters,
                 "flops": record.flops, "int8_size_bytes": record.int8.size_bytes,
                 "int8_test_accuracy": record.int8.tflite_test_accuracy, "int8_latency_us": record.int8.latency_p50_us,
                 "metric": record.metric}
        rows += [{**fixed, "budget": r.budget, "repeat": r.repeat, "seed": r.seed, "train_accuracy": r.train_accuracy,
                  "validation_accuracy": r.validation_accuracy, "test_accuracy": r.test_accuracy,
                  "training_time": r.training_time} for r in record.runs]
    return rows, skipped


def read_index(db: Path) -> list[Row]:
    """The index's rows, rebuilt first when missing or when it does not list exactly the finished
    cell folders."""
    path = db / INDEX
    sha = setup_sha256(_setup(db))
    try:
        table = pq.read_table(path) if path.exists() else None
    except (OSError, pa.ArrowException) as exc:
        raise NasError(f"{path} is not a readable Parquet index ({exc}); delete it and it will be rebuilt") from None
    if table is None or not _current(table, sha, {f.name for f in finished_folders(db)}):
        rebuild_index(db)
        table = pq.read_table(path)
    return convert(table.to_pylist(), list[Row], source=f"{path} is malformed", error=NasError)


def _current(table: pa.Table, sha: str, folders: set[str]) -> bool:
    """Whether an index was built under this setup from exactly these cell folders."""
    metadata = table.schema.metadata or {}
    try:
        left_out = json.loads(metadata.get(b"left_out", b"[]"))
    except ValueError:
        return False
    if not isinstance(left_out, list) or not all(isinstance(name, str) for name in left_out):
        return False
    return (metadata.get(b"setup_sha256") == sha.encode() and "hash" in table.column_names
            and set(table.column("hash").to_pylist()) | set(left_out) == folders)


class NasDatabase:
    """A trained NAS database, queried like NAS-Bench-101 (see the module's docstring)."""

    def __init__(self, path: str | Path, seed: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise NasError(f"NAS database {self.path} not found")
        self.setup = _setup(self.path)
        rows = read_index(self.path)
        self.fixed_statistics: dict[str, dict[str, Any]] = {}
        self.computed_statistics: dict[str, dict[int, list[dict[str, Any]]]] = {}
        for r in rows:
            self.fixed_statistics.setdefault(r.hash, {
                "module_adjacency": np.array(json.loads(r.matrix), np.int8), "module_operations": r.ops.split(","),
                "trainable_parameters": r.parameters, "flops": r.flops, "int8_size_bytes": r.int8_size_bytes,
                "int8_test_accuracy": r.int8_test_accuracy, "int8_latency_us": r.int8_latency_us, "metric": r.metric})
            self.computed_statistics.setdefault(r.hash, {}).setdefault(r.budget, []).append({
                "repeat": r.repeat, "seed": r.seed, "training_time": r.training_time,
                "train_accuracy": r.train_accuracy, "validation_accuracy": r.validation_accuracy,
                "test_accuracy": r.test_accuracy})
        for key, fixed in self.fixed_statistics.items():
            fixed["board_latency_us"] = latencies(self.path / CELL_FOLDERS / key)
        for budgets in self.computed_statistics.values():
            for runs in budgets.values():
                runs.sort(key=lambda run: run["repeat"])
        self.valid_epochs = tuple(self.setup.budgets)
        self._random = random.Random(seed)
        self.reset_budget_counters()

    def __len__(self) -> int:
        return len(self.fixed_statistics)

    def __contains__(self, spec: Any) -> bool:
        return cell_hash(_cell(spec)) in self.fixed_statistics

    def hash_iterator(self) -> Iterator[str]:
        return iter(self.fixed_statistics)

    def is_valid(self, spec: Any) -> bool:
        """Whether `spec` is a cell of the NAS-Bench-101 space (it need not be in the database)."""
        if isinstance(spec, Cell):
            return space_is_valid(spec.matrix, spec.ops)
        try:
            matrix, ops = _parts(spec)
        except NasError:
            return False
        return space_is_valid(matrix, ops)

    def query(self, spec: Any, epochs: int | None = None) -> dict[str, Any]:
        """One repeat of `spec` trained for `epochs` (default: the largest budget), sampled, as
        NAS-Bench-101's query answers; adds its training time and epochs to the budget counters."""
        epochs = max(self.valid_epochs) if epochs is None else epochs
        self._check_epochs(epochs)
        fixed, computed = self.get_metrics_from_spec(spec)
        run = self._random.choice(computed[epochs])
        self.training_time_spent += run["training_time"]
        self.total_epochs_spent += epochs
        return {**fixed, **{k: run[k] for k in ("training_time", "train_accuracy", "validation_accuracy",
                                                  "test_accuracy")}, "epochs": epochs, "repeat": run["repeat"]}

    def get_metrics_from_spec(self, spec: Any) -> tuple[dict[str, Any], dict[int, list[dict[str, Any]]]]:
        cell = _cell(spec)
        key = cell_hash(cell)
        if key not in self.fixed_statistics:
            raise CellNotFoundError(f"cell {key} ({len(cell.ops)} vertices, {int(np.sum(cell.matrix))} edge(s)) is not "
                                    f"in the NAS database {self.path} ({len(self)} cells)")
        return self.get_metrics_from_hash(key)

    def get_metrics_from_hash(self, key: str) -> tuple[dict[str, Any], dict[int, list[dict[str, Any]]]]:
        if key not in self.fixed_statistics:
            raise CellNotFoundError(f"no cell with hash {key!r} in the NAS database {self.path}")
        fixed = dict(self.fixed_statistics[key])
        fixed["module_adjacency"] = fixed["module_adjacency"].copy()
        fixed["board_latency_us"] = dict(fixed["board_latency_us"])
        return fixed, {b: [dict(r) for r in runs] for b, runs in self.computed_statistics[key].items()}

    def get_budget_counters(self) -> tuple[float, int]:
        return self.training_time_spent, self.total_epochs_spent

    def reset_budget_counters(self) -> None:
        self.training_time_spent, self.total_epochs_spent = 0.0, 0

    def _check_epochs(self, epochs: int) -> None:
        if epochs not in self.valid_epochs:
            raise CellNotFoundError(f"epochs {epochs}: the NAS database {self.path} was trained for "
                                    f"{', '.join(map(str, self.valid_epochs))} epochs")


def _parts(spec: Any) -> tuple[Any, Any]:
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return spec[0], spec[1]
    if hasattr(spec, "matrix") and hasattr(spec, "ops"):
        return spec.matrix, spec.ops
    raise NasError(f"a cell is a Cell, a (matrix, ops) pair or a ModelSpec, not {type(spec).__name__}")


def _cell(spec: Any) -> Cell:
    if isinstance(spec, Cell):
        return as_cell(spec.matrix, spec.ops)
    matrix, ops = _parts(spec)
    return as_cell(matrix, ops)


__all__ = ["COLUMNS", "NasDatabase", "Row", "finished_folders", "read_index", "rebuild_index"]
