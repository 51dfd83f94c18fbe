"""`orbitlite onboard serve`: a spool of real Sentinel-2 scenes run into the store; failed scenes
set aside; telemetry; SIGKILL at random points and SIGTERM, each followed by a restart that must
end with the products of an uninterrupted run, no scene run twice."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import tifffile

from onboard.contracts.product import Product, decode_product
from onboard.errors import StoreError
from onboard.inference.model import load_model
from onboard.inference.screening import Screening
from onboard.run.plan import Plan
from onboard.run.strips import classify_scene
from onboard.scenes.npy import ArrayFileRaster
from onboard.scenes.scene import Scene
from onboard.service.config import load_config
from onboard.service.loop import Service
from onboard.service.telemetry import Telemetry
from onboard.store.store import SceneState, Store, StoreConfig
from tests.conftest import SPYNDEX_BANDS, assert_one_line_error, orbitlite

BANDS = SPYNDEX_BANDS.split(",")
ORBITLITE = Path(sys.executable).with_name("orbitlite")
FIELDS = {f.name for f in fields(Telemetry)}
EPOCH = 1.8e9  # an injected clock's start, 2027-01-15


def spool_scene(spool: Path, name: str, data: np.ndarray, mtime: float) -> Path:
    """Put a scene into the spool as a producer must: written under a .part name, then renamed."""
    part = spool / f"{name}.part"
    with open(part, "wb") as f:  # a file object, or numpy.save would append .npy to the name
        np.save(f, data)
    os.utime(part, (mtime, mtime))
    final = spool / name
    part.rename(final)
    return final


def variants(real: np.ndarray, n: int, reps: int = 1) -> list[np.ndarray]:
    """`n` different scenes of the real pixels: the patch repeated `reps` x `reps` (mirrored so it
    stays continuous), rolled differently, some with a thick-cloud patch or a no-data margin so the
    products have skipped tiles too."""
    tile = np.concatenate([real, real[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[:, :, ::-1]], axis=2)
    big = np.tile(tile, (1, reps, reps))[:, :300 * reps, :300 * reps]
    out = []
    for i in range(n):
        scene = np.roll(big, 37 * i, axis=2 - i % 2).copy()
        if i % 3 == 1:
            scene[:, 32:96, 64:160] = 6500  # thick cloud
        if i % 3 == 2:
            scene[:, -40:, :] = 0  # no data
        out.append(scene)
    return out


def write_config(tmp: Path, model: Path, **overrides) -> Path:
    body = {
        "spool": "spool", "bands": BANDS, "board": "rpi-4b",
        "models": {"ladder": [str(model)], "batch": 16},
        "store": {"path": "store.db", "capacity_bytes": 10_000_000},
        "budget": {"deadline_seconds": 600, "reserve": 0.1},
        "screening": {"nodata_value": 0, "cloud": True},
        "priority": 2, "poll_seconds": 0.05, "telemetry": "telemetry.jsonl",
    }
    body.update(overrides)
    (tmp / "spool").mkdir(exist_ok=True)
    path = tmp / "serve.json"
    path.write_text(json.dumps(body))
    return path


def telemetry(path: Path) -> list[dict]:
    """The complete lines of the telemetry log (a writer may be half-way through the last one)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def stored_products(store_path: Path) -> dict[str, Product]:
    with Store(store_path, StoreConfig(capacity_bytes=1 << 30), clock=time.time) as store:
        queued = store.next_for_downlink(100)
        products = {q.scene_id: decode_product(store.read_product(q.product_id)) for q in queued}
        assert store.telemetry()["products_stored"] == len(products), "a scene was finished twice"
    return products


def assert_same_products(got: dict[str, Product], want: dict[str, Product]) -> None:
    assert sorted(got) == sorted(want)
    for scene_id, p in want.items():
        np.testing.assert_array_equal(got[scene_id].class_map, p.class_map, err_msg=scene_id)
        np.testing.assert_array_equal(got[scene_id].confidence, p.confidence, err_msg=scene_id)
        assert got[scene_id].skipped == p.skipped, scene_id
        if p.skip_map is None:
            assert got[scene_id].skip_map is None
        else:
            np.testing.assert_array_equal(got[scene_id].skip_map, p.skip_map, err_msg=scene_id)


