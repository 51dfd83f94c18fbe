"""Running many independent jobs (zoo members, NAS cells) on a backend, each writing one folder:
`local`, a pool of processes sized to the machine, or `slurm`, SLURM job arrays through submitit.

A job's folder is its truth (jobs.py): finished when it exists, with its marker; failed when the
job's failure record says so; neither otherwise. Rerunning a batch skips finished jobs and retries
failed ones, whatever backend ran them before."""

from __future__ import annotations

from typing import Any, Callable, Literal

from ground.cluster.jobs import Job, Limits, State, state_of

Backend = Literal["local", "slurm"]
BACKENDS = ("local", "slurm")

__all__ = ["BACKENDS", "Backend", "Job", "Limits", "State", "run", "state_of"]


def run(jobs: list[Job], backend: Backend, say: Callable[[str], None], **options: Any) -> dict[str, State]:
    """Run the jobs of `jobs` that are not finished on `backend`, to the end; the state each of
    them ended in (finished ones are skipped and not listed). `options` go to the backend
    (run_local: workers; run_slurm: poll_s, partition, sbatch)."""
    todo = [job for job in jobs if state_of(job) != "done"]
    if len(todo) < len(jobs):
        say(f"{len(jobs) - len(todo)} of {len(jobs)} already done, skipped")
    if not todo:
        return {}
    if backend == "slurm":
        from ground.cluster.slurm import run_slurm
        return run_slurm(todo, say, **options)
    from ground.cluster.local import run_local
    return run_local(todo, say, **options)
