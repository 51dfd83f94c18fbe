"""Products through CCSDS Space Packets and back, checked by an independent decoder (the
`spacepackets` package)."""

from __future__ import annotations

import hashlib

import pytest
from spacepackets.ccsds.spacepacket import SequenceFlags, SpacePacketHeader

from onboard.contracts.ccsds import APIDS, MAX_DATA, Packetizer, reassemble
from onboard.errors import ProductError
from tests.conftest import orbitlite, run_onboard


def _products(n: int, size: int = 2500) -> list[bytes]:
    return [hashlib.sha256(bytes([i])).digest() * (size // 32 + i) for i in range(n)]


def test_an_independent_decoder_reads_our_packets():
    products = _products(2)
    packets = Packetizer(max_data=512).packetize(products[0]) + Packetizer(max_data=512).packetize(products[1])
    headers = [SpacePacketHeader.unpack(p) for p in packets[:len(packets) // 2]]
    assert [h.apid for h in headers] == [APIDS["classification"]] * len(headers)
    assert [h.seq_count for h in headers] == list(range(len(headers)))
    assert headers[0].seq_flags == SequenceFlags.FIRST_SEGMENT and headers[-1].seq_flags == SequenceFlags.LAST_SEGMENT
    assert all(h.seq_flags == SequenceFlags.CONTINUATION_SEGMENT for h in headers[1:-1])
    assert all(h.packet_len == len(p) and h.ccsds_version == 0 for h, p in zip(headers, packets))
    payload = b"".join(p[6:] for p in packets[:len(headers)])
    assert payload[40:] == products[0] and payload[:4] == b"OLP1"


def test_round_trip_and_sequence_counts_across_products():
    products = _products(3)
    packetizer = Packetizer(max_data=700)
    stream = b"".join(p for product in products for p in packetizer.packetize(product))
    result = reassemble(stream)
    assert result.products == products and result.problems == []
    small = Packetizer().packetize(b"tiny")
    assert SpacePacketHeader.unpack(small[0]).seq_flags == SequenceFlags.UNSEGMENTED
    assert reassemble(small[0]).products == [b"tiny"]


def test_losses_and_damage_are_reported_and_the_rest_survives():
    products = _products(3)
    packetizer = Packetizer(max_data=600)
    per_product = [packetizer.packetize(p) for p in products]
    lost = per_product[0] + per_product[1][:2] + per_product[1][3:] + per_product[2]
    result = reassemble(b"".join(lost))
    assert result.products == [products[0], products[2]]
    assert len(result.problems) == 1 and "missing" in result.problems[0]
    damaged = bytearray(b"".join(per_product[0]))
    damaged[800] ^= 0xFF
    result = reassemble(bytes(damaged))
    assert result.products == [] and "sha256 does not match" in result.problems[0]
    cut = b"".join(per_product[2])[:-10]
    assert "truncated" in reassemble(cut).problems[0]


def test_bad_sizes_are_refused():
    with pytest.raises(ProductError, match="max_data"):
        Packetizer(max_data=MAX_DATA + 1).packetize(b"x")


def test_packetize_and_reassemble_commands(ground_models, tmp_path):
    product = run_onboard(ground_models["tflite"], tmp_path / "products")
    result = orbitlite("downlink", "packetize", str(product), "--out", str(tmp_path / "down.bin"), "--max-data", "200")
    assert result.returncode == 0, result.stderr
    result = orbitlite("downlink", "reassemble", str(tmp_path / "down.bin"), "--out", str(tmp_path / "ground"))
    assert result.returncode == 0, result.stderr
    (rebuilt,) = (tmp_path / "ground").glob("*.msgpack")
    assert rebuilt.read_bytes() == product.read_bytes()
    stream = (tmp_path / "down.bin").read_bytes()
    (tmp_path / "lossy.bin").write_bytes(stream[:206] + stream[412:])  # the second packet lost
    result = orbitlite("downlink", "reassemble", str(tmp_path / "lossy.bin"), "--out", str(tmp_path / "ground2"))
    assert result.returncode == 1 and "not rebuilt: APID 0x100" in result.stderr and "Traceback" not in result.stderr
