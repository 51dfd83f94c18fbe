"""The runtime a bundle carries: a wheel of orbitlite and of every one of its dependencies for the
board's platform (its arch, Python and C library), since a payload installs with `--no-index`.

- The dependencies are downloaded on the ground by pip for the board's platform (`pip download
  --platform ... --only-binary=:all:`), from the wheelhouse the user names (`--wheels DIR`, for a
  ground station without internet) or from the package index, into the harness's cache
  (`$ORBITLITE_CACHE/wheels/PLATFORM/`), where the next bundle finds them without the index.
- orbitlite itself holds C code (`onboard._native`): its wheel for this machine is built here; for
  another arch it is built on the board the first time, from the project's source distribution
  (the board needs python3-dev, a C compiler and cmake), fetched back and kept in the cache under
  the source's sha256 (`$ORBITLITE_CACHE/runtime/SHA/PLATFORM/`): the same source is built once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import requires, version
from pathlib import Path

from hil.boards.profile import cache_root
from hil.boards.transport import Transport
from hil.errors import BoardError
from onboard.contracts.bundle import Runtime
from onboard.files import sha256_file

PROJECT = "orbitlite"
# What pip needs to build orbitlite's wheel from its source (pure Python: any platform).
BUILD_REQUIREMENTS = ("scikit-build-core>=0.10",)
SOURCE = Path(__file__).resolve().parents[2]  # the project's source tree, when it is installed from one


@dataclass(frozen=True)
class Platform:
    """A board's platform, as its `probe` reports it."""

    arch: str  # aarch64, armv7l, x86_64
    python: str  # 3.11
    glibc: str  # 2.36

    @property
    def key(self) -> str:
        return f"{self.arch}-cp{self.python.replace('.', '')}-glibc{self.glibc}"

    def pip_platforms(self) -> list[str]:
        """pip's --platform tags a wheel may carry to install on this board: every manylinux up to
        its C library's version (pip does not widen a given tag by itself)."""
        major, minor = (int(x) for x in self.glibc.split(".")[:2])
        tags = [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 16, -1)]
        if self.arch in ("x86_64", "aarch64"):
            tags += [f"manylinux2014_{self.arch}"]
        return tags + [f"linux_{self.arch}"]

    def runtime(self) -> Runtime:
        return Runtime(arch=self.arch, python=self.python, requirement=f"{PROJECT}=={version(PROJECT)}")

    def is_here(self) -> bool:
        import platform
        return (platform.machine(), "%d.%d" % sys.version_info[:2]) == (self.arch, self.python)


def dependencies() -> list[str]:
    """orbitlite's own requirements, the board's set (no extra)."""
    return [r for r in requires(PROJECT) or [] if "extra ==" not in r]


