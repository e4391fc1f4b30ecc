"""What the run store keeps: its tables, their numbered migrations, and a run's record."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from explorer.i18n import said_name

STATUSES = ("queued", "running", "done", "stopped", "failed", "interrupted")
FINISHED = ("done", "stopped", "failed", "interrupted")

SCHEMA = """
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
    weights_path TEXT,
    heartbeat REAL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    warning TEXT,
    calibration TEXT,
    preset TEXT,
    name TEXT,
    address TEXT,
    estimate_seconds REAL,
    shared INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
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
CREATE TABLE IF NOT EXISTS dynamics (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch REAL NOT NULL,
    layer TEXT NOT NULL,
    type TEXT NOT NULL,
    grad_norm REAL,
    update_ratio REAL,
    out_mean REAL,
    out_std REAL,
    dead REAL,
    saturated REAL
);
CREATE INDEX IF NOT EXISTS dynamics_by_run ON dynamics(run_id, step);
CREATE TABLE IF NOT EXISTS calibrations (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    measured REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS progress (
    run_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
"""
# A run's rows in other tables are deleted with it by delete(), in one transaction (no foreign keys: a worker
# may still report for a run its owner just deleted, and must not fail for it).
# Migrations, numbered: the store's PRAGMA user_version is the last one applied. Each brings a store written by
# an older version to the schema above; a new one is appended, never edited.
_ADDED_COLUMNS = {"heartbeat": "REAL", "stop_requested": "INTEGER NOT NULL DEFAULT 0",  # since the first schema
                  "worker": "TEXT", "warning": "TEXT", "calibration": "TEXT", "preset": "TEXT", "name": "TEXT",
                  "address": "TEXT", "estimate_seconds": "REAL", "shared": "INTEGER NOT NULL DEFAULT 0"}


def _add_columns(db: sqlite3.Connection) -> None:
    """1: the columns runs gained before migrations were numbered, on a store that lacks any of them."""
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for column, kind in _ADDED_COLUMNS.items():
        if column not in have:
            db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")


MIGRATIONS = (_add_columns,)

METRIC_COLUMNS = ["step", "epoch", "kind", "train_loss", "train_acc", "test_acc", "images_per_sec", "elapsed"]
DYNAMICS_COLUMNS = ["step", "epoch", "layer", "type", "grad_norm", "update_ratio", "out_mean", "out_std", "dead",
                    "saturated"]


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
    heartbeat: float | None = None
    stop_requested: int = 0
    worker: str | None = None       # the process that trains it (processes.identity), or a Ray actor
    warning: str | None = None      # what training noticed, e.g. a dead network
    calibration: dict[str, Any] | None = None  # the measured step rates and the settings they chose
    preset: str | None = None       # book, quick or fast; None for runs stored before presets were recorded
    name: str | None = None         # what its owner called it, shown instead of the id where given
    address: str | None = None      # the network address it was started from (per-address quotas)
    estimate_seconds: float | None = None  # how long it was estimated to take when it was queued
    shared: int = 0                 # its owner put it on the class board (anonymously)

    @property
    def dataset(self) -> str:
        """What it trained on (runs stored before MNIST was offered trained on Fashion-MNIST)."""
        return self.settings.get("dataset", "fashion-mnist")

    @property
    def label(self) -> str:
        """How lists and legends name the run: its name (a lesson pair's in the reader's language), else its
        model and id; and its data set unless it is Fashion-MNIST."""
        label = said_name(self.name) if self.name else f"{self.model} {self.id}"
        return label if self.dataset == "fashion-mnist" else f"{label} · MNIST"  # the book's data goes unsaid


def record_of(row: sqlite3.Row) -> RunRecord:
    """A runs row as the record callers read: its JSON columns parsed."""
    data = dict(row)
    data["config"] = json.loads(data["config"])
    data["settings"] = json.loads(data["settings"])
    data["confusion"] = json.loads(data["confusion"]) if data["confusion"] else None
    data["calibration"] = json.loads(data["calibration"]) if data["calibration"] else None
    return RunRecord(**data)
