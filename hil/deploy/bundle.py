"""Build a bundle (DESIGN.md contract 4, onboard/contracts/bundle.py) on the ground: a folder of the
models, each with its manifest and the self-test vectors recorded for it here, the files given
(the runtime's wheels, the board's profile), the service's configuration, and `bundle.json`,
which names every file with its size and sha256 and is checked as the board will check it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from onboard.contracts.bundle import MANIFEST_NAME, SCHEMA, VERSION, Body, Runtime
from onboard.contracts.manifest import read_manifest, sidecar_path
from onboard.errors import BundleError
from onboard.files import sha256_file, write_verified
from onboard.inference import selftest
from onboard.schema import decode


def build_bundle(models: list[Path], out: Path, *, files: Iterable[Path] = (), runtime: Runtime | None = None,
          config: Path | None = None) -> Body:
    """Write into the empty or absent folder `out` the bundle of `models` (each with its manifest,
    which must match it, and the self-test vectors recorded for it here), of `files` as they are
    (the wheels of `runtime`, a board profile) and of the service `config`, when given; its
    manifest, as the board will read it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise BundleError(f"{out} is not empty: a bundle is built into a folder of its own")
    sources: dict[str, Path] = {}
    for model in map(Path, models):
        manifest = read_manifest(sidecar_path(model))
        if sha256_file(model) != manifest.sha256:
            raise BundleError(f"{model} does not match its manifest's sha256: it is not the model the manifest "
                              f"describes")
        vectors = out / selftest.vectors_path(Path(model.name)).name
        write_verified(vectors, selftest.record(model))
        for f in (model, sidecar_path(model), vectors):
            if f.name in sources:
                raise BundleError(f"two files of the bundle are named {f.name}")
            sources[f.name] = f
    for f in [*map(Path, files), *([Path(config)] if config else [])]:
        if f.name in sources:
            raise BundleError(f"two files of the bundle are named {f.name}")
        sources[f.name] = f
    for name, f in sources.items():
        if f.parent != out:
            shutil.copyfile(f, out / name)
    body = {"schema": SCHEMA, "version": VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": {name: {"size": (out / name).stat().st_size, "sha256": sha256_file(out / name)}
                      for name in sorted(sources)},
            "runtime": None if runtime is None else msgspec.to_builtins(runtime),
            "config": None if config is None else Path(config).name}
    listed = (json.dumps(body, indent=2) + "\n").encode()
    checked = decode(listed, Body, source="the bundle manifest would be refused by the payload", error=BundleError)
    write_verified(out / MANIFEST_NAME, listed)
    return checked
