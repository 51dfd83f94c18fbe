"""Power meters: the small protocol every meter implements (`read` the board's power now), and
`measure`, which reads a meter while some work runs and integrates the energy. One module per kind
beside this one (`modelled`, `ina219`, `ina260`, `scpi`), each with `open_meter(spec, board,
transport)`, chosen by the profile's `meter.kind` (hil/boards/drivers.py); a new meter is one new
file there and its spec in hil/boards/profile.py.

Each reading stands for the interval since the one before it: exact for the modelled meter (its
reading is the mean power since the last), and within one sampling period for a real one."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol, TypeVar

from hil.errors import MeterError

T = TypeVar("T")


@dataclass(frozen=True)
class Reading:
    watts: float
    volts: float | None = None
    amps: float | None = None


class PowerMeter(Protocol):
    """What the harness needs of a power meter."""

    name: str  # what it is and where: "ina219 on /dev/i2c-1 at 0x40"
    modelled: bool  # True: not measured, modelled from the profile's figures
    period: float  # s between readings while measuring (inf: at the start and end only)

    def read(self) -> Reading:
        """The board's power now (or, modelled, its mean since the last reading)."""
        ...

    def close(self) -> None:
        ...


@dataclass(frozen=True)
class Energy:
    """What a meter saw over a window of work."""

    joules: float
    seconds: float
    samples: int
    mean_watts: float
    peak_watts: float
    meter: str
    modelled: bool


def measure(meter: PowerMeter, work: Callable[[], T], *,
            clock: Callable[[], float] = time.monotonic) -> tuple[T, Energy]:
    """Run `work` while reading `meter` every `meter.period` seconds (and at the start and end), and
    integrate: sum of each reading times the time since the one before it."""
    samples: list[tuple[float, Reading]] = [(clock(), meter.read())]
    stop, failed = threading.Event(), []

    def sample() -> None:
        try:
            while not stop.wait(meter.period):
                samples.append((clock(), meter.read()))
        except MeterError as exc:
            failed.append(exc)

    sampler = threading.Thread(target=sample, daemon=True) if meter.period < float("inf") else None
    if sampler:
        sampler.start()
    try:
        result = work()
    finally:
        stop.set()
        if sampler:
            sampler.join()
    if failed:
        raise failed[0]
    samples.append((clock(), meter.read()))
    joules = sum(r.watts * (t - t0) for (t0, _), (t, r) in zip(samples, samples[1:]))
    seconds = samples[-1][0] - samples[0][0]
    watts = [r.watts for _, r in samples[1:]]
    return result, Energy(joules, seconds, len(samples), joules / seconds if seconds > 0 else watts[-1],
                          max(watts), meter.name, meter.modelled)
