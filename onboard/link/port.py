"""Serial ports for the link: what it needs of one, opening one with pyserial, the time bytes
take on the wire, and frames over a port (`Channel`), for both ends of the link."""

from __future__ import annotations

import time
from typing import Protocol

from onboard.errors import LinkError
from onboard.link.framing import Frame, FrameDecoder

BITS_PER_BYTE = 10  # 8N1: a start bit, 8 data bits, a stop bit


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


def wire_seconds(nbytes: int, baud: int) -> float:
    return nbytes * BITS_PER_BYTE / baud


class Channel:
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
