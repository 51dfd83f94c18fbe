"""The on-board store: the progress journal, the downlink queue and its quotas, integrity checks,
crash safety under SIGKILL, and a full disk."""

from __future__ import annotations

import dataclasses
import multiprocessing
import random
import signal
import sqlite3
import subprocess
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from onboard.contracts.product import NODATA, Product
from onboard.contracts.tiling import TileGrid
from onboard.errors import QuotaError, StoreError
from onboard.store.store import SceneState, SkippedRun, Store, StoreConfig

BIG = StoreConfig(capacity_bytes=1 << 30)


class Clock:
    """A clock the test sets by hand."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def u8(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint8)


def finished(store: Store, scene_id: str, payload: bytes, priority: int = 1, model_id: str = "m") -> int:
    """A one-tile scene journaled (or resumed), committed and finished with `payload` as its product."""
    if store.begin_scene(scene_id, model_id, 1, {}) == 0:
        store.commit_skipped(scene_id, model_id, 0, 1, "no data")
    return store.finish_scene(scene_id, model_id, payload, priority)


def queued_ids(store: Store, n: int = 100) -> list[int]:
    return [q.product_id for q in store.next_for_downlink(n)]


def one_line(exc: pytest.ExceptionInfo, *fragments: str) -> None:
    """The error is one line and names all of `fragments` (the input, the cause, the way out)."""
    message = str(exc.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


# -- the journal -------------------------------------------------------------------------------


def test_a_scene_resumes_from_its_last_committed_run(tmp_path):
    path = tmp_path / "store.db"
    with Store(path, BIG, clock=Clock()) as store:
        assert store.begin_scene("S1", "m", 10, {"orbit": 7}) == 0
        assert store.commit_tiles("S1", "m", 0, u8(1, 2, 3), u8(200, 201, 202)) == 3
        assert store.commit_skipped("S1", "m", 3, 1, "cloud") == 4
        assert store.commit_skipped("S1", "m", 4, 1, "cloud") == 5
    with Store(path, BIG, clock=Clock()) as store:
        assert store.begin_scene("S1", "m", 10, {"orbit": 8}) == 5
        assert store.scene("S1").meta == {"orbit": 7}  # the first run's meta is the scene's
        assert store.commit_tiles("S1", "m", 5, u8(4, 4, 4), u8(9, 9, 9)) == 8
        assert store.commit_skipped("S1", "m", 8, 2, "deadline") == 10
        classes, confidence = store.tile_results("S1", "m")
        skipped = store.skipped("S1", "m")
    assert classes.tolist() == [1, 2, 3, NODATA, NODATA, 4, 4, 4, NODATA, NODATA]
    assert confidence.tolist() == [200, 201, 202, NODATA, NODATA, 9, 9, 9, NODATA, NODATA]
    assert skipped == [SkippedRun(3, 2, "cloud"), SkippedRun(8, 2, "deadline")]


def test_gaps_overlaps_and_overruns_are_refused_and_change_nothing(tmp_path):
    with Store(tmp_path / "store.db", BIG, clock=Clock()) as store:
        with pytest.raises(StoreError) as exc:
            store.commit_tiles("S1", "m", 0, u8(1), u8(1))
        one_line(exc, "S1", "begin_scene")
        store.begin_scene("S1", "m", 6, {})
        store.commit_tiles("S1", "m", 0, u8(1, 2, 3), u8(5, 5, 5))
        with pytest.raises(StoreError) as exc:
            store.commit_tiles("S1", "m", 4, u8(1), u8(1))
        one_line(exc, "S1", "gap", "resume point 3")
        with pytest.raises(StoreError) as exc:
            store.commit_skipped("S1", "m", 2, 1, "cloud")
        one_line(exc, "S1", "overlap", "resume point 3")
        with pytest.raises(StoreError) as exc:
            store.commit_tiles("S1", "m", 3, u8(1, 1, 1, 1), u8(1, 1, 1, 1))
        one_line(exc, "S1", "past its 6 tiles")
        with pytest.raises(StoreError, match="uint8"):
            store.commit_tiles("S1", "m", 3, np.array([1], dtype=np.int64), u8(1))
        with pytest.raises(StoreError, match="skipped"):
            store.commit_tiles("S1", "m", 3, u8(NODATA), u8(1))
        assert store.begin_scene("S1", "m", 6, {}) == 3
        assert store.tile_results("S1", "m")[0].tolist() == [1, 2, 3]
        assert store.skipped("S1", "m") == []


def test_begin_is_idempotent_and_binds_a_scene_to_its_model_and_grid(tmp_path):
    with Store(tmp_path / "store.db", BIG, clock=Clock()) as store:
        assert store.begin_scene("S1", "m", 4, {}) == 0
        assert store.begin_scene("S1", "m", 4, {}) == 0
        store.commit_tiles("S1", "m", 0, u8(1, 1), u8(2, 2))
        assert store.begin_scene("S1", "m", 4, {}) == 2
        with pytest.raises(StoreError) as exc:
            store.begin_scene("S1", "m2", 4, {})
        one_line(exc, "S1", "model m", "another scene id")
        with pytest.raises(StoreError) as exc:
            store.begin_scene("S1", "m", 5, {})
        one_line(exc, "S1", "4 tiles, not 5")
        with pytest.raises(StoreError, match="model m, not m2"):
            store.commit_tiles("S1", "m2", 2, u8(1), u8(1))
        assert store.scene("S1").next_tile == 2 and store.scene("nope") is None


def test_an_open_scene_restarts_from_nothing_and_a_finished_one_does_not(tmp_path):
    with Store(tmp_path / "store.db", BIG, clock=Clock()) as store:
        store.begin_scene("S1", "old", 10, {})
        store.commit_tiles("S1", "old", 0, u8(1, 2, 3), u8(9, 9, 9))
        assert store.restart_scene("S1") == 3
        assert store.scene("S1") is None
        assert store.begin_scene("S1", "new", 10, {}) == 0
        finished(store, "S2", b"product")
        with pytest.raises(StoreError) as exc:
            store.restart_scene("S2")
        one_line(exc, "S2", "not in progress")


def test_finishing_stores_the_product_once(tmp_path):
    with Store(tmp_path / "store.db", BIG, clock=Clock()) as store:
        store.begin_scene("S1", "m", 2, {})
        store.commit_tiles("S1", "m", 0, u8(1), u8(1))
        with pytest.raises(StoreError) as exc:
            store.finish_scene("S1", "m", b"abc", 1)
        one_line(exc, "S1", "1 of 2 tiles", "commit or skip the rest")
        store.commit_skipped("S1", "m", 1, 1, "cloud")
        product_id = store.finish_scene("S1", "m", b"abc", 1)
        # A restart rebuilds the product (another timestamp, other bytes): the first one stands.
        assert store.finish_scene("S1", "m", b"abcdef", 1) == product_id
        assert store.read_product(product_id) == b"abc"
        assert store.scene("S1").state is SceneState.FINISHED and store.scene("S1").product_id == product_id
        with pytest.raises(StoreError, match="finished"):
            store.commit_skipped("S1", "m", 2, 1, "cloud")
        telemetry = store.telemetry()
    assert (telemetry["products_stored"], telemetry["bytes_stored"], telemetry["queue_depth"]) == (1, 3, 1)


# -- the downlink queue ------------------------------------------------------------------------


def test_downlink_order_is_priority_then_age_then_id(tmp_path):
    clock = Clock()
    with Store(tmp_path / "store.db", BIG, clock=clock) as store:
        ids = {}
        for name, priority, t in [("a", 1, 10), ("b", 2, 20), ("c", 1, 5), ("d", 1, 10), ("e", 0, 1), ("f", 2, 30)]:
            clock.t = t
            ids[name] = finished(store, name, name.encode(), priority)
        assert queued_ids(store) == [ids[n] for n in ("b", "f", "c", "a", "d", "e")]
        assert queued_ids(store, 2) == [ids["b"], ids["f"]]
        first = store.next_for_downlink()[0]
        assert (first.scene_id, first.model_id, first.priority, first.created, first.size) == ("b", "m", 2, 20, 1)


def test_a_product_leaves_only_when_acknowledged_and_a_reboot_offers_it_again(tmp_path):
    path = tmp_path / "store.db"
    with Store(path, BIG, clock=Clock()) as store:
        p1, p2 = finished(store, "a", b"one", 2), finished(store, "b", b"two", 1)
        store.mark_sent(p1)
        assert queued_ids(store) == [p2]
        assert (store.telemetry()["queue_depth"], store.telemetry()["in_flight"]) == (1, 1)
    with Store(path, BIG, clock=Clock()) as store:  # rebooted before the acknowledgement came
        assert queued_ids(store) == [p1, p2]
        assert store.next_for_downlink()[0].sent_count == 1
        store.mark_sent(p1)
        assert store.acknowledge(p1) is True
        assert store.acknowledge(p1) is False  # the ground repeats itself: nothing changes
        assert queued_ids(store) == [p2]
    with Store(path, BIG, clock=Clock()) as store:
        assert queued_ids(store) == [p2]
        assert store.scene("a").state is SceneState.ACKNOWLEDGED
        with pytest.raises(StoreError, match="acknowledged, which released its tile results"):
            store.tile_results("a", "m")
        assert finished(store, "a", b"again", 2) == p1  # a finished scene is never stored twice
        with pytest.raises(StoreError, match=f"no product {p1}"):
            store.read_product(p1)
        with pytest.raises(StoreError, match=f"no product {p1}"):
            store.mark_sent(p1)
        telemetry = store.telemetry()
    assert {k: telemetry[k] for k in ("products_stored", "products_sent", "products_acknowledged")} == \
        {"products_stored": 2, "products_sent": 2, "products_acknowledged": 1}


def test_an_unacknowledged_product_is_offered_again_after_resend_after(tmp_path):
    clock = Clock(100.0)
    with Store(tmp_path / "store.db", StoreConfig(capacity_bytes=1000, resend_after=30.0), clock=clock) as store:
        p1 = finished(store, "a", b"one")
        store.mark_sent(p1)
        clock.t = 129.0
        assert queued_ids(store) == []
        clock.t = 130.0
        assert queued_ids(store) == [p1]


def test_a_corrupted_product_fails_its_checksum_and_can_be_dropped(tmp_path):
    path = tmp_path / "store.db"
    with Store(path, BIG, clock=Clock()) as store:
        bad, good = finished(store, "a", b"product a" * 100, 2), finished(store, "b", b"product b", 1)
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("UPDATE product SET data = ? WHERE id = ?", (b"product A" + b"product a" * 99, bad))
    raw.close()
    with Store(path, BIG, clock=Clock(5.0)) as store:  # the file itself is sound: it opens
        assert store.read_product(good) == b"product b"
        with pytest.raises(StoreError) as exc:
            store.read_product(bad)
        one_line(exc, str(path), f"product {bad}", "scene a", "sha256", "drop it")
        store.drop(bad, "fails its sha256 check")
        assert queued_ids(store) == [good]
        assert [(d.action, d.product_id, d.scene_id, d.reason, d.at) for d in store.drops()] == \
            [("dropped", bad, "a", "fails its sha256 check", 5.0)]
        with pytest.raises(StoreError, match="no product"):
            store.drop(bad, "again")


# -- quotas ------------------------------------------------------------------------------------


def test_drop_policy_evicts_lowest_priority_then_oldest_and_never_a_higher_priority(tmp_path):
    clock = Clock()
    config = StoreConfig(capacity_bytes=300, policy="drop-lowest-priority-oldest")
    with Store(tmp_path / "store.db", config, clock=clock) as store:
        ids = {}
        for name, priority in [("a", 1), ("b", 0), ("c", 2)]:
            clock.t += 1
            ids[name] = finished(store, name, bytes(100), priority)
        clock.t += 1
        ids["d"] = finished(store, "d", bytes(100), 1)  # full: b goes, the lowest priority
        clock.t += 1
        ids["e"] = finished(store, "e", bytes(100), 1)  # a goes: priority 1 like d, and older
        clock.t += 1
        with pytest.raises(QuotaError) as exc:  # every product left outranks priority 0
            finished(store, "f", bytes(100), 0)
        one_line(exc, "scene f", "refused", "priority 0")
        assert sorted(queued_ids(store)) == sorted([ids["c"], ids["d"], ids["e"]])
        clock.t += 1
        ids["g"] = finished(store, "g", bytes(250), 2)  # d, e (priority 1), then c (2, equal)
        clock.t += 1
        with pytest.raises(QuotaError):  # only g, of priority 2, could make room
            finished(store, "h", bytes(100), 1)
        assert queued_ids(store) == [ids["g"]]
        assert [(d.action, d.product_id, d.scene_id, d.priority) for d in store.drops()] == [
            ("dropped", ids["b"], "b", 0), ("dropped", ids["a"], "a", 1), ("refused", None, "f", 0),
            ("dropped", ids["d"], "d", 1), ("dropped", ids["e"], "e", 1), ("dropped", ids["c"], "c", 2),
            ("refused", None, "h", 1)]
        assert store.drops()[0].reason == "evicted for the product of scene d (priority 1)"
        assert store.scene("b").state is SceneState.DROPPED
        assert store.scene("f").state is SceneState.OPEN  # kept whole, to be finished later
        assert store.acknowledge(ids["g"])
        ids["f"] = finished(store, "f", bytes(100), 0)
        assert queued_ids(store) == [ids["f"]]
        telemetry = store.telemetry()
    assert telemetry == {
        "queue_depth": 1, "in_flight": 0, "bytes_stored": 100, "capacity_bytes": 300, "capacity_left_bytes": 200,
        "capacity_count": None, "products_acknowledged": 1, "products_dropped": 5, "products_refused": 2,
        "products_sent": 0, "products_stored": 7, "scenes_in_progress": 1}  # h


def test_refuse_new_policy_keeps_what_is_stored(tmp_path):
    with Store(tmp_path / "store.db", StoreConfig(capacity_bytes=250, policy="refuse-new"), clock=Clock()) as store:
        kept = [finished(store, "a", bytes(100), 0), finished(store, "b", bytes(100), 0)]
        with pytest.raises(QuotaError) as exc:
            finished(store, "c", bytes(100), 9)
        one_line(exc, "scene c", "refuse-new", "acknowledge or drop")
        assert queued_ids(store) == kept
        assert [(d.action, d.scene_id, d.size) for d in store.drops()] == [("refused", "c", 100)]
        assert store.telemetry()["products_refused"] == 1 and store.telemetry()["products_dropped"] == 0


def test_the_drop_log_keeps_the_latest_records_and_the_counters_keep_the_totals(tmp_path, monkeypatch):
    monkeypatch.setattr("onboard.store.store.DROP_LOG_KEEP", 3)
    with Store(tmp_path / "store.db", StoreConfig(capacity_bytes=10, policy="refuse-new"), clock=Clock()) as store:
        finished(store, "kept", bytes(10))
        for i in range(5):
            with pytest.raises(QuotaError):
                finished(store, f"refused-{i}", bytes(10))
        assert [d.scene_id for d in store.drops()] == ["refused-2", "refused-3", "refused-4"]
        assert store.telemetry()["products_refused"] == 5


def test_count_capacity_and_a_product_larger_than_the_store(tmp_path):
    config = StoreConfig(capacity_bytes=1000, capacity_count=2)
    with Store(tmp_path / "store.db", config, clock=Clock()) as store:
        a, b = finished(store, "a", b"a", 1), finished(store, "b", b"b", 1)
        c = finished(store, "c", b"c", 1)
        assert queued_ids(store) == [b, c]
        with pytest.raises(QuotaError) as exc:
            finished(store, "d", bytes(1001), 5)
        one_line(exc, "larger than the store's capacity of 1000 bytes")
        assert queued_ids(store) == [b, c]
        assert [d.product_id for d in store.drops() if d.action == "dropped"] == [a]


def test_config_errors_name_the_setting():
    with pytest.raises(StoreError, match="unknown drop policy 'keep-all'.*refuse-new"):
        StoreConfig(capacity_bytes=10, policy="keep-all")
    with pytest.raises(StoreError, match="capacity_bytes is 0"):
        StoreConfig(capacity_bytes=0)


# -- the file ----------------------------------------------------------------------------------


def test_a_store_of_another_version_or_not_a_store_is_refused(tmp_path):
    newer = tmp_path / "newer.db"
    raw = sqlite3.connect(newer)
    raw.execute("CREATE TABLE scene (x)")
    raw.execute("PRAGMA user_version = 7")
    raw.close()
    with pytest.raises(StoreError) as exc:
        Store(newer, BIG, clock=Clock())
    one_line(exc, str(newer), "schema version 7", "knows version 1")
    foreign = tmp_path / "foreign.db"
    raw = sqlite3.connect(foreign)
    raw.execute("CREATE TABLE t (x)")
    raw.close()
    with pytest.raises(StoreError) as exc:
        Store(foreign, BIG, clock=Clock())
    one_line(exc, str(foreign), "not an orbitlite store")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 300)
    with pytest.raises(StoreError) as exc:
        Store(junk, BIG, clock=Clock())
    one_line(exc, str(junk), "not a database", "move the file aside")


def test_a_damaged_file_fails_the_integrity_check_on_open(tmp_path):
    path = tmp_path / "store.db"
    with Store(path, BIG, clock=Clock()) as store:
        for i in range(40):
            finished(store, f"scene-{i:03d}", b"x" * 50)
    raw = sqlite3.connect(path)
    root = raw.execute("SELECT rootpage FROM sqlite_master WHERE name = 'scene'").fetchone()[0]
    offset = (root - 1) * raw.execute("PRAGMA page_size").fetchone()[0]
    raw.close()
    data = bytearray(path.read_bytes())
    data[offset + 3:offset + 5] = b"\x00\x7f"  # the page's cell count, now past its cells
    path.write_bytes(data)
    with pytest.raises(StoreError) as exc:
        Store(path, BIG, clock=Clock())
    one_line(exc, str(path), "integrity check", "move the file aside")


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 2 MiB tmpfs (we run as root in CI); where mounting is not allowed, an ordinary directory
    and a store capped by max_file_bytes, which fails the same way (SQLITE_FULL)."""
    root = tmp_path / "tiny"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)],
                             capture_output=True).returncode == 0
    yield root, None if mounted else 1 << 20
    if mounted:
        subprocess.run(["umount", str(root)], check=True)


