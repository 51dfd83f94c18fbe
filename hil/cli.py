"""`orbitlite hil …`: hardware-in-the-loop commands."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from onboard.bench import benchmark
from onboard.files import write_verified


@click.group()
def hil() -> None:
    """Hardware in the loop: measure models on a flight-like board."""


@hil.command()
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="The .tflite model (manifest beside it).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1, 65536), help="Tiles per invoke.")
@click.option("--warmup", default=10, show_default=True, type=click.IntRange(0))
@click.option("--runs", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the result as JSON.")
def bench(model_path: Path, threads: int, batch: int, warmup: int, runs: int, json_path: Path | None) -> None:
    """Benchmark invoke() of a model on this board, in benchmark_model's terms."""
    r = benchmark(model_path, threads=threads, batch=batch, warmup=warmup, runs=runs)
    click.echo(f"{r.model}: {r.interpreter}, {r.threads} thread(s), batch {r.batch}")
    click.echo(f"Inference timings in us: Init: {r.init_us:.0f}, First inference: {r.first_inference_us:.0f}, "
               f"Warmup (avg): {r.warmup_avg_us:.1f}, Inference (avg): {r.avg_us:.1f}")
    click.echo(f"count={r.count} min={r.min_us:.1f} max={r.max_us:.1f} avg={r.avg_us:.1f} std={r.std_us:.1f} "
               f"p50={r.p50_us:.1f} p90={r.p90_us:.1f} p99={r.p99_us:.1f}")
    click.echo(f"{r.tiles_per_s:.0f} tiles/s; peak memory {r.peak_rss_mb:.1f} MB")
    if json_path:
        write_verified(json_path, (json.dumps(asdict(r), indent=2) + "\n").encode())
