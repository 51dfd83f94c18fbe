"""The serial link (DESIGN.md contract 3): authenticated commands from the ground to the payload,
acknowledged, answered, and retransmitted until they are.

Every message (a command or its response) is the msgpack array `[counter, body, mac]` carried in
one frame (onboard/framing.py):
- `body` is msgpack: `{"cmd": name, "args": {...}}` for a command; `{"ok": true, "result": ...}`
  or `{"ok": false, "code": ..., "error": ...}` for a response;
- `mac` is HMAC-SHA256 under the pre-shared key of the frame type, the counter (u64, big-endian)
  and `body`, so a response cannot be passed off as a command, nor one command's body as another's;
- `counter` rises with every new command (the ground takes microseconds since the epoch, or one
  more than the last it used). The payload keeps the last counter it accepted on disk and refuses
  any command whose counter is not above it as a replay, except the exact repeat of the last
  command, a retransmission, which it answers again from its cache without running it twice.
  A response carries the counter of its command.

A command is acknowledged (ACK) as soon as it is found authentic, then answered (RESPONSE). The
ground retransmits a command whose acknowledgement or response does not come in time, a bounded
number of times. Refused commands (bad MAC, malformed, replayed) are counted and answered with
the reason, authenticated when the command was.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import msgpack

from onboard.errors import OrbitliteError
from onboard.files import write_verified
from onboard.framing import Frame, FrameDecoder, FrameType

KEY_BYTES = 32  # the length of key this module generates, and the least it accepts is 16
BITS_PER_BYTE = 10  # 8N1: a start bit, 8 data bits, a stop bit


class LinkError(OrbitliteError):
    """The link failed: no answer after every retransmission, or a port that cannot be used."""


class CommandRefused(OrbitliteError):
    """The payload refused or could not carry out a command; `code` says which kind."""

    def __init__(self, command: str, code: str, error: str) -> None:
        super().__init__(f"{command}: refused ({code}): {error}")
        self.code = code


class Port(Protocol):
    """What the link needs of a serial port (pyserial's Serial has it)."""

    baudrate: int

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...

    def read(self, size: int = 1) -> bytes: ...

    @property
    def in_waiting(self) -> int: ...


def open_port(device: str, baud: int) -> Port:
    """A pyserial port on `device` (a tty path, or a pyserial URL), raw 8N1 at `baud`."""
    import serial

    try:
        return serial.serial_for_url(device, baudrate=baud, timeout=0.05, write_timeout=None)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LinkError(f"serial port {device}: {exc}") from None


def read_key(path: Path) -> bytes:
    """The pre-shared key: a file holding it as hex (e.g. from `orbitlite hil link keygen`)."""
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise LinkError(f"key file {path} cannot be read: {exc.strerror}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise LinkError(f"key file {path} must hold the key as hexadecimal digits") from None
    if len(key) < 16:
        raise LinkError(f"key file {path} holds {len(key)} bytes; a link key has at least 16")
    return key


def new_key() -> str:
    return os.urandom(KEY_BYTES).hex()


def wire_seconds(nbytes: int, baud: int) -> float:
    return nbytes * BITS_PER_BYTE / baud


# -- sealing messages ------------------------------------------------------------------------------


def _mac(key: bytes, kind: FrameType, counter: int, body: bytes) -> bytes:
    return hmac.new(key, bytes([kind]) + counter.to_bytes(8, "big") + body, hashlib.sha256).digest()


def seal(key: bytes, kind: FrameType, counter: int, body: dict[str, Any]) -> bytes:
    packed = msgpack.packb(body, use_bin_type=True)
    return msgpack.packb([counter, packed, _mac(key, kind, counter, packed)], use_bin_type=True)


@dataclass(frozen=True)
class Opened:
    counter: int
    body: dict[str, Any] | None  # None when the MAC did not verify
    raw: bytes


def unseal(key: bytes, frame: Frame) -> Opened | None:
    """The message in a frame; None if it is no message at all. `body` is None if the MAC fails."""
    try:
        counter, packed, mac = msgpack.unpackb(frame.payload, raw=False)
        if not (isinstance(counter, int) and 0 <= counter < 1 << 64 and isinstance(packed, bytes)
                and isinstance(mac, bytes)):
            return None
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if not hmac.compare_digest(mac, _mac(key, frame.type, counter, packed)):
        return Opened(counter, None, frame.payload)
    try:
        body = msgpack.unpackb(packed, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return Opened(counter, body if isinstance(body, dict) else None, frame.payload)


class _Channel:
    """Frames over a port: writes them, and reads until a frame or a deadline."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.decoder = FrameDecoder()
        self._ready: list[Frame] = []

    def send(self, frame: Frame) -> None:
        self.port.write(frame.encode())

    def receive(self, deadline: float) -> Frame | None:
        while not self._ready:
            if time.monotonic() >= deadline:
                return None
            data = self.port.read(max(1, self.port.in_waiting))
            if data:
                self._ready.extend(self.decoder.feed(data))
        return self._ready.pop(0)


# -- the payload's end ----------------------------------------------------------------------------


@dataclass
class LinkCounters:
    commands: int = 0  # authentic, new commands carried out (or failed in their handler)
    retransmissions: int = 0  # repeats of the last command, answered from the cache
    refused_unauthenticated: int = 0  # bad MAC, or no message at all
    refused_replay: int = 0  # authentic but an old counter
    last_counter: int = 0


Handler = Callable[[dict[str, Any]], Any]


class Endpoint:
    """The payload's end of the link: checks, acknowledges and answers commands with `handlers`
    (name -> function of the command's args, returning the result). The last accepted counter and
    the counts of refusals persist in `state_path`, so a reboot does not reopen old counters.

    A handler raises OrbitliteError to refuse with its message (code "failed"); a KeyError or
    TypeError from reading its args answers "bad-args"."""

    def __init__(self, port: Port, key: bytes, state_path: Path, handlers: dict[str, Handler]) -> None:
        self._channel = _Channel(port)
        self._key = key
        self._state_path = Path(state_path)
        self._handlers = handlers
        self.counters = self._load_state()
        self._cached: tuple[bytes, Frame] | None = None  # the last command's raw payload, its response

    @property
    def frame_stats(self):
        return self._channel.decoder.stats

    def close_port(self) -> None:
        """Let go of a port that failed, before another is opened: left to the garbage collector,
        it would close its descriptor later, when the new port may have been given that number."""
        try:
            self._channel.port.close()
        except (OSError, TypeError):  # its device is gone; pyserial may trip over the dead descriptor
            pass

    def use_port(self, port: Port) -> None:
        """Go on on another port (the same one, opened again), keeping every count."""
        stats = self.frame_stats
        self._channel = _Channel(port)
        self._channel.decoder.stats = stats

    def telemetry(self) -> dict[str, int]:
        return {**asdict(self.counters), **asdict(self.frame_stats)}

    def serve(self, stop: threading.Event, poll: float = 0.1) -> None:
        while not stop.is_set():
            self.serve_one(time.monotonic() + poll)

    def serve_one(self, deadline: float) -> None:
        """Handle the frames that arrive before `deadline` (at least one read)."""
        frame = self._channel.receive(deadline)
        if frame is None or frame.type is not FrameType.COMMAND:
            return  # acknowledgements and responses are not for the payload to take
        message = unseal(self._key, frame)
        if message is None or message.body is None:
            self.counters.refused_unauthenticated += 1
            self._save_state()
            # an unauthenticated command gets an unauthenticated answer: counter 0, MAC of a zero key
            self._reply(frame.seq, bytes(KEY_BYTES), 0, _refusal("unauthenticated", "the MAC does not verify "
                                                                  "under the link key"))
            return
        if self._cached is not None and message.raw == self._cached[0]:
            self.counters.retransmissions += 1
            self._channel.send(self._cached[1])
            return
        if message.counter <= self.counters.last_counter:
            self.counters.refused_replay += 1
            self._save_state()
            self._reply(frame.seq, self._key, message.counter,
                        {**_refusal("replay", f"counter {message.counter} is not above the last accepted, "
                                              f"{self.counters.last_counter}"),
                         "last_counter": self.counters.last_counter})
            return
        self.counters.last_counter = message.counter
        self.counters.commands += 1
        self._save_state()  # before running it: a reboot mid-command must not let it run again
        self._channel.send(Frame(FrameType.ACK, frame.seq,
                                 seal(self._key, FrameType.ACK, message.counter, {"ok": True})))
        response = self._reply(frame.seq, self._key, message.counter, self._run(message.body))
        self._cached = (message.raw, response)

    def _run(self, body: dict[str, Any]) -> dict[str, Any]:
        name, args = body.get("cmd"), body.get("args", {})
        handler = self._handlers.get(name) if isinstance(name, str) else None
        if handler is None:
            return _refusal("unknown-command", f"no command {name!r}; known: {', '.join(sorted(self._handlers))}")
        if not isinstance(args, dict):
            return _refusal("bad-args", "args must be a map")
        try:
            return {"ok": True, "result": handler(args)}
        except OrbitliteError as exc:
            return _refusal("failed", str(exc))
        except (KeyError, TypeError, ValueError) as exc:
            return _refusal("bad-args", f"{name}: {type(exc).__name__}: {exc}")
        except OSError as exc:
            return _refusal("failed", f"{name}: {exc.strerror or exc}")
        except Exception as exc:  # a fault in one command must not take the link down with it
            return _refusal("internal", f"{name}: {type(exc).__name__}: {exc}")

    def _reply(self, seq: int, key: bytes, counter: int, body: dict[str, Any]) -> Frame:
        frame = Frame(FrameType.RESPONSE, seq, seal(key, FrameType.RESPONSE, counter, body))
        self._channel.send(frame)
        return frame

    def _load_state(self) -> LinkCounters:
        try:
            return LinkCounters(**json.loads(self._state_path.read_text()))
        except FileNotFoundError:
            return LinkCounters()
        except (OSError, ValueError, TypeError) as exc:
            raise LinkError(f"link state {self._state_path} is unreadable ({exc}): the replay counter cannot "
                            f"be trusted; restore it or remove it and re-key the link") from None

    def _save_state(self) -> None:
        write_verified(self._state_path, json.dumps(asdict(self.counters)).encode())


def _refusal(code: str, error: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": error}


# -- the ground's end -----------------------------------------------------------------------------


@dataclass
class ClientStats:
    commands: int = 0
    retransmissions: int = 0
    rejected_responses: int = 0  # responses whose MAC or counter did not match: ignored
    bytes_sent: int = 0


@dataclass
class Client:
    """The ground's end: sends a command, waits for its acknowledgement and response, and
    retransmits after `timeout` (plus the wire time of the frames at the port's baud rate), up to
    `retries` times. `run_timeout` bounds how long an acknowledged command may take to answer;
    until then it is retransmitted at the same pace, in case its answer was lost."""

    port: Port
    key: bytes
    timeout: float = 0.5
    retries: int = 10
    run_timeout: float = 60.0
    reply_bytes: int = 256  # the size of response to allow wire time for, unless a call says
    stats: ClientStats = field(default_factory=ClientStats)

    def __post_init__(self) -> None:
        self._channel = _Channel(self.port)
        self._counter = 0
        self._seq = 0

    def call(self, command: str, reply_bytes: int | None = None, retries: int | None = None, **args: Any) -> Any:
        """Run `command` on the payload and return its result; raises CommandRefused when the payload
        refuses it, LinkError when no answer comes through. By default an acknowledged command may
        run for `run_timeout`; with `retries`, for a command that answers at once (a chunk), the
        call gives up after that many retransmissions, acknowledged or not."""
        for resync in (False, True):
            counter = self._next_counter()
            self._seq = (self._seq + 1) & 0xFFFF
            frame = Frame(FrameType.COMMAND, self._seq,
                          seal(self.key, FrameType.COMMAND, counter, {"cmd": command, "args": args}))
            body = self._exchange(command, frame, counter, reply_bytes or self.reply_bytes, retries)
            if body.get("ok"):
                return body.get("result")
            last = body.get("last_counter")
            if body.get("code") == "replay" and last == counter:
                # this very command was taken, and its answer lost: the payload restarted since, and
                # with it went its cache. Sending it again under a new counter would run it twice.
                raise LinkError(f"{command}: the payload took it but restarted before its answer came "
                                f"through; its result is lost")
            if body.get("code") == "replay" and not resync and isinstance(last, int):
                self._counter = last  # our clock is behind the payload's counter: step past it
                continue
            raise CommandRefused(command, str(body.get("code")), str(body.get("error")))
        raise AssertionError("unreachable")

    def _next_counter(self) -> int:
        self._counter = max(self._counter + 1, time.time_ns() // 1000)
        return self._counter

    def _exchange(self, command: str, frame: Frame, counter: int, reply_bytes: int,
                  quick_retries: int | None) -> dict[str, Any]:
        encoded_len = len(frame.encode())
        wait = self.timeout + wire_seconds(encoded_len + reply_bytes, self.port.baudrate)
        self.stats.commands += 1
        tries = 0
        answer_by = None  # once acknowledged: when run_timeout is up
        while True:
            self._channel.send(frame)
            self.stats.bytes_sent += encoded_len
            deadline = time.monotonic() + wait
            while True:
                reply = self._channel.receive(deadline)
                if reply is None:
                    break  # timed out: send again
                if reply.seq != frame.seq or reply.type is FrameType.COMMAND:
                    continue  # a late answer to an earlier command
                body = self._authentic(reply, counter)
                if body is None:
                    continue
                if reply.type is FrameType.ACK:
                    if answer_by is None:
                        answer_by = time.monotonic() + self.run_timeout
                    continue
                return body
            if answer_by is None or quick_retries is not None:
                tries += 1
                if tries > (self.retries if quick_retries is None else quick_retries):
                    raise LinkError(f"{command}: no answer from the payload after {tries} tries ({wait:.2f} s each)")
            elif time.monotonic() >= answer_by:
                raise LinkError(f"{command}: acknowledged, but no answer from the payload within "
                                f"{self.run_timeout:.1f} s")
            # else it is still running, or it ran and its answer was lost on the line: the payload
            # answers a retransmission from its cache once it is done, without running it again
            self.stats.retransmissions += 1

    def _authentic(self, reply: Frame, counter: int) -> dict[str, Any] | None:
        opened = unseal(self.key, reply)
        if opened is not None and opened.body is not None and opened.counter == counter:
            return opened.body
        if opened is not None and opened.counter == 0 and reply.type is FrameType.RESPONSE:
            # the payload could not check our MAC, so it could not sign its answer: believe only that
            unauthenticated = unseal(bytes(KEY_BYTES), reply)
            body = unauthenticated.body if unauthenticated is not None else None
            if body is not None and body.get("ok") is False and body.get("code") == "unauthenticated":
                return body
        self.stats.rejected_responses += 1
        return None
