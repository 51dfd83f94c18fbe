"""Contract 4, the bundle: what a deploy ships into a model slot of the payload, with a manifest of
hashes (`bundle.json`) that the payload checks, with a self-test, before it switches to the slot.

    {"schema": "orbitlite/bundle", "version": 1, "created": "2026-11-24T03:30:00+00:00",
     "files": {"cnn-l.tflite": {"size": 18928, "sha256": "..."}, "cnn-l.tflite.json": {...}}}

Every model ships with its manifest beside it; file names are kept, since the service's config
names its models through the active slot (`slots/active/cnn-l.tflite`). A slot is its bundle and
nothing else: `verify` refuses a bundle that lists no file, one that does not list a file the
service needs (each model and its manifest), a slot that lacks a listed file or holds one that is
not listed (bundle.json aside), and a listed file that is a symbolic link or differs in size or
sha256.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta

from onboard.contracts.manifest import read_manifest, sidecar_path
from onboard.errors import BundleError
from onboard.files import sha256_file
from onboard.schema import Count, FileName, Schema, Sha256, decode, decode_contract, read_bounded

SCHEMA = "orbitlite/bundle"
VERSION = 1
MANIFEST_NAME = "bundle.json"
MAX_FILES = 1024
MAX_BYTES = 2**20  # a bundle.json larger than this is refused unread


@dataclass(frozen=True)
class BundleFile:
    name: str
    size: int
    sha256: str


class _Listed(Schema):
    size: Count
    sha256: Sha256


class _Body(Schema):
    schema: Literal["orbitlite/bundle"]
    version: Literal[1]
    created: Annotated[datetime, Meta(tz=True)]
    files: Annotated[dict[FileName, _Listed], Meta(min_length=1, max_length=MAX_FILES)]

    def __post_init__(self) -> None:
        for name in self.files:
            if len(name.encode()) > 255:
                raise ValueError(f"{name[:40]!r}... is longer than a file name can be")


def build(models: list[Path]) -> tuple[list[Path], bytes]:
    """The files to ship for `models` (each with its manifest, which must match it) and the
    bundle manifest naming them."""
    digests: dict[Path, str] = {}
    for model in map(Path, models):
        manifest = read_manifest(sidecar_path(model))
        digests[model] = sha256_file(model)
        if digests[model] != manifest.sha256:
            raise BundleError(f"{model} does not match its manifest's sha256: it is not the model the manifest "
                              f"describes")
        digests[sidecar_path(model)] = sha256_file(sidecar_path(model))
    files = list(digests)
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise BundleError(f"two files of the bundle share a name: {', '.join(sorted(names))}")
    body = {"schema": SCHEMA, "version": VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": {f.name: {"size": f.stat().st_size, "sha256": digests[f]} for f in files}}
    listed = (json.dumps(body, indent=2) + "\n").encode()
    decode(listed, _Body, source="the bundle manifest would be refused by the payload", error=BundleError)
    return files, listed


def verify(slot: Path, needs: Iterable[str] = ()) -> list[BundleFile]:
    """Check that `slot` holds exactly the files its bundle manifest lists (and the manifest),
    each of its size and sha256, and that the manifest lists every file named in `needs`."""
    path = slot / MANIFEST_NAME
    if not path.exists():
        raise BundleError(f"slot {slot.name} holds no {MANIFEST_NAME}: deploy a bundle into it first")
    body = decode_contract(read_bounded(path, MAX_BYTES, error=BundleError, what="bundle manifest"), _Body,
                           contract=SCHEMA, version=VERSION, what="orbitlite bundle manifest", source=str(path),
                           error=BundleError, unreadable=f"{path} is not readable JSON")
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
    listed = [BundleFile(name, f.size, f.sha256) for name, f in body.files.items()]
    for f in listed:
        target = slot / f.name
        try:
            found = os.lstat(target)
        except FileNotFoundError:
            raise BundleError(f"slot {slot.name} lacks {f.name}, which its bundle lists") from None
        if not stat.S_ISREG(found.st_mode):
            raise BundleError(f"slot {slot.name}: {f.name} is a symbolic link or a folder, not the file its "
                              f"bundle lists")
        if found.st_size != f.size or sha256_file(target) != f.sha256:
            raise BundleError(f"slot {slot.name}: {f.name} is not the file its bundle lists (size or sha256)")
    return listed
