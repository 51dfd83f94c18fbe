"""The serial link (DESIGN.md contract 3): authenticated commands from the ground to the payload,
acknowledged, answered, and retransmitted until they are.

Every message (a command or its response) is the msgpack array `[counter, body, mac]` carried in
one frame (onboard/link/framing.py; sealed by onboard/link/sealing.py):
- `body` is msgpack: `{"cmd": name, "args": {...}}` for a command; `{"ok": true, "result": ...}`
  or `{"ok": false, "code": ..., "error": ...}` for a response;
- `mac` is HMAC-SHA256 under the link key of the frame type, the counter (u64, big-endian)
  and `body`, so a response cannot be passed off as a command, nor one command's body as another's;
- `counter` rises with every new command (the ground takes microseconds since the epoch, or one
  more than the last it used). The payload keeps the last counter it accepted on disk and refuses
  any command whose counter is not above it as a replay, except the exact repeat of the last
  command, a retransmission, which it answers again from its cache without running it twice.
  A response carries the counter of its command.

The counter's range (sealing.py): a command's counter must be below COUNTER_TOP (2^56) and, once
the payload has accepted one (its last counter is not 0), no more than COUNTER_WINDOW (2^42 us,
about 51 days) above the last; else it is refused ("counter-top", "counter-window") with the
last counter, authenticated, and changes nothing: one command with a wild counter (2^64 - 1) can
neither be taken nor spend the range. A fresh state (last 0: a new payload, or just re-keyed)
takes any counter below the top. The ground steps to what the payload takes (client.py).

Re-keying: `rekey {nonce}` (16 random bytes), under the current key, is handled here, not by a
handler. Both ends derive the next key as HMAC-SHA256(key, "orbitlite rekey" || nonce), so no key
material crosses the link; the payload's counter starts again from 0 under it. It is the way out
of a spent range: a re-key may use counter COUNTER_TOP itself and is not held to the window (a
replay of it no longer verifies once the key has changed). The payload writes the new key, its
epoch and the counter reset to 0 in one atomic write of the state file (onboard/files.py), before
it answers: power lost before that write leaves the old key and counter whole (the ground's
retransmission re-keys then); lost after it, the new key, which the ground derived before it
sent the command. It acknowledges and answers under the old key, and takes commands under the new
one only from then on; a retransmission of the re-key is answered again from the cache.

The state file (`link.state` in the serve config, kept private) holds the counters and, once the
link was re-keyed, the key in use (hex), which takes the place of the key file's from then on; it
is read through the schema, its counter bounded like the wire's. A state file that does not read
stops `serve`: the replay counter (and the key) cannot be trusted; remove it only together with
giving the payload a new key file.

A command is acknowledged (ACK) as soon as it is found authentic, then answered (RESPONSE). The
ground retransmits a command whose acknowledgement or response does not come in time, a bounded
number of times. Refused commands (bad MAC, malformed, replayed, a counter out of range) are
counted and answered with the reason, authenticated when the command was.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Callable

from msgspec import Meta

from onboard.errors import LinkError, OrbitliteError
from onboard.files import write_verified
from onboard.link.framing import Frame, FrameType
from onboard.link.port import Channel, Port
from onboard.link.sealing import COUNTER_TOP, COUNTER_WINDOW, KEY_BYTES, NONCE_BYTES, rekeyed, seal, unseal
from onboard.schema import Count, Schema, decode, encode_json, read_bounded, to_builtins

MAX_STATE_BYTES = 4096  # the state file holds seven counters and a key
REKEY = "rekey"  # the command the endpoint itself answers

Counter = Annotated[int, Meta(ge=0, lt=COUNTER_TOP)]
KeyHex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}\Z")]


class LinkCounters(Schema, frozen=False):
    """What the link has done, kept in the state file across reboots."""

    commands: Count = 0  # authentic, new commands carried out (or failed in their handler)
    retransmissions: Count = 0  # repeats of the last command, answered from the cache
    refused_unauthenticated: Count = 0  # bad MAC, or no message at all
    refused_replay: Count = 0  # authentic but an old counter
    refused_counter: Count = 0  # authentic but a counter above the top, or beyond the window
    last_counter: Counter = 0
    key_epoch: Count = 0  # re-keys so far: 0 is the key file's key


class LinkState(LinkCounters, frozen=False):
    """The state file: the counters and, once re-keyed, the key in use (hex)."""

    key: KeyHex | None = None

    def __post_init__(self) -> None:
        if (self.key is None) != (self.key_epoch == 0):
            raise ValueError("key must be there exactly when key_epoch is above 0")


Handler = Callable[[dict[str, Any]], Any]


class Endpoint:
    """The payload's end of the link: checks, acknowledges and answers commands with `handlers`
    (name -> function of the command's args, returning the result), and `rekey` itself. The last
    accepted counter, the counts of refusals and, once re-keyed, the key persist in `state_path`,
    so a reboot does not reopen old counters; `key` (the key file's) serves until a re-key.

    A handler raises OrbitliteError to refuse with its message (code "failed"); a KeyError or
    TypeError from reading its args answers "bad-args"."""

    def __init__(self, port: Port, key: bytes, state_path: Path, handlers: dict[str, Handler]) -> None:
        self._channel = Channel(port)
        self._state_path = Path(state_path)
        self._handlers = handlers
        self.counters, rekeyed_key = self._load_state()
        self._key = rekeyed_key or key
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
        if self._cached is not None and frame.payload == self._cached[0]:
            # the exact repeat of the last command, authentic when it came: also a re-key's, whose
            # key is gone by now
            self.counters.retransmissions += 1
            self._channel.send(self._cached[1])
            return
        message = unseal(self._key, frame)
        if message is None or message.body is None:
            self.counters.refused_unauthenticated += 1
            self._save_state(self._key)
            # an unauthenticated command gets an unauthenticated answer: counter 0, MAC of a zero key
            self._reply(frame.seq, bytes(KEY_BYTES), 0, _refusal("unauthenticated", "the MAC does not verify "
                                                                  "under the link key"))
            return
        rekey = message.body.get("cmd") == REKEY
        refusal = self._counter_refusal(message.counter, rekey)
        if refusal is None and rekey:
            refusal = _nonce_refusal(message.body.get("args"))
        if refusal is not None:
            self._save_state(self._key)
            self._reply(frame.seq, self._key, message.counter,
                        {**refusal, "last_counter": self.counters.last_counter})
            return
        key = self._key  # the key the command came under answers it, a re-key's too
        self.counters.commands += 1
        if rekey:
            next_key = rekeyed(key, message.body["args"]["nonce"])
            self.counters.key_epoch += 1
            self.counters.last_counter = 0
        else:
            next_key = key
            self.counters.last_counter = message.counter
        # before running it: a reboot mid-command must not let it run again; a re-key's key and
        # counter go in the same atomic write, so a reboot finds either both old or both new
        self._save_state(next_key)
        self._key = next_key
        self._channel.send(Frame(FrameType.ACK, frame.seq, seal(key, FrameType.ACK, message.counter, {"ok": True})))
        body = {"ok": True, "result": {"key_epoch": self.counters.key_epoch}} if rekey else self._run(message.body)
        response = self._reply(frame.seq, key, message.counter, body)
        self._cached = (message.raw, response)

    def _counter_refusal(self, counter: int, rekey: bool) -> dict[str, Any] | None:
        """Why an authentic command's counter is refused (counting it), or None."""
        last = self.counters.last_counter
        if counter <= last:
            self.counters.refused_replay += 1
            return _refusal("replay", f"counter {counter} is not above the last accepted, {last}")
        top = COUNTER_TOP if rekey else COUNTER_TOP - 1
        if counter > top:
            self.counters.refused_counter += 1
            return _refusal("counter-top", f"counter {counter} is above the top of the link's range, {top}"
                                           f"{'' if rekey else ': re-key the link to count from 0 again'}")
        if last and not rekey and counter - last > COUNTER_WINDOW:
            self.counters.refused_counter += 1
            return _refusal("counter-window", f"counter {counter} is more than {COUNTER_WINDOW} above the last "
                                              f"accepted, {last}")
        return None

    def _run(self, body: dict[str, Any]) -> dict[str, Any]:
        name, args = body.get("cmd"), body.get("args", {})
        handler = self._handlers.get(name) if isinstance(name, str) else None
        if handler is None:
            return _refusal("unknown-command", f"no command {name!r}; known: {', '.join(sorted([*self._handlers, REKEY]))}")
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

    def _load_state(self) -> tuple[LinkCounters, bytes | None]:
        """The counters, and the key of the last re-key (None: the key file's)."""
        if not self._state_path.exists():
            return LinkCounters(), None
        try:
            data = read_bounded(self._state_path, MAX_STATE_BYTES, error=LinkError, what="link state")
            state = decode(data, LinkState, source=f"link state {self._state_path}", error=LinkError)
        except LinkError as exc:
            raise LinkError(f"{exc}: the replay counter and the key cannot be trusted; restore it, or remove it "
                            f"and give the payload a new key file") from None
        counters = LinkCounters(**{name: getattr(state, name) for name in LinkCounters.__struct_fields__})
        return counters, None if state.key is None else bytes.fromhex(state.key)

    def _save_state(self, key: bytes) -> None:
        state = {**to_builtins(self.counters), "key": key.hex() if self.counters.key_epoch else None}
        write_verified(self._state_path, encode_json(state), private=True)


def _nonce_refusal(args: Any) -> dict[str, Any] | None:
    nonce = args.get("nonce") if isinstance(args, dict) else None
    if isinstance(nonce, bytes) and len(nonce) == NONCE_BYTES:
        return None
    return _refusal("bad-args", f"{REKEY}: args must be {{nonce: {NONCE_BYTES} bytes}}")


def _refusal(code: str, error: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": error}
