"""`orbitlite onboard …`: the flight runtime's commands."""

from __future__ import annotations

import os
import platform
import signal
from pathlib import Path, PurePosixPath

import click

from onboard.contracts.bench import Rule
from onboard.contracts.product import NODATA
from onboard.errors import ConfigError, OrbitliteError
from onboard.inference.bench import MAX_BATCH, MAX_THREADS, bench_board, sweep_and_rule_options
from onboard.inference.model import interpreter_class
from onboard.inference.screening import Screening
from onboard.contracts.bundle import read as read_bundle
from onboard.files import write_verified
from onboard.link.commands import answer_link, slot_fallback
from onboard.link.sealing import read_key
from onboard.link.slots import check_slot
from onboard.run.boards import BOARDS
from onboard.run.budget import MAX_SCENE_SECONDS, Budget
from onboard.run.strips import run_scene
from onboard.schema import FiniteFloat, encode_json
from onboard.scenes.reader import open_raster
from onboard.scenes.scene import parse_bands
from onboard.service.config import load_config
from onboard.service.loop import Service


@click.group()
def onboard() -> None:
    """The flight runtime: classify scenes tile by tile on the payload computer."""


@onboard.command()
@click.argument("scene", type=click.Path(path_type=Path))
@click.option("--model", "model_paths", required=True, multiple=True, type=click.Path(path_type=Path),
              help="The .tflite model; its manifest (MODEL.json) must lie beside it. Repeat it for a ladder of "
                   "twins, best first: a cheaper one takes over when a budget runs short.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory for the product (created if missing).")
