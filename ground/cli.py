"""`orbitlite ground …`, `orbitlite downlink …` and `orbitlite demo`: the ground side's commands.
TensorFlow is imported inside the commands that need it, so `--help` stays fast."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ground.downlink import LINKS, format_bytes, format_seconds, parse_link

_link_help = f"Link preset ({', '.join(LINKS)}) or a rate in bit/s."


@click.command()
@click.option("--out", default="demo-output", show_default=True, type=click.Path(path_type=Path),
              help="Directory for every artefact.")
@click.option("--link", default="uhf", show_default=True, help=_link_help)
@click.option("--per-class", default=400, show_default=True, type=click.IntRange(20), help="Synthetic patches per class.")
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1), help="Training epochs.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64), help="Interpreter threads on board.")
@click.option("--seed", default=0, show_default=True, type=int)
def demo(out: Path, link: str, per_class: int, epochs: int, threads: int, seed: int) -> None:
    """Train, prune and convert a classifier on synthetic EuroSAT-like patches, run it over a real
    Sentinel-2 scene on the flight runtime, and compare what the downlink must carry."""
    from ground.demo import run_demo

    run_demo(out, parse_link(link), per_class=per_class, epochs=epochs, threads=threads, seed=seed)


@click.group()
def ground() -> None:
    """The ground toolchain: data, training, compression, conversion."""


@ground.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The .npz patch set to write.")
@click.option("--per-class", default=400, show_default=True, type=click.IntRange(1))
@click.option("--size", default=32, show_default=True, type=click.IntRange(8), help="Patch size in pixels.")
@click.option("--bands", default="B02,B03,B04,B08", show_default=True, help="Sentinel-2 bands to generate.")
@click.option("--seed", default=0, show_default=True, type=int)
def synth(out: Path, per_class: int, size: int, bands: str, seed: int) -> None:
    """Write a SYNTHETIC EuroSAT-like labelled patch set (for smoke tests and demos only)."""
    from ground.synthetic import generate_patches
    from onboard.scene import parse_bands

    patches = generate_patches(per_class, size=size, bands=parse_bands(bands), seed=seed)
    click.echo(f"{len(patches)} synthetic patches -> {patches.save(out)}")


_data_option = click.option("--data", required=True, type=click.Path(path_type=Path),
                            help="Labelled patches: .npz with x (N, rows, cols, bands), y, bands, classes, source.")


@ground.command()
@_data_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The .keras model to write (and its .json record).")
@click.option("--arch", default="cnn-l", show_default=True, type=click.Choice(["cnn-s", "cnn-l"]), help="Model-zoo CNN size.")
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option("--optimizer", default="adam", show_default=True, type=click.Choice(["adam", "adamw", "sgd"]))
@click.option("--lr", default=3e-3, show_default=True, type=float, help="Learning rate.")
@click.option("--weight-decay", default=0.0, show_default=True, type=float)
@click.option("--activation", default="relu", show_default=True)
@click.option("--init", "initializer", default="glorot_uniform", show_default=True, help="Kernel initializer.")
@click.option("--dropout", default=0.0, show_default=True, type=click.FloatRange(0, 0.9))
@click.option("--seed", default=0, show_default=True, type=int)
def train(data: Path, out: Path, arch: str, epochs: int, batch_size: int, optimizer: str, lr: float,
          weight_decay: float, activation: str, initializer: str, dropout: float, seed: int) -> None:
    """Train a model-zoo CNN on labelled patches (70/15/15 stratified split, seeded)."""
    from ground.patches import load_patches

    patches = load_patches(data)  # before TensorFlow loads, so a bad path fails fast
    from ground.pipeline import train_model
    from ground.train import TrainConfig
    from models.zoo_cnn import ZooConfig

    _, record, entry = train_model(
        patches, out, ZooConfig(arch, activation, initializer, dropout, seed),
        TrainConfig(epochs, batch_size, optimizer, lr, weight_decay, seed), split_seed=seed)
    last = entry["epochs"][-1]
    click.echo(f"{record.architecture}: {record.parameters} parameters, validation accuracy {last['val_accuracy']:.4f} -> {out}")


@ground.command()
@_data_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path), help="The trained .keras model.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The pruned .keras model to write.")
@click.option("--sparsity", default=0.5, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--schedule", default="polynomial", show_default=True, type=click.Choice(["polynomial", "constant"]))
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(1), help="Fine-tuning epochs.")
@click.option("--lr", default=1e-3, show_default=True, type=float)
def prune(data: Path, model_path: Path, out: Path, sparsity: float, schedule: str, epochs: int, lr: float) -> None:
    """Magnitude-prune a trained model to a target sparsity while fine-tuning."""
    from ground.patches import load_patches

    patches = load_patches(data)
    from ground.pipeline import prune_model
    from ground.train import TrainConfig

    _, record, entry = prune_model(patches, model_path, out, sparsity,
                                   TrainConfig(epochs=epochs, learning_rate=lr), schedule)
    click.echo(f"sparsity {record.sparsity:.2%}, validation accuracy {entry['epochs'][-1]['val_accuracy']:.4f} -> {out}")


@ground.command()
@_data_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path), help="The .keras model.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The .tflite to write (manifest: OUT.json).")
@click.option("--id", "model_id", help="Model id in the manifest [default: the output's stem].")
def convert(data: Path, model_path: Path, out: Path, model_id: str | None) -> None:
    """Convert to full-integer int8 TFLite and write its manifest, with Keras and TFLite accuracy
    on the held-out test split."""
    from ground.patches import load_patches

    patches = load_patches(data)
    from ground.pipeline import convert_model

    m = convert_model(patches, model_path, out, model_id or out.stem)
    a = m.accuracy
    click.echo(f"{out}: {m.size_bytes} bytes, test accuracy Keras {a.keras:.4f} TFLite {a.tflite:.4f} "
               f"agreement {a.agreement:.4f} ({a.samples} patches)")


@click.group()
def downlink() -> None:
    """What reaches the ground: decode products, link budgets."""


@downlink.command()
@click.argument("product", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Write PRODUCT's class map (PNG) and summary (JSON) here.")
@click.option("--link", default="uhf", show_default=True, help=_link_help)
def decode(product: Path, out_dir: Path | None, link: str) -> None:
    """Decode a product: print its summary, and write its class map and summary."""
    from onboard.product import NODATA, read_product

    p = read_product(product)
    size, rate = product.stat().st_size, parse_link(link)
    total = int((p.class_map != NODATA).sum())
    summary = {
        "scene": p.scene_id, "scene_shape": list(p.scene_shape), "bands": list(p.scene_bands), "model": p.model_id,
        "created": p.created, "grid": [p.grid.rows, p.grid.cols], "tile": [p.grid.tile_rows, p.grid.tile_cols],
        "classified_tiles": total, "histogram": dict(zip(p.classes, p.histogram)),
        "uncertain_tiles": len(p.uncertain), "skipped": p.skipped, "runtime": p.runtime,
        "product_bytes": size, "scene_bytes": p.scene_bytes,
    }
    click.echo(f"{p.scene_id} ({p.scene_shape[0]} x {p.scene_shape[1]} px, {','.join(p.scene_bands)}) by {p.model_id}, {p.created}")
    click.echo(f"{p.grid.rows} x {p.grid.cols} tiles of {p.grid.tile_rows} x {p.grid.tile_cols} px, {total} classified, "
               f"{len(p.uncertain)} uncertain (confidence < {p.uncertain_below}/255)")
    for name, n in zip(p.classes, p.histogram):
        click.echo(f"  {name:<12} {n:>7}  {100 * n / max(total, 1):5.1f}%")
    for s in p.skipped:
        click.echo(f"  skipped {s['tiles']} tiles: {s['reason']}")
    click.echo(f"product {format_bytes(size)} ({format_seconds(rate.seconds(size))} on {rate.name}) "
               f"for a {format_bytes(p.scene_bytes)} scene ({format_seconds(rate.seconds(p.scene_bytes))})")
    if out_dir:
        from ground.render import class_map
        from onboard.files import ensure_writable_dir, write_verified

        ensure_writable_dir(out_dir)
        stem = product.name.removesuffix(".msgpack")
        png = class_map(p, out_dir / f"{stem}.classmap.png")
        js = write_verified(out_dir / f"{stem}.json", (json.dumps(summary, indent=2) + "\n").encode())
        click.echo(f"class map -> {png}\nsummary -> {js}")
