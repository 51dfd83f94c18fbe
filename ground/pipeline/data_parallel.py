"""Data-parallel training of one model across SLURM tasks: `orbitlite ground train --backend
slurm --nodes N --tasks-per-node K`.

The launcher submits one SLURM job of N x K tasks through submitit. Each task builds
`tf.distribute.MultiWorkerMirroredStrategy` from `SlurmClusterResolver` (the tasks and their
nodes from SLURM's step variables, ports from the job id) and runs the very `fit` of `ground
train`, with the model built and compiled under the strategy. Keras shards its numpy input by
element, so each global batch of --batch-size samples is split between the tasks, the gradients
are summed across them, and every task holds the same weights: those of the same training in one
process, up to float rounding (tests/test_data_parallel.py measures how far). Layers with batch
statistics (BatchNormalization) compute them per task, on its share of the batch, as
data-parallel training always does; for them the equality is only approximate.

`keras.callbacks.BackupAndRestore` keeps the last finished epoch in `OUT.training/backup`: a job
SLURM requeues (its node lost, preempted, or near its time limit, where submitit checkpoints and
requeues it) resumes from there, its remaining epochs shuffled afresh. The chief (task 0) writes
the model and its record exactly as `ground train` does; the tasks' SLURM logs stay in
`OUT.training/slurm`, and the launcher relays the chief's epoch lines while it waits."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import submitit

from ground.cluster.slurm import ENDED, GRACE_POLLS, cluster_config, minutes, task_states, warning_s
from ground.datasets.patches import load_patches
from ground.errors import ClusterError, TrainingError
from ground.pipeline.steps import new_model, save_keras, split
from ground.tf import keras, tf
from ground.training.record import ModelRecord
from ground.training.train import TrainConfig, fit

PORT_BASE = 20000  # the tasks of job J listen on PORT_BASE + (J % 1000) * 32 + their rank on the node


@dataclass(frozen=True)
class Plan:
    """One data-parallel training, as every task receives it."""

    data: Path
    out: Path
    arch: str
    overrides: dict[str, Any]
    config: TrainConfig
    split_seed: int
    nodes: int
    tasks_per_node: int

    @property
    def folder(self) -> Path:
        return training_folder(self.out)


@dataclass(frozen=True)
class Resources:
    """What the job asks SLURM for, beside its tasks."""

    cpus_per_task: int = 1
    mem_gb: float = 4.0  # per node
    time_min: float = 60.0
    partition: str | None = None


def training_folder(out: Path) -> Path:
    """Beside the output: `backup/` (the last finished epoch) and `slurm/` (submitit's files and
    the tasks' logs)."""
    return out.with_name(out.name + ".training")


# --- the launcher ---------------------------------------------------------------------------------

def train_on_slurm(plan: Plan, resources: Resources, say: Callable[[str], None],
                   poll_s: float = 10.0) -> tuple[ModelRecord, dict[str, Any]]:
    """Run `plan` as one SLURM job and wait for it; the record the chief wrote beside
    `plan.out`, and its training entry."""
    cluster_config()  # sbatch there, the controller answering: one clear line otherwise
    limit = minutes(resources.time_min)
    executor = submitit.AutoExecutor(folder=plan.folder / "slurm", cluster="slurm")
    executor.update_parameters(name="orbitlite-train", nodes=plan.nodes, tasks_per_node=plan.tasks_per_node,
                               cpus_per_task=resources.cpus_per_task, mem_gb=resources.mem_gb, timeout_min=limit,
                               slurm_signal_delay_s=warning_s(limit),
                               **({"slurm_partition": resources.partition} if resources.partition else {}))
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's refusal before raising it
            job = executor.submit(Worker(), plan)
    except Exception as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ClusterError(f"SLURM did not take the training job: {lines[-1] if lines else type(exc).__name__}") from None
    say(f"data-parallel training: SLURM job {job.job_id}, {plan.nodes} node{'s' * (plan.nodes > 1)} x "
        f"{plan.tasks_per_node} task{'s' * (plan.tasks_per_node > 1)}, logs in {plan.folder / 'slurm'}")
    state = _wait(job.job_id, submitit.core.utils.JobPaths(plan.folder / "slurm", job_id=job.job_id, task_id=0),
                  say, poll_s)
    return _outcome(plan, job.job_id, state)


def _wait(job_id: str, chief: Any, say: Callable[[str], None], poll_s: float) -> str | None:
    """Wait for the job to end, one squeue call per interval, relaying the chief's epoch lines;
    SLURM's last word on it (None if it no longer lists it)."""
    relayed, interval, unlisted = 0, 1.0, 0
    while True:
        time.sleep(interval)
        interval = min(poll_s, interval * 2)
        relayed = _relay(chief.stderr, relayed, say)
        state = task_states({job_id}).get(job_id)
        unlisted = unlisted + 1 if state is None else 0
        if state in ENDED or unlisted >= GRACE_POLLS:
            _relay(chief.stderr, relayed, say)
            return state


def _relay(log: Path, seen: int, say: Callable[[str], None]) -> int:
    """Say the epoch lines the chief added to its log since `seen` bytes; how far it has been read."""
    try:
        with open(log, "rb") as f:
            f.seek(seen)
            new = f.read()
    except OSError:
        return seen
    complete = new[:new.rfind(b"\n") + 1]
    for line in complete.decode(errors="replace").splitlines():
        if " epoch " in line and ":" in line and "samples_per_s" in line:
            say(line)
    return seen + len(complete)


def _outcome(plan: Plan, job_id: str, state: str | None) -> tuple[ModelRecord, dict[str, Any]]:
    paths = submitit.core.utils.JobPaths(plan.folder / "slurm", job_id=job_id, task_id=0)
    try:
        kind, value = submitit.core.utils.pickle_load(paths.result_pickle)
    except (OSError, EOFError, ValueError):
        said = [line.split("error:", 1)[1].strip() for line in _tail(paths.stderr).splitlines()
                if "slurmstepd" in line and "error:" in line]
        raise ClusterError(f"SLURM ended data-parallel training job {job_id} {state or 'without saying how'}"
                           + (f": {said[0]}" if said else f" (its logs: {paths.stderr})")) from None
    if kind != "success":
        lines = [line.strip() for line in str(value).splitlines() if line.strip()]
        # the traceback's last line, its exception named without its module (DatasetError: ...)
        reason = re.sub(r"^(?:\w+\.)+(?=\w+(:|$))", "", lines[-1]) if lines else "no message"
        raise TrainingError(f"data-parallel training (SLURM job {job_id}) failed: {reason} (its log: {paths.stderr})")
    shutil.rmtree(plan.folder / "backup", ignore_errors=True)  # BackupAndRestore empties it when training ends
    return ModelRecord.load(plan.out), value


def _tail(path: Path, size: int = 1 << 16) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


# --- a task ---------------------------------------------------------------------------------------

class Worker(submitit.helpers.Checkpointable):
    """What each task runs. Checkpointable: near its time limit (SLURM's SIGUSR2) submitit
    requeues the job with the same plan, and BackupAndRestore resumes it."""

    def __call__(self, plan: Plan) -> dict[str, Any]:
        return train_task(plan)


def train_task(plan: Plan) -> dict[str, Any]:
    """One SLURM task of the training: join the others, train, and (the chief) write the model."""
    cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))
    tf.config.threading.set_intra_op_parallelism_threads(cpus)  # before TensorFlow's runtime starts
    tf.config.threading.set_inter_op_parallelism_threads(cpus)
    job = int(os.environ["SLURM_JOB_ID"])
    # SlurmClusterResolver hands out GPUs per task and, with none (nvidia-smi absent), divides by
    # zero: it is told there is one per task and not to set CUDA_VISIBLE_DEVICES.
    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=PORT_BASE + (job % 1000) * 32, gpus_per_node=plan.tasks_per_node, gpus_per_task=1,
        auto_set_gpu=False)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    patches = load_patches(plan.data)
    chief = resolver.task_id == 0
    entry = train_with(strategy, patches, plan, chief=chief,
                       slurm={"job": str(job), "tasks": strategy.num_replicas_in_sync, "nodes": plan.nodes})
    return entry


def train_with(strategy: tf.distribute.Strategy, patches: Any, plan: Plan, chief: bool,
               slurm: dict[str, Any]) -> dict[str, Any]:
    """`ground train`'s training under `strategy`, resumable from `plan.folder/backup`; the chief
    writes the model and its record."""
    backup = plan.folder / "backup"
    with strategy.scope():
        model, record = new_model(patches, plan.arch, plan.overrides, plan.config.seed, plan.split_seed)
        train, val, _ = split(patches, plan.split_seed)
        entry = fit(model, record, train, val, plan.config, stage="train",
                    callbacks=[keras.callbacks.BackupAndRestore(str(backup))])
    entry["config"] = {**entry["config"], "data_parallel": slurm}
    if chief:
        save_keras(model, record, plan.out)
    else:  # every task saves (reading variables synchronised on read is collective), the others aside
        aside = Path(tempfile.mkdtemp(prefix="worker-", dir=plan.folder))
        try:
            model.save(aside / plan.out.name)
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    return entry
