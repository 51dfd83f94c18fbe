"""The payload's supervisor (onboard/service/supervisor.py), on this machine, running the real
`orbitlite onboard serve` from two slots: a slot on trial is confirmed once the service is up on
it, and the board goes back to the previous slot by itself when the service exits or is not up in
time; a service that dies off trial is restarted; one supervisor at a time; and what it reads from
the payload's root (trial.json, the slots, the folders it is asked about) is refused or ignored
when it is not what the supervisor wrote, whoever wrote it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.deploy.bundle import build_bundle
from onboard.service import supervisor

SUPERVISOR = Path(supervisor.__file__)


def agent(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SUPERVISOR), str(root), *args], capture_output=True, text=True,
                          timeout=120)


def status(root: Path) -> dict:
    done = agent(root, "status")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_for(root: Path, test, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = status(root)
        if test(now):
            return now
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {status(root)}; log: {log_tail(root)}")


def log_tail(root: Path) -> str:
    log = root / "supervisor" / "service.log"
    return log.read_text()[-2000:] if log.exists() else "(no log)"


def install(root: Path, slot: str, model: Path, **config) -> None:
    """Slot `slot`: a bundle of `model` and a service config, and a runtime that is this one."""
    settings = {"spool": "../../spool", "bands": ["B02", "B03", "B04", "B08"], "board": "rpi-4b",
                "models": {"ladder": [model.name]}, "store": {"path": "../../store/products.db",
                                                             "capacity_bytes": 10**7},
                "telemetry": "../../store/telemetry.jsonl", "poll_seconds": 0.2, **config}
    folder = root / "slots" / slot
    build_bundle([model], folder)
    (folder / supervisor.CONFIG).write_text(json.dumps(settings))
    python = root / "envs" / slot / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)


@pytest.fixture
def root(tmp_path, ground_models):
    """A payload root with both slots installed, slot a active, and its supervisor running."""
    root = tmp_path / "payload"
    for folder in ("spool", "store"):
        (root / folder).mkdir(parents=True)
    install(root, "a", ground_models["tflite"])
    install(root, "b", ground_models["tflite"], poll_seconds=0.3)
    supervisor.switch_link(root / "slots", "a")
    started = agent(root, "start")
    assert started.returncode == 0, started.stderr
    wait_for(root, lambda s: s.get("state") == "running" and s.get("slot") == "a")
    yield root
    agent(root, "stop")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_slot_on_trial_is_confirmed_once_the_service_is_up_on_it(root):
    first = status(root)
    switched = agent(root, "switch", "b", "--trial", "60")
    assert switched.returncode == 0, switched.stderr
    assert json.loads(switched.stdout)["previous"] == "a"
    now = wait_for(root, lambda s: s["slot"] == "b" and s["state"] == "running" and s["trial"] is None)
    assert os.readlink(root / "slots" / "active") == "b" and not (root / "supervisor" / "trial.json").exists()
    assert now["service"] != first["service"] and alive(now["service"]) and not alive(first["service"])
    assert json.loads((root / "supervisor" / "ready").read_text())["pid"] == now["service"]
    assert now["fallback"] is None


def test_a_service_that_exits_on_trial_sends_the_board_back(root):
    config = root / "slots" / "b" / supervisor.CONFIG
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "store": {**settings["store"], "path": "../../nowhere/p.db"}}))
    assert agent(root, "switch", "b").returncode == 0
    now = wait_for(root, lambda s: s["fallback"] is not None and s["state"] == "running")
    assert now["slot"] == "a" and os.readlink(root / "slots" / "active") == "a"
    assert (now["fallback"]["from"], now["fallback"]["to"]) == ("b", "a")
    assert "exited with status" in now["fallback"]["reason"]
    assert "cannot" in log_tail(root) or "nowhere" in log_tail(root)


def test_a_service_not_up_within_the_trial_sends_the_board_back(root):
    assert agent(root, "switch", "b", "--trial", "0.01").returncode == 0
    now = wait_for(root, lambda s: s["fallback"] is not None and s["state"] == "running")
    assert now["slot"] == "a" and "was not ready within 0.01 s" in now["fallback"]["reason"]


def test_a_service_that_dies_off_trial_is_restarted(root):
    first = status(root)
    os.kill(first["service"], signal.SIGKILL)
    now = wait_for(root, lambda s: s["state"] == "running" and s["service"] != first["service"])
    assert now["slot"] == "a" and now["restarts"] == 1 and now["fallback"] is None


def test_one_supervisor_at_a_time(root):
    second = agent(root, "run")
    assert second.returncode == 1 and "a supervisor runs already" in second.stderr


def test_what_the_supervisor_reads_is_refused_or_ignored_when_it_is_not_its_own(root, tmp_path):
    # a trial.json not written by a switch: not JSON, the wrong types, a slot that is no slot
    for garbage in ("{", "[]", json.dumps({"slot": "a", "previous": "../../etc", "seconds": "x"}),
                    json.dumps({"slot": "a", "previous": "b", "seconds": 1e308})):
        (root / "supervisor" / "trial.json").write_text(garbage)
        os.kill(status(root)["supervisor"], signal.SIGHUP)
        now = wait_for(root, lambda s: s["state"] == "running" and s["trial"] is None)
        assert now["slot"] == "a" and now["fallback"] is None
    # slots/active leading out of the slots, or to a folder that is no slot
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for target in (str(outside), "../slots/b", "c"):
        (root / "slots" / "active").unlink()
        os.symlink(target, root / "slots" / "active")
        assert agent(root, "state").returncode == 0 and json.loads(agent(root, "state").stdout)["active"] is None
    supervisor.switch_link(root / "slots", "a")
    # folders it is asked about are under the root, named plainly
    os.symlink(outside, root / "linked")
    for folder in ("..", "../..", "/etc", "slots/../..", "./slots", "slots//a", "linked", "linked/x"):
        done = agent(root, "hashes", folder)
        assert done.returncode != 0 and "a folder under the payload's root is wanted" in done.stderr
    assert json.loads(agent(root, "hashes", "slots/a").stdout)["bundle.json"][0] > 0
    # the active slot is never installed over; a slot without a runtime is not switched to
    (root / "incoming" / "x").mkdir(parents=True)
    done = agent(root, "install", "a", "incoming/x", "orbitlite==0.1.0")
    assert done.returncode == 1 and "slot a is the active one" in done.stderr
    (root / "envs" / "b" / "bin" / "python").unlink()
    done = agent(root, "switch", "b")
    assert done.returncode == 1 and "slot b holds no installed bundle" in done.stderr
    assert os.readlink(root / "slots" / "active") == "a"
