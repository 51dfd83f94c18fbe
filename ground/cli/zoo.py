"""`orbitlite ground zoo …`: model zoos with sparsified twins, trained on a local process pool or
a SLURM cluster, indexed and reported."""

from __future__ import annotations

from pathlib import Path

import click

from ground.cluster import BACKENDS


@click.group()
def zoo() -> None:
    """Model zoos: a grid of architectures, hyperparameters and seeds, each member with its
    sparsified twins (magnitude pruning, variational dropout)."""


def _say(line: str) -> None:
    click.echo(line, err=True)


@zoo.command("run")
@click.argument("grid", type=click.Path(path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labelled patches (.npz) every member trains on.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The zoo's folder (created; rerun to go on).")
@click.option("--backend", default="local", show_default=True, type=click.Choice(BACKENDS),
              help="local: a process per member, as many at once as the cores allow; slurm: SLURM job arrays.")
def zoo_run(grid: Path, data: Path, out: Path, backend: str) -> None:
    """Train the members of GRID (a TOML file) that are not finished, then rebuild the index."""
    from ground.zoo.index import build_index
    from ground.zoo.zoo import prepare_zoo, run_zoo

    config = prepare_zoo(grid, data, out)
    _say(f"zoo {config.grid.name}: {len(config.members)} members -> {out}")
    ended = run_zoo(config, out, backend, _say)
    index, count = build_index(out, _say)
    failed = [k for k, s in ended.items() if s == "failed"]
    click.echo(f"{len(ended) - len(failed)} trained, {len(failed)} failed; index of {count} members -> {index}")
    if failed:
        raise click.ClickException(f"{len(failed)} member(s) failed: `orbitlite ground zoo status {out}` "
                                   "shows why and where their logs are")


@zoo.command("index")
@click.argument("out", type=click.Path(path_type=Path))
def zoo_index(out: Path) -> None:
    """Rebuild the Parquet index of the zoo OUT from its member folders."""
    from ground.zoo.index import build_index
    from ground.zoo.zoo import read_config

    read_config(out)
    index, count = build_index(out, _say)
    click.echo(f"index of {count} members -> {index}")


@zoo.command("report")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--to", "to", type=click.Path(path_type=Path), help="Folder for the report [default: the zoo's].")
def zoo_report(out: Path, to: Path | None) -> None:
    """Write the zoo's report (Markdown and PNG): accuracy per hyperparameter, twins against their
    dense models, size and latency against accuracy."""
    from ground.zoo.index import load_zoo
    from ground.zoo.report import write_report
    from ground.zoo.zoo import read_config

    read_config(out)
    for path in write_report(load_zoo(out, say=_say), to or out):
        click.echo(f"-> {path}")


@zoo.command("status")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(BACKENDS), help="Also ask this backend (slurm: queued, running) "
              "[default: slurm when the zoo was submitted there].")
@click.option("--resubmit-failed", is_flag=True, help="Run the failed members again, alone, on the backend.")
def zoo_status(out: Path, backend: str | None, resubmit_failed: bool) -> None:
    """Each member that is not done, with its state: failed (why, and its log), or pending /
    queued / running (from SLURM, for a zoo submitted there); then the count of each state."""
    from ground.zoo.zoo import read_config, run_zoo, states, submitted_backend

    config = read_config(out)
    backend = backend or submitted_backend(out)
    disk = states(config, out)
    live = {}
    if backend == "slurm":
        from ground.cluster.slurm import slurm_states
        from ground.zoo.zoo import jobs_of

        live = slurm_states(jobs_of(config, out))
    counts: dict[str, int] = {}
    for key, (state, failure) in disk.items():
        shown = state if state != "pending" else live.get(key, "pending")
        counts[shown] = counts.get(shown, 0) + 1
        if failure is not None and state == "failed":
            click.echo(f"failed  {key}: {failure.error} (log: {failure.log})")
        elif shown != "done":
            click.echo(f"{shown:<7} {key}")
    click.echo(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" of {len(disk)} members")
    if resubmit_failed:
        failed = {k for k, (s, _) in disk.items() if s == "failed"}
        if not failed:
            click.echo("no failed member to resubmit")
            return
        ended = run_zoo(config, out, backend or "local", _say, only=lambda job: job.key in failed)
        click.echo(f"resubmitted {len(failed)}: " + ", ".join(f"{n} {s}" for s, n in
                                                               sorted(_count(ended.values()).items())))


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out
