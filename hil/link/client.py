"""The ground's end of the link (DESIGN.md contract 3): sends authenticated commands to the
payload's endpoint, waits for their acknowledgement and response, and retransmits until they come.

Its counter is microseconds since the epoch, or one more than the last it used. When the payload
refuses it as a replay (the payload's counter is ahead of the ground's clock) the client steps
past the payload's last counter; as beyond the window (the payload has heard nothing for longer
than COUNTER_WINDOW of the ground's clock), to the furthest the window allows, and counts on from
there. It never sends a counter at or above COUNTER_TOP: once the range is spent, a command fails
with a LinkError that says to re-key, and `rekey` (which may use COUNTER_TOP) starts it again."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from onboard.errors import CommandRefused, LinkError
from onboard.link.framing import Frame, FrameType
from onboard.link.port import Channel, Port, wire_seconds
from onboard.link.sealing import COUNTER_TOP, COUNTER_WINDOW, KEY_BYTES, rekeyed, seal, unseal

# An acknowledged command still unanswered this many seconds on runs long (a bench): it is asked
# again only this often from then on, not to pile copies into the payload's input while it works.
LONG_RUNNING = 5.0


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
    `retries` times. `run_timeout` bounds how long an acknowledged command may take to answer (a
    call may give its own); until then it is retransmitted, in case its answer was lost: at the
    same pace, and after LONG_RUNNING seconds every LONG_RUNNING seconds."""

    port: Port
    key: bytes
    timeout: float = 0.5
    retries: int = 10
    run_timeout: float = 60.0
    reply_bytes: int = 256  # the size of response to allow wire time for, unless a call says
    stats: ClientStats = field(default_factory=ClientStats)

    def __post_init__(self) -> None:
        self._channel = Channel(self.port)
        self._counter = 0
        self._by_clock = True  # False once the payload's window does not reach the clock: count on by one
        self._seq = 0

    def call(self, command: str, reply_bytes: int | None = None, retries: int | None = None,
             run_timeout: float | None = None, **args: Any) -> Any:
        """Run `command` on the payload and return its result; raises CommandRefused when the payload
        refuses it, LinkError when no answer comes through. An acknowledged command may run for
        `run_timeout` (by default the client's); with `retries`, for a command that answers at once
        (a chunk), the call gives up after that many retransmissions, acknowledged or not."""
        for resync in (False, True):
            counter = self._next_counter(command)
            self._seq = (self._seq + 1) & 0xFFFF
            frame = Frame(FrameType.COMMAND, self._seq,
                          seal(self.key, FrameType.COMMAND, counter, {"cmd": command, "args": args}))
            body = self._exchange(command, frame, counter, reply_bytes or self.reply_bytes, retries,
                                  self.run_timeout if run_timeout is None else run_timeout)
            if body.get("ok"):
                return body.get("result")
            code, last = body.get("code"), body.get("last_counter")
            if code == "replay" and last == counter:
                # this very command was taken, and its answer lost: the payload restarted since, and
                # with it went its cache. Sending it again under a new counter would run it twice.
                raise LinkError(f"{command}: the payload took it but restarted before its answer came "
                                f"through; its result is lost")
            if code == "replay" and not resync and isinstance(last, int):
                self._counter = last  # our clock is behind the payload's counter: step past it
                continue
            if code == "counter-window" and not resync and isinstance(last, int):
                self._counter, self._by_clock = last + COUNTER_WINDOW - 1, False  # the furthest it takes
                continue
            raise CommandRefused(command, str(code), str(body.get("error")))
        raise AssertionError("unreachable")

    def rekey(self, nonce: bytes) -> None:
        """Re-key the link with `nonce`: the payload and this client go over to `rekeyed(key, nonce)`,
        with the payload's counter from 0. The caller keeps the new key before calling.

        If no answer confirms it (the line failed, or the payload restarted after taking it, so the
        retransmission no longer verifies), a `ping` under each key tells: the new key answers, the
        re-key stands; the old one does (that ping's counter, above the re-key's, makes a replay of
        it fail from now on), or neither verifies, the payload did not take it and never will:
        CommandRefused. When that cannot be told (no answer), LinkError."""
        old, new = self.key, rekeyed(self.key, nonce)
        try:
            self.call("rekey", nonce=nonce)
        except CommandRefused as exc:
            if exc.code != "unauthenticated":
                raise  # refused under the old key: it did not take it
            self._confirm_rekey(old, new, exc)
        except LinkError as exc:
            self._confirm_rekey(old, new, exc)
        self.key, self._counter, self._by_clock = new, 0, True

    def _confirm_rekey(self, old: bytes, new: bytes, why: Exception) -> None:
        sent = self._counter, self._by_clock  # the re-key's counter: the old key's next is above it
        self._counter, self._by_clock = 0, True  # a re-keyed payload counts from 0
        took = self._answers(new)
        if took:
            return
        self._counter, self._by_clock = sent
        still = self._answers(old)
        if still:
            raise CommandRefused("rekey", "lost", f"no answer came ({why}), and the payload still answers the old key")
        if took is False and still is False:
            raise CommandRefused("rekey", "unauthenticated", "the payload verifies neither the old key nor the new: "
                                                             "is the key file the payload's?")
        raise LinkError(f"rekey: no answer confirms it ({why}), and it cannot be told whether the payload took it")

    def _answers(self, key: bytes) -> bool | None:
        """Whether the payload answers a ping under `key` (authentic, even a refusal): None if
        nothing came back."""
        self.key = key
        try:
            self.call("ping")
            return True
        except CommandRefused as exc:
            return exc.code != "unauthenticated"
        except LinkError:
            return None

    def _next_counter(self, command: str) -> int:
        clock = time.time_ns() // 1000 if self._by_clock else 0
        if command == "rekey":  # the top is kept for it, so a spent range can be re-keyed
            self._counter = min(max(self._counter + 1, clock), COUNTER_TOP)
            return self._counter
        counter = max(self._counter + 1, clock)
        if counter >= COUNTER_TOP:
            raise LinkError(f"{command}: the link's counter has reached the top of its range ({COUNTER_TOP}); "
                            f"re-key the link (orbitlite hil link ... rekey) to count from 0 again")
        self._counter = counter
        return counter

    def _exchange(self, command: str, frame: Frame, counter: int, reply_bytes: int,
                  quick_retries: int | None, run_timeout: float) -> dict[str, Any]:
        encoded_len = len(frame.encode())
        wait = self.timeout + wire_seconds(encoded_len + reply_bytes, self.port.baudrate)
        self.stats.commands += 1
        tries = 0
        acked = answer_by = None  # once acknowledged: since when, and when run_timeout is up
        while True:
            self._channel.send(frame)
            self.stats.bytes_sent += encoded_len
            now = time.monotonic()
            deadline = now + wait
            if acked is not None and now - acked >= LONG_RUNNING:
                deadline = min(now + max(wait, LONG_RUNNING), answer_by)
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
                    if acked is None:
                        acked = time.monotonic()
                        answer_by = acked + run_timeout
                    continue
                return body
            if answer_by is None or quick_retries is not None:
                tries += 1
                if tries > (self.retries if quick_retries is None else quick_retries):
                    raise LinkError(f"{command}: no answer from the payload after {tries} tries ({wait:.2f} s each)")
            elif time.monotonic() >= answer_by:
                raise LinkError(f"{command}: acknowledged, but no answer from the payload within "
                                f"{run_timeout:.1f} s")
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
