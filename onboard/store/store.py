"""The on-board store: a progress journal per scene, so a killed run resumes from its last
committed tile, and the products waiting for downlink, sent by priority, then age, then id (as
F Prime's DpCatalog does) and removed only when the ground acknowledges them.

One SQLite file in WAL mode with synchronous=FULL, owned by one process through one connection;
every change is one transaction, so a kill at any moment leaves each change whole or absent.
Product payloads are BLOBs in the same file: a product and its catalogue row commit together, so
there is never a payload file without its row or a row without its file, and one integrity check
covers both. (The cost: WAL writes a payload twice, once to the log and once at the checkpoint.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from onboard.contracts.product import NODATA
from onboard.errors import QuotaError, StoreError

SCHEMA_VERSION = 1
DROP_LOG_KEEP = 1000  # drop and refusal records kept for telemetry; the counters keep the totals
# Checkpoint the write-ahead log at 1 MiB (of 4 KiB pages), not SQLite's 4 MiB: beside
# max_file_bytes, the store's filesystem must keep room for this much log and the largest product,
# or a full filesystem leaves no room even to log the deletion that would free space.
WAL_CHECKPOINT_PAGES = 256

_SCHEMA = (
    """CREATE TABLE scene (
        scene_id   TEXT PRIMARY KEY,
        model_id   TEXT NOT NULL,
        n_tiles    INTEGER NOT NULL CHECK (n_tiles > 0),
        next_tile  INTEGER NOT NULL DEFAULT 0 CHECK (next_tile BETWEEN 0 AND n_tiles),
        meta       TEXT NOT NULL,
        begun      REAL NOT NULL,
        state      TEXT NOT NULL DEFAULT 'open'
                   CHECK (state IN ('open', 'finished', 'acknowledged', 'dropped')),
        product_id INTEGER
    )""",
    # One row per committed run, not per tile: a 117k-tile scene committed in batches of 256 is
    # ~460 rows, and a run is the unit that commits or does not.
    """CREATE TABLE tile_run (
        scene_id   TEXT NOT NULL REFERENCES scene (scene_id),
        start      INTEGER NOT NULL CHECK (start >= 0),
        count      INTEGER NOT NULL CHECK (count > 0),
        classes    BLOB,
        confidence BLOB,
        reason     TEXT,
        PRIMARY KEY (scene_id, start),
        CHECK ((reason IS NULL) = (classes IS NOT NULL) AND (classes IS NULL) = (confidence IS NULL))
    )""",
    # AUTOINCREMENT: an id is never reused, so a late acknowledgement of an old product cannot
    # remove a new one. The payload is the last column, so reading the catalogue never walks
    # its overflow pages.
    """CREATE TABLE product (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        scene_id   TEXT NOT NULL UNIQUE REFERENCES scene (scene_id),
        priority   INTEGER NOT NULL,
        created    REAL NOT NULL,
        size       INTEGER NOT NULL,
        sha256     TEXT NOT NULL,
        sent_count INTEGER NOT NULL DEFAULT 0,
        data       BLOB NOT NULL
    )""",
    "CREATE INDEX product_downlink_order ON product (priority DESC, created, id)",
    """CREATE TABLE drop_log (
        id         INTEGER PRIMARY KEY,
        at         REAL NOT NULL,
        action     TEXT NOT NULL CHECK (action IN ('dropped', 'refused')),
        product_id INTEGER,
        scene_id   TEXT NOT NULL,
        priority   INTEGER NOT NULL,
        size       INTEGER NOT NULL,
        reason     TEXT NOT NULL
    )""",
    "CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT INTO counter (name, value) VALUES ('stored', 0), ('sent', 0), ('acknowledged', 0), "
    "('dropped', 0), ('refused', 0)",
)

# What to do about a failing store, by SQLite's primary result code (sqlite_errorcode, Python 3.11+).
_REMEDY = {
    3: "check the file's permissions",  # SQLITE_PERM
    5: "another process holds the store: only one process may own it",  # SQLITE_BUSY
    6: "another process holds the store: only one process may own it",  # SQLITE_LOCKED
    8: "check the file's permissions and that its filesystem is writable",  # SQLITE_READONLY
    10: "the storage medium is failing: check it, then reopen the store",  # SQLITE_IOERR
    11: "the store is corrupt: move the file aside for analysis and open a new store",  # SQLITE_CORRUPT
    13: "acknowledge or drop products if it reached max_file_bytes, else free space on its filesystem",  # SQLITE_FULL
    14: "check that its directory exists and is writable",  # SQLITE_CANTOPEN
    26: "it is not a store: move the file aside and open a new store",  # SQLITE_NOTADB
}


class DropPolicy(str, Enum):
    """What the store does with a product that does not fit its quota."""

    # Evict the lowest-priority, then oldest products, never one of higher priority than the
    # newcomer; refuse the newcomer if that cannot make room.
    DROP_LOWEST_PRIORITY_OLDEST = "drop-lowest-priority-oldest"
    REFUSE_NEW = "refuse-new"


class SceneState(str, Enum):
    OPEN = "open"  # tiles are being committed, or all are and its product is not stored yet
    FINISHED = "finished"  # its product is in the store
    ACKNOWLEDGED = "acknowledged"  # the ground has its product; its tile results are released
    DROPPED = "dropped"  # its product was dropped; its tile results are released


@dataclass(frozen=True)
class StoreConfig:
    capacity_bytes: int  # of product payloads
    capacity_count: int | None = None  # of products
    policy: DropPolicy = DropPolicy.DROP_LOWEST_PRIORITY_OLDEST
    resend_after: float | None = None  # seconds after which a product sent but not acknowledged is offered again
    max_file_bytes: int | None = None  # a hard limit on the store file, to leave its filesystem room

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "policy", DropPolicy(self.policy))
        except ValueError:
            known = ", ".join(p.value for p in DropPolicy)
            raise StoreError(f"unknown drop policy {self.policy!r}: use one of {known}") from None
        for name in ("capacity_bytes", "capacity_count", "resend_after", "max_file_bytes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise StoreError(f"store {name} is {value}: it must be positive")


@dataclass(frozen=True)
class SceneRecord:
    scene_id: str
    model_id: str
    n_tiles: int
    next_tile: int  # where processing resumes; n_tiles when every tile is committed
    meta: dict[str, Any]
    state: SceneState
    product_id: int | None  # kept after the product leaves the store


@dataclass(frozen=True)
class SkippedRun:
    """Tiles the runtime did not classify, and why (the product's `skipped` entries)."""

    start: int
    tiles: int
    reason: str


@dataclass(frozen=True)
class QueuedProduct:
    product_id: int
    scene_id: str
    model_id: str
    priority: int
    created: float
    size: int
    sha256: str
    sent_count: int


@dataclass(frozen=True)
class DropRecord:
    at: float
    action: str  # "dropped" or "refused"
    product_id: int | None  # None for a refused product, which never got an id
    scene_id: str
    priority: int
    size: int
    reason: str


class Store:
    """The journal, the product store and the downlink queue, in one SQLite file at `path`."""

    def __init__(self, path: Path, config: StoreConfig, *, clock: Callable[[], float]) -> None:
        self.path = Path(path)
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        # Sent and not yet acknowledged, with when it was sent. Deliberately not persisted: after
        # a reboot every unacknowledged product is offered again.
        self._in_flight: dict[int, float] = {}
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _fault(self.path, exc) from None
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the journal ----------------------------------------------------------------------------

    def begin_scene(self, scene_id: str, model_id: str, n_tiles: int, meta: dict[str, Any]) -> int:
        """Journal a scene (or find it again after a restart) and return the index of the next
        tile to process: 0 for a new scene, where it stopped for an interrupted one, n_tiles for
        one that is complete. A scene is bound to its first model and tile count."""
        if n_tiles <= 0:
            raise StoreError(f"scene {scene_id}: n_tiles is {n_tiles}; a scene has at least one tile")
        try:
            meta_json = json.dumps(meta, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"scene {scene_id}: its meta cannot be stored as JSON: {exc}") from None
        with self._transaction(write=True) as db:
            row = db.execute("SELECT model_id, n_tiles, next_tile FROM scene WHERE scene_id = ?",
                             (scene_id,)).fetchone()
            if row is None:
                db.execute("INSERT INTO scene (scene_id, model_id, n_tiles, meta, begun) VALUES (?, ?, ?, ?, ?)",
                           (scene_id, model_id, n_tiles, meta_json, self._clock()))
                return 0
            journaled_model, journaled_tiles, next_tile = row
            if journaled_model != model_id:
                raise StoreError(f"scene {scene_id} is journaled for model {journaled_model}, not {model_id}: "
                                 f"resume it with {journaled_model} or give the new run another scene id")
            if journaled_tiles != n_tiles:
                raise StoreError(f"scene {scene_id} is journaled with {journaled_tiles} tiles, not {n_tiles}: "
                                 f"resume it with the same tile grid or give the new run another scene id")
            return next_tile

    def restart_scene(self, scene_id: str) -> int:
        """Forget the committed tiles of an open scene, so that it begins again (with other
        models, say); the count of tiles forgotten. A finished scene is not restarted."""
        with self._transaction(write=True) as db:
            row = db.execute("SELECT state, next_tile FROM scene WHERE scene_id = ?", (scene_id,)).fetchone()
            if row is None or row[0] != SceneState.OPEN.value:
                raise StoreError(f"scene {scene_id} is not in progress in {self.path}: nothing to restart")
            db.execute("DELETE FROM tile_run WHERE scene_id = ?", (scene_id,))
            db.execute("DELETE FROM scene WHERE scene_id = ?", (scene_id,))
            return int(row[1])

    def commit_tiles(self, scene_id: str, model_id: str, start: int, classes: np.ndarray,
                     confidence: np.ndarray) -> int:
        """Commit the classes and confidences (uint8) of tiles start, start+1, ... atomically.
        `start` must be the resume point. Returns the next resume point."""
        for name, a in (("classes", classes), ("confidence", confidence)):
            if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 1 or len(a) == 0:
                raise StoreError(f"scene {scene_id}: {name} must be a non-empty 1-D uint8 array")
        if len(classes) != len(confidence):
            raise StoreError(f"scene {scene_id}: {len(classes)} classes but {len(confidence)} confidences")
        if (classes == NODATA).any():
            raise StoreError(f"scene {scene_id}: class {NODATA} marks unclassified tiles; commit them as skipped")
        return self._commit_run(scene_id, model_id, start, len(classes),
                                (classes.tobytes(), confidence.tobytes(), None))

    def commit_skipped(self, scene_id: str, model_id: str, start: int, count: int, reason: str) -> int:
        """Commit `count` tiles from `start` as not classified, with the reason (no data, cloud,
        budget...). Returns the next resume point."""
        if count <= 0:
            raise StoreError(f"scene {scene_id}: a skipped run needs at least one tile, not {count}")
        if not reason:
            raise StoreError(f"scene {scene_id}: say why tiles {start}.. were skipped")
        return self._commit_run(scene_id, model_id, start, count, (None, None, reason))

    def tile_results(self, scene_id: str, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Classes and confidences of every committed tile in order; NODATA for skipped tiles."""
        with self._transaction(write=False) as db:
            record = self._open_scene(db, scene_id, model_id, released_ok=False)
            classes = np.full(record.next_tile, NODATA, dtype=np.uint8)
            confidence = np.full(record.next_tile, NODATA, dtype=np.uint8)
            for start, count, c, p in db.execute(
                    "SELECT start, count, classes, confidence FROM tile_run WHERE scene_id = ? AND reason IS NULL",
                    (scene_id,)):
                classes[start:start + count] = np.frombuffer(c, dtype=np.uint8)
                confidence[start:start + count] = np.frombuffer(p, dtype=np.uint8)
        return classes, confidence

    def skipped(self, scene_id: str, model_id: str) -> list[SkippedRun]:
        """The skipped tiles in order, adjacent runs with the same reason merged."""
        runs: list[SkippedRun] = []
        with self._transaction(write=False) as db:
            self._open_scene(db, scene_id, model_id, released_ok=False)
            for start, count, reason in db.execute(
                    "SELECT start, count, reason FROM tile_run WHERE scene_id = ? AND reason IS NOT NULL "
                    "ORDER BY start", (scene_id,)):
                last = runs[-1] if runs else None
                if last and last.reason == reason and last.start + last.tiles == start:
                    runs[-1] = SkippedRun(last.start, last.tiles + count, reason)
                else:
                    runs.append(SkippedRun(start, count, reason))
        return runs

    def scene(self, scene_id: str) -> SceneRecord | None:
        with self._transaction(write=False) as db:
            return self._scene_record(db, scene_id)

    # -- products and the downlink queue --------------------------------------------------------

    def finish_scene(self, scene_id: str, model_id: str, product_bytes: bytes, priority: int) -> int:
        """Store the scene's product and mark the scene finished, in one transaction, and return
        the product's id. Called again for a finished scene, it returns the same id and stores
        nothing. A product the quota cannot take raises QuotaError (counted and logged); the
        scene stays complete and open, so finishing it can be retried once there is room."""
        data = bytes(product_bytes)
        size = len(data)
        refusal = None
        with self._transaction(write=True) as db:
            record = self._open_scene(db, scene_id, model_id, released_ok=True)
            if record.product_id is not None:
                return record.product_id
            if record.next_tile < record.n_tiles:
                raise StoreError(f"scene {scene_id}: {record.next_tile} of {record.n_tiles} tiles are committed; "
                                 f"commit or skip the rest before finishing it")
            now = self._clock()
            victims, refusal = self._make_room(db, size, priority)
            if refusal:
                self._log(db, now, "refused", None, scene_id, priority, size, refusal)
                self._count(db, "refused")
            else:
                for victim in victims:
                    self._remove(db, victim, SceneState.DROPPED, now,
                                 f"evicted for the product of scene {scene_id} (priority {priority})")
                stored_id = db.execute(
                    "INSERT INTO product (scene_id, priority, created, size, sha256, data) VALUES (?, ?, ?, ?, ?, ?)",
                    (scene_id, priority, now, size, hashlib.sha256(data).hexdigest(), data)).lastrowid
                db.execute("UPDATE scene SET state = ?, product_id = ? WHERE scene_id = ?",
                           (SceneState.FINISHED.value, stored_id, scene_id))
                self._count(db, "stored")
        if refusal:
            raise QuotaError(f"store {self.path}: the product of scene {scene_id} ({size} bytes, priority "
                             f"{priority}) is refused: {refusal}")
        return stored_id

    def next_for_downlink(self, n: int = 1) -> list[QueuedProduct]:
        """Up to `n` products to send, by priority (higher first), then age, then id; products
        sent and awaiting acknowledgement are held back until `resend_after` has passed."""
        if n < 1:
            raise StoreError(f"ask for at least one product to downlink, not {n}")
        with self._transaction(write=False) as db:
            held = self._awaiting_acknowledgement()
            rows = db.execute(
                "SELECT p.id, p.scene_id, s.model_id, p.priority, p.created, p.size, p.sha256, p.sent_count "
                "FROM product p JOIN scene s USING (scene_id) ORDER BY p.priority DESC, p.created, p.id LIMIT ?",
                (n + len(held),)).fetchall()
        return [QueuedProduct(*row) for row in rows if row[0] not in held][:n]

    def read_product(self, product_id: int) -> bytes:
        """The product's bytes, checked against the sha256 taken when it was stored."""
        with self._transaction(write=False) as db:
            row = db.execute("SELECT scene_id, sha256, data FROM product WHERE id = ?", (product_id,)).fetchone()
        if row is None:
            raise StoreError(f"store {self.path}: no product {product_id}: it was acknowledged, dropped or never "
                             f"stored")
        scene_id, digest, data = row
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(f"store {self.path}: product {product_id} (scene {scene_id}) fails its sha256 check: "
                             f"its stored bytes are corrupt; drop it so the queue moves on")
        return bytes(data)

    def mark_sent(self, product_id: int) -> None:
        """The product went out on the link; hold it back from the queue until it is
        acknowledged, `resend_after` passes, or the store is reopened."""
        now = self._clock()
        with self._transaction(write=True) as db:
            if db.execute("UPDATE product SET sent_count = sent_count + 1 WHERE id = ?", (product_id,)).rowcount == 0:
                raise StoreError(f"store {self.path}: no product {product_id} to mark sent: "
                                 f"it was acknowledged or dropped")
            self._count(db, "sent")
            self._in_flight[product_id] = now

    def acknowledge(self, product_id: int) -> bool:
        """The ground holds the product: remove it and release its scene's tile results. Returns
        False, changing nothing, for a product no longer in the store (a repeated acknowledgement)."""
        with self._transaction(write=True) as db:
            return self._remove(db, product_id, SceneState.ACKNOWLEDGED, self._clock(), None)

    def drop(self, product_id: int, reason: str) -> None:
        """Remove a product that will not go down (corrupt, or by command), recording why."""
        with self._transaction(write=True) as db:
            if not self._remove(db, product_id, SceneState.DROPPED, self._clock(), reason):
                raise StoreError(f"store {self.path}: no product {product_id} to drop: it was acknowledged or dropped")

    def drops(self) -> list[DropRecord]:
        """The latest DROP_LOG_KEEP drops and refusals, oldest first."""
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT at, action, product_id, scene_id, priority, size, reason FROM drop_log "
                              "ORDER BY id").fetchall()
        return [DropRecord(*row) for row in rows]

    def telemetry(self) -> dict[str, int | None]:
        """Queue depth, bytes and capacity, and the lifetime counters (they survive reboots)."""
        with self._transaction(write=False) as db:
            in_flight = len(self._awaiting_acknowledgement())
            counters = dict(db.execute("SELECT name, value FROM counter").fetchall())
            stored, used = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM product").fetchone()
            open_scenes = db.execute("SELECT COUNT(*) FROM scene WHERE state = ?",
                                     (SceneState.OPEN.value,)).fetchone()[0]
        return {
            "queue_depth": stored - in_flight,
            "in_flight": in_flight,
            "bytes_stored": used,
            "capacity_bytes": self._config.capacity_bytes,
            "capacity_left_bytes": max(0, self._config.capacity_bytes - used),
            "capacity_count": self._config.capacity_count,
            **{f"products_{name}": value for name, value in sorted(counters.items())},
            "scenes_in_progress": open_scenes,
        }

    # -- internals ------------------------------------------------------------------------------

    def _prepare(self) -> None:
        try:
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"store {self.path}: its filesystem cannot hold a SQLite WAL (journal mode "
                                 f"{mode}); put the store on a local filesystem")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            if self._config.max_file_bytes is not None:
                page = self._db.execute("PRAGMA page_size").fetchone()[0]
                self._db.execute(f"PRAGMA max_page_count = {max(1, self._config.max_file_bytes // page)}")
            problems = [row[0] for row in self._db.execute("PRAGMA integrity_check")]
        except sqlite3.Error as exc:
            raise _fault(self.path, exc) from None
        if problems != ["ok"]:
            # SQLite reports one problem per line, under a "*** in database main ***" heading.
            lines = [line for row in problems for line in row.splitlines() if line and not line.startswith("***")]
            raise StoreError(f"store {self.path} fails its integrity check (first problem: {lines[0]}): move the "
                             f"file aside for analysis and open a new store")
        with self._transaction(write=True) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:
                return
            if version == 0 and db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                return
        known = "is not an orbitlite store" if version == 0 else f"has store schema version {version}"
        raise StoreError(f"{self.path} {known}; this runtime knows version {SCHEMA_VERSION}: open it with "
                         f"the runtime that wrote it, or give this one a new store file")

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction (IMMEDIATE for a write, so it never fails half-way for a lock). Any
        exception rolls it back; SQLite's become a one-line StoreError naming the file."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise _fault(self.path, exc) from None

    def _scene_record(self, db: sqlite3.Connection, scene_id: str) -> SceneRecord | None:
        row = db.execute("SELECT scene_id, model_id, n_tiles, next_tile, meta, state, product_id FROM scene "
                         "WHERE scene_id = ?", (scene_id,)).fetchone()
        if row is None:
            return None
        return SceneRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), SceneState(row[5]), row[6])

    def _open_scene(self, db: sqlite3.Connection, scene_id: str, model_id: str, released_ok: bool) -> SceneRecord:
        """The scene's record, checked to be journaled for `model_id` and, unless `released_ok`,
        to still hold its tile results."""
        record = self._scene_record(db, scene_id)
        if record is None:
            raise StoreError(f"scene {scene_id} is not journaled in {self.path}: call begin_scene first")
        if record.model_id != model_id:
            raise StoreError(f"scene {scene_id} is journaled for model {record.model_id}, not {model_id}")
        if not released_ok and record.state in (SceneState.ACKNOWLEDGED, SceneState.DROPPED):
            raise StoreError(f"scene {scene_id}: its product {record.product_id} was {record.state.value}, "
                             f"which released its tile results")
        return record

    def _commit_run(self, scene_id: str, model_id: str, start: int, count: int,
                    payload: tuple[bytes | None, bytes | None, str | None]) -> int:
        with self._transaction(write=True) as db:
            record = self._open_scene(db, scene_id, model_id, released_ok=True)
            if record.state is not SceneState.OPEN:
                raise StoreError(f"scene {scene_id} is {record.state.value}: its tiles cannot change")
            if start != record.next_tile:
                fault = "a gap after" if start > record.next_tile else "an overlap with"
                raise StoreError(f"scene {scene_id}: tiles from {start} would leave {fault} the committed tiles; "
                                 f"commit from the resume point {record.next_tile}")
            if start + count > record.n_tiles:
                raise StoreError(f"scene {scene_id}: tiles {start}..{start + count - 1} run past its "
                                 f"{record.n_tiles} tiles")
            db.execute("INSERT INTO tile_run (scene_id, start, count, classes, confidence, reason) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (scene_id, start, count, *payload))
            db.execute("UPDATE scene SET next_tile = ? WHERE scene_id = ?", (start + count, scene_id))
        return start + count

    def _make_room(self, db: sqlite3.Connection, size: int, priority: int) -> tuple[list[int], str | None]:
        """The products to evict so a product of `size` bytes and `priority` fits, or why it
        cannot."""
        capacity, max_count = self._config.capacity_bytes, self._config.capacity_count
        used, count = db.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM product").fetchone()

        def fits() -> bool:
            return used + size <= capacity and (max_count is None or count < max_count)

        if fits():
            return [], None
        if size > capacity:
            return [], f"it is larger than the store's capacity of {capacity} bytes; make the product smaller"
        if self._config.policy is DropPolicy.REFUSE_NEW:
            return [], (f"the store holds {count} products, {used} of {capacity} bytes, and its policy is "
                        f"{DropPolicy.REFUSE_NEW.value}; acknowledge or drop products first")
        victims = []
        for product_id, victim_size in db.execute(
                "SELECT id, size FROM product WHERE priority <= ? ORDER BY priority, created, id", (priority,)):
            victims.append(product_id)
            used, count = used - victim_size, count - 1
            if fits():
                return victims, None
        return [], (f"dropping every product of priority {priority} or lower would not make room; acknowledge "
                    f"or drop products of higher priority, or give this one a higher priority")

    def _remove(self, db: sqlite3.Connection, product_id: int, state: SceneState, now: float,
                reason: str | None) -> bool:
        """Remove a product, release its scene's tile results, count it, and log a drop. The
        in-flight mark goes at once: should the transaction then fail, the product is merely
        offered again."""
        row = db.execute("SELECT scene_id, priority, size FROM product WHERE id = ?", (product_id,)).fetchone()
        if row is None:
            return False
        scene_id, priority, size = row
        db.execute("DELETE FROM product WHERE id = ?", (product_id,))
        db.execute("DELETE FROM tile_run WHERE scene_id = ?", (scene_id,))
        db.execute("UPDATE scene SET state = ? WHERE scene_id = ?", (state.value, scene_id))
        self._in_flight.pop(product_id, None)
        if state is SceneState.DROPPED:
            self._log(db, now, "dropped", product_id, scene_id, priority, size, reason or "")
        self._count(db, state.value)
        return True

    def _log(self, db: sqlite3.Connection, now: float, action: str, product_id: int | None, scene_id: str,
             priority: int, size: int, reason: str) -> None:
        log_id = db.execute("INSERT INTO drop_log (at, action, product_id, scene_id, priority, size, reason) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (now, action, product_id, scene_id, priority, size, reason)).lastrowid
        db.execute("DELETE FROM drop_log WHERE id <= ?", (log_id - DROP_LOG_KEEP,))

    def _count(self, db: sqlite3.Connection, name: str) -> None:
        db.execute("UPDATE counter SET value = value + 1 WHERE name = ?", (name,))

    def _awaiting_acknowledgement(self) -> set[int]:
        """Products held back from the queue; call it holding the lock."""
        resend_after = self._config.resend_after
        if resend_after is None:
            return set(self._in_flight)
        now = self._clock()
        return {pid for pid, sent in self._in_flight.items() if now - sent < resend_after}


def _fault(path: Path, exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", None)
    remedy = _REMEDY.get(code & 0xFF) if code is not None else None
    cause = f"{exc} ({name})" if name else str(exc)
    return StoreError(f"store {path}: {cause}" + (f"; {remedy}" if remedy else ""))
