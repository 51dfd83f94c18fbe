"""`orbitlite ground nas …`: a NAS database of NAS-Bench-101 cells trained on EO patches: sample
the cells, train them (local processes or SLURM), query the database, analyse its landscape."""

from __future__ import annotations

from pathlib import Path

import click

from onboard.schema import FiniteFloat


@click.group()
def nas() -> None:
    """A NAS database of NAS-Bench-101 cells trained on EO patches (see README)."""


def _budgets(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        budgets = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of epoch counts, e.g. 4,12") from None
    if any(b < 1 for b in budgets) or list(budgets) != sorted(set(budgets)):
        raise click.BadParameter(f"{value!r}: budgets must be distinct, increasing and at least 1")
    return budgets


@nas.command()
@click.option("--out", "db", required=True, type=click.Path(path_type=Path), help="The database folder (cells.json).")
@click.option("--n", "count", required=True, type=click.IntRange(1, 100_000), help="New cells to add.")
@click.option("--method", default="uniform", show_default=True, type=click.Choice(["uniform", "lhs", "walk"]),
              help="Uniform over the 423,624 cells; Latin hypercube over the spec encoding; random walks of neighbours.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--density", default=0.3, show_default=True, type=FiniteFloat(0, 1, min_open=True, max_open=True),
              help="lhs: the share of each edge coordinate's range that means an edge.")
@click.option("--length", default=10, show_default=True, type=click.IntRange(1, 10_000),
              help="walk: cells per walk.")
def sample(db: Path, count: int, method: str, seed: int, density: float, length: int) -> None:
    """Add COUNT new cells (distinct by NAS-Bench-101 hash from each other and from those already
    listed) to DB/cells.json."""
    from ground.nas.records import CELLS, add_cells, read_cells
    from ground.nas.sample import sample as draw

    listed = read_cells(db)
    cells = draw(method, count, seed, density=density, length=length,
                 exclude={c.hash for c in listed.cells} if listed else set())
    added, total = add_cells(db, cells, method, seed)
    click.echo(f"{added} new cells ({method}, seed {seed}) -> {db / CELLS} ({total} in all)")


@nas.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), help="The labelled patches (.npz) every cell trains on "
              "(first run; later runs check it is the same file).")
@click.option("--budgets", callback=_budgets, help="Epoch budgets, e.g. 4,12  [first run default: 4]")
@click.option("--repeats", type=click.IntRange(1, 100), help="Runs per budget, seeds seed..seed+repeats-1  [default: 1]")
@click.option("--budgets-as", type=click.Choice(["snapshots", "separate"]),
              help="snapshots: one run to the largest budget measured at each (constant learning rate); separate: "
                   "a run per budget, as NAS-Bench-101  [default: snapshots]")
@click.option("--schedule", type=click.Choice(["constant", "cosine"]), help="Learning rate  [default: constant]")
@click.option("--stem", type=click.IntRange(1, 1024), help="Stem channels  [default: 16]")
@click.option("--stacks", type=click.IntRange(1, 8), help="[default: 3]")
@click.option("--cells-per-stack", type=click.IntRange(1, 16), help="[default: 1]")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]), help="[default: adam]")
@click.option("--lr", "learning_rate", type=FiniteFloat(0, min_open=True), help="[default: 0.003]")
@click.option("--batch-size", type=click.IntRange(1, 65536), help="[default: 32]")
@click.option("--seed", type=int, help="Seed of the first repeat  [default: 0]")
@click.option("--split-seed", type=int, help="Seed of the 70/15/15 split, where the data has none  [default: 0]")
@click.option("--latency-runs", type=click.IntRange(1, 100_000), help="Timed invokes of each int8 model  [default: 100]")
@click.option("--threads", type=click.IntRange(1, 256), help="TensorFlow threads (and CPUs asked) per cell  [default: 1]")
@click.option("--backend", default="local", show_default=True, type=click.Choice(["local", "slurm"]))
@click.option("--time-min", default=60.0, show_default=True, type=FiniteFloat(0, min_open=True),
              help="Time limit of each cell's job.")
