"""Run history in SQLite (standard library): survives restarts, safe with several threads or processes.

Every call opens its own connection; WAL mode and a busy timeout let writers and readers overlap.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

STATUSES = ("queued", "running", "done", "stopped", "failed", "interrupted")
FINISHED = ("done", "stopped", "failed", "interrupted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    config TEXT NOT NULL,
    settings TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    estimate_bytes INTEGER,
    best_test_acc REAL,
    train_loss REAL,
    train_acc REAL,
    test_acc REAL,
    images_per_sec REAL,
    seconds REAL,
    confusion TEXT,
    predictions BLOB,
    weights_path TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    epoch REAL NOT NULL,
    kind TEXT NOT NULL,
    train_loss REAL,
    train_acc REAL,
    test_acc REAL,
    images_per_sec REAL,
    elapsed REAL
);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics(run_id, step);
"""

METRIC_COLUMNS = ["step", "epoch", "kind", "train_loss", "train_acc", "test_acc", "images_per_sec", "elapsed"]


@dataclass(frozen=True)
class RunRecord:
    id: str
    model: str
    config: dict[str, Any]
    settings: dict[str, Any]
    owner: str
    status: str
    error: str | None
    created: float
    started: float | None
    finished: float | None
    estimate_bytes: int | None
    best_test_acc: float | None
    train_loss: float | None
    train_acc: float | None
    test_acc: float | None
    images_per_sec: float | None
    seconds: float | None
    confusion: list[list[int]] | None
    predictions: bytes | None
    weights_path: str | None


class RunStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            with db:  # one transaction, committed on success
                yield db

    def create(self, run_id: str, model: str, config: dict, settings: dict, owner: str, estimate_bytes: int) -> None:
        with self._db() as db:
            db.execute("INSERT INTO runs (id, model, config, settings, owner, status, created, estimate_bytes) "
                       "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
                       (run_id, model, json.dumps(config), json.dumps(settings), owner, time.time(), estimate_bytes))

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        assert status in STATUSES
        stamp = "started" if status == "running" else "finished" if status in FINISHED else None
        with self._db() as db:
            db.execute(f"UPDATE runs SET status = ?, error = COALESCE(?, error)"
                       f"{f', {stamp} = ?' if stamp else ''} WHERE id = ?",
                       (status, error, *((time.time(),) if stamp else ()), run_id))

    def add_metrics(self, run_id: str, rows: Iterable[dict[str, Any]]) -> None:
        with self._db() as db:
            db.executemany(f"INSERT INTO metrics (run_id, {', '.join(METRIC_COLUMNS)}) "
                           f"VALUES (?, {', '.join('?' * len(METRIC_COLUMNS))})",
                           [(run_id, *(r[c] for c in METRIC_COLUMNS)) for r in rows])

    def finish(self, run_id: str, status: str, *, confusion: list[list[int]] | None, predictions: bytes | None,
               weights_path: str | None, seconds: float) -> None:
        """Final status and results; headline figures are taken from the stored metrics."""
        with self._db() as db:
            last = db.execute("SELECT train_loss, train_acc, images_per_sec FROM metrics WHERE run_id = ? "
                              "ORDER BY step DESC, kind ASC LIMIT 1", (run_id,)).fetchone() or (None, None, None)
            best, final = db.execute(
                "SELECT MAX(test_acc), (SELECT test_acc FROM metrics WHERE run_id = ?1 AND kind = 'epoch' "
                "ORDER BY step DESC LIMIT 1) FROM metrics WHERE run_id = ?1", (run_id,)).fetchone()
            db.execute("UPDATE runs SET status = ?, finished = ?, train_loss = ?, train_acc = ?, images_per_sec = ?, "
                       "best_test_acc = ?, test_acc = ?, confusion = ?, predictions = ?, weights_path = ?, seconds = ? "
                       "WHERE id = ?",
                       (status, time.time(), *last, best, final, json.dumps(confusion) if confusion else None,
                        predictions, weights_path, seconds, run_id))

    def get(self, run_id: str) -> RunRecord | None:
        with self._db() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _record(row) if row else None

    def list(self, owner: str | None = None) -> list[RunRecord]:
        """Newest first; with `owner`, that owner's runs come before everyone else's."""
        with self._db() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM runs ORDER BY (owner = ?) DESC, created DESC",
                              (owner or "",)).fetchall()
        return [_record(r) for r in rows]

    def with_status(self, *statuses: str) -> list[RunRecord]:
        with self._db() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(f"SELECT * FROM runs WHERE status IN ({', '.join('?' * len(statuses))}) "
                              "ORDER BY created", statuses).fetchall()
        return [_record(r) for r in rows]

    def metrics(self, run_id: str) -> pd.DataFrame:
        with self._db() as db:
            rows = db.execute(f"SELECT {', '.join(METRIC_COLUMNS)} FROM metrics WHERE run_id = ? ORDER BY step, kind",
                              (run_id,)).fetchall()
        return pd.DataFrame(rows, columns=METRIC_COLUMNS)

    def delete(self, run_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))


def _record(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    data["config"] = json.loads(data["config"])
    data["settings"] = json.loads(data["settings"])
    data["confusion"] = json.loads(data["confusion"]) if data["confusion"] else None
    return RunRecord(**data)
