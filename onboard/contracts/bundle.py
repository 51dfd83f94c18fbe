"""Contract 4, the bundle: what a deploy ships into a slot of the payload, a folder of files with a
manifest of hashes (`bundle.json`) that the board checks, with a self-test, before it switches to
the slot.

    {"schema": "orbitlite/bundle", "version": 2, "created": "2026-12-02T03:30:00+00:00",
     "files": {"cnn-l.tflite": {"size": 18928, "sha256": "..."}, "cnn-l.tflite.json": {...},
               "cnn-l.tflite.selftest": {...}, "numpy-2.4.6-cp311-...-aarch64.whl": {...}, ...},
     "runtime": {"arch": "aarch64", "python": "3.11", "requirement": "orbitlite==0.1.0"},
     "config": "service.json"}

The ground builds bundles (hil/deploy/bundle.py); the board reads and checks them (`read`,
`verify`). Every model ships with its manifest and its self-test vectors beside it (onboard/inference/
selftest.py); file names are kept, since the service's config names its models through the active
slot (`slots/active/cnn-l.tflite`). A bundle deployed by `hil deploy` also carries the runtime:
`runtime` names the board's arch and Python, and the files include a wheel of the runtime and of
every dependency for that platform (a payload has no internet: the board installs with
`--no-index`), and `config` names the service's configuration. A bundle sent over the link
carries models alone. A slot is its bundle and nothing else: `verify` refuses a bundle that lists
no file, one that does not list a file the service needs (each model with its manifest and
vectors), a slot that lacks a listed file or holds one that is not listed (bundle.json aside), and
a listed file that is a symbolic link or differs in size or sha256. A bundle's identity
(`bundle_id`) is the hash of its files' names and hashes, whenever it was built.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta

from onboard.errors import BundleError
from onboard.files import sha256_file
from onboard.schema import Count, FileName, Schema, Sha256, decode_contract, read_bounded

SCHEMA = "orbitlite/bundle"
VERSION = 2
MANIFEST_NAME = "bundle.json"
MAX_FILES = 1024
MAX_BYTES = 2**20  # a bundle.json larger than this is refused unread


class _Listed(Schema):
    size: Count
    sha256: Sha256


class Runtime(Schema):
    """The platform a bundle's wheels are for, and the runtime they install."""

    arch: Literal["aarch64", "armv7l", "x86_64"]  # as `uname -m` says it
    python: Annotated[str, Meta(pattern=r"^3\.\d{1,2}\Z")]  # major.minor
    requirement: Annotated[str, Meta(pattern=r"^orbitlite==[0-9A-Za-z.+!-]{1,64}\Z")]


class Body(Schema):
    schema: Literal["orbitlite/bundle"]
    version: Literal[2]
    created: Annotated[datetime, Meta(tz=True)]
    files: Annotated[dict[FileName, _Listed], Meta(min_length=1, max_length=MAX_FILES)]
    runtime: Runtime | None = None
    config: FileName | None = None

    def __post_init__(self) -> None:
        for name in self.files:
            if len(name.encode()) > 255:
                raise ValueError(f"{name[:40]!r}... is longer than a file name can be")
        if self.config is not None and self.config not in self.files:
            raise ValueError(f"config names {self.config}, which the bundle does not list")
        wheels = [n for n in self.files if n.endswith(".whl")]
        if (self.runtime is None) == bool(wheels):
            raise ValueError("wheels travel with a runtime, and a runtime with its wheels")

    @property
    def models(self) -> list[str]:
        return sorted(n for n in self.files if n.endswith(".tflite"))

    @property
    def wheels(self) -> list[str]:
        return sorted(n for n in self.files if n.endswith(".whl"))

    @property
    def id(self) -> str:
        """The bundle's identity: its files' names and hashes (sha256, 16 hex digits)."""
        return bundle_id({n: f.sha256 for n, f in self.files.items()})


def bundle_id(hashes: dict[str, str]) -> str:
    canonical = "".join(f"{name}\0{hashes[name]}\n" for name in sorted(hashes))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def read(folder: Path) -> Body:
    """The manifest of the bundle in `folder`, validated (not yet its files: `verify` does that)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{folder} holds no {MANIFEST_NAME}: not a bundle")
    return decode_contract(read_bounded(path, MAX_BYTES, error=BundleError, what="bundle manifest"), Body,
                           contract=SCHEMA, version=VERSION, what="orbitlite bundle manifest", source=str(path),
                           error=BundleError, unreadable=f"{path} is not readable JSON")


def verify(slot: Path, needs: Iterable[str] = ()) -> Body:
    """Check that `slot` holds exactly the files its bundle manifest lists (and the manifest),
    each of its size and sha256, and that the manifest lists every file named in `needs`."""
    if not (slot / MANIFEST_NAME).exists():
        raise BundleError(f"slot {slot.name} holds no {MANIFEST_NAME}: deploy a bundle into it first")
    body = read(slot)
    unlisted = [name for name in needs if name not in body.files]
    if unlisted:
        raise BundleError(f"slot {slot.name}: its bundle does not list {', '.join(unlisted)}, which the service "
                          f"needs")
    strangers = sorted(set(os.listdir(slot)) - set(body.files) - {MANIFEST_NAME})
    if strangers:
        shown = ", ".join(n if n.isprintable() else repr(n) for n in strangers[:5])
        shown += f" and {len(strangers) - 5} more" if len(strangers) > 5 else ""
        raise BundleError(f"slot {slot.name} holds {shown}, which its bundle does not list: a slot holds its "
                          f"bundle and nothing else")
    for name, f in body.files.items():
        target = slot / name
        try:
            found = os.lstat(target)
        except FileNotFoundError:
            raise BundleError(f"slot {slot.name} lacks {name}, which its bundle lists") from None
        if not stat.S_ISREG(found.st_mode):
            raise BundleError(f"slot {slot.name}: {name} is a symbolic link or a folder, not the file its "
                              f"bundle lists")
        if found.st_size != f.size or sha256_file(target) != f.sha256:
            raise BundleError(f"slot {slot.name}: {name} is not the file its bundle lists (size or sha256)")
    return body
