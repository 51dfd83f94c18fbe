"""`orbitlite hil deploy` and `hil rollback` on the emulated arm64 board, over SSH, with arm64 wheels
(orbitlite's built on the board): a good deploy into each slot, the same bundle twice, a bundle
whose hashes lie, a model that fails its self-test, a wheel for the wrong arch, a service that does
not start on the new slot, a transfer cut mid-way and resumed, and a rollback. After each, the slot
that answers is the one expected, and the product the service made is still in its store.

The tests run in order, on one board, each from the state the one before left."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from hil.bench.run import BENCH_SCENE
from hil.deploy import runtime
from onboard.contracts import bundle
from onboard.contracts.bench import read_bench
from onboard.files import sha256_file
from tests.conftest import ROOT, assert_one_line_error, orbitlite
from tests.emulated import on_board

BOARD = "rpi-emulated"
PAYLOAD = "orbitlite/payload"  # on the board: the profile's workdir, then the deploy's root


def status(files) -> dict:
    result = on_board(files, "python3", f"{PAYLOAD}/supervisor/supervisor.py", PAYLOAD, "status")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def products(files) -> int:
    """How many products the payload's store holds."""
    result = on_board(files, "python3", "-c", "import sqlite3, sys; print(sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', "
                      "uri=True).execute('select count(*) from product').fetchone()[0])",
                      f"{PAYLOAD}/store/products.db")
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def running(files, slot: str) -> dict:
    """The supervisor's status, once the service runs on `slot` (off trial)."""
    now = status(files)
    assert (now["slot"], now["state"], now["trial"]) == (slot, "running", None), now
    assert on_board(files, "kill", "-0", str(now["service"])).returncode == 0
    return now


def rehash(folder: Path) -> None:
    """Rewrite the bundle manifest of `folder` to list its files as they now are."""
    body = json.loads((folder / bundle.MANIFEST_NAME).read_text())
    body["files"] = {f.name: {"size": f.stat().st_size, "sha256": sha256_file(f)}
                     for f in sorted(folder.iterdir()) if f.name != bundle.MANIFEST_NAME}
    (folder / bundle.MANIFEST_NAME).write_text(json.dumps(body))


def variant(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def deploy(*args: str) -> subprocess.CompletedProcess:
    return orbitlite("hil", "deploy", "--board", BOARD, "--trial", "60", *args)


@pytest.fixture(scope="module")
def clean_board(emulated_board):
    """The emulated board with no payload on it yet."""
    if on_board(emulated_board, "test", "-f", f"{PAYLOAD}/supervisor/supervisor.py").returncode == 0:
        on_board(emulated_board, "python3", f"{PAYLOAD}/supervisor/supervisor.py", PAYLOAD, "stop")
    assert on_board(emulated_board, "rm", "-rf", PAYLOAD).returncode == 0
    return emulated_board


@pytest.fixture(scope="module")
def bundles(clean_board, ground_models, tmp_path_factory) -> dict[str, Path]:
    """Bundles of the ground's model for the board, built by `hil bundle` (orbitlite's arm64 wheel
    built on the board the first time), and variants of them."""
    d = tmp_path_factory.mktemp("bundles")
    model = str(ground_models["tflite"])
    config = {"spool": "../../spool", "bands": ["B02", "B03", "B04", "B08"], "board": "board.json",
              "models": {"ladder": ["p.tflite"]}, "store": {"path": "../../store/products.db", "capacity_bytes": 10**8},
              "telemetry": "../../store/telemetry.jsonl", "poll_seconds": 0.5}
    (d / "fast.json").write_text(json.dumps(config))
    (d / "broken.json").write_text(json.dumps({**config, "store": {**config["store"], "path": "../../nowhere/p.db"}}))
    made = {}
    for name, extra in (("first", []), ("second", ["--config", str(d / "fast.json")]),
                        ("no-store", ["--config", str(d / "broken.json")])):
        result = orbitlite("hil", "bundle", "--board", BOARD, model, "--out", str(d / name), *extra)
        assert result.returncode == 0, result.stderr
        made[name] = d / name
    return made


def test_a_bundle_holds_the_runtime_for_the_board_and_the_model_with_its_vectors(bundles):
    body = bundle.read(bundles["first"])
    assert body.runtime is not None and (body.runtime.arch, body.runtime.python) == ("aarch64", "3.11")
    wheels = body.wheels
    assert [w for w in wheels if w.startswith("orbitlite-")] == ["orbitlite-0.1.0-cp311-cp311-linux_aarch64.whl"]
    for dependency in ("numpy", "ai_edge_litert", "msgspec", "msgpack", "click", "imagecodecs", "tifffile"):
        (wheel,) = [w for w in wheels if w.startswith(f"{dependency}-")]
        assert wheel.endswith("aarch64.whl") or wheel.endswith("-any.whl"), wheel
    assert body.models == ["p.tflite"] and {"p.tflite.json", "p.tflite.selftest", "board.json"} <= set(body.files)
    assert body.config == "service.json"


def test_a_bundle_for_another_arch_is_refused_before_anything_changes(clean_board, bundles, tmp_path):
    other = variant(bundles["first"], tmp_path / "other")
    body = json.loads((other / bundle.MANIFEST_NAME).read_text())
    (other / bundle.MANIFEST_NAME).write_text(json.dumps({**body, "runtime": {**body["runtime"], "arch": "x86_64"}}))
    assert_one_line_error(deploy(str(other)), "the bundle is for x86_64", "rpi-emulated is aarch64")
    assert on_board(clean_board, "test", "-e", PAYLOAD).returncode == 1


def test_a_board_without_room_for_the_bundle_is_refused_before_anything_changes(bundles, tmp_path):
    """A board of this machine's kind (the local transport) whose folder is a 2 MB file system."""
    cramped = tmp_path / "cramped"
    cramped.mkdir()
    profile = (ROOT / "hil/boards/profiles/local.toml").read_text().replace('name = "local"', 'name = "cramped"')
    assert 'name = "cramped"' in profile and 'workdir = "$ORBITLITE_CACHE/local-board"' in profile
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "cramped.toml").write_text(
        profile.replace('workdir = "$ORBITLITE_CACHE/local-board"', f'workdir = "{cramped}"'))
    ours = variant(bundles["first"], tmp_path / "x86_64")  # a bundle of this machine's platform, as far as it says
    body = json.loads((ours / bundle.MANIFEST_NAME).read_text())
    (ours / bundle.MANIFEST_NAME).write_text(json.dumps({**body, "runtime": {**body["runtime"], "arch": "x86_64"}}))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(cramped)], check=True)
    try:
        assert_one_line_error(orbitlite("hil", "deploy", "--board", "cramped", "--boards-dir", str(tmp_path / "boards"),
                                        str(ours)), "board cramped has 2 MB free", "the bundle needs about")
        assert list(cramped.iterdir()) == []
    finally:
        subprocess.run(["umount", str(cramped)], check=True)


