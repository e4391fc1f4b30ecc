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
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd
import torch

from explorer import registry
from explorer.config import ModelConfig, printable
from explorer.errors import ConfigError, MissingWeightsError, OwnerError, QuotaError
from explorer.i18n import N_, _, keep
from explorer.identity import OWNER, Visitor
from explorer.summary import summarize
from explorer.training import processes
from explorer.training.data import dataset_sizes, find_data_dir
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
from explorer.training.loop import default_threads
from explorer.training.measure import Measurements, Request
from explorer.training.recipes import KINDS, TrainSettings, check_trainable
from explorer.training.store import FINISHED, RunRecord, RunStore, StoreError
from explorer.training.train import Progress
from explorer.training.worker import (
    STOP_BY_SHUTDOWN,
    STOP_BY_USER,
    STOP_GRACE_SECONDS,
    Job,
    run_worker,
)

log = logging.getLogger(__name__)
NAME_CHARACTERS = 60
DATASET_BYTES = 70_000 * 28 * 28 + 70_000 * 8  # uint8 images and int64 labels on the device
RUNTIME_BYTES = 200 * 2**20  # torch's kernels and buffers that a training process touches (bench memory)
LEASE_SECONDS = 120.0      # a running run on another machine (Ray) whose worker has not beaten for this long was
                           # interrupted; a worker on this machine is judged by its process instead
GONE_SECONDS = 5.0         # a worker gone this long without its supervisor recording why was interrupted
WATCHERS_PER_SECOND = 5    # live pages refresh once a second up to this many watchers, then less often
METRICS_CACHED = 64        # runs whose metric series the server keeps for live pages


@dataclass(frozen=True)
class Quotas:
    """What one visitor may ask of a shared server; each refusal names its limit and what to do."""

    runs_per_visitor: int = 2       # queued and running at once
    max_queue: int = 50             # queued runs of everyone together
    max_seconds: float | None = None  # the estimated time of one run; None: no limit
    runs_per_address: int = 10      # queued and running from one network address: clearing a cookie makes a
                                    # new visitor, not a new address

    @classmethod
    def from_env(cls) -> Quotas:
        """A server's quotas: EXPLORER_RUNS_PER_VISITOR, EXPLORER_MAX_QUEUE, EXPLORER_MAX_RUN_MINUTES,
        EXPLORER_RUNS_PER_ADDRESS."""
        from explorer.training.estimate import max_run_seconds

        return cls(runs_per_visitor=_env_int("EXPLORER_RUNS_PER_VISITOR", 2),
                   max_queue=_env_int("EXPLORER_MAX_QUEUE", 50), max_seconds=max_run_seconds(),
                   runs_per_address=_env_int("EXPLORER_RUNS_PER_ADDRESS", 10))


UNLIMITED = Quotas(runs_per_visitor=10**9, max_queue=10**9, max_seconds=None, runs_per_address=10**9)


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    return int(text) if text.isdigit() and int(text) > 0 else default


