"""Link frames (DESIGN.md contract 3, version 1): what crosses the serial line between the ground
(or the spacecraft's bus computer) and the payload.

On the wire a frame is COBS-encoded between two 0x00 bytes, so a receiver finds the next frame
boundary after any garbage (the leading delimiter closes whatever noise came before, so it
cannot take the frame down with it; the empty run between two frames' delimiters is skipped). Before encoding, a frame is

    version u8 | type u8 | sequence u16 | payload length u16 | payload | CRC-32C u32

big-endian, the CRC over everything before it. The payload is msgpack (see onboard/link/sealing.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from onboard._native import cobs_decode, cobs_encode, crc32c

VERSION = 1
HEADER = struct.Struct(">BBHH")
CRC = struct.Struct(">I")
MAX_PAYLOAD = 0xFFFF
DELIMITER = b"\x00"
# The longest encoded frame a receiver buffers before it gives up on a run of bytes as garbage.
MAX_ENCODED = HEADER.size + MAX_PAYLOAD + CRC.size + (HEADER.size + MAX_PAYLOAD + CRC.size) // 254 + 1


class FrameType(IntEnum):
    COMMAND = 1  # ground -> payload: an authenticated request
    ACK = 2  # payload -> ground: the command arrived intact and authentic; its response follows
    RESPONSE = 3  # payload -> ground: the authenticated result of a command (or why it was refused)


@dataclass(frozen=True)
class Frame:
    type: FrameType
    seq: int
    payload: bytes

    def encode(self) -> bytes:
        """The frame as it goes on the wire, delimiters included."""
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"a frame payload holds at most {MAX_PAYLOAD} bytes, not {len(self.payload)}")
        body = HEADER.pack(VERSION, self.type, self.seq & 0xFFFF, len(self.payload)) + self.payload
        return DELIMITER + cobs_encode(body + CRC.pack(crc32c(body))) + DELIMITER


@dataclass
class FrameStats:
    frames: int = 0  # good frames decoded
    bad_crc: int = 0  # frames whose CRC did not match
    malformed: int = 0  # runs between delimiters that are no frame: bad COBS, short, bad length
    unknown: int = 0  # intact frames of a version or type this reader does not know
    overlong: int = 0  # runs longer than any frame, dropped without waiting for their delimiter


class FrameDecoder:
    """Turns a byte stream into frames. Anything that is not an intact frame of a known version and
    type (line noise, a cut frame, a frame with a flipped bit) is dropped and counted; decoding
    resumes at the next delimiter."""

    def __init__(self) -> None:
        self.stats = FrameStats()
        self._pending = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame]:
        frames = []
        start = 0
        while True:
            end = data.find(DELIMITER, start)
            if end < 0:
                self._buffer(data[start:])
                return frames
            self._buffer(data[start:end])
            run, discarding = bytes(self._pending), self._discarding
            self._pending.clear()
            self._discarding = False
            start = end + 1
            if discarding or not run:
                continue
            frame = self._decode(run)
            if frame is not None:
                frames.append(frame)

    def _buffer(self, chunk: bytes) -> None:
        if self._discarding:
            return
        self._pending += chunk
        if len(self._pending) > MAX_ENCODED:
            self.stats.overlong += 1
            self._pending.clear()
            self._discarding = True

    def _decode(self, run: bytes) -> Frame | None:
        try:
            raw = cobs_decode(run)
        except ValueError:
            self.stats.malformed += 1
            return None
        if len(raw) < HEADER.size + CRC.size:
            self.stats.malformed += 1
            return None
        body, (crc,) = raw[:-CRC.size], CRC.unpack(raw[-CRC.size:])
        if crc32c(body) != crc:
            self.stats.bad_crc += 1
            return None
        version, kind, seq, length = HEADER.unpack_from(body)
        if length != len(body) - HEADER.size:
            self.stats.malformed += 1
            return None
        if version != VERSION or kind not in FrameType._value2member_map_:
            self.stats.unknown += 1
            return None
        self.stats.frames += 1
        return Frame(FrameType(kind), seq, body[HEADER.size:])
