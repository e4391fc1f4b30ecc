"""The run manager: each run trains in a worker process of its own, never in the caller (or a page's script
run), so a crash, an out-of-memory kill or a full disk ends that run and nothing else.

A bounded number of runs execute at once and the rest wait in a queue. A supervisor thread claims a queued
run in the store (exactly one process gets it, even when the CLI and a server share a data directory),
forks its worker from a forkserver that has torch loaded (a run starts in well under a second), and waits.
The worker writes progress, metrics and a heartbeat to the store and reads its stop flag there, so Stop
works from any process and a page reads one small progress record. A run whose worker stopped beating
was interrupted; a worker that died is recorded as failed, with the reason.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import OwnerError, QuotaError
from explorer.i18n import N_, _, keep
from explorer.identity import OWNER, Visitor
from explorer.training import processes
from explorer.training.admission import (
    UNLIMITED,
    Quotas,
    Refusal,
    check_memory,
    check_time,
    memory_budget,
    over_quota,
    quota_error,
    run_name,
)
from explorer.training.backends import Backend, backend_from_env
from explorer.training.data import DEFAULT_DATASET, dataset_sizes, find_data_dir
from explorer.training.estimate import (
    DataTiming,
    Estimate,
    Measured,
    estimate_run,
    fastest_seconds,
    human_duration,
    over_time_limit,
    saved_step,
)
from explorer.training.fair_queue import FairQueue, expected_wait
from explorer.training.kept import Kept
from explorer.training.live import LivePages
from explorer.training.loop import default_threads
from explorer.training.measure import Measurements, Request
from explorer.training.recipes import TrainSettings, check_kind, check_trainable
from explorer.training.schema import FINISHED, RunRecord
from explorer.training.store import NewRun, RunStore, StoreError
from explorer.training.train import Progress
from explorer.training.worker import STOP_BY_SHUTDOWN, STOP_BY_USER, Job

log = logging.getLogger(__name__)
LEASE_SECONDS = 120.0      # a running run on another machine (Ray) whose worker has not beaten for this long was
                           # interrupted; a worker on this machine is judged by its process instead
GONE_SECONDS = 5.0         # a worker gone this long without its supervisor recording why was interrupted


def default_home() -> Path:
    return Path(os.environ.get("EXPLORER_HOME", Path.home() / ".cnn-explorer")).expanduser()


def store_at(home: str | Path | None = None) -> RunStore:
    """The run store of a data directory (default: default_home()), as the app, the CLI and benchmarks open it."""
    return RunStore(Path(home or default_home()) / "runs.sqlite")


@dataclass(frozen=True)
class RunRequest:
    """A run to start: a catalog network, its config and settings, the preset it came from, its name."""

    model: str
    config: ModelConfig
    settings: TrainSettings
    preset: str | None = None
    name: str = ""


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
                 data_dir: str | None = None, quotas: Quotas = UNLIMITED, adopt_queued: bool = True,
                 backend: Backend | None = None) -> None:
        """`quotas`: what a visitor may ask (a shared server's limits; the CLI and tests have none).
        `adopt_queued`: take up the queued runs found in the store (a server restarting), not only new ones.
        `backend`: where runs execute; by default a Ray cluster if EXPLORER_RAY_ADDRESS is set, else local
        worker processes."""
        self.home = Path(home or default_home())
        self.store = store_at(self.home)
        self.weights_dir = self.home / "weights"
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self.kept = Kept(self.store, self.weights_dir)
        self.max_running = max_running or int(os.environ.get("EXPLORER_MAX_RUNNING", 1))
        self.threads = threads
        self.data_dir = data_dir
        self.quotas = quotas
        self.backend = backend or backend_from_env()
        self.live = LivePages(self.store)
        self._cv = threading.Condition()
        self._queue = FairQueue()
        self._running: set[str] = set()
        self._closing = self._shut_down = False
        self.measurements = Measurements(self.store.path, memory_budget("cpu"))
        self._mark_stale()
        if adopt_queued:
            for r in self.store.with_status("queued"):
                self._queue.push(r.id, r.owner)
        self._workers = [threading.Thread(target=self._work, name=f"explorer-supervisor-{i}", daemon=True)
                         for i in range(self.max_running)]
        for w in self._workers:
            w.start()
        atexit.register(self.shutdown)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop this process's running runs (recorded as interrupted) and wait for their workers to end."""
        with self._cv:
            self._closing = self._shut_down = True
            self._queue.clear()  # queued runs stay queued in the store and resume at the next start
            running = list(self._running)
        for run_id in running:
            self.store.request_stop(run_id, STOP_BY_SHUTDOWN)
        deadline = time.monotonic() + timeout
        while running and time.monotonic() < deadline:
            time.sleep(0.05)
            with self._cv:
                running = list(self._running)
        with self._cv:
            self._cv.notify_all()  # idle supervisors wake, see the shutdown and end
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        self.measurements.close()

    @property
    def closed(self) -> bool:
        """shutdown() was called (a SIGTERM seen by a worker also stops it claiming runs, but is not this)."""
        return self._shut_down

    # -- what callers use -------------------------------------------------------------------------
    def start(self, model: str, config: ModelConfig, settings: TrainSettings, visitor: Visitor = OWNER,
              preset: str | None = None, name: str = "") -> str:
        """Validate and queue a run; returns its id at once. `preset` records which one it came from (book,
        quick, fast), `name` what its owner calls it. Raises ConfigError for what cannot run or is over a
        quota."""
        return self.start_many([RunRequest(model, config, settings, preset, name)], visitor)[0]

    def start_many(self, requests: list[RunRequest], visitor: Visitor = OWNER) -> list[str]:
        """Validate and queue runs together (a lesson's pair): all of them or, refused, none. Each is checked
        on its own first (trainable, memory, time); then one decision in the run store's transaction admits
        them against every quota at once, so that no other start, in this process or another, slips between
        the count and the insert."""
        rows = [self._validated(r, visitor) for r in requests]
        if not visitor.admin:
            self.kept.check_quota(visitor.id, self.quotas.store_mb_per_visitor)

        def check(active: list[RunRecord]) -> None:  # in the store's transaction: it takes no lock of ours
            if (refusal := over_quota(active, visitor, self.quotas, len(rows))) is not None:
                raise refusal

        try:
            self.store.admit(rows, check)
        except Refusal as refusal:  # said in words once the store's lock is released
            raise self._refusal(refusal) from None
        with self._cv:
            for row in rows:
                self._queue.push(row.run_id, visitor.id)
            self._cv.notify_all()
        return [row.run_id for row in rows]

    def _validated(self, request: RunRequest, visitor: Visitor) -> NewRun:
        """A run checked on its own, before any quota: its network and settings train, fit the memory budget
        and (by what is known now, nothing measured) the time limit."""
        registry.get(request.model)
        if request.preset is not None:
            check_kind(request.model, request.preset)
        check_trainable(request.config, request.settings)
        self.data_of(request.settings.dataset)  # a DataError, saying how to get it, when it is not here
        need = check_memory(request.config, request.settings)
        # what is known now, without waiting for a measurement: a busy machine queues the run instead of
        # refusing it, and its worker measures before its first step (and ends it there if an idle
        # measurement puts it over this server's limit)
        estimate = self.estimate_time(request.config, request.settings, measure=False)
        if estimate is not None:
            check_time(estimate, self.quotas.max_seconds)
        return NewRun(uuid.uuid4().hex[:12], request.model, request.config.kwargs(),
                      dataclasses.asdict(request.settings), visitor.id, need, request.preset,
                      run_name(request.name) or None, visitor.address,
                      estimate.seconds if estimate is not None else None)

    def prune(self, older_than: float, dry_run: bool = False) -> list[tuple[RunRecord, int]]:
        """Delete finished runs created more than `older_than` seconds ago, with their weights (an admin's
        tool: `python -m explorer prune`); the runs and the bytes each kept. With `dry_run`, delete nothing."""
        old = self.kept.finished_before(time.time() - older_than)
        if not dry_run:
            for record, _size in old:
                self.delete(record.id)
        return old

    def _refusal(self, refusal: Refusal) -> QuotaError:
        """A quota's refusal in words, with when a place should free up (worked out after the transaction)."""
        if refusal.limit == "EXPLORER_MAX_QUEUE":
            with self._cv:
                ahead = self._queue.ordered()
            wait = human_duration(self.wait_seconds(ahead[0])) if ahead else _("a moment")
            return QuotaError(refusal.limit, "{n} runs are already waiting, this server's limit (EXPLORER_MAX_QUEUE); "
                              "a place frees up when the next one starts, in {wait}", n=len(refusal.runs), wait=wait)
        return quota_error(refusal, self._when_one_ends(refusal.runs))

    def wait_seconds(self, run_id: str) -> float:
        """About how long until a queued run starts (fair_queue.expected_wait), by what this manager runs and
        has queued."""
        with self._cv:
            running, order = list(self._running), self._queue.ordered()
        ahead = order[:order.index(run_id)] if run_id in order else order
        records = [r for r in map(self.store.get, running + ahead) if r is not None]
        return expected_wait(records, set(running), self.max_running, time.time())

    def _when_one_ends(self, runs: list[RunRecord]) -> str:
        """When the first of these runs should end, in words, for a refusal that asks to wait for one."""
        now, ends = time.time(), []
        for r in runs:
            start = (r.started or now) if r.status == "running" else now + self.wait_seconds(r.id)
            ends.append(max(0.0, start + (r.estimate_seconds or 0) - now))
        if not ends:
            return _("try again soon")
        return _("the first of them should end in {wait}").format(wait=human_duration(min(ends)))

    def may_act(self, run_id: str, visitor: Visitor) -> bool:
        """Whether `visitor` may stop, delete or download this run: its owner, or an admin."""
        record = self.store.get(run_id)
        return record is not None and (visitor.admin or record.owner == visitor.id)

    def _check_owner(self, run_id: str, visitor: Visitor, action: str) -> None:
        """`action` (marked with N_) is said in the refusal in the reader's language."""
        if not self.may_act(run_id, visitor):
            raise OwnerError("only the run's owner can {action}; you can watch it, and train the same config "
                             "yourself", action=action)

    def share(self, run_id: str, shared: bool, visitor: Visitor = OWNER) -> None:
        """Put a run on the class board, or take it off: its owner's choice (off until then). The board shows
        what was trained and how well, never who."""
        self._check_owner(run_id, visitor, N_("share it"))
        self.store.set_shared(run_id, shared)

    def board(self, visitor: Visitor = OWNER) -> list[RunRecord]:
        """The runs the class board draws for `visitor`: every run with a result for an admin (the machine's
        owner), else the runs their owners shared."""
        return [r for r in self.store.list() if r.best_test_acc is not None and (visitor.admin or r.shared)]

    def stop(self, run_id: str, visitor: Visitor = OWNER) -> bool:
        """Stop a queued or running run, whichever process runs it (a running one ends within about a
        second and one batch). False if it had already finished."""
        self._check_owner(run_id, visitor, N_("stop it"))
        with self._cv:
            self._queue.remove(run_id)
        record = self.store.get(run_id)
        if record is None or record.status in FINISHED:
            return False
        if record.status == "queued":
            self.store.set_status(run_id, "stopped")  # a claim of it now fails, in this process or another
        else:
            self.store.request_stop(run_id, STOP_BY_USER)
        return True

    def view(self, run_id: str) -> RunView | None:
        """The run as stored, its newest progress (one small record) and its place in this queue."""
        record = self.store.get(run_id)
        if record is None:
            return None
        if record.status == "running" and _stale(record):
            with contextlib.suppress(StoreError):  # a page reads what is stored even when nothing can be written
                self.store.set_status(run_id, "interrupted", error=INTERRUPTED)
                record = self.store.get(run_id)
        progress = None
        if record.status == "running":
            data = self.store.progress(run_id)
            progress = Progress(**data) if data else None
        with self._cv:
            order = self._queue.ordered()
            position = order.index(run_id) + 1 if run_id in order else None
        return RunView(record, progress, position)

    def busy_slots(self) -> int:
        """Runs this manager is running or has queued: a new run waits when they fill its max_running slots.
        Counted in memory, so that a page can say so on every redraw without reading the store."""
        with self._cv:
            return len(self._running) + len(self._queue)

    def queue(self) -> list[RunView]:
        """Running runs, then queued ones in order: what everyone on a shared server sees."""
        with self._cv:
            ids = [*self._running, *self._queue.ordered()]
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

    def delete(self, run_id: str, visitor: Visitor = OWNER) -> None:
        self._check_owner(run_id, visitor, N_("delete it"))
        self.stop(run_id, visitor)
        record = self.store.get(run_id)
        if record and record.weights_path:
            self.kept.weights_of(record).unlink(missing_ok=True)
        self.store.delete(run_id)

    def weights_file(self, run_id: str, visitor: Visitor = OWNER) -> bytes:
        """The run's weights file (a state_dict) for its owner or an admin to download."""
        self._check_owner(run_id, visitor, N_("download its weights"))
        return self.kept.weights_path(run_id).read_bytes()

    def data_of(self, dataset: str = DEFAULT_DATASET) -> str:
        """The directory of a data set's files: this manager's data_dir names Fashion-MNIST's; MNIST is found
        by EXPLORER_MNIST_DIR or torchvision's cache (explorer.training.data). DataError when it is missing."""
        return str(find_data_dir(self.data_dir if dataset == DEFAULT_DATASET else None, dataset))

    def estimate_time(self, config: ModelConfig, settings: TrainSettings, wait: float | None = None,
                      measure: bool = True) -> Estimate | None:
        """How long the run would take here: earlier runs of this config, or a measurement of a few steps in
        a process of its own (explorer.training.measure), waited for at most `wait` seconds (None: until it
        is taken; a page passes a second and shows StillMeasuring's text). With `measure` off, only what is
        known already (None if nothing is): nothing is started. Nothing is measured for a run over the memory
        budget, or that even the fastest machine could not train within this server's time limit (bounded
        from its summary): a page view costs the server no training."""
        train_images, test_images = dataset_sizes(self.data_of(settings.dataset), settings.dataset)  # what is here
        images = min(settings.train_subset or train_images, train_images)
        check_memory(config, settings)
        # a run with a time budget trains at least one epoch, maybe no more: the estimate tells the rest
        floor = fastest_seconds(config, settings.device, images * (1 if settings.minutes else settings.epochs),
                                self.threads)
        if self.quotas.max_seconds is not None and floor > self.quotas.max_seconds:
            raise over_time_limit(_("at least {duration} even at this machine's peak speed").format(
                duration=human_duration(floor, about=False)), self.quotas.max_seconds)
        request = Request(config, settings.batch_size, settings.device, self.threads or default_threads(),
                          settings.augment)
        return estimate_run(config, settings.batch_size, settings.epochs, images, settings.device, self.store,
                            self.threads, test_images=test_images, tta=settings.tta, augment=settings.augment,
                            minutes=settings.minutes,
                            measured=(lambda: self.measurements.get(request, wait)) if measure else
                            (lambda: self._known(request)))

    def _known(self, request: Request) -> Measured | None:
        """A measurement of `request` taken already, here or saved in the store by an idle measurement (a run's
        worker saves its own); nothing is measured. A saved one leaves out the data path (a few percent)."""
        known = self.measurements.known(request)
        if known is None and (step := saved_step(request.config, request.batch_size, request.device,
                                                 request.threads, self.store)) is not None:
            known = Measured(step, DataTiming(0.0, busy=False))
        return known

    # -- supervisors ------------------------------------------------------------------------------------
    def _mark_stale(self) -> None:
        for record in self.store.with_status("running"):
            if _stale(record):
                self.store.set_status(record.id, "interrupted", error=INTERRUPTED)

    def _work(self) -> None:
        while True:
            with self._cv:
                while (not self._queue or self._closing) and not self._shut_down:
                    self._cv.wait()
                if self._shut_down:  # a thread stops with its owner
                    return
                run_id, owner = self._queue.pop()
            # claimed outside the lock: a store write may wait for another process's, and admission (which
            # holds the store's write lock) must never wait for this lock
            if not self.store.claim(run_id, processes.identity()):  # stopped, deleted, or taken by another process
                continue
            with self._cv:
                self._queue.started(owner)
                self._running.add(run_id)
            try:
                self._supervise(run_id)
            except Exception as err:  # the supervisor must outlive any one run
                log.exception("run %s failed outside training", run_id)
                with contextlib.suppress(StoreError):
                    self.store.set_status(run_id, "failed", error=keep("its worker process could not run: {error}",
                                                                          error=str(err)))
            finally:
                ended = self.store.get(run_id)
                with self._cv:
                    self._running.discard(run_id)
                    if ended is not None and ended.stop_requested == STOP_BY_SHUTDOWN:
                        self._closing = True  # SIGTERM reached this process group: start nothing new

    def _supervise(self, run_id: str) -> None:
        self.store.set_progress(run_id, dataclasses.asdict(Progress.phase_report("starting a worker process")))
        # resolved here and passed on: a worker forks from a forkserver (or runs on another machine) that keeps
        # the environment it started with, so EXPLORER_DATA_DIR or EXPLORER_THREADS set later would never reach it
        record = self.store.get(run_id)
        if record is None:  # deleted since it was claimed
            return
        job = Job(str(self.store.path), str(self.weights_dir), run_id, self.data_of(record.dataset),
                  self.threads or default_threads(), self.quotas.max_seconds)
        self.backend.supervise(job)


INTERRUPTED = keep("the process that ran it stopped (a server restart or a kill) while it was running")


def _stale(record: RunRecord) -> bool:
    """Whether a running run's worker is gone: its process no longer exists (or is a zombie), judged on this
    machine, so that a worker starved by load is never taken for a dead one. Only a worker this machine cannot
    see (a Ray actor) is judged by its heartbeat."""
    alive = processes.alive(record.worker)
    if alive is None:
        return (record.heartbeat or 0) < time.time() - LEASE_SECONDS
    # a worker that just died is its supervisor's to record (with its exit signal) for a few seconds first
    return not alive and (record.heartbeat or 0) < time.time() - GONE_SECONDS


__all__ = ["RunManager", "RunRequest", "RunView", "default_home"]
