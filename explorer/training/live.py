"""What live pages cost the server: how often each refreshes (less often as more watch) and the metric series
they share (read from the store once per flush, not once per page)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import pandas as pd

from explorer.training.store import RunStore

WATCHERS_PER_SECOND = 5    # live pages refresh once a second up to this many watchers, then less often
METRICS_CACHED = 64        # runs whose metric series the server keeps for live pages
CLOSED_SECONDS = 30        # a page that has not refreshed for this long was closed


class LivePages:
    """The live pages of one server, watching the runs of one store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._watchers: dict[str, float] = {}  # a live page's session -> when it last refreshed
        self._metrics: OrderedDict[str, tuple[int, pd.DataFrame]] = OrderedDict()  # run -> (version, series)

    def refresh_interval(self, session: str) -> float:
        """Seconds until a live page refreshes again: 1 s while few watch, growing with the number of live
        pages on this server, so that a class watching runs leaves the server room for everyone else."""
        now = time.monotonic()
        with self._lock:
            self._watchers[session] = now
            for key, seen in list(self._watchers.items()):
                if now - seen > CLOSED_SECONDS:
                    del self._watchers[key]
            watching = len(self._watchers)
        return max(1.0, watching / WATCHERS_PER_SECOND)

    def metrics(self, run_id: str) -> pd.DataFrame:
        """A run's metric series, read from the store only when it has grown: every live page watching a run
        shares one read per flush, not one per refresh."""
        version = self.store.metrics_version(run_id)
        with self._lock:
            cached = self._metrics.get(run_id)
            if cached is not None and cached[0] == version:
                self._metrics.move_to_end(run_id)
                return cached[1]
        frame = self.store.metrics(run_id)
        with self._lock:
            self._metrics[run_id] = (version, frame)
            self._metrics.move_to_end(run_id)
            while len(self._metrics) > METRICS_CACHED:
                self._metrics.popitem(last=False)
        return frame
