"""Products cut into CCSDS Space Packets (CCSDS 133.0-B-2) for downlink, and reassembled on the
ground. Each product is a sequence of telemetry packets on its product type's APID: the first
segment starts with a small orbitlite header (magic, total length, sha256), then continuation
segments, then the last; a product that fits one packet goes unsegmented. Sequence counts run
per APID modulo 2^14, so a gap shows which product lost packets."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from onboard.errors import ProductError

APIDS = {"classification": 0x100}
CONTINUATION, FIRST, LAST, UNSEGMENTED = 0, 1, 2, 3  # the sequence flags
SEQ_MODULO = 1 << 14
MAX_DATA = 65536  # bytes of packet data field the 16-bit length field can describe
PRIMARY_HEADER = struct.Struct(">HHH")
PRODUCT_HEADER = struct.Struct(">4sI32s")  # magic, total length, sha256 of the product
MAGIC = b"OLP1"


@dataclass(frozen=True)
class SpacePacket:
    apid: int
    seq_flags: int
    seq_count: int
    data: bytes

    def pack(self) -> bytes:
        if not 0 < len(self.data) <= MAX_DATA:
            raise ProductError(f"a space packet carries 1 to {MAX_DATA} bytes of data, not {len(self.data)}")
        # version 0, type 0 (telemetry), no secondary header
        word1 = (0 << 13) | (0 << 12) | (0 << 11) | (self.apid & 0x7FF)
        word2 = (self.seq_flags << 14) | (self.seq_count % SEQ_MODULO)
        return PRIMARY_HEADER.pack(word1, word2, len(self.data) - 1) + self.data


def unpack_packet(buf: bytes, offset: int) -> tuple[SpacePacket, int]:
    """The packet at `offset` and the offset after it."""
    if len(buf) - offset < PRIMARY_HEADER.size:
        raise ProductError(f"{len(buf) - offset} stray bytes at offset {offset}: too short for a packet header")
    word1, word2, length = PRIMARY_HEADER.unpack_from(buf, offset)
    if word1 >> 13:
        raise ProductError(f"packet at offset {offset} has CCSDS version {word1 >> 13}, not 0: the stream is corrupt")
    end = offset + PRIMARY_HEADER.size + length + 1
    if end > len(buf):
        raise ProductError(f"packet at offset {offset} is truncated ({len(buf) - offset} of {end - offset} bytes)")
    return SpacePacket(word1 & 0x7FF, word2 >> 14, word2 & 0x3FFF, bytes(buf[offset + PRIMARY_HEADER.size:end])), end


@dataclass
class Packetizer:
    """Cuts products into packets, keeping each APID's sequence count across products."""

    max_data: int = 1024
    counts: dict[int, int] = field(default_factory=dict)

    def packetize(self, product: bytes, apid: int = APIDS["classification"]) -> list[bytes]:
        if not PRODUCT_HEADER.size < self.max_data <= MAX_DATA:
            raise ProductError(f"max_data must be between {PRODUCT_HEADER.size + 1} and {MAX_DATA}, not {self.max_data}")
        body = PRODUCT_HEADER.pack(MAGIC, len(product), hashlib.sha256(product).digest()) + product
        pieces = [body[i:i + self.max_data] for i in range(0, len(body), self.max_data)]
        packets = []
        for i, piece in enumerate(pieces):
            flags = UNSEGMENTED if len(pieces) == 1 else FIRST if i == 0 else LAST if i == len(pieces) - 1 else CONTINUATION
            count = self.counts.get(apid, 0)
            packets.append(SpacePacket(apid, flags, count, piece).pack())
            self.counts[apid] = (count + 1) % SEQ_MODULO
        return packets


@dataclass
class Reassembly:
    products: list[bytes]
    problems: list[str]  # one line per product lost or damaged, and per stream fault


def reassemble(stream: bytes, name: Callable[[bytes], str | None] = lambda head: None) -> Reassembly:
    """Products from a stream of packets; what could not be rebuilt is reported, not raised. A
    product that did not arrive whole is reported with how much of it did, and by `name`, which
    names a product from as much of its start as arrived (or returns None)."""
    products: list[bytes] = []
    problems: list[str] = []
    partial: dict[int, tuple[bytearray, int, int]] = {}  # apid -> (data, last count, first count)
    broken: set[int] = set()  # APIDs skipping the rest of a product already reported

    def incomplete(apid: int, why: str) -> None:
        data, _, first = partial.pop(apid)
        problems.append(f"APID {apid:#x}: {_lost(bytes(data), first, name)} is incomplete: {why}")

    offset = 0
    while offset < len(stream):
        try:
            packet, offset = unpack_packet(stream, offset)
        except ProductError as exc:
            if not partial:
                problems.append(f"stream: {exc}")
            for apid in list(partial):  # what the cut stream left unfinished
                incomplete(apid, f"the stream breaks off ({exc}), and whatever followed is lost")
            break
        apid, flags, count = packet.apid, packet.seq_flags, packet.seq_count
        if flags in (FIRST, UNSEGMENTED):
            broken.discard(apid)
            if apid in partial:
                incomplete(apid, "its last packet is missing")
            partial[apid] = (bytearray(packet.data), count, count)
        elif apid in broken:
            continue
        elif apid not in partial:
            problems.append(f"APID {apid:#x}: packet {count} continues a product whose first packet is missing")
            broken.add(apid)
            continue
        else:
            data, last, first = partial[apid]
            if count != (last + 1) % SEQ_MODULO:
                incomplete(apid, f"packets {last + 1}..{count - 1} are missing")
                broken.add(apid)
                continue
            data += packet.data
            partial[apid] = (data, count, first)
        if flags in (LAST, UNSEGMENTED):
            data, _, first = partial.pop(apid)
            product = _verified(bytes(data), apid, first, problems)
            if product is not None:
                products.append(product)
    for apid in list(partial):
        incomplete(apid, "the stream ends before its last packet")
    return Reassembly(products, problems)


def _lost(body: bytes, first: int, name: Callable[[bytes], str | None]) -> str:
    """A product that arrived in part, as its report names it: by `name` where its start names
    it, by its first packet, and with how many of its bytes arrived."""
    if len(body) < PRODUCT_HEADER.size or body[:4] != MAGIC:
        return f"product from packet {first} ({len(body):,} bytes arrived, without the product header)"
    _, length, _ = PRODUCT_HEADER.unpack_from(body)
    head = body[PRODUCT_HEADER.size:]
    called = name(head)
    return (f"product {called + ' ' if called else ''}from packet {first} ({len(head):,} of its {length:,} bytes "
            f"arrived, {max(length - len(head), 0):,} are missing)")


def _verified(body: bytes, apid: int, first: int, problems: list[str]) -> bytes | None:
    if len(body) < PRODUCT_HEADER.size or body[:4] != MAGIC:
        problems.append(f"APID {apid:#x}: product from packet {first} has no orbitlite product header")
        return None
    _, length, digest = PRODUCT_HEADER.unpack_from(body)
    product = body[PRODUCT_HEADER.size:]
    if len(product) != length or hashlib.sha256(product).digest() != digest:
        problems.append(f"APID {apid:#x}: product from packet {first} is damaged ({len(product)} of {length} bytes, "
                        "sha256 does not match)")
        return None
    return product
