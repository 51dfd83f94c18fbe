"""`orbitlite onboard serve`: the service that takes scenes from a spool directory and runs them,
under the configured budgets, into products in the crash-safe store.

The spool, by convention:
- a scene is a `.npy` or GeoTIFF (`.tif`, `.tiff`) file directly in the spool. The config's `bands`
  name a `.npy` scene's bands in file order, and pick bands by name from a GeoTIFF that names its
  own (as `--bands` does for `orbitlite onboard run`);
- a producer writes `NAME.npy.part` (or a dot-file) and renames it to `NAME.npy` when complete,
  so the service never sees half a scene: it ignores every other name (and the folders in it);
- scenes are taken oldest first (by modification time, then name); the file's stem is the scene id,
  which must be unique for the life of the store;
- a scene whose product is stored moves to `done/`; a scene the runtime refuses (unreadable when
  opened or halfway through, a band missing, NaNs, journaled with another tile grid) moves to
  `failed/`, beside `NAME.npy.reason`, one line saying why, and the service goes on to the next
  (onboard/service/spool.py makes any fault of a scene's reading a SceneError). A store that fails
  stops the service. A product the store's quota refuses leaves its scene in the spool: its tiles
  stay journaled and finishing it is retried at the next poll.

The store's journal makes any stop safe: a killed service resumes an interrupted scene from its
last committed tile, and a scene whose product is stored is never run again (if it is found in
the spool, it just moves to `done/`). A scene begun with other models (a model slot switched
since) starts again with the current ones. SIGTERM or SIGINT stop it between two strips of tiles.

With a `link` section, `serve` also answers commands on a serial port in a thread of its own
(onboard/link/commands.py, wired by onboard/cli.py: the service does not know the link); what they
change (budgets, the model slot) takes effect between scenes. A command that needs the board to
itself (a bench) borrows it with `lent()`: refused while a scene runs, and while it is lent no
scene starts (they wait in the spool). Models that cannot be loaded (at the start, or after a
slot switch) end the service with one line, unless it is given a `fallback` (`serve` with a link
gives one: the other model slot): then it asks the fallback to put other models in their place
and loads those, or, if that fails too, runs with no models, the scenes waiting in the spool, so
that the link stays up to mend it. Why is in `status()` (`models_fault`) and in a telemetry line
(event `models`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from onboard.contracts.product import NODATA
from onboard.contracts.tiling import TileGrid
from onboard.errors import BusyError, ConfigError, OrbitliteError, OutputError, QuotaError, StoreError
from onboard.files import ensure_writable_dir, write_verified
from onboard.run.budget import Budget, FixedPower, PowerSource, Scheduler
from onboard.run.plan import Plan, build_plan
from onboard.run.strips import classify_scene
from onboard.scenes.raster import Raster
from onboard.schema import decode, read_bounded
from onboard.service.config import MAX_BYTES, Budgets, ServiceConfig
from onboard.service.spool import DONE, FAILED, REASON_SUFFIX, open_spooled, scan_spool
from onboard.service.telemetry import Telemetry, TelemetryLog, cpu_temperature, rss_bytes
from onboard.store.store import SceneRecord, SceneState, Store


@dataclass
class _InProgress:
    """The scene the runner is on, for the telemetry of its strips."""

    scene_id: str
    grid: TileGrid
    resumed_at: int  # its tiles journaled before this run
    started: float  # monotonic seconds
    waiting: int  # scenes behind it in the spool


@dataclass
class Summary:
    """What became of the scenes a run of the service looked at, by name."""

    done: list[str] = field(default_factory=list)
    finished_before: list[str] = field(default_factory=list)  # found in the spool with a stored product
    failed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # the store's quota refused the product
    stopped: str | None = None  # the scene interrupted by a stop, resumed at the next start


class Service:
    """Watches the spool and runs each scene under the budgets into the store. Time, sleeping,
    the power source and the root of /proc and /sys are injected, so a test drives it without
    waiting. `sleep` defaults to a wait that `stop()` cuts short."""

    def __init__(self, config: ServiceConfig, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, cpu: Callable[[], float] = time.process_time,
                 sleep: Callable[[float], object] | None = None, power: PowerSource | None = None,
                 host_root: Path = Path("/"), report: Callable[[str], None] = lambda line: None,
                 fallback: Callable[[], str] | None = None) -> None:
        self.config = config
        self._clock, self._monotonic, self._host_root, self._report = clock, monotonic, host_root, report
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self._lock = threading.Lock()  # between the link's thread and the spool's
        self._board = threading.Lock()  # held through a scene, or while the board is lent (lent())
        self._models_changed = False
        self._fallback = fallback
        self._plan: Plan | None = None  # None: no models could be loaded; the scenes wait
        self._models_fault: str | None = None  # why the models are not the configured ones, or none
        self._pending_budget: Budget | None = None
        ensure_writable_dir(config.spool / DONE)
        ensure_writable_dir(config.spool / FAILED)
        budget = self._saved_budget() or config.budget
        self._scheduler = Scheduler(budget, config.board, monotonic, cpu, power or FixedPower())
        self._store = Store(config.store_path, config.store, clock=clock)
        self._current: _InProgress | None = None
        try:
            self._log = TelemetryLog(config.telemetry)
        except BaseException:
            self._store.close()
            raise
        try:
            self._load_models()
        except BaseException:
            self.close()
            raise

    def _load_models(self) -> None:
        """Load the configured models; when they cannot be, ask the fallback (if any) to put
        others in their place and load those, or else go on with none."""
        try:
            self._plan, self._models_fault = self._build_plan(), None
            return
        except OrbitliteError as exc:
            if self._fallback is None:
                raise
            fault = f"the models cannot be loaded: {exc}"
        try:
            fault += f"; {self._fallback()}"
            self._plan = self._build_plan()
        except OrbitliteError as exc:
            self._plan = None
            fault += f"; {exc}; no models: the scenes wait in the spool"
        self._models_fault = " ".join(fault.split())
        self._report(self._models_fault)
        self._emit("models", reason=self._models_fault)

    def _build_plan(self) -> Plan:
        config = self.config
        plan = build_plan(config.ladder, cascade=config.cascade, cascade_below=config.cascade_below,
                          threads=config.threads, batch=config.batch, interpreter=config.interpreter,
                          accelerator=config.accelerator, screening=config.screening, scheduler=self._scheduler,
                          store=self._store, priority=config.priority, uncertain_below=config.uncertain_below,
                          clock=self._monotonic, now=self._now, on_strip=self._on_strip, stop=self._stopping.is_set,
                          refuse=lambda name, exc: ConfigError(f"config {config.source}: {name}: {exc}"))
        self._check_bands(plan)
        self._tile_shape = plan.ladder[0].manifest.tile_shape
        return plan

    def _saved_budget(self) -> Budget | None:
        """The budgets last set over the link, which replace the config's."""
        if self.config.link is None or not self.config.link.budget.exists():
            return None
        path = self.config.link.budget
        try:
            data = read_bounded(path, MAX_BYTES, error=ConfigError, what="budgets set over the link")
            return decode(data, Budgets, source=f"budgets set over the link, {path}", error=ConfigError).budget()
        except ConfigError as exc:
            raise ConfigError(f"{exc} (remove the file to go back to the config's)") from None

    def _check_bands(self, plan: Plan) -> None:
        for i, model in enumerate(plan.models):
            name = f"models.ladder[{i}]" if i < len(plan.ladder) else "models.cascade"
            m = model.manifest
            missing = [b for b in m.bands if b not in self.config.bands]
            if missing:
                raise ConfigError(f"config {self.config.source}: bands lacks {','.join(missing)}, which {name} "
                                  f"({m.id}) needs: name the scenes' bands in file order")

    def close(self) -> None:
        self._log.close()
        self._store.close()

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Stop after the strip in progress (safe to call from a signal handler)."""
        self._stopping.set()

    @property
    def stopping(self) -> threading.Event:
        """Set once the service is asked to stop: what runs beside it (the link) stops with it."""
        return self._stopping

    # -- what the link's commands see and change (onboard/link/commands.py), from the link's thread 

    @property
    def store(self) -> Store:
        return self._store

    def clock(self) -> float:
        return self._clock()

    def spool(self) -> list[Path]:
        return scan_spool(self.config.spool)

    def budget(self) -> Budget:
        with self._lock:
            return self._pending_budget or self._scheduler.budget

    def set_budget(self, budget: Budget) -> Budget:
        """Budgets for the scenes after the one in progress, kept across restarts."""
        assert self.config.link is not None
        write_verified(self.config.link.budget, json.dumps(asdict(budget)).encode())
        with self._lock:
            self._pending_budget = budget
        return budget

    def models_changed(self) -> None:
        """The model files moved under the service (a slot switch): load them before the next scene."""
        with self._lock:
            self._models_changed = True

    @contextmanager
    def lent(self, to: str) -> Iterator[None]:
        """The board to `to` alone (a bench over the link): no scene starts until it is given
        back, the scenes waiting in the spool; BusyError, at once, while a scene runs."""
        if not self._board.acquire(blocking=False):
            current = self._current
            raise BusyError(f"{to}: the payload is running {f'scene {current.scene_id}' if current else 'a scene'}; "
                            f"ask again when `status` shows no scene")
        try:
            yield
        finally:
            self._board.release()

    def status(self) -> dict[str, Any]:
        current = self._current
        return {
            "scene": current.scene_id if current else None,
            "tiles_total": len(current.grid) if current else None,
            "spool_depth": len(self.spool()),
            "models": self._plan.id if self._plan else None,
            "models_fault": self._models_fault,
            "budget": asdict(self.budget()),
            "budget_left": self._scheduler.left() if current else None,
            "store": self._store.telemetry(),
            "rss_bytes": rss_bytes(self._host_root),
            "cpu_temp_c": cpu_temperature(self._host_root),
        }

    def _between_scenes(self) -> None:
        """Take up what the link changed while a scene ran."""
        with self._lock:
            budget, self._pending_budget = self._pending_budget, None
            reload, self._models_changed = self._models_changed, False
        if budget is not None:
            self._scheduler.budget = budget
        if reload:
            self._load_models()
            if self._plan is not None:
                self._report(f"models switched: {self._plan.id}")

    def run(self, once: bool = False) -> Summary:
        """Process the spool: with `once`, the scenes found there now, and return; else poll every
        `poll_seconds` until stop()."""
        summary = Summary()
        self._poll(once, summary)
        if self._stopping.is_set() and summary.stopped is None:  # stopped between scenes
            self._emit("stopped", reason="stop requested")
        return summary

    def _poll(self, once: bool, summary: Summary) -> None:
        while not self._stopping.is_set():
            self._between_scenes()
            queue = scan_spool(self.config.spool)
            self._emit("poll", spool_depth=len(queue))
            moved = 0
            for i, path in enumerate(queue):
                if self._stopping.is_set():
                    break
                moved += self._handle(path, len(queue) - i - 1, summary)
            if once or self._stopping.is_set():
                break
            if not moved:  # nothing new, or only refused scenes: wait before looking again
                self._sleep(self.config.poll_seconds)

    def _handle(self, path: Path, waiting: int, summary: Summary) -> bool:
        """Run one spooled scene; whether it left the spool."""
        self._between_scenes()
        if self._plan is None:  # no models: the scene waits in the spool
            return False
        if not self._board.acquire(blocking=False):  # lent (a bench): the scene waits in the spool
            return False
        try:
            try:
                scene = open_spooled(path, self.config.bands)
            except OrbitliteError as exc:
                return self._fail(path, path.stem, str(exc), waiting, summary)
            with scene:
                return self._process(path, scene, waiting, summary)
        finally:
            self._board.release()

    def _process(self, path: Path, scene: Raster, waiting: int, summary: Summary) -> bool:
        record = self._store.scene(scene.id)
        if record is not None and record.state is not SceneState.OPEN:
            self._move(path, DONE)
            self._emit("finished-before", scene.id, waiting, tiles_done=record.n_tiles, tiles_total=record.n_tiles)
            self._report(f"{path.name}: its product {record.product_id} is already stored -> {DONE}/")
            summary.finished_before.append(path.name)
            return True
        grid = TileGrid.covering(scene.shape, self._tile_shape)
        total = len(grid)
        if record is not None and record.model_id != self._plan.id:
            # begun with other models (a slot switched since): their tiles cannot mix with these
            dropped = self._store.restart_scene(scene.id)
            self._report(f"{path.name}: begun with {record.model_id}; its {dropped} committed tiles are dropped "
                         f"and it starts again with {self._plan.id}")
            record = None
        conflict = self._journal_conflict(scene.id, record, total)
        if conflict:
            return self._fail(path, scene.id, conflict, waiting, summary)
        self._current = _InProgress(scene.id, grid, record.next_tile if record else 0, self._monotonic(), waiting)
        try:
            product = classify_scene(scene, self._plan)
        except QuotaError as exc:
            self._emit("refused", scene.id, waiting, tiles_done=total, tiles_total=total, reason=str(exc))
            self._report(f"{path.name}: {exc}; it stays in the spool and is retried")
            summary.refused.append(path.name)
            return False
        except StoreError:
            raise  # the store itself fails: no scene can go on
        except OrbitliteError as exc:
            return self._fail(path, scene.id, str(exc), waiting, summary)
        finally:
            self._current = None
        if product is None:  # stopped between two strips
            next_tile = self._store.scene(scene.id).next_tile
            self._emit("stopped", scene.id, waiting, tiles_done=next_tile, tiles_total=total,
                       reason=f"stopped; resumes at tile {next_tile} on restart")
            self._report(f"{path.name}: stopped after tile {next_tile} of {total}; it resumes there on restart")
            summary.stopped = path.name
            return False
        self._move(path, DONE)
        classified = int((product.class_map != NODATA).sum())
        self._emit("scene", scene.id, waiting, tiles_done=total, tiles_total=total,
                   tiles_per_s=product.runtime.get("tiles_per_s"), budget_left=product.runtime.get("budget_left"))
        skipped = ", ".join(f"{s['tiles']} {s['reason']}" for s in product.skipped)
        self._report(f"{path.name}: {classified} of {total} tiles classified"
                     + (f" ({skipped} skipped)" if skipped else "")
                     + f", product {self._store.scene(scene.id).product_id} stored -> {DONE}/")
        summary.done.append(path.name)
        return True

    def _on_strip(self, scene_id: str, next_tile: int) -> None:
        """A telemetry line after each strip of tiles the runner journals."""
        now = self._current
        if now is None or now.scene_id != scene_id:
            return
        self._emit("strip", scene_id, now.waiting, tiles_done=next_tile, tiles_total=len(now.grid),
                   tiles_per_s=_rate(next_tile - now.resumed_at, self._monotonic() - now.started),
                   budget_left=self._plan.scheduler.left())

    def _journal_conflict(self, scene_id: str, record: SceneRecord | None, total: int) -> str | None:
        """Why the journal cannot take this scene up again, if it cannot."""
        if record is None:
            return None
        if record.n_tiles != total:
            return (f"scene {scene_id} is journaled with {record.n_tiles} tiles, not {total}: the file is not "
                    f"the one begun; rename it to give it a new scene id")
        return None

    def _fail(self, path: Path, scene_id: str, reason: str, waiting: int, summary: Summary) -> bool:
        """Move a scene the runtime refuses to failed/, beside a one-line reason."""
        one_line = " ".join(reason.split())
        write_verified(self.config.spool / FAILED / (path.name + REASON_SUFFIX), (one_line + "\n").encode())
        self._move(path, FAILED)
        self._emit("failed", scene_id, waiting, reason=one_line)
        self._report(f"{path.name}: failed: {one_line} -> {FAILED}/")
        summary.failed.append(path.name)
        return True

    def _move(self, path: Path, folder: str) -> None:
        try:
            os.replace(path, self.config.spool / folder / path.name)
        except FileNotFoundError:  # taken away meanwhile: nothing left to move
            pass
        except OSError as exc:
            raise OutputError(f"cannot move {path} to {folder}/: {exc.strerror}") from None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), timezone.utc)

    def _emit(self, event: str, scene: str | None = None, spool_depth: int = 0, *, tiles_done: int | None = None,
              tiles_total: int | None = None, tiles_per_s: float | None = None,
              budget_left: dict[str, Any] | None = None, reason: str | None = None) -> None:
        self._log.write(Telemetry(
            time=self._now().isoformat(timespec="milliseconds"), event=event, scene=scene, tiles_done=tiles_done,
            tiles_total=tiles_total, tiles_per_s=tiles_per_s, budget_left=budget_left, spool_depth=spool_depth,
            store=self._store.telemetry(), rss_bytes=rss_bytes(self._host_root),
            cpu_temp_c=cpu_temperature(self._host_root), reason=reason))


def _rate(tiles: int, seconds: float) -> float | None:
    return round(tiles / seconds, 1) if seconds > 0 else None
