"""Data-parallel training through a real SLURM cluster (tests/slurm.py): `ground train --backend
slurm --tasks-per-node 2` trains one model across two SLURM tasks (MultiWorkerMirroredStrategy,
SlurmClusterResolver) and ends with the weights `ground train` reaches in one process with the
same global batch; a job SLURM requeues mid-way resumes from its last epoch; and the mistakes a
user can make are one line each. SYNTHETIC patches, cnn-s, a few epochs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ground.datasets.synthetic import generate_patches
from tests.conftest import assert_one_line_error, orbitlite

BANDS = ("B02", "B03", "B04", "B08")
# tanh, smooth, so that the comparison measures float rounding alone: with ReLU a rounding that
# tips a unit across zero changes which gradients flow, and the two trainings part chaotically.
TRAIN = ["--arch", "cnn-s", "--set", "activation=tanh", "--epochs", "6", "--lr", "1e-3", "--batch-size", "32",
         "--seed", "0"]
# How far apart the two trainings may end: the distance between their weights over the distance
# they travelled from the initial ones. Both compute the same sums, but the data-parallel one adds
# each batch's gradient in two halves (one per task) and all-reduces them, so float32 rounds
# differently. Measured over seeds 0-7 (this set, 6 epochs, Adam): at most 1.2e-4 (seed 0), most
# about 3e-6; weights at most 3.4e-5 apart, probabilities 2.6e-5, every decision the same. The
# bound leaves 8x room over the worst. (With ReLU the same runs ended 4e-7 to 1.5e-2 apart, and
# with SGD 2e-6 to 2.6e-2: see the README.)
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def patches_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dp") / "patches.npz"
    generate_patches(40, size=32, bands=BANDS, seed=0).save(path)
    return path


def _flat(model) -> np.ndarray:
    return np.concatenate([w.ravel() for w in model.get_weights()])


def test_two_slurm_tasks_train_the_model_one_process_trains(slurm_env, patches_file, tmp_path):
    single = orbitlite("ground", "train", "--data", str(patches_file), "--out", str(tmp_path / "one.keras"), *TRAIN)
    assert single.returncode == 0, single.stderr[-3000:]
    parallel = orbitlite("ground", "train", "--data", str(patches_file), "--out", str(tmp_path / "two.keras"), *TRAIN,
                         "--backend", "slurm", "--nodes", "1", "--tasks-per-node", "2", "--mem-gb", "3",
                         env=slurm_env.env())
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    assert "data-parallel training: SLURM job" in parallel.stderr and "1 node x 2 tasks" in parallel.stderr
    assert parallel.stderr.count("train epoch ") == 6  # the chief's epochs, relayed while it ran
    assert parallel.stdout.split("->")[0] == single.stdout.split("->")[0]  # parameters, validation accuracy

    from ground.datasets.patches import load_patches
    from ground.pipeline.steps import new_model
    from ground.training.record import ModelRecord
    from ground.training.train import load_keras, normalize

    patches = load_patches(patches_file)
    one, two = load_keras(tmp_path / "one.keras"), load_keras(tmp_path / "two.keras")
    initial = _flat(new_model(patches, "cnn-s", {"activation": "tanh"}, 0, 0)[0])
    apart = np.linalg.norm(_flat(one) - _flat(two)) / np.linalg.norm(_flat(one) - initial)
    assert apart < TOLERANCE, apart
    x = normalize(patches.x, ModelRecord.load(tmp_path / "one.keras"))
    p_one, p_two = one.predict(x, verbose=0), two.predict(x, verbose=0)
    assert np.array_equal(p_one.argmax(axis=1), p_two.argmax(axis=1)) and np.abs(p_one - p_two).max() < TOLERANCE

    records = [json.loads((tmp_path / name).read_text()) for name in ("one.keras.json", "two.keras.json")]
    stage = records[1]["history"][0]
    assert stage["config"]["data_parallel"]["tasks"] == 2
    assert [e["epoch"] for e in stage["epochs"]] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(records[0]["history"][0]["epochs"], stage["epochs"]):
        assert abs(a["loss"] - b["loss"]) <= 1e-3 and abs(a["val_accuracy"] - b["val_accuracy"]) <= 0.01
    for key in ("architecture", "bands", "classes", "mean", "std", "parameters", "dataset", "split_seed"):
        assert records[0][key] == records[1][key]
    assert not (tmp_path / "two.keras.training" / "backup").exists()


def test_a_requeued_training_resumes_from_its_last_epoch(slurm_env, tmp_path):
    """SLURM requeues the job (as it does when a node fails or a job is preempted, and as submitit
    does near the time limit) once the first epoch is backed up; the job runs again and resumes."""
    data = tmp_path / "patches.npz"
    generate_patches(150, size=32, bands=BANDS, seed=0).save(data)  # epochs of a few seconds
    out = tmp_path / "m.keras"
    launcher = subprocess.Popen(
        [str(Path(sys.executable).with_name("orbitlite")), "ground", "train",
         "--data", str(data), "--out", str(out), "--arch", "cnn-s", "--epochs", "8", "--backend", "slurm",
         "--tasks-per-node", "2", "--mem-gb", "3"],
        env=slurm_env.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        backup = tmp_path / "m.keras.training" / "backup"
        deadline = time.monotonic() + 300
        while not list(backup.rglob("ckpt-*.index")):  # BackupAndRestore writes in backup/chief
            assert launcher.poll() is None, launcher.communicate()
            assert time.monotonic() < deadline, "no epoch was backed up"
            time.sleep(0.2)
        (job,) = slurm_env.client("squeue", "--noheader", "--format=%i", "--name=orbitlite-train").stdout.split()
        requeue = slurm_env.client("scontrol", "requeue", job)
        assert requeue.returncode == 0, requeue.stderr
        pending = False
        while True:  # a requeued job may start again two minutes later: not in a test
            state = slurm_env.client("squeue", "--noheader", "--format=%T", f"--jobs={job}").stdout.strip()
            if state == "PENDING":
                pending = True
                slurm_env.client("scontrol", "update", f"JobId={job}", "StartTime=now")
            elif pending:
                break
            assert time.monotonic() < deadline, f"the requeued job is {state}"
            time.sleep(0.5)
        stdout, stderr = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, stderr[-3000:]
    assert "Restarts=1" in slurm_env.client("scontrol", "show", "job", job).stdout
    epochs = [e["epoch"] for e in json.loads((tmp_path / "m.keras.json").read_text())["history"][0]["epochs"]]
    assert epochs[0] > 1 and epochs == list(range(epochs[0], 9)), epochs  # resumed after the backed-up epochs


def test_data_parallel_training_without_slurm_or_with_nonsense_is_one_line(patches_file, tmp_path):
    args = ["ground", "train", "--data", str(patches_file), "--out", str(tmp_path / "m.keras"), "--epochs", "1"]
    assert_one_line_error(orbitlite(*args, "--tasks-per-node", "2"), "add --backend slurm")
    no_slurm = {**os.environ, "PATH": str(tmp_path)}
    assert_one_line_error(orbitlite(*args, "--backend", "slurm", env=no_slurm), "`sbatch` is not on PATH")
    assert_one_line_error(orbitlite(*args, "--backend", "slurm", "--nodes", "0"), "--nodes")
    assert not (tmp_path / "m.keras").exists()
