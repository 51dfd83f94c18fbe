"""A line simulator: the stand-in for the physical UART cable and radio line between the ground
(or the spacecraft's bus computer) and the payload, for the link tests.

Two real pseudo-terminals, one per end: the ground opens one slave tty and the payload the other,
both through pyserial (`onboard.link.port.open_port`), exactly as they would open /dev/ttyUSB0. A relay
thread per direction carries the bytes from one pty master to the other

- paced at the line rate: 10 bits per byte (8N1) at `baud`, so at 115200 baud no more than
  11,520 bytes/s arrive, each no earlier than a real line would have carried it;
- through seeded faults, each byte on its own: corrupted (one bit flipped), dropped, duplicated,
  or reordered (swapped with its neighbour), each with its own probability;
- or not at all while the line is down (`down()`/`up()`, or `cut(seconds)`): a broken cable,
  or the payload below the horizon. Everything sent meanwhile, and what was in flight, is lost.

What the line did is counted per direction (`uplink.stats`, `downlink.stats`). `uplink.tap()`
records what crossed the line (an eavesdropper's copy) and `uplink.inject(data)` transmits bytes
of one's own on it (a replay attacker's transmitter).
"""

from __future__ import annotations

import os
import random
import select
import threading
import time
import tty
from dataclasses import dataclass, fields

from onboard.link.port import BITS_PER_BYTE, Port, open_port

SLICE = 16  # bytes written to the far end at a time: 1.4 ms of line at 115200 baud
MAX_CREDIT = 0.005  # seconds of line time a stalled relay may catch up in one burst


@dataclass
class Faults:
    """Per-byte probabilities of each fault."""

    corrupt: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self))


@dataclass
class LineStats:
    carried: int = 0  # bytes delivered to the far end (duplicates included)
    corrupted: int = 0
    dropped: int = 0  # by the drop fault, and everything lost while the line was down
    duplicated: int = 0
    reordered: int = 0  # swaps of two neighbouring bytes
    lost_in_cut: int = 0  # the part of `dropped` lost while the line was down