def pip_error(output: bytes | str) -> str:
    """pip's own reason in its output: its first ERROR line, else its last line."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    lines = [line.strip() for line in text.splitlines() if line.strip() and "WARNING" not in line]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["pip failed"])[0 if errors else -1]


def _pip(args: list[str], what: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "-q"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise BoardError(f"{what}: {pip_error(done.stderr)}")


def download(platform: Platform, wheelhouse: Path | None, requirements: list[str], dest: Path) -> list[Path]:
    """`requirements` and theirs as wheels for `platform`, resolved into the empty folder `dest`:
    from the cache alone when it has them all, else from `wheelhouse` or the package index (and
    then kept in the cache)."""
    cache = cache_root() / "wheels" / platform.key
    cache.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    args = ["download", "--only-binary=:all:", "--dest", str(dest), *requirements]
    if not platform.is_here():
        args += ["--python-version", platform.python, "--implementation", "cp"]
        args += [a for tag in platform.pip_platforms() for a in ("--platform", tag)]
    try:
        _pip([*args, "--no-index", "--find-links", str(cache)], "cached wheels")
    except BoardError:
        where = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
        _pip([*args, *where], f"wheels for {platform.key} from {wheelhouse or 'the package index'}")
        for wheel in dest.glob("*.whl"):
            shutil.copyfile(wheel, cache / wheel.name)
    return sorted(dest.glob("*.whl"))


def source_distribution(out: Path) -> Path:
    """orbitlite's source distribution (reproducible: the same source gives the same bytes)."""
    if not (SOURCE / "pyproject.toml").is_file() or not (SOURCE / "onboard" / "native").is_dir():
        raise BoardError(f"orbitlite is not installed from its source tree ({SOURCE}): give its wheel for the "
                         f"board in --wheels DIR")
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", "import sys; from scikit_build_core.build import build_sdist; "
                           "print(build_sdist(sys.argv[1]))", str(out)], cwd=SOURCE, capture_output=True, text=True)
    if done.returncode != 0:
        raise BoardError(f"building orbitlite's source distribution failed: "
                         f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return out / done.stdout.strip().splitlines()[-1]


def project_wheel(platform: Platform, transport: Transport, build_dir: str, wheelhouse: Path | None,
                  report=print) -> Path:
    """orbitlite's wheel for `platform`: from the wheelhouse, from the cache, built here (this
    machine's platform) or built on the board through `transport` (then kept in the cache)."""
    if wheelhouse is not None:
        found = sorted(wheelhouse.glob(f"{PROJECT}-{version(PROJECT)}-*{platform.arch}*.whl"))
        if found:
            return found[-1]
    with tempfile.TemporaryDirectory() as scratch:
        sdist = source_distribution(Path(scratch))
        kept = cache_root() / "runtime" / sha256_file(sdist)[:16] / platform.key
        found = sorted(kept.glob("*.whl"))
        if found:
            return found[-1]
        kept.mkdir(parents=True, exist_ok=True)
        if platform.is_here():
            _pip(["wheel", "--no-deps", "--wheel-dir", str(kept), str(sdist)], "building orbitlite's wheel here")
        else:
            report(f"building orbitlite's wheel on the board ({platform.key}), once for this source")
            _build_on_board(platform, transport, sdist, build_dir, wheelhouse, kept)
        found = sorted(kept.glob("*.whl"))
        if not found:
            raise BoardError(f"no orbitlite wheel came out of the build for {platform.key}")
        return found[-1]


def _build_on_board(platform: Platform, transport: Transport, sdist: Path, build_dir: str,
                    wheelhouse: Path | None, kept: Path) -> None:
    """Build orbitlite's wheel from `sdist` on the board, in `build_dir` there, offline; fetch it to `kept`."""
    with tempfile.TemporaryDirectory() as scratch:
        # the build's own requirements are pure Python: this machine's wheels serve any board
        tools = download(Platform(*_here()), wheelhouse, list(BUILD_REQUIREMENTS), Path(scratch))
        transport.run(["rm", "-rf", build_dir], timeout=120).check("clearing the board's build folder")
        for f in [sdist, *tools]:
            transport.put(f, f"{build_dir}/{f.name}")
    env, out = f"{build_dir}/env", f"{build_dir}/out"
    transport.run(["python3", "-m", "venv", env], timeout=600).check("making the build's virtual environment")
    # make, not ninja: a board has make with its compiler, and ninja's wheel is not in the build's set
    built = transport.run(["env", "CMAKE_GENERATOR=Unix Makefiles", f"{env}/bin/python", "-m", "pip", "wheel",
                           "--no-index", "--find-links", build_dir, "--no-deps", "--no-cache-dir",
                           "--disable-pip-version-check", "--wheel-dir", out, f"{build_dir}/{sdist.name}"],
                          timeout=3600)
    if built.returncode != 0:
        raise BoardError(f"building orbitlite's wheel on the board failed (it needs python3-dev, build-essential "
                         f"and cmake): {pip_error(built.stdout + built.stderr)}")
    listed = transport.run(["ls", out], timeout=60).check("listing the built wheel").stdout.decode().split()
    wheels = [name for name in listed if name.startswith(f"{PROJECT}-") and name.endswith(".whl")]
    if len(wheels) != 1:
        raise BoardError(f"the board's build made {len(wheels)} orbitlite wheels, not one")
    transport.get(f"{out}/{wheels[0]}", kept / wheels[0])
    transport.run(["rm", "-rf", build_dir], timeout=120)


def _here() -> tuple[str, str, str]:
    import platform
    return platform.machine(), "%d.%d" % sys.version_info[:2], platform.libc_ver()[1] or "2.17"


def wheels(platform: Platform, transport: Transport, build_dir: str, wheelhouse: Path | None, dest: Path,
           report=print) -> list[Path]:
    """Every wheel the board installs, orbitlite's and its dependencies' for `platform`, in `dest`."""
    own = project_wheel(platform, transport, build_dir, wheelhouse, report)
    deps = download(platform, wheelhouse, dependencies(), dest)
    shutil.copyfile(own, dest / own.name)
    return [dest / own.name, *deps]
