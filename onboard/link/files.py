"""Chunked, resumable, checksummed file transfer over the link, in both directions, within the
payload's file area.

A file moves in chunks, each carried by one command and its response with its own CRC-32C, into a
`.part` file beside a small journal that records how many bytes are verified and on disk. After a
broken link the next transfer of the same file (same size and sha256) resumes at the last verified
chunk. A file is installed under its final name, by one atomic rename, only when all of it is
there and its sha256 matches; nothing half-written is ever installed.

The payload's end is here (the ground's end is hil/link/transfer.py). Payload commands (served by
`FileService`; each one's args are checked against its schema below, a bad one refused in one line):
- `stat {source}` -> `{size, sha256}`; `read {source, offset, length}` -> `{data, crc}`;
  a source is `product/<id>` (a product in the on-board store) or `file/<path>` (under the root);
- `put_begin {dest, size, sha256}` -> `{offset}`, the verified bytes already staged;
- `put_chunk {sha256, offset, data, crc}` -> `{offset}`; `put_end {sha256}` -> `{path, size}`.

The file area is the payload's root, and nothing on the link leaves it. A path the ground names is
relative and made of names (none empty, `.` or `..`, none over 255 bytes or holding a control
character, at most 1,024 bytes in all); one that is not is refused whole, at `put_begin` before
any data moves. Paths are opened one name at a time from the root (`openat`), never by the string:
- a read follows a symbolic link only as far as it stays under the root and out of the staging
  area (`slots/active` leads to a slot); a link that leads out is refused;
- an upload goes directly into an upload area (`files/NAME`, `slots/b/NAME`, the spool's
  `NAME`, never a folder below one, as the spool's `done/`) that is open at the time (the active
  model slot never is), and follows no link at all: the area's folder is opened name by name with
  O_NOFOLLOW at `put_begin`, and again at `put_end`, where the file is renamed into that open
  folder, so a link planted in between changes nothing.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Callable, Iterator

from msgspec import Meta

from onboard._native import crc32c
from onboard.errors import TransferError
from onboard.files import fsync_dir, sha256_file, write_verified
from onboard.link.endpoint import Handler
from onboard.schema import Count, Schema, Sha256, Text, convert, decode, encode_json, read_bounded

MAX_CHUNK = 32768
DEFAULT_CHUNK = 4096  # the most a transfer sends at once; it shrinks on a noisy line (ChunkSize)
MIN_CHUNK = 128
STAGING = ".incoming"
MAX_NAME_BYTES = 255  # a name in a path, as a file system allows
MAX_PATH_BYTES = 1024  # a whole path under the root
MAX_LINKS = 8  # symbolic links a read follows in one path
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class Journal(Schema):
    """Beside a part file: which file it is and how many of its bytes are verified."""

    size: Count
    sha256: Text
    origin: Text
    verified: Count


# The args of each command.
class StatArgs(Schema):
    source: Text


class ReadArgs(Schema):
    source: Text
    offset: Count
    length: Annotated[int, Meta(ge=1, le=MAX_CHUNK)]


class PutBeginArgs(Schema):
    dest: Text
    size: Count
    sha256: Sha256


class PutChunkArgs(Schema):
    sha256: Sha256
    offset: Count
    data: Annotated[bytes, Meta(max_length=MAX_CHUNK)]
    crc: Annotated[int, Meta(ge=0, le=2**32 - 1)]


class PutEndArgs(Schema):
    sha256: Sha256


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

    def install(self, dest: Path, folder: int | None = None) -> Path:
        """Check the whole file's sha256 and rename it to `dest` (with `folder`, an open folder's
        descriptor, to the name `dest` in it); a mismatch discards it."""
        if not self.complete:
            raise TransferError(f"{self.origin}: {self.verified} of {self.size} bytes received; nothing installed")
        if sha256_file(self.part) != self.sha256:
            self.discard()
            raise TransferError(f"{self.origin}: the received file's sha256 does not match; it is discarded "
                                f"and nothing is installed")
        try:
            if folder is None:
                dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.part, dest, dst_dir_fd=folder)
            if folder is None:
                fsync_dir(dest.parent)
            else:
                os.fsync(folder)
        except OSError as exc:
            raise TransferError(f"cannot install {self.origin} as {dest}: {exc.strerror}") from None
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


def area_path(name: str) -> tuple[str, ...]:
    """The names of a path the ground gives under the root, or TransferError saying why it
    cannot be one."""
    shown = repr(name) if len(name) <= 60 else repr(name[:57]) + "..."
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_PATH_BYTES:
        raise TransferError(f"{shown} is a path of {size:,} bytes; at most {MAX_PATH_BYTES:,} are allowed")
    names = tuple(name.split("/"))
    for part in names:
        if part in ("", ".", ".."):
            raise TransferError(f"{shown} is not a path inside the payload's root: give names relative to it, "
                                f"none empty, '.' or '..'")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in part):
            raise TransferError(f"{shown} holds a control character (NUL or another): no file name can")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise TransferError(f"{shown} holds a name of more than {MAX_NAME_BYTES} bytes: no file name can be")
    return names


class FileService:
    """Serves `stat`/`read` of products and files under `root`, and stages uploads into the
    areas of `root` named in `upload_areas` (relative folders, e.g. "spool", "slots/b").
    `read_product(id)` gives a stored product's bytes; `closed()` names the areas not to be
    written now, each with the reason (the active model slot). The `secrets` (the link's key file
    and its state, which holds a re-keyed key) are never read, by whatever path or link they are
    reached: the file opened is compared with them by device and inode."""

    def __init__(self, root: Path, upload_areas: tuple[str, ...], read_product: Callable[[int], bytes],
                 closed: Callable[[], dict[str, str]] = dict, secrets: tuple[Path, ...] = ()) -> None:
        self.root = Path(root)
        self.upload_areas = upload_areas
        self._secrets = secrets
        self._read_product = read_product
        self._closed = closed
        self._staging = self.root / STAGING
        self._staging.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, tuple[PartialFile, str]] = {}

    def handlers(self) -> dict[str, Handler]:
        return {"stat": self.stat, "read": self.read, "put_begin": self.put_begin, "put_chunk": self.put_chunk,
                "put_end": self.put_end}

    def stat(self, args: dict[str, Any]) -> dict[str, Any]:
        source = convert(args, StatArgs, source="stat", error=TransferError).source
        with self._source(source) as f:
            if isinstance(f, bytes):
                return {"size": len(f), "sha256": hashlib.sha256(f).hexdigest()}
            return {"size": os.fstat(f.fileno()).st_size, "sha256": hashlib.file_digest(f, "sha256").hexdigest()}

    def read(self, args: dict[str, Any]) -> dict[str, Any]:
        a = convert(args, ReadArgs, source="read", error=TransferError)
        with self._source(a.source) as f:
            chunk = f[a.offset:a.offset + a.length] if isinstance(f, bytes) else os.pread(f.fileno(), a.length,
                                                                                          a.offset)
        return {"data": chunk, "crc": crc32c(chunk)}

    @contextmanager
    def _source(self, source: str) -> Iterator[bytes | BinaryIO]:
        """A product's bytes, or a file under the root opened for reading."""
        kind, _, name = source.partition("/")
        if kind == "product":
            try:
                product_id = decode(name, Count, source=source, error=TransferError)
            except TransferError:
                raise TransferError(f"{source[:60]}: no product {name[:40]}: a product id is a whole number "
                                    f"from 0 to {2**63 - 1}") from None
            yield self._read_product(product_id)
        elif kind == "file":
            with self._open_file(source, area_path(name)) as f:
                yield f
        else:
            raise TransferError(f"{source[:60]!r} is no source: give product/<id> or file/<path>")

    def _is_secret(self, opened: os.stat_result) -> bool:
        for path in self._secrets:
            try:
                known = os.stat(path)
            except OSError:
                continue
            if (known.st_dev, known.st_ino) == (opened.st_dev, opened.st_ino):
                return True
        return False

    @contextmanager
    def _open_file(self, source: str, names: tuple[str, ...]) -> Iterator[BinaryIO]:
        """The file `names` leads to from the root, opened one name at a time; a symbolic link is
        followed only as far as it stays under the root and out of the staging area."""
        walked = [os.open(self.root, _FOLDER)]  # the root, then each folder walked into
        pending, links = list(names), 0
        try:
            while pending:
                name = pending.pop(0)
                if name in ("", "."):
                    continue
                if name == "..":  # from a link's target
                    if len(walked) == 1:
                        raise TransferError(f"{source}: a symbolic link in it leads out of the payload's root; "
                                            f"refused")
                    os.close(walked.pop())
                    continue
                try:
                    walked.append(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                                          dir_fd=walked[-1]))
                except OSError as exc:
                    if exc.errno != errno.ELOOP:
                        raise TransferError(f"{source}: no such file on the payload") from None
                    target, links = os.readlink(name, dir_fd=walked[-1]), links + 1
                    if target.startswith("/") or links > MAX_LINKS:
                        raise TransferError(f"{source}: a symbolic link in it leads out of the payload's root; "
                                            f"refused") from None
                    pending[:0] = target.split("/")
                    continue
                if len(walked) == 2 and name == STAGING:
                    raise TransferError(f"{source}: the staging area is not for reading")
            if len(walked) == 1 or not stat.S_ISREG(os.fstat(walked[-1]).st_mode):
                raise TransferError(f"{source}: not a file on the payload")
            if self._is_secret(os.fstat(walked[-1])):
                raise TransferError(f"{source}: the link's key and state are never sent over the link")
            with os.fdopen(walked.pop(), "rb") as f:
                yield f
        finally:
            for fd in walked:
                os.close(fd)

    def put_begin(self, args: dict[str, Any]) -> dict[str, Any]:
        a = convert(args, PutBeginArgs, source="put_begin", error=TransferError)
        with self._area(a.dest) as (folder, name):
            try:
                if stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
                    raise TransferError(f"{a.dest}: a folder of that name is there; it is not replaced")
            except FileNotFoundError:
                pass
        partial = PartialFile(self._staging / f"{a.sha256}.part", a.size, a.sha256, a.dest)
        self._open[a.sha256] = (partial, a.dest)
        return {"offset": partial.verified}

    def put_chunk(self, args: dict[str, Any]) -> dict[str, Any]:
        a = convert(args, PutChunkArgs, source="put_chunk", error=TransferError)
        partial, _ = self._staged(a.sha256)
        data = check_chunk(a.data, a.crc, partial.origin)
        if a.offset + len(data) <= partial.verified:
            return {"offset": partial.verified}  # a chunk we have: its answer was lost
        partial.write(a.offset, data)
        return {"offset": partial.verified}

    def put_end(self, args: dict[str, Any]) -> dict[str, Any]:
        partial, dest = self._staged(convert(args, PutEndArgs, source="put_end", error=TransferError).sha256)
        del self._open[partial.sha256]
        with self._area(dest) as (folder, name):  # again: a slot may have become active, a link been planted
            partial.install(Path(name), folder)
        return {"path": dest, "size": partial.size}

    def _staged(self, sha: str) -> tuple[PartialFile, str]:
        try:
            return self._open[sha]
        except KeyError:
            raise TransferError(f"no upload of {sha} begun: send put_begin first") from None

    @contextmanager
    def _area(self, path: str) -> Iterator[tuple[int, str]]:
        """The open folder of the upload area `path` lies directly in, and its name there; refused
        unless that area is open for uploads now."""
        names, closed = area_path(path), self._closed()
        area = "/".join(names[:-1])
        if area not in self.upload_areas:
            into = ", ".join(f"{a}/" for a in self.upload_areas if a not in closed)
            raise TransferError(f"{path[:60]!r}: uploads go directly into {into} (a file name there, no folder "
                                f"below)")
        if area in closed:
            raise TransferError(f"{path}: {closed[area]}")
        folder = self._folder(names[:-1])
        try:
            yield folder, names[-1]
        finally:
            os.close(folder)

    def _folder(self, names: tuple[str, ...]) -> int:
        """The folder `names` under the root, made where missing and opened one name at a time,
        following no symbolic link."""
        folder = os.open(self.root, _FOLDER)
        try:
            for i, name in enumerate(names):
                try:
                    os.mkdir(name, dir_fd=folder)
                except FileExistsError:
                    pass
                try:
                    inner = os.open(name, _FOLDER | os.O_NOFOLLOW, dir_fd=folder)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise TransferError(f"{'/'.join(names[:i + 1])} on the payload is a symbolic link or no "
                                            f"folder: nothing is written through it") from None
                    raise TransferError(f"cannot open {'/'.join(names[:i + 1])} on the payload: "
                                        f"{exc.strerror}") from None
                os.close(folder)
                folder = inner
        except BaseException:
            os.close(folder)
            raise
        return folder

    @contextmanager
    def _uploaded(self, path: str, area: str) -> Iterator[tuple[int, str]]:
        """The open folder of the upload area `area` and the name in it of the file `path`, which
        must lie directly there and be a file, no symbolic link."""
        names = area_path(path)
        if "/".join(names[:-1]) != area:
            raise TransferError(f"{path[:60]!r}: name a file directly in {area}/")
        folder = self._folder(names[:-1])
        try:
            try:
                mode = os.stat(names[-1], dir_fd=folder, follow_symlinks=False).st_mode
            except FileNotFoundError:
                raise TransferError(f"no file {path} on the payload: upload it first") from None
            if not stat.S_ISREG(mode):
                raise TransferError(f"{path} is a symbolic link or a folder, not a file uploaded there")
            yield folder, names[-1]
        finally:
            os.close(folder)

    def uploaded(self, path: str, area: str) -> Path:
        """The file `path`, directly in the upload area `area` and no symbolic link, by its path
        under the root."""
        with self._uploaded(path, area):
            return self.root / path

    def take(self, path: str, area: str, into: Path) -> str:
        """Move the file `path`, directly in the upload area `area` and no symbolic link, into the
        folder `into`; its name."""
        with self._uploaded(path, area) as (folder, name):
            if (into / name).exists():
                raise TransferError(f"{name} is already in {into.name}/")
            os.replace(name, into / name, src_dir_fd=folder)
        return name

    def clear(self, area: str) -> int:
        """Remove everything in the upload area `area`, refused while it is closed; how many
        entries were removed."""
        why = self._closed().get(area)
        if area not in self.upload_areas or why:
            raise TransferError(f"{area}: {why or 'not an upload area'}; nothing removed")
        folder = self._folder(area_path(area))
        try:
            names = os.listdir(folder)
            for name in names:
                if stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
                    shutil.rmtree(name, dir_fd=folder)
                else:
                    os.unlink(name, dir_fd=folder)
            os.fsync(folder)
        finally:
            os.close(folder)
        return len(names)
