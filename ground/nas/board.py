"""Board latency of a NAS database's cells, as HW-NAS-Bench keeps latency measured on a Raspberry
Pi 4 and an Edge TPU: `orbitlite hil bench` runs each cell's int8 model on a board (at batch 1,
one thread, after warm-up) through the board's transport, and its result stays in the cell's
folder (`bench-BOARD/result.json`, the hil-bench contract). The database's queries then answer
each cell's p50 latency per board (`board_latency_us`). The bench runs as its own command, so the
ground keeps to its side of the harness (the ground imports no `hil` module)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

from ground.errors import NasError
from onboard.contracts.bench import read_bench
from onboard.errors import OrbitliteError
from onboard.files import sha256_file

MODEL = "cell.tflite"
PREFIX = "bench-"


def bench_folder(cell: Path, board: str) -> Path:
    return cell / f"{PREFIX}{Path(board).stem}"


def latencies(cell: Path) -> dict[str, float]:
    """The p50 latency (us, batch 1) of the cell's model on each board it was benched on; a result
    that does not validate, or is of another model than the cell's, is refused in one line."""
    out = {}
    for result in sorted(cell.glob(f"{PREFIX}*/result.json")):
        try:
            report = read_bench(result)
        except OrbitliteError as exc:
            raise NasError(f"{exc}; delete it, or bench the cell again with `orbitlite ground nas bench`") from None
        if report.model.sha256 != sha256_file(cell / MODEL):
            raise NasError(f"{result} is a bench of another model than {cell / MODEL}; bench the cell again")
        out[report.board.name] = report.measured.main.p50_us
    return out


def bench_cells(folders: list[Path], board: str, boards_dir: Path | None, say: Callable[[str], None],
                min_runs: int = 50) -> tuple[int, int]:
    """Bench each cell folder's model on `board` unless a result of that model is there already;
    (benched, kept)."""
    benched = kept = 0
    for i, cell in enumerate(folders, 1):
        out = bench_folder(cell, board)
        if _current(out / "result.json", cell / MODEL):
            kept += 1
            continue
        argv = [sys.executable, "-m", "orbitlite", "hil", "bench", "--board", board,
                *(["--boards-dir", str(boards_dir)] if boards_dir else []), "--model", str(cell / MODEL),
                "--out", str(out), "--batch", "1", "--batches", "1", "--threads", "1", "--min-runs", str(min_runs),
                "--min-seconds", "0"]
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1].removeprefix("Error: ")
            raise NasError(f"`hil bench` of cell {cell.name} on {board} failed: {last}")
        benched += 1
        say(f"{cell.name}: {latencies(cell)} ({i} of {len(folders)})")
    return benched, kept


def _current(result: Path, model: Path) -> bool:
    try:
        return read_bench(result).model.sha256 == sha256_file(model)
    except (OrbitliteError, OSError):
        return False

