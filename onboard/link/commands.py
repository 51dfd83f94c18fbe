"""The commands the payload answers over the link, while `orbitlite onboard serve` runs.

- `ping` -> the payload's clock and uptime;
- `status` -> telemetry: the scene in progress, the spool, the budgets, the store and its queue,
  the active model slot, the link's counters (refusals included), memory, CPU temperature, disk;
- `set_budgets {cpu_seconds, deadline_seconds, reserve, run_in_eclipse}` -> the budgets from the
  next scene on (absent keys keep their value; null lifts a limit), kept across restarts;
- `run_scene {path}` -> moves an uploaded scene (under `files/`) into the spool, where the service
  takes it up in turn; returns its place in the queue;
- `products {n}` -> the next products of the downlink queue; `ack_product {id}` -> the ground holds
  it: it leaves the store;
- `switch_slot {slot}` -> checks slot `a` or `b` against its bundle manifest (onboard/contracts/bundle.py),
  self-tests the service's models in it and, only if all pass, makes it the active slot; the
  service loads them at its next poll;
- `stat`, `read`, `put_begin`, `put_chunk`, `put_end` -> file transfer (onboard/link/files.py).

Model slots (onboard/link/slots.py): `slots/a/` and `slots/b/` under the payload's root, and
`slots/active`, a symbolic link to one of them, switched atomically. The service config names its
models through it (e.g. `"ladder": ["slots/active/cnn-l.tflite"]`).

`answer_link` wires the commands to a running service: `orbitlite onboard serve` calls it, so the
service itself knows nothing of the link.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

from onboard.contracts import bundle
from onboard.errors import BudgetError, LinkError, OrbitliteError, SlotError
from onboard.link.endpoint import Endpoint, Handler
from onboard.link.files import FileService
from onboard.link.port import open_port
from onboard.link.slots import ACTIVE, SLOTS, active_slot, self_test, switch_active
from onboard.service.config import LinkConfig
from onboard.service.loop import Service

FILES = "files"


class PayloadCommands:
    """The handlers of the link endpoint, over the running service."""

    def __init__(self, service: Service, root: Path) -> None:
        self.service = service
        self.root = Path(root)
        self.slots = self.root / "slots"
        self.endpoint: Endpoint | None = None  # the endpoint answering with these, for its counters
        self._started = time.monotonic()
        spool = service.config.spool.resolve()
        areas = [FILES, *(f"slots/{s}" for s in SLOTS)]
        if spool.is_relative_to(self.root.resolve()):
            areas.append(str(spool.relative_to(self.root.resolve())))
        for area in areas:
            (self.root / area).mkdir(parents=True, exist_ok=True)
        self.files = FileService(self.root, tuple(areas), service.store.read_product)

    def handlers(self) -> dict[str, Handler]:
        return {"ping": self.ping, "status": self.status, "set_budgets": self.set_budgets,
                "run_scene": self.run_scene, "products": self.products, "ack_product": self.ack_product,
                "switch_slot": self.switch_slot, **self.files.handlers()}

    def ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"time": self.service.clock(), "uptime_s": round(time.monotonic() - self._started, 3)}

    def status(self, args: dict[str, Any]) -> dict[str, Any]:
        disk = shutil.disk_usage(self.root)
        return {**self.service.status(), "active_slot": active_slot(self.slots),
                "link": self.endpoint.telemetry() if self.endpoint else None,
                "disk_free_bytes": disk.free}

    def set_budgets(self, args: dict[str, Any]) -> dict[str, Any]:
        known = {"cpu_seconds", "deadline_seconds", "reserve", "run_in_eclipse"}
        unknown = set(args) - known
        if unknown:
            raise BudgetError(f"set_budgets: no budget {sorted(unknown)[0]!r}; known: {', '.join(sorted(known))}")
        budget = replace(self.service.budget(), **args)
        return asdict(self.service.set_budget(budget))

    def run_scene(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args["path"])
        source = self.files.resolve(name, (FILES,))
        if not source.is_file():
            raise OrbitliteError(f"run_scene: no file {name} on the payload: upload it first")
        ahead = len(self.service.spool())
        target = self.service.config.spool / source.name
        if target.exists():
            raise OrbitliteError(f"run_scene: {source.name} is already in the spool")
        os.replace(source, target)
        return {"queued": source.name, "ahead": ahead}

    def products(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.service.store.next_for_downlink(int(args.get("n", 20)))]

    def ack_product(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"removed": self.service.store.acknowledge(int(args["id"]))}

    def switch_slot(self, args: dict[str, Any]) -> dict[str, Any]:
        slot = str(args["slot"])
        if slot not in SLOTS:
            raise SlotError(f"switch_slot: slot {slot!r}: use one of {', '.join(SLOTS)}")
        models = self.service.slot_models(self.slots / ACTIVE, self.slots / slot)
        if not models:
            raise SlotError(f"switch_slot: the service's models are not named through {self.slots / ACTIVE}")
        bundle.verify(self.slots / slot)
        missing = [str(p.relative_to(self.root)) for p in models if not p.is_file()]
        if missing:
            raise SlotError(f"switch_slot: slot {slot} lacks {', '.join(missing)}")
        ids = self_test(models, self.service.config.threads)
        switch_active(self.slots, slot)
        self.service.models_changed()
        return {"active_slot": slot, "models": ids}


def answer_link(service: Service, link: LinkConfig, key: bytes, report: Callable[[str], None]) -> threading.Thread:
    """Answer the link's commands over `service` in a thread of its own, until the service stops."""
    commands = PayloadCommands(service, link.root)
    commands.endpoint = Endpoint(open_port(link.port, link.baud), key, link.state, commands.handlers())
    thread = threading.Thread(target=_answer, args=(commands.endpoint, link, service, report), name="link",
                              daemon=True)
    thread.start()
    report(f"link: answering commands on {link.port} at {link.baud} baud")
    return thread


def _answer(endpoint: Endpoint, link: LinkConfig, service: Service, report: Callable[[str], None]) -> None:
    """Serve the link until the service stops; a port that fails (a cable pulled, a USB adapter
    gone) is reported in one line and opened again every poll, keeping the link's counters."""
    stopping, poll = service.stopping, service.config.poll_seconds
    while not stopping.is_set():
        try:
            endpoint.serve(stopping)
        except OSError as exc:  # pyserial's SerialException is one
            report(f"link: {link.port} failed ({exc}); opening it again in {poll:g} s")
            endpoint.close_port()
            while not stopping.is_set():
                stopping.wait(poll)
                try:
                    endpoint.use_port(open_port(link.port, link.baud))
                    break
                except LinkError:
                    continue
