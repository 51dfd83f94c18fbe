"""A real one-node SLURM cluster on loopback for the tests: MUNGE (its authentication), the
controller `slurmctld` and the node daemon `slurmd`, each run in the foreground as root with a
slurm.conf, a MUNGE key, state, spool and logs of its own in a temporary folder, on free loopback
ports (not SLURM's 6817/6818, so a real cluster on the machine is left alone). Clients find it
through SLURM_CONF, which the fixture sets for the test session (sbatch passes it on to the jobs).

The node, `localhost`, has 2 CPUs and part of the machine's memory; memory is a consumable
resource (cons_tres, CR_Core_Memory) and a job step over its limit is killed (jobacct_gather
polls every second: OverMemoryKill). MaxArraySize is 5, so a batch of more than five jobs has to be
split into several arrays. No accounting database: `sacct` is not available, as on clusters
whose users may not call it; jobs stay in `squeue --states=all` for MinJobAge after they end.

`make system` installs slurmctld, slurmd, slurm-client and munge. Use the session fixture
`slurm_cluster` (tests/conftest.py), started only when a test asks for it, or
`running_cluster(folder)` directly."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

DAEMONS = {"munged": Path("/usr/sbin/munged"), "slurmctld": Path("/usr/sbin/slurmctld"),
           "slurmd": Path("/usr/sbin/slurmd")}
MAX_ARRAY_SIZE = 5
CPUS = 2
START_TIMEOUT_S = 120  # generous: the machine may be busy with a CI run


class ClusterStartError(RuntimeError):
    """The test cluster did not come up; the message holds the daemons' logs."""


@dataclass(frozen=True)
class SlurmCluster:
    folder: Path
    conf: Path  # slurm.conf: SLURM_CONF for the clients
    ctld_port: int
    memory_mb: int  # the node's RealMemory

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a client command (sbatch, squeue, orbitlite ... --backend slurm)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), **extra}

    def client(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, env=self.env(), timeout=timeout)

    def logs(self) -> str:
        return _logs(self.folder)


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on loopback, outside SLURM's standard 6817-6819."""
    sockets, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            port = s.getsockname()[1]
            if port not in (6817, 6818, 6819):
                ports.append(port)
    finally:
        for s in sockets:
            s.close()
    return ports


