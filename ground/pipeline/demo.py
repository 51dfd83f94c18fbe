"""`orbitlite demo`: one honest pass from training on the ground to what reaches the ground."""

from __future__ import annotations

import io
import time
from pathlib import Path

import click
import numpy as np

from ground.datasets.scenes import spyndex_sentinel2
from ground.datasets.synthetic import generate_patches
from ground.downlink.link import Link, format_bytes, format_seconds
from ground.downlink.render import scene_and_class_map
from ground.pipeline.steps import convert_model, prune_model, train_model
from ground.training.prune import PruneSpec
from ground.training.train import TrainConfig
from onboard.files import ensure_writable_dir, write_verified
from onboard.scenes.reader import open_raster
from onboard.run.strips import run_scene


def _step(text: str) -> None:
    click.secho(f"\n== {text}", bold=True)


def run_demo(out: Path, link: Link, per_class: int = 400, epochs: int = 15, prune_epochs: int = 5,
             threads: int = 1, seed: int = 0) -> None:
    started = time.perf_counter()
    ensure_writable_dir(out)
    real = spyndex_sentinel2()

    _step(f"ground: synthetic EuroSAT-like training set (SYNTHETIC), bands {','.join(real.bands)}")
    patches = generate_patches(per_class, size=32, bands=real.bands, seed=seed)
    data_path = patches.save(out / "synthetic-patches.npz")
    counts = ", ".join(f"{c} {int((patches.y == i).sum())}" for i, c in enumerate(patches.classes))
    click.echo(f"{len(patches)} patches of 32 x 32 px ({counts}) -> {data_path}")

    _step("ground: train a model-zoo CNN-l")
    model, record, entry = train_model(patches, out / "cnn-l.keras", "cnn-l", {}, TrainConfig(epochs=epochs, seed=seed),
                                       split_seed=seed)
    last = entry["epochs"][-1]
    click.echo(f"{record.parameters} parameters; validation accuracy {last['val_accuracy']:.3f}; "
               f"{last['samples_per_s']:.0f} samples/s -> {out / 'cnn-l.keras'}")

    _step("ground: magnitude-prune to 50% sparsity and fine-tune (tensorflow-model-optimization)")
    _, record, entry = prune_model(patches, out / "cnn-l.keras", out / "cnn-l-pruned.keras", PruneSpec(sparsity=0.5),
                                   TrainConfig(epochs=prune_epochs, learning_rate=1e-3, seed=seed))
    click.echo(f"measured sparsity {record.sparsity:.1%}; validation accuracy "
               f"{entry['epochs'][-1]['val_accuracy']:.3f} -> {out / 'cnn-l-pruned.keras'}")

    _step("ground: convert to full-integer int8 TFLite with a manifest")
    model_path = out / "cnn-l-pruned-int8.tflite"
    m = convert_model(patches, out / "cnn-l-pruned.keras", model_path, model_id="cnn-l-pruned-int8")
    a = m.accuracy
    click.echo(f"{m.size_bytes} bytes; held-out accuracy ({a.samples} synthetic test patches): Keras {a.keras:.3f}, "
               f"TFLite {a.tflite:.3f}, top-1 agreement {a.agreement:.3f}")
    click.echo(f"model -> {model_path}\nmanifest -> {model_path}.json")

    _step(f"onboard: classify the real Sentinel-2 scene {real.id} (from the spyndex wheel)")
    scene_path = out / f"{real.id}.npy"
    buf = _npy_bytes(real.data)
    write_verified(scene_path, buf)
    with open_raster(scene_path, real.bands) as scene:
        product, product_path = run_scene(scene, model_path, out / "products", threads=threads)
    rt = product.runtime
    click.echo(f"{scene.shape[0]} x {scene.shape[1]} px, bands {','.join(scene.bands)} -> "
               f"{rt['tiles']} tiles in {rt['seconds'] * 1000:.1f} ms ({rt['tiles_per_s']:.0f} tiles/s, {rt['interpreter']})")
    hist = product.histogram
    click.echo("classes: " + ", ".join(f"{c} {n}" for c, n in zip(product.classes, hist) if n)
               + f"; {len(product.uncertain)} uncertain tiles")
    click.echo(f"scene -> {scene_path}\nproduct -> {product_path}")

    _step(f"downlink: raw scene against product on {link.name}")
    raw, prod = product.scene_bytes, product_path.stat().st_size
    click.echo(f"raw scene {format_bytes(raw):>10}  {format_seconds(link.seconds(raw)):>10}")
    click.echo(f"product   {format_bytes(prod):>10}  {format_seconds(link.seconds(prod)):>10}   ({raw / prod:.0f}x smaller)")
    picture = scene_and_class_map(real, product, out / "scene-and-class-map.png")
    click.echo(f"picture -> {picture}")
    click.echo(f"\ndemo finished in {time.perf_counter() - started:.0f} s; everything is in {out}")


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()
