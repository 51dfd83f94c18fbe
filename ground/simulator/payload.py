"""The store, the queues and the battery, stepped in order through a simulation in each mode:

- `raw`: every scene goes down raw;
- `products`: scenes are processed on board and only their products go down;
- `value`: products of every scene, then raw extracts (thumbnails or alert tiles) of the most
  valuable scenes, highest value first, as the link allows."""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Callable

import numpy as np

from ground.errors import SimulationError
from ground.simulator.config import Config
from ground.simulator.geometry import Geometry, geometry

MODES = ("raw", "products", "value")


@dataclass(frozen=True)
class Series:
    """One value per step, at its end."""

    storage_bytes: np.ndarray
    backlog_bytes: np.ndarray  # waiting for the downlink
    waiting_scenes: np.ndarray  # waiting to be processed
    state_of_charge: np.ndarray
    delivered_bytes: np.ndarray  # cumulative
    covered_scenes: np.ndarray  # cumulative


@dataclass(frozen=True)
class ModeResult:
    mode: str
    captured: int
    dropped: int  # scenes lost for want of storage
    processed: int
    covered: int  # scenes whose information reached the ground in full (raw scene or product)
    extracts_delivered: int
    extracts_dropped: int
    delivered_bytes: float
    latency_median_s: float | None  # from capture to the last byte of what covers the scene
    latency_p90_s: float | None
    extract_latency_median_s: float | None
    backlog_bytes_end: float
    storage_max_bytes: float
    processing_wh: float
    transmit_wh: float
    platform_wh: float
    min_state_of_charge: float
    series: Series = field(repr=False)
    covered_at_s: np.ndarray = field(repr=False)  # per scene, seconds after the start; NaN: not covered
    extract_at_s: np.ndarray = field(repr=False)  # per scene, when its extract was down; NaN: it was not


class _Payload:
    """The store, the processing queue and the downlink queue of one mode.

    Drop policy when a capture finds the store full: value-mode extracts go first, lowest value
    first; then raw scenes waiting (to go down in `raw` mode, to be processed in the others),
    oldest first, sparing the one being sent or processed; products are never dropped. If that
    does not make room, the new scene is dropped."""

    def __init__(self, mode: str, config: Config, geo: Geometry) -> None:
        self.mode, self.config, self.geo = mode, config, geo
        n = len(geo.captures)
        im = config.imaging
        self.tiles_left = [float(im.tiles_per_scene)] * n
        self.raw_left = [0.0] * n
        self.product_left = [0.0] * n
        self.extract_left = [0.0] * n
        self.covered_at = [math.nan] * n
        self.extract_at = [math.nan] * n
        self.waiting: deque[int] = deque()  # raw scenes, oldest first: to send (raw) or to process
        self.products: deque[int] = deque()
        self.extracts: list[tuple[float, int]] = []  # (value, scene), lowest value first
        self.stored = self.queued = self.delivered = 0.0
        self.dropped = self.processed = self.covered = self.extracts_dropped = self.extracts_delivered = 0

    @property
    def free(self) -> float:
        return self.config.storage_bytes - self.stored

    def capture(self, scene: int) -> None:
        need = self.config.imaging.scene_bytes
        while self.free < need and len(self.extracts) > 1:
            _, s = self.extracts.pop(0)
            self._forget(self.extract_left, s)
            self.extracts_dropped += 1
        while self.free < need and len(self.waiting) > 1:
            s = self.waiting[1]
            del self.waiting[1]
            self._forget(self.raw_left, s)
            self.dropped += 1
        if self.free < need:
            self.dropped += 1
            return
        self.raw_left[scene] = need
        self.stored += need
        self.queued += need * (self.mode == "raw")
        self.waiting.append(scene)

    def _forget(self, left: list[float], scene: int) -> None:
        self.stored -= left[scene]
        self.queued -= left[scene] * (left is not self.raw_left or self.mode == "raw")
        left[scene] = 0.0

    def process(self, tiles: float) -> float:
        """Spend up to `tiles` on the waiting scenes, oldest first; the tiles it used."""
        im, budget = self.config.imaging, tiles
        while self.waiting and budget > 0:
            s = self.waiting[0]
            done = min(budget, self.tiles_left[s])
            self.tiles_left[s] -= done
            budget -= done
            if self.tiles_left[s] > 0:
                break
            self.waiting.popleft()
            self.processed += 1
            self.stored -= self.raw_left[s]
            self.raw_left[s] = 0.0
            self._keep(self.product_left, s, im.product_bytes)
            self.products.append(s)
            if self.mode == "value":
                self._keep(self.extract_left, s, im.extract_bytes)
                bisect.insort(self.extracts, (float(self.geo.values[s]), s))
        return tiles - budget

    def _keep(self, left: list[float], scene: int, nbytes: int) -> None:
        left[scene] = nbytes
        self.stored += nbytes
        self.queued += nbytes

    def send(self, nbytes: float, now: float) -> float:
        """Send up to `nbytes` from the head of the downlink queue; the bytes it sent."""
        budget = nbytes
        while budget > 0:
            if self.mode == "raw" and self.waiting:
                s, left, done = self.waiting[0], self.raw_left, self.waiting.popleft
            elif self.products:
                s, left, done = self.products[0], self.product_left, self.products.popleft
            elif self.extracts:
                s, left, done = self.extracts[-1][1], self.extract_left, self.extracts.pop
            else:
                break
            part = min(budget, left[s])
            left[s] -= part
            budget -= part
            if left[s] > 1e-6:
                continue
            left[s] = 0.0
            done()
            if left is self.extract_left:
                self.extract_at[s] = now
                self.extracts_delivered += 1
            else:
                self.covered_at[s] = now
                self.covered += 1
        sent = nbytes - budget
        self.stored -= sent
        self.queued -= sent
        self.delivered += sent
        return sent


