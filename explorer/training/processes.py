"""Processes that do training work for the server: a run's worker and an estimate's measurement. Both fork
from one forkserver that imported torch and the engine once, so each starts at once, in a clean process
(no threads or locks of the server's copied in), and both yield the CPU to the server's pages."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing import forkserver, resource_tracker, spawn
from pathlib import Path

NICENESS = 10  # training work yields the CPU to the server's pages: a knob change is not queued behind it

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


def resident_bytes(pid: int) -> int:
    """A process's resident memory (Linux's /proc; 0 where unknown or already gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0
