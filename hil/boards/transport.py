"""How the harness reaches a board: the small protocol every transport implements (in labgrid's
spirit, a board is a resource and a transport is a driver behind this protocol), and the `local`
transport, this machine itself. One file per other transport (SSH, serial) beside this one.

A transport runs a command on the board, puts and gets files, and runs the board-side bench
(`bench`: `orbitlite onboard bench` as a command where the transport runs commands,
`bench_by_command`; the payload's link command where it does not). Remote paths are POSIX paths on
the board; a relative one is relative to the board's working folder for the harness, and `work`
is the folder in it where the harness puts the files it sends to work with."""

from __future__ import annotations

import shutil
import sys
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from hil.errors import TransportError
from onboard.inference.bench import BenchArgs, bench_argv

WORK = "orbitlite-bench"  # a transport's `work` where it runs commands
PAYLOAD = "payload"  # the payload's root that `hil deploy` installs, in the board's folder for the harness
# the active slot's Python, with the deployed runtime (hil deploy installs this launcher)
RUNTIME_PYTHON = f"{PAYLOAD}/bin/python"


@dataclass(frozen=True)
class Completed:
    """A command that ran on the board: its exit status and what it wrote."""

    returncode: int
    stdout: bytes
    stderr: bytes

    def check(self, what: str) -> "Completed":
        """Itself if the command succeeded; else a TransportError naming `what` and its last line."""
        if self.returncode != 0:
            raise TransportError(f"{what} failed on the board (exit {self.returncode}): "
                                 f"{last_line(self.stderr, '(no output)')}")
        return self


def last_line(output: bytes, empty: str = "no answer") -> str:
    """The last line of a command's output that says something, or `empty`."""
    lines = [line.strip() for line in output.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else empty


class Transport(Protocol):
    """What the harness needs of a way to a board."""

    name: str
    python: str  # the board's own Python (stdlib scripts): `python3` on a board, this one's locally
    runtime: tuple[str, ...]  # what runs orbitlite on the board: the deployed one, this one's locally
    work: str  # where the harness puts the files it works with (a model to bench), relative

    def run(self, argv: Sequence[str], *, timeout: float, stdin: bytes | None = None) -> Completed:
        """Run `argv` on the board (no shell), within `timeout` seconds."""
        ...

    def bench(self, args: BenchArgs, *, timeout: float) -> bytes:
        """Run the board-side bench `args` (its files put in `work`) within `timeout` seconds; what
        it measured, as `orbitlite onboard bench` prints it (JSON, not yet validated)."""
        ...

    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to `remote` on the board, whole or not at all."""
        ...

    def put_into(self, files: Sequence[Path], remote_dir: str) -> None:
        """Copy local files into the folder `remote_dir` on the board, each under its name, at the
        transport's best pace: a file a failure cut short is left so (the caller checks hashes)."""
        ...

    def get(self, remote: str, local: Path) -> None:
        """Copy `remote` from the board to a local file, whole or not at all."""
        ...

    def close(self) -> None:
        """Let go of what the transport holds open (a connection, a port)."""
        ...


def bench_by_command(transport: Transport, args: BenchArgs, timeout: float) -> bytes:
    """The board-side bench as a command on the board, for a transport that runs commands."""
    try:
        done = transport.run([*transport.runtime, *bench_argv(args)], timeout=timeout)
    except TransportError as exc:
        if "no such program" not in str(exc):
            raise
        raise TransportError(f"orbitlite is not deployed on the board: `orbitlite hil deploy --board B MODEL` "
                             f"first ({exc})") from None
    return done.check("orbitlite onboard bench").stdout


class LocalTransport:
    """This machine as the board: commands run as subprocesses, files are copied."""

    name = "local"
    python = sys.executable  # this machine's runtime is the one running the harness
    runtime = (sys.executable, "-m", "orbitlite")
    work = WORK

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)

    def _path(self, remote: str) -> Path:
        return self.workdir / remote

    def run(self, argv: Sequence[str], *, timeout: float, stdin: bytes | None = None) -> Completed:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout, cwd=self.workdir)
        except FileNotFoundError:
            raise TransportError(f"{argv[0]}: no such program on the board") from None
        except subprocess.TimeoutExpired:
            raise TransportError(f"{argv[0]}: no answer within {timeout:g} s") from None
        return Completed(done.returncode, done.stdout, done.stderr)

    def bench(self, args: BenchArgs, *, timeout: float) -> bytes:
        return bench_by_command(self, args, timeout)

    def put(self, local: Path, remote: str) -> None:
        self._copy(Path(local), self._path(remote))

    def put_into(self, files: Sequence[Path], remote_dir: str) -> None:
        for f in files:
            self.put(f, f"{remote_dir}/{Path(f).name}")

    def get(self, remote: str, local: Path) -> None:
        self._copy(self._path(remote), Path(local))

    @staticmethod
    def _copy(source: Path, dest: Path) -> None:
        part = dest.with_name(dest.name + ".part")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, part)
            part.replace(dest)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise TransportError(f"cannot copy {source} to {dest}: {exc.strerror}") from None

    def close(self) -> None:
        pass