def _shadow_need(deficit: np.ndarray) -> np.ndarray:
    """For each step, what the platform will draw from the battery (`deficit` per step) over the
    next stretch of steps that have a deficit (the rest of this eclipse, or all of the next)."""
    n = len(deficit)
    short, index = np.append(deficit > 0, False), np.arange(n + 1)
    next_short = np.minimum.accumulate(np.where(short, index, n)[::-1])[::-1]
    next_lit = np.minimum.accumulate(np.where(short, n, index)[::-1])[::-1]
    to_end = np.append(np.cumsum(deficit[::-1])[::-1], 0.0)  # deficit from each step to the end
    begin = next_short[1:]
    return to_end[begin] - to_end[next_lit[begin]]


def run_mode(mode: str, config: Config, geo: Geometry, progress: Callable[[int], None] | None = None) -> ModeResult:
    """Step one mode through the simulation: capture, charge, send, process, in each step.
    Processing and transmitting spend only what leaves the battery its reserve plus what the
    platform will draw through the coming eclipse, so a platform whose own draw the battery
    carries through eclipse never goes below its reserve."""
    if mode not in MODES:
        raise SimulationError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    pw, pr, dt = config.power, config.processing, geo.step_s
    payload = _Payload(mode, config, geo)
    n = len(geo.t)
    series = {f.name: np.empty(n) for f in fields(Series)}
    capacity_wh, reserve_wh = pw.battery_wh, pw.reserve * pw.battery_wh
    base_w = pw.platform_watts + pr.board.idle_watts
    extra_w = pr.board.busy_watts - pr.board.idle_watts
    tx_w, rate = config.link.transmit_watts, config.link.payload_bytes_per_s
    energy, used = pw.initial_charge * capacity_wh, {"processing": 0.0, "transmit": 0.0, "platform": 0.0}
    captures = np.searchsorted(geo.captures, np.arange(n + 1)).tolist()  # scenes captured before each step
    light, capacity = geo.illumination.tolist(), geo.capacity.tolist()
    deficit = np.maximum(base_w - pw.solar_watts * geo.illumination, 0) * dt / 3600
    floor = (reserve_wh + _shadow_need(deficit)).tolist()  # what the payload leaves in the battery
    for i in range(n):
        for scene in range(captures[i], captures[i + 1]):
            payload.capture(scene)
        energy = max(min(energy + (pw.solar_watts * light[i] - base_w) * dt / 3600, capacity_wh), 0.0)
        used["platform"] += base_w * dt / 3600
        if capacity[i] > 0 and payload.queued > 0:
            allowed = capacity[i] if tx_w == 0 else min(capacity[i], max(energy - floor[i], 0.0) * 3600 / tx_w * rate)
            wh = tx_w * payload.send(allowed, geo.t[i] + dt) / rate / 3600
            energy -= wh
            used["transmit"] += wh
        if mode != "raw" and payload.waiting and (pr.run_in_eclipse or light[i] > 0.5):
            seconds = dt if extra_w == 0 else min(dt, max(energy - floor[i], 0.0) * 3600 / extra_w)
            wh = extra_w * payload.process(seconds * pr.tiles_per_s) / pr.tiles_per_s / 3600
            energy -= wh
            used["processing"] += wh
        for name, value in (("storage_bytes", payload.stored), ("backlog_bytes", payload.queued),
                            ("waiting_scenes", len(payload.waiting) * (mode != "raw")),
                            ("state_of_charge", energy / capacity_wh), ("delivered_bytes", payload.delivered),
                            ("covered_scenes", payload.covered)):
            series[name][i] = value
        if progress and (i + 1) % 2000 == 0:
            progress(2000)
    if progress:
        progress(n % 2000)
    capture_t = geo.t[geo.captures]
    covered_at, extract_at = np.asarray(payload.covered_at), np.asarray(payload.extract_at)
    latency_p50, latency_p90 = _percentiles(covered_at - capture_t, (50, 90))
    return ModeResult(
        mode=mode, captured=len(geo.captures), dropped=payload.dropped, processed=payload.processed,
        covered=payload.covered, extracts_delivered=payload.extracts_delivered,
        extracts_dropped=payload.extracts_dropped, delivered_bytes=payload.delivered,
        latency_median_s=latency_p50, latency_p90_s=latency_p90,
        extract_latency_median_s=_percentiles(extract_at - capture_t, (50,))[0],
        backlog_bytes_end=payload.queued, storage_max_bytes=float(series["storage_bytes"].max(initial=0)),
        processing_wh=used["processing"], transmit_wh=used["transmit"], platform_wh=used["platform"],
        min_state_of_charge=float(min(pw.initial_charge, series["state_of_charge"].min(initial=1))),
        series=Series(**series), covered_at_s=covered_at, extract_at_s=extract_at)


def _percentiles(values: np.ndarray, q: tuple[int, ...]) -> list[float | None]:
    values = values[~np.isnan(values)]
    return [float(np.percentile(values, p)) if len(values) else None for p in q]


@dataclass(frozen=True)
class Simulation:
    config: Config
    days: float
    geometry: Geometry
    modes: dict[str, ModeResult]


def simulate(config: Config, days: float, progress: Callable[[int], None] | None = None) -> Simulation:
    """Simulate `days` from the config's start in every mode; `progress` is told of the steps
    done, `step_count` of them per mode."""
    geo = geometry(config, days)
    return Simulation(config, days, geo, {mode: run_mode(mode, config, geo, progress) for mode in MODES})
