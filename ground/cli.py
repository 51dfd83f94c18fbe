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
    from onboard.scenes.scene import parse_bands

    patches = generate_patches(per_class, size=size, bands=parse_bands(bands), seed=seed)
    click.echo(f"{len(patches)} synthetic patches -> {patches.save(out)}")


_data_option = click.option("--data", required=True, type=click.Path(path_type=Path),
                            help="Labelled patches: .npz with x (N, rows, cols, bands), y, bands, classes, source.")


_ARCHS = ["cnn-s", "cnn-l", "wrn-eca", "mobile", "nas-cell"]
_set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                           help="Override a field of the architecture's config, e.g. --set activation=tanh "
                                "--set dropout=0.1 (zoo CNNs), --set phi=1 (wrn-eca), --set width=0.5 (mobile).")


@ground.command()
@_data_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The .keras model to write (and its .json record).")
@click.option("--arch", default="cnn-l", show_default=True, type=click.Choice(_ARCHS),
              help="Model-zoo CNN (small or large), Wide ResNet with ECA, Edge-TPU mobile net, or NAS-Bench-101 cell net.")
@_set_option
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1))
@click.option("--optimizer", default="adam", show_default=True, type=click.Choice(["adam", "adamw", "sgd"]))
@click.option("--lr", default=3e-3, show_default=True, type=float, help="Learning rate.")
@click.option("--weight-decay", default=0.0, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the weights, the data order and the split.")
def train(data: Path, out: Path, arch: str, overrides: tuple[str, ...], epochs: int, batch_size: int, optimizer: str,
          lr: float, weight_decay: float, seed: int) -> None:
    """Train a classifier on labelled patches (the dataset's own split, or a seeded stratified
    70/15/15 one)."""
    from ground.patches import load_patches

    patches = load_patches(data)  # before TensorFlow loads, so a bad path fails fast
    from ground.architectures import parse_overrides
    from ground.pipeline import train_model
    from ground.train import TrainConfig

    _, record, entry = train_model(patches, out, arch, parse_overrides(arch, overrides),
                                   TrainConfig(epochs, batch_size, optimizer, lr, weight_decay, seed), split_seed=seed)
    last = entry["epochs"][-1]
    click.echo(f"{record.architecture}: {record.parameters} parameters, validation accuracy {last['val_accuracy']:.4f} -> {out}")


@ground.command()
@_data_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path), help="The trained .keras model.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The pruned .keras model to write.")
@click.option("--method", default="magnitude", show_default=True, type=click.Choice(["magnitude", "2:4", "xnnpack"]),
              help="Unstructured magnitude pruning; 2:4 structured sparsity; or only the layers XNNPACK's sparse kernels use.")
@click.option("--sparsity", default=0.5, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Target sparsity (magnitude and xnnpack; 2:4 is 50%).")
@click.option("--schedule", default="polynomial", show_default=True, type=click.Choice(["polynomial", "constant"]))
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(1), help="Fine-tuning epochs.")
@click.option("--lr", default=1e-3, show_default=True, type=float)
def prune(data: Path, model_path: Path, out: Path, method: str, sparsity: float, schedule: str, epochs: int,
          lr: float) -> None:
    """Prune a trained model while fine-tuning."""
    from ground.patches import load_patches

    patches = load_patches(data)
    from ground.pipeline import prune_model
    from ground.prune import PruneSpec
    from ground.train import TrainConfig

    _, record, entry = prune_model(patches, model_path, out, PruneSpec(method, sparsity, schedule),
                                   TrainConfig(epochs=epochs, learning_rate=lr))
    click.echo(f"sparsity {record.sparsity:.2%}, validation accuracy {entry['epochs'][-1]['val_accuracy']:.4f} -> {out}")


@ground.command()
@_data_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path), help="The .keras model.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The .tflite to write (manifest: OUT.json).")
@click.option("--id", "model_id", help="Model id in the manifest [default: the output's stem].")
@click.option("--profile", default="int8", show_default=True,
              type=click.Choice(["fp32", "fp16", "dynamic", "int8", "edgetpu"]),
              help="fp32; fp16 weights; dynamic-range int8 weights; full-integer int8; int8 with a static batch for the Edge TPU.")
def convert(data: Path, model_path: Path, out: Path, model_id: str | None, profile: str) -> None:
    """Convert to TFLite under a profile and write its manifest, with Keras and TFLite accuracy
    on the held-out test split."""
    from ground.patches import load_patches

    patches = load_patches(data)
    from ground.pipeline import convert_model

    m = convert_model(patches, model_path, out, model_id or out.stem, profile)
    a = m.accuracy
    click.echo(f"{out}: {m.size_bytes} bytes, test {a.metric} Keras {a.keras:.4f} TFLite {a.tflite:.4f} "
               f"agreement {a.agreement:.4f} ({a.samples} patches)")