@click.option("--mem-gb", default=4.0, show_default=True, type=FiniteFloat(0, min_open=True), help="Memory per job.")
def train(db: Path, data: Path | None, backend: str, time_min: float, mem_gb: float, **options) -> None:
    """Train every listed cell not trained yet (each its own job), then rebuild DB/index.parquet."""
    from ground.cluster import Limits
    from ground.errors import NasError
    from ground.nas.train import planned, resolve_setup, train_database

    planned(db)  # before the data is read: nothing to train is the first thing to say
    setup, new = resolve_setup(db, data, options)
    limits = Limits(time_min=time_min, mem_gb=mem_gb, cpus=setup.threads)
    ended = train_database(db, setup, new, backend, limits, click.echo)
    failed = sorted(k for k, state in ended.items() if state == "failed")
    click.echo(f"{len(ended) - len(failed)} cells trained, {len(failed)} failed -> {db / 'index.parquet'}")
    if failed:
        raise NasError(f"{len(failed)} of {len(ended)} cells failed (first: {failed[0]}); each one's reason and log "
                       f"are in {db / 'cells' / '.jobs'}; rerun to retry them")


@nas.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--matrix", required=True, help="The adjacency matrix as JSON, e.g. [[0,1,1],[0,0,1],[0,0,0]].")
@click.option("--ops", required=True, help="One op per vertex: input,conv3x3-bn-relu,...,output (conv1x1, conv3x3, "
              "maxpool also do).")
@click.option("--epochs", type=click.IntRange(1), help="A budget of the database  [default: its largest]")
@click.option("--seed", type=int, help="Seed of the sampled repeat.")
@click.option("--all", "every", is_flag=True, help="Print every repeat of every budget instead of one sampled repeat.")
def query(db: Path, matrix: str, ops: str, epochs: int | None, seed: int | None, every: bool) -> None:
    """What the database holds for one cell: one repeat sampled, as NAS-Bench-101's query."""
    from typing import Annotated

    from msgspec import Meta

    from ground.errors import InvalidCellError
    from ground.nas.database import NasDatabase
    from ground.nas.space import as_cell, cell_hash, parse_ops
    from onboard.schema import decode

    rows = Annotated[list[Annotated[list[int], Meta(max_length=64)]], Meta(max_length=64)]
    cell = as_cell(decode(matrix, rows, source="--matrix", error=InvalidCellError), parse_ops(ops))
    database = NasDatabase(db, seed=seed)
    fixed, computed = database.get_metrics_from_spec(cell)
    sampled = None if every else database.query(cell, epochs)  # before printing: a bad --epochs is one line
    edges = int(fixed["module_adjacency"].sum())
    click.echo(f"cell {cell_hash(cell)}: {len(cell.ops)} vertices, {edges} edge{'s' * (edges != 1)}, "
               f"{fixed['trainable_parameters']:,} parameters, {fixed['flops'] / 1e6:.2f} MFLOPs")
    metric = fixed["metric"]
    if sampled is None:
        for budget, runs in sorted(computed.items()):
            for r in runs:
                click.echo(_run_line(budget, r, "", metric))
    else:
        click.echo(_run_line(sampled["epochs"], sampled, " (sampled)", metric))
        seconds, spent = database.get_budget_counters()
        click.echo(f"budget spent: {seconds:.1f} s of training, {spent} epoch{'s' * (spent != 1)}")
    click.echo(f"int8 TFLite ({max(database.valid_epochs)} epochs, repeat 0): {fixed['int8_size_bytes']:,} bytes, "
               f"test {metric} {fixed['int8_test_accuracy']:.4f}, host latency {fixed['int8_latency_us']:.1f} us (median)")
    for board, us in sorted(fixed["board_latency_us"].items()):
        click.echo(f"on board {board}: {us:.1f} us (median, batch 1, `hil bench`)")


