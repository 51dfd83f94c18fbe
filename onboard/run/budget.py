"""Budgets on board: how many more tiles a scene may spend, given compute, time and energy.

A `Scheduler` is asked before each batch how many of its tiles may run (`admit`) and told
afterwards what they cost (`spent`). It stops a scene when the CPU-seconds or the wall-clock
deadline would be overrun, or when the energy the tiles need would take the battery below its
reserve (or the satellite is in eclipse and the budget says not to run there). The clocks and the
power source are injected, so every decision can be replayed exactly in a test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

from onboard.errors import BudgetError
from onboard.run.boards import BoardProfile


@dataclass(frozen=True)
class PowerState:
    state_of_charge: float  # 0..1
    capacity_wh: float
    sunlit: bool
    watts: float | None = None  # a live reading of the payload's draw, when the bus gives one


class PowerSource(Protocol):
    def read(self) -> PowerState: ...


@dataclass
class FixedPower:
    """A power source that always reads the same: mains on the bench, or a test."""

    state: PowerState = PowerState(1.0, 100.0, True)

    def read(self) -> PowerState:
        return self.state


MAX_SCENE_SECONDS = 7 * 86400.0  # a budget of more than a week for one scene is a mistake, not a budget


@dataclass(frozen=True)
class Budget:
    cpu_seconds: float | None = None  # per scene
    deadline_seconds: float | None = None  # wall clock per scene
    reserve: float = 0.2  # battery fraction never used for inference
    run_in_eclipse: bool = True

    def __post_init__(self) -> None:
        # written so that NaN, which compares false with any bound, is refused too
        if not 0 <= self.reserve < 1:
            raise BudgetError(f"reserve must be a fraction in [0, 1), got {self.reserve}")
        for name in ("cpu_seconds", "deadline_seconds"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= MAX_SCENE_SECONDS:
                raise BudgetError(f"{name} must be more than 0 and at most {MAX_SCENE_SECONDS:g} s, got {value}")


# Reasons a scheduler gives for stopping; the product lists skipped tiles under them.
CPU, DEADLINE, RESERVE, ECLIPSE = "cpu budget", "deadline", "energy reserve", "eclipse"


@dataclass
class Scheduler:
    """Asked before each batch how many of its tiles may run (`admit`), and told afterwards how
    many did (`spent`): it measures what they cost on its own clocks since the admission, CPU
    seconds (every thread of the process, the prefetching one included) and wall seconds apart,
    so each budget is charged in its own terms."""

    budget: Budget
    board: BoardProfile
    wall: Callable[[], float]  # seconds, monotonic
    cpu: Callable[[], float]  # process CPU seconds
    power: PowerSource
    # Cost per tile before anything has been measured: deliberately pessimistic, so the first
    # batch cannot overrun a budget by much.
    initial_seconds_per_tile: float = 0.01
    # Cost per tile of each model (a ladder's rungs and a cascade's stages cost differently).
    per_tile: dict[str, float] = field(init=False, default_factory=dict)  # wall seconds
    cpu_per_tile: dict[str, float] = field(init=False, default_factory=dict)
    energy_joules: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.start_scene()

    def start_scene(self) -> None:
        self.wall_start, self.cpu_start = self.wall(), self.cpu()
        self._mark = (self.wall_start, self.cpu_start)
        self.energy_joules = 0.0

    def seconds_per_tile(self, model: str = "model") -> float:
        return self.per_tile.get(model, self.initial_seconds_per_tile)

    def _joules_per_tile(self, state: PowerState, model: str) -> float:
        extra_watts = (state.watts - self.board.idle_watts) if state.watts is not None \
            else (self.board.busy_watts - self.board.idle_watts)
        return max(extra_watts, 0.0) * self.seconds_per_tile(model)

    def admit(self, tiles: int, model: str = "model") -> tuple[int, str | None]:
        """How many of the next `tiles` may run on `model`, and the reason when that is fewer."""
        wall_now, cpu_now = self.wall(), self.cpu()
        self._mark = (wall_now, cpu_now)
        state = self.power.read()
        # (tiles it affords, why it stops, whether what is left is positive but the cost a guess)
        limits: list[tuple[float, str, bool]] = []
        if not state.sunlit and not self.budget.run_in_eclipse:
            limits.append((0, ECLIPSE, False))
        if self.budget.cpu_seconds is not None:
            left = self.budget.cpu_seconds - (cpu_now - self.cpu_start)
            limits.append((left / self.cpu_per_tile.get(model, self.initial_seconds_per_tile), CPU,
                           left > 0 and model not in self.cpu_per_tile))
        if self.budget.deadline_seconds is not None:
            left = self.budget.deadline_seconds - (wall_now - self.wall_start)
            limits.append((left / self.seconds_per_tile(model), DEADLINE, left > 0 and model not in self.per_tile))
        joules = self._joules_per_tile(state, model)
        if joules > 0:
            available = (state.state_of_charge - self.budget.reserve) * state.capacity_wh * 3600.0
            limits.append((available / joules, RESERVE, available > 0 and model not in self.per_tile))
        allowed, reason = tiles, None
        for limit, why, guessed in limits:
            # a budget with something left buys at least one tile while the cost is only guessed: the
            # pessimistic guess must not refuse a scene whose first tile would have told the real cost
            n = max(1 if guessed else 0, math.floor(limit))
            if n < allowed:
                allowed, reason = n, why
        return allowed, reason

    def spent(self, tiles: int, model: str = "model") -> None:
        """`tiles` ran on `model` since the last admission: learn its cost per tile (an average
        weighted to recent batches)."""
        if tiles <= 0:
            return
        wall_now, cpu_now = self.wall(), self.cpu()
        for costs, now, mark in ((self.per_tile, wall_now, self._mark[0]), (self.cpu_per_tile, cpu_now, self._mark[1])):
            measured = (now - mark) / tiles
            costs[model] = measured if model not in costs else 0.7 * costs[model] + 0.3 * measured
        self._mark = (wall_now, cpu_now)
        self.energy_joules += self._joules_per_tile(self.power.read(), model) * tiles

    def left(self) -> dict[str, float | dict | None]:
        """What is left of each budget, for telemetry."""
        state = self.power.read()
        return {
            "cpu_seconds": None if self.budget.cpu_seconds is None
            else round(self.budget.cpu_seconds - (self.cpu() - self.cpu_start), 3),
            "wall_seconds": None if self.budget.deadline_seconds is None
            else round(self.budget.deadline_seconds - (self.wall() - self.wall_start), 3),
            "energy_wh": round((state.state_of_charge - self.budget.reserve) * state.capacity_wh, 4),
            "seconds_per_tile": dict(self.per_tile),
        }
