"""Start, stop and report the emulated board: its own sshd, run in its arm64 root filesystem,
answering as root@127.0.0.1 on port 2299 to the client key the board keeps beside it.

Everything lives in one folder of the cache (`$ORBITLITE_CACHE`, else ~/.cache/orbitlite), outside
the repository: `rpi-emulated/` holds `rootfs/`, the client key pair `id_ed25519`, the board's
host key `ssh_host_ed25519_key` (kept across rebuilds) and its `known_hosts` line, `logs/` (the
build's and sshd's) and `state.json` (the running board's pid). The `rpi-emulated` board profile
points there.

The board runs in its own mount and PID namespaces (`unshare`): /proc, /sys, /dev/shm and /dev/pts
are mounted there, seen by the board alone, and vanish with its last process, so stopping it, or
its dying, never leaves a mount behind, and `down` ends every process the board started, as a
power-off would. It needs root: for mmdebstrap, binfmt_misc, the namespaces and chroot."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from hil.boards.profile import cache_root
from hil.emulated import build
from hil.errors import BoardError
from onboard.errors import OrbitliteError
from onboard.files import write_verified
from onboard.schema import Name, NonNegative, PositiveInt, Schema, decode, encode_json, read_bounded

NAME = "rpi-emulated"
HOST = "127.0.0.1"
PORT = 2299
USER = "root"
ARCH = "aarch64"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
# in the root filesystem:
SSHD_CONFIG = PurePosixPath("/etc/ssh/orbitlite-emulated.conf")
HOST_KEY = PurePosixPath("/etc/ssh/ssh_host_ed25519_key")
# The CPU qemu-user emulates, for every program of the board (sshd passes it on to each session):
# a Pi 4's. Under qemu's default ("max", with the newest extensions) LiteRT's XNNPACK int8 kernels
# compute wrong outputs; the deploy's self-test caught it.
QEMU_CPU = "cortex-a72"
# qemu-user passes this machine's /proc/cpuinfo through; an arm64 program that reads it (LiteRT's
# cpuinfo does, and crashes on an x86 one) is shown a Cortex-A72's, one entry per core here.
CPUINFO = PurePosixPath("/etc/orbitlite-emulated/cpuinfo")
_CPU = """processor\t: {i}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3
"""
BINFMT = Path("/proc/sys/fs/binfmt_misc")
EMULATION = "an emulation: Debian bookworm arm64 under qemu-user; its timings are not a Pi's"

_SSHD_CONFIG_TEXT = f"""\
# The emulated board's sshd (orbitlite hil emulate): loopback only, root by key only.
ListenAddress {HOST}
Port {PORT}
HostKey {HOST_KEY}
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
Subsystem sftp /usr/lib/openssh/sftp-server
SetEnv QEMU_CPU={QEMU_CPU}
"""

# Run by the host's sh inside the board's new namespaces, before it becomes the board's sshd.
_START = f"""set -e
R="$1"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o mode=1777,size=256m tmpfs "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
mount --bind "$R/dev/pts/ptmx" "$R/dev/ptmx"
mount --bind "$R{CPUINFO}" "$R/proc/cpuinfo"
exec chroot "$R" /usr/sbin/sshd -D -e -f {SSHD_CONFIG}
"""


@dataclass(frozen=True)
class Files:
    """The emulated board's folder in the cache, and what it holds."""

    dir: Path

    @classmethod
    def default(cls) -> "Files":
        return cls(cache_root() / NAME)

    rootfs = property(lambda self: self.dir / "rootfs")
    key = property(lambda self: self.dir / "id_ed25519")
    host_key = property(lambda self: self.dir / "ssh_host_ed25519_key")
    known_hosts = property(lambda self: self.dir / "known_hosts")
    state = property(lambda self: self.dir / "state.json")
    lock = property(lambda self: self.dir / "lock")
    build_log = property(lambda self: self.dir / "logs" / "build.log")
    sshd_log = property(lambda self: self.dir / "logs" / "sshd.log")

    def ssh(self, *command: str) -> list[str]:
        """The OpenSSH client's command line that runs `command` on the board."""
        return ["ssh", "-p", str(PORT), "-i", str(self.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "ConnectTimeout=10", f"{USER}@{HOST}", "--", shlex.join(command)]


class State(Schema):
    """The running board: its `unshare` process (the board's namespaces live while it does)."""

    pid: PositiveInt
    started_at: datetime
    start_s: NonNegative | None = None  # until it answered
    arch: Name | None = None  # what `uname -m` answered over SSH


@dataclass(frozen=True)
class Status:
    files: Files
    marker: build.Marker | None
    half_built: bool  # a root filesystem is there without its marker, or built to another recipe
    state: State | None  # when running
    answers: str | None  # what `uname -m` answers over SSH now, when running


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise BoardError(f"`hil emulate {what}` needs root (mmdebstrap, binfmt_misc, mount namespaces and "
                         f"chroot): run it as root, e.g. sudo orbitlite hil emulate {what}")


@dataclass(frozen=True)
class Up:
    marker: build.Marker
    state: State
    built_now: bool
    was_running: bool


def up(files: Files, say: Callable[[str], None]) -> Up:
    """Build the board unless it is built, and start it unless it runs."""
    require_root("up")
    with _locked(files):
        state = _running(files)
        marker = build.read_marker(files.rootfs)
        if state is not None and marker is not None:
            return Up(marker, state, built_now=False, was_running=True)
        if state is not None:
            _stop(files, state)
        enable_binfmt()
        built = marker is not None
        marker = build.ensure_built(files.rootfs, files.build_log, say)
        _check_arch(files.rootfs)
        _install_keys(files)
        _install_cpuinfo(files)
        return Up(marker, _start(files), built_now=not built, was_running=False)


def down(files: Files) -> bool:
    """Stop the board if it runs (True if it did); nothing of it is left running or mounted."""
    require_root("down")
    with _locked(files):
        state = _running(files)
        if state is not None:
            _stop(files, state)
        files.state.unlink(missing_ok=True)
        left = build.mounts_under(files.rootfs)
        if left:
            raise BoardError(f"{left[0]} is still mounted under the emulated board: unmount it (umount {left[0]})")
        return state is not None


def status(files: Files) -> Status:
    marker = build.read_marker(files.rootfs)
    state = _running(files)
    answers = None
    if state is not None:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            done = subprocess.run(files.ssh("uname", "-m"), capture_output=True, text=True, timeout=30)
            answers = done.stdout.strip() if done.returncode == 0 else None
    return Status(files, marker, marker is None and files.rootfs.exists(), state, answers)


def enable_binfmt() -> None:
    """Make the kernel run arm64 binaries through qemu-aarch64: binfmt_misc mounted, its entry on."""
    if not (BINFMT / "status").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], "mounting binfmt_misc")
    entry = BINFMT / "qemu-aarch64"
    if not _binfmt_enabled(entry):
        _run(["update-binfmts", "--enable", "qemu-aarch64"], "enabling qemu-aarch64 in binfmt_misc")
    if not _binfmt_enabled(entry):
        raise BoardError("qemu-aarch64 is not registered with binfmt_misc: `make system` installs qemu-user-static "
                         "and binfmt-support")