def run_name(text: str) -> str:
    """A run's name as its owner typed it, made safe to show anywhere: control and formatting characters
    (a right-to-left override, say) dropped, spaces collapsed, at most NAME_CHARACTERS characters."""
    return " ".join(printable(text).split())[:NAME_CHARACTERS]


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
                 data_dir: str | None = None, quotas: Quotas = UNLIMITED, adopt_queued: bool = True,
                 backend: Backend | None = None) -> None:
        """`quotas`: what a visitor may ask (a shared server's limits; the CLI and tests have none).
        `adopt_queued`: take up the queued runs found in the store (a server restarting), not only new ones.
        `backend`: where runs execute; by default a Ray cluster if EXPLORER_RAY_ADDRESS is set, else local
        worker processes."""
        self.home = Path(home or default_home())
        self.store = RunStore(self.home / "runs.sqlite")
        self.weights_dir = self.home / "weights"
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self.max_running = max_running or int(os.environ.get("EXPLORER_MAX_RUNNING", 1))
        self.threads = threads
        self.data_dir = data_dir
        self.quotas = quotas
        self.backend = backend or backend_from_env()
        self._cv = threading.Condition()
        self._queue: deque[str] = deque()
        self._owners: dict[str, str] = {}   # a queued run's owner, for the round-robin order
        self._started: dict[str, int] = {}  # runs this manager has started, per owner
        self._running: set[str] = set()
        self._closing = self._shut_down = False
        self._watchers: dict[str, float] = {}  # a live page's session -> when it last refreshed
        self._metrics: OrderedDict[str, tuple[int, pd.DataFrame]] = OrderedDict()  # run -> (version, series)
        self.measurements = Measurements(self.store.path, memory_budget("cpu"))
        self._mark_stale()
        if adopt_queued:
            for r in self.store.with_status("queued"):
                self._queue.append(r.id)
                self._owners[r.id] = r.owner
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
        registry.get(model)
        if preset is not None and preset not in KINDS:
            raise ConfigError("preset", "must be one of {choices}, not {value!r}", choices=", ".join(KINDS),
                              value=preset)
        name = run_name(name)
        if not visitor.admin:
            active = self.store.with_status("queued", "running")
            mine = [r for r in active if r.owner == visitor.id]
            if len(mine) >= self.quotas.runs_per_visitor:
                raise QuotaError("EXPLORER_RUNS_PER_VISITOR",
                                 "you already have {n} runs queued or running, this server's limit per visitor "
                                 "(EXPLORER_RUNS_PER_VISITOR); stop one, or wait: {when}", n=len(mine),
                                 when=self._when_one_ends(mine))
            near = [r for r in active if visitor.address is not None and r.address == visitor.address]
            if len(near) >= self.quotas.runs_per_address:
                raise QuotaError("EXPLORER_RUNS_PER_ADDRESS",
                                 "{n} runs from your network address are queued or running, this server's limit per "
                                 "address (EXPLORER_RUNS_PER_ADDRESS); wait: {when}", n=len(near),
                                 when=self._when_one_ends(near))
        check_trainable(config, settings)
        find_data_dir(self.data_dir)
        need = self.check_memory(config, settings)
        # what is known now, without waiting for a measurement: a busy machine queues the run instead of
        # refusing it, and its worker measures before its first step (and ends it there if an idle
        # measurement puts it over this server's limit)
        estimate = self.estimate_time(config, settings, measure=False)
        if estimate is not None:
            self.check_time(estimate)
        run_id = uuid.uuid4().hex[:12]
        with self._cv:  # a reentrant lock: wait_seconds takes it too
            if len(self._queue) >= self.quotas.max_queue:
                wait = human_duration(self.wait_seconds(self._ordered()[0]))
                raise QuotaError("EXPLORER_MAX_QUEUE",
                                 "{n} runs are already waiting, this server's limit (EXPLORER_MAX_QUEUE); a place "
                                 "frees up when the next one starts, in {wait}", n=len(self._queue), wait=wait)
            self.store.create(run_id, model, config.kwargs(), dataclasses.asdict(settings), visitor.id, need,
                              preset=preset, name=name or None, address=visitor.address,
                              estimate_seconds=estimate.seconds if estimate is not None else None)
            self._queue.append(run_id)
            self._owners[run_id] = visitor.id
            self._cv.notify()
        return run_id

    def _ordered(self) -> list[str]:
        """The queue in the order runs start: round-robin over owners, so one person's runs never stand in
        front of everyone's (the k-th waiting run of an owner who has had n started comes at turn n + k),
        first come first served within a turn. Call with the lock held."""
        seen: dict[str, int] = {}
        turns = []
        for index, run_id in enumerate(self._queue):
            owner = self._owners.get(run_id, "")
            seen[owner] = seen.get(owner, 0) + 1
            turns.append((self._started.get(owner, 0) + seen[owner], index, run_id))
        return [run_id for *_, run_id in sorted(turns)]

    def wait_seconds(self, run_id: str) -> float:
        """About how long until a queued run starts: the running runs' remaining estimates, then the
        estimates of the runs ahead of it, over this server's max_running slots. A run admitted before anything
        was measured of it counts what a run of the same network and settings is expected to take."""
        now = time.time()
        with self._cv:
            running, order = list(self._running), self._ordered()
        ahead = order[:order.index(run_id)] if run_id in order else order
        records = [r for r in map(self.store.get, running + ahead) if r is not None]
        known = {_same_run(r): r.estimate_seconds for r in records if r.estimate_seconds}

        def expected(r: RunRecord) -> float:
            return r.estimate_seconds or known.get(_same_run(r), 0.0)

        slots = [max(0.0, expected(r) - (now - (r.started or now))) for r in records if r.id in running]
        slots = sorted(slots + [0.0] * max(0, self.max_running - len(slots)))[:max(1, self.max_running)]
        for record in records:
            if record.id not in running:
                slots[0] += expected(record)
                slots.sort()
        return slots[0]

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
            if run_id in self._queue:
                self._queue.remove(run_id)
                self._owners.pop(run_id, None)
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
            self.store.set_status(run_id, "interrupted", error=INTERRUPTED)
            record = self.store.get(run_id)
        progress = None
        if record.status == "running":
            data = self.store.progress(run_id)
            progress = Progress(**data) if data else None
        with self._cv:
            order = self._ordered()
            position = order.index(run_id) + 1 if run_id in order else None
        return RunView(record, progress, position)

    def refresh_interval(self, session: str) -> float:
        """Seconds until a live page refreshes again: 1 s while few watch, growing with the number of live
        pages on this server, so that a class watching runs leaves the server room for everyone else."""
        now = time.monotonic()
        with self._cv:
            self._watchers[session] = now
            for key, seen in list(self._watchers.items()):
                if now - seen > 30:  # a closed tab
                    del self._watchers[key]
            watching = len(self._watchers)
        return max(1.0, watching / WATCHERS_PER_SECOND)

    def metrics(self, run_id: str) -> pd.DataFrame:
        """A run's metric series, read from the store only when it has grown: every live page watching a run
        shares one read per flush, not one per refresh."""
        version = self.store.metrics_version(run_id)
        with self._cv:
            cached = self._metrics.get(run_id)
            if cached is not None and cached[0] == version:
                self._metrics.move_to_end(run_id)
                return cached[1]
        frame = self.store.metrics(run_id)
        with self._cv:
            self._metrics[run_id] = (version, frame)
            self._metrics.move_to_end(run_id)
            while len(self._metrics) > METRICS_CACHED:
                self._metrics.popitem(last=False)
        return frame

    def busy_slots(self) -> int:
        """Runs this manager is running or has queued: a new run waits when they fill its max_running slots.
        Counted in memory, so that a page can say so on every redraw without reading the store."""
        with self._cv:
            return len(self._running) + len(self._queue)

    def queue(self) -> list[RunView]:
        """Running runs, then queued ones in order: what everyone on a shared server sees."""
        with self._cv:
            ids = [*self._running, *self._ordered()]
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
            self.weights_file_of(record).unlink(missing_ok=True)
        self.store.delete(run_id)

    def load_weights(self, run_id: str) -> dict[str, torch.Tensor]:
        """A run's trained weights (weights_only=True), to look at: a run's link is a read-only view for
        whoever has it. Downloading the file stays the owner's (weights_file)."""
        return torch.load(self.weights_path(run_id), map_location="cpu", weights_only=True)

    def weights_file(self, run_id: str, visitor: Visitor = OWNER) -> bytes:
        """The run's weights file (a state_dict) for its owner or an admin to download."""
        self._check_owner(run_id, visitor, N_("download its weights"))
        return self.weights_path(run_id).read_bytes()

    def weights_file_of(self, record: RunRecord) -> Path:
        """Where a run's weights are: stored by file name in this data directory's weights/, so the directory
        can move (runs stored before this kept absolute paths, still honoured)."""
        return self.weights_dir / record.weights_path

    def weights_path(self, run_id: str) -> Path:
        record = self.store.get(run_id)
        if record is None or not record.weights_path or not self.weights_file_of(record).is_file():
            raise MissingWeightsError("run {run} has no saved weights", run=run_id[:40])
        return self.weights_file_of(record)

    def check_memory(self, config: ModelConfig, settings: TrainSettings) -> int:
        """The run's memory from its summary (nothing allocated); a ConfigError when it is over the budget."""
        need = self.estimate_bytes(config, settings)
        budget = memory_budget(settings.device)
        if need > budget:
            raise ConfigError("batch_size", "this run needs about {need:.1f} GiB but the budget is {budget:.1f} GiB "
                                            "(EXPLORER_MEMORY_BUDGET_GB); lower batch_size or resolution",
                              need=need / 2**30, budget=budget / 2**30)
        return need

    def estimate_time(self, config: ModelConfig, settings: TrainSettings, wait: float | None = None,
                      measure: bool = True) -> Estimate | None:
        """How long the run would take here: earlier runs of this config, or a measurement of a few steps in
        a process of its own (explorer.training.measure), waited for at most `wait` seconds (None: until it
        is taken; a page passes a second and shows StillMeasuring's text). With `measure` off, only what is
        known already (None if nothing is): nothing is started. Nothing is measured for a run over the memory
        budget, or that even the fastest machine could not train within this server's time limit (bounded
        from its summary): a page view costs the server no training."""
        train_images, test_images = dataset_sizes(self.data_dir)  # what this server really has
        images = min(settings.train_subset or train_images, train_images)
        self.check_memory(config, settings)
        floor = fastest_seconds(config, settings.device, images * settings.epochs, self.threads)
        if self.quotas.max_seconds is not None and floor > self.quotas.max_seconds:
            raise over_time_limit(_("at least {duration} even at this machine's peak speed").format(
                duration=human_duration(floor, about=False)), self.quotas.max_seconds)
        request = Request(config, settings.batch_size, settings.device, self.threads or default_threads(),
                          settings.augment)
        return estimate_run(config, settings.batch_size, settings.epochs, images, settings.device, self.store,
                            self.threads, test_images=test_images, tta=settings.tta, augment=settings.augment,
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

    def check_time(self, estimate: Estimate) -> None:
        """Refuse a run over this server's time limit, saying the estimate, the limit and what to do. Only an
        estimate that load cannot inflate refuses: one measured on a busy machine is the time now, not the
        run's, and the run waits its turn instead."""
        limit = self.quotas.max_seconds
        if limit is not None and not estimate.busy and estimate.seconds > limit:
            raise over_time_limit(estimate.text, limit)

    @staticmethod
    def estimate_bytes(config: ModelConfig, settings: TrainSettings) -> int:
        """The run's peak: the network's training memory at its batch size, the data set and torch's runtime
        (within 25% of the measured peaks of the catalog's book and quick presets: bench memory)."""
        totals = summarize(config, batch_size=settings.batch_size).totals
        momentum = totals.gradient_bytes if settings.momentum else 0  # SGD's momentum: a buffer per weight
        dynamics = totals.gradient_bytes  # a reported step keeps the weights before it (training.dynamics)
        return totals.training_bytes + momentum + dynamics + DATASET_BYTES + RUNTIME_BYTES

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
                run_id = self._ordered()[0]
                self._queue.remove(run_id)
                owner = self._owners.pop(run_id, "")
                if not self.store.claim(run_id, processes.identity()):  # stopped, deleted, or taken by another process
                    continue
                self._started[owner] = self._started.get(owner, 0) + 1
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
        job = Job(str(self.store.path), str(self.weights_dir), run_id, str(find_data_dir(self.data_dir)),
                  self.threads or default_threads(), self.quotas.max_seconds)
        self.backend.supervise(job)


_SERVERS: dict[tuple[tuple[str, str], ...], RunManager] = {}
_SERVERS_LOCK = threading.Lock()


def server_manager() -> RunManager:
    """This server process's run manager, with the quotas, data directory and limits of its environment (the
    EXPLORER_ variables): shared by every session, and made by `python -m explorer serve` before the first
    visitor, so that queued runs resume as soon as a restarted server is up. Another environment (a test's)
    gets a manager of its own; one that was shut down is made anew."""
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("EXPLORER_")))
    with _SERVERS_LOCK:
        manager = _SERVERS.get(key)
        if manager is None or manager.closed:
            manager = _SERVERS[key] = RunManager(quotas=Quotas.from_env())
            # the first visitor's estimate should not wait seconds for the forkserver to import torch
            threading.Thread(target=processes.warm, name="explorer-warm-forkserver", daemon=True).start()
    return manager


