"""The measurements behind a server's estimates, taken where training runs: in a process of its own.

A page view must not train in the server. Timing a few steps of a config builds its network and takes real
SGD steps (a 1024-channel LeNet at 256 px took 105 s and 5 GB in the server before this), so a server asks
this service instead. One measurement runs at a time, in a process forked like a run's worker and niced
like it; it is killed past MEASURE_CPU_SECONDS of its own CPU time or past the memory budget, and abandoned
once nobody has asked for it for ABANDON_SECONDS (its page was closed). A page that asks gets the
measurement, or StillMeasuring at once and asks again a second later; Start never waits for it.

A busy machine is a reason to wait, never to refuse: the bound is the CPU time the measurement itself used,
which other processes cannot inflate the way they stretch its wall time (a measurement starved by twenty
busy processes took minutes of wall time for seconds of its own CPU).
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from explorer.config import ModelConfig
from explorer.errors import ExplorerError, QuotaError
from explorer.i18n import _
from explorer.training import processes
from explorer.training.estimate import Measured, measure
from explorer.training.load import Readings
from explorer.training.store import RunStore

MEASURE_CPU_SECONDS = 120.0  # a measurement that used this much CPU time is killed: the network is too slow here
ABANDON_SECONDS = 5.0    # nobody asked for this long (a page asks every second while it shows "measuring")
FAILED_SECONDS = 60.0    # a failed measurement is not tried again for this long: its message is the answer


@dataclass(frozen=True)
class Request:
    """One measurement: what it times, and with how many threads."""

    config: ModelConfig
    batch_size: int
    device: str
    threads: int
    augment: bool


class StillMeasuring(Exception):
    """The measurement an estimate needs is under way, or waits behind others: ask again shortly."""

    def __init__(self, ahead: int, seconds: float) -> None:
        self.ahead, self.seconds = ahead, seconds
        super().__init__(self.text)

    @property
    def text(self) -> str:
        if self.ahead:
            if self.ahead == 1:
                return _("Waiting for 1 other measurement, then timing a few training steps of this network…")
            return _("Waiting for {n} other measurements, then timing a few training steps of this network…").format(
                n=self.ahead)
        return _("Measuring a few training steps of this network in a worker process… ({seconds:.0f} s)").format(
            seconds=self.seconds)


class Measurements:
    """A server's measurements: asked for by any thread, taken one at a time by a thread of its own, each in
    a fresh process; kept like the in-process ones (explorer.training.load.Readings)."""

    def __init__(self, store_path: Path | None, max_bytes: int) -> None:
        self.store_path, self.max_bytes = store_path, max_bytes
        self._cv = threading.Condition()
        self._asked: dict[Request, float] = {}      # waiting or being measured -> when last asked, first come first
        self._current: tuple[Request, float] | None = None  # being measured, since
        self._done = Readings()
        self._failed: dict[Request, tuple[float, ExplorerError]] = {}
        self._thread: threading.Thread | None = None
        self._closed = False

    def get(self, request: Request, wait: float | None = None) -> Measured:
        """The measurement of `request`, waiting at most `wait` seconds for it (None: until it is taken).
        Raises StillMeasuring when it is not there yet, the ExplorerError (QuotaError, ConfigError) it failed with."""
        deadline = None if wait is None else time.monotonic() + wait
        with self._cv:
            while True:
                if (kept := self._done.get(request)) is not None:
                    return kept
                failed = self._failed.get(request)
                if failed is not None and time.monotonic() - failed[0] < FAILED_SECONDS:
                    raise failed[1].again()
                self._asked[request] = time.monotonic()
                self._start_thread()
                self._cv.notify_all()
                if deadline is not None and time.monotonic() >= deadline:
                    order = list(self._asked)
                    since = self._current[1] if self._current and self._current[0] == request else time.monotonic()
                    raise StillMeasuring(order.index(request), time.monotonic() - since)
                self._cv.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))

    def known(self, request: Request) -> Measured | None:
        """The measurement of `request` if it was taken already (and still stands); starts nothing."""
        with self._cv:
            return self._done.get(request)

    def close(self) -> None:
        """End the measuring thread (and abandon a measurement under way): it stops with its owner."""
        with self._cv:
            self._closed = True
            self._asked.clear()
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _start_thread(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._work, name="explorer-measurements", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cv:
                while True:
                    now = time.monotonic()
                    for gone in [r for r, asked in self._asked.items() if now - asked > ABANDON_SECONDS]:
                        del self._asked[gone]
                    if self._closed:
                        return
                    if self._asked:
                        break
                    self._cv.wait()
                request = next(iter(self._asked))
                self._current = (request, now)
            try:
                outcome = self._measure(request)
            except Exception as err:  # this thread serves every later estimate: it must outlive any one
                outcome = QuotaError("measurement", "the measurement could not start: {error}",
                                     error=f"{type(err).__name__}: {err}")
            with self._cv:
                self._current = None
                self._asked.pop(request, None)
                if isinstance(outcome, Measured):
                    self._done.put(request, outcome, outcome.busy)
                elif outcome is not None:
                    now = time.monotonic()
                    self._failed = {r: f for r, f in self._failed.items() if now - f[0] < FAILED_SECONDS}
                    self._failed[request] = (now, outcome)
                self._cv.notify_all()

    def _measure(self, request: Request) -> Measured | ExplorerError | None:
        """Take one measurement in a process of its own: the measurement, why it failed, or None if it was
        abandoned."""
        receive, send = processes.context().Pipe(duplex=False)
        try:
            process = processes.start(_measure_in_process, (request, self.store_path, send), "explorer-measure")
        finally:
            send.close()
        def check() -> None:
            if processes.cpu_seconds(process.pid) > MEASURE_CPU_SECONDS:
                raise QuotaError("measurement", "timing a few training steps used over {seconds:g} s of CPU time "
                                                "here: this network is too slow to train on this server; choose a "
                                                "smaller resolution or fewer channels", seconds=MEASURE_CPU_SECONDS)
            if processes.resident_bytes(process.pid) > self.max_bytes:
                raise QuotaError("EXPLORER_MEMORY_BUDGET_GB",
                                 "timing a few training steps took over {gib:.1f} GiB of memory, this server's "
                                 "budget (EXPLORER_MEMORY_BUDGET_GB); lower batch_size or resolution",
                                 gib=self.max_bytes / 2**30)
            with self._cv:
                if time.monotonic() - self._asked.get(request, 0.0) > ABANDON_SECONDS:
                    raise _Abandoned

        try:
            answer = processes.watch(process, receive, check)
        except processes.ChildGone as gone:
            return QuotaError("measurement", "the measurement's process ended unexpectedly (exit code {code})",
                              code=gone.exitcode)
        except QuotaError as err:
            return err
        except _Abandoned:
            return None  # nobody asks for it any more
        finally:
            with contextlib.suppress(OSError):
                process.kill()
            process.join()
            receive.close()
        if isinstance(answer, (Measured, ExplorerError)):
            return answer
        return QuotaError("measurement", "the measurement failed: {error}", error=answer)


class _Abandoned(Exception):
    """Nobody asks for a measurement any more."""


def _measure_in_process(request: Request, store_path: Path | None,
                        send: multiprocessing.connection.Connection) -> None:
    """A measurement's process: measure, send the result (or why it failed) and end."""
    os.nice(processes.NICENESS)
    try:
        store = RunStore(store_path) if store_path is not None else None
        send.send(measure(request.config, request.batch_size, request.device, request.threads, store,
                          request.augment))
    except Exception as err:  # sent back as the estimate's refusal
        send.send(err if isinstance(err, ExplorerError) else f"{type(err).__name__}: {err}")