def test_a_good_deploy_then_another_into_the_other_slot(clean_board, bundles):
    first = deploy(str(bundles["first"]))
    assert first.returncode == 0, first.stderr
    assert "slot a active (was none)" in first.stdout and "hashes checked" in first.stdout
    running(clean_board, "a")
    # the service on slot a runs a scene into the store
    done = subprocess.run(["scp", "-q", "-P", "2299", "-i", str(clean_board.key),
                           "-o", f"UserKnownHostsFile={clean_board.known_hosts}",
                           str(BENCH_SCENE), f"root@127.0.0.1:{PAYLOAD}/spool/scene.npy"], capture_output=True)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 300
    while on_board(clean_board, "test", "-f", f"{PAYLOAD}/spool/done/scene.npy").returncode != 0:
        assert time.monotonic() < deadline, on_board(clean_board, "tail", "-5",
                                                     f"{PAYLOAD}/supervisor/service.log").stdout
        time.sleep(1)
    assert products(clean_board) == 1

    second = deploy(str(bundles["second"]))
    assert second.returncode == 0, second.stderr
    assert "slot b active (was a)" in second.stdout
    assert f"bundle {bundle.read(bundles['second']).id}" in second.stdout
    running(clean_board, "b")
    assert products(clean_board) == 1


def test_a_bench_on_the_board_over_ssh_runs_the_deployed_runtime(clean_board, ground_models, tmp_path):
    result = orbitlite("hil", "bench", "--board", BOARD, "--model", str(ground_models["tflite"]), "--out",
                       str(tmp_path), "--batch", "8", "--batches", "1,8", "--min-runs", "5", "--min-seconds", "0")
    assert result.returncode == 0, result.stderr
    r = read_bench(tmp_path / "result.json")
    assert (r.board.name, r.board.transport, r.board.emulated) == (BOARD, "ssh", True)
    assert r.measured.machine == "aarch64" and r.measured.main.interpreter == "ai_edge_litert"
    assert r.measured.main.count >= 5 and r.tiles_per_s > 0 and r.measured.end_to_end.tiles > 0
    assert [t.threads for t in r.measured.threads_sweep] == [1, 2]
    assert "(EMULATED)" in result.stdout and (tmp_path / "report.html").is_file()
    running(clean_board, "b")