@ground.command()
@_data_option
@click.option("--teacher", "teacher_path", required=True, type=click.Path(path_type=Path), help="The trained teacher (.keras).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The student .keras model to write.")
@click.option("--arch", default="cnn-s", show_default=True, type=click.Choice(_ARCHS), help="The student's architecture.")
@_set_option
@click.option("--temperature", default=4.0, show_default=True, type=click.FloatRange(min=1.0))
@click.option("--alpha", default=0.1, show_default=True, type=click.FloatRange(0, 1), help="Weight of the label loss; the rest is the teacher's.")
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=3e-3, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
def distill(data: Path, teacher_path: Path, out: Path, arch: str, overrides: tuple[str, ...], temperature: float,
            alpha: float, epochs: int, lr: float, seed: int) -> None:
    """Train a small student from a teacher's softened predictions (knowledge distillation)."""
    from ground.patches import load_patches

    patches = load_patches(data)
    from ground.architectures import parse_overrides
    from ground.pipeline import distill_model
    from ground.train import TrainConfig

    _, record, entry = distill_model(patches, teacher_path, out, arch, parse_overrides(arch, overrides),
                                     TrainConfig(epochs=epochs, learning_rate=lr, seed=seed), temperature, alpha)
    click.echo(f"{record.architecture}: {record.parameters} parameters, validation accuracy "
               f"{entry['epochs'][-1]['val_accuracy']:.4f} -> {out}")


@ground.command()
@_data_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path), help="The trained .keras model.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The quantization-aware model to write (.h5).")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=5e-4, show_default=True, type=float)
def qat(data: Path, model_path: Path, out: Path, epochs: int, lr: float) -> None:
    """Fine-tune with quantization-aware training; convert the result with --profile int8."""
    from ground.patches import load_patches

    patches = load_patches(data)
    from ground.pipeline import qat_model
    from ground.train import TrainConfig

    _, _, entry = qat_model(patches, model_path, out, TrainConfig(epochs=epochs, learning_rate=lr))
    click.echo(f"quantization-aware: validation accuracy {entry['epochs'][-1]['val_accuracy']:.4f} -> {out}")


