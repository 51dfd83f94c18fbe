"""The ground side of a benchmark: put the model, its manifest and a scene in the transport's work
folder on the board (`files/` over the serial link), run the board-side bench there through the
transport (`orbitlite onboard bench`, or the payload's link command `bench`), read back what it
measured (validated), and add the energy: from the board's power meter (hil/boards/meters/), read
while the bench runs, or modelled from the profile's busy watts and the measured busy time. The
result says which (`Energy.source`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hil.boards.meters import PowerMeter, measure
from hil.boards.profile import Board, kind
from hil.boards.transport import Transport
from onboard.contracts.bench import (BenchReport, BoardInfo, Energy, Measured, ModelInfo, Rule, decode_measured)
from onboard.contracts.manifest import Manifest, read_manifest, sidecar_path
from onboard.errors import BenchError
from onboard.files import sha256_file
from onboard.inference.bench import BenchArgs, bench_seconds

# The scene shipped with the bench: 150 x 150 px of the real Sentinel-2 patch in spyndex's wheel
# (10 m bands B02, B03, B04, B08, reflectance x 10000, uint16; see ../shared/data's README).
BENCH_SCENE = Path(__file__).resolve().parent / "data" / "s2-spyndex-150px.npy"
BENCH_BANDS = "B02,B03,B04,B08"
DEFAULT_GSD_M = 10.0  # Sentinel-2's 10 m bands


@dataclass(frozen=True)
class Options:
    threads: int = 1
    batch: int = 1
    batches: tuple[int, ...] = (1, 16, 64, 256)
    rule: Rule = Rule()
    scene: Path | None = BENCH_SCENE  # None: no end-to-end run
    bands: str = BENCH_BANDS
    gsd_m: float = DEFAULT_GSD_M


def energy(busy_watts: float, idle_watts: float, busy_seconds: float, tiles: int, tile: tuple[int, int],
           gsd_m: float, *, source: str, meter: str, of: str) -> Energy:
    """mJ per tile = busy W x busy s / tiles; the part over idle likewise; per km^2 over the
    tile's footprint at `gsd_m` metres per pixel."""
    mj = busy_watts * busy_seconds / tiles * 1000
    km2 = tile[0] * gsd_m * tile[1] * gsd_m / 1e6
    return Energy(source=source, meter=meter, idle_watts=idle_watts, busy_watts=busy_watts,
                  busy_seconds=busy_seconds, tiles=tiles, of=of, mj_per_tile=mj,
                  extra_mj_per_tile=max(busy_watts - idle_watts, 0.0) * busy_seconds / tiles * 1000,
                  gsd_m=gsd_m, km2_per_tile=km2, mj_per_km2=mj / km2)


def checked_model(model: Path, accelerator: str = "cpu") -> tuple[Manifest, str]:
    """The manifest and sha256 of `model`, which must be the model its manifest describes and be
    compiled for `accelerator`; BenchError in one line otherwise."""
    model = Path(model)
    if not model.is_file():
        raise BenchError(f"model {model} not found")
    manifest: Manifest = read_manifest(sidecar_path(model))
    digest = sha256_file(model)
    if digest != manifest.sha256:
        raise BenchError(f"model {model} does not match its manifest's sha256: not the model it describes")
    if (manifest.target == "edgetpu") != (accelerator == "edgetpu"):
        raise BenchError(f"model {model} is compiled for {manifest.target}, not for the "
                         f"{'Edge TPU' if accelerator == 'edgetpu' else 'CPU'}: give "
                         f"{'--edgetpu-model' if manifest.target == 'edgetpu' else '--model'} that one")
    return manifest, digest


def run_bench(board: Board, transport: Transport, meter: PowerMeter, model: Path,
              opts: Options = Options(), accelerator: str = "cpu") -> BenchReport:
    """Benchmark `model` (its manifest beside it) on `board`, reached through `transport`, its power
    read by `meter`, on the CPU or the Edge TPU (`accelerator`); BenchError, TransportError or
    MeterError in one line."""
    model = Path(model)
    manifest, digest = checked_model(model, accelerator)
    t, spec, watts = transport, board.spec, board.energy()
    remote = f"{t.work}/{model.name}"
    t.put(model, remote)
    t.put(sidecar_path(model), remote + ".json")
    scene = None if opts.scene is None else f"{t.work}/{opts.scene.name}"
    if opts.scene is not None:
        t.put(opts.scene, scene)
    args = BenchArgs(model=remote, threads=opts.threads, batch=opts.batch, cores=spec.cores, batches=opts.batches,
                     rule=opts.rule, scene=scene, bands=opts.bands if scene else None,
                     accelerator=accelerator)
    metered = not meter.modelled
    if metered:
        printed, seen = measure(meter, lambda: t.bench(args, timeout=bench_seconds(args)))
    else:
        printed = t.bench(args, timeout=bench_seconds(args))
    measured: Measured = decode_measured(printed, f"the bench output of board {board.name}")
    e2e = measured.end_to_end
    busy_s, tiles, of = ((e2e.seconds, e2e.tiles, "end-to-end") if e2e else
                         (measured.main.seconds, measured.main.count * measured.main.batch, "invoke"))
    busy_w = seen.mean_watts if metered else watts.busy_watts
    return BenchReport(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        board=BoardInfo(name=board.name, arch=spec.arch, cores=spec.cores, accelerator=spec.accelerator,
                        idle_watts=watts.idle_watts, busy_watts=watts.busy_watts, meter=kind(spec.meter),
                        transport=t.name, emulated=spec.emulated),
        model=ModelInfo(file=model.name, id=manifest.id, sha256=digest, size_bytes=model.stat().st_size,
                        tile=manifest.tile_shape, dtype=manifest.input.dtype),
        measured=measured,
        energy=energy(busy_w, watts.idle_watts, busy_s, tiles, manifest.tile_shape, opts.gsd_m,
                      source="meter" if metered else "modelled", meter=meter.name, of=of),
    )
