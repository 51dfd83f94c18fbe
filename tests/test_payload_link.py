"""End to end over a simulated serial line (two real pseudo-terminals at 115200 baud, with line
noise): `orbitlite onboard serve` with a link answers `orbitlite hil link` from the ground."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hil.deploy.bundle import build_bundle
from onboard.contracts.product import read_product
from tests.conftest import SPYNDEX_BANDS, SPYNDEX_NPY, assert_one_line_error, orbitlite
from tests.linesim import Faults, LineSim


@pytest.fixture()
def payload(tmp_path, ground_models):
    """A payload root: the model in slots a and b, slots/active -> a, a spool, a key and a serve config."""
    root = tmp_path / "payload"
    model = ground_models["tflite"]
    for slot in "ab":
        build_bundle([model], root / "slots" / slot)
    os.symlink("a", root / "slots" / "active")
    (root / "spool").mkdir()
    key = tmp_path / "link.key"
    assert orbitlite("hil", "keygen", "--out", str(key)).returncode == 0
    return {"root": root, "key": key, "model": model.name, "source_model": model}


def _serve(payload, port: str) -> subprocess.Popen:
    config = {"spool": "spool", "bands": SPYNDEX_BANDS.split(","), "board": "rpi-4b",
              "models": {"ladder": [f"slots/active/{payload['model']}"]},
              "store": {"path": "store.db", "capacity_bytes": 10_000_000}, "telemetry": "telemetry.jsonl",
              "poll_seconds": 0.2, "link": {"port": port, "key_file": str(payload["key"])}}
    (payload["root"] / "serve.json").write_text(json.dumps(config))
    exe = Path(sys.executable).with_name("orbitlite")
    return subprocess.Popen([str(exe), "onboard", "serve", str(payload["root"] / "serve.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ground_commands_the_payload_over_a_noisy_line(payload, tmp_path):
    scene = tmp_path / "scene1.npy"  # 96 x 96 px of the real scene: 74 kB, 6.4 s of line
    np.save(scene, np.load(SPYNDEX_NPY)[:, :96, :96])
    with LineSim(baud=115200, seed=3, faults=Faults(corrupt=1e-4, drop=5e-5)) as line:
        service = _serve(payload, line.payload_path)
        try:
            def link(*args: str, key: Path = payload["key"]) -> subprocess.CompletedProcess:
                return orbitlite("hil", "link", "--port", line.ground_path, "--key-file", str(key), *args)

            result = link("ping")
            assert result.returncode == 0 and "pong" in result.stdout, result.stderr

            up = link("upload", str(scene), "files/scene1.npy")
            assert up.returncode == 0, up.stderr
            assert (payload["root"] / "files/scene1.npy").read_bytes() == scene.read_bytes()
            queued = link("run-scene", "files/scene1.npy")
            assert queued.returncode == 0 and "scene1.npy queued" in queued.stdout, queued.stderr

            deadline = time.monotonic() + 120
            while "product/1 " not in (listing := link("products")).stdout:
                assert time.monotonic() < deadline, f"no product: {listing.stdout} {listing.stderr}"
                time.sleep(0.5)
            fetched = link("download", "product/1", str(tmp_path / "p1.msgpack"), "--ack")
            assert fetched.returncode == 0, fetched.stderr
            product = read_product(tmp_path / "p1.msgpack")
            assert product.scene_id == "scene1" and product.class_map.shape == (3, 3)

            scene2 = tmp_path / "scene2.npy"  # a second scene, fetched with the whole queue
            np.save(scene2, np.load(SPYNDEX_NPY)[:, 100:164, 100:164])
            assert link("upload", str(scene2), "files/scene2.npy").returncode == 0
            assert link("run-scene", "files/scene2.npy").returncode == 0
            while "product/2 " not in link("products").stdout:
                assert time.monotonic() < deadline, "no second product"
                time.sleep(0.5)
            fetched = link("downlink", "--out", str(tmp_path / "ground"))
            assert fetched.returncode == 0, fetched.stderr
            assert "1 product(s) fetched" in fetched.stdout and "scene2 by p, 4 tiles classified" in fetched.stdout
            assert read_product(tmp_path / "ground/scene2.p.msgpack").class_map.shape == (2, 2)
            assert "0 product(s) fetched" in link("downlink", "--out", str(tmp_path / "ground")).stdout

            budgets = link("set-budgets", "--cpu-seconds", "5", "--reserve", "0.3")
            assert budgets.returncode == 0 and json.loads(budgets.stdout)["cpu_seconds"] == 5.0

            switched = link("switch-slot", "b")
            assert switched.returncode == 0 and "slot b active" in switched.stdout, switched.stderr
            assert os.readlink(payload["root"] / "slots/active") == "b"
            (payload["root"] / "slots/a" / payload["model"]).write_bytes(b"not a model")
            refused = link("switch-slot", "a")
            assert_one_line_error(refused, "switch_slot: refused (failed)", "is not the file its bundle lists")
            assert os.readlink(payload["root"] / "slots/active") == "b"
            deployed = link("deploy", str(payload["source_model"]))  # into the inactive slot, a: mended
            assert deployed.returncode == 0 and "slot a active: p" in deployed.stdout, deployed.stderr
            assert os.readlink(payload["root"] / "slots/active") == "a"

            wrong = tmp_path / "wrong.key"
            wrong.write_text("00" * 32)
            assert_one_line_error(link("ping", key=wrong), "refused (unauthenticated)")

            status = json.loads(link("status").stdout)
            assert status["active_slot"] == "a"
            assert status["budget"] == {"cpu_seconds": 5.0, "deadline_seconds": None, "reserve": 0.3,
                                        "run_in_eclipse": True}
            assert status["store"]["products_acknowledged"] == 2 and status["store"]["queue_depth"] == 0
            assert status["link"]["refused_unauthenticated"] >= 1
        finally:
            service.send_signal(signal.SIGTERM)
            out, err = service.communicate(timeout=60)
    assert service.returncode == 0, err
    assert "scene1.npy: 9 of 9 tiles classified" in out and "scene2.npy: 4 of 4 tiles classified" in out
    assert "models switched: p" in out
    assert line.uplink.stats.corrupted + line.downlink.stats.corrupted > 0  # the noise was real


def test_budgets_set_over_the_link_outlive_a_restart(payload):
    with LineSim(baud=115200) as line:
        for cpu_seconds, expect in (("7", 7.0), (None, 7.0)):
            service = _serve(payload, line.payload_path)
            try:
                link = ["hil", "link", "--port", line.ground_path, "--key-file", str(payload["key"])]
                if cpu_seconds:
                    assert orbitlite(*link, "set-budgets", "--cpu-seconds", cpu_seconds).returncode == 0
                status = orbitlite(*link, "status")
                assert status.returncode == 0, status.stderr
                assert json.loads(status.stdout)["budget"]["cpu_seconds"] == expect
            finally:
                service.send_signal(signal.SIGTERM)
                service.communicate(timeout=60)


def test_a_bad_link_section_is_one_line(payload, tmp_path):
    (payload["root"] / "serve.json").write_text(json.dumps({
        "spool": "spool", "bands": ["B02"], "board": "rpi-4b", "models": {"ladder": ["m.tflite"]},
        "store": {"path": "s.db", "capacity_bytes": 1000}, "telemetry": "t.jsonl",
        "link": {"port": "/dev/null", "key_file": str(tmp_path / "missing.key")}}))
    assert_one_line_error(orbitlite("onboard", "serve", str(payload["root"] / "serve.json")),
                          "link.key_file is unusable", "missing.key")
    short = tmp_path / "short.key"
    short.write_text("abcd")
    assert_one_line_error(orbitlite("hil", "link", "--port", "/dev/null", "--key-file", str(short), "ping"),
                          "holds 2 bytes")
