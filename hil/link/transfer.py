"""The ground's end of file transfer over the link: `download` from and `upload` to the payload,
chunked, resumable and checksummed, with a chunk size that shrinks on a noisy line (the protocol
and the payload's end: onboard/link/files.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hil.link.client import Client
from onboard._native import crc32c
from onboard.errors import LinkError, TransferError
from onboard.files import sha256_file
from onboard.link.files import DEFAULT_CHUNK, MAX_CHUNK, MIN_CHUNK, PartialFile, check_chunk, pread


@dataclass(frozen=True)
class Transfer:
    name: str
    size: int
    resumed_at: int  # bytes already verified before this call
    seconds: float

    @property
    def bytes_per_s(self) -> float:
        return (self.size - self.resumed_at) / self.seconds if self.seconds > 0 else float("inf")


Progress = Callable[[int, int], None]  # told the bytes moved by each step, and the file's size


class ChunkSize:
    """The chunk size a noisy line can carry. A frame gets through whole with probability
    (1 - p)^length, so long chunks starve on a bad line: a chunk that goes unanswered after
    `QUICK_RETRIES` retransmissions is sent again at half the size, down to MIN_CHUNK (where the
    client's full retries apply); after `CLEAN_RUN` chunks that went through first time, the size
    doubles again, up to the most asked for."""

    QUICK_RETRIES = 1
    CLEAN_RUN = 4

    def __init__(self, client: Client, most: int) -> None:
        if not MIN_CHUNK <= most <= MAX_CHUNK:
            raise TransferError(f"a chunk is {MIN_CHUNK} to {MAX_CHUNK} bytes, not {most}")
        self.client, self.most, self.now = client, most, most
        self._clean = 0

    def call(self, left: int, command: Callable[[int, int | None], Any]) -> Any:
        """`command(length, retries)` for the next chunk of at most `left` bytes, shrinking the
        chunk until it goes through."""
        while True:
            retransmissions = self.client.stats.retransmissions
            try:
                result = command(min(self.now, left), None if self.now == MIN_CHUNK else self.QUICK_RETRIES)
            except LinkError:
                if self.now == MIN_CHUNK:
                    raise
                self.now, self._clean = max(MIN_CHUNK, self.now // 2), 0
                continue
            if self.client.stats.retransmissions > retransmissions:
                self._clean = 0
            else:
                self._clean += 1
                if self._clean >= self.CLEAN_RUN:
                    self.now, self._clean = min(self.most, self.now * 2), 0
            return result


def download(client: Client, source: str, dest: Path, chunk: int = DEFAULT_CHUNK,
             progress: Progress = lambda moved, size: None) -> Transfer:
    """Fetch `source` from the payload into `dest`, resuming a broken earlier download of it."""
    dest = Path(dest)
    start = time.monotonic()
    info = client.call("stat", source=source)
    size, sha = int(info["size"]), str(info["sha256"])
    if dest.is_file() and dest.stat().st_size == size and sha256_file(dest) == sha:
        progress(size, size)  # fetched before (its acknowledgement may be what was lost)
        return Transfer(source, size, size, time.monotonic() - start)
    partial = PartialFile(dest.with_name(dest.name + ".part"), size, sha, source)
    resumed_at = partial.verified
    progress(resumed_at, size)
    chunk_size = ChunkSize(client, chunk)
    while not partial.complete:
        got = chunk_size.call(partial.size - partial.verified, lambda length, retries: client.call(
            "read", reply_bytes=length + 128, retries=retries, source=source, offset=partial.verified, length=length))
        data = check_chunk(got["data"], got["crc"], source)
        if not data:
            raise TransferError(f"{source}: it shrank on the payload during the transfer; start again")
        partial.write(partial.verified, data)
        progress(len(data), size)
    partial.install(dest)
    return Transfer(source, partial.size, resumed_at, time.monotonic() - start)


def upload(client: Client, path: Path, dest: str, chunk: int = DEFAULT_CHUNK,
           progress: Progress = lambda moved, size: None) -> Transfer:
    """Send the local file `path` to `dest` under the payload's root, resuming a broken earlier upload."""
    path = Path(path)
    start = time.monotonic()
    try:
        size, sha = path.stat().st_size, sha256_file(path)
    except OSError as exc:
        raise TransferError(f"cannot read {path}: {exc.strerror}") from None
    offset = resumed_at = int(client.call("put_begin", dest=dest, size=size, sha256=sha)["offset"])
    progress(offset, size)
    chunk_size = ChunkSize(client, chunk)
    while offset < size:
        def put(length: int, retries: int | None) -> int:
            piece = pread(path, offset, length)
            return int(client.call("put_chunk", retries=retries, sha256=sha, offset=offset, data=piece,
                                   crc=crc32c(piece))["offset"])

        done = chunk_size.call(size - offset, put)
        progress(done - offset, size)
        offset = done
    client.call("put_end", sha256=sha)
    return Transfer(str(path), size, resumed_at, time.monotonic() - start)
