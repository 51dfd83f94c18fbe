"""The commands the payload answers over the link, while `orbitlite onboard serve` runs. Each
command's args are checked against its schema (below, and onboard/link/files.py); bad ones are
refused in one line.

- `ping` -> the payload's clock and uptime;
- `status` -> telemetry: the scene in progress, the spool, the budgets, the store and its queue,
  the models in use (`models`, and `models_fault`: why they are not the active slot's, or why
  there are none), the active model slot, the link's counters (refusals included), memory, CPU
  temperature, disk;
- `set_budgets {cpu_seconds, deadline_seconds, reserve, run_in_eclipse}` -> the budgets from the
  next scene on (absent keys keep their value; null lifts a limit), kept across restarts;
- `run_scene {path}` -> moves an uploaded scene (`files/NAME`, a file, no link) into the spool,
  where the service takes it up in turn; returns its place in the queue;
- `products {n}` -> the next products of the downlink queue; `ack_product {id}` -> the ground holds
  it: it leaves the store;
- `bench {model, threads, batch, cores, batches, rule, scene, bands, accelerator}` (BenchArgs in
  onboard/inference/bench.py, bounded as `orbitlite onboard bench`'s options) -> runs that bench on
  the payload, on a model (its manifest beside it) and a scene uploaded to `files/` (each a file
  directly there, no link), and writes what it measured to `bench/result.json` (the contract
  onboard.contracts.bench.Measured, validated; too large for one frame, so the ground downloads
  it); returns that path, its size, the main tiles/s and whether the rule held. The bench has the
  board to itself: it is refused while the service runs a scene, and no scene starts while it
  runs; the link answers nothing else meanwhile (its thread waits on the bench, a child process),
  so the ground gives the command as long as `bench_seconds` allows. The payload stops the bench
  at that bound too, and when the service stops;
- `clear_slot {slot}` -> empties slot `a` or `b`, unless it is the active one, for a new bundle;
- `switch_slot {slot}` -> checks slot `a` or `b` against its bundle manifest and self-tests the
  service's models in it (onboard/link/slots.py) and, only if all pass, makes it the active slot;
  the service loads them at its next poll;
- `stat`, `read`, `put_begin`, `put_chunk`, `put_end` -> file transfer (onboard/link/files.py),
  within the file area; uploads go to `files/`, the spool and the inactive slot, never the active one.

Model slots (onboard/link/slots.py): `slots/a/` and `slots/b/` under the payload's root, and
`slots/active`, a symbolic link to one of them, switched atomically. The service config names its
models through it (e.g. `"ladder": ["slots/active/cnn-l.tflite"]`). When those cannot be loaded
(at the start, or after a switch), `serve` falls back to the other slot if it checks and
self-tests (`slot_fallback`), or else runs with no models, the scenes waiting in the spool; either
way the link stays up, and `status` and the telemetry log say why.

`answer_link` wires the commands to a running service: `orbitlite onboard serve` calls it, so the
service itself knows nothing of the link.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Callable, Literal, Sequence

from msgspec import Meta
from msgspec.structs import replace

from onboard.contracts.bench import decode_measured
from onboard.errors import BenchError, BudgetError, LinkError, OrbitliteError, SlotError, StoreError, TransferError
from onboard.files import write_verified
from onboard.inference.bench import ORBITLITE, BenchArgs, bench_argv, bench_seconds
from onboard.link.endpoint import Endpoint, Handler
from onboard.link.files import FileService
from onboard.link.port import open_port
from onboard.link.slots import ACTIVE, SLOTS, active_slot, slot_models, switch_to
from onboard.schema import Count, Schema, Text, convert
from onboard.service.config import Budgets, LinkConfig, ServiceConfig
from onboard.service.loop import Service

FILES = "files"
BENCH_RESULT = "bench/result.json"  # under the root: what the last `bench` measured
STOP_POLL = 0.5  # s between looks at the service's stop while a bench runs


# The args of each command (the file transfer's are in onboard/link/files.py).
class RunSceneArgs(Schema):
    path: Text


class ProductsArgs(Schema):
    n: Annotated[int, Meta(ge=1, le=1000)] = 20


class AckArgs(Schema):
    id: Count


class SlotArgs(Schema):
    slot: Literal["a", "b"]


class PayloadCommands:
    """The handlers of the link endpoint, over the running service."""

    def __init__(self, service: Service, root: Path, secrets: tuple[Path, ...] = ()) -> None:
        self.service = service
        self.root = Path(root)
        self.slots = self.root / "slots"
        self.endpoint: Endpoint | None = None  # the endpoint answering with these, for its counters
        self._started = time.monotonic()
        spool = service.config.spool.resolve()
        areas = [FILES, *(f"slots/{s}" for s in SLOTS)]
        if spool.is_relative_to(self.root.resolve()):
            areas.append(spool.relative_to(self.root.resolve()).as_posix())
        for area in areas:
            (self.root / area).mkdir(parents=True, exist_ok=True)
        self.files = FileService(self.root, tuple(areas), service.store.read_product, closed=self._closed,
                                 secrets=secrets)

    def handlers(self) -> dict[str, Handler]:
        return {"ping": self.ping, "status": self.status, "set_budgets": self.set_budgets,
                "run_scene": self.run_scene, "products": self.products, "ack_product": self.ack_product,
                "bench": self.bench, "clear_slot": self.clear_slot, "switch_slot": self.switch_slot,
                **self.files.handlers()}

    def _closed(self) -> dict[str, str]:
        """The upload areas not to be written now: the active slot."""
        active = active_slot(self.slots)
        return {} if active is None else {
            f"slots/{active}": f"slot {active} is the active slot, never written over the link: deploy into the "
                               f"other slot, then switch to it"}

    def ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"time": self.service.clock(), "uptime_s": round(time.monotonic() - self._started, 3)}

    def status(self, args: dict[str, Any]) -> dict[str, Any]:
        disk = shutil.disk_usage(self.root)
        return {**self.service.status(), "active_slot": active_slot(self.slots),
                "link": self.endpoint.telemetry() if self.endpoint else None,
                "disk_free_bytes": disk.free}

    def set_budgets(self, args: dict[str, Any]) -> dict[str, Any]:
        budgets = convert({**asdict(self.service.budget()), **args}, Budgets, source="set_budgets", error=BudgetError)
        return asdict(self.service.set_budget(budgets.budget()))

    def run_scene(self, args: dict[str, Any]) -> dict[str, Any]:
        path = convert(args, RunSceneArgs, source="run_scene", error=TransferError).path
        ahead = len(self.service.spool())
        return {"queued": self.files.take(path, FILES, self.service.config.spool), "ahead": ahead}

    def products(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        n = convert(args, ProductsArgs, source="products", error=StoreError).n
        return [asdict(p) for p in self.service.store.next_for_downlink(n)]

    def ack_product(self, args: dict[str, Any]) -> dict[str, Any]:
        product_id = convert(args, AckArgs, source="ack_product", error=StoreError).id
        return {"removed": self.service.store.acknowledge(product_id)}

    def bench(self, args: dict[str, Any]) -> dict[str, Any]:
        a = convert(args, BenchArgs, source="bench", error=BenchError)
        model = self.files.uploaded(a.model, FILES)
        self.files.uploaded(f"{a.model}.json", FILES)  # its manifest, read from beside it
        scene = None if a.scene is None else str(self.files.uploaded(a.scene, FILES).absolute())
        here = replace(a, model=str(model.absolute()), scene=scene)
        (self.root / PurePosixPath(BENCH_RESULT).parent).mkdir(exist_ok=True)
        with self.service.lent("bench"):
            data = _bench_child([*ORBITLITE, *bench_argv(here)], bench_seconds(a), self.service.stopping)
        measured = decode_measured(data, "bench: what orbitlite onboard bench printed")
        write_verified(self.root / BENCH_RESULT, data)
        return {"result": BENCH_RESULT, "size": len(data), "tiles_per_s": measured.main.tiles_per_s,
                "valid": measured.valid}

    def clear_slot(self, args: dict[str, Any]) -> dict[str, Any]:
        slot = convert(args, SlotArgs, source="clear_slot", error=SlotError).slot
        return {"slot": slot, "removed": self.files.clear(f"slots/{slot}")}

    def switch_slot(self, args: dict[str, Any]) -> dict[str, Any]:
        slot = convert(args, SlotArgs, source="switch_slot", error=SlotError).slot
        ids = switch_to(self.slots, slot, _needed(self.service.config, self.slots), self.service.config.threads)
        self.service.models_changed()
        return {"active_slot": slot, "models": ids}


def _bench_child(argv: Sequence[str], seconds: float, stopping: threading.Event) -> bytes:
    """What `argv` (`orbitlite onboard bench`) prints. A child process, so that its memory is its
    own and it can be stopped: with everything it started, after `seconds` or once the service
    stops; BenchError in one line then, or when it fails."""
    deadline = time.monotonic() + seconds
    with subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True) as child:
        while True:
            try:
                out, err = child.communicate(timeout=STOP_POLL)
                break
            except subprocess.TimeoutExpired:  # its output is kept for the next communicate()
                if not stopping.is_set() and time.monotonic() < deadline:
                    continue
                with contextlib.suppress(ProcessLookupError):  # it may have ended just now
                    os.killpg(child.pid, signal.SIGKILL)
                child.communicate()
                raise BenchError("bench: stopped with the service" if stopping.is_set() else
                                 f"bench: still running after {seconds:g} s (bench_seconds of its args); stopped")
    if child.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"bench: orbitlite onboard bench failed on the payload (exit {child.returncode}): {last}")
    return out


def _needed(config: ServiceConfig, slots: Path) -> list[PurePosixPath]:
    """The service's models, named through `slots/active`, relative to a slot."""
    models = slot_models([*config.ladder, *([config.cascade] if config.cascade else [])], slots)
    if not models:
        raise SlotError(f"the service's models are not named through {slots / ACTIVE}: no slot serves them")
    return models


def slot_fallback(config: ServiceConfig, root: Path) -> Callable[[], str]:
    """What `serve` with a link does when its models cannot be loaded (onboard/service/loop.py):
    switch to the other slot, if it checks and self-tests; what was done, or SlotError."""
    slots = Path(root) / "slots"

    def fall_back() -> str:
        models = _needed(config, slots)
        active = active_slot(slots)
        faults = []
        for slot in (s for s in SLOTS if s != active):
            try:
                ids = switch_to(slots, slot, models, config.threads)
            except OrbitliteError as exc:
                faults.append(str(exc))
                continue
            return f"fell back to slot {slot} ({', '.join(ids)}), which checks and self-tests"
        raise SlotError(f"no other slot to fall back to: {'; '.join(faults)}")

    return fall_back


def answer_link(service: Service, link: LinkConfig, key: bytes, report: Callable[[str], None]) -> threading.Thread:
    """Answer the link's commands over `service` in a thread of its own, until the service stops."""
    commands = PayloadCommands(service, link.root, secrets=(link.state, link.key_file))
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
