"""Run history in SQLite (standard library): survives restarts, safe with several threads or processes.

Every call opens its own connection; WAL mode and a busy timeout let writers and readers overlap. A run is
claimed by exactly one process (an atomic queued -> running update); its worker writes a heartbeat and a
small progress record, and reads a stop flag, so the CLI and a server can share one data directory.
A file that is not a readable database is moved aside, never overwritten, and the store starts anew.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from explorer.errors import ExplorerError
from explorer.training.schema import (
    DYNAMICS_COLUMNS,
    FINISHED,
    METRIC_COLUMNS,
    MIGRATIONS,
    SCHEMA,
    STATUSES,
    RunRecord,
    record_of,
)

log = logging.getLogger(__name__)

class StoreError(ExplorerError):
    """The data directory (EXPLORER_HOME) cannot be read or written: a full disk, a damaged run store, weights
    that cannot be saved. The message says what to do."""


RESERVE_BYTES = 1 << 20  # held beside the store while there is room, given back to record runs' ends on a full disk
FULL_BYTES = 1 << 20  # a disk with less free space than this is full (SQLite may call it an I/O error)


def free_bytes(directory: Path) -> int | None:
    """Free space on the disk that holds `directory`, or None where it cannot be read."""
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _nearly_full(directory: Path) -> bool:
    free = free_bytes(directory)
    return free is not None and free < FULL_BYTES  # unknown is not full: the error's own words are kept


@dataclass(frozen=True)
class NewRun:
    """A run as it is queued: what RunStore.admit inserts."""

    run_id: str
    model: str
    config: dict
    settings: dict
    owner: str
    estimate_bytes: int
    preset: str | None = None
    name: str | None = None
    address: str | None = None
    estimate_seconds: float | None = None


class RunStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.recovered: str | None = None  # what was wrong with the file found here, if anything
        if not self.path.exists():
            self._create()
        elif self.path.stat().st_size and _nearly_full(self.path.parent):
            # a server restarted on a full disk: the store is read as it stands (RunStore._read), and its checks
            # and migrations wait for a start with room to write
            log.warning("the disk under %s is full: the run store opens for reading only", self.path)
            return
        try:
            self._open()
            self._keep_reserve()
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
                raise
            if _nearly_full(self.path.parent):  # a full disk is not a damaged file: it stays where it is
                raise self._failure(err) from None
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            self.path.rename(aside)
            for extra in ("-wal", "-shm"):
                Path(f"{self.path}{extra}").unlink(missing_ok=True)
            self.recovered = (f"{self.path} was not a readable run store ({err}); it was moved to {aside} "
                              "and a new, empty history started")
            self._open()

    def _create(self) -> None:
        """Make a new store whole before it appears at `path`: a process opening it at that moment (a page, the
        CLI) must never find an empty file, which is what a truncated store looks like (it would be moved
        aside from under its creator)."""
        fresh = self.path.with_name(f"{self.path.name}.new-{os.getpid()}-{threading.get_ident()}")
        try:
            with closing(sqlite3.connect(fresh)) as db:
                db.executescript(SCHEMA)
                db.commit()
            with contextlib.suppress(FileExistsError):  # another process made it first: theirs is used
                os.link(fresh, self.path)
        finally:
            fresh.unlink(missing_ok=True)

    def _open(self) -> None:
        if self.path.exists() and self.path.stat().st_size == 0:
            raise sqlite3.DatabaseError("the file is empty (truncated)")
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("the file is damaged")
            db.executescript(SCHEMA)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, migrate in enumerate(MIGRATIONS[version:], start=version + 1):
                migrate(db)
                db.execute(f"PRAGMA user_version = {number}")

    def _keep_reserve(self) -> None:
        """Hold RESERVE_BYTES beside the store (best effort): on a disk that fills while runs train, giving
        them back lets each run's end be recorded (see _final)."""
        reserve = self.path.with_name(f"{self.path.name}.reserve")
        if reserve.exists():
            return
        try:
            with open(reserve, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)
        except OSError:
            reserve.unlink(missing_ok=True)

    def _final(self, write: Callable[[sqlite3.Connection], None]) -> None:
        """Record how a run ended with `write`. On a disk that filled up, the reserve is given back and the
        write tried once more: a run never stays 'running' for lack of a few pages."""
        reserve = self.path.with_name(f"{self.path.name}.reserve")
        try:
            with self._db() as db:
                write(db)
            return
        except StoreError:
            if not reserve.exists():
                raise
        reserve.unlink(missing_ok=True)
        log.warning("the disk under %s is full: its reserve was given back to record a run's end", self.path)
        with self._db() as db:
            write(db)

    @property
    def full(self) -> bool:
        """Whether the disk under the store has no room left for a run (its pages still read it)."""
        return _nearly_full(self.path.parent)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.execute("PRAGMA busy_timeout=30000")
            with db:  # one transaction, committed on success
                yield db

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection whose failures (a full disk, a file damaged while in use) become a StoreError."""
        try:
            with self._connect() as db:
                yield db
        except sqlite3.DatabaseError as err:
            raise self._failure(err) from None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading. On a full disk SQLite cannot map the store's shared index, and every read
        would fail although nothing needs writing: the file is then read as it stands on disk (immutable,
        read-only), so that the pages that show stored runs still show them."""
        try:
            db = sqlite3.connect(self.path, timeout=30)
        except sqlite3.DatabaseError as err:
            raise self._failure(err) from None
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # takes the read lock: fails here if it will
        except sqlite3.DatabaseError as err:
            db.close()
            if not _nearly_full(self.path.parent):
                raise self._failure(err) from None
            log.warning("the disk under %s is full: reading it as it stands on disk", self.path)
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?immutable=1", uri=True)
        try:
            with closing(db):
                yield db
        except sqlite3.DatabaseError as err:
            raise self._failure(err) from None

    def _failure(self, err: sqlite3.DatabaseError) -> StoreError:
        """What a visitor reads of a store that cannot be used: why and what to do, never the server's path
        (the log has it)."""
        log.error("run store %s: %s", self.path, err)
        if getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or _nearly_full(self.path.parent):
            return StoreError("the disk is full: the run store cannot be written; free some space or set "
                              "EXPLORER_HOME to another directory")
        return StoreError("the run store cannot be used ({error}); check the disk's free space and the file, or set "
                          "EXPLORER_HOME to another directory", error=str(err))

    def create(self, run_id: str, model: str, config: dict, settings: dict, owner: str, estimate_bytes: int,
               preset: str | None = None, name: str | None = None, address: str | None = None,
               estimate_seconds: float | None = None) -> None:
        self.admit([NewRun(run_id, model, config, settings, owner, estimate_bytes, preset, name, address,
                           estimate_seconds)])

    def admit(self, runs: list[NewRun], check: Callable[[list[RunRecord]], None] | None = None) -> None:
        """Queue `runs`, all or none, in one transaction that no other process's admission interleaves with:
        `check` sees every queued and running run as they are at that moment, and refuses (by raising) before
        anything is written. Two pages, or the CLI and a page, starting runs at once cannot both pass a quota
        that only one of them fits under."""
        self._keep_reserve()  # held again once there is room
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock first: the count and the insert are one step
            if check is not None:
                db.row_factory = sqlite3.Row
                check([record_of(r) for r in db.execute("SELECT * FROM runs WHERE status IN ('queued', 'running') "
                                                      "ORDER BY created")])
            now = time.time()
            db.executemany("INSERT INTO runs (id, model, config, settings, owner, status, created, estimate_bytes, "
                           "preset, name, address, estimate_seconds) "
                           "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                           [(r.run_id, r.model, json.dumps(r.config), json.dumps(r.settings), r.owner, now,
                             r.estimate_bytes, r.preset, r.name, r.address, r.estimate_seconds) for r in runs])

    def claim(self, run_id: str, worker: str) -> bool:
        """Take a queued run for the process `worker` (its identity, until the run's own worker records its
        own): True for exactly one claimant, whatever else shares the file."""
        with self._db() as db:
            now = time.time()
            cur = db.execute("UPDATE runs SET status = 'running', started = ?, heartbeat = ?, worker = ? "
                             "WHERE id = ? AND status = 'queued'", (now, now, worker, run_id))
            return cur.rowcount == 1

    def set_worker(self, run_id: str, worker: str) -> None:
        with self._db() as db:
            db.execute("UPDATE runs SET worker = ?, heartbeat = ? WHERE id = ?", (worker, time.time(), run_id))

    def set_estimate(self, run_id: str, seconds: float) -> None:
        """The run's expected wall time, from its worker's own measurement (a run may be queued without one)."""
        with self._db() as db:
            db.execute("UPDATE runs SET estimate_seconds = ? WHERE id = ?", (seconds, run_id))

    def set_shared(self, run_id: str, shared: bool) -> None:
        with self._db() as db:
            db.execute("UPDATE runs SET shared = ? WHERE id = ?", (int(shared), run_id))

    def set_warning(self, run_id: str, warning: str | None) -> None:
        with self._db() as db:
            db.execute("UPDATE runs SET warning = ? WHERE id = ?", (warning, run_id))

    def beat(self, run_id: str) -> int:
        """A worker's heartbeat; returns the stop flag, as stop_flag."""
        with self._db() as db:
            db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (time.time(), run_id))
        return self.stop_flag(run_id)

    def stop_flag(self, run_id: str) -> int:
        """0: go on; else why the run should stop (see request_stop), set by any process. A deleted run
        reads as stopped by its owner."""
        with self._read() as db:
            row = db.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return int(row[0]) if row else 1

    def request_stop(self, run_id: str, reason: int = 1) -> None:
        """Ask a running run's worker to stop (1: its owner asked, 2: the process running it shuts down)."""
        with self._db() as db:
            db.execute("UPDATE runs SET stop_requested = ? WHERE id = ?", (reason, run_id))

    def set_calibration(self, run_id: str, data: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute("UPDATE runs SET calibration = ? WHERE id = ?", (json.dumps(data), run_id))

    def calibration(self, key: str) -> dict[str, Any] | None:
        """A step-rate measurement saved under `key` (see estimate.measure_step), or None."""
        with self._read() as db:
            row = db.execute("SELECT data FROM calibrations WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def save_calibration(self, key: str, data: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO calibrations (key, data, measured) VALUES (?, ?, ?)",
                       (key, json.dumps(data), time.time()))

    def drop_calibration(self, key: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM calibrations WHERE key = ?", (key,))

    def set_progress(self, run_id: str, data: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute("INSERT INTO progress (run_id, data) VALUES (?, ?) ON CONFLICT(run_id) DO UPDATE SET "
                       "data = excluded.data", (run_id, json.dumps(data)))

    def progress(self, run_id: str) -> dict[str, Any] | None:
        """The newest progress record of a run: one small row, what a live page reads each second."""
        with self._read() as db:
            row = db.execute("SELECT data FROM progress WHERE run_id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"not a run status: {status!r}")
        stamp = "started" if status == "running" else "finished" if status in FINISHED else None
        self._final(lambda db: db.execute(f"UPDATE runs SET status = ?, error = COALESCE(?, error)"
                                          f"{f', {stamp} = ?' if stamp else ''} WHERE id = ?",
                                          (status, error, *((time.time(),) if stamp else ()), run_id)))

    def add_metrics(self, run_id: str, rows: Iterable[dict[str, Any]]) -> None:
        with self._db() as db:
            db.executemany(f"INSERT INTO metrics (run_id, {', '.join(METRIC_COLUMNS)}) "
                           f"VALUES (?, {', '.join('?' * len(METRIC_COLUMNS))})",
                           [(run_id, *(r[c] for c in METRIC_COLUMNS)) for r in rows])

    def add_dynamics(self, run_id: str, rows: Iterable[dict[str, Any]]) -> None:
        """Per-layer readings of reported steps (explorer.training.dynamics), rows of its COLUMNS."""
        with self._db() as db:
            db.executemany(f"INSERT INTO dynamics (run_id, {', '.join(DYNAMICS_COLUMNS)}) "
                           f"VALUES (?, {', '.join('?' * len(DYNAMICS_COLUMNS))})",
                           [(run_id, *(r[c] for c in DYNAMICS_COLUMNS)) for r in rows])

    def dynamics(self, run_id: str) -> pd.DataFrame:
        """A run's per-layer readings, by step and in the network's order; empty for a run trained before
        they were recorded."""
        with self._read() as db:
            rows = db.execute(f"SELECT {', '.join(DYNAMICS_COLUMNS)} FROM dynamics WHERE run_id = ? "
                              "ORDER BY step, rowid", (run_id,)).fetchall()
        return pd.DataFrame(rows, columns=DYNAMICS_COLUMNS)

    def finish(self, run_id: str, status: str, *, confusion: list[list[int]] | None, predictions: bytes | None,
               weights_path: str | None, seconds: float, error: str | None = None) -> None:
        """Final status and results, and why it ended so where it says (set in the same transaction: a reader
        never sees an interrupted run without its reason); headline figures come from the stored metrics."""
        def write(db: sqlite3.Connection) -> None:
            last = db.execute("SELECT train_loss, train_acc, images_per_sec FROM metrics WHERE run_id = ? "
                              "ORDER BY step DESC, kind ASC LIMIT 1", (run_id,)).fetchone() or (None, None, None)
            best, final = db.execute(
                "SELECT MAX(test_acc), (SELECT test_acc FROM metrics WHERE run_id = ?1 AND kind = 'epoch' "
                "ORDER BY step DESC LIMIT 1) FROM metrics WHERE run_id = ?1", (run_id,)).fetchone()
            db.execute("UPDATE runs SET status = ?, finished = ?, train_loss = ?, train_acc = ?, images_per_sec = ?, "
                       "best_test_acc = ?, test_acc = ?, confusion = ?, predictions = ?, weights_path = ?, "
                       "seconds = ?, error = COALESCE(?, error) WHERE id = ?",
                       (status, time.time(), *last, best, final, json.dumps(confusion) if confusion else None,
                        predictions, weights_path, seconds, error, run_id))

        self._final(write)

    def get(self, run_id: str) -> RunRecord | None:
        with self._read() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return record_of(row) if row else None

    def list(self, owner: str | None = None) -> list[RunRecord]:
        """Newest first; with `owner`, only that owner's runs."""
        with self._read() as db:
            db.row_factory = sqlite3.Row
            if owner is None:
                rows = db.execute("SELECT * FROM runs ORDER BY created DESC").fetchall()
            else:
                rows = db.execute("SELECT * FROM runs WHERE owner = ? ORDER BY created DESC", (owner,)).fetchall()
        return [record_of(r) for r in rows]

    def with_status(self, *statuses: str) -> list[RunRecord]:
        with self._read() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(f"SELECT * FROM runs WHERE status IN ({', '.join('?' * len(statuses))}) "
                              "ORDER BY created", statuses).fetchall()
        return [record_of(r) for r in rows]

    def metrics_version(self, run_id: str) -> int:
        """Changes whenever a run's metrics do (the newest row's id): one indexed lookup, what a live page
        checks before it reads the whole series again."""
        with self._read() as db:
            row = db.execute("SELECT MAX(rowid) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] or 0

    def metrics(self, run_id: str) -> pd.DataFrame:
        with self._read() as db:
            rows = db.execute(f"SELECT {', '.join(METRIC_COLUMNS)} FROM metrics WHERE run_id = ? ORDER BY step, kind",
                              (run_id,)).fetchall()
        return pd.DataFrame(rows, columns=METRIC_COLUMNS)

    def stored_bytes(self, owner: str | None = None) -> dict[str, int]:
        """About how many bytes each run (of `owner`, or every run) keeps in this store: its predictions and
        confusion matrix, and its metric and dynamics rows, each counted as its text plus 8 bytes a number
        and 16 for the row (SQLite's own record header and row id; measured 122-134 bytes a dynamics row).
        Weights files are the run manager's to add."""
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        with self._read() as db:
            own = dict(db.execute(f"SELECT id, 200 + IFNULL(LENGTH(predictions), 0) + IFNULL(LENGTH(confusion), 0) "
                                  f"+ LENGTH(config) + LENGTH(settings) FROM runs {where}", args).fetchall())
            for table, numbers, texts in (("metrics", 7, "LENGTH(kind)"),
                                          ("dynamics", 8, "LENGTH(layer) + LENGTH(type)")):
                rows = db.execute(f"SELECT run_id, COUNT(*) * {16 + 8 * numbers} + SUM({texts}) FROM {table} "
                                  f"WHERE run_id IN (SELECT id FROM runs {where}) GROUP BY run_id", args)
                for run_id, size in rows:
                    own[run_id] = own.get(run_id, 0) + size
        return own

    def delete(self, run_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM dynamics WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM progress WHERE run_id = ?", (run_id,))
