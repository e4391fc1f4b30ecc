"""The run manager: training happens in worker threads it owns, never in the caller (or a page's script run).

A bounded number of runs execute at once, the rest wait in a queue; each run has a stop event, its newest
progress in memory and its history in the store. A new manager marks runs a dead process left running as
interrupted and takes up the queued ones again.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer import registry
from explorer.config import ModelConfig
from explorer.data import find_data_dir, load_fashion_mnist
from explorer.errors import ConfigError
from explorer.estimate import Estimate, estimate_run, human_duration
from explorer.store import FINISHED, RunRecord, RunStore
from explorer.summary import summarize
from explorer.train import Progress, TrainSettings, check_trainable, train

log = logging.getLogger(__name__)

DATASET_BYTES = 70_000 * 28 * 28 + 70_000 * 8  # uint8 images and int64 labels on the device
MAX_QUEUED = 100
FLUSH_SECONDS = 2.0


def default_home() -> Path:
    return Path(os.environ.get("EXPLORER_HOME", Path.home() / ".cnn-explorer")).expanduser()


def memory_budget(device: str) -> int:
    """Bytes a run may need: EXPLORER_MEMORY_BUDGET_GB, else 90% of free GPU memory or half of RAM."""
    if os.environ.get("EXPLORER_MEMORY_BUDGET_GB"):
        return int(float(os.environ["EXPLORER_MEMORY_BUDGET_GB"]) * 2**30)
    if device == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info()[0] * 0.9)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


@dataclass(frozen=True)
class RunView:
    """A run as a page or the CLI shows it: stored facts plus live progress and queue position."""

    record: RunRecord
    progress: Progress | None
    position: int | None  # 1 = next to start

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def status(self) -> str:
        return self.record.status


class RunManager:
    def __init__(self, home: Path | None = None, max_running: int | None = None, threads: int | None = None,
                 data_dir: str | None = None, max_seconds: float | None = None) -> None:
        """`max_seconds`: runs estimated to take longer are refused (a shared server's limit; None: no limit)."""
        self.home = Path(home or default_home())
        self.store = RunStore(self.home / "runs.sqlite")
        self.weights_dir = self.home / "weights"
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self.max_running = max_running or int(os.environ.get("EXPLORER_MAX_RUNNING", 1))
        self.threads = threads
        self.data_dir = data_dir
        self.max_seconds = max_seconds
        self._cv = threading.Condition()
        self._queue: deque[str] = deque()
        self._stops: dict[str, threading.Event] = {}
        self._live: dict[str, Progress] = {}
        self._running: set[str] = set()
        self._closing = False
        for record in self.store.with_status("running"):
            self.store.set_status(record.id, "interrupted", error="the server stopped while this run was running")
        for record in self.store.with_status("queued"):
            self._queue.append(record.id)
        self._workers = [threading.Thread(target=self._work, name=f"explorer-run-{i}", daemon=True)
                         for i in range(self.max_running)]
        for w in self._workers:
            w.start()
        atexit.register(self.shutdown)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop running runs (recorded as interrupted) and let the workers finish before the process exits."""
        with self._cv:
            self._closing = True
            self._queue.clear()  # queued runs stay queued in the store and resume at the next start
            for event in self._stops.values():
                event.set()
            running = bool(self._running)
        deadline = time.monotonic() + timeout
        while running and time.monotonic() < deadline:
            time.sleep(0.05)
            with self._cv:
                running = bool(self._running)

    # -- what callers use -------------------------------------------------------------------------
    def start(self, model: str, config: ModelConfig, settings: TrainSettings, owner: str = "") -> str:
        """Validate and queue a run; returns its id at once. Raises ConfigError for what cannot run."""
        registry.get(model)
        check_trainable(config, settings)
        find_data_dir(self.data_dir)
        need = self.estimate_bytes(config, settings)
        budget = memory_budget(settings.device)
        if need > budget:
            raise ConfigError("batch_size", f"this run needs about {need / 2**30:.1f} GiB but the budget is "
                                            f"{budget / 2**30:.1f} GiB; lower batch_size or resolution")
        self.check_time(self.estimate_time(config, settings))
        run_id = uuid.uuid4().hex[:12]
        with self._cv:
            if len(self._queue) >= MAX_QUEUED:
                raise ConfigError("queue", f"{MAX_QUEUED} runs are already waiting; try again later")
            self.store.create(run_id, model, config.kwargs(), dataclasses.asdict(settings), owner, need)
            self._queue.append(run_id)
            self._cv.notify()
        return run_id

    def stop(self, run_id: str) -> bool:
        """Stop a queued or running run (a running one ends within one batch). False if already finished."""
        with self._cv:
            if run_id in self._queue:
                self._queue.remove(run_id)
                self.store.set_status(run_id, "stopped")
                return True
            if run_id in self._stops:
                self._stops[run_id].set()
                return True
        return False

    def view(self, run_id: str) -> RunView | None:
        record = self.store.get(run_id)
        if record is None:
            return None
        with self._cv:
            position = self._queue.index(run_id) + 1 if run_id in self._queue else None
            progress = self._live.get(run_id)
        return RunView(record, progress, position)

    def queue(self) -> list[RunView]:
        """Running runs, then queued ones in order: what everyone on a shared server sees."""
        with self._cv:
            ids = [*self._running, *self._queue]
        return [v for v in (self.view(i) for i in ids) if v is not None]

    def wait(self, run_id: str, timeout: float | None = None, poll: float = 0.1) -> RunView:
        """Block until the run has finished (for the CLI and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            view = self.view(run_id)
            if view is None or view.status in FINISHED:
                return view
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {view.status} after {timeout} s")
            time.sleep(poll)

    def delete(self, run_id: str) -> None:
        self.stop(run_id)
        record = self.store.get(run_id)
        if record and record.weights_path:
            Path(record.weights_path).unlink(missing_ok=True)
        self.store.delete(run_id)

    def load_weights(self, run_id: str) -> dict[str, torch.Tensor]:
        record = self.store.get(run_id)
        if record is None or not record.weights_path:
            raise ConfigError("run", f"run {run_id} has no saved weights")
        return torch.load(record.weights_path, map_location="cpu", weights_only=True)

    def config_of(self, record: RunRecord) -> tuple[ModelConfig, TrainSettings]:
        """Rebuild (and so re-validate) the config and settings a run was stored with."""
        return registry.config_from(record.model, record.config), TrainSettings(**record.settings)

    def estimate_time(self, config: ModelConfig, settings: TrainSettings) -> Estimate:
        """How long the run would take here: earlier runs of this config, or a measurement of a few steps."""
        data = load_fashion_mnist(self.data_dir)  # the images this server really has (cached after the first)
        images = min(settings.train_subset or len(data.train_labels), len(data.train_labels))
        return estimate_run(config, settings.batch_size, settings.epochs, images, settings.device, self.store,
                            self.threads, test_images=len(data.test_labels))

    def check_time(self, estimate: Estimate) -> None:
        """Refuse a run over this server's time limit, saying the estimate, the limit and what to do."""
        if self.max_seconds is not None and estimate.seconds > self.max_seconds:
            raise ConfigError("estimate", f"this run would take {estimate.text}, over this server's limit of "
                                          f"{human_duration(self.max_seconds)} (EXPLORER_MAX_RUN_MINUTES). "
                                          "Choose the quick preset, a smaller resolution or fewer epochs, or "
                                          "train on a GPU.")

    @staticmethod
    def estimate_bytes(config: ModelConfig, settings: TrainSettings) -> int:
        """Weights, gradients, optimizer state and activations at the batch size, plus the dataset."""
        return summarize(config, batch_size=settings.batch_size).totals.training_bytes + DATASET_BYTES

    # -- the workers --------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._queue or self._closing:
                    self._cv.wait()
                run_id = self._queue.popleft()
                self._stops[run_id] = threading.Event()
                self._running.add(run_id)
            try:
                self._execute(run_id)
            except Exception:  # the worker must outlive any one run
                log.exception("run %s failed outside training", run_id)
            finally:
                with self._cv:
                    self._running.discard(run_id)
                    self._stops.pop(run_id, None)
                    self._live.pop(run_id, None)

    def _execute(self, run_id: str) -> None:
        record = self.store.get(run_id)
        if record is None:  # deleted while queued
            return
        self.store.set_status(run_id, "running")
        buffer: list[dict] = []
        last_flush = time.monotonic()

        def on_progress(p: Progress) -> None:
            nonlocal last_flush
            with self._cv:
                self._live[run_id] = p
            if p.kind == "phase":  # shown live, not stored as a metric
                return
            buffer.append(dataclasses.asdict(p))
            if p.kind == "epoch" or time.monotonic() - last_flush > FLUSH_SECONDS:
                self.store.add_metrics(run_id, buffer)
                buffer.clear()
                last_flush = time.monotonic()

        try:
            config, settings = self.config_of(record)
            result = train(config, settings, on_progress, self._stops[run_id], self.threads, self.data_dir)
        except Exception as err:
            log.exception("run %s failed", run_id)
            self.store.add_metrics(run_id, buffer)
            message = err.message if isinstance(err, ConfigError) else f"{type(err).__name__}: {err}"
            self.store.set_status(run_id, "failed", error=message)
            return
        self.store.add_metrics(run_id, buffer)
        weights = self.weights_dir / f"{run_id}.pt"
        torch.save(result.state_dict, weights)
        status = "done" if not result.stopped else "interrupted" if self._closing else "stopped"
        self.store.finish(run_id, status, confusion=result.confusion or None,
                          predictions=result.predictions or None, weights_path=str(weights), seconds=result.seconds)


__all__ = ["RunManager", "RunView", "default_home", "memory_budget"]