def test_the_same_bundle_twice_does_nothing(clean_board, bundles):
    before = running(clean_board, "b")
    again = deploy(str(bundles["second"]))
    assert again.returncode == 0, again.stderr
    assert "already active on slot b" in again.stdout and "nothing to do" in again.stdout
    assert "step" not in again.stdout
    assert running(clean_board, "b")["service"] == before["service"]


def test_a_bundle_whose_hashes_lie_is_refused_at_the_transfer(clean_board, bundles, tmp_path):
    before = running(clean_board, "b")
    lying = variant(bundles["second"], tmp_path / "lying")
    body = json.loads((lying / bundle.MANIFEST_NAME).read_text())
    body["files"]["p.tflite"]["sha256"] = body["files"]["p.tflite.json"]["sha256"]
    (lying / bundle.MANIFEST_NAME).write_text(json.dumps(body))
    assert_one_line_error(deploy(str(lying)), "step 1 (transfer)", "p.tflite on the board is not the file the bundle "
                          "lists", "slot b still runs")
    assert running(clean_board, "b")["service"] == before["service"] and products(clean_board) == 1


def test_a_model_that_fails_its_self_test_is_not_switched_to(clean_board, bundles, tmp_path):
    before = running(clean_board, "b")
    failing = variant(bundles["second"], tmp_path / "failing")
    vectors = msgpack.unpackb((failing / "p.tflite.selftest").read_bytes())
    vectors["output"] = bytes(((b + 7) % 256) for b in vectors["output"])  # not what the model computes
    (failing / "p.tflite.selftest").write_bytes(msgpack.packb(vectors))
    rehash(failing)
    assert_one_line_error(deploy(str(failing)), "step 3 (self-test) in slot a", "gives other outputs than the ground "
                          "recorded on 16 of its 16 reference tiles")
    assert running(clean_board, "b")["service"] == before["service"] and products(clean_board) == 1


def test_a_wheel_for_the_wrong_arch_fails_the_install(clean_board, bundles, tmp_path):
    before = running(clean_board, "b")
    wrong = variant(bundles["second"], tmp_path / "wrong")
    (arm,) = wrong.glob("numpy-*.whl")
    arm.unlink()
    version = arm.name.split("-")[1]
    (x86,) = runtime.download(runtime.Platform("x86_64", "3.11", "2.36"), None, [f"numpy=={version}"],
                              tmp_path / "x86_64")
    shutil.copyfile(x86, wrong / x86.name)
    rehash(wrong)
    assert_one_line_error(deploy(str(wrong)), "step 2 (install) into slot a", "numpy")
    assert running(clean_board, "b")["service"] == before["service"] and products(clean_board) == 1


def test_a_service_that_does_not_start_on_the_new_slot_sends_the_board_back(clean_board, bundles):
    line = assert_one_line_error(deploy(str(bundles["no-store"])), "step 4 (switch)", "slot a did not come up",
                                 "the board went back to slot b, where the service runs again")
    assert "exited with status" in line
    now = running(clean_board, "b")
    assert now["fallback"]["from"] == "a" and now["fallback"]["to"] == "b"
    assert products(clean_board) == 1


def test_a_transfer_cut_mid_way_resumes_where_it_stopped(clean_board, bundles):
    body = bundle.read(bundles["first"])
    incoming = clean_board.rootfs / "root" / PAYLOAD / "incoming" / body.id
    cut = subprocess.Popen([str(Path(sys.executable).with_name("orbitlite")), "hil", "deploy", "--board", BOARD,
                            str(bundles["first"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (incoming.is_dir() and len([f for f in incoming.iterdir() if not f.name.endswith(".part")]) >= 3):
        assert cut.poll() is None and time.monotonic() < deadline, cut.communicate()
        time.sleep(0.01)
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    arrived = len([f for f in incoming.iterdir() if not f.name.endswith(".part")])
    assert arrived < len(body.files)
    running(clean_board, "b")  # a cut transfer changed nothing that runs

    resumed = deploy(str(bundles["first"]))
    assert resumed.returncode == 0, resumed.stderr
    sent, kept = (int(w) for w in (resumed.stdout.split("step 1 (transfer): ")[1].split()[0],
                                   resumed.stdout.split(" files sent, ")[1].split()[0]))
    assert kept >= arrived and sent + kept == len(body.files) + 1  # and bundle.json
    assert "slot a active (was b)" in resumed.stdout
    running(clean_board, "a")
    assert products(clean_board) == 1


def test_a_rollback_returns_to_the_other_slot(clean_board):
    result = orbitlite("hil", "rollback", "--board", BOARD)
    assert result.returncode == 0, result.stderr
    assert "slot b active (was a)" in result.stdout
    running(clean_board, "b")
    assert products(clean_board) == 1
