"""Busy is not broken: on a machine held busy by CPU hogs every button still does what it promised. Load is
a reason to wait, never to refuse, and a starved worker is not a dead one."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer.identity import Visitor
from explorer.training import processes
from explorer.training.runs import RunManager
from explorer.training.store import RunStore
from tests.conftest import write_dataset

ROOT = Path(__file__).parent.parent


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[list[subprocess.Popen]]:
    """`n` processes spinning at full speed (at the default niceness, like a classmate's work) while inside."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_a_starved_worker_is_alive_and_a_gone_one_is_interrupted(tmp_path):
    """Liveness is the process, not a heartbeat load can delay: a worker stopped (SIGSTOP, the extreme of
    starvation) for ten minutes of missed beats still trains; one that is gone is recorded interrupted."""
    store = RunStore(tmp_path / "runs.sqlite")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(sleeper.pid, signal.SIGSTOP)
        for run_id, worker in (("starved00001", processes.identity(sleeper.pid)), ("gone00000001", None)):
            store.create(run_id, "lenet", {}, {}, "", 1)
            store.claim(run_id, worker or "")
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        store.set_worker("gone00000001", processes.identity(gone.pid).replace(":0", ":1"))
        with store._db() as db:  # neither has beaten for ten minutes
            db.execute("UPDATE runs SET heartbeat = ?", (time.time() - 600,))
        manager = RunManager(tmp_path, threads=1, adopt_queued=False)
        assert manager.view("starved00001").status == "running"
        assert manager.view("gone00000001").status == "interrupted"
        manager.shutdown()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_pid_given_to_another_process_is_not_the_worker():
    identity = processes.identity()
    host, pid, start = identity.split(":")
    assert processes.alive(identity) is True
    assert processes.alive(f"{host}:{pid}:{int(start) + 1}") is False  # the same pid, started at another time
    assert processes.alive(f"{host}:{pid}") is True  # a store written before start times were kept
    assert processes.alive(f"another-host:{pid}:{start}") is None  # this machine cannot tell: the heartbeat can
    assert processes.alive("ray actor 0123") is None and processes.alive(None) is None


def test_quick_googlenet_trains_from_the_cli_on_a_machine_held_busy(tmp_path):
    """The CLI has no time limit: with hogs on every core while it starts and measures, and its worker stopped
    for longer than the old heartbeat lease, the quick preset trains to its result once the machine frees up,
    and the exit status says it did. (Under the hogs its niced worker gets a few percent of a core: it waits,
    and nothing takes the wait for a death.)"""
    data = write_dataset(tmp_path / "data")
    home = tmp_path / "home"
    with cpu_hogs(2 * (os.cpu_count() or 2)):
        cli = subprocess.Popen([sys.executable, "-m", "explorer", "train", "googlenet", "--preset", "quick",
                                "--data-dir", str(data), "--home", str(home)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        store, pid, deadline = None, None, time.monotonic() + 120
        while pid is None and time.monotonic() < deadline:  # its own worker, once it has recorded itself
            store = store or (RunStore(home / "runs.sqlite") if (home / "runs.sqlite").exists() else None)
            runs = store.list() if store else []
            if runs and runs[0].worker and runs[0].worker.split(":")[1] != str(cli.pid):
                pid = int(runs[0].worker.split(":")[1])
            time.sleep(0.1)
        assert pid is not None and cli.poll() is None
        os.kill(pid, signal.SIGSTOP)  # starved outright, for longer than the old 15 s heartbeat lease
        time.sleep(20)
        assert store.get(runs[0].id).status == "running"
        os.kill(pid, signal.SIGCONT)
    out, err = cli.communicate(timeout=300)
    assert cli.returncode == 0, err
    assert " done: " in out and "best test acc" in out and "Traceback" not in err
    assert store.get(runs[0].id).status == "done"


def test_a_run_that_did_not_train_is_not_a_success_for_the_cli(tmp_path):
    """`train` exits 1 when its run ended without training (its worker killed before the first report)."""
    data = write_dataset(tmp_path / "data")
    home = tmp_path / "home"
    cli = subprocess.Popen([sys.executable, "-m", "explorer", "train", "lenet-bn", "--epochs", "200", "--batch-size",
                            "8", "--data-dir", str(data), "--home", str(home)], cwd=ROOT, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = RunStore(home / "runs.sqlite").list() if (home / "runs.sqlite").exists() else []
        if runs and runs[0].worker and runs[0].worker.split(":")[1] != str(cli.pid):
            break
        time.sleep(0.05)
    os.kill(int(runs[0].worker.split(":")[1]), signal.SIGKILL)
    out, err = cli.communicate(timeout=120)
    assert cli.returncode == 1, (out, err)
    assert "SIGKILL" in err and "Traceback" not in err


@pytest.mark.parametrize("hogs", [0, 4])
def test_a_lessons_train_both_is_accepted_and_queued_on_a_busy_server(tmp_path, monkeypatch, hogs):
    """The pair is queued at once, busy or not: nothing is measured before Start on a server either."""
    from explorer import lessons
    from explorer.training.admission import Quotas

    manager = RunManager(tmp_path / "home", data_dir=str(write_dataset(tmp_path / "data")), threads=1,
                         quotas=Quotas(max_seconds=30 * 60))
    try:
        with cpu_hogs(hogs):
            started = time.perf_counter()
            first, second = lessons.queue_pair(manager, lessons.get("resnet"), Visitor("student"))
            took = time.perf_counter() - started
        assert took < 10, took
        assert {manager.view(first).status, manager.view(second).status} <= {"queued", "running", "done"}
    finally:
        manager.shutdown()
