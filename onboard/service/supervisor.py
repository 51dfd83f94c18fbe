"""The payload's supervisor and slot keeper: it keeps `orbitlite onboard serve` running from the
active slot, and puts a newly switched slot on trial, going back to the previous one by itself when
the service does not come up on it; and it does the board's side of a deploy (`hil deploy`):
report the slots, hash what arrived, install a bundle into a slot's runtime. The board's service
manager keeps the supervisor running: a systemd unit on a real board (`hil deploy` installs it), or
`start` where there is no systemd (the emulated board, a container). It uses the standard library
alone and runs on the board's own `python3`, outside either slot, so that no slot's runtime can
break it (and before any runtime is installed: `hil deploy` sends it on stdin, `python3 - ROOT
state`, until it is installed as `ROOT/supervisor/supervisor.py`).

    python3 supervisor.py ROOT run                 the supervisor, in the foreground
    python3 supervisor.py ROOT start               the same, detached, unless one runs already
    python3 supervisor.py ROOT stop                stop it and the service
    python3 supervisor.py ROOT switch SLOT [--trial SECONDS]
                                                   make SLOT active, on trial, and restart the service
    python3 supervisor.py ROOT status              what it is doing, as JSON
    python3 supervisor.py ROOT state               the slots, the supervisor, the service manager
    python3 supervisor.py ROOT hashes DIR          size and sha256 of each file in ROOT/DIR, as JSON
    python3 supervisor.py ROOT install SLOT DIR REQUIREMENT
                                                   move ROOT/DIR (a bundle that arrived) into slots/SLOT,
                                                   the inactive one, and install REQUIREMENT from its
                                                   wheels into envs/SLOT (kept when its wheels are the same)

Under ROOT (the payload's root): `slots/a`, `slots/b` (bundles; `slots/active` leads to one),
`envs/a`, `envs/b` (each slot's runtime, a virtual environment), and `supervisor/`: `lock` (held
by the running supervisor, its pid inside), `status.json`, `trial.json` (a slot on trial: its
previous slot and the seconds it has to come up), `ready` (written by the service once it has
loaded its models, with its pid) and `service.log`.

A switch writes `trial.json`, points `slots/active` at the new slot in one atomic rename and
signals the supervisor (SIGHUP), which restarts the service. The trial ends when the service
writes `ready` (the slot is confirmed: `trial.json` goes) or fails: the service exits, or is not
ready within the trial's seconds. Then the supervisor points `slots/active` back at the previous
slot, records why in `status.json` (`fallback`) and starts the service there. Off trial, a
service that exits is restarted, after 1, 2, 4 ... up to 30 s.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

SLOTS = ("a", "b")
ACTIVE = "active"
CONFIG = "service.json"  # the service's configuration, in each slot
DEFAULT_TRIAL_S = 60.0
MAX_TRIAL_S = 3600.0
STOP_GRACE_S = 10.0
MAX_BACKOFF_S = 30.0
TICK_S = 0.1
MAX_LOG_BYTES = 4 * 2**20  # service.log is cut to its second half beyond this


def switch_link(slots: Path, slot: str) -> None:
    """Point `slots/active` at `slot` in one atomic rename, made durable."""
    tmp = slots / f".{ACTIVE}.new"
    tmp.unlink(missing_ok=True)
    os.symlink(slot, tmp)
    os.replace(tmp, slots / ACTIVE)
    fd = os.open(slots, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def active_of(slots: Path) -> str | None:
    """The slot `slots/active` leads to, or None."""
    try:
        target = os.readlink(slots / ACTIVE)
    except OSError:
        return None
    return target if target in SLOTS else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, body: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(body, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    """A JSON object the supervisor or the service wrote, or None when absent or not whole."""
    try:
        with open(path, "rb") as f:
            body = json.loads(f.read(65536))
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _read_trial(path: Path) -> dict | None:
    """trial.json as `switch` writes it, or None (absent, or anything else: it is removed)."""
    body = _read_json(path)
    if body is None:
        return None
    seconds = body.get("seconds")
    if body.get("slot") in SLOTS and body.get("previous") in SLOTS and body["previous"] != body["slot"] \
            and isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 < seconds <= MAX_TRIAL_S:
        return {"slot": body["slot"], "previous": body["previous"], "seconds": float(seconds)}
    return None


class Paths:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.slots = self.root / "slots"
        self.envs = self.root / "envs"
        self.dir = self.root / "supervisor"
        self.lock = self.dir / "lock"
        self.status = self.dir / "status.json"
        self.trial = self.dir / "trial.json"
        self.ready = self.dir / "ready"
        self.log = self.dir / "service.log"

    def python(self, slot: str) -> Path:
        return self.envs / slot / "bin" / "python"


class Supervisor:
    def __init__(self, paths: Paths) -> None:
        self.p = paths
        self.child: subprocess.Popen | None = None
        self.slot: str | None = None
        self.started = 0.0
        self.restarts = 0
        self.backoff = 0.0
        self.retry_at = 0.0
        self.trial: dict | None = None
        self.fallback: dict | None = None
        self.state = "starting"
        self.reason = ""
        self.hup = False
        self.stopping = False

    # --- the service -------------------------------------------------------------------------
    def _start(self) -> None:
        self.slot = active_of(self.p.slots)
        self.trial = _read_trial(self.p.trial)
        if self.trial is None or self.trial["slot"] != self.slot:
            self.p.trial.unlink(missing_ok=True)  # a trial of a slot no longer active, or not one a switch wrote
            self.trial = None
        self.p.ready.unlink(missing_ok=True)
        if self.slot is None:
            return self._failed("no active slot: deploy a bundle first")
        python = self.p.python(self.slot)
        if not python.exists():
            return self._failed(f"slot {self.slot} has no runtime (envs/{self.slot})")
        self._trim_log()
        with open(self.p.log, "ab") as log:
            log.write(f"--- {_now()} starting the service on slot {self.slot}\n".encode())
            log.flush()
            self.child = subprocess.Popen(
                [str(python), "-P", "-m", "orbitlite", "onboard", "serve", str(self.p.slots / ACTIVE / CONFIG),
                 "--ready", str(self.p.ready)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.p.root, start_new_session=True)
        self.started = time.monotonic()
        self.state, self.reason = "starting", f"started on slot {self.slot}"
        self._save()

    def _failed(self, reason: str) -> None:
        self.child = None
        self.state, self.reason = "failed", reason
        if self.trial is not None:
            return self._fall_back(reason)
        self.backoff = min(max(self.backoff * 2, 1.0), MAX_BACKOFF_S)
        self.retry_at = time.monotonic() + self.backoff
        self._save()

    def _stop_child(self) -> None:
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()

    def _fall_back(self, reason: str) -> None:
        trial, self.trial = self.trial, None
        self._stop_child()
        previous = trial["previous"] if trial else None
        self.p.trial.unlink(missing_ok=True)
        if previous in SLOTS:
            switch_link(self.p.slots, previous)
        self.fallback = {"from": trial["slot"] if trial else None, "to": previous, "reason": reason,
                         "at": _now()}
        self._log(f"slot {self.fallback['from']} failed its trial ({reason}): back to slot {previous}")
        self.backoff = 0.0
        self._start()

    def _ready(self) -> bool:
        body = _read_json(self.p.ready)
        return body is not None and self.child is not None and body.get("pid") == self.child.pid

    def _tick(self) -> None:
        if self.hup:
            self.hup = False
            self._stop_child()
            self.backoff, self.restarts = 0.0, 0
            return self._start()
        if self.child is None:
            if self.state == "failed" and time.monotonic() >= self.retry_at:
                self.restarts += 1
                self._start()
            return
        code = self.child.poll()
        if code is not None:
            return self._failed(f"the service on slot {self.slot} exited with status {code} "
                                f"(supervisor/service.log)")
        if self.state == "starting" and self._ready():
            self.state, self.reason, self.backoff = "running", f"running on slot {self.slot}", 0.0
            if self.trial is not None:
                self.trial = None
                self.p.trial.unlink(missing_ok=True)
                self._log(f"slot {self.slot} confirmed")
            self._save()
        elif self.trial is not None and time.monotonic() - self.started > self.trial["seconds"]:
            self._fall_back(f"the service on slot {self.slot} was not ready within {self.trial['seconds']:g} s")

    def _save(self) -> None:
        _write_json(self.p.status, {
            "supervisor": os.getpid(), "slot": self.slot, "state": self.state, "reason": self.reason,
            "service": self.child.pid if self.child else None, "restarts": self.restarts,
            "trial": self.trial, "fallback": self.fallback, "at": _now()})

    def _log(self, line: str) -> None:
        with open(self.p.log, "ab") as log:
            log.write(f"--- {_now()} {line}\n".encode())

    def _trim_log(self) -> None:
        try:
            if self.p.log.stat().st_size > MAX_LOG_BYTES:
                data = self.p.log.read_bytes()[-MAX_LOG_BYTES // 2:]
                self.p.log.write_bytes(data)
        except FileNotFoundError:
            pass

    def run(self) -> None:
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "hup", True))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: setattr(self, "stopping", True))
        self._start()
        while not self.stopping:
            time.sleep(TICK_S)
            self._tick()
        self._stop_child()
        self.state, self.reason = "stopped", "the supervisor was stopped"
        self._save()


def _lock(paths: Paths) -> int | None:
    """The supervisor's lock, taken (its descriptor), or None when another supervisor holds it."""
    paths.dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def running_pid(paths: Paths) -> int | None:
    """The pid of the running supervisor, or None."""
    fd = _lock(paths)
    if fd is not None:
        os.close(fd)
        return None
    try:
        return int(paths.lock.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def cmd_run(paths: Paths) -> int:
    fd = _lock(paths)
    if fd is None:
        print(f"a supervisor runs already (pid {running_pid(paths)})", file=sys.stderr)
        return 1
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    Supervisor(paths).run()
    return 0


def cmd_start(paths: Paths) -> int:
    if running_pid(paths) is None:
        paths.dir.mkdir(parents=True, exist_ok=True)
        with open(paths.dir / "supervisor.log", "ab") as log:
            subprocess.Popen([sys.executable, os.path.abspath(__file__), str(paths.root), "run"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 10
        while running_pid(paths) is None and time.monotonic() < deadline:
            time.sleep(0.05)
    pid = running_pid(paths)
    print(json.dumps({"supervisor": pid}))
    return 0 if pid else 1


def cmd_stop(paths: Paths) -> int:
    pid = running_pid(paths)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S + 5
        while running_pid(paths) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    stopped = running_pid(paths) is None
    print(json.dumps({"stopped": stopped}))
    return 0 if stopped else 1


def cmd_switch(paths: Paths, slot: str, trial_s: float) -> int:
    if not (paths.slots / slot / CONFIG).is_file() or not paths.python(slot).exists():
        print(f"slot {slot} holds no installed bundle: nothing to switch to", file=sys.stderr)
        return 1
    previous = active_of(paths.slots)
    if previous == slot:
        print(f"slot {slot} is active already", file=sys.stderr)
        return 1
    paths.dir.mkdir(parents=True, exist_ok=True)
    if previous is not None:  # a first deploy has nothing to fall back to
        _write_json(paths.trial, {"slot": slot, "previous": previous, "seconds": trial_s, "since": _now()})
    switch_link(paths.slots, slot)
    pid = running_pid(paths)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)
    print(json.dumps({"slot": slot, "previous": previous, "supervisor": pid}))
    return 0


def cmd_state(paths: Paths) -> int:
    print(json.dumps({
        "root": str(paths.root), "active": active_of(paths.slots),
        "installed": [s for s in SLOTS if paths.python(s).exists() and (paths.slots / s / CONFIG).is_file()],
        "supervisor": running_pid(paths) if paths.dir.is_dir() else None,
        "systemd": os.path.isdir("/run/systemd/system"), "euid": os.geteuid()}))
    return 0


def cmd_hashes(paths: Paths, folder: str) -> int:
    where = _inside(paths, folder)
    found = {}
    if where.is_dir():
        for entry in sorted(os.scandir(where), key=lambda e: e.name):
            if entry.is_file(follow_symlinks=False):
                found[entry.name] = [entry.stat().st_size, _sha256(Path(entry.path))]
    print(json.dumps(found))
    return 0


def _inside(paths: Paths, folder: str) -> Path:
    """ROOT/`folder`, refused unless it is a plain relative path under ROOT."""
    parts = folder.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise SystemExit(f"{folder!r}: a folder under the payload's root is wanted")
    where = paths.root
    for part in parts:
        where = where / part
        if where.is_symlink():
            raise SystemExit(f"{folder!r}: {part} is a symbolic link; a folder under the payload's root is wanted")
    return where


def cmd_install(paths: Paths, slot: str, folder: str, requirement: str) -> int:
    """Put the bundle in ROOT/`folder` into `slot` (not the active one) and its runtime into envs/`slot`."""
    if active_of(paths.slots) == slot:
        print(f"slot {slot} is the active one: a bundle goes into the other slot", file=sys.stderr)
        return 1
    source = _inside(paths, folder)
    wheels = sorted(p.name for p in source.glob("*.whl"))
    env = paths.envs / slot
    marker = env / "orbitlite-wheels.json"
    fresh = _read_json(marker) != {"wheels": _wheel_hashes(source, wheels)}
    paths.slots.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(paths.slots / slot, ignore_errors=True)
    os.replace(source, paths.slots / slot)
    for folder_name in ("spool", "store", "files"):
        (paths.root / folder_name).mkdir(exist_ok=True)
    if not fresh:
        print(json.dumps({"slot": slot, "runtime": "kept: the same wheels are installed"}))
        return 0
    shutil.rmtree(env, ignore_errors=True)
    steps = [[sys.executable, "-m", "venv", str(env)],
             [str(env / "bin" / "python"), "-m", "pip", "install", "--no-index", "--no-cache-dir",
              "--disable-pip-version-check", "--no-warn-script-location", "--no-compile", "--find-links", str(paths.slots / slot),
              requirement]]
    for argv in steps:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(env, ignore_errors=True)
            lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            said = [line for line in lines if line.startswith("ERROR:")] or lines[-1:] or [f"{argv[2]} failed"]
            print(said[0], file=sys.stderr)
            return 1
    _write_json(marker, {"wheels": _wheel_hashes(paths.slots / slot, wheels)})
    print(json.dumps({"slot": slot, "runtime": "installed"}))
    return 0


def _wheel_hashes(folder: Path, wheels: list[str]) -> dict:
    return {name: _sha256(folder / name) for name in wheels}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="supervisor.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "start", "stop", "status", "state"):
        sub.add_parser(name)
    sub.add_parser("hashes").add_argument("folder")
    install = sub.add_parser("install")
    install.add_argument("slot", choices=SLOTS)
    install.add_argument("folder")
    install.add_argument("requirement")
    switch = sub.add_parser("switch")
    switch.add_argument("slot", choices=SLOTS)
    switch.add_argument("--trial", type=float, default=DEFAULT_TRIAL_S)
    args = parser.parse_args(argv)
    paths = Paths(args.root)
    if args.command == "switch" and not 0 < args.trial <= MAX_TRIAL_S:
        parser.error(f"--trial must be within (0, {MAX_TRIAL_S:g}] s")
    if args.command == "run":
        return cmd_run(paths)
    if args.command == "start":
        return cmd_start(paths)
    if args.command == "stop":
        return cmd_stop(paths)
    if args.command == "switch":
        return cmd_switch(paths, args.slot, args.trial)
    if args.command == "state":
        return cmd_state(paths)
    if args.command == "hashes":
        return cmd_hashes(paths, args.folder)
    if args.command == "install":
        return cmd_install(paths, args.slot, args.folder, args.requirement)
    print(json.dumps({**(_read_json(paths.status) or {}), "running": running_pid(paths) is not None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
