"""The slurm backend: a batch of jobs as SLURM job arrays, submitted through submitit.

Jobs with the same limits (and root) share an array; a group larger than the cluster's
MaxArraySize (read from `scontrol show config`) is split into several arrays, which submitit does
not do itself (its issue #1624). Each array task runs `jobs.execute(job)`, which publishes the
job's folder or records why it failed; a task SLURM ends itself (over its memory or its time, its
node lost, cancelled) has its failure record written here, from SLURM's state and what slurmstepd
said in the task's SLURM log.

Waiting is light on the controller: one `squeue` call per interval for the whole batch (and one
`sacct` for tasks squeue no longer lists), the interval growing from 1 s to `poll_s`. submitit's
own watcher is not used: it polls sacct per batch of registered jobs from every `job.wait()`
loop, which floods sacct on large batches (its issue #1759), and needs accounting, which not every
cluster lets users read.

What was submitted (key -> SLURM job id, array index, submit time) is recorded in
ROOT/.jobs/slurm.json, so `slurm_states` can ask SLURM later (a `status` command), and a rerun
follows the tasks of an earlier run that are still queued or running instead of submitting them a
second time (two tasks would write the same folder)."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Literal

from msgspec import Meta

from ground.cluster.jobs import JOBS, Job, Limits, State, execute, record_failure, state_of
from ground.errors import ClusterError
from onboard.files import write_verified
from onboard.progress import progress_bar
from onboard.schema import Count, FileName, Name, Schema, decode_contract, encode_json, read_bounded

SCHEMA = "orbitlite/slurm-submissions"
VERSION = 1
SUBMISSIONS = "slurm.json"  # in ROOT/.jobs/
SUBMITIT = "slurm"  # ROOT/.jobs/slurm/: submitit's scripts, pickles and the tasks' SLURM logs
MAX_BYTES = 1 << 28
COMMAND_TIMEOUT_S = 120.0
POLL_FAILURES = 10  # squeue failing this many times in a row ends the wait with its error
GRACE_POLLS = 3  # polls a task may stay unlisted, or completed without a visible result (a lagging shared disk)

# SLURM's job states (squeue %T, sacct State): still to start, and ended; any other is running.
QUEUED = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD",
                    "SPECIAL_EXIT", "RESIZING"})
ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
                   "DEADLINE", "PREEMPTED", "REVOKED"})
SlurmState = Literal["queued", "running", "done", "failed", "unknown"]

JobId = Annotated[str, Meta(pattern=r"^[0-9]{1,20}\Z")]


class Submission(Schema, kw_only=True):
    """One job's SLURM task: job `job_id` (an array's, when `array_index` is set) on `cluster`."""

    cluster: Name
    job_id: JobId
    array_index: Count | None = None
    submitted_at: Annotated[datetime, Meta(tz=True)]

    @property
    def task(self) -> str:
        """As squeue and sacct name it: `12_3` for an array task, `12` for a job."""
        return self.job_id if self.array_index is None else f"{self.job_id}_{self.array_index}"


class Submissions(Schema):
    schema: Literal["orbitlite/slurm-submissions"]
    version: Literal[1]
    jobs: dict[FileName, Submission]


@dataclass(frozen=True)
class Cluster:
    name: str
    max_array_size: int


def run_slurm(jobs: list[Job], say: Callable[[str], None], *, poll_s: float = 30.0, partition: str | None = None,
              sbatch: dict[str, Any] | None = None) -> dict[str, State]:
    """Run `jobs` as SLURM job arrays to the end; the state each ended in. `partition` and
    `sbatch` (more sbatch options, e.g. {"account": "eo"}) go to every array."""
    cluster = cluster_config()
    follow = _still_running(jobs, cluster, say)
    follow.update(_submit([job for job in jobs if job.key not in follow], cluster, partition, sbatch or {}, say))
    return _follow(follow, say, poll_s)


def slurm_states(jobs: list[Job]) -> dict[str, SlurmState]:
    """Where each job is: done or failed (its folder or failure record, or SLURM's end of its
    task), queued or running (SLURM's state of its recorded task), or unknown (never submitted
    here, or SLURM no longer knows it and it left nothing)."""
    recorded = _recorded(jobs)
    cluster = cluster_config() if recorded else None
    ours = {key: sub for key, sub in recorded.items() if cluster and sub.cluster == cluster.name}
    slurm = task_states({sub.task for sub in ours.values()})
    states: dict[str, SlurmState] = {}
    for job in jobs:
        disk = state_of(job)
        said = slurm.get(ours[job.key].task) if job.key in ours else None
        if disk == "done":
            states[job.key] = "done"
        elif said is not None and said not in ENDED:
            states[job.key] = "queued" if said in QUEUED else "running"
        elif disk == "failed" or (said in ENDED and said != "COMPLETED"):
            states[job.key] = "failed"
        else:
            states[job.key] = "unknown"
    return states


# --- the cluster and its commands -----------------------------------------------------------------

def cluster_config() -> Cluster:
    """The cluster's name and MaxArraySize; ClusterError in one line when SLURM's commands are
    missing or its controller does not answer."""
    for command in ("sbatch", "srun", "squeue", "scontrol"):
        if shutil.which(command) is None:
            raise ClusterError(f"`{command}` is not on PATH: the slurm backend runs where SLURM's client commands "
                               "are (sbatch, srun, squeue, scontrol), e.g. a cluster's login node")
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        raise ClusterError(f"SLURM_CONF names {conf}, which is not a file")
    values = {}
    for line in slurm_call(["scontrol", "show", "config"]).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    try:
        return Cluster(name=values.get("ClusterName") or "slurm", max_array_size=int(values["MaxArraySize"]))
    except (KeyError, ValueError):
        raise ClusterError("`scontrol show config` does not say the cluster's MaxArraySize") from None


def slurm_call(command: list[str], timeout: float = COMMAND_TIMEOUT_S) -> str:
    """The output of a SLURM client command, or ClusterError with one line saying why not."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ClusterError(f"`{command[0]}` is not on PATH: the slurm backend needs SLURM's client commands") from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"`{' '.join(command[:3])}` did not answer within {timeout:g} s: "
                           f"is the SLURM controller up ({_conf()})?") from None
    if result.returncode != 0:
        line = _last_line(result.stderr) or f"exit status {result.returncode}"
        if "Unable to contact slurm controller" in line:
            raise ClusterError(f"the SLURM controller does not answer ({_conf()}): {line}")
        raise ClusterError(f"`{' '.join(command[:3])}` failed: {line}")
    return result.stdout


