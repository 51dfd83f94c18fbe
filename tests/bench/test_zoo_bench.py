"""Zoo members per hour on this machine for the smallest family (cnn-s, a dense model and 2
magnitude twins a member), through the local process pool and through SLURM (the tests' one-node
cluster on this machine's cores), and each path's overhead per member: the core-seconds a member
holds beyond its own work (wall time x members at once - the members' own seconds, per member),
which for SLURM is submission, scheduling, polling and the array task's start. `make bench` only
(it trains 12 members)."""

from __future__ import annotations

import os
import time

import pytest

from ground.cluster.jobs import done_record
from ground.datasets.synthetic import generate_patches
from ground.zoo.zoo import MEMBERS, prepare_zoo, run_zoo

CORES = len(os.sched_getaffinity(0))  # members at once, locally and on the test cluster's one node
GRID = """\
name = "bench"
architectures = ["cnn-s"]
seeds = [0, 1, 2, 3, 4, 5]
[hyper]
epochs = [3]
[twins]
sparsities = [0.5, 0.8]
methods = ["magnitude"]
epochs = 1
[limits]
time_min = 20
mem_gb = 2
"""


@pytest.mark.bench_only
def test_bench_zoo_members_per_hour_local_and_slurm(benchmark, slurm_env, tmp_path):
    (tmp_path / "grid.toml").write_text(GRID)
    data = generate_patches(50, size=32, bands=("B02", "B03", "B04", "B08"), seed=0).save(tmp_path / "d.npz")
    figures = {}

    def run(backend: str) -> None:
        out = tmp_path / backend
        config = prepare_zoo(tmp_path / "grid.toml", data, out)
        started = time.perf_counter()
        ended = run_zoo(config, out, backend, lambda line: None, **({"poll_s": 2.0} if backend == "slurm" else {}))
        wall = time.perf_counter() - started
        assert set(ended.values()) == {"done"}
        work = sum(done_record(out / MEMBERS / m.key).seconds for m in config.members)
        n = len(config.members)
        figures[backend] = {"members": n, "wall_s": round(wall, 1), "member_s": round(work, 1),
                            "members_per_hour": round(3600 * n / wall),
                            "overhead_s_per_member": round((wall * min(n, CORES) - work) / n, 1)}

    run("local")
    benchmark.pedantic(run, args=("slurm",), rounds=1, iterations=1)
    benchmark.extra_info.update(local=figures["local"], slurm=figures["slurm"])
    for backend, f in figures.items():
        print(f"\n{backend}: {f['members']} members in {f['wall_s']} s ({f['members_per_hour']} members/h; "
              f"{f['member_s']} s of member work; overhead {f['overhead_s_per_member']} core-s per member)")