class Backend(Protocol):
    def supervise(self, job: Job) -> None:
        """Execute the run to its end, however it ends; the run's state is in the store."""


def backend_from_env() -> Backend:
    """A Ray cluster when EXPLORER_RAY_ADDRESS is set (the optional extra, requirements-ray.txt), else local
    worker processes."""
    address = os.environ.get("EXPLORER_RAY_ADDRESS", "").strip()
    if not address:
        return LocalWorkers()
    from explorer.training.ray_backend import RayCluster

    return RayCluster(address)


class LocalWorkers:
    """Each run in a worker process of this machine, forked from a forkserver that has torch loaded."""

    def supervise(self, job: Job) -> None:
        """Start the run's worker process and wait for it; record a worker that died as failed."""
        store = RunStore(Path(job.store_path))
        # The worker holds the reading end of this pipe; when this process dies, even by kill -9, the worker
        # reads end-of-file and stops its run as interrupted, rather than train on as an orphan.
        server_gone, server_alive = processes.context().Pipe(duplex=False)
        try:
            worker = processes.start(run_worker, (job, server_gone), f"explorer-run-{job.run_id}")
        finally:
            server_gone.close()
        asked: list[float] = []

        def check() -> None:
            if not asked and store.stop_flag(job.run_id):
                asked.append(time.monotonic())
            if asked and time.monotonic() - asked[0] > STOP_GRACE_SECONDS:
                worker.kill()  # it ignored its stop flag

        processes.watch(worker, None, check, every=0.5)
        server_alive.close()
        record = store.get(job.run_id)
        if record is not None and record.status == "running":  # the worker ended without recording an end
            status = "interrupted" if record.stop_requested == STOP_BY_SHUTDOWN else "failed"
            store.set_status(job.run_id, status, error=_exit_reason(worker.exitcode))