def test_a_full_disk_fails_one_write_in_one_line_and_loses_nothing(tiny_filesystem):
    root, max_file_bytes = tiny_filesystem
    other_data = root / "other-data"  # the rest of the board's files on the same filesystem
    if max_file_bytes is None:
        other_data.write_bytes(bytes(1 << 20))
    path = root / "store.db"
    rng = np.random.default_rng(7)
    stored: dict[int, bytes] = {}
    store = Store(path, StoreConfig(capacity_bytes=1 << 30, max_file_bytes=max_file_bytes), clock=Clock())
    try:
        with pytest.raises(StoreError) as exc:
            for i in range(100):
                payload = rng.bytes(50_000)  # incompressible, so the filesystem sees every byte
                stored[finished(store, f"scene-{i:03d}", payload)] = payload
        one_line(exc, str(path), "database or disk is full", "free space")
        assert len(stored) >= 5
        assert {pid: store.read_product(pid) for pid in stored} == stored
        assert (store.telemetry()["products_stored"], store.telemetry()["bytes_stored"]) == (len(stored),
                                                                                             50_000 * len(stored))
        # Room comes back: the failed scene finishes, resuming where it stopped.
        other_data.unlink(missing_ok=True)
        for pid in list(stored)[:3]:
            assert store.acknowledge(pid)
            del stored[pid]
        stored[finished(store, f"scene-{i:03d}", payload)] = payload
    finally:
        store.close()
    with Store(path, StoreConfig(capacity_bytes=1 << 30), clock=Clock()) as store:
        assert {pid: store.read_product(pid) for pid in queued_ids(store)} == stored


