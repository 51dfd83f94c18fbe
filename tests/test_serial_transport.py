"""The serial transport through the real `orbitlite onboard serve` over a pair of pseudo-terminals
(tests/linesim.py): files both ways, the payload's commands, the refusal of a shell command, and
`hil boards check` over the link."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hil.boards.drivers import open_transport
from hil.boards.profile import load_board
from hil.errors import TransportError
from tests.conftest import SPYNDEX_BANDS, ROOT, assert_one_line_error, orbitlite
from tests.linesim import LineSim

BAUD = 1_000_000


@pytest.fixture()
def payload(tmp_path):
    """`onboard serve` on a payload root with empty model slots (it runs with no models, the link up),
    answering on a line; a profile `lab` whose serial transport reaches it."""
    root = tmp_path / "payload"
    (root / "spool").mkdir(parents=True)
    key = tmp_path / "link.key"
    assert orbitlite("hil", "keygen", "--out", str(key)).returncode == 0
    with LineSim(baud=BAUD, seed=1) as line:
        config = {"spool": "spool", "bands": SPYNDEX_BANDS.split(","), "board": "rpi-4b",
                  "models": {"ladder": ["slots/active/m.tflite"]},
                  "store": {"path": "store.db", "capacity_bytes": 10_000_000}, "telemetry": "telemetry.jsonl",
                  "poll_seconds": 0.2, "link": {"port": line.payload_path, "key_file": str(key), "baud": BAUD}}
        (root / "serve.json").write_text(json.dumps(config))
        service = subprocess.Popen([str(Path(sys.executable).with_name("orbitlite")), "onboard", "serve",
                                    str(root / "serve.json")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        profile = (ROOT / "hil/boards/profiles/local.toml").read_text().replace('name = "local"', 'name = "lab"')
        profile = profile.replace('[[transports]]\nkind = "local"', f'''[[transports]]
kind = "serial"
port = "{line.ground_path}"
baud = {BAUD}
key_file = "link.key"
timeout = 2.0

[[transports]]
kind = "local"''')
        (tmp_path / "lab.toml").write_text(profile)
        try:
            yield {"root": root, "profile": tmp_path / "lab.toml"}
        finally:
            service.terminate()
            service.wait(timeout=30)


def test_serial_transport_puts_gets_and_calls(payload, tmp_path):
    board = load_board(payload["profile"])
    assert board.transport_kinds() == ["serial", "local"]
    link = open_transport(board)
    try:
        assert link.call("ping")["uptime_s"] >= 0
        data = os.urandom(20_000)
        (tmp_path / "up.bin").write_bytes(data)
        link.put(tmp_path / "up.bin", "files/up.bin")
        assert (payload["root"] / "files/up.bin").read_bytes() == data
        link.get("files/up.bin", tmp_path / "back/down.bin")
        assert (tmp_path / "back/down.bin").read_bytes() == data
        with pytest.raises(TransportError, match="runs no command on the board"):
            link.run(["uname", "-m"], timeout=10)
        with pytest.raises(TransportError, match="files/absent.bin: no such file on the payload"):
            link.get("files/absent.bin", tmp_path / "absent.bin")
        assert not (tmp_path / "absent.bin").exists()
        with pytest.raises(TransportError, match="active slot|upload area|not"):
            link.put(tmp_path / "up.bin", "../outside.bin")
        assert not (payload["root"].parent / "outside.bin").exists()
    finally:
        link.close()


def test_check_over_the_serial_link(payload):
    result = orbitlite("hil", "boards", "check", str(payload["profile"]))
    assert result.returncode == 0, result.stderr
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.stdout.splitlines())
    assert lines["reached"].startswith("through serial /dev/pts/")
    assert lines["payload"].startswith("answers in ") and lines["arch"].startswith("not told")
    assert lines["models"].startswith("none: ") and lines["active slot"] == "none"
    assert lines["disk free"].endswith(" GB")
    # the same board's local transport runs commands
    assert "arch         " in orbitlite("hil", "boards", "check", str(payload["profile"]), "--transport", "local").stdout


def test_a_wrong_link_key_is_one_line(payload, tmp_path):
    (tmp_path / "other.key").write_text(os.urandom(32).hex() + "\n")
    profile = payload["profile"]
    profile.write_text(profile.read_text().replace('key_file = "link.key"', 'key_file = "other.key"'))
    assert_one_line_error(orbitlite("hil", "boards", "check", str(payload["profile"])), "serial /dev/pts/",
                          "ping: refused (unauthenticated)")
