"""A run's worker: the process (or Ray actor) that trains one run, reports to the run store, saves the
weights and records how the run ended. The run manager starts it through a backend and reads the store."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import ExplorerError
from explorer.i18n import N_, keep
from explorer.training import processes
from explorer.training.estimate import (
    MIN_RUN_SECONDS,
    StepTiming,
    check_against_run,
    human_duration,
    over_time_limit,
)
from explorer.training.load import BUSY_SHARE
from explorer.training.recipes import TrainSettings
from explorer.training.schema import RunRecord
from explorer.training.store import RunStore, StoreError, free_bytes
from explorer.training.train import Progress, TrainResult, train

log = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0        # metrics reach the store at least this often, and at the end of every epoch
PROGRESS_SECONDS = 0.5     # the live progress record, at most this often
HEARTBEAT_SECONDS = 1.0    # a worker's heartbeat; it also reads the stop flag then
STOP_GRACE_SECONDS = 30.0  # a worker that ignores its stop flag this long is killed
STOP_BY_USER, STOP_BY_SHUTDOWN, STOP_BY_SERVER_GONE = 1, 2, 3  # why a run was asked to stop


@dataclass(frozen=True)
class Job:
    """One run as a backend executes it: where its store and weights live, what data and threads it uses."""

    store_path: str
    weights_dir: str
    run_id: str
    data_dir: str
    threads: int
    max_seconds: float | None = None  # the server's time limit for one run (EXPLORER_MAX_RUN_MINUTES)


SERVER_GONE = keep("the server that started it stopped (killed or restarted) while it was running")
SHUT_DOWN = keep("the server was shut down while it trained; the weights it had learned were saved")


def config_of(record: RunRecord) -> tuple[ModelConfig, TrainSettings]:
    """Rebuild (and so re-validate) the config and settings a run was stored with."""
    return registry.config_from(record.model, record.config), TrainSettings(**record.settings)


class Reporter:
    """Writes a run's reports to the store as cheaply as a live page needs: the progress record at most every
    PROGRESS_SECONDS, metrics in batches (every FLUSH_SECONDS and each epoch), a warning when it changes
    (a network that looked dead may come back)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.buffer: list[dict] = []
        self.dynamics: list[dict] = []
        self.flushed = self.shown = 0.0
        self.warning = ""

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.kind != "phase" and p.warning != self.warning:
            self.store.set_warning(self.run_id, p.warning or None)
            self.warning = p.warning
        record = dataclasses.asdict(p)
        readings = record.pop("dynamics")  # stored in a table of their own, not in the live progress record
        if p.kind != "step" or now - self.shown > PROGRESS_SECONDS:
            self.store.set_progress(self.run_id, record)
            self.shown = now
        if p.kind == "phase":  # shown live, not stored as a metric
            return
        self.buffer.append(record)
        self.dynamics += [{"step": p.step, "epoch": p.epoch, **r} for r in readings]
        if p.kind == "epoch" or now - self.flushed > FLUSH_SECONDS:
            self.flush()
            self.flushed = now

    def flush(self) -> None:
        self.store.add_metrics(self.run_id, self.buffer)
        self.store.add_dynamics(self.run_id, self.dynamics)
        self.buffer.clear()
        self.dynamics.clear()


def admit(store: RunStore, job: Job, timing: StepTiming, seconds: float) -> None:
    """The worker's measurement before the first step, `seconds` for the whole run at its rate: kept as the
    run's estimate, and the run ended here if it is over the server's time limit on an idle machine. A run is
    admitted without waiting for a measurement, so this is where a too-slow one is refused; one measured
    while the machine is busy trains (load is a reason to wait, never to refuse)."""
    store.set_estimate(job.run_id, seconds)
    if job.max_seconds is not None and not timing.busy and seconds > job.max_seconds:
        raise over_time_limit(human_duration(seconds), job.max_seconds)


