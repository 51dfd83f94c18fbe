"""`orbitlite ground data …`: datasets in their original layouts."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def data() -> None:
    """Datasets in their original layouts (EuroSAT, BigEarthNet, So2Sat LCZ42, hyperspectral)."""


def _dataset_options(f):
    f = click.option("--seed", default=0, show_default=True, type=int, help="Seed of the split, where the dataset has none.")(f)
    f = click.option("--bands", help="Bands to read, e.g. B02,B03,B04,B08 [default: all].")(f)
    f = click.option("--root", required=True, type=click.Path(path_type=Path), help="The dataset's folder.")(f)
    return click.option("--dataset", "name", required=True, help="Dataset name (see `ground data list`).")(f)


@data.command("list")
def data_list() -> None:
    """The datasets orbitlite reads, and the layout each expects."""
    from ground.datasets.registry import DATASETS

    for name, cls in sorted(DATASETS.items()):
        click.echo(f"{name:<20} {cls.task:<13} {cls.layout}")


@data.command()
@_dataset_options
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "val", "test"]))
def inspect(name: str, root: Path, bands: str | None, seed: int, split: str) -> None:
    """Counts per class and per-band statistics of one split."""
    from ground.datasets.inspect import inspect_dataset
    from ground.datasets.registry import open_dataset

    click.echo(inspect_dataset(open_dataset(name, root, split, bands, seed)))


@data.command()
@_dataset_options
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The .npz patch set to write.")
def export(name: str, root: Path, bands: str | None, seed: int, out: Path) -> None:
    """Write a dataset's train, val and test splits as one .npz patch set that keeps them, for
    `ground train`."""
    from ground.datasets.registry import export as merge

    merged, counts = merge(name, root, bands, seed)
    click.echo(f"{len(merged)} patches ({', '.join(f'{s} {n}' for s, n in counts.items())}) -> {merged.save(out)}")
