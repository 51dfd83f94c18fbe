"""Chunked, resumable, checksummed file transfer over the link, in both directions.

A file moves in chunks, each carried by one command and its response with its own CRC-32C, into a
`.part` file beside a small journal that records how many bytes are verified and on disk. After a
broken link the next transfer of the same file (same size and sha256) resumes at the last verified
chunk. A file is installed under its final name, by one atomic rename, only when all of it is
there and its sha256 matches; nothing half-written is ever installed.

The payload's end is here (the ground's end is hil/link/transfer.py). Payload commands (served by
`FileService`):
- `stat {source}` -> `{size, sha256}`; `read {source, offset, length}` -> `{data, crc}`;
  a source is `product/<id>` (a product in the on-board store) or `file/<path>` (under the root);
- `put_begin {dest, size, sha256}` -> `{offset}`, the verified bytes already staged;
- `put_chunk {sha256, offset, data, crc}` -> `{offset}`; `put_end {sha256}` -> `{path, size}`.
Uploads land under the payload's root, in the areas it allows (e.g. `spool/`, `slots/b/`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from onboard._native import crc32c
from onboard.errors import TransferError
from onboard.files import fsync_dir, sha256_file, write_verified
from onboard.link.endpoint import Handler
from onboard.schema import Count, Schema, Text, decode, encode_json, read_bounded

MAX_CHUNK = 32768
DEFAULT_CHUNK = 4096  # the most a transfer sends at once; it shrinks on a noisy line (ChunkSize)
MIN_CHUNK = 128
STAGING = ".incoming"


class Journal(Schema):
    """Beside a part file: which file it is and how many of its bytes are verified."""

    size: Count
    sha256: Text
    origin: Text
    verified: Count


class PartialFile:
    """A file being received: `part` holds its verified prefix, and `journal` says how long that
    is and what whole it belongs to (size, sha256, origin). Every write is flushed to disk before
    the journal counts it."""

    def __init__(self, part: Path, size: int, sha256: str, origin: str) -> None:
        self.part, self.journal = Path(part), Path(f"{part}.json")
        self.size, self.sha256, self.origin = size, sha256, origin
        self.verified = self._resume_point()

    def _resume_point(self) -> int:
        try:  # a journal that is missing, unreadable or of another file restarts the transfer
            meta = decode(read_bounded(self.journal, 16384, error=TransferError), Journal, source=str(self.journal),
                          error=TransferError)
            same = (meta.size, meta.sha256, meta.origin) == (self.size, self.sha256, self.origin)
            verified = meta.verified if same else 0
        except TransferError:
            verified = 0
        try:
            with open(self.part, "ab") as f:  # an unjournaled tail (a write cut short) is dropped
                verified = min(verified, f.tell())
                f.truncate(verified)
        except OSError as exc:
            raise TransferError(f"cannot stage {self.part}: {exc.strerror}") from None
        self._record(verified)
        return verified

    def write(self, offset: int, data: bytes) -> None:
        if offset != self.verified:
            raise TransferError(f"{self.origin}: a chunk at byte {offset}, but {self.verified} are verified")
        if offset + len(data) > self.size:
            raise TransferError(f"{self.origin}: a chunk past the announced size of {self.size} bytes")
        try:
            fd = os.open(self.part, os.O_RDWR)
            try:
                if os.pwrite(fd, data, offset) != len(data):
                    raise OSError(28, "short write")
                os.fsync(fd)
                if os.pread(fd, len(data), offset) != data:
                    raise TransferError(f"{self.part} does not read back as written: the storage is failing")
            finally:
                os.close(fd)
        except OSError as exc:
            raise TransferError(f"cannot write {self.part}: {exc.strerror}") from None
        self._record(offset + len(data))

    def _record(self, verified: int) -> None:
        self.verified = verified
        journal = Journal(size=self.size, sha256=self.sha256, origin=self.origin, verified=verified)
        write_verified(self.journal, encode_json(journal))

    @property
    def complete(self) -> bool:
        return self.verified == self.size

    def install(self, dest: Path) -> Path:
        """Check the whole file's sha256 and rename it to `dest`; a mismatch discards it."""
        if not self.complete:
            raise TransferError(f"{self.origin}: {self.verified} of {self.size} bytes received; nothing installed")
        if sha256_file(self.part) != self.sha256:
            self.discard()
            raise TransferError(f"{self.origin}: the received file's sha256 does not match; it is discarded "
                                f"and nothing is installed")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.part, dest)
            fsync_dir(dest.parent)
        except OSError as exc:
            raise TransferError(f"cannot install {dest}: {exc.strerror}") from None
        self.journal.unlink(missing_ok=True)
        return dest

    def discard(self) -> None:
        self.part.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)


