"""A zoo folder and running it: the grid's members as jobs on a backend, each into its own folder.

    DIR/config.json          the grid, the dataset and the members (the zoo's config, as Model Zoos keep it)
    DIR/members/KEY/         one finished member (see member.py), published whole
    DIR/members/.jobs/       each member's log, and the failure record of a member that failed
    DIR/index.parquet        one row per member and form, rebuilt from the folders (index.py)

Rerunning `zoo run` on the same folder skips finished members and retries failed ones; a grid
grown by more seeds or values adds its new members beside the old ones (keys are content hashes)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from ground.cluster import Backend, Job, Limits, State, run, state_of
from ground.cluster.jobs import Failure, failure_of
from ground.errors import ZooError
from ground.zoo.grid import Grid, Member, members, read_grid
from onboard.files import ensure_writable_dir, write_verified
from onboard.schema import Schema, Text, decode, encode_json, read_bounded

CONFIG = "config.json"
MEMBERS = "members"
MAX_CONFIG_BYTES = 256 << 20


class ZooConfig(Schema):
    grid: Grid
    data: Text
    members: tuple[Member, ...]


def train_job(member: Member, data: str, part: Path) -> None:
    """A member's job: TensorFlow is loaded in the job's own process, not where jobs are made."""
    from ground.zoo.member import train_member

    train_member(member, data, part)


def jobs_of(config: ZooConfig, out: Path) -> list[Job]:
    return [Job(m.key, out / MEMBERS / m.key, functools.partial(train_job, m, config.data),
                Limits(m.limits.time_min, m.limits.mem_gb, m.limits.cpus)) for m in config.members]


def read_config(out: Path) -> ZooConfig:
    path = out / CONFIG
    if not path.is_file():
        raise ZooError(f"{out} is not a zoo: it has no {CONFIG} (`orbitlite ground zoo run` writes it)")
    return decode(read_bounded(path, MAX_CONFIG_BYTES, error=ZooError, what="zoo config"), ZooConfig,
                  source=str(path), error=ZooError)


def prepare_zoo(grid_path: Path, data: Path, out: Path) -> ZooConfig:
    """Read and cross the grid, check the dataset, and write the zoo's config into `out`."""
    from ground.datasets.patches import load_patches

    grid = read_grid(grid_path)
    load_patches(data)  # a missing or malformed dataset fails here, once, not in every member
    config = ZooConfig(grid=grid, data=str(data.resolve()), members=tuple(members(grid)))
    ensure_writable_dir(out / MEMBERS)
    write_verified(out / CONFIG, encode_json(config, indent=2) + b"\n")
    return config


def run_zoo(config: ZooConfig, out: Path, backend: Backend, say: Callable[[str], None],
            only: Callable[[Job], bool] = lambda job: True, **options: Any) -> dict[str, State]:
    """Run the zoo's unfinished members (those `only` keeps) on `backend` (with its `options`,
    see ground.cluster.run); the state each ended in."""
    return run([job for job in jobs_of(config, out) if only(job)], backend, say, **options)


def states(config: ZooConfig, out: Path) -> dict[str, tuple[State, Failure | None]]:
    """What the disk says of each member, with the failure record of a failed one."""
    return {job.key: (state_of(job), failure_of(job)) for job in jobs_of(config, out)}


def submitted_backend(out: Path) -> Backend | None:
    """"slurm" when the zoo's members were submitted to SLURM (its submissions are recorded)."""
    from ground.cluster.jobs import JOBS

    return "slurm" if (out / MEMBERS / JOBS / "slurm.json").exists() else None
