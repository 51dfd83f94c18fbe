"""The slurm backend against a real one-node SLURM cluster (tests/slurm.py, MaxArraySize 5):
batches split into arrays, failures recorded whether the job raised or SLURM killed it, reruns,
the states a `status` command shows, and one-line errors when there is no SLURM to talk to."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import pytest

from ground.cluster import Job, Limits, run, state_of
from ground.cluster.jobs import failure_of
from ground.cluster.slurm import read_submissions, run_slurm, slurm_states, submissions_path
from ground.errors import ClusterError
from tests.jobs import fail, once_then_fine, sleep, write_file
from tests.slurm import MAX_ARRAY_SIZE, free_ports

SMALL = Limits(time_min=5, mem_gb=0.5, cpus=1)
POLL_S = 2.0


def hog(part: Path) -> None:
    """Touch 1 GB (bytes of zeros would stay unmapped) and hold it while SLURM looks."""
    held = b"x" * (1 << 30)
    time.sleep(60)
    assert held


def wait_for(flag: str, part: Path) -> None:
    while not Path(flag).exists():
        time.sleep(0.2)
    (part / "ok").write_text("ok")


def test_a_batch_larger_than_max_array_size_is_split_into_arrays_and_all_done(slurm_env, tmp_path):
    jobs = [Job(f"m{i}", tmp_path / f"m{i}", functools.partial(write_file, "out.txt", str(i)), SMALL)
            for i in range(MAX_ARRAY_SIZE + 2)]
    said = []
    assert run(jobs, "slurm", said.append, poll_s=POLL_S) == {job.key: "done" for job in jobs}
    assert "in 2 arrays" in said[0] and "MaxArraySize 5" in said[0]
    for i, job in enumerate(jobs):
        assert (job.folder / "out.txt").read_text() == str(i)
    recorded = read_submissions(tmp_path)
    arrays = sorted({sub.job_id for sub in recorded.values()}, key=int)
    assert len(arrays) == 2
    assert sorted(sub.array_index for sub in recorded.values() if sub.job_id == arrays[0]) == [0, 1, 2, 3, 4]
    assert sorted(sub.array_index for sub in recorded.values() if sub.job_id == arrays[1]) == [0, 1]


def test_a_job_that_raises_or_that_slurm_kills_is_recorded_as_failed_and_the_rest_goes_on(slurm_env, tmp_path):
    jobs = [Job("good", tmp_path / "good", functools.partial(write_file, "a.txt", "hello"), SMALL),
            Job("bad", tmp_path / "bad", functools.partial(fail, "the data ran out"), SMALL),
            Job("hog", tmp_path / "hog", hog, Limits(time_min=5, mem_gb=0.25)),
            Job("slow", tmp_path / "slow", functools.partial(sleep, 600), Limits(time_min=1, mem_gb=0.5)),
            Job("victim", tmp_path / "victim", functools.partial(sleep, 600), SMALL),
            Job("warned", tmp_path / "warned", functools.partial(sleep, 600), SMALL)]

    def once_running(key: str, *scancel: str) -> None:  # as a user (or SLURM's warning) would, once it runs
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            sub = read_submissions(tmp_path).get(key)
            if sub and slurm_env.client("squeue", "--noheader", "--format=%T", f"--jobs={sub.task}").stdout.strip() == "RUNNING":
                time.sleep(3)  # past the task's start, where Python installs its handler
                slurm_env.client("scancel", *scancel, sub.task)
                return
            time.sleep(0.2)

    threading.Thread(target=once_running, args=("victim",), daemon=True).start()
    threading.Thread(target=once_running, args=("warned", "--signal=USR2"), daemon=True).start()
    ended = run(jobs, "slurm", lambda line: None, poll_s=POLL_S)
    assert ended == {"good": "done", "bad": "failed", "hog": "failed", "slow": "failed", "victim": "failed",
                     "warned": "failed"}
    assert (tmp_path / "good" / "a.txt").read_text() == "hello"
    for key in ("bad", "hog", "slow", "victim", "warned"):
        assert not (tmp_path / key).exists() and not (tmp_path / f"{key}.part").exists()
    assert "ValueError: the data ran out" in failure_of(jobs[1]).error
    hog_error = failure_of(jobs[2]).error  # SLURM killed it: the record is written from its state
    assert hog_error.startswith("SLURM ended it ") and "exceeded memory limit" in hog_error, hog_error
    assert "exceeded memory limit" in jobs[2].log.read_text()  # slurmstepd's words, copied to its log
    # A 1-min limit leaves SLURM's warning and its kill in the same tick of its timer, or not:
    # either the job stopped itself at the warning or SLURM's TIMEOUT is recorded.
    slow_error = failure_of(jobs[3]).error
    assert ("time limit (1 min) is near" in slow_error
            or slow_error.startswith("SLURM ended it TIMEOUT (task ") and "limit 1 min" in slow_error), slow_error
    assert failure_of(jobs[4]).error.startswith("SLURM ended it CANCELLED (task "), failure_of(jobs[4]).error
    assert "stopped at SLURM's warning that its time limit (5 min) is near" in failure_of(jobs[5]).error
    assert read_submissions(tmp_path)["hog"].job_id != read_submissions(tmp_path)["good"].job_id  # other limits


def test_a_rerun_skips_finished_jobs_and_retries_failed_ones(slurm_env, tmp_path):
    flag = tmp_path / "flag"
    jobs = [Job("a", tmp_path / "a", functools.partial(write_file, "a.txt", "1"), SMALL),
            Job("b", tmp_path / "b", functools.partial(once_then_fine, str(flag)), SMALL)]
    assert run(jobs, "slurm", lambda line: None, poll_s=POLL_S) == {"a": "done", "b": "failed"}
    first = read_submissions(tmp_path)["b"]
    said = []
    assert run(jobs, "slurm", said.append, poll_s=POLL_S) == {"b": "done"}
    assert said[0] == "1 of 2 already done, skipped"
    assert state_of(jobs[1]) == "done" and failure_of(jobs[1]) is None
    assert read_submissions(tmp_path)["b"].job_id != first.job_id


def test_states_while_queued_and_running_and_a_rerun_follows_tasks_still_in_slurm(slurm_env, tmp_path):
    """Two jobs that each take the node's two CPUs: one runs, the other waits its turn."""
    flag = tmp_path / "go"
    whole_node = Limits(time_min=5, mem_gb=0.5, cpus=2)
    jobs = [Job(key, tmp_path / key, functools.partial(wait_for, str(flag)), whole_node) for key in ("first", "second")]
    never = Job("never", tmp_path / "never", functools.partial(write_file, "a", "b"), SMALL)
    results, said = {}, {"one": [], "two": []}

    def in_thread(name: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.update({name: run_slurm(jobs, said[name].append, poll_s=1)}))
        thread.start()
        return thread

    one = in_thread("one")
    deadline = time.monotonic() + 120
    while sorted((states := slurm_states([*jobs, never])).values()) != ["queued", "running", "unknown"]:
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    assert states["never"] == "unknown"
    arrays = {sub.job_id for sub in read_submissions(tmp_path).values()}
    two = in_thread("two")  # the same jobs again while SLURM still has them
    while not said["two"]:
        assert time.monotonic() < deadline, said
        time.sleep(0.2)
    assert said["two"][0] == "2 jobs still queued or running from an earlier submission: followed, not submitted again"
    flag.write_text("go")
    one.join(timeout=180), two.join(timeout=180)
    assert results == {"one": {"first": "done", "second": "done"}, "two": {"first": "done", "second": "done"}}
    assert {sub.job_id for sub in read_submissions(tmp_path).values()} == arrays  # nothing submitted twice
    assert slurm_states([*jobs, never]) == {"first": "done", "second": "done", "never": "unknown"}