def pread(path: Path, offset: int, length: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return os.pread(f.fileno(), length, offset)
    except OSError as exc:
        raise TransferError(f"cannot read {path}: {exc.strerror}") from None


def check_chunk(data: Any, crc: Any, where: str) -> bytes:
    if not isinstance(data, bytes) or crc32c(data) != crc:
        raise TransferError(f"{where}: the chunk's CRC-32C does not match")
    return data


class FileService:
    """Serves `stat`/`read` of products and files under `root`, and stages uploads into the
    areas of `root` named in `upload_areas` (relative folders, e.g. "spool", "slots/b").
    `read_product(id)` gives a stored product's bytes; `on_install(path)` is told of each upload."""

    def __init__(self, root: Path, upload_areas: tuple[str, ...], read_product: Callable[[int], bytes],
                 on_install: Callable[[Path], None] = lambda path: None) -> None:
        self.root = Path(root)
        self.upload_areas = upload_areas
        self._read_product = read_product
        self._on_install = on_install
        self._staging = self.root / STAGING
        self._staging.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, tuple[PartialFile, Path]] = {}

    def handlers(self) -> dict[str, Handler]:
        return {"stat": self.stat, "read": self.read, "put_begin": self.put_begin, "put_chunk": self.put_chunk,
                "put_end": self.put_end}

    def stat(self, args: dict[str, Any]) -> dict[str, Any]:
        source = self._source(args["source"])
        if isinstance(source, bytes):
            return {"size": len(source), "sha256": hashlib.sha256(source).hexdigest()}
        return {"size": source.stat().st_size, "sha256": sha256_file(source)}

    def read(self, args: dict[str, Any]) -> dict[str, Any]:
        offset, length = int(args["offset"]), int(args["length"])
        if not 0 < length <= MAX_CHUNK or offset < 0:
            raise TransferError(f"read: length must be 1..{MAX_CHUNK} and offset non-negative")
        source = self._source(args["source"])
        chunk = source[offset:offset + length] if isinstance(source, bytes) else pread(source, offset, length)
        return {"data": chunk, "crc": crc32c(chunk)}

    def _source(self, source: str) -> bytes | Path:
        """A product's bytes, or the path of a file under the root."""
        kind, _, name = str(source).partition("/")
        if kind == "product" and name.isdigit():
            return self._read_product(int(name))
        if kind == "file":
            path = self.resolve(name)
            if not path.is_file():
                raise TransferError(f"{source}: no such file on the payload")
            return path
        raise TransferError(f"{source!r} is no source: give product/<id> or file/<path>")

    def resolve(self, name: str, areas: tuple[str, ...] | None = None) -> Path:
        """The payload path a ground-given relative `name` stands for, refused if it leaves the
        root, names the staging area, or lies outside `areas` (when given)."""
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.parts[0] == STAGING:
            raise TransferError(f"{name!r} is not a path inside the payload's root")
        if areas is not None and not any(rel.is_relative_to(a) and rel != PurePosixPath(a) for a in areas):
            raise TransferError(f"{name!r} is outside the upload areas ({', '.join(areas)})")
        return self.root / rel

    def put_begin(self, args: dict[str, Any]) -> dict[str, Any]:
        dest = self.resolve(args["dest"], self.upload_areas)
        size, sha = int(args["size"]), str(args["sha256"])
        if size < 0 or len(sha) != 64:
            raise TransferError("put_begin: size must be non-negative and sha256 64 hex digits")
        partial = PartialFile(self._staging / f"{sha}.part", size, sha, str(args["dest"]))
        self._open[sha] = (partial, dest)
        return {"offset": partial.verified}

    def put_chunk(self, args: dict[str, Any]) -> dict[str, Any]:
        partial, _ = self._staged(args["sha256"])
        offset, data = int(args["offset"]), check_chunk(args["data"], args["crc"], partial.origin)
        if offset + len(data) <= partial.verified:
            return {"offset": partial.verified}  # a chunk we have: its answer was lost
        partial.write(offset, data)
        return {"offset": partial.verified}

    def put_end(self, args: dict[str, Any]) -> dict[str, Any]:
        partial, dest = self._staged(args["sha256"])
        del self._open[partial.sha256]
        path = partial.install(dest)
        self._on_install(path)
        return {"path": str(path.relative_to(self.root)), "size": partial.size}

    def _staged(self, sha: Any) -> tuple[PartialFile, Path]:
        try:
            return self._open[str(sha)]
        except KeyError:
            raise TransferError(f"no upload of {sha} begun: send put_begin first") from None
