"""The local backend: jobs in their own processes, published whole or recorded as failed, a crash
or an overrun failing its job alone, and a rerun skipping finished jobs and retrying failed ones."""

from __future__ import annotations

import functools

from ground.cluster import Job, Limits, run, state_of
from ground.cluster.jobs import failure_of
from tests.jobs import crash, fail, once_then_fine, sleep, write_file


def test_a_batch_publishes_finished_folders_and_records_failures_and_goes_on(tmp_path):
    jobs = [Job("good", tmp_path / "good", functools.partial(write_file, "a.txt", "hello")),
            Job("bad", tmp_path / "bad", functools.partial(fail, "the data ran out")),
            Job("crash", tmp_path / "crash", crash),
            Job("slow", tmp_path / "slow", functools.partial(sleep, 60), Limits(time_min=0.02))]
    said = []
    ended = run(jobs, "local", said.append)
    assert ended == {"good": "done", "bad": "failed", "crash": "failed", "slow": "failed"}
    assert (tmp_path / "good" / "a.txt").read_text() == "hello"
    for key in ("bad", "crash", "slow"):
        assert not (tmp_path / key).exists() and not (tmp_path / f"{key}.part").exists()
    assert "ValueError: the data ran out" in failure_of(jobs[1]).error
    assert "SIGSEGV" in failure_of(jobs[2]).error
    assert "time limit" in failure_of(jobs[3]).error
    assert "the data ran out" in jobs[1].log.read_text()  # the traceback went to its log
    assert len(said) == 4


def test_a_rerun_skips_finished_jobs_and_retries_failed_ones(tmp_path):
    flag = tmp_path / "flag"
    jobs = [Job("a", tmp_path / "a", functools.partial(write_file, "a.txt", "1")),
            Job("b", tmp_path / "b", functools.partial(once_then_fine, str(flag)))]
    assert run(jobs, "local", lambda line: None) == {"a": "done", "b": "failed"}
    said = []
    assert run(jobs, "local", said.append) == {"b": "done"}
    assert said[0] == "1 of 2 already done, skipped"
    assert state_of(jobs[1]) == "done" and failure_of(jobs[1]) is None


def test_a_half_written_folder_is_never_taken_for_a_finished_one(tmp_path):
    job = Job("a", tmp_path / "a", functools.partial(write_file, "a.txt", "1"))
    (tmp_path / "a").mkdir()  # a folder copied in without its marker
    (tmp_path / "a.part").mkdir()  # an attempt killed mid-way
    assert state_of(job) == "pending"
    assert run([job], "local", lambda line: None) == {"a": "done"}
    assert not job.part.exists() and (job.folder / "a.txt").read_text() == "1"