@click.option("--bands", help="Band names of a scene format that carries none, in file order, e.g. B02,B03,B04,B08.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64), help="Interpreter threads.")
@click.option("--batch", default=256, show_default=True, type=click.IntRange(1, 65536),
              help="Tiles per interpreter invoke, at most: a strip's tiles go in equal batches.")
@click.option("--interpreter", default="auto", show_default=True,
              type=click.Choice(["auto", "ai_edge_litert", "tflite_runtime", "tensorflow"]),
              help="auto: LiteRT, else tflite_runtime; tensorflow (tf.lite) on the ground only.")
@click.option("--accelerator", default="cpu", show_default=True, type=click.Choice(["cpu", "edgetpu"]),
              help="edgetpu runs the model through the Coral delegate (libedgetpu).")
@click.option("--stride", type=click.IntRange(1),
              help="Pixels between tiles, 1 to the tile size [default: the tile size]; smaller overlaps them.")
@click.option("--cascade", type=click.Path(path_type=Path),
              help="A larger model that re-classifies the tiles the ladder is unsure of.")
@click.option("--cascade-below", default=128, show_default=True, type=click.IntRange(0, 256),
              help="Confidence (of 255) under which a tile goes to the cascade.")
@click.option("--board", default="rpi-4b", show_default=True, type=click.Choice(list(BOARDS)),
              help="The board whose idle and busy watts the budgets count with.")
@click.option("--cpu-seconds", type=FiniteFloat(0, MAX_SCENE_SECONDS, min_open=True),
              help="CPU-seconds the scene may spend.")
@click.option("--deadline-seconds", type=FiniteFloat(0, MAX_SCENE_SECONDS, min_open=True),
              help="Wall-clock seconds the scene may take.")
@click.option("--screen/--no-screen", default=False, show_default=True,
              help="Skip no-data and thick-cloud tiles (and tiles outside --roi) before any model runs.")
@click.option("--nodata-value", default=0.0, show_default=True, type=FiniteFloat(),
              help="With --screen: the no-data value.")
@click.option("--max-cloud", default=0.6, show_default=True, type=FiniteFloat(0, 1),
              help="With --screen: skip a tile with more cloudy pixels than this fraction.")
@click.option("--roi", help="With --screen: the region of interest, row0,col0,row1,col1 in scene pixels.")
def run(scene: Path, model_paths: tuple[Path, ...], out_dir: Path, bands: str | None, threads: int, batch: int,
        interpreter: str, accelerator: str, stride: int | None, cascade: Path | None, cascade_below: int, board: str,
        cpu_seconds: float | None, deadline_seconds: float | None, screen: bool, nodata_value: float,
        max_cloud: float, roi: str | None) -> None:
    """Classify every tile of SCENE and write the product.

    SCENE is a GeoTIFF (multi-band, tiled or striped), a folder of one GeoTIFF per band (as
    Sentinel-2 granules and BigEarthNet patches; 20 m and 60 m bands are resampled to 10 m), or
    a (band, row, col) .npy array, of uint8, uint16 or float32. It is streamed a strip of tiles at
    a time. Bands are matched to the model's by name; a scene lacking one is refused. Tiles a
    budget or the screening leaves out are listed in the product with the reason.

    \b
    Example:
      orbitlite onboard run scene.npy --bands B02,B03,B04,B08 --model m.tflite --out products/
      orbitlite onboard run scene.tif --model cnn-l.tflite --model cnn-s.tflite --cpu-seconds 30 --screen --out p/
    """
    budget = None if cpu_seconds is None and deadline_seconds is None else \
        Budget(cpu_seconds=cpu_seconds, deadline_seconds=deadline_seconds)
    screening = Screening(nodata_value=nodata_value, max_cloud=max_cloud, roi=_roi(roi)) if screen else None
    if roi and not screen:
        raise click.UsageError("--roi takes effect with --screen")
    with open_raster(scene, parse_bands(bands)) as s:
        product, path = run_scene(s, model_paths, out_dir, threads=threads, batch=batch, interpreter=interpreter,
                                  accelerator=accelerator, stride=stride, cascade=cascade, cascade_below=cascade_below,
                                  budget=budget, board=BOARDS[board], screening=screening)
    rt = product.runtime
    classified = int((product.class_map != NODATA).sum())
    rate = f"{classified / rt['seconds']:.1f}" if rt["seconds"] > 0 else "-"
    click.echo(f"{s.id}: {classified} tiles in {rt['seconds']:.3f} s ({rate} tiles/s, "
               f"{rt['interpreter']}, {threads} thread(s))")
    if product.skipped:
        click.echo("skipped: " + ", ".join(f"{x['tiles']} {x['reason']}" for x in product.skipped))
    click.echo(f"product: {path} ({path.stat().st_size} bytes)")


def _roi(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None:
        return None
    try:
        r0, c0, r1, c1 = (int(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter("give row0,col0,row1,col1 in scene pixels", param_hint="--roi") from None
    if not (r0 < r1 and c0 < c1):
        raise click.BadParameter("needs row0 < row1 and col0 < col1", param_hint="--roi")
    return r0, c0, r1, c1


@onboard.command()
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="The .tflite model; its manifest (MODEL.json) must lie beside it.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, MAX_THREADS),
              help="Interpreter threads.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1, MAX_BATCH), help="Tiles per invoke.")
@click.option("--cores", type=click.IntRange(1, MAX_THREADS),
              help="The thread sweep runs 1..cores [default: this CPU's count].")
@sweep_and_rule_options
@click.option("--scene", type=click.Path(path_type=Path), help="Also time `onboard run` on this scene end to end.")
@click.option("--bands", help="The scene's band names, as for `onboard run`.")
@click.option("--interpreter", default="auto", show_default=True,
              type=click.Choice(["auto", "ai_edge_litert", "tflite_runtime"]))
@click.option("--accelerator", default="cpu", show_default=True, type=click.Choice(["cpu", "edgetpu"]))
def bench(model_path: Path, threads: int, batch: int, cores: int | None, batches: tuple[int, ...], min_runs: int,
          min_seconds: float, max_seconds: float, warmup_runs: int, scene: Path | None, bands: str | None,
          interpreter: str, accelerator: str) -> None:
    """Benchmark a model on this board and print the figures as JSON (what `orbitlite hil
    bench` runs on the board): benchmark_model's timings with p50/p90/p99 and validity, a thread
    sweep and a batch sweep, `onboard run` end to end on --scene, CPU frequency, temperature and
    throttling. The contract is onboard.contracts.bench.Measured.

    \b
    Example:
      orbitlite onboard bench --model m.tflite --batch 256 --scene s.npy --bands B02,B03,B04,B08
    """
    rule = Rule(min_runs=min_runs, min_seconds=min_seconds, max_seconds=max_seconds, warmup_runs=warmup_runs)
    measured = bench_board(model_path, threads=threads, batch=batch, cores=cores or os.cpu_count() or 1,
                           batches=batches, rule=rule, scene=scene, bands=bands, interpreter=interpreter,
                           accelerator=accelerator)
    click.echo(encode_json(measured, indent=2).decode())


@onboard.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--once", is_flag=True, help="Process the scenes in the spool now, then exit (tests, cron).")
@click.option("--ready", type=click.Path(path_type=Path, dir_okay=False),
              help="Write this file (the service's pid and models) once the configured models are loaded: the "
                   "supervisor's sign that a slot on trial came up.")
def serve(config: Path, once: bool, ready: Path | None) -> None:
    """Watch a spool directory and run each scene that lands there into the on-board store.

    CONFIG is a JSON file; paths in it are relative to it. Required: spool (a directory),
    bands (the .npy scenes' band names in file order), board (a name such as rpi-4b, or a
    board profile file), models.ladder (.tflite files, best first; manifests beside them),
    store.path and store.capacity_bytes, telemetry (a JSON-lines log). Optional: models.cascade,
    .cascade_below, .threads, .batch, .interpreter, .accelerator; store.capacity_count,
    .policy, .resend_after, .max_file_bytes; budget.cpu_seconds, .deadline_seconds (per scene),
    .reserve, .run_in_eclipse; screening (nodata_value, max_nodata, cloud, max_cloud,
    reflectance_per_dn, roi, step; absent: no screening); priority; uncertain_below;
    poll_seconds (5); link.port, .key_file, .baud (115200), .state, .budget (absent: no link).

    With a link, the service answers authenticated commands on the serial port (`orbitlite hil
    link`): status, budgets, uploads and downloads, queueing scenes, switching model slots,
    re-keying (the re-keyed key is kept in link.state and used in place of link.key_file's). Models
    named through slots/active that cannot be loaded do not stop it: it falls back to the other
    slot if that checks and self-tests, or else waits with no models, and says why in status and
    the telemetry log (without a link, or with --once, it exits with that one line).

    Producers write NAME.npy.part and rename it to NAME.npy when complete. Finished scenes
    move to done/, refused ones to failed/ beside NAME.npy.reason. A killed service resumes an
    interrupted scene at its last committed tile; SIGTERM or SIGINT stop it between strips.

    \b
    Example:
      orbitlite onboard serve payload/serve.json --once
    """
    settings = load_config(config)
    link = settings.link
    key = None
    if link is not None:
        try:
            key = read_key(link.key_file)
        except OrbitliteError as exc:
            raise ConfigError(f"config {settings.source}: link.key_file is unusable: {exc}") from None
    answers = key is not None and not once
    fallback = slot_fallback(settings, link.root) if answers else None
    with Service(settings, report=click.echo, fallback=fallback) as service:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: service.stop())
        answering = answer_link(service, link, key, click.echo) if answers else None
        status = service.status()
        if ready is not None and status["models"] and not status["models_fault"]:
            write_verified(ready, encode_json({"pid": os.getpid(), "models": status["models"]}))
        try:
            service.run(once=once)
        finally:
            if answering is not None:
                service.stop()
                answering.join()


@onboard.command("check-slot")
@click.argument("slot", type=click.Path(path_type=Path, file_okay=False))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64), help="Interpreter threads.")
def check_slot_command(slot: Path, threads: int) -> None:
    """Self-test the bundle in the folder SLOT (`slots/a` or `slots/b`) with the runtime that runs
    this command: the slot holds exactly its bundle, every file of its size and sha256;
    onboard._native loads; each model reproduces, on its reference tiles, the outputs the ground
    recorded (exactly for int8); and the service configuration the bundle names loads. Prints the
    result as JSON; one line and a non-zero exit on the first failure.

    \b
    Example (what `orbitlite hil deploy` runs on the board, in the new slot's runtime):
      envs/b/bin/python -m orbitlite onboard check-slot slots/b
    """
    slot = Path(slot)
    body = read_bundle(slot)
    models = check_slot(slot.parent, slot.name, [PurePosixPath(m) for m in body.models], threads)
    if body.config is not None:
        load_config(slot / body.config)
    click.echo(encode_json({"slot": slot.name, "bundle": body.id, "models": models, "config": body.config,
                            "python": platform.python_version(), "arch": platform.machine(),
                            "interpreter": interpreter_class("auto")[1]}).decode())
