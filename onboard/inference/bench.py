"""Benchmarking a model on the board the way TFLite's `benchmark_model` reports it: init time,
first inference, warm-up runs and their average, then min, max, avg and std of the counted runs
and the peak memory footprint, by the same names, plus p50, p90 and p99 of every counted run's
own time. Counted runs go on until the validity rule is met (at least `min_runs` runs and
`min_seconds` of them, stopping at `max_seconds`); a measurement that stops short says it is not
valid, and why.

`bench_board` is everything the harness measures on a board in one call, printed as JSON by
`orbitlite onboard bench` (the contract `onboard.contracts.bench.Measured`): the measurement at
the asked threads and batch, a thread sweep (1..cores) and a batch sweep, the end-to-end tiles/s
and peak memory of `orbitlite onboard run` on a scene (in a child process), the CPU's frequency
and temperature before and after from /sys, and throttling when detected. It lives in the
runtime because it runs on the board: `hil bench` drives it there through a transport.

`BenchArgs` is what a board-side bench is asked, by the same bounds as the command line's: the
harness turns it into `orbitlite onboard bench`'s arguments (`bench_argv`) where a transport runs
commands, and sends it as the args of the payload's link command `bench` where it does not
(onboard/link/commands.py). `bench_seconds` is how long one may take, for the ground's wait and
the payload's own bound alike."""

from __future__ import annotations

import glob
import importlib.metadata
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Callable, Literal, Sequence

import click
import numpy as np
from msgspec import Meta

from onboard.contracts.bench import MAX_LATENCIES, Cpu, EndToEnd, Measured, Rule, Timings, Versions
from onboard.contracts.product import read_product
from onboard.errors import BenchError
from onboard.inference.model import load_model
from onboard.schema import FiniteFloat, Schema, Text

Clock = Callable[[], float]
# A frequency after the run below this fraction of the one before it is reported as throttling.
FREQUENCY_DROP = 0.9
END_TO_END_TIMEOUT = 3600.0
ORBITLITE = (sys.executable, "-m", "orbitlite")  # this runtime, as a child process runs it
MAX_THREADS = 64
MAX_BATCH = 65536
Threads = Annotated[int, Meta(ge=1, le=MAX_THREADS)]
Batch = Annotated[int, Meta(ge=1, le=MAX_BATCH)]


class BenchArgs(Schema):
    """A board-side bench, as `orbitlite onboard bench` takes it (see the module's docstring)."""

    model: Text  # the .tflite, its manifest beside it
    threads: Threads = 1
    batch: Batch = 1
    cores: Threads | None = None  # the thread sweep runs 1..cores; None: the board's CPU count
    batches: Annotated[tuple[Batch, ...], Meta(min_length=1)] = (1, 16, 64, 256)
    rule: Rule = Rule()
    scene: Text | None = None  # also time `onboard run` on it end to end
    bands: Text | None = None  # the scene's band names in file order
    accelerator: Literal["cpu", "edgetpu"] = "cpu"


def bench_argv(a: BenchArgs) -> list[str]:
    """`orbitlite onboard bench`'s arguments (after `orbitlite`) for `a`; each value joined to its
    option, so none can pass for an option of its own."""
    r = a.rule
    argv = ["onboard", "bench", f"--model={a.model}", f"--threads={a.threads}", f"--batch={a.batch}",
            f"--batches={','.join(map(str, a.batches))}", f"--min-runs={r.min_runs}",
            f"--min-seconds={r.min_seconds!r}", f"--max-seconds={r.max_seconds!r}",
            f"--warmup-runs={r.warmup_runs}", f"--accelerator={a.accelerator}"]
    for option, value in (("cores", a.cores), ("scene", a.scene), ("bands", a.bands)):
        if value is not None:
            argv.append(f"--{option}={value}")
    return argv


def bench_seconds(a: BenchArgs) -> float:
    """The longest the bench `a` may take: every measurement to the rule's max_seconds and a
    minute to load and warm up, and ten minutes for the rest (starting, the end-to-end run)."""
    measurements = 1 + (a.cores or os.cpu_count() or 1) + len(a.batches)
    return measurements * (a.rule.max_seconds + 60) + 600


