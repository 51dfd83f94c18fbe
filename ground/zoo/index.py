"""The zoo's index and its loader. The member folders are the truth; `build_index` rebuilds from
them one Parquet table with a row per member and form (`index.parquet`) and one with a row per
member, form and epoch of training (`epochs.parquet`; a twin's are its own training's), joining each member's grid point with its metrics. A folder
that is not a finished member, or whose files do not validate, is left out with one line saying
why.

`load_zoo` gives a population study the table and the weights (`.npz`, no TensorFlow needed),
dropping the members that diverged (a loss that went NaN, weights NaN, infinite or beyond a bound)
and saying how many it dropped, as Model Zoos' loader does."""

from __future__ import annotations

import math
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable

import numpy as np
from msgspec import Meta

from ground.cluster.jobs import done_record
from ground.errors import ZooError
from ground.zoo.grid import MODEL_AXES, Member
from ground.zoo.zoo import MEMBERS
from onboard.errors import OrbitliteError
from onboard.schema import (Count, FileName, Finite, Fraction, Name, NonNegative, Schema, Text, decode,
                            read_bounded)

INDEX, EPOCHS = "index.parquet", "epochs.parquet"
MAX_JSON_BYTES = 16 << 20
MAX_NPZ_BYTES = 2 << 30  # uncompressed, per file
EXPLODED = 1e4  # a weight of larger magnitude means the member diverged
COLUMNS = {"member", "architecture", "form", "final_loss"}  # what load_zoo reads of the index


class DataInfo(Schema):
    path: Text
    source: Text
    patches: Count
    task: Name


class Params(Schema):
    member: Member
    data: DataInfo


class Form(Schema):
    form: FileName
    target_sparsity: Fraction | None
    sparsity: Fraction
    metric: Text
    keras: Finite | None
    int8: Finite | None
    agreement: Fraction | None
    metrics: dict[Name, Finite | None]
    size_bytes: Count
    size_gzip_bytes: Count
    latency_us: NonNegative
    epochs: Annotated[list[dict[Name, Finite | None]], Meta(max_length=100_000)] = []


class Metrics(Schema):
    epochs: Annotated[list[dict[Name, Finite | None]], Meta(max_length=100_000)]
    train_seconds: NonNegative
    forms: Annotated[list[Form], Meta(min_length=1, max_length=1000)]


@dataclass
class Zoo:
    """A zoo as a population study reads it."""

    table: Any  # pyarrow.Table: one row per kept member and form
    weights: dict[str, dict[str, np.ndarray]]  # member -> its dense weights at the checkpoint read
    epoch: dict[str, int]  # member -> the checkpoint's epoch
    dropped: dict[str, str] = field(default_factory=dict)  # member -> why it was left out

    def vectors(self, architecture: str) -> tuple[list[str], np.ndarray]:
        """The members of one architecture and their weights flattened, one row each."""
        keys = [k for k, a in zip(self.table.column("member").to_pylist(), self.table.column("architecture").to_pylist())
                if a == architecture and k in self.weights]
        keys = list(dict.fromkeys(keys))
        return keys, np.stack([np.concatenate([w.ravel() for w in self.weights[k].values()]) for k in keys]) \
            if keys else np.zeros((0, 0), np.float32)


def member_rows(folder: Path) -> tuple[list[dict], list[dict]]:
    """The index rows (one per form) and epoch rows of a finished member; ZooError if its files
    are not a member's."""
    if done_record(folder) is None:
        raise ZooError(f"{folder.name}: not a finished member (no valid marker)")
    params = _read(folder / "params.json", Params)
    metrics = _read(folder / "metrics.json", Metrics)
    m = params.member
    if m.key != folder.name:
        raise ZooError(f"{folder.name}: its params.json is member {m.key}'s")
    point = {"member": m.key, "architecture": m.architecture, "seed": m.seed,
             **{axis: m.overrides.get(axis) for axis in MODEL_AXES},
             "optimizer": m.train.optimizer, "learning_rate": m.train.learning_rate,
             "weight_decay": m.train.weight_decay, "batch_size": m.train.batch_size, "epochs": m.train.epochs,
             "dataset": params.data.source, "task": params.data.task}
    last = metrics.epochs[-1] if metrics.epochs else {}
    rows = [{**point, "form": f.form, "method": _method(f.form), "target_sparsity": f.target_sparsity,
             "sparsity": f.sparsity, "metric": f.metric, "keras": f.keras, "int8": f.int8, "agreement": f.agreement,
             "size_bytes": f.size_bytes, "size_gzip_bytes": f.size_gzip_bytes, "latency_us": f.latency_us,
             "final_loss": last.get("loss"), "final_val_loss": last.get("val_loss"),
             "train_seconds": metrics.train_seconds} for f in metrics.forms]
    logs = [("dense", metrics.epochs), *[(f.form, f.epochs) for f in metrics.forms if f.epochs]]
    epochs = [{"member": m.key, "form": form, "epoch": int(e.get("epoch") or i + 1),
               **{k: e.get(k) for k in ("loss", "accuracy", "val_loss", "val_accuracy", "val_micro_f1", "val_mAP")}}
              for form, log in logs for i, e in enumerate(log)]
    return rows, epochs