def test_states_of_failed_jobs(slurm_env, tmp_path):
    jobs = [Job("bad", tmp_path / "bad", functools.partial(fail, "no"), SMALL)]
    run(jobs, "slurm", lambda line: None, poll_s=POLL_S)
    assert slurm_states(jobs) == {"bad": "failed"}


def test_without_sbatch_on_path_the_slurm_backend_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM commands here
    jobs = [Job("a", tmp_path / "a", functools.partial(write_file, "a", "b"), SMALL)]
    with pytest.raises(ClusterError, match=r"^`sbatch` is not on PATH: the slurm backend runs where"):
        run(jobs, "slurm", lambda line: None)
    assert state_of(jobs[0]) == "pending"


def test_a_controller_that_does_not_answer_is_one_clear_error(slurm_cluster, tmp_path, monkeypatch):
    (port,) = free_ports(1)  # nothing listens there
    dead = tmp_path / "slurm.conf"
    dead.write_text("".join(f"SlurmctldPort={port}\n" if line.startswith("SlurmctldPort=") else line
                            for line in slurm_cluster.conf.read_text().splitlines(keepends=True)))
    monkeypatch.setenv("SLURM_CONF", str(dead))
    jobs = [Job("a", tmp_path / "a", functools.partial(write_file, "a", "b"), SMALL)]
    with pytest.raises(ClusterError, match=r"^the SLURM controller does not answer \(SLURM_CONF=.*\): "
                                           r".*Unable to contact slurm controller"):
        run(jobs, "slurm", lambda line: None)
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "missing.conf"))
    with pytest.raises(ClusterError, match=r"^SLURM_CONF names .*missing.conf, which is not a file$"):
        run(jobs, "slurm", lambda line: None)
    assert not submissions_path(tmp_path).exists()


