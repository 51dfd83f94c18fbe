"""The link's counter under a hostile tester who holds the key, through the real `orbitlite onboard
serve` and `orbitlite hil link` over the line simulator's pseudo-terminals: a command with a counter
at the top of its range (or 2^64 - 1, or beyond the window) is refused and the link goes on, also
across restarts; a spent range is refused by the ground in one line and mended by a re-key, after
which the old key (and a replay of the re-key) is refused, also across restarts."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from onboard.link.framing import Frame, FrameDecoder, FrameType
from onboard.link.sealing import COUNTER_TOP, COUNTER_WINDOW, read_key, seal, unseal
from tests.conftest import assert_one_line_error, orbitlite
from tests.linesim import LineSim
from tests.test_payload_link import _serve, payload  # noqa: F401  (the fixture)


def _stop(service) -> str:
    service.send_signal(signal.SIGTERM)
    out, err = service.communicate(timeout=60)
    assert service.returncode == 0, err
    return out


def _response(line: LineSim, sent: bytes) -> Frame:
    """The payload's response to frame bytes sent on the ground's end (a tester's transmitter)."""
    port = line.open_ground()
    try:
        port.write(sent)
        decoder, frames = FrameDecoder(), []
        deadline = time.monotonic() + 30
        while not any(f.type is FrameType.RESPONSE for f in frames):
            assert time.monotonic() < deadline, "no answer"
            frames += decoder.feed(port.read(max(1, port.in_waiting)))
    finally:
        port.close()
    (response,) = [f for f in frames if f.type is FrameType.RESPONSE]
    return response


def _answer(line: LineSim, key: bytes, counter: int, body: dict) -> dict:
    """The body of the payload's answer to a command sealed by hand with `counter`: authenticated,
    under `key`, with the command's counter."""
    opened = unseal(key, _response(line, Frame(FrameType.COMMAND, 4242, seal(key, FrameType.COMMAND, counter,
                                                                                body)).encode()))
    assert opened is not None and opened.body is not None and opened.counter == counter
    return opened.body


def test_a_counter_at_the_top_of_its_range_does_not_lock_the_link(payload):
    key = read_key(payload["key"])
    state = payload["root"] / "link-state.json"
    with LineSim(baud=115200) as line:
        def link(*args: str):
            return orbitlite("hil", "link", "--port", line.ground_path, "--key-file", str(payload["key"]), *args)

        for round_ in (1, 2):  # the second after a restart of the payload
            service = _serve(payload, line.payload_path)
            try:
                status = link("status")
                assert status.returncode == 0, status.stderr
                last = json.loads(status.stdout)["link"]["last_counter"]
                for counter, code in ((2**64 - 1, "counter-top"), (COUNTER_TOP, "counter-top"),
                                      (last + COUNTER_WINDOW + 1, "counter-window")):
                    answer = _answer(line, key, counter, {"cmd": "ping", "args": {}})
                    assert answer["ok"] is False and answer["code"] == code and answer["last_counter"] == last, answer
                pinged = link("ping")
                assert pinged.returncode == 0 and "pong" in pinged.stdout, pinged.stderr
                assert json.loads(link("status").stdout)["link"]["refused_counter"] == 3 * round_
            finally:
                _stop(service)
            saved = json.loads(state.read_text())
            assert last < saved["last_counter"] < last + COUNTER_WINDOW and saved["refused_counter"] == 3 * round_


def test_a_spent_range_ends_in_one_line_and_a_rekey_mends_it(payload, tmp_path):
    state = payload["root"] / "link-state.json"
    state.write_text(json.dumps({"last_counter": COUNTER_TOP - 1}))  # a tester's command at the last counter
    new_key = tmp_path / "new.key"
    with LineSim(baud=115200) as line:
        def link(*args: str, key: Path = payload["key"]):
            return orbitlite("hil", "link", "--port", line.ground_path, "--key-file", str(key), *args)

        service = _serve(payload, line.payload_path)
        try:
            assert_one_line_error(link("ping"), "ping: the link's counter has reached the top of its range",
                                  "re-key the link")
            tap = line.uplink.tap()
            rekeyed = link("rekey", "--out", str(new_key))
            assert rekeyed.returncode == 0 and f"the new key is in {new_key}" in rekeyed.stdout, rekeyed.stderr
            assert not new_key.with_name("new.key.pending").exists()
            assert new_key.stat().st_mode & 0o777 == 0o600
            sent = [f for f in FrameDecoder().feed(bytes(tap)) if f.type is FrameType.COMMAND]
            (rekey,) = [f for f in sent if unseal(read_key(payload["key"]), f).counter == COUNTER_TOP]  # kept for it
            assert link("ping", key=new_key).returncode == 0
            assert_one_line_error(link("ping"), "ping: refused (unauthenticated)")
            assert_one_line_error(link("rekey", "--out", str(new_key)), f"{new_key} exists")
        finally:
            _stop(service)
        saved = json.loads(state.read_text())
        assert saved["key_epoch"] == 1 and saved["key"] == read_key(new_key).hex()

        service = _serve(payload, line.payload_path)  # the re-keyed key outlives a restart
        try:
            assert link("ping", key=new_key).returncode == 0
            assert_one_line_error(link("ping"), "ping: refused (unauthenticated)")
            replayed = _response(line, rekey.encode())  # the re-key replayed by an eavesdropper
            assert unseal(bytes(32), replayed).body["code"] == "unauthenticated"
            status = link("status", key=new_key)
            assert status.returncode == 0, status.stderr
            counters = json.loads(status.stdout)["link"]
            assert counters["key_epoch"] == 1 and counters["refused_unauthenticated"] == 3
        finally:
            _stop(service)


def test_a_link_state_out_of_range_stops_serve_in_one_line(payload):
    state = payload["root"] / "link-state.json"
    with LineSim(baud=115200) as line:
        for bad in ({"last_counter": 2**64 - 1}, {"key_epoch": 2}):
            state.write_text(json.dumps(bad))
            service = _serve(payload, line.payload_path)
            out, err = service.communicate(timeout=60)
            assert_one_line_error(subprocess.CompletedProcess(service.args, service.returncode, out, err),
                                  f"link state {state}", "cannot be trusted")
            assert json.loads(state.read_text()) == bad  # left as it was, for the operator