def _binfmt_enabled(entry: Path) -> bool:
    try:
        return entry.read_text().splitlines()[0] == "enabled"
    except (OSError, IndexError):
        return False


def _check_arch(rootfs: Path) -> None:
    answer = _run(["chroot", str(rootfs), "uname", "-m"], "running the board's uname -m").strip()
    if answer != ARCH:
        raise BoardError(f"the emulated board's uname -m answers {answer!r}, not {ARCH}: qemu-aarch64 is not "
                         "what runs its binaries (see /proc/sys/fs/binfmt_misc/qemu-aarch64)")


def _install_keys(files: Files) -> None:
    """The client key pair and the board's host key, both kept in the cache (so a rebuilt board
    keeps its identity and a client's known_hosts stays true), installed in the board with its
    authorized_keys and sshd's config; and the known_hosts line the client checks the board by."""
    for key, comment in ((files.key, f"orbitlite {NAME} client"), (files.host_key, f"{NAME} host")):
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)], f"generating {key}")
    host_key = files.rootfs / HOST_KEY.relative_to("/")
    write_verified(host_key, files.host_key.read_bytes(), private=True)
    write_verified(host_key.with_suffix(".pub"), files.host_key.with_suffix(".pub").read_bytes())
    write_verified(files.rootfs / SSHD_CONFIG.relative_to("/"), _SSHD_CONFIG_TEXT.encode())
    ssh_dir = files.rootfs / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    ssh_dir.chmod(0o700)
    write_verified(ssh_dir / "authorized_keys", files.key.with_suffix(".pub").read_bytes(), private=True)
    kind, blob = files.host_key.with_suffix(".pub").read_text().split()[:2]
    write_verified(files.known_hosts, f"[{HOST}]:{PORT} {kind} {blob}\n".encode())
    (files.rootfs / "run/sshd").mkdir(mode=0o755, exist_ok=True)


