"""`orbitlite demo`: the whole path on one machine."""

from __future__ import annotations

from pathlib import Path

import click

from ground.cli.options import link_option
from ground.downlink.link import parse_link


@click.command()
@click.option("--out", default="demo-output", show_default=True, type=click.Path(path_type=Path),
              help="Directory for every artefact.")
@link_option("uhf")
@click.option("--per-class", default=400, show_default=True, type=click.IntRange(20), help="Synthetic patches per class.")
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1), help="Training epochs.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64), help="Interpreter threads on board.")
@click.option("--seed", default=0, show_default=True, type=int)
def demo(out: Path, link: str, per_class: int, epochs: int, threads: int, seed: int) -> None:
    """Train, prune and convert a classifier on synthetic EuroSAT-like patches, run it over a real
    Sentinel-2 scene on the flight runtime, and compare what the downlink must carry."""
    from ground.pipeline.demo import run_demo

    run_demo(out, parse_link(link), per_class=per_class, epochs=epochs, threads=threads, seed=seed)
