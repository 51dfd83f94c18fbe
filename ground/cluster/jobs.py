"""One job of a batch and what it leaves on disk.

A job writes its result into `FOLDER.part`, given to its `work`; only when `work` returns is the
marker written and the folder renamed to `FOLDER`, so a half-written result is never taken for a
finished one (a job killed mid-way leaves a `.part` the next attempt removes). Beside the folders,
`ROOT/.jobs/` holds each job's log (`KEY.log`, its stdout and stderr) and, for a job that failed,
its failure record (`KEY.failed.json`: one line saying why, and when)."""

from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal

from ground.errors import ClusterError
from onboard.errors import OrbitliteError
from onboard.files import fsync_dir, write_verified
from onboard.schema import FileName, NonNegative, Schema, Text, decode, encode_json, read_bounded

MARKER = ".done.json"  # inside a finished folder, written last
JOBS = ".jobs"  # beside the folders: logs and failure records
State = Literal["done", "failed", "pending"]


@dataclass(frozen=True)
class Limits:
    """What one job may use: SLURM asks for it; the local pool enforces the time."""

    time_min: float = 60.0
    mem_gb: float = 4.0
    cpus: int = 1


@dataclass(frozen=True)
class Job:
    """`work(part)` writes the job's result into the folder `part`; it must pickle (a top-level
    function, or a functools.partial of one, with picklable arguments)."""

    key: str  # unique in its batch, and a file name
    folder: Path
    work: Callable[[Path], None] = field(compare=False)
    limits: Limits = Limits()

    @property
    def root(self) -> Path:
        return self.folder.parent

    @property
    def part(self) -> Path:
        return self.folder.with_name(self.folder.name + ".part")

    @property
    def log(self) -> Path:
        return self.root / JOBS / f"{self.key}.log"

    @property
    def failure_path(self) -> Path:
        return self.root / JOBS / f"{self.key}.failed.json"


class Done(Schema):
    key: FileName
    finished_at: datetime
    seconds: NonNegative


class Failure(Schema):
    key: FileName
    failed_at: datetime
    error: Text
    log: Text


def state_of(job: Job) -> State:
    """What the disk says of `job`: done (its folder with a valid marker), failed (a failure
    record and no finished folder), else pending."""
    if done_record(job.folder) is not None:
        return "done"
    return "failed" if job.failure_path.exists() else "pending"


def done_record(folder: Path) -> Done | None:
    try:
        return decode(read_bounded(folder / MARKER, 1 << 12, error=ClusterError), Done,
                      source=str(folder / MARKER), error=ClusterError)
    except OrbitliteError:
        return None


def failure_of(job: Job) -> Failure | None:
    try:
        return decode(read_bounded(job.failure_path, 1 << 16, error=ClusterError), Failure,
                      source=str(job.failure_path), error=ClusterError)
    except OrbitliteError:
        return None


def record_failure(job: Job, error: str) -> None:
    """Record that `job` failed, saying why in one line (and where its log is), and remove what
    it left half-written."""
    shutil.rmtree(job.part, ignore_errors=True)
    job.failure_path.parent.mkdir(parents=True, exist_ok=True)
    line = " ".join(error.split())[:4000] or "failed without a message"
    write_verified(job.failure_path, encode_json(Failure(key=job.key, failed_at=_now(), error=line,
                                                         log=str(job.log))) + b"\n")


def prepare(job: Job) -> None:
    """Before an attempt: the log folder exists, and the last attempt's half-written folder is gone."""
    job.log.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(job.part, ignore_errors=True)


def execute(job: Job) -> State:
    """Run `job` in this process (a pool worker or a SLURM task), its output appended to its log;
    publish its folder when `work` returns, or record why it failed. Never raises for the job's
    own faults: the batch goes on."""
    prepare(job)
    with open(job.log, "ab", buffering=0) as log:
        saved = [os.dup(1), os.dup(2)]
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
        try:
            return _attempt(job)
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def _attempt(job: Job) -> State:
    started = time.monotonic()
    print(f"--- {job.key}: started {_now().isoformat()} on {os.uname().nodename}, pid {os.getpid()}", flush=True)
    try:
        job.part.mkdir(parents=True)
        job.work(job.part)
        marker = Done(key=job.key, finished_at=_now(), seconds=round(time.monotonic() - started, 3))
        write_verified(job.part / MARKER, encode_json(marker) + b"\n")
        if job.folder.exists():  # a finished folder without a valid marker: stale
            shutil.rmtree(job.folder)
        job.part.rename(job.folder)
        fsync_dir(job.root)
        job.failure_path.unlink(missing_ok=True)
        print(f"--- {job.key}: done in {marker.seconds:.1f} s", flush=True)
        return "done"
    except (Exception, MemoryError) as exc:
        traceback.print_exc()
        reason = str(exc) if isinstance(exc, OrbitliteError) else f"{type(exc).__name__}: {exc}"
        record_failure(job, reason)
        print(f"--- {job.key}: failed: {reason}", flush=True)
        return "failed"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)