def _install_cpuinfo(files: Files) -> None:
    cpuinfo = files.rootfs / CPUINFO.relative_to("/")
    cpuinfo.parent.mkdir(exist_ok=True)
    write_verified(cpuinfo, ("\n".join(_CPU.format(i=i) for i in range(os.cpu_count() or 1))
                             + "\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B (emulated by qemu)\n").encode())


def _start(files: Files) -> State:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        if probe.connect_ex((HOST, PORT)) == 0:
            raise BoardError(f"port {PORT} on {HOST} is taken by another program; the {NAME} board answers there: "
                             "stop that program first")
    files.sshd_log.parent.mkdir(parents=True, exist_ok=True)
    argv = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
            f"--mount-proc={files.rootfs / 'proc'}", "sh", "-c", _START, "sh", str(files.rootfs)]
    start = time.monotonic()
    with open(files.sshd_log, "wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                                        "QEMU_CPU": QEMU_CPU})
    state = State(pid=process.pid, started_at=datetime.now(timezone.utc).replace(microsecond=0))
    _write_state(files, state)
    try:
        arch = _wait_answers(files, state, start + START_TIMEOUT_S)
    except BaseException:
        _stop(files, state)
        files.state.unlink(missing_ok=True)
        raise
    state = State(pid=state.pid, started_at=state.started_at, start_s=round(time.monotonic() - start, 2),
                  arch=arch)
    _write_state(files, state)
    return state


def _wait_answers(files: Files, state: State, deadline: float) -> str:
    """What `uname -m` answers over SSH, once the board's sshd answers."""
    while True:
        if not _alive(files, state.pid):
            raise BoardError(f"the emulated board's sshd stopped: {_last_line(files.sshd_log)} (log: {files.sshd_log})")
        try:
            done = subprocess.run(files.ssh("uname", "-m"), capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            done = None
        if done is not None and done.returncode == 0:
            arch = done.stdout.strip()
            if arch != ARCH:
                raise BoardError(f"the emulated board answers uname -m with {arch!r}, not {ARCH}")
            return arch
        if time.monotonic() > deadline:
            why = done.stderr.strip().splitlines()[-1] if done is not None and done.stderr.strip() else "no answer"
            raise BoardError(f"the emulated board did not answer SSH on {HOST}:{PORT} within {START_TIMEOUT_S:g} s: "
                             f"{why} (log: {files.sshd_log})")
        time.sleep(0.25)


def _stop(files: Files, state: State) -> None:
    """End the board's process group (its sshd, and with the namespace every process in it) and
    wait until its port is free."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        if not _alive(files, state.pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(state.pid, sig)
        end = time.monotonic() + wait
        while _alive(files, state.pid) and time.monotonic() < end:
            time.sleep(0.05)
    if _alive(files, state.pid):
        raise BoardError(f"the emulated board (pid {state.pid}) does not stop")
    end = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < end:
        with socket.socket() as probe:
            probe.settimeout(1.0)
            if probe.connect_ex((HOST, PORT)) != 0:
                return
        time.sleep(0.05)
    raise BoardError(f"port {PORT} still answers after the emulated board stopped")


def _running(files: Files) -> State | None:
    """The state of the board if its process is alive, else None (a stale state file is ignored)."""
    try:
        state = decode(read_bounded(files.state, 1 << 16, error=BoardError), State, source=str(files.state),
                       error=BoardError)
    except OrbitliteError:
        return None
    return state if _alive(files, state.pid) else None


def _alive(files: Files, pid: int) -> bool:
    """Whether `pid` is this board's `unshare`, and not a zombie (a pid reused by another program is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X") and cmdline[0].endswith(b"unshare")
            and f"--mount-proc={files.rootfs / 'proc'}".encode() in cmdline)


def _write_state(files: Files, state: State) -> None:
    write_verified(files.state, encode_json(state, indent=2) + b"\n")


@contextlib.contextmanager
def _locked(files: Files) -> Iterator[None]:
    """One `up` or `down` at a time on this board."""
    files.dir.mkdir(parents=True, exist_ok=True)
    with open(files.lock, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    except FileNotFoundError:
        raise BoardError(build.not_installed(argv[0])) from None
    except subprocess.TimeoutExpired:
        raise BoardError(f"{what}: no answer within 300 s") from None
    if done.returncode != 0:
        raise BoardError(f"{what} failed: {(done.stderr.strip().splitlines() or ['exit %d' % done.returncode])[-1]}")
    return done.stdout


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"
