"""No meter: the board's power modelled from its profile's idle and busy watts and its measured
busy time, read from the board's /proc/stat through its transport: idle + (busy - idle) x the
fraction of its cores' time spent busy since the last reading. Every figure from it says it is
modelled (`modelled = True`)."""

from __future__ import annotations

import functools
import time
from typing import Callable

from hil.boards.meters import Reading
from hil.boards.profile import Board, ModelledSpec
from hil.boards.transport import Transport
from hil.errors import MeterError

# /proc/stat's cpu line: user nice system idle iowait irq softirq steal; busy is all but idle and iowait
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


class ModelledMeter:
    modelled = True
    period = float("inf")  # each reading is a question to the board: at the start and end of a window

    def __init__(self, idle_watts: float, busy_watts: float, cpu: Callable[[], tuple[float, int]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`cpu()` gives the board's busy CPU-seconds so far, over all its cores, and the cores."""
        self.idle, self.busy, self._cpu, self._clock = idle_watts, busy_watts, cpu, clock
        self.name = f"modelled from idle {idle_watts:g} W and busy {busy_watts:g} W over the board's busy time"
        self._last: tuple[float, float] | None = None

    def read(self) -> Reading:
        busy_s, cores = self._cpu()
        now = self._clock()
        last, self._last = self._last, (now, busy_s)
        if last is None or now <= last[0]:
            return Reading(self.idle)
        load = min(1.0, max(0.0, (busy_s - last[1]) / ((now - last[0]) * cores)))
        return Reading(self.idle + (self.busy - self.idle) * load)

    def close(self) -> None:
        pass


def board_cpu(transport: Transport) -> Callable[[], tuple[float, int]]:
    """A reader of the board's busy CPU-seconds and cores, from /proc/stat through `transport`. It
    asks the board nothing until it is read: `hil bench` opens a modelled meter and never reads it
    (its energy is the profile's busy watts over the bench's busy time), so a transport that runs
    no command (serial) can bench too."""

    @functools.cache
    def ticks() -> float:
        return float(transport.run(["getconf", "CLK_TCK"], timeout=30).check("getconf CLK_TCK").stdout.decode())

    def cpu() -> tuple[float, int]:
        per_second = ticks()
        lines = transport.run(["cat", "/proc/stat"], timeout=30).check("reading /proc/stat").stdout.decode().splitlines()
        try:
            total = [int(v) for v in lines[0].split()[1:]]
            cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
            return sum(total[i] for i in BUSY_FIELDS if i < len(total)) / per_second, max(cores, 1)
        except (IndexError, ValueError):
            raise MeterError("the board's /proc/stat does not read as Linux's: its busy time cannot be modelled") from None

    return cpu


def open_meter(spec: ModelledSpec, board: Board, transport: Transport) -> ModelledMeter:
    watts = board.energy()
    return ModelledMeter(watts.idle_watts, watts.busy_watts, board_cpu(transport))
