"""Where a run executes: a worker process of this machine (LocalWorkers), or a Ray cluster's actor when
EXPLORER_RAY_ADDRESS is set (ray_backend). A backend starts the run's worker, waits for it, and records a
worker that ended without a result."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Protocol

from explorer.i18n import keep
from explorer.training import processes
from explorer.training.store import RunStore
from explorer.training.worker import STOP_BY_SHUTDOWN, STOP_GRACE_SECONDS, Job, run_worker


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
        who = processes.identity(worker.pid)
        asked: list[float] = []

        def check() -> None:
            if not asked and store.stop_flag(job.run_id):
                asked.append(time.monotonic())
            if asked and time.monotonic() - asked[0] > STOP_GRACE_SECONDS:
                worker.kill()  # it ignored its stop flag

        processes.watch(worker, None, check, every=0.5)
        # A forkserver killed with its process group (a service manager's stop) reports its workers as ended,
        # with no exit code (255), while they still save what they learned: wait for the worker itself.
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while processes.alive(who) and time.monotonic() < deadline:
            time.sleep(0.1)
        if processes.alive(who):  # it ignored its stop flag too
            os.kill(worker.pid, signal.SIGKILL)
        server_alive.close()
        record = store.get(job.run_id)
        if record is not None and record.status == "running":  # the worker ended without recording an end
            status = "interrupted" if record.stop_requested == STOP_BY_SHUTDOWN else "failed"
            store.set_status(job.run_id, status, error=_exit_reason(worker.exitcode))



def _exit_reason(code: int | None) -> str:
    """Why a worker ended without a result, kept to be read in the reader's language."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        if -code == signal.SIGKILL:
            return keep("the worker process was ended by signal {name} (killed from outside, or by the system for "
                        "lack of memory)", name=name)
        return keep("the worker process was ended by signal {name}", name=name)
    return keep("the worker process exited with code {code} before recording a result", code=code)