def build_index(out: Path, say: Callable[[str], None]) -> tuple[Path, int]:
    """Rebuild `out`'s index from its member folders; its path and the number of members in it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from onboard.files import write_verified

    rows, epochs, members = [], [], 0
    for folder in sorted((out / MEMBERS).iterdir()) if (out / MEMBERS).is_dir() else []:
        if folder.name.startswith(".") or folder.name.endswith(".part") or not folder.is_dir():
            continue
        try:
            r, e = member_rows(folder)
        except OrbitliteError as exc:
            say(f"left out of the index: {exc}")
            continue
        rows += r
        epochs += e
        members += 1
    for name, table in ((INDEX, rows), (EPOCHS, epochs)):
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(table), sink)
        write_verified(out / name, sink.getvalue().to_pybytes())
    return out / INDEX, members


def load_zoo(out: Path, epoch: int | None = None, bound: float = EXPLODED,
             say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> Zoo:
    """The zoo at `out`: its index (rebuilt when absent) and each member's dense weights at
    `epoch` (default: its last checkpoint), without the members that diverged."""
    import pyarrow.parquet as pq

    if not (out / INDEX).is_file():
        build_index(out, say)
    try:
        table = pq.read_table(out / INDEX)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise ZooError(f"{out / INDEX} is not a readable Parquet index ({exc}); `orbitlite ground zoo index` rebuilds it") from None
    missing = sorted(COLUMNS - set(table.column_names))
    if missing:
        raise ZooError(f"{out / INDEX} lacks the column(s) {', '.join(missing)}; `orbitlite ground zoo index` rebuilds it")
    weights, epochs, dropped = {}, {}, {}
    rows = table.to_pylist()
    dense = {r["member"]: r for r in rows if r["form"] == "dense"}
    for key in dict.fromkeys(r["member"] for r in rows):
        if not isinstance(key, str) or not key or "/" in key or key.startswith("."):
            why = f"{key!r} is not a member's folder name"
        else:
            why = _diverged_loss(dense[key]) if key in dense else "it has no dense model in the index"
        if why is None:
            try:
                at, w = _checkpoint(out / MEMBERS / key, epoch)
                why = _diverged_weights(w, bound)
            except OrbitliteError as exc:
                why = str(exc)
        if why:
            dropped[key] = why
            continue
        weights[key], epochs[key] = w, at
    if dropped:
        say(f"dropped {len(dropped)} of {len(dropped) + len(weights)} members: "
            + "; ".join(f"{k}: {v}" for k, v in list(dropped.items())[:3]) + (" ..." if len(dropped) > 3 else ""))
    kept = [r for r in rows if r["member"] in weights]
    import pyarrow as pa

    return Zoo(pa.Table.from_pylist(kept, schema=table.schema), weights, epochs, dropped)


def read_npz(path: Path, limit: int = MAX_NPZ_BYTES) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` file, each checked by its header before it is read: refused when
    they would take more than `limit` bytes together, or hold Python objects."""
    out, total = {}, 0
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = header(f)
                    if dtype.hasobject:
                        raise ZooError(f"{path}: {info.filename} holds Python objects; refused")
                    total += math.prod(shape) * dtype.itemsize
                    if total > limit:
                        raise ZooError(f"{path}: its arrays would take {total / 2**20:.0f} MB; refused over "
                                       f"{limit / 2**20:.0f} MB")
                with z.open(info) as f:
                    out[info.filename.removesuffix(".npy")] = np.lib.format.read_array(f, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as exc:
        raise ZooError(f"{path}: not a readable .npz ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return out


def _checkpoint(folder: Path, epoch: int | None) -> tuple[int, dict[str, np.ndarray]]:
    found = {}
    for p in folder.glob("checkpoint_*.npz"):
        number = p.stem.removeprefix("checkpoint_")
        if number.isdigit() and len(number) < 10:
            found[int(number)] = p
    if not found:
        raise ZooError(f"{folder.name}: no checkpoint")
    at = max(found) if epoch is None else epoch
    if at not in found:
        raise ZooError(f"{folder.name}: no checkpoint at epoch {at} (it has {', '.join(map(str, sorted(found)))})")
    return at, read_npz(found[at])


def _diverged_loss(row: dict) -> str | None:
    return "its training loss went NaN" if row["final_loss"] is None else None


def _diverged_weights(weights: dict[str, np.ndarray], bound: float) -> str | None:
    for name, w in weights.items():
        if not np.issubdtype(w.dtype, np.floating):
            return f"weight {name} is not floating-point"
        if not np.isfinite(w).all():
            return f"weight {name} is NaN or infinite"
        if w.size and float(np.abs(w).max()) > bound:
            return f"weight {name} exploded (|w| up to {float(np.abs(w).max()):.3g} > {bound:g})"
    return None


def _read(path: Path, schema: type):
    return decode(read_bounded(path, MAX_JSON_BYTES, error=ZooError, what=path.name), schema,
                  source=f"{path.parent.name}/{path.name}", error=ZooError)


def _method(form: str) -> str:
    return "dense" if form == "dense" else "magnitude" if form.startswith("magnitude") else "variational-dropout"
