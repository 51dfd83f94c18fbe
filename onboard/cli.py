"""`orbitlite onboard …`: the flight runtime's commands."""

from __future__ import annotations

from pathlib import Path

import click

from onboard.product import NODATA
from onboard.runner import run_scene
from onboard.scene import open_scene, parse_bands


@click.group()
def onboard() -> None:
    """The flight runtime: classify scenes tile by tile on the payload computer."""


@onboard.command()
@click.argument("scene", type=click.Path(path_type=Path))
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="The .tflite model; its manifest (MODEL.json) must lie beside it.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory for the product (created if missing).")
@click.option("--bands", help="Band names of a scene format that carries none, in file order, e.g. B02,B03,B04,B08.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64), help="Interpreter threads.")
@click.option("--batch", default=256, show_default=True, type=click.IntRange(1, 65536),
              help="Tiles per interpreter invoke.")
@click.option("--interpreter", default="auto", show_default=True,
              type=click.Choice(["auto", "ai_edge_litert", "tflite_runtime", "tensorflow"]),
              help="auto: LiteRT, else tflite_runtime; tensorflow (tf.lite) on the ground only.")
@click.option("--accelerator", default="cpu", show_default=True, type=click.Choice(["cpu", "edgetpu"]),
              help="edgetpu runs the model through the Coral delegate (libedgetpu).")
def run(scene: Path, model_path: Path, out_dir: Path, bands: str | None, threads: int, batch: int,
        interpreter: str, accelerator: str) -> None:
    """Classify every tile of SCENE and write the product.

    SCENE is a (band, row, col) .npy array of uint8, uint16 or float32. Bands are matched to the
    model's by name; a scene lacking one is refused.

    \b
    Example:
      orbitlite onboard run scene.npy --bands B02,B03,B04,B08 --model m.tflite --out products/
    """
    s = open_scene(scene, parse_bands(bands))
    product, path = run_scene(s, model_path, out_dir, threads=threads, batch=batch, interpreter=interpreter,
                              accelerator=accelerator)
    rt = product.runtime
    classified = int((product.class_map != NODATA).sum())
    click.echo(f"{s.id}: {classified} tiles in {rt['seconds']:.3f} s ({rt['tiles_per_s']} tiles/s, "
               f"{rt['interpreter']}, {threads} thread(s))")
    click.echo(f"product: {path} ({path.stat().st_size} bytes)")