def _run_line(budget: int, r: dict, note: str, metric: str) -> str:
    return (f"epochs {budget}, repeat {r['repeat']}{note}: {metric} train {r['train_accuracy']:.4f} validation "
            f"{r['validation_accuracy']:.4f} test {r['test_accuracy']:.4f}, {r['training_time']:.1f} s of training")


@nas.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--board", required=True, help="The board profile to bench on (`orbitlite hil boards`).")
@click.option("--boards-dir", type=click.Path(path_type=Path, file_okay=False), envvar="ORBITLITE_BOARDS",
              help="A folder of your own board profiles.")
@click.option("--min-runs", default=50, show_default=True, type=click.IntRange(1), help="Timed runs per cell.")
def bench(db: Path, board: str, boards_dir: Path | None, min_runs: int) -> None:
    """Measure every trained cell's int8 latency on a board with `orbitlite hil bench` (batch 1,
    one thread), kept in each cell's folder; queries then answer it. Cells benched before (the
    same model on the same board) are kept."""
    from ground.nas.board import bench_cells
    from ground.nas.database import finished_folders

    if not (db / "setup.json").is_file():
        raise click.ClickException(f"{db} is not a trained NAS database (no setup.json): `orbitlite ground nas train` first")
    folders = finished_folders(db)
    benched, kept = bench_cells(folders, board, boards_dir, lambda line: click.echo(line, err=True), min_runs)
    click.echo(f"{benched} cells benched on {board}, {kept} kept from before ({len(folders)} trained)")


@nas.command()
@click.argument("db", type=click.Path(path_type=Path))
def index(db: Path) -> None:
    """Rebuild DB/index.parquet from the finished cell folders."""
    from ground.nas.database import rebuild_index

    cells, skipped = rebuild_index(db)
    for line in skipped:
        click.echo(f"left out: {line}", err=True)
    click.echo(f"{cells} cells -> {db / 'index.parquet'}")


@nas.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--epochs", type=click.IntRange(1), help="The budget whose accuracy is the fitness  [default: the largest]")
@click.option("--metric", default="test", show_default=True, type=click.Choice(["test", "validation"]))
@click.option("--walks", default=30, show_default=True, type=click.IntRange(1, 10_000), help="Random walks.")
@click.option("--steps", default=100, show_default=True, type=click.IntRange(1, 100_000), help="Steps per walk.")
@click.option("--starts", default=200, show_default=True, type=click.IntRange(1, 100_000), help="Hill-climbing starts.")
@click.option("--tolerance", type=FiniteFloat(0, 1), help="Neutrality: fitness differences up to this count as "
              "equal  [default: the mean std between repeats, or one evaluated patch]")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", type=click.Path(path_type=Path), help="Report folder  [default: DB/landscape]")
def landscape(db: Path, epochs: int | None, metric: str, walks: int, steps: int, starts: int,
              tolerance: float | None, seed: int, out: Path | None) -> None:
    """Fitness landscape analysis of the database (Traoré et al., arXiv 2111.01584): distribution,
    FDC, random-walk autocorrelation, local optima, persistence, neutrality; writes landscape.md
    and its plots."""
    from ground.nas.database import NasDatabase
    from ground.nas.landscape import analyse, cell_landscape
    from ground.nas.report import write_report

    database = NasDatabase(db)
    a = analyse(cell_landscape(database, epochs, metric), walks, steps, starts, seed, tolerance)
    paths = write_report(a, db, database.setup.data.source, out or db / "landscape")
    click.echo(f"{len(a.landscape.hashes)} cells, {a.links} neighbour pairs ({a.connected} cells with neighbours); "
               f"fitness {a.mean:.3f} ± {a.std:.3f}, FDC {a.fdc:.3f}, ACF(1) {a.acf[1]:.3f}, correlation length "
               f"{a.correlation_length:.2f}, {len(a.optima)} local optima from {a.starts} starts"
               + (f"; repeats agree across cells r = {a.repeat_correlation:.2f}"
                  if a.landscape.repeats.shape[1] > 1 else ""))
    click.echo(f"report -> {paths[0]}")
