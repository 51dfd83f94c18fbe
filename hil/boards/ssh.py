"""The SSH transport: the board reached through the OpenSSH client (`ssh` and `scp`), as labgrid's
SSHDriver does. One master connection per transport (ControlMaster, its socket in a private
temporary folder) carries every command and copy; it outlives its last use by the profile's
`control_persist` seconds, so a harness that dies leaves no ssh behind for long. BatchMode: never
a password prompt. Host keys are checked as the profile says (`accept-new` by default, against the
harness's own known-hosts file).

Commands run in the profile's `workdir` on the board (made if absent), through the login shell
with every argument quoted. A copy goes to `NAME.part` and is renamed, so the destination is whole
or absent. Exit status 255 is ssh's own: a failed connection or authentication is a
TransportError with ssh's line (`Permission denied (publickey)`, `Connection refused`)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath
from typing import Sequence

from hil.boards.profile import SshSpec
from hil.boards.transport import RUNTIME_PYTHON, WORK, Completed, bench_by_command, last_line
from hil.errors import TransportError
from onboard.inference.bench import BenchArgs

SSH_FAILED = 255  # the exit status ssh gives for its own failures


class SshTransport:
    """A board over SSH; `connect()` (or the first command) opens the shared connection."""

    name = "ssh"
    python = "python3"
    runtime = (RUNTIME_PYTHON, "-P", "-m", "orbitlite")  # the deployed one (hil deploy)
    work = WORK

    def __init__(self, spec: SshSpec) -> None:
        self.spec = spec
        self.where = f"{spec.user}@{spec.host}:{spec.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="orbitlite-ssh-"))  # 0700: the socket is ours alone
        self._socket = self._dir / "control"
        self._connected = False
        # the board's folder for the harness; relative paths are the home folder's (ssh and scp start there)
        self.workdir = spec.workdir[2:] or "." if spec.workdir.startswith("~/") else spec.workdir

    def _options(self, master: str = "no") -> list[str]:
        """ssh's options (the first value given wins in ssh: these come first)."""
        s = self.spec
        return ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={s.connect_timeout}", "-o", "ServerAliveInterval=15",
                "-o", f"ControlMaster={master}", "-o", f"ControlPath={self._socket}",
                "-o", f"ControlPersist={s.control_persist}",
                "-o", f"StrictHostKeyChecking={s.host_key_check}", "-o", f"UserKnownHostsFile={s.known_hosts}",
                "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-i", s.key]

    def _ssh(self, *args: str, master: str = "no") -> list[str]:
        return ["ssh", *self._options(master), "-p", str(self.spec.port), *args, f"{self.spec.user}@{self.spec.host}"]

    def connect(self) -> None:
        """Open the master connection, or raise TransportError with why it cannot be had."""
        if self._connected and self._socket.exists():  # a master idle past ControlPersist has gone
            return
        if not Path(self.spec.key).is_file():
            raise TransportError(f"ssh {self.where}: the key {self.spec.key} is not a file")
        Path(self.spec.known_hosts).parent.mkdir(parents=True, exist_ok=True)
        # -f: into the background once authenticated; -N: no command; the master it leaves serves the rest
        done = self._call(self._ssh("-f", "-N", master="yes"), timeout=self.spec.connect_timeout + 15,
                          what="connecting")
        if done.returncode != 0:
            line = last_line(done.stderr)
            for prefix in (f"{self.spec.user}@{self.spec.host}: ", "ssh: "):  # said once already
                line = line[len(prefix):] if line.startswith(prefix) else line
            raise TransportError(f"ssh {self.where}: {line}")
        self._connected = True

    def _call(self, argv: list[str], *, timeout: float, what: str, stdin: bytes | None = None) -> Completed:
        # Only connect() starts a master, with -f: ssh points its descriptors at /dev/null then, so
        # the master does not hold this call's pipes open (one started by ControlMaster=auto would).
        try:
            if stdin is None:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
            else:
                done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
        except FileNotFoundError:
            raise TransportError(f"{argv[0]}: the OpenSSH client is not installed (make system)") from None
        except subprocess.TimeoutExpired:
            raise TransportError(f"ssh {self.where}: {what} took longer than {timeout:g} s") from None
        return Completed(done.returncode, done.stdout, done.stderr)

    def _remote(self, path: str) -> str:
        p = PurePosixPath(path)
        return str(p if p.is_absolute() else PurePosixPath(self.workdir) / p)

    def run(self, argv: Sequence[str], *, timeout: float, stdin: bytes | None = None) -> Completed:
        self.connect()
        workdir = shlex.quote(self.workdir)
        command = f"mkdir -p -- {workdir} && cd -- {workdir} && exec {shlex.join(argv)}"
        done = self._call([*self._ssh("-T"), command], timeout=timeout, what=argv[0], stdin=stdin)
        if done.returncode == SSH_FAILED and not self._alive():
            raise TransportError(f"ssh {self.where}: {last_line(done.stderr)}")
        if done.returncode == 127 and b"not found" in done.stderr:
            raise TransportError(f"{argv[0]}: no such program on the board")
        return done

    def bench(self, args: BenchArgs, *, timeout: float) -> bytes:
        return bench_by_command(self, args, timeout)

    def _alive(self) -> bool:
        check = self._call(self._ssh("-O", "check"), timeout=10, what="checking the connection")
        self._connected = check.returncode == 0
        return self._connected

    def _scp(self, *paths: str, what: str) -> None:
        """scp the sources, all but the last of `paths`, to the last."""
        argv = ["scp", "-q", *self._options(), "-P", str(self.spec.port), *paths]
        done = self._call(argv, timeout=3600, what=what)
        if done.returncode != 0:
            raise TransportError(f"{what} over ssh {self.where} failed: {last_line(done.stderr)}")

    def put(self, local: Path, remote: str) -> None:
        local = Path(local)
        if not local.is_file():
            raise TransportError(f"cannot put {local}: not a file")
        # run() works in the workdir, scp in the home folder: `remote` for the one, `target` for the other
        target = self._remote(remote)
        self.run(["mkdir", "-p", "--", str(PurePosixPath(remote).parent)], timeout=60).check(f"making {target}'s folder")
        self._scp(str(local), f"{self._login()}:{target}.part", what=f"putting {local} to {target}")
        self.run(["mv", "-f", "--", f"{remote}.part", remote], timeout=60).check(f"installing {target}")

    def put_into(self, files: Sequence[Path], remote_dir: str) -> None:
        if not files:
            return
        self.run(["mkdir", "-p", "--", remote_dir], timeout=60).check(f"making {remote_dir}")
        self._scp(*map(str, files), f"{self._login()}:{self._remote(remote_dir)}/",
                  what=f"putting {len(files)} files into {self._remote(remote_dir)}")

    def get(self, remote: str, local: Path) -> None:
        local = Path(local)
        part = local.with_name(local.name + ".part")
        self.connect()
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            self._scp(f"{self._login()}:{self._remote(remote)}", str(part), what=f"getting {remote} to {local}")
            part.replace(local)
        except OSError as exc:
            raise TransportError(f"cannot write {local}: {exc.strerror}") from None
        finally:
            part.unlink(missing_ok=True)

    def _login(self) -> str:
        host = f"[{self.spec.host}]" if ":" in self.spec.host else self.spec.host
        return f"{self.spec.user}@{host}"

    def close(self) -> None:
        if self._socket.exists():
            self._call(self._ssh("-O", "exit"), timeout=10, what="closing the connection")
        self._connected = False
        shutil.rmtree(self._dir, ignore_errors=True)
