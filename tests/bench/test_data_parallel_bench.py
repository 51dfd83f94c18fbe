"""Data-parallel training throughput through SLURM (the test cluster of tests/slurm.py, one node
of two CPUs): training samples/s of `ground train --backend slurm` with one task against two
(one CPU each), and one task with both CPUs, at the same global batch, on SYNTHETIC 32 x 32 x 4
tiles. `make bench` prints them; each trains for a minute or so, so `make test` skips them
(data-parallel training is tested in tests/test_data_parallel.py)."""

from __future__ import annotations

import json
import statistics
import time

import pytest

from ground.datasets.synthetic import generate_patches
from tests.conftest import orbitlite

EPOCHS = 5
BATCH = 128


@pytest.fixture(scope="module")
def bench_patches(tmp_path_factory):
    path = tmp_path_factory.mktemp("dp-bench") / "patches.npz"
    generate_patches(300, size=32, bands=("B02", "B03", "B04", "B08"), seed=0).save(path)
    return path


@pytest.mark.bench_only
@pytest.mark.parametrize("arch", ["cnn-s", "cnn-l", "wrn-eca"])
@pytest.mark.parametrize(("tasks", "cpus"), [(1, 1), (2, 1), (1, 2)], ids=["1task-1cpu", "2tasks-1cpu", "1task-2cpus"])
def test_bench_data_parallel_training(benchmark, slurm_env, bench_patches, tmp_path, arch, tasks, cpus):
    out = tmp_path / "m.keras"
    args = ["ground", "train", "--data", str(bench_patches), "--out", str(out), "--arch", arch, "--epochs", str(EPOCHS),
            "--batch-size", str(BATCH), "--backend", "slurm", "--tasks-per-node", str(tasks), "--cpus-per-task",
            str(cpus), "--mem-gb", "3"]
    started = time.perf_counter()
    result = benchmark.pedantic(orbitlite, args=args, kwargs={"env": slurm_env.env()}, rounds=1, iterations=1)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = json.loads(out.with_name("m.keras.json").read_text())["history"][0]["epochs"]
    samples_per_s = statistics.median(e["samples_per_s"] for e in epochs[1:])  # after the first: graphs built
    benchmark.extra_info.update(arch=arch, tasks=tasks, cpus_per_task=cpus, global_batch=BATCH,
                                samples_per_s=samples_per_s, wall_s=round(seconds, 1))
    print(f"\n{arch}, {tasks} task(s) x {cpus} CPU(s), global batch {BATCH}: {samples_per_s:.0f} training samples/s, "
          f"{seconds:.0f} s from submission to the model on disk")
