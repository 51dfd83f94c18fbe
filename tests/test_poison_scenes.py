"""Poison scenes, as a hostile tester made them, through the real CLI: `orbitlite onboard run`
refuses each in one line, and `orbitlite onboard serve --once` sets each aside in failed/ with a
one-line reason and runs the good scene behind them into the store (before, an ImageWidth of 0
stopped `serve` on every restart, and a chain of pages looping back hung both commands). Every
command runs under a timeout, so a hang fails the test."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from onboard.scenes.geotiff import MAX_PAGES
from onboard.store.store import Store, StoreConfig
from tests.conftest import SPYNDEX_BANDS, _is_runtime_noise, assert_one_line_error
from tests.test_fuzz_scenes import HEADER, chained, entry, ifds, npy_bytes, patched, spanning

ORBITLITE = Path(sys.executable).with_name("orbitlite")
TIMEOUT = 120  # seconds: far above what any of these takes; a hang fails the test
CORRUPT = "the file is corrupt, copy it again or re-export it"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ORBITLITE), *args], capture_output=True, text=True, timeout=TIMEOUT)


def tiff(data: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, photometric="minisblack", planarconfig="separate", **options)
    return buffer.getvalue()


def bad_tile(data: np.ndarray) -> bytes:
    """A tiled, deflate-compressed GeoTIFF whose tiles all check out at open, but one of the last
    row of tiles of its first band does not inflate: the scene fails halfway through its strips."""
    good = tiff(data, tile=(32, 32), compression="zlib")
    with tifffile.TiffFile(io.BytesIO(good)) as tif:
        offsets, counts = tif.pages[0].dataoffsets, tif.pages[0].databytecounts
    last = -(-data.shape[1] // 32) * -(-data.shape[2] // 32) - 1  # band 0's last tile
    out = bytearray(good)
    out[offsets[last]:offsets[last] + counts[last]] = b"\xff" * counts[last]
    return bytes(out)


def poison(scene: np.ndarray) -> dict[str, tuple[bytes, str]]:
    """Scene files made from `scene` (band, row, col), each with the start of the line it is refused in."""
    seed = tiff(scene)
    (first, n), = ifds(seed)
    npy = io.BytesIO()
    np.save(npy, scene)
    return {
        "width0.tif": (patched(seed, entry(seed, 256) + 8, "I", 0), "page 0 is 300 x 0 px of 4 band(s)"),
        "loops.tif": (patched(seed, first + 2 + 12 * n, "I", first),
                      "its chain of pages loops (page 0 points back to page 0)"),
        "loops-late.tif": (chained(seed, 150, 120), "its chain of pages loops (page 150 points back to page 121)"),
        "pages.tif": (chained(seed, MAX_PAGES, None), f"holds more than the {MAX_PAGES:,} pages a scene may have"),
        "spans.tif": (spanning(seed, 600), "hold more than 64 MiB"),  # each page's tags claim one span
        # the header cut inside its shape, its length field saying so: numpy's parser raised tokenize.TokenError
        "cut-header.npy": (npy_bytes(HEADER[:HEADER.index("(") + 3]), "is not a readable .npy file"),
        "cut-body.npy": (npy.getvalue()[:len(npy.getvalue()) // 2], "is truncated: 360064 bytes"),
        "bad-tile.tif": (bad_tile(scene), "segment 99 does not decode"),
    }


@pytest.fixture(scope="module")
def model(ground_models) -> Path:
    return ground_models["tflite"]


@pytest.mark.parametrize("name", list(poison(np.zeros((4, 300, 300), np.uint16))))
def test_run_refuses_a_poison_scene_in_one_line(model, spyndex_scene, tmp_path, name):
    data, why = poison(spyndex_scene)[name]
    (tmp_path / name).write_bytes(data)
    result = run("onboard", "run", str(tmp_path / name), "--bands", SPYNDEX_BANDS, "--model", str(model),
                 "--out", str(tmp_path / "out"))
    line = assert_one_line_error(result, f"scene {tmp_path / name}", why)
    assert line.startswith("Error: scene") and "Traceback" not in result.stdout
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("option, value, why", [
    ("--stride", "100000", "a stride of 100000 px does not fit p's"),
    ("--stride", "33", "give 1 to 32 px"),
])
def test_run_refuses_a_stride_past_the_tile_in_one_line(model, tmp_path, option, value, why):
    np.save(tmp_path / "s.npy", np.zeros((4, 64, 64), np.uint16))
    result = run("onboard", "run", str(tmp_path / "s.npy"), "--bands", SPYNDEX_BANDS, "--model", str(model),
                 "--out", str(tmp_path / "out"), option, value)
    assert_one_line_error(result, why)


@pytest.mark.parametrize("option, value, why", [
    ("--cpu-seconds", "nan", "'nan' is not a finite number"),
    ("--cpu-seconds", "inf", "inf is not in the range 0<x<=604800"),
    ("--deadline-seconds", "1e308", "1e+308 is not in the range 0<x<=604800"),
    ("--max-cloud", "nan", "'nan' is not a finite number"),
    ("--nodata-value", "-inf", "'-inf' is not a finite number"),
])
def test_run_refuses_a_number_out_of_range_as_a_usage_error(tmp_path, option, value, why):
    """Before, inf and huge budgets ended in OverflowError and NaN in ValueError, halfway through the scene."""
    np.save(tmp_path / "s.npy", np.zeros((4, 64, 64), np.uint16))
    result = run("onboard", "run", str(tmp_path / "s.npy"), "--bands", SPYNDEX_BANDS, "--model", "m.tflite",
                 "--out", str(tmp_path / "out"), "--screen", option, value)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"Error: Invalid value for '{option}': ") and why in last, result.stderr


def test_serve_sets_poison_scenes_aside_and_runs_the_good_one_behind_them(model, spyndex_scene, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    scenes = poison(spyndex_scene)
    for i, (name, (data, _)) in enumerate(scenes.items()):  # oldest first: every poison scene before the good one
        (spool / name).write_bytes(data)
        os.utime(spool / name, (1000 + i, 1000 + i))
    np.save(spool / "good.npy", spyndex_scene)
    os.utime(spool / "good.npy", (2000, 2000))
    config = tmp_path / "serve.json"
    config.write_text(json.dumps({
        "spool": "spool", "bands": SPYNDEX_BANDS.split(","), "board": "rpi-4b", "models": {"ladder": [str(model)]},
        "store": {"path": "store.db", "capacity_bytes": 10_000_000}, "telemetry": "telemetry.jsonl",
        "poll_seconds": 0.05}))

    result = run("onboard", "serve", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if not _is_runtime_noise(line)] == []  # no tifffile log
    assert sorted(p.name for p in (spool / "done").iterdir()) == ["good.npy"]
    assert sorted(p.name for p in (spool / "failed").iterdir()) == sorted(
        [*scenes, *(name + ".reason" for name in scenes)])
    for name, (data, why) in scenes.items():
        reason = (spool / "failed" / (name + ".reason")).read_text()
        assert reason.count("\n") == 1 and reason.endswith("\n") and why in reason, (name, reason)
        assert reason.startswith(f"scene {spool / name}")
        assert (spool / "failed" / name).read_bytes() == data  # set aside as it came
        assert f"{name}: failed: {reason.strip()} -> failed/" in result.stdout
    assert CORRUPT in (spool / "failed" / "loops-late.tif.reason").read_text()
    assert "good.npy: 100 of 100 tiles classified, product 1 stored -> done/" in result.stdout

    with Store(tmp_path / "store.db", StoreConfig(capacity_bytes=1 << 30), clock=time.time) as store:
        assert [q.scene_id for q in store.next_for_downlink(10)] == ["good"]
    events = [json.loads(line) for line in (tmp_path / "telemetry.jsonl").read_text().splitlines()]
    failed = [(e["scene"], e["reason"]) for e in events if e["event"] == "failed"]
    assert [scene for scene, _ in failed] == [Path(name).stem for name in scenes]
    strips = [e["tiles_done"] for e in events if e["event"] == "strip" and e["scene"] == "bad-tile"]
    assert strips and max(strips) < 100  # it failed halfway through, after strips that read

    # The next start finds nothing left to do.
    again = run("onboard", "serve", str(config), "--once")
    assert again.returncode == 0 and again.stdout == "", again.stderr