class Direction:
    """One direction of the line: a relay thread from `src` (a pty master the sender's slave
    writes into) to `dst` (the master of the receiver's slave)."""

    def __init__(self, name: str, src: int, dst: int, baud: int, faults: Faults, seed: int,
                 line_up: threading.Event, stop: threading.Event) -> None:
        self.name = name
        self.faults = faults
        self.stats = LineStats()
        self._src, self._dst = src, dst
        self._byte_time = BITS_PER_BYTE / baud
        self._rng = random.Random(seed)
        self._up, self._stop = line_up, stop
        self._inject_r, self._inject_w = os.pipe()
        self._tap: bytearray | None = None
        self._pending = bytearray()  # on the line: read from the sender, not yet at the receiver
        self._line_t = time.monotonic()  # when the line has carried everything written so far
        self._thread = threading.Thread(target=self._run, name=f"linesim-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def tap(self) -> bytearray:
        """From now on, a copy of every byte that reaches the far end is appended to the result."""
        self._tap = bytearray()
        return self._tap

    def inject(self, data: bytes) -> None:
        """Transmit `data` on this direction of the line, after what is already on it."""
        os.write(self._inject_w, data)

    def join(self) -> None:
        self._thread.join()
        os.close(self._inject_r)
        os.close(self._inject_w)

    # -- the relay -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            if self._pending:
                timeout = max(0.0, self._line_t + min(SLICE, len(self._pending)) * self._byte_time - now)
            else:
                timeout = 0.05
            readable, _, _ = select.select([self._src, self._inject_r], [], [], min(timeout, 0.05))
            for fd in readable:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO: no slave open on that side (never while the simulator holds them)
                    continue
                self._receive(data)
            self._deliver()

    def _receive(self, data: bytes) -> None:
        if not self._up.is_set():
            self._lose(len(data))
            return
        if not self._pending:  # the line was idle: these bytes start now, not back when it last sent
            self._line_t = max(self._line_t, time.monotonic())
        self._pending += self._apply_faults(data) if self.faults.any else data

    def _lose(self, n: int) -> None:
        self.stats.dropped += n
        self.stats.lost_in_cut += n

    def _apply_faults(self, data: bytes) -> bytearray:
        f, rng, s = self.faults, self._rng, self.stats
        out = bytearray()
        for byte in data:
            if rng.random() < f.drop:
                s.dropped += 1
                continue
            if rng.random() < f.corrupt:
                byte ^= 1 << rng.randrange(8)
                s.corrupted += 1
            out.append(byte)
            if rng.random() < f.duplicate:
                out.append(byte)
                s.duplicated += 1
            if rng.random() < f.reorder:  # swap with the byte before it, if that has not left yet
                if len(out) >= 2:
                    out[-1], out[-2] = out[-2], out[-1]
                    s.reordered += 1
                elif self._pending:
                    out[-1], self._pending[-1] = self._pending[-1], out[-1]
                    s.reordered += 1
        return out

    def _deliver(self) -> None:
        if not self._pending:
            return
        if not self._up.is_set():  # the cut takes what was in flight too
            self._lose(len(self._pending))
            self._pending.clear()
            return
        now = time.monotonic()
        self._line_t = max(self._line_t, now - MAX_CREDIT)
        due = min(len(self._pending), int((now - self._line_t) / self._byte_time))
        if due == 0:
            return
        try:
            written = os.write(self._dst, self._pending[:due])
        except BlockingIOError:  # the receiver's tty buffer is full: the line waits for it to read
            select.select([], [self._dst], [], 0.01)
            return
        if self._tap is not None:
            self._tap += self._pending[:written]
        del self._pending[:written]
        self._line_t += written * self._byte_time
        self.stats.carried += written


class LineSim:
    """The simulated line: `ground_path` and `payload_path` are the two ends' tty devices.

    Use it as a context manager; ports opened with `open_ground()`/`open_payload()` are closed
    with it. `uplink` carries ground -> payload, `downlink` payload -> ground; their `faults` may
    be changed at any time."""

    def __init__(self, baud: int = 115200, seed: int = 0, faults: Faults | None = None,
                 uplink: Faults | None = None, downlink: Faults | None = None) -> None:
        self.baud = baud
        self._stop = threading.Event()
        self._up = threading.Event()
        self._up.set()
        self._timers: list[threading.Timer] = []
        self._ports: list = []
        self._fds: list[int] = []
        ends = []
        for _ in range(2):
            master, slave = os.openpty()
            self._fds += [master, slave]
            tty.setraw(slave)  # no echo, no line editing, no CR/LF mapping before pyserial opens it
            os.set_blocking(master, False)
            ends.append((master, slave))
        (self._ground_master, ground_slave), (self._payload_master, payload_slave) = ends
        # the simulator keeps the slaves open, so a master never reads EIO while an end reopens its port
        self.ground_path, self.payload_path = os.ttyname(ground_slave), os.ttyname(payload_slave)
        both = faults or Faults()
        self.uplink = Direction("uplink", self._ground_master, self._payload_master, baud,
                                uplink or Faults(**vars(both)), seed * 2 + 1, self._up, self._stop)
        self.downlink = Direction("downlink", self._payload_master, self._ground_master, baud,
                                  downlink or Faults(**vars(both)), seed * 2 + 2, self._up, self._stop)
        self.uplink.start()
        self.downlink.start()

    @property
    def line_rate(self) -> float:
        """Bytes per second an 8N1 line carries at this baud rate."""
        return self.baud / BITS_PER_BYTE

    def set_faults(self, **probabilities: float) -> None:
        """The same fault probabilities both ways, e.g. set_faults(corrupt=1e-3)."""
        self.uplink.faults = Faults(**probabilities)
        self.downlink.faults = Faults(**probabilities)

    def open_ground(self) -> Port:
        return self._open(self.ground_path)

    def open_payload(self) -> Port:
        return self._open(self.payload_path)

    def _open(self, path: str) -> Port:
        port = open_port(path, self.baud)
        self._ports.append(port)
        return port

    # -- breaking the line -----------------------------------------------------------------------

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    def down(self) -> None:
        self._up.clear()

    def up(self) -> None:
        self._up.set()

    def cut(self, seconds: float) -> None:
        """Break the line now, and restore it `seconds` later (without blocking)."""
        self.down()
        timer = threading.Timer(seconds, self.up)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        if self._stop.is_set():
            return
        for timer in self._timers:
            timer.cancel()
        self._stop.set()
        self.uplink.join()
        self.downlink.join()
        for port in self._ports:
            port.close()
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> LineSim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
