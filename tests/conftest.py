from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SPYNDEX_NPY = SHARED_DATA / "scenes/sentinel2_spyndex/S2_10m_B02_B03_B04_B08_300x300.npy"
SPYNDEX_BANDS = "B02,B03,B04,B08"


def shared(relative: str) -> Path:
    """A file of the real EO samples in ../shared/data, which CI always provides."""
    path = SHARED_DATA / relative
    assert path.exists(), f"{path} is missing: the tests read the real samples in ../shared/data"
    return path


def orbitlite(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed console command as a user would."""
    exe = Path(sys.executable).with_name("orbitlite")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env or os.environ.copy(),
                          cwd=cwd, timeout=900)


def run_onboard(model: Path, out: Path, scene: Path = SPYNDEX_NPY, bands: str = SPYNDEX_BANDS) -> Path:
    """`orbitlite onboard run` on the real Sentinel-2 scene (by default): the product it wrote."""
    result = orbitlite("onboard", "run", str(scene), "--bands", bands, "--model", str(model), "--out", str(out))
    assert result.returncode == 0, result.stderr
    (product,) = Path(out).glob("*.msgpack")
    return product


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """A user's mistake ends with exit code non-zero and one line naming it, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not _is_runtime_noise(line)]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _is_runtime_noise(line: str) -> bool:
    # LiteRT announces its CPU delegate on stderr from C++; it is not an error line.
    return line.startswith("INFO: Created TensorFlow Lite XNNPACK delegate")


# `make test` runs the tests on every core (pytest-xdist, `-n auto`). Tests that share one service
# run in one worker, in order, and first: the emulated board (one board, one sshd on its port, a
# session that starts and stops it) and the SLURM cluster (one controller on its ports). Grouped
# here by file: xdist's own `--dist loadgroup` no longer groups under pytest 9, whose nodes do not
# take the nodeid it rewrites.
SERIAL_GROUPS = {
    "emulated-board": ("tests/test_deploy.py", "tests/test_emulated_board.py", "tests/test_hil_board.py"),
    "slurm": ("tests/test_slurm.py", "tests/test_data_parallel.py"),
}


def _group(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    return next((group for group, files in SERIAL_GROUPS.items() if path in files), None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The grouped tests first (every worker collects in this order), the longest group first."""
    order = {group: i for i, group in enumerate(SERIAL_GROUPS)}
    items.sort(key=lambda item: order.get(_group(item.nodeid), len(order)))


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Each group a unit of work for one worker; every other module a unit of its own (so a
    module's fixtures are made once)."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid) or nodeid.split("::", 1)[0]

    return GroupScheduling(config, log)


@pytest.fixture(scope="session")
def spyndex_scene() -> np.ndarray:
    return np.load(shared("scenes/sentinel2_spyndex/S2_10m_B02_B03_B04_B08_300x300.npy"))


@pytest.fixture(scope="session")
def ground_models(tmp_path_factory, worker_id) -> dict[str, Path]:
    """A small model trained, pruned and converted through the `orbitlite ground` commands, on
    SYNTHETIC patches in the spyndex scene's bands. Trained long enough, at a rate cnn-s does not
    lose features to (at 3e-3 two seeds in five left a fifth of the tiles on dead ReLUs), to land
    well clear of the thresholds the tests assert on any seed and thread count (measured over
    seeds 0-4 and 1 and 2 intra-op threads: see test_train_prune_convert_through_the_cli).
    Made once per run: under pytest-xdist the first worker to need it makes it, the others wait
    for it and read it."""
    shared_root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared_root = shared_root.parent  # the run's folder, above every worker's
    d = shared_root / "ground-models"
    with open(shared_root / "ground-models.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (d / "stdout.json").exists():
            d.mkdir(exist_ok=True)
            steps = [
                ("synth", "--out", str(d / "patches.npz"), "--per-class", "150", "--bands", SPYNDEX_BANDS),
                ("train", "--data", str(d / "patches.npz"), "--out", str(d / "m.keras"), "--arch", "cnn-s",
                 "--epochs", "24", "--lr", "1e-3"),
                ("prune", "--data", str(d / "patches.npz"), "--model", str(d / "m.keras"), "--out",
                 str(d / "p.keras"), "--sparsity", "0.5", "--epochs", "5"),
                ("convert", "--data", str(d / "patches.npz"), "--model", str(d / "p.keras"), "--out",
                 str(d / "p.tflite")),
            ]
            outputs = {}
            for step in steps:
                result = orbitlite("ground", *step)
                assert result.returncode == 0, result.stderr[-3000:]
                outputs[step[0]] = result.stdout
            (d / "stdout.json").write_text(json.dumps(outputs))
        outputs = json.loads((d / "stdout.json").read_text())
    return {"dir": d, "patches": d / "patches.npz", "keras": d / "m.keras", "pruned": d / "p.keras",
            "tflite": d / "p.tflite", "stdout": outputs}


def bench_result(tiles_per_s: float = 14428.0, busy_watts: float = 4.5, model: str = "m.tflite") -> str:
    """A valid `orbitlite hil bench` result (result.json) with made-up figures, for the readers'
    tests: invoke alone at `tiles_per_s`, batch 256, energy modelled at `busy_watts`."""
    from onboard.contracts.bench import (BenchReport, BoardInfo, Cpu, Measured, ModelInfo, Rule, Timings,
                                         Versions)
    from hil.bench.run import energy

    us = 256e6 / tiles_per_s
    t = Timings(interpreter="ai_edge_litert", threads=1, batch=256, init_us=8000.0, first_inference_us=us,
                warmup_runs=1, warmup_avg_us=us, count=50, seconds=50 * us / 1e6, min_us=us, max_us=us, avg_us=us,
                std_us=0.0, p50_us=us, p90_us=us, p99_us=us, tiles_per_s=tiles_per_s, peak_memory_mb=60.0,
                valid=True)
    measured = Measured(versions=Versions(orbitlite="0.1.0", numpy="2.4.6", interpreter="ai_edge_litert 2.1.0",
                                          python="3.11.2", system="Linux 6.1 aarch64"),
                        machine="aarch64", cores=4, accelerator="cpu", rule=Rule(), main=t, threads_sweep=(t,),
                        batch_sweep=(t,), latencies_us=(us,), end_to_end=None, cpu_before=Cpu(), cpu_after=Cpu(),
                        throttling=None)
    return BenchReport(
        created="2026-12-02T03:00:00+00:00",
        board=BoardInfo(name="rpi-4b", arch="aarch64", cores=4, accelerator="none", idle_watts=2.7,
                        busy_watts=busy_watts, meter="modelled", transport="ssh"),
        model=ModelInfo(file=model, id="m", sha256="0" * 64, size_bytes=10000, tile=(32, 32), dtype="int8"),
        measured=measured,
        energy=energy(busy_watts, 2.7, t.seconds, 50 * 256, (32, 32), 10.0, source="modelled", meter="modelled",
                      of="invoke"),
    ).to_json().decode()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real one-node SLURM cluster on loopback (tests/slurm.py), started the first time a test
    asks for it and stopped, with every job it still runs, at the end of the session."""
    from tests.slurm import running_cluster

    with running_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture
def slurm_env(slurm_cluster, monkeypatch):
    """The test SLURM cluster, its clients pointed at it (SLURM_CONF) for this test."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster
