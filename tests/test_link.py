"""The serial link (DESIGN.md contract 3) over real pseudo-terminals at 115200 baud, through the
line simulator (tests/linesim.py): framing, authenticated commands and their replay protection,
seeded line faults, and resumable file transfer both ways. CRC-32C and COBS are checked against
independent implementations (the `crc32c` and `cobs` packages)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import resource
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import crc32c as crc32c_pkg
import pytest
from cobs import cobs as cobs_pkg

from hil.link.client import Client
from hil.link.transfer import download, upload
from onboard._native import cobs_decode, cobs_encode, crc32c
from onboard.errors import CommandRefused, LinkError, TransferError
from onboard.link.endpoint import Endpoint
from onboard.link.files import STAGING, FileService, PartialFile
from onboard.link.framing import CRC, HEADER, MAX_ENCODED, MAX_PAYLOAD, Frame, FrameDecoder, FrameType
from onboard.link.port import open_port
from onboard.link.sealing import COUNTER_TOP, COUNTER_WINDOW, rekeyed, seal, unseal
from tests.linesim import Faults, LineSim

KEY = bytes(range(32))
BAUD = 115200


# -- the rig: a line, and an Endpoint serving on its payload end ----------------------------------


class PowerLoss(BaseException):
    """Raised by a handler: the payload loses power there, before it answers."""


class Payload:
    """An Endpoint serving in its own thread on the payload's end of the line; `restart()` is a
    reboot: a new port and a new Endpoint on the same state file (the cache does not survive)."""

    def __init__(self, line: LineSim, handlers: dict, state: Path, key: bytes = KEY) -> None:
        self.line, self.handlers, self.state, self.key = line, handlers, state, key
        self._start()

    def _start(self) -> None:
        self.port = self.line.open_payload()
        self.endpoint = Endpoint(self.port, self.key, self.state, self.handlers)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.endpoint.serve(self._stop)
        except PowerLoss:
            pass  # the payload is dead until restart()

    @property
    def counters(self):
        return self.endpoint.counters

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.port.close()

    def restart(self) -> None:
        self.stop()
        self._start()


@pytest.fixture
def rig(tmp_path):
    """rig(handlers, **line options) -> (line, payload); torn down in order after the test."""
    with contextlib.ExitStack() as stack:
        def make(handlers: dict, seed: int = 0, faults: Faults | None = None, state: Path | None = None):
            line = stack.enter_context(LineSim(BAUD, seed=seed, faults=faults))
            payload = Payload(line, handlers, state or tmp_path / "link-state.json")
            stack.callback(payload.stop)
            return line, payload
        yield make


def _frames_on(port, count: int, timeout: float = 5.0) -> list[Frame]:
    """The next `count` frames read from `port` (nobody else reading it), or fails."""
    decoder, frames = FrameDecoder(), []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        assert time.monotonic() < deadline, f"{len(frames)} of {count} frames came"
        frames += decoder.feed(port.read(max(1, port.in_waiting)))
    return frames


def _commands_in(tapped: bytes) -> list[Frame]:
    return [f for f in FrameDecoder().feed(bytes(tapped)) if f.type is FrameType.COMMAND]


# -- CRC-32C and COBS against independent implementations ----------------------------------------


EDGE_LENGTHS = [0, 1, 2, 253, 254, 255, 256, 507, 508, 509, 1000, 4096, 65545]


def test_crc32c_matches_the_crc32c_package():
    rng = random.Random(1)
    assert crc32c(b"123456789") == crc32c_pkg.crc32c(b"123456789") == 0xE3069283  # the standard check value
    for n in EDGE_LENGTHS + [rng.randrange(1, 3000) for _ in range(50)]:
        data = rng.randbytes(n)
        assert crc32c(data) == crc32c_pkg.crc32c(data), n
        cut = rng.randrange(n + 1)
        start = rng.getrandbits(32)
        assert crc32c(data[cut:], crc32c(data[:cut], start)) == crc32c_pkg.crc32c(data, start), n


def test_cobs_matches_the_cobs_package():
    rng = random.Random(2)
    inputs = [fill * n for n in EDGE_LENGTHS for fill in (b"\x00", b"\x01", b"\xff")]
    inputs += [rng.randbytes(rng.randrange(0, 2000)) for _ in range(200)]
    inputs += [bytes(rng.choice((0, 0, rng.randrange(256))) for _ in range(rng.randrange(600))) for _ in range(50)]
    for data in inputs:
        ours = cobs_encode(data)
        assert ours == cobs_pkg.encode(data)
        assert b"\x00" not in ours and cobs_decode(ours) == data == cobs_pkg.decode(ours)
    # what is no COBS encoding, both refuse; what is one, both decode alike
    for _ in range(3000):
        junk = bytes(rng.choice((1, 2, 3, 5, 254, 255, rng.randrange(256))) for _ in range(rng.randrange(1, 12)))
        try:
            theirs = cobs_pkg.decode(junk)
        except cobs_pkg.DecodeError:
            theirs = None
        try:
            mine = cobs_decode(junk)
        except ValueError:
            mine = None
        assert mine == theirs, junk.hex()


# -- framing ---------------------------------------------------------------------------------------


def _raw_frame(version: int, kind: int, seq: int, payload: bytes, crc_xor: int = 0, length: int | None = None) -> bytes:
    body = HEADER.pack(version, kind, seq, len(payload) if length is None else length) + payload
    return cobs_encode(body + CRC.pack(crc32c(body) ^ crc_xor)) + b"\x00"


def test_frame_round_trip_and_limits():
    frames = [Frame(FrameType.COMMAND, 1, b""), Frame(FrameType.ACK, 0xFFFF, b"\x00" * 300),
              Frame(FrameType.RESPONSE, 7, os.urandom(MAX_PAYLOAD))]
    wire = b"".join(f.encode() for f in frames)
    assert wire.count(b"\x00") == 6 and wire.startswith(b"\x00") and wire.endswith(b"\x00")
    assert FrameDecoder().feed(wire) == frames
    assert Frame(FrameType.ACK, 0x1_0005, b"").encode() == Frame(FrameType.ACK, 5, b"").encode()
    with pytest.raises(ValueError, match="at most"):
        Frame(FrameType.COMMAND, 1, bytes(MAX_PAYLOAD + 1)).encode()


def test_decoder_resynchronises_after_garbage_and_counts_it():
    rng = random.Random(3)
    good = [Frame(FrameType.RESPONSE, i, rng.randbytes(rng.randrange(0, 400))) for i in range(6)]
    half = good[0].encode()[:40]
    stream = b"".join([
        rng.randbytes(500) + b"\x00",  # line noise, ended by a delimiter it happens to hold, or ours
        good[0].encode(),
        half, b"\x00",  # a frame cut short
        good[1].encode(),
        _raw_frame(1, FrameType.ACK, 9, b"payload", crc_xor=1),  # a flipped bit: bad CRC
        _raw_frame(1, FrameType.ACK, 9, b"payload", crc_xor=0x80000000),
        good[2].encode(),
        _raw_frame(2, FrameType.ACK, 9, b"x"), _raw_frame(1, 9, 9, b"x"),  # a version, a type we do not know
        _raw_frame(1, FrameType.ACK, 9, b"abc", length=4),  # a length that is not the payload's
        b"\x01\x01\x00", b"\x05\x01\x00",  # too short for a frame; a code that runs past the end
        good[3].encode(),
        b"\x07" * (MAX_ENCODED + 100), good[4].encode(),  # an overlong run: dropped; the frame's leading
        # delimiter ends it, so the frame after it survives
        b"\x00\x00\x00", good[5].encode(),
    ])
    expected = good
    whole = FrameDecoder()
    assert whole.feed(stream) == expected
    piecewise = FrameDecoder()  # the same stream in random pieces, as a serial port hands it over
    got, at = [], 0
    while at < len(stream):
        step = rng.choice((1, 7, 100, 5000))
        got += piecewise.feed(stream[at:at + step])
        at += step
    assert got == expected
    assert whole.stats == piecewise.stats
    s = whole.stats
    assert (s.frames, s.unknown, s.overlong) == (6, 2, 1)
    assert s.bad_crc >= 2  # the flipped bits (and perhaps the cut frame, and runs of noise)
    assert s.malformed >= 3  # the bad length, the short run, the overrun code (and perhaps more)


def test_frames_survive_garbage_over_the_pty(rig):
    line, payload = rig({})
    payload.stop()  # this test reads the payload's tty itself
    ground, far = line.open_ground(), line.open_payload()
    rng = random.Random(4)
    frames = [Frame(FrameType.COMMAND, i, rng.randbytes(200)) for i in range(5)]
    ground.write(rng.randbytes(300) + b"\x00" + frames[0].encode() + frames[1].encode()[:50] + b"\x00"
                 + frames[1].encode() + _raw_frame(1, 1, 1, b"zz", crc_xor=4) + rng.randbytes(64) + b"\x00"
                 + b"".join(f.encode() for f in frames[2:]))
    decoder, got = FrameDecoder(), []
    deadline = time.monotonic() + 5
    while len(got) < 5 and time.monotonic() < deadline:
        got += decoder.feed(far.read(max(1, far.in_waiting)))
    assert got == frames
    assert decoder.stats.bad_crc >= 1 and decoder.stats.bad_crc + decoder.stats.malformed >= 3
    assert (line.uplink.stats.corrupted, line.uplink.stats.dropped) == (0, 0)


# -- commands --------------------------------------------------------------------------------------


def _counting(calls: list):
    def bump(args):
        calls.append(args["n"])
        return {"n": args["n"], "calls": len(calls)}
    return bump


def test_ping_round_trip(rig):
    line, payload = rig({"ping": lambda args: {"pong": args["x"], "t": 1.5}})
    client = Client(line.open_ground(), KEY)
    started = time.monotonic()
    for x in (0, -1, 2**40, "text", b"\x00\xff" * 100, [1, {"a": None}]):
        assert client.call("ping", x=x) == {"pong": x, "t": 1.5}
    assert time.monotonic() - started < 3
    assert payload.counters.commands == 6 and client.stats.commands == 6
    with pytest.raises(CommandRefused) as refused:
        client.call("nothing")
    assert refused.value.code == "unknown-command" and "ping" in str(refused.value)
    with pytest.raises(CommandRefused) as refused:
        client.call("ping", y=1)
    assert refused.value.code == "bad-args"
    assert payload.counters.refused_unauthenticated == payload.counters.refused_replay == 0


def test_a_command_under_the_wrong_key_is_refused_and_counted(rig):
    calls = []
    line, payload = rig({"bump": _counting(calls)})
    ground = line.open_ground()
    with pytest.raises(CommandRefused) as refused:
        Client(ground, bytes(32 * [7])).call("bump", n=1)
    assert refused.value.code == "unauthenticated"
    assert calls == [] and payload.counters.refused_unauthenticated == 1 and payload.counters.commands == 0
    assert Client(ground, KEY).call("bump", n=2)["n"] == 2  # the right key still gets through
    assert json.loads(payload.state.read_text())["refused_unauthenticated"] == 1


def test_a_replayed_command_is_refused_and_not_run_again(rig):
    calls = []
    line, payload = rig({"bump": _counting(calls)})
    client = Client(line.open_ground(), KEY, timeout=2.0)
    tap = line.uplink.tap()
    client.call("bump", n=1)
    (captured,) = _commands_in(tap)
    client.call("bump", n=2)  # a newer command: the captured one is no longer the last
    assert calls == [1, 2]

    line.uplink.inject(captured.encode())  # an eavesdropper's recording, sent again
    (answer,) = _frames_on(client.port, 1)
    opened = unseal(KEY, answer)
    assert answer.type is FrameType.RESPONSE and opened.body["code"] == "replay"
    assert opened.body["last_counter"] == payload.counters.last_counter
    assert calls == [1, 2] and payload.counters.refused_replay == 1


def test_an_exact_retransmission_is_answered_from_the_cache(rig):
    calls = []
    line, payload = rig({"bump": _counting(calls)})
    client = Client(line.open_ground(), KEY, timeout=2.0)
    tap = line.uplink.tap()
    result = client.call("bump", n=5)
    (command,) = _commands_in(tap)
    before = payload.counters.retransmissions

    line.uplink.inject(command.encode())  # the ground's retransmission, its first answer lost
    (answer,) = _frames_on(client.port, 1)
    opened = unseal(KEY, answer)
    assert answer.seq == command.seq and opened.body == {"ok": True, "result": result}
    assert calls == [5] and payload.counters.retransmissions == before + 1 and payload.counters.refused_replay == 0


def test_the_replay_counter_survives_a_restart(rig):
    calls = []
    line, payload = rig({"bump": _counting(calls)})
    client = Client(line.open_ground(), KEY, timeout=2.0)
    tap = line.uplink.tap()
    client.call("bump", n=1)
    (last,) = _commands_in(tap)
    accepted = payload.counters.last_counter

    payload.restart()  # a reboot: the counter comes back from disk, the cache does not
    assert payload.counters.last_counter == accepted and payload.counters.commands == 1
    line.uplink.inject(last.encode())
    (answer,) = _frames_on(client.port, 1)
    assert unseal(KEY, answer).body["code"] == "replay"
    assert calls == [1] and payload.counters.refused_replay == 1
    assert client.call("bump", n=2)["n"] == 2 and payload.counters.last_counter > accepted


def test_a_command_cut_short_by_a_reboot_is_not_run_twice(rig):
    """The payload took a command and rebooted before it answered: the ground's retransmission is
    refused as a replay of itself, and the ground must not send it again under a new counter
    (which would run it twice)."""
    calls, ran = [], threading.Event()

    def bump(args):
        calls.append(args["n"])
        ran.set()
        raise PowerLoss

    line, payload = rig({"bump": bump})
    client = Client(line.open_ground(), KEY, timeout=0.2, retries=50, run_timeout=20)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.call, "bump", n=1)
        assert ran.wait(10)
        payload.restart()
        with pytest.raises(LinkError, match="restarted"):
            pending.result(timeout=30)
    assert calls == [1] and payload.counters.refused_replay >= 1


def test_a_long_command_has_the_time_its_call_gives_and_is_asked_again_seldom(rig, monkeypatch):
    """A command that runs past the client's run_timeout fails; given its own, it is answered,
    and past LONG_RUNNING it is retransmitted only every LONG_RUNNING seconds."""
    monkeypatch.setattr("hil.link.client.LONG_RUNNING", 0.5)
    release = threading.Event()

    def slow(args):
        release.wait(30)
        return {"n": args["n"]}

    line, payload = rig({"slow": slow})
    client = Client(line.open_ground(), KEY, timeout=0.05, run_timeout=0.3)
    with pytest.raises(LinkError, match="acknowledged, but no answer from the payload within 0.3 s"):
        client.call("slow", n=1)
    release.set()
    assert client.call("slow", n=2) == {"n": 2}  # the payload is free again
    release.clear()
    before = client.stats.retransmissions
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        pending = pool.submit(client.call, "slow", n=3, run_timeout=60)
        time.sleep(3)  # ten times the client's own run_timeout
        assert not pending.done()
        release.set()
        assert pending.result(timeout=30) == {"n": 3}
        elapsed = time.monotonic() - started
    # at the client's pace (0.05 s and the wire time) for the first 0.5 s, then every 0.5 s
    assert client.stats.retransmissions - before <= 0.5 / 0.05 + elapsed / 0.5 + 2


def test_a_client_steps_past_a_payload_counter_ahead_of_its_clock(rig, tmp_path):
    ahead = time.time_ns() // 1000 + 3_600_000_000  # the payload last heard a counter an hour ahead
    state = tmp_path / "ahead.json"
    state.write_text(json.dumps({"last_counter": ahead}))
    calls = []
    line, payload = rig({"bump": _counting(calls)}, state=state)
    client = Client(line.open_ground(), KEY, timeout=2.0)
    assert client.call("bump", n=1)["n"] == 1
    assert payload.counters.refused_replay == 1 and payload.counters.last_counter == ahead + 1
    assert client.call("bump", n=2)["n"] == 2 and payload.counters.refused_replay == 1  # in step from now on
    assert calls == [1, 2]


def _send_sealed(port, counter: int, body: dict, key: bytes = KEY, seq: int = 999) -> dict:
    """A command sealed by hand (a tester holding the key) and the payload's answer: its body,
    checked to be authentic under `key` and to carry the command's counter. `port` is the ground's."""
    port.write(Frame(FrameType.COMMAND, seq, seal(key, FrameType.COMMAND, counter, body)).encode())
    decoder, frames = FrameDecoder(), []
    deadline = time.monotonic() + 5
    while not any(f.type is FrameType.RESPONSE for f in frames):  # after an ACK, if it was taken
        assert time.monotonic() < deadline, f"no response: {frames}"
        frames += decoder.feed(port.read(max(1, port.in_waiting)))
    (answer,) = [f for f in frames if f.type is FrameType.RESPONSE]
    opened = unseal(key, answer)
    assert opened.body is not None and opened.counter == counter
    return opened.body


def test_a_counter_above_the_top_or_beyond_the_window_is_refused_and_changes_nothing(rig):
    calls = []
    line, payload = rig({"bump": _counting(calls)})
    client = Client(line.open_ground(), KEY, timeout=2.0)
    client.call("bump", n=1)
    last = payload.counters.last_counter
    for counter, code in ((2**64 - 1, "counter-top"), (COUNTER_TOP, "counter-top"), (COUNTER_TOP - 1, "counter-window"),
                          (last + COUNTER_WINDOW + 1, "counter-window")):
        answer = _send_sealed(client.port, counter, {"cmd": "bump", "args": {"n": 9}})
        assert answer["ok"] is False and answer["code"] == code and answer["last_counter"] == last, answer
    assert calls == [1] and payload.counters.refused_counter == 4 and payload.counters.last_counter == last
    assert client.call("bump", n=2)["n"] == 2  # the link goes on

    payload.restart()  # nothing of it was saved: the counter on disk is the last good one
    assert payload.counters.refused_counter == 4 and payload.counters.last_counter < last + COUNTER_WINDOW
    assert client.call("bump", n=3)["n"] == 3
    edge = payload.counters.last_counter + COUNTER_WINDOW  # the furthest jump the window allows is taken
    assert _send_sealed(client.port, edge, {"cmd": "bump", "args": {"n": 4}}) == {"ok": True, "result": {"n": 4, "calls": 4}}
    assert client.call("bump", n=5)["n"] == 5 and payload.counters.last_counter == edge + 1  # stepped past it
    assert calls == [1, 2, 3, 4, 5]


def test_a_client_behind_the_window_steps_up_to_its_clock(rig, tmp_path):
    """The payload heard nothing for two windows of the ground's clock: the ground's counter is
    refused as beyond the window, and the ground steps to the furthest it takes, a window a call."""
    silent_since = time.time_ns() // 1000 - 2 * COUNTER_WINDOW
    state = tmp_path / "silent.json"
    state.write_text(json.dumps({"last_counter": silent_since}))
    calls = []
    line, payload = rig({"bump": _counting(calls)}, state=state)
    ground = line.open_ground()
    client = Client(ground, KEY, timeout=2.0)
    assert client.call("bump", n=1)["n"] == 1
    assert payload.counters.refused_counter == 1 and payload.counters.last_counter == silent_since + COUNTER_WINDOW
    assert client.call("bump", n=2)["n"] == 2 and payload.counters.last_counter == silent_since + COUNTER_WINDOW + 1
    assert Client(ground, KEY, timeout=2.0).call("bump", n=3)["n"] == 3  # the next session: one more window
    assert payload.counters.refused_counter == 2
    assert Client(ground, KEY, timeout=2.0).call("bump", n=4)["n"] == 4  # and then the clock is in reach
    assert payload.counters.refused_counter == 2 and calls == [1, 2, 3, 4]


def test_a_spent_counter_range_is_refused_by_the_client_and_a_rekey_starts_it_again(rig, tmp_path):
    state = tmp_path / "spent.json"
    state.write_text(json.dumps({"last_counter": COUNTER_TOP - 1}))
    calls = []
    line, payload = rig({"bump": _counting(calls), "ping": lambda args: {}}, state=state)
    ground = line.open_ground()
    client = Client(ground, KEY, timeout=2.0)
    with pytest.raises(LinkError, match=r"bump: the link's counter has reached the top of its range .*re-key"):
        client.call("bump", n=1)  # never an OverflowError, nor a counter at the top sent
    assert calls == [] and payload.counters.refused_replay == 1 and payload.counters.refused_counter == 0

    tap = line.uplink.tap()
    nonce = bytes(range(16))
    client.rekey(nonce)
    (rekey,) = _commands_in(tap)
    assert unseal(KEY, rekey).counter == COUNTER_TOP  # the top is kept for a re-key
    new = rekeyed(KEY, nonce)
    assert client.key == new and payload.counters.key_epoch == 1 and payload.counters.last_counter == 0
    assert client.call("bump", n=2)["n"] == 2
    with pytest.raises(CommandRefused) as refused:
        Client(ground, KEY, timeout=2.0).call("bump", n=3)
    assert refused.value.code == "unauthenticated"
    saved = json.loads(state.read_text())  # one file: the new key with its epoch and counter
    assert saved["key"] == new.hex() and saved["key_epoch"] == 1 and 0 < saved["last_counter"] < COUNTER_TOP
    assert state.stat().st_mode & 0o777 == 0o600
    assert "key" not in payload.endpoint.telemetry()

    payload.restart()  # the re-keyed key comes back from the state, not from the key given at start
    assert Client(ground, new, timeout=2.0).call("bump", n=4)["n"] == 4
    with pytest.raises(CommandRefused) as refused:
        Client(ground, KEY, timeout=2.0).call("bump", n=5)
    assert refused.value.code == "unauthenticated"
    line.uplink.inject(rekey.encode())  # the re-key replayed: its MAC no longer verifies
    (answer,) = _frames_on(ground, 1)
    assert unseal(bytes(32), answer).body["code"] == "unauthenticated"
    assert payload.counters.key_epoch == 1 and calls == [2, 4]


def test_a_rekey_whose_answer_is_lost_is_confirmed_under_the_new_key(rig):
    """The payload took a re-key and restarted before the ground heard its answer: the ground's
    retransmission no longer verifies, and a ping under the new key confirms it."""
    line, payload = rig({"ping": lambda args: {}})
    ground = line.open_ground()
    nonce = b"n" * 16
    answer = _send_sealed(ground, time.time_ns() // 1000, {"cmd": "rekey", "args": {"nonce": nonce}})
    assert answer == {"ok": True, "result": {"key_epoch": 1}}  # the answer the ground never heard
    assert _send_sealed(ground, 5, {"cmd": "rekey", "args": {"nonce": b"short"}}, key=rekeyed(KEY, nonce)) == {
        "ok": False, "code": "bad-args", "error": "rekey: args must be {nonce: 16 bytes}", "last_counter": 0}
    payload.restart()
    client = Client(ground, KEY, timeout=0.5, retries=2)
    client.rekey(nonce)
    assert client.key == rekeyed(KEY, nonce) and client.call("ping") == {}
    assert payload.counters.key_epoch == 1 and payload.counters.refused_unauthenticated == 1


def test_a_rekey_is_answered_from_the_cache_when_its_answer_is_lost(rig):
    line, payload = rig({"ping": lambda args: {}})
    client = Client(line.open_ground(), KEY, timeout=2.0)
    tap = line.uplink.tap()
    client.rekey(b"m" * 16)
    (rekey,) = _commands_in(tap)
    line.uplink.inject(rekey.encode())  # the ground's retransmission, under the key now replaced
    (answer,) = _frames_on(client.port, 1)
    assert unseal(KEY, answer).body == {"ok": True, "result": {"key_epoch": 1}}
    assert payload.counters.retransmissions == 1 and payload.counters.key_epoch == 1
    assert client.call("ping") == {}


def test_a_rekey_the_payload_never_heard_is_found_lost_and_the_old_key_stands(rig):
    """The re-key is lost on the uplink and a forged "unauthenticated" answer comes back: pings tell
    the ground the payload still answers the old key, so the re-key did not happen."""
    line, payload = rig({"ping": lambda args: {}})
    client = Client(line.open_ground(), KEY, timeout=2.0)
    line.uplink.faults = Faults(drop=1.0)

    def forge():
        while line.uplink.stats.dropped == 0:
            time.sleep(0.01)
        line.uplink.faults = Faults()
        forged = seal(bytes(32), FrameType.RESPONSE, 0, {"ok": False, "code": "unauthenticated", "error": "forged"})
        line.downlink.inject(Frame(FrameType.RESPONSE, 1, forged).encode())

    forger = threading.Thread(target=forge)
    forger.start()
    with pytest.raises(CommandRefused) as refused:
        client.rekey(b"x" * 16)
    forger.join()
    assert refused.value.code == "lost" and "still answers the old key" in str(refused.value)
    assert client.key == KEY and client.call("ping") == {} and payload.counters.key_epoch == 0


def test_a_rekey_under_a_key_the_payload_does_not_hold_changes_nothing(rig):
    line, payload = rig({"ping": lambda args: {}})
    client = Client(line.open_ground(), bytes(32 * [7]), timeout=2.0)
    with pytest.raises(CommandRefused) as refused:
        client.rekey(b"y" * 16)
    assert refused.value.code == "unauthenticated" and "neither the old key nor the new" in str(refused.value)
    assert payload.counters.key_epoch == 0 and payload.counters.refused_unauthenticated == 3
    assert Client(client.port, KEY, timeout=2.0).call("ping") == {}


@pytest.mark.parametrize("state", [{"last_counter": 2**64 - 1}, {"last_counter": COUNTER_TOP}, {"key_epoch": 1},
                                   {"key": "00" * 32}, {"key_epoch": 1, "key": "zz" * 32}])
def test_a_state_file_out_of_range_is_refused_in_one_line(tmp_path, state):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    port = open_port("loop://", BAUD)
    with contextlib.closing(port), pytest.raises(LinkError) as refused:
        Endpoint(port, KEY, path, {})
    message = str(refused.value)
    assert "\n" not in message and f"link state {path}" in message and "cannot be trusted" in message


# -- line faults -----------------------------------------------------------------------------------

# per-byte fault probabilities; "all" is each of the four at once
FAULT_CASES = [(kind, rate) for rate in (1e-3, 1e-2) for kind in ("corrupt", "drop", "duplicate", "reorder", "all")]


@pytest.mark.parametrize("kind,rate", FAULT_CASES, ids=[f"{k}-{r:g}" for k, r in FAULT_CASES])
def test_commands_complete_right_or_fail_under_line_faults(rig, kind, rate, record_property):
    ran: dict[int, int] = {}

    def echo(args):
        ran[args["id"]] = ran.get(args["id"], 0) + 1
        return {"id": args["id"], "data": args["data"]}

    faults = Faults(**{k: rate for k in ("corrupt", "drop", "duplicate", "reorder")}) if kind == "all" \
        else Faults(**{kind: rate})
    line, payload = rig({"echo": echo}, seed=crc32c(f"{kind}{rate}".encode()), faults=faults)
    # 20 retries: at 1e-3 of each fault a ~180-byte exchange fails about half its tries, so 21 tries
    # all failing (and the test with them) takes odds of about 1 in 10^6 per command
    client = Client(line.open_ground(), KEY, timeout=0.1, retries=20, run_timeout=2.0)
    rng = random.Random(5)
    n = 20 if rate < 1e-2 else (8 if kind != "all" else 4)
    done, failed = [], []
    for i in range(n):
        data = rng.randbytes(32)
        try:
            assert client.call("echo", id=i, data=data) == {"id": i, "data": data}  # never a wrong result
            done.append(i)
        except LinkError:
            failed.append(i)
    assert all(count == 1 for count in ran.values())  # nothing ran twice
    assert set(done) <= set(ran)
    s = line.uplink.stats, line.downlink.stats
    did = {f: getattr(s[0], f) + getattr(s[1], f) for f in ("carried", "corrupted", "dropped", "duplicated", "reordered")}
    if kind != "all":
        assert did[{"corrupt": "corrupted", "drop": "dropped", "duplicate": "duplicated", "reorder": "reordered"}[kind]] > 0
    record_property("completed", f"{len(done)}/{n}")
    print(f"\n{kind} at {rate:g}/byte: {len(done)}/{n} commands completed, {len(failed)} LinkError; "
          f"{client.stats.retransmissions} retransmissions; line {did}; payload frames {payload.endpoint.frame_stats}")
    if rate <= 1e-3:
        assert len(done) == n  # at 1e-3 a short command always gets through in its tries


# -- file transfer ---------------------------------------------------------------------------------


class Files:
    """A FileService on the payload, with its handlers wrapped to count and to intervene."""

    def __init__(self, root: Path, products: dict[int, bytes]) -> None:
        self.root = root
        self.service = FileService(root, ("spool", "slots/b"), products.__getitem__)
        self.served = 0  # bytes handed out by `read`
        self.received = 0  # bytes taken by `put_chunk`
        self.chunks = 0
        # Per read: the offset asked for (all the ground had verified); per put_chunk: the offset the
        # payload answered (all it has verified). Chunk sizes shrink on a slow line, so tests of
        # where a transfer resumes compare with these rather than with multiples of one chunk.
        self.offsets: list[int] = []
        self.on_chunk = lambda n: None  # told the count of chunks after each read/put_chunk

    def handlers(self) -> dict:
        h = self.service.handlers()
        read, put_chunk = h["read"], h["put_chunk"]

        def counted_read(args):
            result = read(args)
            self.offsets.append(int(args["offset"]))
            self.served += len(result["data"])
            self.chunks += 1
            self.on_chunk(self.chunks)
            return result

        def counted_put(args):
            result = put_chunk(args)
            self.offsets.append(int(result["offset"]))
            self.received += len(args["data"])
            self.chunks += 1
            self.on_chunk(self.chunks)
            return result

        return {**h, "read": counted_read, "put_chunk": counted_put}

    def staged(self) -> list[Path]:
        return sorted(p for p in (self.root / STAGING).iterdir() if p.suffix == ".part")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def files_rig(rig, tmp_path):
    def make(products: dict[int, bytes] | None = None, faults: Faults | None = None, seed: int = 0):
        files = Files(tmp_path / "payload", products or {})
        line, payload = rig(files.handlers(), faults=faults, seed=seed)
        (tmp_path / "ground").mkdir(exist_ok=True)
        return line, payload, files
    return make


def test_download_and_upload_are_intact_under_line_faults(files_rig, tmp_path, record_property):
    rng = random.Random(6)
    product, local = rng.randbytes(64 * 1024), rng.randbytes(64 * 1024)
    faults = Faults(corrupt=1e-4, drop=1e-4, duplicate=1e-4, reorder=1e-4)
    line, payload, files = files_rig({7: product}, faults=faults, seed=6)
    client = Client(line.open_ground(), KEY, timeout=0.1, retries=10, run_timeout=5)

    dest = tmp_path / "ground" / "product-7.msgpack"
    down = download(client, "product/7", dest, chunk=1024)
    assert _sha(dest.read_bytes()) == _sha(product) and down.resumed_at == 0
    assert not dest.with_name(dest.name + ".part").exists()

    (tmp_path / "scene.npy").write_bytes(local)
    up = upload(client, tmp_path / "scene.npy", "spool/scene.npy", chunk=1024)
    assert _sha((files.root / "spool/scene.npy").read_bytes()) == _sha(local) and up.resumed_at == 0
    assert files.staged() == []
    s = line.uplink.stats, line.downlink.stats
    faulty = sum(x.corrupted + x.dropped + x.duplicated + x.reordered for x in s)
    assert faulty > 0
    record_property("download_bytes_per_s", round(down.bytes_per_s))
    record_property("upload_bytes_per_s", round(up.bytes_per_s))
    print(f"\nall faults at 1e-4/byte ({faulty} faulty bytes): download {down.bytes_per_s:.0f} B/s, "
          f"upload {up.bytes_per_s:.0f} B/s; {client.stats.retransmissions} retransmissions")


def test_a_transfer_survives_corruption_at_1e3(files_rig, tmp_path):
    data = random.Random(7).randbytes(24 * 1024)
    line, payload, files = files_rig({1: data}, faults=Faults(corrupt=1e-3), seed=7)
    client = Client(line.open_ground(), KEY, timeout=0.1, retries=10, run_timeout=5)
    dest = tmp_path / "ground" / "p1"
    download(client, "product/1", dest, chunk=512)
    assert dest.read_bytes() == data
    assert line.downlink.stats.corrupted > 0


def test_download_of_a_file_and_upload_into_an_allowed_area_only(files_rig, tmp_path):
    line, payload, files = files_rig()
    (files.root / "logs").mkdir()
    (files.root / "logs/service.log").write_bytes(b"line\n" * 3000)
    client = Client(line.open_ground(), KEY)
    t = download(client, "file/logs/service.log", tmp_path / "ground" / "service.log", chunk=4096)
    assert (tmp_path / "ground/service.log").read_bytes() == b"line\n" * 3000 and t.size == 15000

    src = tmp_path / "model.tflite"
    src.write_bytes(os.urandom(5000))
    upload(client, src, "slots/b/cnn-s.tflite")
    assert (files.root / "slots/b/cnn-s.tflite").read_bytes() == src.read_bytes()
    for dest in ("slots/a/cnn-s.tflite", "logs/x", "spool", "../outside", "/etc/passwd", ".incoming/x",
                 "spool/../../x"):
        with pytest.raises(CommandRefused) as refused:
            upload(client, src, dest)
        assert refused.value.code == "failed", dest
    assert not (files.root / "slots/a").exists() and not (tmp_path / "outside").exists()
    for source in ("file/../etc/passwd", "file/nothing", "product/x", "other/1"):
        with pytest.raises(CommandRefused):
            download(client, source, tmp_path / "ground" / "x")
    assert not (tmp_path / "ground/x").exists()


def test_a_download_resumes_after_a_broken_link(files_rig, tmp_path):
    data = random.Random(8).randbytes(64 * 1024)
    line, payload, files = files_rig({3: data})
    files.on_chunk = lambda n: line.down() if n == 12 else None  # the cable goes after the 12th chunk
    client = Client(line.open_ground(), KEY, timeout=0.1, retries=3, run_timeout=1.0)
    dest = tmp_path / "ground" / "p3"
    with pytest.raises(LinkError):
        download(client, "product/3", dest, chunk=2048)
    assert not dest.exists()  # nothing half-written under the final name
    assert line.downlink.stats.lost_in_cut > 0

    line.up()
    files.on_chunk = lambda n: None
    served_before = files.served
    t = download(client, "product/3", dest, chunk=2048)
    # The 12th chunk's answer was lost: the ground resumes where it asked for it (11 x 2048 bytes
    # unless a slow machine made it shrink a chunk before the cut).
    assert t.resumed_at == files.offsets[11] > 0
    assert files.served - served_before == len(data) - t.resumed_at < len(data)
    assert dest.read_bytes() == data and not dest.with_name("p3.part").exists()

    served_before = files.served  # fetched again (its acknowledgement was lost, say): nothing moves
    assert download(client, "product/3", dest, chunk=2048).resumed_at == len(data)
    assert files.served == served_before


def test_an_upload_resumes_after_a_broken_link(files_rig, tmp_path):
    data = random.Random(9).randbytes(64 * 1024)
    src = tmp_path / "scene.npy"
    src.write_bytes(data)
    line, payload, files = files_rig()
    files.on_chunk = lambda n: line.down() if n == 20 else None
    client = Client(line.open_ground(), KEY, timeout=0.1, retries=3, run_timeout=1.0)
    with pytest.raises(LinkError):
        upload(client, src, "spool/scene.npy", chunk=2048)
    final = files.root / "spool/scene.npy"
    assert not final.exists() and len(files.staged()) == 1

    line.up()
    files.on_chunk = lambda n: None
    sent_before = client.stats.bytes_sent
    t = upload(client, src, "spool/scene.npy", chunk=2048)
    # The payload verified and kept the 20th chunk, whose answer was lost (20 x 2048 bytes unless a
    # slow machine made the ground shrink a chunk before the cut).
    assert t.resumed_at == files.offsets[19] > 0
    assert len(data) - t.resumed_at < client.stats.bytes_sent - sent_before < len(data)
    assert final.read_bytes() == data and files.staged() == []


def test_a_short_cut_is_ridden_through(files_rig, tmp_path):
    data = random.Random(10).randbytes(48 * 1024)
    line, payload, files = files_rig({4: data})
    files.on_chunk = lambda n: line.cut(0.6) if n == 5 else None
    client = Client(line.open_ground(), KEY, timeout=0.1, retries=10, run_timeout=5)
    download(client, "product/4", tmp_path / "ground" / "p4", chunk=2048)
    assert (tmp_path / "ground/p4").read_bytes() == data
    assert line.downlink.stats.lost_in_cut > 0 and client.stats.retransmissions > 0


def test_a_tampered_upload_is_discarded_not_installed(files_rig, tmp_path):
    data = random.Random(11).randbytes(12 * 1024)
    src = tmp_path / "slot.bin"
    src.write_bytes(data)
    line, payload, files = files_rig()

    def tamper(n):
        if n == 3:  # the staged copy goes bad on the payload's storage between chunks
            (part,) = files.staged()
            with open(part, "r+b") as f:
                f.seek(100)
                byte = f.read(1)
                f.seek(100)
                f.write(bytes([byte[0] ^ 0x10]))

    files.on_chunk = tamper
    client = Client(line.open_ground(), KEY)
    with pytest.raises(CommandRefused, match="sha256 does not match") as refused:
        upload(client, src, "slots/b/slot.bin", chunk=2048)
    assert refused.value.code == "failed"
    assert not (files.root / "slots/b/slot.bin").exists() and files.staged() == []

    files.on_chunk = lambda n: None
    t = upload(client, src, "slots/b/slot.bin", chunk=2048)
    assert t.resumed_at == 0 and (files.root / "slots/b/slot.bin").read_bytes() == data


def test_a_tampered_download_is_discarded_not_installed(files_rig, tmp_path):
    data = random.Random(12).randbytes(12 * 1024)
    line, payload, files = files_rig({5: data})
    dest = tmp_path / "ground" / "p5"
    part = dest.with_name("p5.part")

    def tamper(moved, size):
        if part.exists() and part.stat().st_size == 6 * 1024:
            with open(part, "r+b") as f:
                f.write(b"\x00" * 10)

    client = Client(line.open_ground(), KEY)
    with pytest.raises(TransferError, match="discarded"):
        download(client, "product/5", dest, chunk=2048, progress=tamper)
    assert not dest.exists() and not part.exists()
    assert download(client, "product/5", dest, chunk=2048).resumed_at == 0
    assert dest.read_bytes() == data


def test_a_partial_file_drops_an_unjournaled_tail_and_a_stranger(tmp_path):
    data = os.urandom(10_000)
    part = tmp_path / "x.part"
    p = PartialFile(part, len(data), _sha(data), "product/1")
    p.write(0, data[:4096])
    with open(part, "ab") as f:  # a chunk written, then the power went before the journal said so
        f.write(data[4096:6000])
    again = PartialFile(part, len(data), _sha(data), "product/1")
    assert again.verified == 4096 and part.stat().st_size == 4096
    again.write(4096, data[4096:])
    assert again.install(tmp_path / "x").read_bytes() == data

    other = os.urandom(3000)  # the .part of some other file at the same name: nothing of it is kept
    stale = PartialFile(part, 5000, "0" * 64, "product/2")
    stale.write(0, other)
    fresh = PartialFile(part, len(data), _sha(data), "product/1")
    assert fresh.verified == 0 and part.stat().st_size == 0
    with pytest.raises(TransferError, match="nothing installed"):
        fresh.install(tmp_path / "y")
    assert not (tmp_path / "y").exists()



class SmallDisk:
    """A payload root that runs out of room about 56 kB into a write, enforced by the kernel: a real
    96 kB tmpfs with 40 kB taken by `fill()` (the tests run as root, as CI does), or, where mounting
    is not allowed, a 56 kB cap on the size of any file this process writes (RLIMIT_FSIZE)."""

    def __init__(self, mount: Path) -> None:
        self.root = mount / "root"
        self.mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
                                      capture_output=True).returncode == 0
        self._mount, self._limit, self._sigxfsz = mount, resource.getrlimit(resource.RLIMIT_FSIZE), None

    def fill(self) -> None:
        if self.mounted:
            (self._mount / "filler").write_bytes(bytes(40 * 1024))
            return
        self._sigxfsz = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the cap: EFBIG, not a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (56 * 1024, self._limit[1]))

    def make_room(self) -> None:
        if self.mounted:
            (self._mount / "filler").unlink()
        else:
            resource.setrlimit(resource.RLIMIT_FSIZE, self._limit)

    def close(self) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, self._limit)
        if self._sigxfsz is not None:
            signal.signal(signal.SIGXFSZ, self._sigxfsz)
        if self.mounted:
            subprocess.run(["umount", str(self._mount)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    (tmp_path / "disk").mkdir()
    disk = SmallDisk(tmp_path / "disk")
    try:
        yield disk
    finally:
        disk.close()


def test_an_upload_onto_a_full_disk_fails_in_one_line_and_resumes_once_there_is_room(rig, small_disk, tmp_path):
    service = FileService(small_disk.root, ("spool",), {}.__getitem__)
    line, payload = rig(service.handlers())
    data = random.Random(9).randbytes(64 * 1024)
    (tmp_path / "scene.npy").write_bytes(data)
    client = Client(line.open_ground(), KEY, timeout=0.2, retries=3, run_timeout=2.0)
    small_disk.fill()
    with pytest.raises(CommandRefused) as exc:  # the payload refuses the chunk it cannot keep, saying why
        upload(client, tmp_path / "scene.npy", "spool/scene.npy", chunk=4096)
    message = str(exc.value)
    assert "\n" not in message and ("No space left on device" in message or "File too large" in message), message
    assert not (small_disk.root / "spool/scene.npy").exists()  # nothing half-written installed

    small_disk.make_room()  # the upload takes up where the disk ran out
    t = upload(client, tmp_path / "scene.npy", "spool/scene.npy", chunk=4096)
    assert 0 < t.resumed_at < len(data)
    assert (small_disk.root / "spool/scene.npy").read_bytes() == data
