"""Deploy a bundle (DESIGN.md contract 4) to a board through its transport, into the inactive one
of two slots, and switch to it on trial; and roll back to the other slot. What runs on the board
is the project's supervisor (onboard/service/supervisor.py, the standard library alone, on the
board's own python3) and, once installed, the new slot's runtime itself.

Under the payload's root on the board (`payload/` in the transport's folder):
`incoming/BUNDLE/` (a transfer in progress: files already there whole are not sent again),
`slots/a|b/` (a bundle each; `slots/active` leads to one), `envs/a|b/` (each slot's runtime, a
virtual environment), `supervisor/` (the supervisor, its status and the service's log), and the
service's `spool/`, `store/` and `files/`.

The steps, each of which leaves the running slot as it was when it fails:
1. transfer the bundle's files into `incoming/BUNDLE/`, resumably, and hash each on the board
   against the bundle's manifest;
2. install: move the bundle into the inactive slot and its wheels into that slot's runtime
   (`pip install --no-index`);
3. self-test in that slot, with its own runtime (`orbitlite onboard check-slot`);
4. switch: make it the active slot on trial and restart the service; the supervisor confirms it
   once the service is up on it, or goes back to the previous slot by itself.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Callable, Literal, Sequence, TypeVar

import msgspec
from msgspec import Meta

from hil.boards.check import Answer, check_board
from hil.boards.profile import Board
from hil.boards.transport import PAYLOAD, RUNTIME_PYTHON, Transport, last_line
from hil.deploy import runtime
from hil.deploy.bundle import build_bundle
from hil.errors import DeployError, TransportError
from onboard.contracts import bundle
from onboard.contracts.manifest import read_manifest, sidecar_path
from onboard.errors import OrbitliteError
from onboard.files import write_verified
from onboard.schema import Count, FileName, Finite, Name, Schema, Sha256, Text, decode, encode_json
from onboard.service import supervisor

ROOT = PAYLOAD  # the payload's root on the board, in the transport's folder
BUILD = "orbitlite-build"  # where the board builds orbitlite's wheel, in the transport's folder
SUPERVISOR = f"{ROOT}/supervisor/supervisor.py"
UNIT = "/etc/systemd/system/orbitlite-payload.service"
# RUNTIME_PYTHON: the active slot's Python, for the harness's commands (`hil bench`, `hil boards check`)
LAUNCHER = """#!/bin/sh
# the active slot's Python, with its runtime (installed by orbitlite hil deploy)
root="$(cd "$(dirname "$0")/.." && pwd)"
exec "$root/envs/$(readlink "$root/slots/active")/bin/python" "$@"
"""
SERVICE_TIMEOUT_MARGIN_S = 30.0
ROOM_FACTOR = 4  # the bundle arrives, moves into its slot, and its wheels unpack into the runtime
Report = Callable[[str], None]
T = TypeVar("T")


# What the board's supervisor answers, checked like any input from outside.
Slot = Literal["a", "b"]


class State(Schema):
    root: Text  # the payload's root, absolute
    active: Slot | None
    installed: Annotated[tuple[Slot, ...], Meta(max_length=2)]
    supervisor: Annotated[int, Meta(ge=1)] | None
    systemd: bool
    euid: Annotated[int, Meta(ge=0)]


class Trial(Schema, forbid_unknown_fields=False):
    slot: Slot
    previous: Slot | None = None
    seconds: Finite = 0.0


class Fallback(Schema, forbid_unknown_fields=False):
    reason: Text
    to: Slot | None
    at: Text
    from_: Slot | None = msgspec.field(default=None, name="from")


class Installed(Schema):
    slot: Slot
    runtime: Text


class Checked(Schema, forbid_unknown_fields=False):
    """What `orbitlite onboard check-slot` prints."""

    slot: Slot
    bundle: Name
    models: Annotated[tuple[Name, ...], Meta(max_length=64)]
    python: Name
    arch: Name
    interpreter: Name


class Status(Schema, forbid_unknown_fields=False):
    """The supervisor's status.json, as `status` prints it (empty before it first ran)."""

    running: bool
    slot: Slot | None = None
    state: Literal["starting", "running", "failed", "stopped"] | None = None
    reason: Text = ""
    service: Annotated[int, Meta(ge=1)] | None = None
    trial: Trial | None = None
    fallback: Fallback | None = None


Hashes = dict[FileName, tuple[Count, Sha256]]


@dataclass(frozen=True)
class Probe:
    """The board (hil/boards/probe.py) and its payload (the supervisor's `state`)."""

    answer: Answer
    state: State

    @property
    def platform(self) -> runtime.Platform:
        return runtime.Platform(self.answer.arch, ".".join(self.answer.python.split(".")[:2]), self.answer.libc[1])

    @property
    def active(self) -> str | None:
        return self.state.active

    @property
    def service_manager(self) -> bool:
        """Whether the deploy installs a systemd unit (systemd runs, and the deploy is root)."""
        return self.state.systemd and self.state.euid == 0