def record_result(store: RunStore, job: Job, result: TrainResult, stop_reason: int) -> None:
    """Save a finished training's weights and record its end: done, stopped, or interrupted by a shutdown."""
    weights = save_weights(result.state_dict, Path(job.weights_dir) / f"{job.run_id}.pt")
    if result.timing is not None:
        store.set_calibration(job.run_id, {**result.timing.describe(), "compiled": result.compiled,
                                           "others_cpu": round(result.others_cpu, 3)})
        last = result.history[-1] if result.history else None
        if last and result.seconds >= MIN_RUN_SECONDS and result.others_cpu <= BUSY_SHARE:
            check_against_run(result.timing, last.images_per_sec, store, result.images, result.compiled)
    interrupted = result.stopped and stop_reason in (STOP_BY_SHUTDOWN, STOP_BY_SERVER_GONE)
    status = "done" if not result.stopped else "interrupted" if interrupted else "stopped"
    why = None if not interrupted else SERVER_GONE if stop_reason == STOP_BY_SERVER_GONE else SHUT_DOWN
    store.finish(job.run_id, status, confusion=result.confusion or None, predictions=result.predictions or None,
                 weights_path=weights.name, seconds=result.seconds, error=why)
    if store.get(job.run_id) is None:  # deleted while it ran
        weights.unlink(missing_ok=True)


def failure_message(err: BaseException) -> str:
    """What a failed run stores: an engine error kept to be read in the reader's language, else its name
    and text (a bug's words, which no catalog holds)."""
    return err.kept() if isinstance(err, ExplorerError) else f"{type(err).__name__}: {err}"


def run_worker(job: Job, server_gone: multiprocessing.connection.Connection) -> None:
    """A run's worker process: train, reporting to the store; save the weights; record the end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the parent asks to stop
    os.nice(processes.NICENESS)
    store = RunStore(Path(job.store_path))
    record = store.get(job.run_id)
    if record is None:
        return
    store.set_worker(job.run_id, processes.identity())
    stop = threading.Event()
    flag = [0]

    def shut_down(signum: int, frame: object) -> None:  # a service manager stops the server's whole group
        flag[0] = STOP_BY_SHUTDOWN
        stop.set()  # the run ends within a batch, saves its weights and is recorded as interrupted

    signal.signal(signal.SIGTERM, shut_down)

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            if server_gone.poll():  # end-of-file: the server that started this run is gone
                flag[0] = STOP_BY_SERVER_GONE
                stop.set()
                return
            try:
                flag[0] = store.beat(job.run_id)
            except StoreError:
                continue
            if flag[0]:
                stop.set()

    threading.Thread(target=heartbeat, name="explorer-heartbeat", daemon=True).start()
    reporter = Reporter(store, job.run_id)
    try:
        config, settings = config_of(record)
        result = train(config, settings, reporter, stop, job.threads, job.data_dir, cache=store,
                       on_measured=lambda timing, seconds: admit(store, job, timing, seconds))
        reporter.flush()
        if flag[0] == STOP_BY_SHUTDOWN:  # its server sees why, and starts nothing more
            store.request_stop(job.run_id, STOP_BY_SHUTDOWN)
        record_result(store, job, result, flag[0])
    except Exception as err:  # the run fails; the worker records why and ends
        log.exception("run %s failed", job.run_id)
        with contextlib.suppress(StoreError):
            reporter.flush()
        store.set_status(job.run_id, "failed", error=failure_message(err))
    finally:
        stop.set()


def save_weights(state_dict: dict[str, torch.Tensor], path: Path) -> Path:
    """Write the weights to a temporary file and rename it: a full disk leaves no partial file behind."""
    partial = path.with_suffix(".partial")
    try:
        torch.save(state_dict, partial)
        partial.replace(path)
    except (OSError, RuntimeError) as err:  # torch reports a full disk as "unexpected pos ..."
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        need = sum(t.numel() * t.element_size() for t in state_dict.values())
        free = free_bytes(path.parent)
        full = free is None or free < need or getattr(err, "errno", 0) == errno.ENOSPC
        raise StoreError("could not save the weights in {path}: {reason}. The run's metrics are kept; free some "
                         "space or set EXPLORER_HOME to another directory", path=str(path.parent),
                         reason=N_("the disk is full") if full else str(err)) from None
    return path