def test_a_damaged_submission_record_is_one_clear_error(tmp_path):
    job = Job("a", tmp_path / "a", functools.partial(write_file, "a", "b"), SMALL)
    submissions_path(tmp_path).parent.mkdir()
    submissions_path(tmp_path).write_text('{"schema": "orbitlite/slurm-submissions", "version": 1, '
                                          '"jobs": {"a": {"cluster": "x", "job_id": "12; rm -rf /"}}}')
    with pytest.raises(ClusterError, match=r"slurm.json is malformed: jobs\[...\]\.job_id: Expected `str`"):
        slurm_states([job])


ZOO_GRID = """\
name = "slurm-zoo"
architectures = ["cnn-s", "cnn-l"]
seeds = [0, 1]
[hyper]
epochs = [2]
[twins]
sparsities = [0.5, 0.8]
methods = ["magnitude"]
epochs = 1
[limits]
time_min = 10
mem_gb = 2
"""


@pytest.mark.slow
def test_a_small_zoo_trains_through_slurm_into_its_index(slurm_env, tmp_path):
    """2 architectures x 2 seeds x 2 sparsities as one SLURM job array, then its index and status."""
    from ground.datasets.synthetic import generate_patches
    from ground.zoo.index import build_index, load_zoo
    from ground.zoo.zoo import prepare_zoo, run_zoo, states
    from tests.conftest import orbitlite

    (tmp_path / "grid.toml").write_text(ZOO_GRID)
    data = generate_patches(15, size=32, bands=("B02", "B03", "B04", "B08"), seed=0).save(tmp_path / "d.npz")
    out = tmp_path / "zoo"
    config = prepare_zoo(tmp_path / "grid.toml", data, out)
    said = []
    ended = run_zoo(config, out, "slurm", said.append, poll_s=POLL_S)
    assert ended == {m.key: "done" for m in config.members}, [line for line in said if "failed" in line]
    submissions = read_submissions(out / "members")
    assert len({s.job_id for s in submissions.values()}) == 1  # one array: the members share their limits
    _, count = build_index(out, pytest.fail)
    assert count == 4
    zoo = load_zoo(out, say=pytest.fail)
    rows = zoo.table.to_pylist()
    assert sorted({(r["architecture"], r["seed"]) for r in rows}) == [("cnn-l", 0), ("cnn-l", 1), ("cnn-s", 0), ("cnn-s", 1)]
    assert sorted({r["form"] for r in rows}) == ["dense", "magnitude-0.5", "magnitude-0.8"]
    for r in rows:
        assert r["sparsity"] == pytest.approx(r["target_sparsity"], abs=0.01) and 0 <= r["int8"] <= 1
    assert {state for state, _ in states(config, out).values()} == {"done"}
    status = orbitlite("ground", "zoo", "status", str(out))
    assert status.returncode == 0 and status.stdout.splitlines()[-1] == "4 done of 4 members", status.stderr