@dataclass
class Deployed:
    slot: str
    bundle: str
    previous: str | None
    models: list[str] = field(default_factory=list)
    sent_files: int = 0
    kept_files: int = 0
    runtime: str = ""
    service_s: float = 0.0
    unchanged: bool = False  # the bundle was active already


class Payload:
    """The board's side of a deploy, through a transport: the supervisor's commands and the slots'."""

    def __init__(self, board: Board, transport: Transport) -> None:
        self.board, self.t = board, transport
        self.source = Path(supervisor.__file__).read_bytes()

    def agent(self, *args: str, step: str, answer: type[T], timeout: float = 600) -> T:
        """The supervisor's answer to `args`, validated as `answer`; DeployError naming `step` when it
        fails. The supervisor goes on stdin: this harness's, whatever the board has installed."""
        done = self.t.run([self.t.python, "-", ROOT, *args], timeout=timeout, stdin=self.source)
        if done.returncode != 0:
            raise DeployError(f"{step}: {last_line(done.stderr)}")
        lines = done.stdout.decode(errors="replace").strip().splitlines() or [""]
        return decode(lines[-1], answer, source=f"{step}: the board's answer", error=DeployError)

    def probe(self) -> Probe:
        check = check_board(self.t)
        if check.answer is None:
            raise DeployError(f"board {self.board.name} has no python3 to install the runtime with: {check.why_no_python}")
        if check.arch != self.board.spec.arch:
            raise DeployError(f"board {self.board.name} answers as {check.arch}, but its profile says "
                              f"{self.board.spec.arch}: fix the profile")
        if check.answer.libc[0] != "glibc":
            raise DeployError(f"board {self.board.name} has no GNU C library: the runtime's wheels need one")
        return Probe(check.answer, self.agent("state", step="reaching the board", answer=State))

    def bundle_of(self, slot: str) -> bundle.Body | None:
        """The manifest of the bundle in `slot`, or None."""
        with tempfile.TemporaryDirectory() as scratch:
            try:
                self.t.get(f"{ROOT}/slots/{slot}/{bundle.MANIFEST_NAME}", Path(scratch) / bundle.MANIFEST_NAME)
            except TransportError:
                return None
            try:
                return bundle.read(Path(scratch))
            except OrbitliteError:
                return None

    def self_test(self, slot: str, step: str) -> Checked:
        done = self.t.run([f"{ROOT}/envs/{slot}/bin/python", "-P", "-m", "orbitlite", "onboard", "check-slot",
                           f"{ROOT}/slots/{slot}"], timeout=1800)
        if done.returncode != 0:
            raise DeployError(f"{step}: {last_line(done.stderr)}")
        lines = done.stdout.decode(errors="replace").strip().splitlines() or [""]
        return decode(lines[-1], Checked, source=f"{step}: the board's answer", error=DeployError)

    def install_supervisor(self, probe: Probe) -> bool:
        """Install this harness's supervisor on the board (and its systemd unit, where systemd runs
        and the deploy is root), and the runtime's launcher; whether the supervisor changed."""
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / "python").write_text(LAUNCHER)
            self.t.put(Path(scratch) / "python", RUNTIME_PYTHON)
            self.t.run(["chmod", "755", RUNTIME_PYTHON], timeout=60).check("installing the runtime's launcher")
        there = self.agent("hashes", "supervisor", step="installing the supervisor", answer=Hashes).get("supervisor.py")
        if there is not None and there[1] == hashlib.sha256(self.source).hexdigest():
            return False
        if probe.state.supervisor is not None and not probe.service_manager:
            self.agent("stop", step="stopping the previous supervisor", answer=dict)
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(scratch) / "supervisor.py"
            local.write_bytes(self.source)
            self.t.put(local, SUPERVISOR)
            if probe.service_manager:
                unit = Path(scratch) / "orbitlite-payload.service"
                unit.write_text(_unit(probe))
                self.t.put(unit, UNIT)
                self.t.run(["systemctl", "daemon-reload"], timeout=60).check("systemctl daemon-reload")
                self.t.run(["systemctl", "enable", "orbitlite-payload.service"], timeout=60).check("enabling the unit")
        return True

    def ensure_running(self, probe: Probe, restart: bool) -> None:
        """The supervisor running, restarted when `restart` (its file changed)."""
        if probe.service_manager:
            self.t.run(["systemctl", "restart" if restart else "start", "orbitlite-payload.service"],
                       timeout=120).check("starting the unit")
        else:  # `start` runs the installed file, which a detached supervisor needs
            self.t.run([self.t.python, SUPERVISOR, ROOT, "start"], timeout=120).check("starting the supervisor")

    def switch(self, slot: str, trial_s: float, probe: Probe, step: str, restart: bool = False) -> float:
        """Make `slot` active on trial and wait until the supervisor confirms it; the seconds the
        service took to come up. DeployError when it went back to the previous slot."""
        before = self.agent("status", step=step, answer=Status).fallback
        self.agent("switch", slot, "--trial", repr(trial_s), step=step, answer=dict)
        start = time.monotonic()
        self.ensure_running(probe, restart)
        deadline = start + trial_s + SERVICE_TIMEOUT_MARGIN_S
        while time.monotonic() < deadline:
            status = self.agent("status", step=step, answer=Status)
            if status.fallback is not None and status.fallback != before:
                raise DeployError(f"{step}: slot {slot} did not come up: {status.fallback.reason}; the board went "
                                  f"back to slot {status.fallback.to}, {self._back_up(status.fallback.to, step)}")
            if status.slot == slot and status.state == "running" and status.trial is None:
                return time.monotonic() - start
            if status.state == "failed" and status.trial is None and probe.active is None:
                raise DeployError(f"{step}: {status.reason}; there is no previous slot to go back to")
            time.sleep(0.5)
        raise DeployError(f"{step}: the board's supervisor did not confirm slot {slot} within "
                          f"{trial_s + SERVICE_TIMEOUT_MARGIN_S:g} s")


    def _back_up(self, slot: str | None, step: str) -> str:
        """Whether the service runs again on `slot`, the one the board went back to."""
        deadline = time.monotonic() + SERVICE_TIMEOUT_MARGIN_S
        while time.monotonic() < deadline:
            status = self.agent("status", step=step, answer=Status)
            if status.slot == slot and status.state == "running":
                return "where the service runs again"
            time.sleep(0.5)
        return f"where the service is not up either: {status.reason}"


