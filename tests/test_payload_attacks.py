"""A hostile ground against the real `orbitlite onboard serve` over pseudo-terminals (issue 10):
symbolic links out of the file area both ways, writes into the active slot, short and empty
bundles, a broken active slot at start, names no file can have, uploads into the spool's
folders, and args out of range. Each is refused in one line, and nothing stored is lost."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from hil.link.client import Client
from onboard._native import crc32c
from onboard.contracts import bundle
from onboard.errors import CommandRefused
from onboard.link.files import STAGING
from onboard.link.sealing import read_key
from tests.conftest import SPYNDEX_NPY, assert_one_line_error, orbitlite
from tests.linesim import LineSim
from tests.test_payload_link import _serve, payload  # noqa: F401 (a fixture)


class Served:
    """A running `onboard serve` on one end of a line simulator; the ground on the other."""

    def __init__(self, payload: dict, line: LineSim) -> None:
        self.payload, self.line, self.root = payload, line, payload["root"]
        self.process = _serve(payload, line.payload_path)
        self.out = self.err = ""

    def link(self, *args: str) -> subprocess.CompletedProcess:
        return orbitlite("hil", "link", "--port", self.line.ground_path, "--key-file", str(self.payload["key"]), *args)

    @contextlib.contextmanager
    def client(self):
        """The ground's client in this process, for what the CLI does in one go (a transfer's steps)."""
        port = self.line.open_ground()
        try:
            yield Client(port, read_key(self.payload["key"]))
        finally:
            port.close()

    def status(self) -> dict:
        result = self.link("status")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def telemetry(self) -> list[dict]:
        return [json.loads(line) for line in (self.root / "telemetry.jsonl").read_text().splitlines()]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.out, self.err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, self.err


@contextlib.contextmanager
def served(payload: dict):
    with LineSim(baud=115200) as line:
        s = Served(payload, line)
        try:
            yield s
        finally:
            if s.process.returncode is None:
                s.stop()


def wait_for(what: str, done, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.3)


def refused(call, *fragments: str) -> str:
    """`call()` refused by the payload in one line (never an `internal` fault), holding `fragments`."""
    with pytest.raises(CommandRefused) as exc:
        call()
    message = str(exc.value)
    assert exc.value.code in ("failed", "bad-args") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _scene(path: Path, rows: slice = slice(0, 64), cols: slice = slice(0, 64)) -> Path:
    np.save(path, np.load(SPYNDEX_NPY)[:, rows, cols])
    return path


def _staged(root: Path) -> list[str]:
    return sorted(os.listdir(root / STAGING)) if (root / STAGING).exists() else []


def test_no_symbolic_link_leads_the_link_out_of_the_file_area(payload, tmp_path):
    root = payload["root"]
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("not for the link\n")
    (root / "files").mkdir()
    os.symlink(secret, root / "files/pw")  # as files/pw -> /etc/passwd
    os.symlink(outside, root / "files/escape")
    os.symlink("../slots/active/p.tflite", root / "files/model")  # leads elsewhere under the root: fine
    planted = tmp_path / "planted.bin"
    planted.write_bytes(os.urandom(3000))
    model = (root / "slots/a" / payload["model"]).read_bytes()
    with served(payload) as s:
        assert_one_line_error(s.link("download", "file/files/pw", str(tmp_path / "pw")),
                              "stat: refused (failed)", "leads out of the payload's root")
        assert not (tmp_path / "pw").exists()
        for source in ("file/files/model", f"file/slots/active/{payload['model']}"):
            fetched = s.link("download", source, str(tmp_path / "m"))
            assert fetched.returncode == 0 and (tmp_path / "m").read_bytes() == model, fetched.stderr
            (tmp_path / "m").unlink()

        s.link("ping")  # the link's state now exists, beside serve.json in the root
        os.symlink("../link-state.json", root / "files/state")
        for source in ("file/link-state.json", "file/files/state"):
            assert_one_line_error(s.link("download", source, str(tmp_path / "state")),
                                  "stat: refused (failed)", "the link's key and state are never sent")
        assert not (tmp_path / "state").exists()

        assert_one_line_error(s.link("upload", str(planted), "files/escape/planted.bin"),
                              "put_begin: refused (failed)", "uploads go directly into files/")
        assert_one_line_error(s.link("run-scene", "files/pw"), "run_scene: refused (failed)",
                              "files/pw is a symbolic link or a folder")

        os.rename(root / "slots/b", tmp_path / "b")  # an area's own folder made a link out
        os.symlink(outside, root / "slots/b")
        assert_one_line_error(s.link("upload", str(planted), "slots/b/planted.bin"),
                              "put_begin: refused (failed)", "slots/b on the payload is a symbolic link")
        os.unlink(root / "slots/b")
        os.rename(tmp_path / "b", root / "slots/b")

        data = planted.read_bytes()  # a link planted between put_begin and put_end
        sha = hashlib.sha256(data).hexdigest()
        with s.client() as client:
            client.call("put_begin", dest="files/late.bin", size=len(data), sha256=sha)
            client.call("put_chunk", sha256=sha, offset=0, data=data, crc=crc32c(data))
            os.rename(root / "files", tmp_path / "files")
            os.symlink(outside, root / "files")
            refused(lambda: client.call("put_end", sha256=sha), "files on the payload is a symbolic link")
        os.unlink(root / "files")
        os.rename(tmp_path / "files", root / "files")
    assert sorted(os.listdir(outside)) == ["secret.txt"] and secret.read_text() == "not for the link\n"
    assert os.readlink(root / "files/pw") == str(secret) and not (root / "spool/pw").exists()
    assert (root / "slots/a" / payload["model"]).read_bytes() == model


def test_the_active_slot_is_never_written_and_a_slot_is_its_whole_bundle(payload, tmp_path):
    root, name = payload["root"], payload["model"]
    kept = {p.name: p.read_bytes() for p in (root / "slots/a").iterdir()}
    corrupt = tmp_path / name
    corrupt.write_bytes(b"not a model")
    with served(payload) as s:
        assert_one_line_error(s.link("upload", str(corrupt), f"slots/a/{name}"), "put_begin: refused (failed)",
                              "slot a is the active slot, never written over the link")
        assert_one_line_error(s.link("upload", str(corrupt), f"slots/active/{name}"), "put_begin: refused (failed)",
                              "uploads go directly into files/, slots/b/, spool/ (a file name there")

        data = corrupt.read_bytes()  # the slot an upload is going into is switched to: its end is refused
        sha = hashlib.sha256(data).hexdigest()
        with s.client() as client:
            client.call("put_begin", dest=f"slots/b/{name}", size=len(data), sha256=sha)
            client.call("put_chunk", sha256=sha, offset=0, data=data, crc=crc32c(data))
            assert client.call("switch_slot", slot="b")["active_slot"] == "b"
            refused(lambda: client.call("put_end", sha256=sha), "slot b is the active slot")
            refused(lambda: client.call("clear_slot", slot="b"), "slot b is the active slot", "nothing removed")
            assert client.call("switch_slot", slot="a")["active_slot"] == "a"

        listed = json.loads((root / "slots/b" / bundle.MANIFEST_NAME).read_text())
        empty = {**listed, "files": {}}
        short = {**listed, "files": {name: listed["files"][name]}}  # the model's manifest unlisted
        for body, fragment in ((empty, "files: Expected `object` of length >= 1"),
                               (short, f"does not list {name}.json, {name}.selftest, which the service needs")):
            (tmp_path / bundle.MANIFEST_NAME).write_text(json.dumps(body))
            assert s.link("upload", str(tmp_path / bundle.MANIFEST_NAME), "slots/b/bundle.json").returncode == 0
            assert_one_line_error(s.link("switch-slot", "b"), "switch_slot: refused (failed)", fragment)
        (tmp_path / bundle.MANIFEST_NAME).write_text(json.dumps(listed))
        assert s.link("upload", str(tmp_path / bundle.MANIFEST_NAME), "slots/b/bundle.json").returncode == 0
        assert s.link("upload", str(corrupt), "slots/b/extra.bin").returncode == 0  # shipped, not listed
        assert_one_line_error(s.link("switch-slot", "b"), "switch_slot: refused (failed)",
                              "slot b holds extra.bin, which its bundle does not list")
        assert s.status()["active_slot"] == "a"

        deployed = s.link("deploy", str(payload["source_model"]))  # empties slot b first
        assert deployed.returncode == 0 and "slot b active: p" in deployed.stdout, deployed.stderr
        assert sorted(os.listdir(root / "slots/b")) == sorted([name, f"{name}.json", f"{name}.selftest", bundle.MANIFEST_NAME])
    assert {p.name: p.read_bytes() for p in (root / "slots/a").iterdir()} == kept


def test_serve_with_a_broken_active_slot_falls_back_and_keeps_the_link(payload, tmp_path):
    root, name = payload["root"], payload["model"]
    (root / "slots/a" / name).write_bytes(b"not a model")  # as the upload the payload used to take
    _scene(root / "spool/scene1.npy")
    with served(payload) as s:
        status = s.status()
        assert status["active_slot"] == "b" and status["models"] == "p"
        assert "does not match its manifest" in status["models_fault"]
        assert "fell back to slot b (p), which checks and self-tests" in status["models_fault"]
        wait_for("scene1's product", lambda: "product/1 " in s.link("products").stdout)
    assert any(t["event"] == "models" and "fell back to slot b" in t["reason"] for t in s.telemetry())

    (root / "slots/b" / name).write_bytes(b"not a model either")  # both slots broken: no models
    with served(payload) as s:
        status = s.status()
        assert status["active_slot"] == "b" and status["models"] is None
        assert "no other slot to fall back to" in status["models_fault"]
        assert status["models_fault"].endswith("no models: the scenes wait in the spool")
        _scene(root / "spool/scene2.npy", slice(100, 164), slice(100, 164))
        polls = len([t for t in s.telemetry() if t["event"] == "poll"])
        wait_for("two polls", lambda: len([t for t in s.telemetry() if t["event"] == "poll"]) >= polls + 2)
        assert (root / "spool/scene2.npy").exists()  # waiting, not failed

        deployed = s.link("deploy", str(payload["source_model"]))  # the link mends it: into slot a
        assert deployed.returncode == 0 and "slot a active: p" in deployed.stdout, deployed.stderr
        wait_for("scene2's product", lambda: "product/2 " in s.link("products").stdout)
        assert s.status()["models_fault"] is None
    assert "scene2.npy: 4 of 4 tiles classified" in s.out
    assert (root / "spool/done/scene1.npy").exists() and (root / "spool/done/scene2.npy").exists()


def test_bad_names_and_args_are_refused_before_data_moves(payload, tmp_path):
    root = payload["root"]
    _scene(root / "spool/scene1.npy")
    src = tmp_path / "x.npy"
    src.write_bytes(os.urandom(5000))
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    with served(payload) as s:
        wait_for("scene1's product", lambda: "product/1 " in s.link("products").stdout)
        product = s.link("download", "product/1", str(tmp_path / "p1.msgpack"))
        assert product.returncode == 0, product.stderr

        assert_one_line_error(s.link("upload", str(src), "files/" + "n" * 300), "put_begin: refused (failed)",
                              "holds a name of more than 255 bytes")
        for dest in ("spool/done/x.npy", "spool/failed/x.npy"):
            assert_one_line_error(s.link("upload", str(src), dest), "put_begin: refused (failed)",
                                  "uploads go directly into", "no folder below")
        assert_one_line_error(s.link("upload", str(src), "spool/done"), "put_begin: refused (failed)",
                              "a folder of that name is there")
        assert_one_line_error(s.link("download", "product/99999999999999999999", str(tmp_path / "p")),
                              "stat: refused (failed)", "no product 99999999999999999999")
        assert _staged(root) == []  # put_begin refused them all: no byte was staged

        with s.client() as client:
            for dest, fragment in (("files/a\x00b.npy", "holds a control character"),
                                   ("files/" + "d/" * 600 + "x", "is a path of 1,207 bytes"),
                                   ("../x", "is not a path inside the payload's root")):
                refused(lambda: client.call("put_begin", dest=dest, size=5000, sha256=sha), fragment)
            assert _staged(root) == []
            for command, args, fragment in (
                    ("put_begin", {"dest": "files/x.npy", "size": -1, "sha256": sha}, "size: Expected `int` >= 0"),
                    ("put_begin", {"dest": "files/x.npy", "size": 5000, "sha256": "../" * 21 + "x"}, "sha256"),
                    ("put_begin", {"dest": "files/x.npy", "size": 2**63, "sha256": sha}, "size: Expected `int` <= 9223372036854775807"),
                    ("put_chunk", {"sha256": sha, "offset": 0, "data": 7, "crc": 0}, "data: Expected `bytes`"),
                    ("put_end", {"sha256": sha}, "no upload of"),
                    ("read", {"source": "product/1", "offset": 0, "length": 0}, "length: Expected `int` >= 1"),
                    ("read", {"source": "product/1", "offset": -1, "length": 10}, "offset: Expected `int` >= 0"),
                    ("read", {"source": 7, "offset": 0, "length": 10}, "source: Expected `str`"),
                    ("stat", {"source": "product/1e3"}, "no product 1e3"),
                    ("products", {"n": 0}, "n: Expected `int` >= 1"),
                    ("products", {"n": "20"}, "n: Expected `int`"),
                    ("ack_product", {"id": 2**64 - 1}, "id: Expected `int` <= 9223372036854775807"),
                    ("ack_product", {"id": "1"}, "id: Expected `int`"),
                    ("ack_product", {}, "id: missing"),
                    ("set_budgets", {"cpu_seconds": "abc"}, "cpu_seconds"),
                    ("set_budgets", {"reserve": 2}, "reserve"),
                    ("set_budgets", {"speed": 1}, "speed: unknown key"),
                    ("run_scene", {"path": 7}, "path: Expected `str`"),
                    ("switch_slot", {"slot": "c"}, "slot"),
                    ("clear_slot", {"slot": "active"}, "slot")):
                refused(lambda: client.call(command, **args), command, fragment)
            assert _staged(root) == []
        status = s.status()
        assert status["budget"]["cpu_seconds"] is None
        assert not (root / "budget.json").exists()
        again = s.link("download", "product/1", str(tmp_path / "again.msgpack"))
        assert again.returncode == 0 and (tmp_path / "again.msgpack").read_bytes() == (
            tmp_path / "p1.msgpack").read_bytes()
    assert not any((root / "spool" / folder / "x.npy").exists() for folder in ("done", "failed"))