@ground.command()
@_data_option
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path), help="The .tflite model (manifest beside it).")
@click.option("--keras", "keras_path", type=click.Path(path_type=Path), help="Its Keras original, to measure their agreement.")
@click.option("--split", "split_name", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--runs", default=200, show_default=True, type=click.IntRange(1), help="Timed invokes for the host latency.")
def evaluate(data: Path, model_path: Path, keras_path: Path | None, split_name: str, runs: int) -> None:
    """Evaluate a converted model: metrics, agreement with Keras, host latency; writes
    MODEL.eval.json and a model card MODEL.md beside it."""
    from ground.patches import load_patches
    from onboard.contracts.manifest import read_manifest, sidecar_path

    patches = load_patches(data)
    manifest = read_manifest(sidecar_path(model_path))
    from ground.evaluate import card_path, evaluate as run_evaluation, evaluation_path, model_card
    from ground.pipeline import split
    from ground.record import ModelRecord
    from ground.train import check_bands, load_keras, predict
    from onboard.files import write_verified

    part = dict(zip(("train", "val", "test"), split(patches, int(manifest.training.get("split_seed", 0)))))[split_name]
    keras_scores = None
    if keras_path:
        record = ModelRecord.load(keras_path)
        check_bands(patches, record)
        keras_scores = predict(load_keras(keras_path), record, part)
    ev = run_evaluation(model_path, part, split_name, keras_scores, runs)
    click.echo(f"{ev.model} on {ev.dataset} ({split_name}, {ev.samples} samples):")
    for k, v in ev.metrics.items():
        click.echo(f"  {k:<10} {v:.4f}")
    if ev.keras_agreement is not None:
        click.echo(f"  agreement with Keras {ev.keras_agreement:.4f}")
    click.echo("  per-class F1: " + ", ".join(f"{c} {f:.3f}" for c, f in ev.per_class_f1.items()))
    click.echo(f"  host latency {ev.latency['avg_us']:.1f} us (p90 {ev.latency['p90_us']:.1f}), {ev.size_bytes} bytes")
    click.echo(f"evaluation -> {ev.write(evaluation_path(model_path))}")
    click.echo(f"model card -> {write_verified(card_path(model_path), model_card(manifest, ev).encode())}")


@ground.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Also write the report (markdown) here.")
def preflight(model: Path, out: Path | None) -> None:
    """Pre-flight report of a .tflite: operators, Edge TPU compatibility, XNNPACK sparse
    eligibility, size raw and gzipped, measured sparsity."""
    from ground.preflight import preflight as run_preflight
    from onboard.errors import ModelError
    from onboard.files import write_verified

    try:
        content = model.read_bytes()
    except OSError as exc:
        raise ModelError(f"model {model} cannot be read: {exc.strerror}") from None
    report = run_preflight(content, model.name).to_markdown()
    click.echo(report, nl=False)
    if out:
        write_verified(out, report.encode())


@ground.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The PNG to write.")
def pareto(models: tuple[Path, ...], out: Path) -> None:
    """Plot accuracy against size and latency for evaluated models (run `ground evaluate` on
    each MODEL first)."""
    from ground.evaluate import evaluation_path
    from ground.patches import DatasetError
    from ground.render import pareto as plot

    points, metric = [], None
    for m in models:
        try:
            ev = json.loads(evaluation_path(m).read_text())
        except (OSError, ValueError):
            raise DatasetError(f"{evaluation_path(m)} not found or unreadable: run `orbitlite ground evaluate` on {m}") from None
        name, value = next(iter(ev["metrics"].items()))
        metric = metric or name
        points.append((ev["model"], value, ev["size_bytes"], ev["latency"]["avg_us"]))
    click.echo(f"{len(points)} models -> {plot(points, metric, out)}")


@ground.command()
@_data_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for models, table and plot.")
@click.option("--archs", default="cnn-l,wrn-eca,mobile,nas-cell", show_default=True,
              help="Comma-separated architectures to study.")
@click.option("--student", default="cnn-s", show_default=True, type=click.Choice(_ARCHS), help="The distilled student.")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
def study(data: Path, out: Path, archs: str, student: str, epochs: int, seed: int) -> None:
    """For each architecture: train, convert fp32 and int8, prune to 50% and convert int8, distill
    a student and convert int8; evaluate every form; write study.md and pareto.png."""
    from ground.patches import DatasetError, load_patches

    names = [a.strip() for a in archs.split(",") if a.strip()]
    unknown = [a for a in names if a not in _ARCHS]
    if unknown or not names:
        raise DatasetError(f"--archs: unknown {', '.join(unknown) or 'none given'}; choose from {', '.join(_ARCHS)}")
    patches = load_patches(data)
    from ground.study import run_study, study_table, write_study

    rows = run_study(patches, names, out, epochs, student, seed)
    click.echo(study_table(rows), nl=False)
    table, plot = write_study(rows, out, patches.source)
    click.echo(f"table -> {table}\nplot -> {plot}")


@ground.group()
def data() -> None:
    """Datasets in their original layouts (EuroSAT, BigEarthNet, So2Sat LCZ42, hyperspectral)."""


def _dataset_options(f):
    f = click.option("--seed", default=0, show_default=True, type=int, help="Seed of the split, where the dataset has none.")(f)
    f = click.option("--bands", help="Bands to read, e.g. B02,B03,B04,B08 [default: all].")(f)
    f = click.option("--root", required=True, type=click.Path(path_type=Path), help="The dataset's folder.")(f)
    return click.option("--dataset", "name", required=True, help="Dataset name (see `ground data list`).")(f)


def _open_dataset(name: str, root: Path, split: str, bands: str | None, seed: int):
    from ground.datasets import DATASETS
    from ground.patches import DatasetError
    from onboard.scenes.scene import parse_bands

    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose from {', '.join(sorted(DATASETS))}")
    return DATASETS[name](root, split=split, bands=parse_bands(bands), seed=seed)


@data.command("list")
def data_list() -> None:
    """The datasets orbitlite reads, and the layout each expects."""
    from ground.datasets import DATASETS

    for name, cls in sorted(DATASETS.items()):
        click.echo(f"{name:<20} {cls.task:<13} {cls.layout}")


@data.command()
@_dataset_options
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "val", "test"]))
def inspect(name: str, root: Path, bands: str | None, seed: int, split: str) -> None:
    """Counts per class and per-band statistics of one split."""
    from ground.datasets.inspect import inspect_dataset

    click.echo(inspect_dataset(_open_dataset(name, root, split, bands, seed)))


@data.command()
@_dataset_options
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The .npz patch set to write.")
def export(name: str, root: Path, bands: str | None, seed: int, out: Path) -> None:
    """Write a dataset's train, val and test splits as one .npz patch set that keeps them, for
    `ground train`."""
    import numpy as np

    from ground.patches import PatchSet

    parts = [_open_dataset(name, root, split, bands, seed).load() for split in ("train", "val", "test")]
    first = parts[0]
    merged = PatchSet(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]), first.bands,
                      first.classes, f"{name} ({root})",
                      np.concatenate([np.full(len(p), i, np.int8) for i, p in enumerate(parts)]))
    click.echo(f"{len(merged)} patches ({', '.join(f'{s} {len(p)}' for s, p in zip(('train', 'val', 'test'), parts))}) "
               f"-> {merged.save(out)}")


