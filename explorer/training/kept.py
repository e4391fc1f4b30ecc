"""What runs keep on this server's disk: their rows in the store and their weights files, stored by file name
in the data directory's weights/ (so the directory can move). How much each run keeps bounds a visitor's
share of the disk (EXPLORER_STORE_MB_PER_VISITOR) and tells an admin what pruning frees; store_of says what
one run of a network and its settings keeps before anyone trains it (`bench store`, docs/hosting.md)."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import MissingWeightsError, QuotaError
from explorer.training import dynamics
from explorer.training.recipes import TrainSettings
from explorer.training.schema import FINISHED, RunRecord
from explorer.training.store import RunStore
from explorer.training.train import report_plan


class Kept:
    def __init__(self, store: RunStore, weights_dir: Path) -> None:
        self.store, self.weights_dir = store, weights_dir

    def weights_of(self, record: RunRecord) -> Path:
        """Where a run's weights are (or would be)."""
        return self.weights_dir / record.weights_path

    def weights_path(self, run_id: str) -> Path:
        """The run's weights file; MissingWeightsError when it has none."""
        record = self.store.get(run_id)
        if record is None or not record.weights_path or not self.weights_of(record).is_file():
            raise MissingWeightsError("run {run} has no saved weights", run=run_id[:40])
        return self.weights_of(record)

    def load(self, run_id: str) -> dict[str, torch.Tensor]:
        """A run's trained weights (weights_only=True), to look at: a run's link is a read-only view for
        whoever has it. Downloading the file stays the owner's (RunManager.weights_file)."""
        return torch.load(self.weights_path(run_id), map_location="cpu", weights_only=True)

    def sizes(self, owner: str | None = None) -> dict[str, int]:
        """About how many bytes each run (of `owner`, or every run) keeps: its rows in the store and its
        weights file."""
        sizes = self.store.stored_bytes(owner)
        for record in self.store.list(owner):
            if record.weights_path and (path := self.weights_of(record)).is_file():
                sizes[record.id] = sizes.get(record.id, 0) + path.stat().st_size
        return sizes

    def check_quota(self, owner: str, limit_mb: int | None) -> None:
        """Refuse a new run of an owner whose runs already keep `limit_mb` (EXPLORER_STORE_MB_PER_VISITOR),
        naming the largest of them to delete."""
        if limit_mb is None:
            return
        sizes = self.sizes(owner)
        if sum(sizes.values()) < limit_mb * 2**20:
            return
        largest = sorted(sizes, key=sizes.get, reverse=True)[:3]
        names = ", ".join(f"{self.store.get(r).label} ({sizes[r] / 2**20:.1f} MB)" for r in largest)
        raise QuotaError("EXPLORER_STORE_MB_PER_VISITOR", "your runs keep {kept:.1f} MB on this server, its limit "
                         "per visitor (EXPLORER_STORE_MB_PER_VISITOR, {limit} MB); delete some on the Runs page: "
                         "the largest are {runs}", kept=sum(sizes.values()) / 2**20, limit=limit_mb, runs=names)

    def finished_before(self, cutoff: float) -> list[tuple[RunRecord, int]]:
        """The finished runs created before `cutoff` (a time.time()), with the bytes each keeps: what pruning
        deletes."""
        sizes = self.sizes()
        return [(r, sizes.get(r.id, 0)) for r in self.store.list() if r.status in FINISHED and r.created < cutoff]


@dataclass(frozen=True)
class StoreBench:
    name: str
    preset: str
    epochs: int
    metric_rows: int     # a report about 25 times an epoch, and one an epoch
    dynamics_rows: int   # every layer, on at most MAX_DYNAMICS_REPORTS reports
    store_bytes: int     # the run's rows as the store counts them against a visitor's quota
    disk_bytes: int      # what they added to the SQLite file
    weights_bytes: int   # its weights file

    @property
    def total_bytes(self) -> int:
        return self.store_bytes + self.weights_bytes


def store_of(name: str, kind: str, config: ModelConfig, settings: TrainSettings, train_images: int,
             test_images: int) -> StoreBench:
    """What one finished run keeps: the rows its reports write (as many as train.report_plan makes, with the
    network's real layer names, written into a fresh store) and its weights file (the network's real
    state_dict, saved as a run saves it)."""
    plan = report_plan(min(train_images, settings.train_subset or train_images), settings.batch_size, settings.epochs)
    torch.manual_seed(0)
    model = registry.build(config)
    watched = dynamics.layers(model)
    weights = io.BytesIO()
    torch.save({k: v.detach() for k, v in model.state_dict().items()}, weights)
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs.sqlite")
        empty = _disk_bytes(store)
        store.create("r", name, config.kwargs(), asdict(settings), "owner", 0, kind)
        metric = {"step": 1, "epoch": 0.5, "kind": "step", "train_loss": 0.5, "train_acc": 0.8, "test_acc": None,
                  "images_per_sec": 1000.0, "elapsed": 10.0}
        store.add_metrics("r", [{**metric, "step": i} for i in range(plan.reports)]
                          + [{**metric, "kind": "epoch", "test_acc": 0.9}] * settings.epochs)
        for read in range(plan.reads):
            store.add_dynamics("r", [{"step": read, "epoch": 0.5, "layer": layer.path, "type": layer.type,
                                      "grad_norm": 0.1, "update_ratio": 1e-3, "out_mean": 0.2, "out_std": 0.3,
                                      "dead": 0.0, "saturated": 0.0} for layer in watched])
        store.finish("r", "done", confusion=[[test_images // 10] * 10] * 10, predictions=bytes(test_images),
                     weights_path="r.pt", seconds=1.0)
        return StoreBench(name, kind, settings.epochs, plan.reports + settings.epochs, plan.reads * len(watched),
                          store.stored_bytes()["r"], _disk_bytes(store) - empty, len(weights.getvalue()))


def _disk_bytes(store: RunStore) -> int:
    """The SQLite file's size once its write-ahead log is folded in."""
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
