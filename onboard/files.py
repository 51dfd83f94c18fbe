"""Crash-safe, verified file writes: nothing is visible under its final name until it is
complete on disk and has been read back intact."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from onboard.errors import OutputError


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` if needed and prove a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to output directory {path}: {exc.strerror}") from None
    return path


def write_verified(path: Path, data: bytes, private: bool = False) -> Path:
    """Write `data` to `path` atomically (temporary file, fsync, rename, fsync of the directory)
    and read it back to check it; `private` (a key) makes it readable by its owner alone from the
    start. Raises OutputError, with the reason, when any step fails."""
    path = Path(path)
    digest = hashlib.sha256(data).digest()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        if not private:
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes it private; give it a normal file's mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
        if hashlib.sha256(path.read_bytes()).digest() != digest:
            raise OutputError(f"{path} does not read back as written: the storage is failing")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (a rename into it, say) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