INTERRUPTED = keep("the process that ran it stopped (a server restart or a kill) while it was running")


def _same_run(record: RunRecord) -> str:
    """What makes two runs take the same time: their network, config and settings."""
    return json.dumps([record.model, record.config, record.settings], sort_keys=True, default=str)


def _stale(record: RunRecord) -> bool:
    """Whether a running run's worker is gone: its process no longer exists (or is a zombie), judged on this
    machine, so that a worker starved by load is never taken for a dead one. Only a worker this machine cannot
    see (a Ray actor) is judged by its heartbeat."""
    alive = processes.alive(record.worker)
    if alive is None:
        return (record.heartbeat or 0) < time.time() - LEASE_SECONDS
    # a worker that just died is its supervisor's to record (with its exit signal) for a few seconds first
    return not alive and (record.heartbeat or 0) < time.time() - GONE_SECONDS


def _exit_reason(code: int | None) -> str:
    """Why a worker ended without a result, kept to be read in the reader's language."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        if -code == signal.SIGKILL:
            return keep("the worker process was ended by signal {name} (killed from outside, or by the system for "
                        "lack of memory)", name=name)
        return keep("the worker process was ended by signal {name}", name=name)
    return keep("the worker process exited with code {code} before recording a result", code=code)


__all__ = ["RunManager", "RunView", "Quotas", "UNLIMITED", "default_home", "memory_budget", "server_manager"]
