"""The queue of runs waiting to start, in the order they start: round-robin over owners, so that one person's
runs never stand in front of everyone's."""

from __future__ import annotations

import json
from collections import deque

from explorer.training.schema import RunRecord


class FairQueue:
    """Queued run ids and their owners. The k-th waiting run of an owner who has had n runs started comes at
    turn n + k; first come, first served within a turn. Not locked: its owner (the run manager) holds a lock
    around every use."""

    def __init__(self) -> None:
        self._ids: deque[str] = deque()
        self._owners: dict[str, str] = {}
        self._started: dict[str, int] = {}  # runs started so far, per owner

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._owners

    def push(self, run_id: str, owner: str) -> None:
        self._ids.append(run_id)
        self._owners[run_id] = owner

    def remove(self, run_id: str) -> None:
        if run_id in self._owners:
            self._ids.remove(run_id)
            del self._owners[run_id]

    def clear(self) -> None:
        self._ids.clear()
        self._owners.clear()

    def ordered(self) -> list[str]:
        """The queued runs, the next to start first."""
        seen: dict[str, int] = {}
        turns = []
        for index, run_id in enumerate(self._ids):
            owner = self._owners[run_id]
            seen[owner] = seen.get(owner, 0) + 1
            turns.append((self._started.get(owner, 0) + seen[owner], index, run_id))
        return [run_id for *_, run_id in sorted(turns)]

    def pop(self) -> tuple[str, str]:
        """The next run to start and its owner, taken off the queue."""
        run_id = self.ordered()[0]
        owner = self._owners[run_id]
        self.remove(run_id)
        return run_id, owner

    def started(self, owner: str) -> None:
        """Count a run of `owner` as started (one that was popped and then claimed)."""
        self._started[owner] = self._started.get(owner, 0) + 1


def expected_wait(records: list[RunRecord], running: set[str], max_running: int, now: float) -> float:
    """About how long until the run after `records` starts: the running runs' remaining estimates, then the
    estimates of the queued runs among `records` (in order), over `max_running` slots. A run admitted before
    anything was measured of it counts what a run of the same network and settings is expected to take."""
    known = {_same_run(r): r.estimate_seconds for r in records if r.estimate_seconds}

    def expected(r: RunRecord) -> float:
        return r.estimate_seconds or known.get(_same_run(r), 0.0)

    slots = [max(0.0, expected(r) - (now - (r.started or now))) for r in records if r.id in running]
    slots = sorted(slots + [0.0] * max(0, max_running - len(slots)))[:max(1, max_running)]
    for record in records:
        if record.id not in running:
            slots[0] += expected(record)
            slots.sort()
    return slots[0]


def _same_run(record: RunRecord) -> str:
    """What makes two runs take the same time: their network, config and settings."""
    return json.dumps([record.model, record.config, record.settings], sort_keys=True, default=str)
