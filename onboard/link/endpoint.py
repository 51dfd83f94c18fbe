"""The serial link (DESIGN.md contract 3): authenticated commands from the ground to the payload,
acknowledged, answered, and retransmitted until they are.

Every message (a command or its response) is the msgpack array `[counter, body, mac]` carried in
one frame (onboard/link/framing.py; sealed by onboard/link/sealing.py):
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

import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from onboard.errors import LinkError, OrbitliteError
from onboard.files import write_verified
from onboard.link.framing import Frame, FrameType
from onboard.link.port import Channel, Port
from onboard.link.sealing import KEY_BYTES, seal, unseal
from onboard.schema import Count, Schema, decode, encode_json, read_bounded, to_builtins


MAX_STATE_BYTES = 4096  # the state file holds five counters


class LinkCounters(Schema, frozen=False):
    """What the link has done, kept in the state file across reboots."""

    commands: Count = 0  # authentic, new commands carried out (or failed in their handler)
    retransmissions: Count = 0  # repeats of the last command, answered from the cache
    refused_unauthenticated: Count = 0  # bad MAC, or no message at all
    refused_replay: Count = 0  # authentic but an old counter
    last_counter: Count = 0


Handler = Callable[[dict[str, Any]], Any]


class Endpoint:
    """The payload's end of the link: checks, acknowledges and answers commands with `handlers`
    (name -> function of the command's args, returning the result). The last accepted counter and
    the counts of refusals persist in `state_path`, so a reboot does not reopen old counters.

    A handler raises OrbitliteError to refuse with its message (code "failed"); a KeyError or
    TypeError from reading its args answers "bad-args"."""

    def __init__(self, port: Port, key: bytes, state_path: Path, handlers: dict[str, Handler]) -> None:
        self._channel = Channel(port)
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
        self._channel = Channel(port)
        self._channel.decoder.stats = stats

    def telemetry(self) -> dict[str, int]:
        return {**to_builtins(self.counters), **asdict(self.frame_stats)}

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
        if not self._state_path.exists():
            return LinkCounters()
        try:
            data = read_bounded(self._state_path, MAX_STATE_BYTES, error=LinkError, what="link state")
            return decode(data, LinkCounters, source=f"link state {self._state_path}", error=LinkError)
        except LinkError as exc:
            raise LinkError(f"{exc}: the replay counter cannot be trusted; restore it or remove it and re-key "
                            f"the link") from None

    def _save_state(self) -> None:
        write_verified(self._state_path, encode_json(self.counters))


def _refusal(code: str, error: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": error}
