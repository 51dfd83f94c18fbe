"""The scheduler driven to each budget's edge with injected clocks and power, and the tile
pre-screening on real and constructed pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onboard.errors import BudgetError
from onboard.inference.screening import CLOUD, KEEP, NODATA, OUTSIDE, Screening, screen_tiles
from onboard.run.boards import BOARDS, BoardProfile
from onboard.run.budget import CPU, DEADLINE, ECLIPSE, RESERVE, Budget, FixedPower, PowerState, Scheduler


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _scheduler(budget: Budget, power: PowerState = PowerState(1.0, 100.0, True), board=BOARDS["rpi-4b"]):
    wall, cpu = Clock(), Clock()
    return Scheduler(budget, board, wall, cpu, FixedPower(power), initial_seconds_per_tile=0.01), wall, cpu


def test_no_budget_admits_everything():
    s, _, _ = _scheduler(Budget(reserve=0.0))
    assert s.admit(1000) == (1000, None)


def test_cpu_budget_stops_at_its_edge():
    s, wall, cpu = _scheduler(Budget(cpu_seconds=1.0, reserve=0.0))
    assert s.admit(50) == (50, None)
    cpu.t = 0.5
    s.spent(50)  # 10 ms of CPU a tile: 0.5 s left buys 50 more tiles
    assert s.admit(80) == (50, CPU)
    cpu.t = 1.0
    s.spent(50)
    assert s.admit(10) == (0, CPU)
    assert s.admit(10, "a cheaper twin") == (0, CPU), "no model runs on an exhausted budget"


def test_a_budget_smaller_than_the_first_guess_still_measures_one_tile():
    s, wall, cpu = _scheduler(Budget(cpu_seconds=0.005, reserve=0.0))  # the guess is 10 ms a tile
    assert s.admit(50) == (1, CPU)
    cpu.t = 0.001
    s.spent(1)  # it costs 1 ms: 4 ms left buy 4 more
    assert s.admit(50) == (4, CPU)
    cpu.t = 0.005
    s.spent(4)
    assert s.admit(50) == (0, CPU)


def test_deadline_uses_the_wall_clock_and_learns_the_cost():
    s, wall, cpu = _scheduler(Budget(deadline_seconds=2.0, reserve=0.0))
    wall.t = 1.0
    s.spent(10)  # a slow first batch: 0.1 s a tile
    assert s.seconds_per_tile() == pytest.approx(0.1)
    assert s.admit(100) == (10, DEADLINE)
    wall.t = 1.5
    s.spent(10)  # faster now: the estimate moves towards it
    assert s.seconds_per_tile() == pytest.approx(0.7 * 0.1 + 0.3 * 0.05)
    s.admit(10, "small")
    wall.t = 1.6
    s.spent(10, "small")  # a smaller twin, 10 ms a tile, fits 40 in the 0.4 s left
    n, why = s.admit(500, "small")
    assert why == DEADLINE and n in (39, 40)  # 0.4 s / 10 ms, give or take the float's last bit


def test_energy_reserve_is_never_dipped_into():
    board = BoardProfile("test", idle_watts=1.0, busy_watts=4.0)  # 3 W extra while inferring
    # 0.001 Wh above a 20% reserve: 3.6 J; at 10 ms a tile each costs 0.03 J -> 120 tiles
    s, _, _ = _scheduler(Budget(reserve=0.2), PowerState(0.2 + 0.001 / 100, 100.0, True), board)
    assert s.admit(1000) == (120, RESERVE)


def test_a_live_power_reading_replaces_the_profile():
    board = BoardProfile("test", idle_watts=1.0, busy_watts=4.0)
    s, _, _ = _scheduler(Budget(reserve=0.2), PowerState(0.2 + 0.001 / 100, 100.0, True, watts=2.0), board)
    assert s.admit(1000) == (360, RESERVE)  # 1 W extra


def test_eclipse_policy():
    s, _, _ = _scheduler(Budget(run_in_eclipse=False), PowerState(0.9, 100.0, False))
    assert s.admit(10) == (0, ECLIPSE)
    s, _, _ = _scheduler(Budget(run_in_eclipse=True, reserve=0.0), PowerState(0.9, 100.0, False))
    assert s.admit(10) == (10, None)


def test_decisions_replay_exactly():
    def run():
        s, wall, cpu = _scheduler(Budget(cpu_seconds=0.3, deadline_seconds=0.5, reserve=0.1),
                                  PowerState(0.5, 10.0, True))
        out = []
        for step in range(20):
            n, why = s.admit(7)
            out.append((n, why))
            wall.t += n * 0.004 + 0.001
            cpu.t += n * 0.003
            s.spent(n)
        return out

    assert run() == run()


def test_bad_budgets_and_profiles():
    with pytest.raises(BudgetError, match="reserve"):
        Budget(reserve=1.0)
    for seconds in (0, math.nan, math.inf, 1e308):  # NaN, inf and 1e308 broke the admission's arithmetic
        with pytest.raises(BudgetError, match="more than 0 and at most 604800 s"):
            Budget(cpu_seconds=seconds)
    with pytest.raises(BudgetError, match="reserve"):
        Budget(reserve=math.nan)
    with pytest.raises(BudgetError, match="idle_watts <= busy_watts"):
        BoardProfile("x", 5.0, 2.0)


def test_screening_on_the_real_sentinel2_scene(spyndex_scene):
    bands = ("B02", "B03", "B04", "B08")
    strip = spyndex_scene[:, :32, :]
    cols = np.arange(0, 300, 32)
    codes = screen_tiles(strip, bands, 0, cols, (32, 32), Screening())
    assert (codes == KEEP).all(), "a clear vegetated scene keeps every tile"
    cloudy = strip.copy()
    cloudy[:, :, 64:160] = 6000  # a thick cloud over tiles 2-4: bright and flat in every band
    cloudy[:, :, 200:260] = 0  # no data over tiles 6-7 (and part of 8)
    codes = screen_tiles(cloudy, bands, 0, cols, (32, 32), Screening())
    assert codes.tolist() == [KEEP, KEEP, CLOUD, CLOUD, CLOUD, KEEP, NODATA, NODATA, KEEP, KEEP]
    codes = screen_tiles(strip, bands, 0, cols, (32, 32), Screening(roi=(0, 100, 300, 200)))
    assert codes.tolist() == [OUTSIDE] * 3 + [KEEP] * 4 + [OUTSIDE] * 3
    codes = screen_tiles(strip, bands, 0, cols, (32, 32), Screening(roi=(40, 0, 300, 300)))
    assert (codes == OUTSIDE).all()