def _unit(probe: Probe) -> str:
    return f"""[Unit]
Description=orbitlite payload (supervisor of orbitlite onboard serve, A/B slots)
After=local-fs.target

[Service]
ExecStart=/usr/bin/python3 {probe.state.root}/supervisor/supervisor.py {probe.state.root} run
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def service_config(board: Board, models: Sequence[Path]) -> dict:
    """The service configuration a bundle carries when the user gives none: the models as a
    ladder, best first, scenes of the first model's bands, the board's watts (`board.json`)."""
    first = read_manifest(sidecar_path(models[0]))
    return {"spool": "../../spool", "bands": list(first.bands), "board": "board.json",
            "models": {"ladder": [m.name for m in models], "threads": board.spec.cores},
            "store": {"path": "../../store/products.db", "capacity_bytes": 1_000_000_000},
            "telemetry": "../../store/telemetry.jsonl", "poll_seconds": 1.0}


def make_bundle(board: Board, transport: Transport, models: Sequence[Path], out: Path, *,
                config: Path | None = None, wheelhouse: Path | None = None, report: Report = print,
                platform: runtime.Platform | None = None) -> bundle.Body:
    """Build in `out` the bundle for `board` of `models`: the runtime's wheels for its platform,
    the models with their vectors, the service configuration (`config`, else `service_config`)
    and the board's watts."""
    platform = platform or Payload(board, transport).probe().platform  # the board's, unless already asked
    with tempfile.TemporaryDirectory() as scratch:
        extra = Path(scratch)
        report(f"wheels for {platform.key}")
        wheels = runtime.wheels(platform, transport, BUILD, wheelhouse, extra / "wheels", report)
        (extra / "conf").mkdir()
        cfg = extra / "conf" / supervisor.CONFIG
        if config is not None:
            cfg.write_bytes(Path(config).read_bytes())
        else:
            write_verified(cfg, encode_json(service_config(board, models), indent=2))
        watts = extra / "conf" / "board.json"
        write_verified(watts, encode_json(board.energy(), indent=2))
        return build_bundle(list(models), out, files=[*wheels, watts], runtime=platform.runtime(), config=cfg)


def deploy(board: Board, transport: Transport, sources: Sequence[Path], *, config: Path | None = None,
           wheelhouse: Path | None = None, trial_s: float = supervisor.DEFAULT_TRIAL_S,
           report: Report = print) -> Deployed:
    """Deploy `sources` (one bundle folder, or models to bundle for the board) to `board`."""
    payload = Payload(board, transport)
    probe = payload.probe()
    with tempfile.TemporaryDirectory() as scratch:
        sources = [Path(s) for s in sources]
        if len(sources) == 1 and sources[0].is_dir():
            folder = sources[0]
            if config is not None:
                raise DeployError("--config goes with models; a bundle carries its own configuration")
        else:
            folder = Path(scratch) / "bundle"
            make_bundle(board, transport, sources, folder, config=config, wheelhouse=wheelhouse, report=report,
                        platform=probe.platform)
        body = bundle.read(folder)
        return _deploy(payload, probe, folder, body, trial_s, report)


