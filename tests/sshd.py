"""A real OpenSSH server on loopback for the tests: `/usr/sbin/sshd -D -e` with a config, host key
and authorized_keys of its own, in a temporary folder, on a free port. It lets in the user the tests
run as (root on CI), with a client key made by ssh-keygen; `make system` installs openssh-server.

Use the `sshd` fixture (import it into a test module), or `running_sshd(folder)` directly."""

from __future__ import annotations

import contextlib
import getpass
import os
import platform
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class SshServer:
    port: int
    user: str
    key: Path  # the client's private key, authorized on the server
    other_key: Path  # a key the server does not know
    folder: Path

    def profile(self, name: str, *, port: int | None = None, key: Path | None = None, arch: str = platform.machine()) -> str:
        """A board profile (TOML) that reaches this server."""
        return f"""name = "{name}"
arch = "{arch}"
cpu = "test"
cores = 2
ram_mb = 1024
python = "3.11"
idle_watts = 1.0
busy_watts = 2.0

[[transports]]
kind = "ssh"
host = "127.0.0.1"
port = {port or self.port}
user = "{self.user}"
key = "{key or self.key}"
known_hosts = "{self.folder / 'known_hosts'}"
connect_timeout = 5
workdir = "{self.folder / 'board'}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@contextlib.contextmanager
def running_sshd(folder: Path) -> Iterator[SshServer]:
    assert SSHD.exists(), f"{SSHD} is missing: `make system` installs openssh-server"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key", "other_key"):
        _keygen(folder / name)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {folder / 'host_key'}
PidFile none
UsePAM no
StrictModes no
AuthorizedKeysFile {folder / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel ERROR
""")
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=open(folder / "sshd.log", "wb"))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, f"sshd stopped: {(folder / 'sshd.log').read_text()}"
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "sshd did not listen within 30 s"
            time.sleep(0.05)
        yield SshServer(port, getpass.getuser(), folder / "client_key", folder / "other_key", folder)
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