def batch_sweep(ctx: click.Context | None, param: click.Parameter | None, value: str) -> tuple[int, ...]:
    """A `--batches` option's comma-separated batch sizes, sorted and each once."""
    try:
        sweep = tuple(sorted({int(b) for b in value.split(",")}))
    except ValueError:
        raise click.BadParameter("give batch sizes as integers, e.g. 1,16,256", ctx, param) from None
    if not sweep or min(sweep) < 1 or max(sweep) > MAX_BATCH:
        raise click.BadParameter(f"batch sizes are 1 to {MAX_BATCH}", ctx, param)
    return sweep


def sweep_and_rule_options(command: Callable) -> Callable:
    """The options a bench shares wherever it is started (`onboard bench` on the board, `hil bench`
    on the ground): the batch sweep and the validity rule."""
    options = [
        click.option("--batches", default="1,16,64,256", show_default=True, callback=batch_sweep,
                     help="The batch sweep, comma-separated (the thread sweep is 1..the board's cores)."),
        click.option("--min-runs", default=Rule().min_runs, show_default=True, type=click.IntRange(1),
                     help="Validity rule: at least this many counted runs..."),
        click.option("--min-seconds", default=Rule().min_seconds, show_default=True, type=FiniteFloat(0),
                     help="...and at least this many seconds of them, per measurement; else it is not valid."),
        click.option("--max-seconds", default=Rule().max_seconds, show_default=True,
                     type=FiniteFloat(0, min_open=True), help="A measurement's counted runs stop here, rule met or not."),
        click.option("--warmup-runs", default=Rule().warmup_runs, show_default=True, type=click.IntRange(0)),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    rss = resource.getrusage(who).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def benchmark(model_path: Path, threads: int = 1, batch: int = 1, rule: Rule = Rule(), interpreter: str = "auto",
              accelerator: str = "cpu", clock: Clock = time.perf_counter) -> tuple[Timings, np.ndarray]:
    """Time invoke() alone on random tiles of the model's input type, under `rule`: the timings
    and every counted run's time in microseconds."""
    t0 = clock()
    model = load_model(model_path, threads=threads, batch=batch, interpreter=interpreter, accelerator=accelerator)
    init = (clock() - t0) * 1e6
    interp = model.interpreter
    spec = model.manifest.input
    rng = np.random.default_rng(0)
    info = np.iinfo(spec.dtype) if np.dtype(spec.dtype).kind in "iu" else None
    tiles = (rng.integers(info.min, info.max, (model.batch, *spec.shape[1:]), endpoint=True).astype(spec.dtype)
             if info else rng.standard_normal((model.batch, *spec.shape[1:])).astype(spec.dtype))
    interp.set_tensor(model.input_index, tiles)

    def once() -> float:
        s = clock()
        interp.invoke()
        return (clock() - s) * 1e6

    first = once()
    warm = [once() for _ in range(rule.warmup_runs)]
    timed: list[float] = []
    total = 0.0  # us
    while len(timed) < MAX_LATENCIES and total < rule.max_seconds * 1e6 and \
            (len(timed) < rule.min_runs or total < rule.min_seconds * 1e6):
        timed.append(once())
        total += timed[-1]
    runs = np.array(timed)
    reasons = []
    if len(runs) < rule.min_runs:
        reasons.append(f"{len(runs)} counted runs, fewer than the {rule.min_runs} the rule asks"
                       + (f" (stopped at max_seconds {rule.max_seconds:g})" if total >= rule.max_seconds * 1e6 else ""))
    if total < rule.min_seconds * 1e6:
        reasons.append(f"{total / 1e6:.3g} s of counted runs, less than the {rule.min_seconds:g} s the rule asks"
                       + (f" (stopped at {MAX_LATENCIES} runs)" if len(runs) >= MAX_LATENCIES else ""))
    p50, p90, p99 = (float(v) for v in np.percentile(runs, [50, 90, 99]))
    timings = Timings(
        interpreter=model.interpreter_name, threads=threads, batch=model.batch, init_us=round(init, 1), first_inference_us=round(first, 1),
        warmup_runs=len(warm), warmup_avg_us=round(float(np.mean(warm)), 1) if warm else None, count=len(runs),
        seconds=round(total / 1e6, 6), min_us=round(float(runs.min()), 1), max_us=round(float(runs.max()), 1),
        avg_us=round(float(runs.mean()), 1), std_us=round(float(runs.std()), 1),
        p50_us=round(p50, 1), p90_us=round(p90, 1), p99_us=round(p99, 1),
        tiles_per_s=round(model.batch * 1e6 / float(runs.mean()), 1) if runs.mean() > 0 else 0.0,
        peak_memory_mb=round(peak_rss_mb(), 1), valid=not reasons, not_valid=tuple(reasons),
    )
    return timings, runs


def cpu_state(sys_root: Path = Path("/sys")) -> Cpu:
    """Frequency and temperature from /sys, and `vcgencmd get_throttled` where it exists (a
    Raspberry Pi); whatever the board does not show is None."""
    def numbers(pattern: str) -> list[float]:
        found = []
        for path in sorted(glob.glob(str(sys_root / pattern))):
            try:
                found.append(float(Path(path).read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                continue
        return found

    cur = numbers("devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")
    top = numbers("devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq")
    temps = numbers("class/thermal/thermal_zone0/temp")
    throttled = None
    if shutil.which("vcgencmd"):
        try:
            done = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=10)
            throttled = done.stdout.strip().partition("=")[2] or None if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            throttled = None
    return Cpu(freq_mhz=round(sum(cur) / len(cur) / 1000, 1) if cur else None,
               max_freq_mhz=round(max(top) / 1000, 1) if top else None,
               temp_c=round(temps[0] / 1000, 1) if temps else None, throttled=throttled)


def throttling(before: Cpu, after: Cpu) -> str | None:
    """How throttling shows, if it does: a Pi's throttled bits, else a frequency that fell."""
    for cpu in (before, after):
        if cpu.throttled is not None and cpu.throttled not in ("0x0", "0"):
            return f"vcgencmd get_throttled={cpu.throttled}"
    if before.freq_mhz and after.freq_mhz is not None and after.freq_mhz < FREQUENCY_DROP * before.freq_mhz:
        return f"CPU frequency fell from {before.freq_mhz:g} to {after.freq_mhz:g} MHz"
    return None


def end_to_end(model_path: Path, scene: Path, bands: str, threads: int, batch: int,
               orbitlite: Sequence[str]) -> EndToEnd:
    """`orbitlite onboard run` on `scene` in a child process: its rate from the product it writes,
    its peak memory from the child's resource usage."""
    with tempfile.TemporaryDirectory(prefix="orbitlite-bench-") as out:
        argv = [*orbitlite, "onboard", "run", str(scene), "--bands", bands, "--model", str(model_path),
                "--out", out, "--threads", str(threads), "--batch", str(batch)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=END_TO_END_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BenchError(f"onboard run on {scene} took longer than {END_TO_END_TIMEOUT:g} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BenchError(f"onboard run on {scene} failed: {last}")
        (product_path,) = Path(out).glob("*.msgpack")
        runtime = read_product(product_path).runtime
    return EndToEnd(scene=Path(scene).name, tiles=runtime["tiles"], seconds=runtime["seconds"],
                    tiles_per_s=runtime["tiles_per_s"], peak_rss_mb=round(peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
                    threads=runtime["threads"], batch=runtime["batch"])


def versions(interpreter: str) -> Versions:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    uname = platform.uname()
    return Versions(orbitlite=version("orbitlite"), numpy=np.__version__,
                    interpreter=f"{interpreter} {version(interpreter.replace('_', '-'))}",
                    python=platform.python_version(), system=f"{uname.system} {uname.release} {uname.machine}")


def bench_board(model_path: Path, *, threads: int, batch: int, cores: int, batches: Sequence[int], rule: Rule,
                scene: Path | None = None, bands: str | None = None, interpreter: str = "auto",
                accelerator: str = "cpu", orbitlite: Sequence[str] = ORBITLITE) -> Measured:
    """Everything the harness measures on the board (see the module's docstring)."""
    before = cpu_state()
    main, latencies = benchmark(model_path, threads, batch, rule, interpreter, accelerator)
    threads_sweep = tuple(main if t == threads else benchmark(model_path, t, batch, rule, interpreter, accelerator)[0]
                          for t in range(1, cores + 1))
    batch_sweep = tuple(main if b == main.batch else benchmark(model_path, threads, b, rule, interpreter, accelerator)[0]
                        for b in batches)
    e2e = None
    if scene is not None:
        e2e = end_to_end(model_path, scene, bands or "", threads, batch, orbitlite)
    after = cpu_state()
    return Measured(versions=versions(main.interpreter), machine=platform.machine(), cores=cores,
                    accelerator=accelerator, rule=rule, main=main, threads_sweep=threads_sweep,
                    batch_sweep=batch_sweep, latencies_us=tuple(round(float(v), 1) for v in latencies),
                    end_to_end=e2e, cpu_before=before, cpu_after=after, throttling=throttling(before, after))
