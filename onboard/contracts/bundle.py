"""Contract 4, the bundle: what a deploy ships into a model slot of the payload, with a manifest of
hashes (`bundle.json`) that the payload checks, with a self-test, before it switches to the slot.

    {"schema": "orbitlite/bundle", "version": 1, "created": "2026-11-24T03:30:00+00:00",
     "files": {"cnn-l.tflite": {"size": 18928, "sha256": "..."}, "cnn-l.tflite.json": {...}}}

Every model ships with its manifest beside it; file names are kept, since the service's config
names its models through the active slot (`slots/active/cnn-l.tflite`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from onboard.contracts.manifest import read_manifest, sidecar_path
from onboard.errors import BundleError
from onboard.files import sha256_file

SCHEMA = "orbitlite/bundle"
VERSION = 1
MANIFEST_NAME = "bundle.json"


@dataclass(frozen=True)
class BundleFile:
    name: str
    size: int
    sha256: str


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
    return files, (json.dumps(body, indent=2) + "\n").encode()


def verify(slot: Path) -> list[BundleFile]:
    """Check every file the slot's bundle manifest lists against its size and sha256."""
    path = slot / MANIFEST_NAME
    try:
        body = json.loads(path.read_text())
        if body.get("schema") != SCHEMA or body.get("version") != VERSION:
            raise BundleError(f"{path} is not an orbitlite bundle manifest of version {VERSION}")
        listed = [BundleFile(name, int(v["size"]), str(v["sha256"])) for name, v in body["files"].items()]
    except FileNotFoundError:
        raise BundleError(f"slot {slot.name} holds no {MANIFEST_NAME}: deploy a bundle into it first") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"{path} is unreadable: {exc}") from None
    for f in listed:
        target = slot / f.name
        if Path(f.name).name != f.name:
            raise BundleError(f"{path} lists {f.name!r}, which is not a file name")
        if not target.is_file():
            raise BundleError(f"slot {slot.name} lacks {f.name}, which its bundle lists")
        if target.stat().st_size != f.size or sha256_file(target) != f.sha256:
            raise BundleError(f"slot {slot.name}: {f.name} is not the file its bundle lists (size or sha256)")
    return listed
