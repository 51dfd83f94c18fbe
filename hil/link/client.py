"""The ground's end of the link (DESIGN.md contract 3): sends authenticated commands to the
payload's endpoint, waits for their acknowledgement and response, and retransmits until they come."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from onboard.errors import CommandRefused, LinkError
from onboard.link.framing import Frame, FrameType
from onboard.link.port import Channel, Port, wire_seconds
from onboard.link.sealing import KEY_BYTES, seal, unseal


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
        self._channel = Channel(self.port)
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