def test_max_file_bytes_caps_the_store_and_acknowledging_makes_room(tmp_path):
    path = tmp_path / "store.db"
    with Store(path, StoreConfig(capacity_bytes=1 << 30, max_file_bytes=300_000), clock=Clock()) as store:
        ids = []
        with pytest.raises(StoreError) as exc:
            for i in range(20):
                ids.append(finished(store, f"s{i}", bytes([i]) * 40_000))
        one_line(exc, str(path), "SQLITE_FULL", "max_file_bytes")
        assert 3 <= len(ids) < 8
        assert [store.read_product(pid) for pid in ids] == [bytes([k]) * 40_000 for k in range(len(ids))]
        store.acknowledge(ids[0])
        ids.append(finished(store, f"s{i}", bytes([i]) * 40_000))
    assert path.stat().st_size <= 300_000


# -- crash safety ------------------------------------------------------------------------------

CRASH_SCENES = 24
CRASH_GRID = (10, 12)  # tiles of each scene
CRASH_MODEL = "cnn-crash"
CRASH_CONFIG = StoreConfig(capacity_bytes=1 << 20, capacity_count=4)
CRASH_KILLS = 30
CRASH_MAX_DELAY = 0.050
CRASH_SEED = 20261124


def crash_tiles(s: int, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(start, start + count)
    return ((i * (s + 3)) % 6).astype(np.uint8), ((i * 37 + s) % 255).astype(np.uint8)


def crash_workload(path: Path, report: Callable[[str], None]) -> None:
    """What a flight run does, deterministically wherever it was interrupted: resume each scene,
    commit tile runs (some skipped), build the product from the journal, finish the scene, and
    acknowledge an earlier product as the ground would. Run boundaries depend only on the tile
    index, so an interrupted run ends in the same state as an uninterrupted one."""
    now = [0.0]
    n_tiles = CRASH_GRID[0] * CRASH_GRID[1]
    shape = (CRASH_GRID[0] * 32, CRASH_GRID[1] * 32)
    with Store(path, CRASH_CONFIG, clock=lambda: now[0]) as store:
        for s in range(CRASH_SCENES):
            scene_id = f"scene-{s:02d}"
            now[0] = 60.0 * s
            start = store.begin_scene(scene_id, CRASH_MODEL, n_tiles, {"index": s})
            if store.scene(scene_id).state in (SceneState.OPEN, SceneState.FINISHED):
                while start < n_tiles:
                    count = min(1 + (start * 7 + s) % 9, n_tiles - start)
                    if (start + s) % 11 == 0:
                        store.commit_skipped(scene_id, CRASH_MODEL, start, count, "cloud")
                    else:
                        store.commit_tiles(scene_id, CRASH_MODEL, start, *crash_tiles(s, start, count))
                    report(f"run {scene_id} {start} {count}")
                    start += count
                classes, confidence = store.tile_results(scene_id, CRASH_MODEL)
                product = Product(
                    scene_id=scene_id, scene_shape=shape, scene_bands=("B02", "B03", "B04", "B08"),
                    scene_bytes=shape[0] * shape[1] * 8, footprint=None, model_id=CRASH_MODEL,
                    model_sha256="0" * 64, classes=("water", "forest", "crop", "bare_soil", "urban", "cloud"),
                    grid=TileGrid.covering(shape, (32, 32)), class_map=classes.reshape(CRASH_GRID),
                    confidence=confidence.reshape(CRASH_GRID), uncertain_below=128,
                    skipped=[dataclasses.asdict(r) for r in store.skipped(scene_id, CRASH_MODEL)],
                    created=f"T+{now[0]:.0f}s")
                product_id = store.finish_scene(scene_id, CRASH_MODEL, product.encode(), 2 if s % 6 == 0 else 1)
                report(f"product {scene_id} {product_id}")
            if s % 3 == 2:
                earlier = store.scene(f"scene-{s - 2:02d}")
                store.acknowledge(earlier.product_id)


def crash_child(path: str, pipe: Connection) -> None:
    pipe.send_bytes(b"ready")
    # Each message is one write under PIPE_BUF bytes: a kill cannot leave half of one.
    crash_workload(Path(path), lambda line: pipe.send_bytes(line.encode()))


def life(context: multiprocessing.context.BaseContext, path: Path, kill_after: float | None) -> tuple[int, list[str]]:
    """Run the workload on `path` in a child process, SIGKILL it `kill_after` seconds after it
    starts (None: let it finish); its exit code and what it reported."""
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=crash_child, args=(str(path), sender))
    child.start()
    sender.close()
    assert receiver.poll(30) and receiver.recv_bytes() == b"ready"
    if kill_after is not None:
        time.sleep(kill_after)
        child.kill()
    child.join(60)
    reports = []
    while True:
        try:
            reports.append(receiver.recv_bytes().decode())
        except EOFError:
            break
    receiver.close()
    return child.exitcode, reports