def task_states(tasks: set[str]) -> dict[str, str]:
    """SLURM's state of each of `tasks` (`12_3`, `12`) it still knows: one squeue call for them
    all, and one sacct call for those squeue no longer lists (sacct may be unavailable)."""
    if not tasks:
        return {}
    jobs = sorted({task.split("_")[0] for task in tasks}, key=int)
    try:
        out = slurm_call(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--jobs=" + ",".join(jobs)])
    except ClusterError as exc:
        if "Invalid job id" not in str(exc):  # squeue's answer when it knows none of them
            raise
        out = ""
    states = _parse_states(out)
    missing = sorted({task.split("_")[0] for task in tasks if task not in states}, key=int)
    if missing and shutil.which("sacct"):
        with contextlib.suppress(ClusterError):  # no accounting: the disk decides
            more = _parse_states(slurm_call(["sacct", "--noheader", "--parsable2", "--allocations",
                                        "--format=JobID,State", "--jobs=" + ",".join(missing)]))
            states.update({task: state for task, state in more.items() if task not in states})
    return {task: states[task] for task in tasks if task in states}


def _parse_states(out: str) -> dict[str, str]:
    """`12_3|RUNNING`, `12|CANCELLED by 0`, sacct's `12_[4-6,8%2]|PENDING` -> {task: state}."""
    states = {}
    for line in out.splitlines():
        task, sep, state = line.strip().partition("|")
        if not sep or not state:
            continue
        state = state.split()[0]
        ranged = re.fullmatch(r"(\d+)_\[([\d,-]+)(?:%\d+)?\]", task)
        if ranged:
            for part in ranged[2].split(","):
                first, _, last = part.partition("-")
                for index in range(int(first), int(last or first) + 1):
                    states[f"{ranged[1]}_{index}"] = state
        elif re.fullmatch(r"\d+(_\d+)?", task):
            states[task] = state
    return states


def _conf() -> str:
    return f"SLURM_CONF={os.environ['SLURM_CONF']}" if os.environ.get("SLURM_CONF") else "SLURM_CONF not set"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


# --- submitting -----------------------------------------------------------------------------------

def _submit(jobs: list[Job], cluster: Cluster, partition: str | None, sbatch: dict[str, Any],
            say: Callable[[str], None]) -> dict[str, tuple[Job, Submission]]:
    """Submit `jobs`, an array per group of the same root and limits, at most MaxArraySize tasks
    each; record each array's submissions as soon as sbatch has taken it."""
    groups: dict[tuple[Path, Limits], list[Job]] = defaultdict(list)
    for job in jobs:
        groups[(job.root, job.limits)].append(job)
    submitted: dict[str, tuple[Job, Submission]] = {}
    arrays = []
    for (root, limits), members in groups.items():
        executor = _executor(root, limits, partition, sbatch)
        for start in range(0, len(members), cluster.max_array_size):
            chunk = members[start:start + cluster.max_array_size]
            for job in chunk:  # the last attempt's: this one records its own
                job.failure_path.unlink(missing_ok=True)
            records = {}
            for job, task in zip(chunk, _sbatch(executor, chunk)):
                base, _, index = task.partition("_")
                records[job.key] = Submission(cluster=cluster.name, job_id=base,
                                              array_index=int(index) if index else None, submitted_at=_now())
                submitted[job.key] = (job, records[job.key])
            _record(root, records)
            arrays.append(records[chunk[0].key].job_id)
    if jobs:
        say(f"submitted {len(jobs)} jobs to SLURM cluster {cluster.name} in {len(arrays)} "
            f"array{'s' if len(arrays) > 1 else ''} ({', '.join(arrays)}; MaxArraySize {cluster.max_array_size})")
    return submitted


def _executor(root: Path, limits: Limits, partition: str | None, sbatch: dict[str, Any]) -> Any:
    import submitit  # the ground extra; only the slurm backend needs it

    executor = submitit.AutoExecutor(folder=root / JOBS / SUBMITIT, cluster="slurm")
    executor.update_parameters(name="orbitlite", timeout_min=minutes(limits.time_min), mem_gb=limits.mem_gb,
                               cpus_per_task=limits.cpus, slurm_signal_delay_s=warning_s(minutes(limits.time_min)),
                               slurm_additional_parameters=dict(sbatch),
                               **({"slurm_partition": partition} if partition else {}))
    return executor


def _sbatch(executor: Any, chunk: list[Job]) -> list[str]:
    """One sbatch call for `chunk`: the SLURM task of each job (`12_3`; `12` for a lone job)."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's refusal before raising it
            return [task.job_id for task in executor.map_array(_task, chunk)]
    except Exception as exc:  # submitit's FailedJobError (sbatch's stderr), or a job that does not pickle
        raise ClusterError(f"SLURM did not take the array of {len(chunk)} jobs ({chunk[0].key}, ...): "
                           f"{_last_line(str(exc)) or type(exc).__name__}") from None


def minutes(time_min: float) -> int:
    """SLURM's time limit for `time_min`: whole minutes."""
    return max(1, math.ceil(time_min))


def warning_s(limit_min: int) -> int:
    """How long before a task's time limit SLURM warns it (the SIGUSR2 submitit asks for): a
    quarter of the limit, at most a minute. SLURM may send it up to half a minute early (its
    timer's tick), so never near the start, where it would kill the task before Python installs
    its handler."""
    return min(60, limit_min * 15)


def _task(job: Job) -> State:
    """What an array task runs. At SLURM's warning of its time limit the job stops with a
    failure record saying so (in place of submitit's handler, which would requeue a job that is
    not checkpointable, or fail it with an error about checkpoints)."""
    def time_is_up(signum: int, frame: Any) -> None:
        raise ClusterError(f"stopped at SLURM's warning that its time limit ({minutes(job.limits.time_min)} min) is near")

    signal.signal(signal.SIGUSR2, time_is_up)
    return execute(job)


# --- what was submitted ---------------------------------------------------------------------------

def submissions_path(root: Path) -> Path:
    return root / JOBS / SUBMISSIONS


def read_submissions(root: Path) -> dict[str, Submission]:
    """The recorded submissions of the jobs under `root` (none when nothing was submitted)."""
    path = submissions_path(root)
    if not path.exists():
        return {}
    body = decode_contract(read_bounded(path, MAX_BYTES, error=ClusterError, what="SLURM submission record"),
                           Submissions, contract=SCHEMA, version=VERSION, what="orbitlite SLURM submission record",
                           source=str(path), error=ClusterError, unreadable=f"{path} is not readable JSON")
    return dict(body.jobs)


def _record(root: Path, new: dict[str, Submission]) -> None:
    jobs = {**read_submissions(root), **new}
    submissions_path(root).parent.mkdir(parents=True, exist_ok=True)
    write_verified(submissions_path(root),
                   encode_json(Submissions(schema=SCHEMA, version=VERSION, jobs=jobs), indent=1) + b"\n")


def _recorded(jobs: Iterable[Job]) -> dict[str, Submission]:
    by_root: dict[Path, dict[str, Submission]] = {}
    found = {}
    for job in jobs:
        if job.root not in by_root:
            by_root[job.root] = read_submissions(job.root)
        if job.key in by_root[job.root]:
            found[job.key] = by_root[job.root][job.key]
    return found


def _still_running(jobs: list[Job], cluster: Cluster, say: Callable[[str], None]) -> dict[str, tuple[Job, Submission]]:
    """The jobs whose task from an earlier submission SLURM still has queued or running."""
    recorded = {key: sub for key, sub in _recorded(jobs).items() if sub.cluster == cluster.name}
    slurm = task_states({sub.task for sub in recorded.values()})
    follow = {job.key: (job, recorded[job.key]) for job in jobs
              if job.key in recorded and slurm.get(recorded[job.key].task, "COMPLETED") not in ENDED}
    if follow:
        say(f"{len(follow)} jobs still queued or running from an earlier submission: followed, not submitted again")
    return follow


# --- waiting --------------------------------------------------------------------------------------

def _follow(waiting: dict[str, tuple[Job, Submission]], say: Callable[[str], None],
            poll_s: float) -> dict[str, State]:
    """Wait for the tasks of `waiting` to end, asking SLURM once per interval for all of them."""
    total, ended = len(waiting), {}
    strikes: Counter[str] = Counter()
    interval, failures = 1.0, 0
    with progress_bar(total, "SLURM jobs") as bar:
        while waiting:
            time.sleep(interval)
            interval = min(poll_s, interval * 2)
            try:
                slurm = task_states({sub.task for _, sub in waiting.values()})
                failures = 0
            except ClusterError:
                failures += 1
                if failures >= POLL_FAILURES:
                    raise
                continue
            for key, (job, sub) in list(waiting.items()):
                state = _settle(job, sub, slurm.get(sub.task), strikes)
                if state is None:
                    continue
                del waiting[key]
                ended[key] = state
                bar.update(1)
                say(f"{key}: {state}" + (f" ({len(ended)} of {total})" if total > 1 else ""))
    return ended


def _settle(job: Job, sub: Submission, said: str | None, strikes: Counter[str]) -> State | None:
    """How `job` ended, once its task has (recording the failure of a task SLURM ended before it
    could), or None while it runs."""
    if said is not None and said not in ENDED:
        return None
    disk = state_of(job)
    if disk != "pending":
        return disk
    strikes[job.key] += 1
    if said in (None, "COMPLETED") and strikes[job.key] < GRACE_POLLS:
        return None  # a shared disk may show a finished task's files a little later
    record_failure(job, _why(job, sub, said))
    return "failed"


def _why(job: Job, sub: Submission, said: str | None) -> str:
    if said is None:
        return (f"SLURM no longer lists its task {sub.task} (cancelled before it started, or ended longer ago than "
                f"SLURM keeps jobs), and it left neither its folder nor a failure record")
    if said == "COMPLETED":
        return f"its SLURM task {sub.task} completed without publishing its folder or recording a failure"
    limits = job.limits
    limit = {"OUT_OF_MEMORY": f"limit {limits.mem_gb:g} GB", "TIMEOUT": f"limit {limits.time_min:g} min"}.get(
        said, f"limits {limits.mem_gb:g} GB, {limits.time_min:g} min")
    told = _slurmstepd_said(job, sub)
    return f"SLURM ended it {said} (task {sub.task}, {limit})" + (f": {told}" if told else "")


def _slurmstepd_said(job: Job, sub: Submission) -> str:
    """slurmstepd's first error in the task's SLURM log (`StepId=12.0 exceeded memory limit
    (340860928 > 104857600), being killed`), copied into the job's log too."""
    from submitit.core.utils import JobPaths

    path = JobPaths(job.root / JOBS / SUBMITIT, job_id=sub.task, task_id=0).stderr
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - (1 << 16)))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if "slurmstepd" in line and "error:" in line]
    if not lines:
        return ""
    with contextlib.suppress(OSError), open(job.log, "a") as log:
        log.write(f"--- SLURM's log of task {sub.task} ({path}):\n" + "\n".join(lines) + "\n")
    return lines[0].split("error:", 1)[1].strip()[:500]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)
