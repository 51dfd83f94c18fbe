"""`orbitlite hil bench` and `orbitlite hil compare`."""

from __future__ import annotations

from pathlib import Path

import click

from hil.bench.report import COMPARE_HEAD, compare_rows, write_compare, write_report
from hil.bench.run import BENCH_BANDS, DEFAULT_GSD_M, Options, run_bench
from hil.boards.cli import boards_dir_option
from hil.boards.drivers import open_meter, open_transport
from hil.boards.profile import find_board
from hil.table import text_table
from onboard.contracts.bench import BenchReport, Rule, read_bench
from onboard.files import ensure_writable_dir, write_verified
from onboard.inference.bench import MAX_BATCH, MAX_THREADS, sweep_and_rule_options
from onboard.schema import FiniteFloat


def summary(r: BenchReport) -> str:
    m, e = r.measured, r.energy
    lines = [
        f"{r.model.file} on {r.board.name}{' (EMULATED)' if r.board.emulated else ''} via {r.board.transport}: "
        f"{m.main.interpreter}, {m.main.threads} thread(s), batch {m.main.batch}",
        f"Inference timings in us: Init: {m.main.init_us:.0f}, First inference: {m.main.first_inference_us:.0f}, "
        f"Warmup (avg): {'-' if m.main.warmup_avg_us is None else f'{m.main.warmup_avg_us:.1f}'}, "
        f"Inference (avg): {m.main.avg_us:.1f}",
        f"count={m.main.count} min={m.main.min_us:.1f} max={m.main.max_us:.1f} avg={m.main.avg_us:.1f} "
        f"std={m.main.std_us:.1f} p50={m.main.p50_us:.1f} p90={m.main.p90_us:.1f} p99={m.main.p99_us:.1f}",
        f"Overall peak memory footprint (MB): {m.main.peak_memory_mb:.1f}; invoke {m.main.tiles_per_s:.1f} tiles/s",
        "threads sweep: " + ", ".join(f"{t.threads}: {t.tiles_per_s:.0f}" for t in m.threads_sweep) + " tiles/s",
        "batch sweep: " + ", ".join(f"{t.batch}: {t.tiles_per_s:.0f}" for t in m.batch_sweep) + " tiles/s",
    ]
    if m.end_to_end:
        x = m.end_to_end
        lines.append(f"onboard run: {x.tiles} tiles of {x.scene} in {x.seconds:.3f} s, {x.tiles_per_s:.1f} tiles/s, "
                     f"peak RSS {x.peak_rss_mb:.1f} MB")
    lines.append(f"energy ({'meter ' + e.meter if e.source == 'meter' else 'modelled from the profile'}, "
                 f"{e.busy_watts:g} W busy): {e.mj_per_tile:.4g} mJ/tile, {e.mj_per_km2:.4g} mJ/km^2 at {e.gsd_m:g} m")
    if m.throttling:
        lines.append(f"throttling: {m.throttling}")
    bad = [f"threads {t.threads} batch {t.batch}: {'; '.join(t.not_valid)}"
           for t in (m.main, *m.threads_sweep, *m.batch_sweep) if not t.valid]
    lines.append("valid" if not bad else "not valid: " + " | ".join(bad))
    return "\n".join(lines)


@click.command()
@click.option("--board", "board_name", default="local", show_default=True,
              help="The board profile to bench on (`orbitlite hil boards`); `local` is this machine.")
@boards_dir_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="The .tflite model (manifest beside it).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Directory for result.json, report.md, report.html and the plots.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, MAX_THREADS))
@click.option("--batch", default=256, show_default=True, type=click.IntRange(1, MAX_BATCH), help="Tiles per invoke.")
@sweep_and_rule_options
@click.option("--scene", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="The scene `onboard run` classifies end to end [default: 150 x 150 px of a real Sentinel-2 "
                   "patch shipped with the bench].")
@click.option("--bands", default=BENCH_BANDS, show_default=True, help="The scene's bands in file order.")
@click.option("--gsd", default=DEFAULT_GSD_M, show_default=True, type=FiniteFloat(0, min_open=True),
              help="The tiles' ground sampling distance in m, for energy per km^2.")
def bench(board_name: str, boards_dir: Path | None, model_path: Path, out_dir: Path, threads: int, batch: int, batches: tuple[int, ...],
          min_runs: int, min_seconds: float, max_seconds: float, warmup_runs: int, scene: Path | None, bands: str,
          gsd: float) -> None:
    """Benchmark a model on a board through its transport: benchmark_model's timings with
    p50/p90/p99 under a validity rule, a thread and a batch sweep, `onboard run` end to end,
    CPU frequency and temperature, and energy per tile and per km^2 (from the board's power meter,
    else modelled from its profile's watts). Writes result.json (schema orbitlite/hil-bench) and a
    report (Markdown and a self-contained HTML page with plots).

    \b
    Example:
      orbitlite hil bench --model cnn-l.tflite --out bench/
    """
    ensure_writable_dir(out_dir)
    rule = Rule(min_runs=min_runs, min_seconds=min_seconds, max_seconds=max_seconds, warmup_runs=warmup_runs)
    opts = Options(threads=threads, batch=batch, batches=batches, rule=rule, gsd_m=gsd,
                   **({"scene": scene, "bands": bands} if scene else {}))
    board = find_board(board_name, boards_dir)
    transport = open_transport(board)
    try:
        meter = open_meter(board, transport)
        try:
            result = run_bench(board, transport, meter, model_path, opts)
        finally:
            meter.close()
    finally:
        transport.close()
    click.echo(summary(result))
    for path in [write_verified(out_dir / "result.json", result.to_json()), *write_report(result, out_dir)]:
        click.echo(f"-> {path}")


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Also write compare.md and compare.png here.")
def compare(results: tuple[Path, ...], out_dir: Path | None) -> None:
    """Put bench results (result.json of `hil bench`) side by side: a table, and with --out a plot."""
    read = [(str(p), read_bench(p)) for p in results]
    click.echo(text_table(COMPARE_HEAD, compare_rows(read)))
    if out_dir is not None:
        for path in write_compare(read, out_dir):
            click.echo(f"-> {path}")