def dump(path: Path) -> dict[str, list[tuple]]:
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return {table: raw.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in ("scene", "tile_run", "product", "drop_log", "counter", "sqlite_sequence")}
    finally:
        raw.close()


def assert_as_if_never_killed(path: Path, expected: dict[str, list[tuple]], reports: list[str]) -> None:
    final = dump(path)
    assert final == expected  # every table: tile results, skips, products and their bytes, drops, counters
    runs = [line for line in reports if line.startswith("run ")]
    assert len(runs) == len(set(runs)), "a tile run was committed twice"
    committed = {(scene, start, count) for scene, start, count, *_ in final["tile_run"]}
    released = {scene for scene, *_, state, _ in final["scene"] if state in ("acknowledged", "dropped")}
    for line in runs:
        _, scene, start, count = line.split()
        assert scene in released or (scene, int(start), int(count)) in committed, f"{line} was lost"
    products: dict[str, str] = {}
    for line in reports:
        if line.startswith("product "):
            _, scene, product_id = line.split()
            assert products.setdefault(scene, product_id) == product_id, f"{scene} got a second product"
    assert products == {scene: str(product_id) for scene, *_, product_id in expected["scene"]}
    payloads = {row[0]: row[-1] for row in expected["product"]}
    with Store(path, CRASH_CONFIG, clock=Clock()) as store:
        assert {q.product_id: store.read_product(q.product_id) for q in store.next_for_downlink(10)} == payloads


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    reference = tmp_path / "reference.db"
    crash_workload(reference, lambda line: None)
    expected = dump(reference)
    counters = dict(expected["counter"])
    assert counters["dropped"] > 0 and counters["acknowledged"] > 0 and counters["refused"] == 0

    # Children fork from a server that has imported everything, so a restart costs milliseconds,
    # not an interpreter start; each is still a process of its own, killed with SIGKILL.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.test_store"])
    rng = random.Random(CRASH_SEED)
    kills = after_a_commit = rounds = 0
    started = time.perf_counter()
    # On a fast disk the workload can end before the kills do; then it starts over on a new store,
    # so every one of the kills lands on a child at work.
    while kills < CRASH_KILLS:
        path, reports = tmp_path / f"round-{rounds}.db", []
        while kills < CRASH_KILLS:
            exitcode, reports_of_life = life(context, path, rng.uniform(0, CRASH_MAX_DELAY))
            reports += reports_of_life
            if exitcode == 0:  # it finished before the kill
                break
            assert exitcode == -signal.SIGKILL
            kills += 1
            after_a_commit += bool(reports_of_life)
        else:
            exitcode, reports_of_life = life(context, path, None)  # the last restart runs to the end
            reports += reports_of_life
            assert exitcode == 0
        assert_as_if_never_killed(path, expected, reports)
        rounds += 1
    seconds = time.perf_counter() - started
    assert after_a_commit >= CRASH_KILLS // 2, f"only {after_a_commit} of {CRASH_KILLS} kills came after a commit"
    print(f"{kills} kills over {rounds} run(s) of the workload, {after_a_commit} after a commit, {seconds:.1f} s")