def _deploy(payload: Payload, probe: Probe, folder: Path, body: bundle.Body, trial_s: float,
            report: Report) -> Deployed:
    board = payload.board
    if body.runtime is None or body.config is None:
        raise DeployError(f"{folder}: the bundle carries no runtime or no service configuration (a bundle for "
                          f"the link, `hil link deploy`, not for `hil deploy`)")
    platform = probe.platform
    if (body.runtime.arch, body.runtime.python) != (platform.arch, platform.python):
        raise DeployError(f"the bundle is for {body.runtime.arch} with Python {body.runtime.python}; board "
                          f"{board.name} is {platform.arch} with Python {platform.python}")
    if probe.active is not None and probe.active in probe.state.installed:
        running = payload.bundle_of(probe.active)
        if running is not None and running.id == body.id:
            report(f"bundle {body.id} is already active on slot {probe.active} of {board.name}: nothing to do")
            return Deployed(probe.active, body.id, probe.active, body.models, unchanged=True)
    size = sum(f.size for f in body.files.values())
    if probe.answer.disk_free < ROOM_FACTOR * size:
        raise DeployError(f"board {board.name} has {probe.answer.disk_free / 1e6:.0f} MB free under {probe.state.root}; the "
                          f"bundle needs about {ROOM_FACTOR * size / 1e6:.0f} MB")
    slot = "b" if probe.active == "a" else "a"
    done = Deployed(slot, body.id, probe.active, body.models)

    step = "step 1 (transfer)"
    staging = f"incoming/{body.id}"
    present = payload.agent("hashes", staging, step=step, answer=Hashes)
    names = [*sorted(body.files), bundle.MANIFEST_NAME]
    missing = [name for name in names if name == bundle.MANIFEST_NAME or present.get(name) !=
               (body.files[name].size, body.files[name].sha256)]
    payload.t.put_into([folder / name for name in missing], f"{ROOT}/{staging}")
    done.sent_files, done.kept_files = len(missing), len(names) - len(missing)
    arrived = payload.agent("hashes", staging, step=step, answer=Hashes)
    strays = sorted(set(arrived) - set(names))  # what a cut transfer left half-way
    if strays:
        payload.t.run(["rm", "-f", "--", *(f"{ROOT}/{staging}/{name}" for name in strays)], timeout=60)
    for name, listed in body.files.items():
        if arrived.get(name) != (listed.size, listed.sha256):
            payload.t.run(["rm", "-f", "--", f"{ROOT}/{staging}/{name}"], timeout=60)
            raise DeployError(f"{step}: {name} on the board is not the file the bundle lists (size or sha256); "
                              f"slot {probe.active or 'none'} still runs")
    report(f"{step}: {done.sent_files} files sent, {done.kept_files} already on the board, hashes checked")

    step = "step 2 (install)"
    done.runtime = payload.agent("install", slot, staging, body.runtime.requirement, step=f"{step} into slot {slot}",
                                 answer=Installed, timeout=3600).runtime
    report(f"{step}: slot {slot}, runtime {done.runtime}")

    step = "step 3 (self-test)"
    checked = payload.self_test(slot, f"{step} in slot {slot}")
    report(f"{step}: slot {slot}: {', '.join(checked.models)} reproduce the ground's outputs "
           f"(Python {checked.python} on {checked.arch}, {checked.interpreter})")

    step = "step 4 (switch)"
    changed = payload.install_supervisor(probe)
    done.service_s = payload.switch(slot, trial_s, probe, step, restart=changed)
    report(f"{step}: slot {slot} active, the service up on it in {done.service_s:.1f} s")
    return done


def rollback(board: Board, transport: Transport, *, trial_s: float = supervisor.DEFAULT_TRIAL_S,
             report: Report = print) -> Deployed:
    """Go back to the other slot: self-test it, then switch to it on trial."""
    payload = Payload(board, transport)
    probe = payload.probe()
    if probe.active is None:
        raise DeployError(f"board {board.name} has no active slot: nothing to roll back")
    slot = "b" if probe.active == "a" else "a"
    if slot not in probe.state.installed:
        raise DeployError(f"slot {slot} of board {board.name} holds no installed bundle: nothing to roll back to")
    checked = payload.self_test(slot, f"self-test of slot {slot}")
    report(f"self-test: slot {slot}: {', '.join(checked.models)} reproduce the ground's outputs")
    seconds = payload.switch(slot, trial_s, probe, "switch", restart=payload.install_supervisor(probe))
    report(f"slot {slot} active, the service up on it in {seconds:.1f} s")
    return Deployed(slot, checked.bundle, probe.active, list(checked.models), service_s=seconds)
