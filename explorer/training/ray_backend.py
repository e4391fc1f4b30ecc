"""Runs on a Ray cluster, for a class larger than one machine: set EXPLORER_RAY_ADDRESS (``auto``, or
``HOST:PORT`` of the head node) and install the optional extra, requirements-ray.txt.

Each run is a Ray actor that trains in a thread of its own and keeps its reports; the server's supervisor
polls it twice a second and writes the reports to the run store, so pages, Stop, quotas and the history
work as with local workers, and the store never has to be reachable from the cluster. Stop is a flag the
actor checks every batch; an actor that ignores it is killed, like a local worker. Weights come back to
the server with the result. A node needs torch and the data set (Debian's package, or the same directory
as the server's); the engine's code is shipped with the job.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import ray
import torch
from ray.exceptions import GetTimeoutError, RayActorError

import explorer
from explorer import registry
from explorer.i18n import keep
from explorer.training.recipes import TrainSettings
from explorer.training.store import RunStore, StoreError
from explorer.training.train import Progress, TrainResult, train
from explorer.training.worker import STOP_GRACE_SECONDS, Job, Reporter, failure_message, record_result

POLL_SECONDS = 0.5
POLL_TIMEOUT = 60.0  # an actor that does not answer a poll for this long is taken for dead


@ray.remote
class RunActor:
    """One run on a Ray worker: trains in a thread so that polls and Stop are answered while it trains."""

    def __init__(self, threads: int) -> None:
        torch.set_num_threads(threads)  # Ray starts its workers with OMP_NUM_THREADS=1
        self.threads = threads
        self.lock = threading.Lock()
        self.reports: list[Progress] = []
        self.stop_event = threading.Event()
        self.result: TrainResult | None = None
        self.error = ""
        self.finished = threading.Event()

    def start(self, model: str, config: dict, settings: dict, data_dir: str) -> None:
        threading.Thread(target=self._train, args=(model, config, settings, data_dir), daemon=True).start()

    def _train(self, model: str, config: dict, settings: dict, data_dir: str) -> None:
        try:
            self.result = train(registry.config_from(model, config), TrainSettings(**settings), self._report,
                                self.stop_event, self.threads, data_dir)
        except Exception as err:  # reported to the supervisor, which records the run as failed
            self.error = failure_message(err)
        finally:
            self.finished.set()

    def _report(self, p: Progress) -> None:
        with self.lock:
            self.reports.append(p)

    def poll(self) -> tuple[list[Progress], bool]:
        """The reports since the last poll, and whether training has ended."""
        finished = self.finished.is_set()
        with self.lock:
            reports, self.reports = self.reports, []
        return reports, finished

    def outcome(self) -> tuple[TrainResult | None, str]:
        return self.result, self.error

    def stop(self) -> None:
        self.stop_event.set()


class RayCluster:
    """The run manager's backend for a Ray cluster; connects once per process."""

    def __init__(self, address: str | None = None) -> None:
        if not ray.is_initialized():
            ray.init(address=address, runtime_env={"py_modules": [str(Path(explorer.__file__).parent)]},
                     log_to_driver=False)

    def supervise(self, job: Job) -> None:
        store = RunStore(Path(job.store_path))
        record = store.get(job.run_id)
        if record is None:
            return
        settings = TrainSettings(**record.settings)
        actor = RunActor.options(num_cpus=job.threads, num_gpus=1 if settings.device == "cuda" else 0,
                                 name=f"explorer-run-{job.run_id}").remote(job.threads)
        store.set_worker(job.run_id, f"ray actor {actor._actor_id.hex()[:12]}")
        reporter = Reporter(store, job.run_id)
        flag, asked = 0, None
        try:
            actor.start.remote(record.model, record.config, record.settings, job.data_dir)
            while True:
                reports, finished = ray.get(actor.poll.remote(), timeout=POLL_TIMEOUT)
                for p in reports:
                    reporter(p)
                if finished:
                    break
                flag = flag or store.beat(job.run_id)
                if flag and asked is None:
                    actor.stop.remote()
                    asked = time.monotonic()
                if asked is not None and time.monotonic() - asked > STOP_GRACE_SECONDS:
                    raise TimeoutError("it ignored its stop flag and was killed")
                time.sleep(POLL_SECONDS)
            reporter.flush()
            result, error = ray.get(actor.outcome.remote(), timeout=POLL_TIMEOUT)
            if result is None:
                store.set_status(job.run_id, "failed", error=error)
            else:
                record_result(store, job, result, flag)
        except (RayActorError, GetTimeoutError, TimeoutError) as err:
            reporter.flush()
            store.set_status(job.run_id, "failed", error=keep("its Ray worker ended: {error}", error=_short(err)))
        except StoreError as err:  # the weights could not be saved
            store.set_status(job.run_id, "failed", error=err.kept())
        finally:
            ray.kill(actor)


def _short(err: BaseException) -> str:
    """Ray's errors carry pages of context; the first line says what happened."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