def node_memory_mb() -> int:
    """The node's RealMemory: half the machine's memory, at most 8 GB (it must not exceed what
    slurmd finds, or the node is drained)."""
    with open("/proc/meminfo") as f:
        total_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return min(total_kb // 1024 // 2, 8192)


def slurm_conf(folder: Path, ctld_port: int, slurmd_port: int, memory_mb: int) -> str:
    return f"""# orbitlite's test cluster (tests/slurm.py)
ClusterName=orbitlite-test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder / 'munge' / 'munge.socket'}
StateSaveLocation={folder / 'state'}
SlurmdSpoolDir={folder / 'spool' / '%n'}
SlurmctldPidFile={folder / 'slurmctld.pid'}
SlurmdPidFile={folder / 'slurmd.pid'}
SlurmctldLogFile={folder / 'slurmctld.log'}
SlurmdLogFile={folder / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
ReturnToService=2
MaxArraySize={MAX_ARRAY_SIZE}
MinJobAge=600
KillWait=5
InactiveLimit=0
MessageTimeout=10
SlurmdTimeout=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs={CPUS} Sockets=1 CoresPerSocket={CPUS} ThreadsPerCore=1 RealMemory={memory_mb} State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def running_cluster(folder: Path, start_timeout_s: float = START_TIMEOUT_S) -> Iterator[SlurmCluster]:
    """Start MUNGE, slurmctld and slurmd in `folder` under a supervisor of their own, wait until
    the node is idle, and stop them all, with any job still running, when the context ends."""
    missing = [str(path) for path in DAEMONS.values() if not path.exists()]
    if missing:
        raise ClusterStartError(f"{', '.join(missing)} missing: `make system` installs slurmctld, slurmd, "
                                "slurm-client and munge")
    if os.geteuid() != 0:
        raise ClusterStartError("the test SLURM cluster runs its daemons as root")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # munged refuses a key or socket in a folder others may write to
    for sub in ("munge", "state", "spool"):
        (folder / sub).mkdir(mode=0o700, exist_ok=True)
    key = folder / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    ctld_port, slurmd_port = free_ports(2)
    memory_mb = node_memory_mb()
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, ctld_port, slurmd_port, memory_mb))
    socket_path = folder / "munge" / "munge.socket"
    daemons = [
        ["munged", str(DAEMONS["munged"]), "--foreground", "--force", f"--key-file={key}", f"--socket={socket_path}",
         f"--pid-file={folder / 'munge' / 'munged.pid'}", f"--seed-file={folder / 'munge' / 'munged.seed'}",
         f"--log-file={folder / 'munged.log'}"],
        ["slurmctld", str(DAEMONS["slurmctld"]), "-D", "-i", "-f", str(conf)],
        ["slurmd", str(DAEMONS["slurmd"]), "-D", "-N", "localhost", "-f", str(conf)],
    ]
    cluster = SlurmCluster(folder, conf, ctld_port, memory_mb)
    supervisor = subprocess.Popen([sys.executable, __file__, str(folder), str(socket_path), json.dumps(daemons)],
                                  env=cluster.env(), stdin=subprocess.DEVNULL,
                                  stdout=open(folder / "supervisor.log", "ab"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout_s
        while _node_state(cluster) != "idle":
            if supervisor.poll() is not None:
                raise ClusterStartError(f"the test SLURM cluster did not start:\n{_logs(folder)}")
            if time.monotonic() > deadline:
                raise ClusterStartError(f"the test SLURM cluster's node was not idle within {start_timeout_s:g} s:\n"
                                        f"{_logs(folder)}")
            time.sleep(0.2)
        yield cluster
    finally:
        _stop(cluster, supervisor)


def _node_state(cluster: SlurmCluster) -> str:
    try:
        result = cluster.client("sinfo", "-h", "-N", "-o", "%t", timeout=30)
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _logs(folder: Path) -> str:
    parts = []
    for name in ("supervisor.log", "munged.log", "slurmctld.log", "slurmd.log"):
        path = folder / name
        if path.exists() and path.stat().st_size:
            tail = path.read_text(errors="replace").splitlines()[-30:]
            parts.append(f"--- {path}\n" + "\n".join(tail))
    return "\n".join(parts) or "(no logs)"


def _stop(cluster: SlurmCluster, supervisor: subprocess.Popen) -> None:
    """Cancel the jobs still queued or running, then stop the supervisor, which stops the daemons
    and ends whatever they left behind."""
    if supervisor.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            cluster.client("scancel", "--user", "root", timeout=30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and cluster.client("squeue", "-h", "-o", "%i", timeout=30).stdout.strip():
                time.sleep(0.5)
        supervisor.send_signal(signal.SIGTERM)
    try:
        supervisor.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(supervisor.pid, signal.SIGKILL)
        supervisor.wait(timeout=10)


# --- the supervisor: `python tests/slurm.py FOLDER MUNGE_SOCKET DAEMONS_JSON` -------------------
# A child subreaper (prctl PR_SET_CHILD_SUBREAPER): the processes slurmd's steps leave orphaned are
# re-parented to it rather than to PID 1 (which may never reap them), so it can end and reap them
# all when it stops.

PR_SET_CHILD_SUBREAPER = 36


def supervise(folder: Path, socket_path: Path, daemons: list[list[str]]) -> int:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    running: dict[int, tuple[str, subprocess.Popen]] = {}
    status = 0
    for name, *command in daemons:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=open(folder / f"{name}.out", "ab"),
                                   stderr=subprocess.STDOUT)
        running[process.pid] = (name, process)
        print(f"started {name} (pid {process.pid})", flush=True)
        if name == "munged":
            deadline = time.monotonic() + 60
            while not socket_path.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
    while not stopping:
        for pid, (name, process) in running.items():
            if process.poll() is not None:
                print(f"{name} exited with status {process.returncode}: "
                      f"{(folder / f'{name}.out').read_text(errors='replace')[-2000:]}", flush=True)
                stopping.append(True)
                status = 1
        _reap_orphans(set(running))
        time.sleep(0.2)
    for pid, (name, process) in reversed(running.items()):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    deadline = time.monotonic() + 30
    while (left := _children()) and time.monotonic() < deadline:
        for pid in left:  # what the daemons left: steps and the jobs' tasks, all started by this cluster
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap_orphans(set())
        time.sleep(0.1)
    print("stopped", flush=True)
    return status


def _children() -> list[int]:
    me, found = str(os.getpid()), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[1] == me:
                    found.append(int(entry.name))
    return found


def _reap_orphans(daemons: set[int]) -> None:
    """Reap the children that are not the daemons (the daemons' Popen objects reap those)."""
    for pid in _children():
        if pid not in daemons:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])))