@contextlib.contextmanager
def serving(config: Path, tmp: Path) -> Iterator[subprocess.Popen]:
    """`orbitlite onboard serve CONFIG` in the background (its stderr in tmp/stderr.txt), killed
    should the test end before it does."""
    with open(tmp / "stderr.txt", "ab") as stderr:
        service = subprocess.Popen([str(ORBITLITE), "onboard", "serve", str(config)], stdout=subprocess.DEVNULL,
                                   stderr=stderr)
    try:
        yield service
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()


def strip_lines(log: Path) -> int:
    """How many strip lines the log holds (counted in the text: this runs every few ms)."""
    text = log.read_text() if log.exists() else ""
    return text[:text.rfind("\n") + 1].count('"event":"strip"')


def wait_for(predicate, what: str, service: subprocess.Popen, tmp: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert service.poll() is None, f"the service ended ({service.returncode}) before {what}: " \
                                       f"{(tmp / 'stderr.txt').read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


@pytest.fixture(scope="module")
def model(ground_models) -> Path:
    return ground_models["tflite"]


# -- one pass over the spool ----------------------------------------------------------------------


def test_once_runs_the_spool_into_products_and_sets_failed_scenes_aside(model, spyndex_scene, tmp_path):
    config = write_config(tmp_path, model)
    spool = tmp_path / "spool"
    scenes = dict(zip(["a.npy", "b.npy", "c.npy", "d.tif"], variants(spyndex_scene, 4)))  # plain, cloud, no-data, plain
    # Oldest first: c, then a and b (same time, so by name), d; the NaN scene last.
    for name, when in [("c.npy", 1000), ("a.npy", 2000), ("b.npy", 2000)]:
        spool_scene(spool, name, scenes[name], when)
    tifffile.imwrite(spool / "d.tif.part", scenes["d.tif"], photometric="minisblack", planarconfig="separate")
    os.utime(spool / "d.tif.part", (2500, 2500))
    (spool / "d.tif.part").rename(spool / "d.tif")
    nan = spyndex_scene.astype(np.float32)
    nan[:, 150:160, 40:50] = np.nan
    spool_scene(spool, "nan.npy", nan, 3000)
    (spool / "late.npy.part").write_bytes(b"half a scene")  # still being written: not a scene yet

    result = orbitlite("onboard", "serve", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (spool / "done").iterdir()) == ["a.npy", "b.npy", "c.npy", "d.tif"]
    assert sorted(p.name for p in (spool / "failed").iterdir()) == ["nan.npy", "nan.npy.reason"]
    reason = (spool / "failed" / "nan.npy.reason").read_text()
    assert reason.count("\n") == 1 and "NaN" in reason and "nan" in reason
    assert sorted(p.name for p in spool.iterdir()) == ["done", "failed", "late.npy.part"]
    assert "nan.npy: failed:" in result.stdout and "b.npy: 94 of 100 tiles classified" in result.stdout

    products = stored_products(tmp_path / "store.db")
    model_ = load_model(model, batch=16)
    for name, data in scenes.items():
        scene_id = Path(name).stem
        alone = classify_scene(Scene(scene_id, data, tuple(BANDS)), Plan([model_], screening=Screening()),
                               clock=lambda: 0.0)
        assert_same_products({scene_id: products[scene_id]}, {scene_id: alone})
    assert {s["reason"] for s in products["b"].skipped} == {"cloud"}
    assert {s["reason"] for s in products["c"].skipped} == {"no-data"}

    lines = telemetry(tmp_path / "telemetry.jsonl")
    assert all(set(line) == FIELDS for line in lines)
    assert lines[0]["event"] == "poll" and lines[0]["spool_depth"] == 5
    assert [(x["event"], x["scene"]) for x in lines if x["event"] in ("scene", "failed")] == [
        ("scene", "c"), ("scene", "a"), ("scene", "b"), ("scene", "d"), ("failed", "nan")]
    strips = [x for x in lines if x["event"] == "strip" and x["scene"] == "a"]
    assert [x["tiles_done"] for x in strips] == list(range(10, 101, 10))
    assert all(x["tiles_total"] == 100 and x["tiles_per_s"] > 0 and x["spool_depth"] == 3 for x in strips)
    assert all(x["budget_left"]["wall_seconds"] <= 600 for x in strips)
    last = lines[-1]
    assert last["event"] == "failed" and last["store"]["queue_depth"] == 4 and last["store"]["products_stored"] == 4
    assert all(isinstance(x["rss_bytes"], int) and x["rss_bytes"] > 10 << 20 for x in lines)
    thermal = list(Path("/sys/class/thermal").glob("thermal_zone*/temp"))
    assert all((x["cpu_temp_c"] is None) == (not thermal) for x in lines)
    assert all(datetime.fromisoformat(x["time"]).tzinfo == timezone.utc for x in lines)

    # Nothing new: a second pass does nothing but look.
    again = orbitlite("onboard", "serve", str(config), "--once")
    assert again.returncode == 0 and again.stdout == "", again.stderr
    assert [x["event"] for x in telemetry(tmp_path / "telemetry.jsonl")[len(lines):]] == ["poll"]
    # A finished scene found in the spool again (as after a kill between storing its product and
    # moving it) is not run again.
    os.replace(spool / "done" / "a.npy", spool / "a.npy")
    third = orbitlite("onboard", "serve", str(config), "--once")
    assert third.returncode == 0 and "a.npy: its product 2 is already stored" in third.stdout, third.stderr
    assert [x["event"] for x in telemetry(tmp_path / "telemetry.jsonl")[len(lines) + 1:]] == ["poll", "finished-before"]
    assert (spool / "done" / "a.npy").exists() and len(stored_products(tmp_path / "store.db")) == 4


@pytest.mark.parametrize("change, fragments", [
    ({"store": None}, ["store: Expected `object`, got `null`"]),
    ({"board": "rpi-9"}, ["board is 'rpi-9'", "rpi-4b"]),
    ({"budget": {"reserve": 1.5}}, ["budget.reserve: Expected `float` < 1.0"]),
    ({"budget": {"deadline": 60}}, ["budget.deadline: unknown key", "deadline_seconds"]),
    ({"screening": {"max_cloud": 2}}, ["screening.max_cloud: Expected `float` <= 1.0"]),
    ({"models": {"ladder": ["missing.tflite"]}}, ["models.ladder[0]", "missing.tflite not found"]),
    ({"bands": ["B02", "B03", "B04"]}, ["bands lacks B08"]),
    ({"poll_seconds": "often"}, ["poll_seconds: Expected `float`, got `str`"]),
    # NaN started a service that spun a core writing 5.2 MB/s of telemetry; 1e-300 would too
    ({"poll_seconds": float("nan")}, ["JSON is malformed"]),
    ({"poll_seconds": 1e-300}, ["poll_seconds: Expected `float` >= 0.05"]),
    ({"poll_seconds": 1e300}, ["poll_seconds: Expected `float` <= 86400.0"]),
    ({"budget": {"deadline_seconds": 1e300}}, ["budget.deadline_seconds: Expected `float` <= 604800.0"]),
    ({"screening": {"reflectance_per_dn": 1e300}}, ["screening.reflectance_per_dn: Expected `float` <= 1.0"]),
    ({"spool": "nowhere"}, ["spool is", "not a directory"]),
])
def test_a_bad_config_is_one_line_naming_the_field(model, tmp_path, change, fragments):
    config = write_config(tmp_path, model, **change)
    result = orbitlite("onboard", "serve", str(config), "--once")
    assert result.returncode == 1
    assert_one_line_error(result, str(config), *fragments)


def test_not_json_is_one_line(tmp_path):
    (tmp_path / "serve.json").write_text("{spool: spool")
    assert_one_line_error(orbitlite("onboard", "serve", str(tmp_path / "serve.json")), "JSON is malformed")


# -- the loop, driven by an injected clock and sleep -----------------------------------------------


def test_the_loop_polls_picks_up_new_scenes_and_reports_host_health(model, spyndex_scene, tmp_path):
    config = load_config(write_config(tmp_path, model, poll_seconds=30, priority=5))
    host = tmp_path / "host"
    (host / "proc/self").mkdir(parents=True)
    (host / "proc/self/status").write_text("Name:\tpython\nVmPeak:\t 99999 kB\nVmRSS:\t   12345 kB\n")
    for zone, kind, temp in [("thermal_zone0", "gpu-thermal", "61000"), ("thermal_zone1", "cpu-thermal", "48312")]:
        (host / "sys/class/thermal" / zone).mkdir(parents=True)
        (host / "sys/class/thermal" / zone / "type").write_text(kind + "\n")
        (host / "sys/class/thermal" / zone / "temp").write_text(temp + "\n")
    now = [EPOCH]
    slept = []
    first, second = variants(spyndex_scene, 2)

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        if len(slept) == 1:  # a scene lands while the service waits
            spool_scene(config.spool, "new.npy", second, 10)
        if len(slept) == 2:
            service.stop()

    spool_scene(config.spool, "old.npy", first, 5)
    with Service(config, clock=lambda: now[0], sleep=sleep, host_root=host) as service:
        summary = service.run()
    assert slept == [30, 30] and summary.done == ["old.npy", "new.npy"] and summary.stopped is None
    lines = telemetry(config.telemetry)
    assert [x["event"] for x in lines if x["event"] != "strip"] == ["poll", "scene", "poll", "poll", "scene", "poll",
                                                                     "stopped"]
    assert lines[0]["time"] == datetime.fromtimestamp(EPOCH, timezone.utc).isoformat(timespec="milliseconds")
    assert lines[-1]["time"] == datetime.fromtimestamp(EPOCH + 60, timezone.utc).isoformat(timespec="milliseconds")
    assert all(x["rss_bytes"] == 12345 * 1024 and x["cpu_temp_c"] == 48.3 for x in lines)
    assert [x["spool_depth"] for x in lines if x["event"] == "poll"] == [1, 0, 1, 0]
    products = stored_products(config.store_path)
    assert sorted(products) == ["new", "old"]
    assert products["new"].created == datetime.fromtimestamp(EPOCH + 30, timezone.utc).isoformat(timespec="seconds")
    with Store(config.store_path, config.store, clock=time.time) as store:
        assert {q.priority for q in store.next_for_downlink(5)} == {5}


def test_a_refused_product_waits_in_the_spool_and_a_foreign_journal_fails(model, spyndex_scene, tmp_path):
    config_path = write_config(tmp_path, model, store={"path": "store.db", "capacity_bytes": 100})
    config = load_config(config_path)
    spool_scene(config.spool, "big.npy", variants(spyndex_scene, 1)[0], 5)
    spool_scene(config.spool, "theirs.npy", spyndex_scene, 6)
    with Store(config.store_path, config.store, clock=time.time) as store:
        store.begin_scene("theirs", "p", 64, {})  # the same model, another tile grid: another file
    with Service(config) as service:
        summary = service.run(once=True)
    assert summary.refused == ["big.npy"] and summary.failed == ["theirs.npy"]
    assert (config.spool / "big.npy").exists()
    assert "journaled with 64 tiles, not 100" in (config.spool / "failed/theirs.npy.reason").read_text()
    refused = [x for x in telemetry(config.telemetry) if x["event"] == "refused"]
    assert len(refused) == 1 and "refused" in refused[0]["reason"] and refused[0]["store"]["products_refused"] == 1

    # With room in the store, the next pass stores the product from the journal, running nothing.
    config_path.write_text(config_path.read_text().replace('"capacity_bytes": 100', '"capacity_bytes": 100000'))
    with Service(load_config(config_path)) as service:
        assert service.run(once=True).done == ["big.npy"]
    product = stored_products(config.store_path)["big"]
    assert product.runtime["resumed_at"] == 100 and product.runtime["tiles"] == 0


def test_a_scene_begun_with_other_models_starts_again_with_these(model, spyndex_scene, tmp_path):
    config = load_config(write_config(tmp_path, model))
    spool_scene(config.spool, "again.npy", spyndex_scene, 1)
    with Store(config.store_path, config.store, clock=time.time) as store:
        store.begin_scene("again", "the-old-slot", 100, {})
        store.commit_tiles("again", "the-old-slot", 0, np.ones(30, np.uint8), np.full(30, 200, np.uint8))
    lines = []
    with Service(config, report=lines.append) as service:
        assert service.run(once=True).done == ["again.npy"]
    assert "again.npy: begun with the-old-slot; its 30 committed tiles are dropped and it starts again with p" in lines
    product = stored_products(config.store_path)["again"]
    assert product.model_id == "p" and product.runtime["resumed_at"] == 0 and product.runtime["tiles"] == 100


def test_an_unforeseen_fault_reading_a_scene_fails_that_scene_alone(model, spyndex_scene, tmp_path, monkeypatch):
    """A reader's exception of a type it does not foresee (made to happen here: a bug that a hostile
    file trips), opening a scene or halfway through its strips, fails that scene alone, named with
    its type in the reason; the scene behind it runs."""
    config = load_config(write_config(tmp_path, model))
    for i, name in enumerate(["at-open.npy", "halfway.npy", "good.npy"]):
        spool_scene(config.spool, name, spyndex_scene, i)
    from_npy, read_strip = ArrayFileRaster.from_npy, ArrayFileRaster.read_strip

    def opening(cls, path, bands):
        return 1 // 0 if path.name == "at-open.npy" else from_npy(path, bands)

    def reading(self, band_index, row0, out):
        if self.path.name == "halfway.npy" and row0 >= 150:
            raise IndexError("index 7 is out of bounds for axis 0 with size 4")
        return read_strip(self, band_index, row0, out)

    monkeypatch.setattr(ArrayFileRaster, "from_npy", classmethod(opening))
    monkeypatch.setattr(ArrayFileRaster, "read_strip", reading)
    with Service(config) as service:
        summary = service.run(once=True)
    assert summary.failed == ["at-open.npy", "halfway.npy"] and summary.done == ["good.npy"]
    failed = config.spool / "failed"
    assert (failed / "at-open.npy.reason").read_text() == (
        f"scene {config.spool / 'at-open.npy'} cannot be read (ZeroDivisionError: integer division or modulo by "
        f"zero): the file is corrupt or of a kind the readers do not know; check it on the ground\n")
    assert "cannot be read (IndexError: index 7 is out of bounds for axis 0 with size 4)" in (
        failed / "halfway.npy.reason").read_text()
    assert sorted(stored_products(config.store_path)) == ["good"]


def test_a_failing_store_stops_the_service_and_leaves_the_scene_in_the_spool(model, spyndex_scene, tmp_path,
                                                                               monkeypatch):
    """The store failing is no fault of the scene's: the service stops, the scene waits for the next start."""
    config = load_config(write_config(tmp_path, model))
    spool_scene(config.spool, "a.npy", spyndex_scene, 1)

    def commit_tiles(*args):
        raise StoreError("the store cannot write (disk I/O error)")

    with Service(config) as service:
        monkeypatch.setattr(service.store, "commit_tiles", commit_tiles)
        with pytest.raises(StoreError, match="disk I/O error"):
            service.run(once=True)
    assert (config.spool / "a.npy").exists()
    assert not any((config.spool / "failed").iterdir()) and not any((config.spool / "done").iterdir())


# -- kills and stops -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flight(model, spyndex_scene, tmp_path_factory):
    """Six 900 x 900 px scenes (841 tiles each) and their products from an uninterrupted run."""
    scenes = {f"s{i}.npy": data for i, data in enumerate(variants(spyndex_scene, 6, reps=3))}
    reference = tmp_path_factory.mktemp("reference")
    config = load_config(write_config(reference, model))
    for i, (name, data) in enumerate(scenes.items()):
        spool_scene(config.spool, name, data, 100 + i)
    with Service(config) as service:
        assert len(service.run(once=True).done) == 6
    return scenes, stored_products(config.store_path)


def fill_spool(tmp: Path, model: Path, scenes: dict[str, np.ndarray]) -> Path:
    config = write_config(tmp, model)
    for i, (name, data) in enumerate(scenes.items()):
        spool_scene(tmp / "spool", name, data, 100 + i)
    return config


def test_sigkill_at_random_points_then_restart_gives_the_uninterrupted_products(model, flight, tmp_path):
    scenes, want = flight
    config = fill_spool(tmp_path, model, scenes)
    log = tmp_path / "telemetry.jsonl"
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    lives = []  # the telemetry lines of each life of the service
    for _ in range(3):
        before, strips_before = len(telemetry(log)), strip_lines(log)
        strips = rng.randint(1, 20)
        with serving(config, tmp_path) as service:
            wait_for(lambda: strip_lines(log) >= strips_before + strips, f"{strips} strips (seed {seed})",
                     service, tmp_path)
            time.sleep(rng.uniform(0, 0.01))
            service.kill()
            assert service.wait(30) == -signal.SIGKILL
        lives.append(telemetry(log)[before:])
    before = len(telemetry(log))
    final = orbitlite("onboard", "serve", str(config), "--once")
    assert final.returncode == 0, final.stderr
    lives.append(telemetry(log)[before:])

    got = stored_products(tmp_path / "store.db")
    assert_same_products(got, want)
    assert sorted(p.name for p in (tmp_path / "spool" / "done").iterdir()) == sorted(scenes)
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()
    # Each scene's progress only goes forward across kills: a restart resumes, never starts over.
    progress: dict[str, int] = {}
    finished: set[str] = set()
    for life in lives:
        for x in life:
            if x["event"] == "strip":
                assert x["scene"] not in finished, f"{x['scene']} ran again after it finished (seed {seed})"
                assert x["tiles_done"] > progress.get(x["scene"], 0), f"{x} went back (seed {seed})"
                progress[x["scene"]] = x["tiles_done"]
            if x["event"] in ("scene", "finished-before"):
                assert x["scene"] not in finished, f"{x['scene']} finished twice (seed {seed})"
                finished.add(x["scene"])
    # A scene finished by a later life took up the journal where the killed lives had got to.
    interrupted = 0
    for n, life in enumerate(lives):
        for scene_id in (x["scene"] for x in life if x["event"] == "scene"):
            earlier = [x["tiles_done"] for before in lives[:n] for x in before
                       if x["scene"] == scene_id and x["event"] == "strip"]
            assert got[scene_id].runtime["resumed_at"] >= max(earlier, default=0), (scene_id, seed)
            interrupted += bool(earlier)
    assert interrupted, f"no kill landed inside a scene (seed {seed})"


def test_sigterm_stops_between_strips_and_exits_0(model, flight, tmp_path):
    scenes, want = flight
    config = fill_spool(tmp_path, model, scenes)
    log = tmp_path / "telemetry.jsonl"
    with serving(config, tmp_path) as service:
        wait_for(lambda: strip_lines(log) >= 3, "3 strips", service, tmp_path)
        service.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        assert service.wait(10) == 0
        assert time.monotonic() - asked < 2, "it did not stop promptly"
    stopped = telemetry(log)[-1]
    assert stopped["event"] == "stopped" and stopped["scene"] is not None, stopped
    assert stopped["tiles_done"] % 29 == 0  # a whole strip of 29 tiles
    raw = sqlite3.connect(tmp_path / "store.db")
    assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    raw.close()
    with Store(tmp_path / "store.db", StoreConfig(capacity_bytes=1 << 30), clock=time.time) as store:
        record = store.scene(stopped["scene"])
        assert record.state is SceneState.OPEN and record.next_tile == stopped["tiles_done"]
        assert store.telemetry()["scenes_in_progress"] == 1
    assert (tmp_path / "spool" / f"{stopped['scene']}.npy").exists()

    final = orbitlite("onboard", "serve", str(config), "--once")
    assert final.returncode == 0, final.stderr
    got = stored_products(tmp_path / "store.db")
    assert_same_products(got, want)
    assert got[stopped["scene"]].runtime["resumed_at"] == stopped["tiles_done"]


def test_sigterm_while_waiting_for_scenes_exits_0_at_once(model, tmp_path):
    config = write_config(tmp_path, model, poll_seconds=600)
    with serving(config, tmp_path) as service:
        wait_for(lambda: telemetry(tmp_path / "telemetry.jsonl"), "the first poll", service, tmp_path)
        time.sleep(0.1)  # into the wait between polls
        service.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        assert service.wait(10) == 0 and time.monotonic() - asked < 2
    assert [x["event"] for x in telemetry(tmp_path / "telemetry.jsonl")] == ["poll", "stopped"]
