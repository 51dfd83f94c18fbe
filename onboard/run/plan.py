"""The plan a scene runs under, built in one place for `orbitlite onboard run` and `serve`: the
models (a ladder of twins, best first, and a cascade), the screening, the scheduler, and the
hooks of the strip loop: the journal it commits each strip to, a function told of each strip,
and one asked after each strip whether to stop there."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from onboard.errors import ModelError, OrbitliteError
from onboard.inference.model import LoadedModel, load_model
from onboard.inference.screening import Screening
from onboard.run.budget import Scheduler

Clock = Callable[[], float]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Journal(Protocol):
    """What the strip loop needs of the store it journals a scene into (the on-board Store)."""

    def begin_scene(self, scene_id: str, model_id: str, n_tiles: int, meta: dict[str, Any]) -> int: ...

    def tile_results(self, scene_id: str, model_id: str) -> tuple[np.ndarray, np.ndarray]: ...

    def skipped(self, scene_id: str, model_id: str) -> Sequence[Any]: ...  # runs with start, tiles, reason

    def commit_tiles(self, scene_id: str, model_id: str, start: int, classes: np.ndarray,
                     confidence: np.ndarray) -> int: ...

    def commit_skipped(self, scene_id: str, model_id: str, start: int, count: int, reason: str) -> int: ...

    def finish_scene(self, scene_id: str, model_id: str, product_bytes: bytes, priority: int) -> int: ...


@dataclass
class Plan:
    """How a scene is run. `ladder` lists the models in order of preference: the first runs while
    the budgets allow, each next (cheaper) twin takes over the tiles the one before could not
    afford. `cascade` is a larger model re-classifying the tiles the ladder was unsure of
    (confidence under `cascade_below`), as far as the budgets allow.

    With a `store`, every strip is journaled into it and a scene killed half-way resumes from its
    last committed tile. `on_strip(scene_id, next_tile)` is told of each strip once it is done
    (and journaled); `stop()` is asked then, and True ends the scene there, before its last strip."""

    ladder: list[LoadedModel]
    cascade: LoadedModel | None = None
    cascade_below: int = 128
    screening: Screening | None = None
    scheduler: Scheduler | None = None
    store: Journal | None = None
    priority: int = 0
    uncertain_below: int = 128
    stride: tuple[int, int] | None = None  # between tiles, in pixels; less than the tile overlaps them
    clock: Clock = time.perf_counter
    now: Callable[[], datetime] = utc_now
    on_strip: Callable[[str, int], None] | None = None
    stop: Callable[[], bool] | None = None

    @property
    def models(self) -> list[LoadedModel]:
        return [*self.ladder, *([self.cascade] if self.cascade else [])]

    @property
    def id(self) -> str:
        """The id products and the journal know this plan by."""
        ids = "|".join(m.manifest.id for m in self.ladder)
        return ids + (f">{self.cascade.manifest.id}" if self.cascade else "")

    def misfit(self) -> tuple[int, str] | None:
        """The first of `models` that is no twin of the first (tile size and classes), and why."""
        first = self.ladder[0].manifest
        for i, m in enumerate(self.models):
            if m.manifest.tile_shape != first.tile_shape or m.manifest.classes != first.classes:
                return i, (f"{m.manifest.id} does not share {first.id}'s tile size and classes: a ladder and its "
                           f"cascade are twins of one task")
        return None


def _as_is(name: str, exc: OrbitliteError) -> OrbitliteError:
    return exc


def build_plan(ladder: Sequence[Path], *, cascade: Path | None = None, cascade_below: int = 128, threads: int = 1,
               batch: int = 256, interpreter: str = "auto", accelerator: str = "cpu",
               screening: Screening | None = None, scheduler: Scheduler | None = None, store: Journal | None = None,
               priority: int = 0, uncertain_below: int = 128, stride: int | None = None,
               clock: Clock = time.perf_counter, now: Callable[[], datetime] = utc_now,
               on_strip: Callable[[str, int], None] | None = None, stop: Callable[[], bool] | None = None,
               refuse: Callable[[str, OrbitliteError], OrbitliteError] = _as_is) -> Plan:
    """Load the `ladder` (best first) and the `cascade`, check that they are twins of one task and
    that `stride` (pixels between tiles; the tile side if None) is 1 to the tile side, and return
    the plan. A model that fails is reported as `refuse(name, error)`, where name is
    `models.ladder[i]` or `models.cascade`: a caller whose input names the models names the field."""
    def load(path: Path, name: str) -> LoadedModel:
        try:
            return load_model(path, threads=threads, batch=batch, interpreter=interpreter, accelerator=accelerator)
        except OrbitliteError as exc:
            raise refuse(name, exc) from None

    models = [load(p, f"models.ladder[{i}]") for i, p in enumerate(ladder)]
    side = min(models[0].manifest.tile_shape)
    if stride is not None and not 1 <= stride <= side:
        raise ModelError(f"a stride of {stride} px does not fit {models[0].manifest.id}'s {side} px tiles: give 1 to "
                         f"{side} px (a larger stride would leave pixels between the tiles unclassified)")
    plan = Plan(models, cascade=load(cascade, "models.cascade") if cascade else None, cascade_below=cascade_below,
                screening=screening, scheduler=scheduler, store=store, priority=priority,
                uncertain_below=uncertain_below, stride=(stride, stride) if stride else None, clock=clock, now=now,
                on_strip=on_strip, stop=stop)
    misfit = plan.misfit()
    if misfit:
        i, why = misfit
        raise refuse(f"models.ladder[{i}]" if i < len(models) else "models.cascade", ModelError(why))
    return plan
