"""Classifying a scene tile by tile, one strip of tiles at a time in bounded memory: read the
strip, pre-screen its tiles, let the scheduler admit what the budgets allow, pre-process each
batch straight into the interpreter's input tensor, invoke, keep the top class and confidence,
and journal every strip so a killed run resumes where it stopped."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

from onboard.contracts.product import NODATA, Product
from onboard.contracts.tiling import TileGrid
from onboard.errors import ModelError, SceneError
from onboard.files import ensure_writable_dir
from onboard.inference.model import LoadedModel
from onboard.inference.preprocess import TilePreprocessor
from onboard.inference.scoring import classify_tiles
from onboard.inference.screening import CLOUD_BANDS, KEEP, REASONS, Screening, screen_tiles
from onboard.progress import progress_bar
from onboard.run.boards import BOARDS, BoardProfile
from onboard.run.budget import Budget, FixedPower, Scheduler
from onboard.run.plan import Clock, Journal, Plan, build_plan
from onboard.scenes.scene import band_positions


class StripSource(Protocol):
    """A scene read a strip of rows at a time (an in-memory Scene, or a raster on disk)."""

    id: str
    bands: tuple[str, ...]
    shape: tuple[int, int]
    dtype: np.dtype
    footprint: dict | None

    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int: ...


@dataclass
class _Results:
    """The scene's tile results as they accumulate: classes, confidences, and per tile a skip
    code (0: not skipped; else 1 + its reason's index in `reasons`)."""

    n: int
    classes: np.ndarray = field(init=False)
    confidence: np.ndarray = field(init=False)
    skip: np.ndarray = field(init=False)
    reasons: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.classes = np.full(self.n, NODATA, np.uint8)
        self.confidence = np.full(self.n, NODATA, np.uint8)
        self.skip = np.zeros(self.n, np.uint8)

    def code(self, reason: str) -> int:
        if reason not in self.reasons:
            self.reasons.append(reason)
        return 1 + self.reasons.index(reason)

    def runs(self, start: int, end: int) -> Iterator[tuple[int, int, str | None]]:
        """(start, count, reason or None) of each run of equally skipped tiles in [start, end)."""
        codes = self.skip[start:end]
        edges = np.flatnonzero(np.diff(codes)) + 1
        for a, b in zip([0, *edges], [*edges, len(codes)]):
            yield start + int(a), int(b - a), self.reasons[codes[a] - 1] if codes[a] else None

    def skipped(self) -> tuple[list[dict], np.ndarray | None]:
        """The product's `skipped` list (reasons in alphabetical order, so a resumed run writes
        what an uninterrupted one does) and its skip map."""
        used = sorted({self.reasons[c - 1] for c in np.unique(self.skip) if c})
        if not used:
            return [], None
        remap = np.zeros(len(self.reasons) + 1, np.uint8)
        for i, why in enumerate(self.reasons):
            remap[i + 1] = 1 + used.index(why) if why in used else 0
        skip_map = remap[self.skip]
        return [{"reason": why, "tiles": int((skip_map == i + 1).sum())} for i, why in enumerate(used)], skip_map


class _Prefetch:
    """Reads the next strip and pre-processes all its tiles for the preferred model on the other
    core while this one runs the interpreter on the current strip: the kernel and the reads
    release the GIL, and the interpreter does too while it runs. Two sets of buffers alternate."""

    def __init__(self, scene: StripSource, band_index: list[int], strip_shape: tuple[int, int, int],
                 pre: TilePreprocessor, origins: np.ndarray, row_step: int) -> None:
        self.scene, self.band_index, self.pre, self.origins, self.row_step = scene, band_index, pre, origins, row_step
        self.strips = [np.empty(strip_shape, scene.dtype) for _ in range(2)]
        self.staged = [np.empty((len(origins), pre.tile_rows, pre.tile_cols, len(pre.band_index)), pre.dtype)
                       for _ in range(2)]
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strip-prefetch")
        self.pending: dict[int, Future] = {}

    def _load(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        strip, staged = self.strips[r % 2], self.staged[r % 2]
        filled = self.scene.read_strip(self.band_index, r * self.row_step, strip)
        data = strip[:, :filled, :]
        self.pre(data, self.origins, staged, row0=r * self.row_step)
        return data, staged

    def get(self, r: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Strip r (its data and staged tiles), and strip r + 1 started in the background."""
        future = self.pending.pop(r, None) or self.pool.submit(self._load, r)
        result = future.result()
        if r + 1 < last:
            self.pending[r + 1] = self.pool.submit(self._load, r + 1)
        return result

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def classify_scene(scene: StripSource, plan: Plan | LoadedModel, *, clock: Clock | None = None,
                   now: Callable[[], datetime] | None = None) -> Product | None:
    """Run `plan` (or one model) over every tile of `scene`, a strip of tiles at a time, and
    return the product. With a store in the plan, every strip is journaled and a scene killed
    half-way resumes from its last committed tile. None when the plan's `stop` ended the scene
    before its last strip (with a store, it resumes there)."""
    if isinstance(plan, LoadedModel):
        plan = Plan([plan])
    clock = clock or plan.clock
    now = now or plan.now
    misfit = plan.misfit()
    if misfit:
        raise ModelError(misfit[1])
    first = plan.ladder[0].manifest
    grid = TileGrid.covering(scene.shape, first.tile_shape, plan.stride)
    if min(grid.stride_rows, grid.stride_cols) < 1:
        raise SceneError(f"stride {plan.stride} must be at least one pixel")
    th, cols = first.tile_shape[0], scene.shape[1]
    for m in plan.models:
        # A strip's tiles in equal batches: a batch larger than a strip, or a last batch mostly
        # padding, would be invoked for tiles that are not there.
        if m.batch > 1:
            m.resize(-(-grid.cols // -(-grid.cols // m.batch)))
    # The strip holds every band a model needs (and the cloud test's, when it can run).
    needed = list(dict.fromkeys(b for m in plan.models for b in m.manifest.bands))
    if plan.screening and plan.screening.cloud:
        needed += [b for b in CLOUD_BANDS if b in scene.bands and b not in needed]
    band_index = band_positions(scene.bands, needed, scene.id)  # refuses a scene lacking one
    pres = {id(m): TilePreprocessor(needed, m.manifest, scene.id) for m in plan.models}
    col_origins = np.arange(grid.cols, dtype=np.int64) * grid.stride_cols
    origins = np.stack([np.zeros(grid.cols, np.int64), col_origins], axis=1)

    results = _Results(len(grid))
    resume = 0
    if plan.store:
        resume = plan.store.begin_scene(scene.id, plan.id, len(grid), {"shape": list(scene.shape)})
        if resume:
            results.classes[:resume], results.confidence[:resume] = plan.store.tile_results(scene.id, plan.id)
            for run in plan.store.skipped(scene.id, plan.id):
                results.skip[run.start:run.start + run.tiles] = results.code(run.reason)
    if plan.scheduler:
        plan.scheduler.start_scene()

    preferred = plan.ladder[0]
    prefetch = _Prefetch(scene, band_index, (len(needed), th, cols), pres[id(preferred)], origins, grid.stride_rows)
    started = clock()
    with progress_bar(len(grid) - resume, f"classifying {scene.id}") as bar, closing(prefetch):
        for r in range(resume // grid.cols, grid.rows):
            row0 = r * grid.stride_rows
            data, staged = prefetch.get(r, grid.rows)
            base = r * grid.cols
            todo = np.arange(max(resume - base, 0), grid.cols)
            if plan.screening:
                codes = screen_tiles(data, tuple(needed), row0, col_origins, first.tile_shape, plan.screening)
                for code, why in REASONS.items():
                    results.skip[base + todo[codes[todo] == code]] = results.code(why)
                todo = todo[codes[todo] == KEEP]
            why, n = None, 0
            for model in plan.ladder[_rung(plan, len(grid) - base):]:
                if not len(todo):
                    break
                n, why = plan.scheduler.admit(len(todo), model.manifest.id) if plan.scheduler else (len(todo), None)
                if n:
                    _run(model, pres[id(model)], data, origins, todo[:n], base, results, plan,
                         staged if model is preferred else None)
                    todo = todo[n:]
            exhausted = bool(len(todo)) and n == 0  # not even the cheapest model gets a tile
            if len(todo):
                results.skip[base + todo] = results.code(why)
            if plan.cascade:
                unsure = np.flatnonzero(results.confidence[base:base + grid.cols] < plan.cascade_below)
                unsure = unsure[(results.classes[base + unsure] != NODATA)]
                n, _ = plan.scheduler.admit(len(unsure), plan.cascade.manifest.id) if plan.scheduler else (len(unsure), None)
                if n:
                    _run(plan.cascade, pres[id(plan.cascade)], data, origins, unsure[:n], base, results, plan)
            end = base + grid.cols
            if exhausted:
                # The budgets only shrink within a scene: stop here, reading nothing more.
                results.skip[end:] = results.code(why)
                end = len(grid)
            if plan.store:
                _journal(plan.store, scene.id, plan.id, results, max(resume, base), end)
            bar.update(end - max(resume, base))
            if plan.on_strip:
                plan.on_strip(scene.id, end)
            if exhausted:
                break
            if plan.stop and end < len(grid) and plan.stop():
                return None
    seconds = clock() - started

    skipped, skip_map = results.skipped()
    product = Product(
        scene_id=scene.id, scene_shape=scene.shape, scene_bands=scene.bands,
        scene_bytes=int(np.prod(scene.shape)) * len(scene.bands) * np.dtype(scene.dtype).itemsize,
        footprint=scene.footprint, model_id=plan.id,
        model_sha256=",".join(m.manifest.sha256 for m in plan.models), classes=first.classes, grid=grid,
        class_map=results.classes.reshape(grid.rows, grid.cols),
        confidence=results.confidence.reshape(grid.rows, grid.cols), uncertain_below=plan.uncertain_below,
        skipped=skipped, skip_map=None if skip_map is None else skip_map.reshape(grid.rows, grid.cols),
        created=now().isoformat(timespec="seconds"),
        runtime={"interpreter": plan.ladder[0].interpreter_name, "threads": plan.ladder[0].threads,
                 "batch": plan.ladder[0].batch, "tiles": len(grid) - resume, "resumed_at": resume,
                 "seconds": round(seconds, 6),
                 "tiles_per_s": round((len(grid) - resume) / seconds, 1) if seconds > 0 else None,
                 **({"budget_left": plan.scheduler.left()} if plan.scheduler else {})},
    )
    if plan.store:
        plan.store.finish_scene(scene.id, plan.id, product.encode(), plan.priority)
    return product


def _rung(plan: Plan, remaining: int) -> int:
    """The ladder's first model that the budgets project can finish the `remaining` tiles, or
    its cheapest: so a scene steps down to a cheaper twin before the budget runs out, not after.
    A model not yet measured is tried, so that its cost becomes known."""
    if not plan.scheduler:
        return 0
    for i, model in enumerate(plan.ladder):
        key = model.manifest.id
        if key not in plan.scheduler.per_tile or plan.scheduler.admit(remaining, key)[0] >= remaining:
            return i
    return len(plan.ladder) - 1


def _run(model: LoadedModel, pre: TilePreprocessor, data: np.ndarray, origins: np.ndarray, tiles: np.ndarray,
         base: int, results: _Results, plan: Plan, staged: np.ndarray | None = None) -> None:
    if staged is not None and not (len(tiles) == len(staged) and tiles[0] == 0):
        staged = staged[tiles]  # a subset of the strip's tiles runs
    classes, confidence = classify_tiles(model, pre, data, np.ascontiguousarray(origins[tiles]), staged=staged)
    if plan.scheduler:
        plan.scheduler.spent(len(tiles), model.manifest.id)
    results.classes[base + tiles] = classes
    results.confidence[base + tiles] = confidence
    results.skip[base + tiles] = 0


def _journal(store: Journal, scene_id: str, plan_id: str, results: _Results, start: int, end: int) -> None:
    """Commit tiles [start, end) as runs of classified and skipped tiles, in order."""
    for s, count, why in results.runs(start, end):
        if why is None:
            store.commit_tiles(scene_id, plan_id, s, results.classes[s:s + count], results.confidence[s:s + count])
        else:
            store.commit_skipped(scene_id, plan_id, s, count, why)


def run_scene(scene: StripSource, models: Path | Sequence[Path], out_dir: Path, *, threads: int = 1,
              batch: int = 256, interpreter: str = "auto", accelerator: str = "cpu", stride: int | None = None,
              cascade: Path | None = None, cascade_below: int = 128, budget: Budget | None = None,
              board: BoardProfile = BOARDS["rpi-4b"], screening: Screening | None = None,
              clock: Clock = time.perf_counter) -> tuple[Product, Path]:
    """Classify `scene` and write the product into `out_dir` (checked before any work is done).
    `models` is one model, or a ladder of twins, best first; `cascade` re-classifies the tiles they
    are unsure of; `budget` bounds the CPU-seconds and wall time of the scene on `board` (on mains
    power: no energy limit); `screening` skips no-data, cloudy and out-of-region tiles first."""
    out_dir = Path(out_dir)
    ensure_writable_dir(out_dir)
    scheduler = None if budget is None else Scheduler(budget, board, clock, time.process_time, FixedPower())
    plan = build_plan([models] if isinstance(models, (str, Path)) else models, cascade=cascade,
                      cascade_below=cascade_below, threads=threads, batch=batch, interpreter=interpreter,
                      accelerator=accelerator, screening=screening, scheduler=scheduler, stride=stride, clock=clock)
    product = classify_scene(scene, plan, clock=clock)
    return product, product.write(out_dir / product.file_name)
