"""File transfer over the link at 115200 baud against the line rate (11,520 bytes/s of 8N1),
through real pseudo-terminals paced by the line simulator (tests/linesim.py), on a clean line and
with 1 byte in 1,000 corrupted. `make bench` prints the rates; the ratio to the line rate holds
whatever the machine's speed, since the line, not the CPU, is the bottleneck; it is asserted only
when benchmarks are enabled (`make bench`), as a loaded machine (CI) can upset any timing, and
under `make test` each transfer asserts only that the file landed whole."""

from __future__ import annotations

import hashlib
import random
import threading

import pytest

from hil.link import transfer
from hil.link.client import Client
from onboard.link.endpoint import Endpoint
from onboard.link.files import FileService
from tests.linesim import Faults, LineSim

BAUD = 115200
KEY = bytes(range(32))
CHUNKS = [1024, 2048, 4096]


def _transfer_rate(tmp_path, direction: str, chunk: int, size: int, corrupt: float, benchmark, seed: int):
    data = random.Random(seed).randbytes(size)
    service = FileService(tmp_path / "payload", ("spool",), {1: data}.__getitem__)
    (tmp_path / "local").write_bytes(data)
    with LineSim(BAUD, seed=seed, faults=Faults(corrupt=corrupt)) as line:
        endpoint = Endpoint(line.open_payload(), KEY, tmp_path / "state.json", service.handlers())
        stop = threading.Event()
        server = threading.Thread(target=endpoint.serve, args=(stop,), daemon=True)
        server.start()
        try:
            client = Client(line.open_ground(), KEY, timeout=0.2, retries=10, run_timeout=300)
            if direction == "download":
                run = lambda: transfer.download(client, "product/1", tmp_path / "got", chunk=chunk)  # noqa: E731
                landed = tmp_path / "got"
            else:
                run = lambda: transfer.upload(client, tmp_path / "local", "spool/got", chunk=chunk)  # noqa: E731
                landed = tmp_path / "payload/spool/got"
            t = benchmark.pedantic(run, rounds=1, iterations=1)
        finally:
            stop.set()
            server.join()
        faults = line.uplink.stats.corrupted + line.downlink.stats.corrupted
    assert hashlib.sha256(landed.read_bytes()).digest() == hashlib.sha256(data).digest()
    rate = size / t.seconds
    ratio = rate / (BAUD / 10)
    benchmark.extra_info.update(bytes_per_s=round(rate), line_ratio=round(ratio, 3), chunk=chunk,
                                corrupt_per_byte=corrupt, corrupted_bytes=faults,
                                retransmissions=client.stats.retransmissions)
    print(f"\n{direction} of {size} bytes in {chunk}-byte chunks, {corrupt:g} corrupted/byte: "
          f"{rate:.0f} bytes/s, {ratio:.3f} of the line rate ({faults} bytes corrupted, "
          f"{client.stats.retransmissions} retransmissions)")
    return ratio


@pytest.mark.parametrize("direction", ["download", "upload"])
@pytest.mark.parametrize("chunk", CHUNKS)
def test_bench_transfer_on_a_clean_line(benchmark, benchmarks_enabled, tmp_path, chunk, direction):
    ratio = _transfer_rate(tmp_path, direction, chunk, 64 * 1024, 0.0, benchmark, seed=chunk)
    if benchmarks_enabled:
        assert ratio > 0.5


@pytest.mark.parametrize("chunk", CHUNKS)
def test_bench_download_with_corruption(benchmark, benchmarks_enabled, tmp_path, chunk):
    """One byte in 1,000 corrupted: a chunk gets through whole with probability about
    0.999^(chunk + 300), so the transfer halves a chunk that does not get through (ChunkSize):
    whatever the chunk asked for, the rate stays within one noisy line's reach."""
    ratio = _transfer_rate(tmp_path, "download", chunk, 8 * 1024, 1e-3, benchmark, seed=chunk)
    if benchmarks_enabled:
        assert ratio > 0.03
