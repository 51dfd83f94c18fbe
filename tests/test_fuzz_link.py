"""Fuzz tests of the link's readers: the frame decoder (what the serial port hands over), the
sealed messages inside frames (unseal), and CCSDS reassembly of a downlinked packet stream. Each
takes mutants of a valid stream; none may raise. The decoder hands over only whole, checked frames
unseal opens a message only when its MAC holds;
reassembly returns only products whose length and sha256 check, and reports the rest."""

from __future__ import annotations

import hashlib
import random

from hypothesis import example, given

from onboard.contracts.ccsds import Packetizer, reassemble
from onboard.link.framing import MAX_ENCODED, MAX_PAYLOAD, Frame, FrameDecoder, FrameType
from onboard.link.sealing import seal, unseal
from tests.fuzz import FUZZ_EXAMPLES, fuzz_settings, mutated_bytes

KEY = bytes(range(32))
_rng = random.Random(20)
FRAMES = [Frame(FrameType.COMMAND, 1, seal(KEY, FrameType.COMMAND, 1, {"op": "ping"})),
          Frame(FrameType.RESPONSE, 2, _rng.randbytes(300)),
          Frame(FrameType.COMMAND, 3, b""),
          Frame(FrameType.RESPONSE, 4, _rng.randbytes(MAX_PAYLOAD))]
STREAM = b"".join(f.encode() for f in FRAMES)
BODY = {"op": "read", "args": {"path": "product/3", "offset": 0, "length": 4096}}
SEALED = seal(KEY, FrameType.COMMAND, 7, BODY)
PRODUCTS = [_rng.randbytes(n) for n in (0, 100, 3000)]
PACKETS = b"".join(p for product in PRODUCTS for p in Packetizer(max_data=1024).packetize(product))
DIGESTS = {hashlib.sha256(p).digest() for p in PRODUCTS}


def fuzz_frame_decoder(examples: int) -> int:
    """Mutants of a frame stream, fed in pieces; returns how many inputs ran."""
    ran = 0

    @fuzz_settings(examples)
    @given(stream=mutated_bytes(STREAM, mutations=6))
    @example(stream=b"\x00" * 10_000)
    @example(stream=b"\x01" * (2 * MAX_ENCODED + 7))  # never a delimiter: nothing may pile up
    @example(stream=STREAM[: len(STREAM) // 2] + STREAM)
    def run(stream: bytes) -> None:
        nonlocal ran
        ran += 1
        decoder, frames = FrameDecoder(), []
        cut = random.Random(len(stream)).sample(range(len(stream) + 1), min(8, len(stream) + 1))
        for a, b in zip([0, *sorted(cut)], [*sorted(cut), len(stream)]):
            frames += decoder.feed(stream[a:b])
        for frame in frames:
            assert isinstance(frame, Frame) and frame.type in FrameType and len(frame.payload) <= MAX_PAYLOAD
            assert FrameDecoder().feed(frame.encode()) == [frame]  # a frame handed over is a whole one

    run()
    return ran


def fuzz_unseal(examples: int) -> int:
    """Mutants of a sealed command; returns how many inputs ran."""
    ran = 0

    @fuzz_settings(examples)
    @given(payload=mutated_bytes(SEALED, mutations=3))
    @example(payload=b"\x93\xcf" + b"\xff" * 8 + b"\xc4\x00\xc4\x00")  # counter 2^64-1, empty message and MAC
    @example(payload=b"\x91" * 100_000 + b"\xc0")  # nested far past any recursion limit
    @example(payload=SEALED.replace(b"\x93\x07", b"\x93\xd0\x07", 1))  # the counter as int8: it still opens
    def run(payload: bytes) -> None:
        nonlocal ran
        ran += 1
        opened = unseal(KEY, Frame(FrameType.COMMAND, 0, payload))
        if opened is not None and opened.body is not None:
            # Only what the key sealed opens (the same counter, encoded otherwise, may).
            assert (opened.counter, opened.body) == (7, BODY)

    run()
    return ran


def fuzz_reassembly(examples: int) -> int:
    """Mutants of a CCSDS packet stream; returns how many inputs ran."""
    ran = 0

    @fuzz_settings(examples)
    @given(stream=mutated_bytes(PACKETS, mutations=4))
    @example(stream=PACKETS[:6] + b"\xff" * 3)
    @example(stream=PACKETS[::-1])
    def run(stream: bytes) -> None:
        nonlocal ran
        ran += 1
        result = reassemble(stream)
        assert all(hashlib.sha256(p).digest() in DIGESTS for p in result.products)  # only what was sent
        assert all(isinstance(line, str) and "\n" not in line for line in result.problems)

    run()
    return ran


def test_the_unmutated_inputs_are_read():
    assert FrameDecoder().feed(STREAM) == FRAMES
    assert unseal(KEY, Frame(FrameType.COMMAND, 0, SEALED)).body["op"] == "read"
    assert reassemble(PACKETS).products == PRODUCTS


def test_fuzz_frame_decoder():
    assert fuzz_frame_decoder(FUZZ_EXAMPLES) >= FUZZ_EXAMPLES


def test_fuzz_unseal():
    assert fuzz_unseal(FUZZ_EXAMPLES) >= FUZZ_EXAMPLES


def test_fuzz_ccsds_reassembly():
    assert fuzz_reassembly(FUZZ_EXAMPLES) >= FUZZ_EXAMPLES
