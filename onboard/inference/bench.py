"""Benchmarking a model on the board the way TFLite's `benchmark_model` reports it: init time,
first inference, warm-up average, then min, max, mean, std and percentiles of counted runs, and
peak memory, so the numbers sit side by side with benchmark_model's. It lives in the runtime
because it runs on the board: `hil` drives it there, the ground uses it for host latency."""

from __future__ import annotations

import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from onboard.inference.model import load_model


@dataclass(frozen=True)
class BenchResult:
    model: str
    interpreter: str
    threads: int
    batch: int
    init_us: float
    first_inference_us: float
    warmup_avg_us: float
    count: int
    min_us: float
    max_us: float
    avg_us: float
    std_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    tiles_per_s: float
    peak_rss_mb: float


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def benchmark(model_path: Path, threads: int = 1, batch: int = 1, warmup: int = 10, runs: int = 100,
              clock: Callable[[], float] = time.perf_counter) -> BenchResult:
    """Time invoke() alone on pre-quantized random tiles of the model's input type."""
    t0 = clock()
    model = load_model(model_path, threads=threads, batch=batch)
    init = clock() - t0
    interp = model.interpreter
    spec = model.manifest.input
    rng = np.random.default_rng(0)
    info = np.iinfo(spec.dtype) if np.dtype(spec.dtype).kind in "iu" else None
    tiles = (rng.integers(info.min, info.max, (model.batch, *spec.shape[1:]), endpoint=True).astype(spec.dtype)
             if info else rng.standard_normal((model.batch, *spec.shape[1:])).astype(spec.dtype))
    interp.set_tensor(model.input_index, tiles)

    def once() -> float:
        s = clock()
        interp.invoke()
        return (clock() - s) * 1e6

    first = once()
    warm = [once() for _ in range(warmup)]
    timed = np.array([once() for _ in range(runs)])
    return BenchResult(
        model=str(model_path), interpreter=model.interpreter_name, threads=threads, batch=model.batch,
        init_us=round(init * 1e6, 1), first_inference_us=round(first, 1),
        warmup_avg_us=round(statistics.fmean(warm), 1) if warm else 0.0, count=runs,
        min_us=round(float(timed.min()), 1), max_us=round(float(timed.max()), 1),
        avg_us=round(float(timed.mean()), 1), std_us=round(float(timed.std()), 1),
        p50_us=round(float(np.percentile(timed, 50)), 1), p90_us=round(float(np.percentile(timed, 90)), 1),
        p99_us=round(float(np.percentile(timed, 99)), 1),
        tiles_per_s=round(model.batch * 1e6 / float(timed.mean()), 1), peak_rss_mb=round(peak_rss_mb(), 1),
    )