@click.group()
def downlink() -> None:
    """What reaches the ground: decode products, link budgets."""


@downlink.command()
@click.argument("products", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The packet stream to write.")
@click.option("--max-data", default=1024, show_default=True, type=click.IntRange(41, 65536),
              help="Bytes of data field per packet.")
def packetize(products: tuple[Path, ...], out: Path, max_data: int) -> None:
    """Cut PRODUCTS into CCSDS Space Packets (133.0-B-2), one APID per product type."""
    from onboard.contracts.ccsds import Packetizer
    from onboard.contracts.product import read_product
    from onboard.files import write_verified

    packetizer, packets = Packetizer(max_data), []
    for path in products:
        read_product(path)  # refuse anything that is not a product before it goes down
        packets += packetizer.packetize(path.read_bytes())
    stream = b"".join(packets)
    click.echo(f"{len(products)} product(s) -> {len(packets)} packets, {len(stream)} bytes -> {write_verified(out, stream)}")


@downlink.command()
@click.argument("stream", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Directory for the rebuilt products.")
def reassemble(stream: Path, out_dir: Path) -> None:
    """Rebuild products from a CCSDS packet stream, reporting any that are missing or incomplete
    (exit 1 if any)."""
    from onboard.contracts.ccsds import reassemble as rebuild
    from onboard.contracts.product import decode_product
    from onboard.errors import ProductError
    from onboard.files import ensure_writable_dir, write_verified

    try:
        data = stream.read_bytes()
    except OSError as exc:
        raise ProductError(f"packet stream {stream} cannot be read: {exc.strerror}") from None
    ensure_writable_dir(out_dir)
    result = rebuild(data)
    for product in result.products:
        p = decode_product(product, source=f"a product in {stream}")
        path = write_verified(out_dir / p.file_name, product)
        click.echo(f"rebuilt {path} ({len(product)} bytes)")
    for problem in result.problems:
        click.echo(f"missing: {problem}", err=True)
    if result.problems:
        raise SystemExit(1)


@downlink.command()
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--days", default=7.0, show_default=True, type=float, help="Days to simulate from the config's start "
              "(by default the TLE's epoch).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory for simulation.json and the plots.")
@click.option("--link", default=None, help=f"{_link_help} Overrides the config's.")
def simulate(config: Path | None, days: float, out_dir: Path, link: str | None) -> None:
    """Simulate the downlink budget of CONFIG (JSON or TOML; built-in defaults without it: a
    Sentinel-2-like orbit, SvalSat and Inuvik) for raw scenes, on-board products only, and products
    plus the most valuable raw extracts; print a summary, write simulation.json and plots."""
    from ground import simulate as sim
    from onboard.files import ensure_writable_dir
    from onboard.progress import progress_bar

    cfg = sim.load_config(config)
    if link is not None:
        cfg = cfg.with_link(link)
    steps = sim.step_count(cfg, days)
    ensure_writable_dir(out_dir)
    with progress_bar(len(sim.MODES) * steps, "simulating") as bar:
        result = sim.simulate(cfg, days, bar.update)
    click.echo(sim.summary(result))
    for path in sim.write_outputs(result, out_dir):
        click.echo(f"-> {path}")


@downlink.command()
@click.argument("product", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Write PRODUCT's class map (PNG) and summary (JSON) here.")
@click.option("--link", default="uhf", show_default=True, help=_link_help)
def decode(product: Path, out_dir: Path | None, link: str) -> None:
    """Decode a product: print its summary, and write its class map (PNG and GeoTIFF, one pixel
    per tile, georeferenced when the scene was) and summary (JSON)."""
    from onboard.contracts.product import NODATA, read_product

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
        from ground.geotiff import write_class_map
        from ground.render import class_map
        from onboard.files import ensure_writable_dir, write_verified

        ensure_writable_dir(out_dir)
        stem = product.name.removesuffix(".msgpack")
        png = class_map(p, out_dir / f"{stem}.classmap.png")
        tif = write_class_map(p, out_dir / f"{stem}.classmap.tif")
        js = write_verified(out_dir / f"{stem}.json", (json.dumps(summary, indent=2) + "\n").encode())
        click.echo(f"class map -> {png}\nclass map GeoTIFF -> {tif}\nsummary -> {js}")
