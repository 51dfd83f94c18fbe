"""The emulated board's root filesystem: Debian bookworm's arm64 userland, as on a Raspberry Pi,
built once by `mmdebstrap` (its arm64 binaries run through qemu-user-static and binfmt_misc).

A build goes to `ROOTFS.part` and is renamed to `ROOTFS` only when complete, with a marker file
inside that records the recipe it was built to: a root filesystem without the marker (a build cut
short, a copy) or built to another recipe is removed and built again, never used. mmdebstrap runs
in its own mount namespace, so a build that is killed leaves no mount behind; a tree is removed
only when nothing is mounted under it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from hil.errors import BoardError
from onboard.errors import OrbitliteError
from onboard.files import write_verified
from onboard.progress import progress_bar
from onboard.schema import Count, Name, NonNegative, Schema, decode, encode_json, read_bounded

SUITE = "bookworm"
ARCH = "arm64"
# What the board needs beyond Debian's base: Python with venv and pip, the SSH server the harness
# reaches it through, and a compiler, CMake and Python's headers, so the deploy can build the
# project's own wheel (with `onboard._native`) there the first time, as on a real Pi.
PACKAGES = ("python3", "python3-venv", "python3-pip", "openssh-server", "python3-dev", "build-essential", "cmake")
MARKER = ".orbitlite-emulated.json"  # at the root filesystem's top, written last
# How far (in percent) a build is when mmdebstrap starts each of its phases (an "I: ..." line on
# stderr), from a build timed here: the package installs, emulated, take nearly all of it.
PHASES = {"downloading packages": 1, "extracting archives": 2, "installing essential packages": 3,
          "installing remaining packages": 30, "cleaning package lists": 99}


class Recipe(Schema):
    suite: Name
    arch: Name
    packages: tuple[Name, ...]


RECIPE = Recipe(suite=SUITE, arch=ARCH, packages=PACKAGES)


class Marker(Schema):
    """What a complete build records about itself."""

    recipe: Recipe
    built_at: datetime
    build_s: NonNegative
    size_bytes: Count


def not_installed(program: str) -> str:
    return f"{program} is not installed: as root, `make system` installs the Debian packages in system-packages.txt"


def read_marker(rootfs: Path) -> Marker | None:
    """The marker of a complete root filesystem built to this recipe, or None: absent, half built,
    unreadable, or built to another recipe."""
    try:
        marker = decode(read_bounded(rootfs / MARKER, 1 << 16, error=BoardError), Marker,
                        source=str(rootfs / MARKER), error=BoardError)
    except OrbitliteError:
        return None
    return marker if marker.recipe == RECIPE else None


def mounts_under(path: Path) -> list[Path]:
    """The mount points at or under `path`, as this process's mount namespace sees them."""
    root = os.path.realpath(path)
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")  # octal escapes: \040 is a space
            if point == root or point.startswith(root.rstrip("/") + "/"):
                points.append(Path(point))
    return points


def remove_tree(path: Path) -> None:
    """Remove `path` and everything under it, refusing while anything is mounted there: a bind
    mount of the host's /dev or /proc under a root filesystem must never be emptied with it."""
    if not path.exists() and not path.is_symlink():
        return
    mounted = mounts_under(path)
    if mounted:
        raise BoardError(f"{path} is not removed: {mounted[0]} is mounted under it; unmount it first")
    done = subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise BoardError(f"cannot remove {path}: {(done.stderr.strip().splitlines() or ['rm failed'])[-1]}")


def mmdebstrap(target: Path, log: Path) -> None:
    """Run mmdebstrap for this recipe into `target` (absent), its output in `log`, with a progress
    bar over its phases at a terminal."""
    for program in ("unshare", "mmdebstrap"):
        if shutil.which(program) is None:
            raise BoardError(not_installed(program))
    argv = ["unshare", "--mount", "--propagation", "private",
            "mmdebstrap", f"--arch={ARCH}", "--variant=apt", f"--include={','.join(PACKAGES)}", SUITE, str(target)]
    with open(log, "w") as out, progress_bar(100, "building the emulated board (Debian arm64, ~3 min)") as bar:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        last, done = "", 0
        for line in process.stderr:
            out.write(line)
            out.flush()
            if line.strip():
                last = line.strip()
            for phase, percent in PHASES.items():
                if line.startswith(f"I: {phase}") and percent > done:
                    bar.update(percent - done)
                    done = percent
        code = process.wait()
        if code == 0:
            bar.update(100 - done)
    if code != 0:
        raise BoardError(f"building the emulated board failed (mmdebstrap exit {code}): {last} (log: {log})")


Builder = Callable[[Path, Path], None]


def ensure_built(rootfs: Path, log: Path, say: Callable[[str], None], builder: Builder = mmdebstrap) -> Marker:
    """The marker of `rootfs`, built now by `builder(target, log)` unless a complete build to this
    recipe is there already. A half build or one to another recipe is removed first."""
    marker = read_marker(rootfs)
    if marker is not None:
        return marker
    if rootfs.exists():
        say(f"discarding {rootfs}: " + ("a half build (no marker)" if not (rootfs / MARKER).exists()
                                        else "built to another recipe"))
    part = rootfs.with_name(rootfs.name + ".part")
    for stale in (rootfs, part):
        remove_tree(stale)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        builder(part, log)
        build_s = time.monotonic() - start
        marker = Marker(recipe=RECIPE, built_at=datetime.now(timezone.utc).replace(microsecond=0),
                        build_s=round(build_s, 1), size_bytes=_size(part))
        write_verified(part / MARKER, encode_json(marker, indent=2) + b"\n")
        part.rename(rootfs)
    except BaseException:
        remove_tree(part)
        raise
    return marker


def _size(tree: Path) -> int:
    done = subprocess.run(["du", "-s", "-x", "-B1", str(tree)], capture_output=True, text=True)
    return int(done.stdout.split()[0]) if done.returncode == 0 and done.stdout else 0

