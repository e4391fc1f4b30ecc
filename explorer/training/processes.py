"""Processes that do a network's work for the server: a run's worker, an estimate's measurement, Inside's
views (a Service). All fork from one forkserver that imported torch and the engine once, so each starts at
once, in a clean process (no threads or locks of the server's copied in), and all yield the CPU to the
server's pages."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing import forkserver, resource_tracker, spawn
from pathlib import Path
from typing import Any

from explorer.errors import ExplorerError, QuotaError
from explorer.i18n import N_

NICENESS = 10  # training work yields the CPU to the server's pages: a knob change is not queued behind it
POLL_SECONDS = 0.05

_CONTEXT: multiprocessing.context.BaseContext | None = None


def context() -> multiprocessing.context.BaseContext:
    """The forkserver context every worker and measurement starts from (made once per process)."""
    global _CONTEXT
    if _CONTEXT is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["explorer.training.train"])
        _CONTEXT = ctx
    return _CONTEXT


def start(target: Callable[..., None], args: tuple, name: str) -> multiprocessing.process.BaseProcess:
    """Start `target(*args)` in a process of its own, as a daemon of this one.

    Ctrl-C in a terminal reaches the whole process group; a forkserver that is still importing torch would
    die of it. Started with SIGINT blocked (the mask is inherited), it never sees it. The resource tracker
    goes first: starting, it unblocks SIGINT in the calling thread.

    The child is not told this process's __main__: Streamlit installs the app's script as __main__, and a
    child told of it runs the script again before its target (a page's work in every worker)."""
    process = context().Process(target=target, name=name, daemon=True, args=args)
    resource_tracker.ensure_running()
    with _starting:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        spawn.get_preparation_data = _without_main
        try:
            process.start()
        finally:
            spawn.get_preparation_data = _preparation
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return process


def warm() -> None:
    """Start the forkserver now (it imports torch: seconds on a small machine), as start() would, so that the
    first run or measurement does not wait for it."""
    resource_tracker.ensure_running()
    with _starting:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            context()
            forkserver.ensure_running()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


_starting = threading.Lock()
_preparation = spawn.get_preparation_data


def _without_main(name: str) -> dict:
    """What a child needs to start (sys.path, the working directory), less the main module to import."""
    data = _preparation(name)
    data.pop("init_main_from_path", None)
    data.pop("init_main_from_name", None)
    return data


def identity(pid: int | None = None) -> str:
    """`host:pid:start` of a process (this one by default): what a run records of the process that trains
    it, so that any process on the same machine can tell whether it still exists. The start time (in clock
    ticks since boot) tells the process from a later one given the same pid."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_stat(pid)[19] if _stat(pid) else 0}"


def alive(worker: str | None) -> bool | None:
    """Whether the process `worker` (an identity(), or the older `host:pid`) still exists and is not a
    zombie; None where this machine cannot tell (another host, a Ray actor, nothing recorded). Load cannot
    make a live process look dead: a starved worker is still there."""
    host, _, rest = (worker or "").partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    stat = _stat(int(pid_text))
    if stat is None or stat[0] in ("Z", "X"):  # gone, or dead and not yet reaped
        return False
    return not start or start == "0" or stat[19] == start  # else the pid now belongs to another process


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state first), or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far (user and system; 0 where it is gone): a bound on its work that,
    unlike its wall time, other processes keeping the machine busy do not inflate."""
    stat = _stat(pid)
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK") if stat else 0.0


def resident_bytes(pid: int) -> int:
    """A process's resident memory (Linux's /proc; 0 where unknown or already gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


class ChildGone(Exception):
    """A watched child process ended without its reply."""

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(f"exit code {exitcode}")
        self.exitcode = exitcode


def watch(process: multiprocessing.process.BaseProcess, replies: multiprocessing.connection.Connection | None,
          check: Callable[[], None], every: float = POLL_SECONDS) -> Any:
    """Wait for a child process: for its reply on `replies`, or (None) for it to end, calling `check()` every
    `every` seconds meanwhile. `check` gives up by raising (a deadline, CPU time, memory, nobody waiting) or
    acts on the child (a stop request). A child that ends without replying raises ChildGone. The one loop
    every child of the server is watched by: Inside's service, a measurement, a run's worker."""
    while True:
        if replies is None:
            process.join(every)
            if not process.is_alive():
                return None
        elif replies.poll(every):
            try:
                return replies.recv()
            except (EOFError, OSError):
                raise ChildGone(process.exitcode) from None
        elif not process.is_alive() and not replies.poll():
            process.join()
            raise ChildGone(process.exitcode)
        check()


class ServiceDied(QuotaError):
    """A Service's process ended without its answer (killed from outside, say): the next request starts a
    fresh one."""

    def __init__(self, name: str, exitcode: int | None) -> None:
        super().__init__(name, N_("the {name} process ended unexpectedly (exit code {code})"), name=name,
                         code=exitcode)


class Service:
    """A process of its own that answers one request at a time with `handler(request)`, for work a page asks
    for that must not run in the server (a network built and run for Inside). Started on the first request
    and kept, so what the handler caches survives between requests; killed, and started afresh for the next
    request, when one takes over `seconds` or the process holds over `max_bytes`. Callers queue on a lock.

    The handler's ExplorerError reaches the caller as itself; any other exception as a QuotaError that
    names it (a visitor reads a message, never a traceback)."""

    def __init__(self, handler: Callable[[Any], Any], name: str, doing: str, seconds: float, max_bytes: int) -> None:
        """`doing`: what a request does, as the start of a sentence, marked with N_ so that a refusal says it
        in the reader's language (N_("Looking inside this network"))."""
        self.handler, self.name, self.doing, self.seconds, self.max_bytes = handler, name, doing, seconds, max_bytes
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: multiprocessing.connection.Connection | None = None

    def busy(self) -> bool:
        """Whether a request is being answered now (the next one waits for it)."""
        return self._lock.locked()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def ask(self, request: Any) -> Any:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._start()
            try:
                self._connection.send(request)
            except OSError:  # killed a moment ago (not yet reaped, so it looked alive): its pipe is closed
                self.stop()
                raise ServiceDied(self.name, None) from None
            started = time.monotonic()

            def check() -> None:
                if time.monotonic() - started > self.seconds:
                    raise QuotaError(self.name, "{doing} took over {seconds:g} s here, this server's limit",
                                     doing=self.doing, seconds=self.seconds)
                if resident_bytes(self._process.pid) > self.max_bytes:
                    raise QuotaError("EXPLORER_MEMORY_BUDGET_GB", "{doing} took over {gib:.1f} GiB of memory, "
                                     "this server's budget (EXPLORER_MEMORY_BUDGET_GB)", doing=self.doing,
                                     gib=self.max_bytes / 2**30)

            try:
                ok, answer = watch(self._process, self._connection, check)
            except ChildGone as gone:
                self.stop()
                raise ServiceDied(self.name, gone.exitcode) from None
            except QuotaError:
                self.stop()
                raise
            if ok:
                return answer
            raise answer

    def stop(self) -> None:
        """End the process (the next request starts a fresh one)."""
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.kill()
            self._process.join()
            self._connection.close()
        self._process = self._connection = None

    def _start(self) -> None:
        self._connection, theirs = context().Pipe()
        try:
            self._process = start(_serve, (self.handler, theirs), f"explorer-{self.name}")
        finally:
            theirs.close()


class Pool:
    """`size` Services with one handler, for work many pages ask for at once (a new config's summary). A
    request takes the first free one; requests wait their turn in about the order they came, and a page asks
    one thing at a time, so a session flooding the server holds one place in the line, not the line."""

    def __init__(self, handler: Callable[[Any], Any], name: str, doing: str, seconds: float, max_bytes: int,
                 size: int) -> None:
        self.services = [Service(handler, f"{name}-{i}", doing, seconds, max_bytes) for i in range(size)]
        self._free: queue.Queue[Service] = queue.Queue()
        for service in self.services:
            self._free.put(service)

    def ask(self, request: Any) -> Any:
        service = self._free.get()
        try:
            return service.ask(request)
        finally:
            self._free.put(service)

    def stop(self) -> None:
        for service in self.services:
            service.stop()


def _serve(handler: Callable[[Any], Any], connection: multiprocessing.connection.Connection) -> None:
    """A Service's process: answer each request, (True, answer) or (False, the error), until the server
    closes the pipe."""
    os.nice(NICENESS)
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return
        try:
            connection.send((True, handler(request)))
        except ExplorerError as err:
            connection.send((False, err))
        except Exception as err:  # noqa: BLE001 - the process serves every later request: it must outlive one
            connection.send((False, QuotaError("failed", "it failed: {error}", error=f"{type(err).__name__}: {err}")))
