"""What runs keep on this server's disk: their rows in the store and their weights files, stored by file name
in the data directory's weights/ (so the directory can move). How much each run keeps bounds a visitor's
share of the disk (EXPLORER_STORE_MB_PER_VISITOR) and tells an admin what pruning frees."""

from __future__ import annotations

from pathlib import Path

import torch

from explorer.errors import MissingWeightsError, QuotaError
from explorer.training.schema import FINISHED, RunRecord
from explorer.training.store import RunStore


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
