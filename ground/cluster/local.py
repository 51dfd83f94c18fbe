"""The local backend: each job in its own process (spawned: no TensorFlow state is inherited),
as many at once as the machine has cores for the jobs' CPUs. A job that crashes its process (a
segfault, the kernel's out-of-memory killer) or overruns its time fails alone; the rest go on."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from multiprocessing.connection import wait
from typing import Callable

from ground.cluster.jobs import Job, State, execute, record_failure, state_of

_CONTEXT = multiprocessing.get_context("spawn")


def workers_for(jobs: list[Job]) -> int:
    """How many jobs run at once: the machine's usable cores over the most CPUs a job asks for."""
    cores = len(os.sched_getaffinity(0))
    return max(1, cores // max((j.limits.cpus for j in jobs), default=1))


def run_local(jobs: list[Job], say: Callable[[str], None], workers: int | None = None) -> dict[str, State]:
    """Run `jobs` to the end; the state each ended in."""
    workers = workers or workers_for(jobs)
    waiting, running, ended = list(reversed(jobs)), {}, {}
    while waiting or running:
        while waiting and len(running) < workers:
            job = waiting.pop()
            process = _CONTEXT.Process(target=execute, args=(job,), name=f"orbitlite-job-{job.key}")
            process.start()
            running[process.sentinel] = (job, process, time.monotonic() + job.limits.time_min * 60)
        deadline = min(limit for _, _, limit in running.values())
        ready = wait(list(running), timeout=max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        for sentinel in list(running):
            job, process, limit = running[sentinel]
            if sentinel not in ready and now < limit:
                continue
            if sentinel not in ready:
                process.kill()
                process.join()
                record_failure(job, f"ran over its time limit of {job.limits.time_min:g} min and was killed")
            else:
                process.join()
                if process.exitcode != 0 and state_of(job) != "failed":
                    record_failure(job, _death(process.exitcode))
            del running[sentinel]
            ended[job.key] = state_of(job)
            say(f"{job.key}: {ended[job.key]}" + (f" ({len(ended)} of {len(jobs)})" if len(jobs) > 1 else ""))
    return ended


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        why = " (the kernel's out-of-memory killer sends it)" if -code == signal.SIGKILL else ""
        return f"its process was killed by {name}{why}"
    return f"its process exited with status {code}"
