"""Faults a shared server meets, each injected for real: damaged files, killed workers, full disks, two
processes on one data directory, hostile data files. Nothing already stored is lost; each has a clear message."""

import gzip
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from explorer import registry
from explorer.i18n import told
from explorer.training.data import DataError, find_data_dir, load_data, read_idx
from explorer.training.recipes import TrainSettings
from explorer.training.runs import RunManager
from explorer.training.store import RESERVE_BYTES, RunStore, StoreError
from explorer.training.worker import save_weights
from tests.browser import streamlit_server
from tests.conftest import write_dataset

LENET_BN = registry.get("lenet-bn").config
QUICK = TrainSettings(lr=0.5, epochs=1, batch_size=64)
SLOW = TrainSettings(lr=0.5, epochs=200, batch_size=8)


@contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A real filesystem of `size` at `path` (a tmpfs), to fill up; skips where mounting needs root."""
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def wait_until(predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("damage", [b"this is not a database" * 50, b""])
def test_a_damaged_run_store_is_moved_aside_and_a_new_one_starts(tmp_path, damage):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(damage)
    store = RunStore(path)
    assert store.recovered and "moved to" in store.recovered
    aside = next(tmp_path.glob("runs.sqlite.damaged-*"))
    assert aside.read_bytes() == damage  # the bad file is kept, not overwritten
    store.create("r1", "lenet", {}, {}, "", 1)
    assert [r.id for r in RunStore(path).list()] == ["r1"] and RunStore(path).recovered is None


def test_a_store_opened_while_another_process_creates_it_is_never_taken_for_damaged(tmp_path):
    """The CLI creating its store while a page (or a test) opens it: an empty file is what a truncated store
    looks like, so a new store appears only whole."""
    import threading

    def open_it(path, start: threading.Barrier, stores: list) -> None:
        start.wait()
        stores.append(RunStore(path))

    for attempt in range(20):
        path = tmp_path / str(attempt) / "runs.sqlite"
        stores, start = [], threading.Barrier(6)
        threads = [threading.Thread(target=open_it, args=(path, start, stores)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [s.recovered for s in stores] == [None] * 6
        assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(("-wal", "-shm"))) == \
            ["runs.sqlite", "runs.sqlite.reserve"]  # nothing moved aside, no half-made copy left


def test_a_truncated_run_store_keeps_its_copy_and_the_cli_says_so(tmp_path, tiny_data):
    home = tmp_path / "home"
    manager = RunManager(home, threads=1, data_dir=tiny_data)
    manager.wait(manager.start("lenet-bn", LENET_BN, QUICK), timeout=120)
    manager.shutdown()
    db = home / "runs.sqlite"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    original = db.read_bytes()
    db.write_bytes(original[: len(original) // 3])
    cli = subprocess.run([sys.executable, "-m", "explorer", "runs", "--home", str(home)], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).parent.parent)
    assert cli.returncode == 0 and "Traceback" not in cli.stderr
    assert "warning:" in cli.stderr and "moved to" in cli.stderr
    assert next(home.glob("runs.sqlite.damaged-*")).read_bytes() == original[: len(original) // 3]


def test_a_worker_killed_from_outside_fails_its_run_and_nothing_else(tmp_path, tiny_data):
    manager = RunManager(tmp_path / "home", threads=1, data_dir=tiny_data)
    done = manager.start("lenet-bn", LENET_BN, QUICK)
    assert manager.wait(done, timeout=120).status == "done"
    victim = manager.start("lenet-bn", LENET_BN, SLOW)
    wait_until(lambda: getattr(manager.view(victim).progress, "kind", "phase") != "phase")  # it trains
    pid = int(manager.view(victim).record.worker.split(":")[1])
    assert pid != os.getpid()  # it trains in a process of its own
    os.kill(pid, signal.SIGKILL)
    view = manager.wait(victim, timeout=60)
    assert view.status == "failed" and "SIGKILL" in told(view.record.error)
    assert manager.wait(manager.start("lenet-bn", LENET_BN, QUICK), timeout=120).status == "done"
    assert manager.view(done).record.confusion is not None  # earlier history intact
    manager.shutdown()


def test_weights_that_cannot_be_written_fail_the_run_with_the_reason(tmp_path, tiny_data):
    manager = RunManager(tmp_path / "home", threads=1, data_dir=tiny_data)
    shutil.rmtree(manager.weights_dir)
    manager.weights_dir.write_text("not a directory")  # every write under it fails, as on a broken disk
    view = manager.wait(manager.start("lenet-bn", LENET_BN, QUICK), timeout=120)
    assert view.status == "failed" and "could not save the weights" in told(view.record.error)
    assert len(manager.store.metrics(view.id)) > 0  # the metrics are kept
    manager.shutdown()


def test_a_full_disk_leaves_no_partial_weights(tmp_path):
    import torch

    with small_disk(tmp_path / "tiny", "256k") as disk:
        with pytest.raises(StoreError, match="the disk is full"):
            save_weights({"w": torch.zeros(1_000_000)}, disk / "run.pt")
        assert list(disk.iterdir()) == []


def fill(disk: Path) -> None:
    """Take every byte left on `disk`, as a log or a download fills a real one."""
    with open(disk / "filler", "wb") as filler, pytest.raises(OSError):
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()


def test_a_disk_that_fills_during_a_run_ends_it_failed_and_keeps_its_metrics(tmp_path, tiny_data):
    with small_disk(tmp_path / "tiny", "8m") as disk:
        manager = RunManager(disk / "home", threads=1, data_dir=tiny_data)
        try:
            run_id = manager.start("lenet-bn", LENET_BN, TrainSettings(lr=0.5, epochs=200, batch_size=8))
            wait_until(lambda: len(manager.store.metrics(run_id)) > 0)  # it trains and reports
            fill(disk)
            view = manager.wait(run_id, timeout=120)
            assert view.status == "failed" and "the disk is full" in told(view.record.error), view.record.error
            assert str(disk) not in told(view.record.error)
            assert len(manager.store.metrics(run_id)) > 0  # what it reported before is kept
            (disk / "filler").unlink()
            assert manager.wait(manager.start("lenet-bn", LENET_BN, QUICK), timeout=120).status == "done"
            assert (disk / "home" / "runs.sqlite.reserve").stat().st_size == RESERVE_BYTES  # held again
        finally:
            manager.shutdown()


def test_a_full_disk_under_the_run_store_is_said_as_such(tmp_path, tiny_data, monkeypatch):
    with small_disk(tmp_path / "tiny", "4m") as disk:
        manager = RunManager(disk / "home", threads=1, data_dir=tiny_data)
        first = manager.wait(manager.start("lenet-bn", LENET_BN, QUICK), timeout=120)
        assert first.status == "done"
        with open(disk / "filler", "wb") as filler, pytest.raises(OSError):
            while True:  # everything that is left, as a log or a download fills a real disk
                filler.write(b"\0" * 65536)
                filler.flush()
        rows = [{"step": i, "epoch": 0.0, "kind": "step", "train_loss": 1.0, "train_acc": 0.5, "test_acc": None,
                 "images_per_sec": 1.0, "elapsed": 1.0} for i in range(200)]
        with pytest.raises(StoreError, match="the disk is full: the run store cannot be written"):
            for _ in range(1000):  # rows of metrics until the disk is full (the log has room for a few writes)
                manager.store.add_metrics("f" * 12, rows)
        with pytest.raises(StoreError, match="the disk is full: the run store cannot be written") as refused:
            manager.start("lenet-bn", LENET_BN, QUICK)  # what the page and the CLI show
        assert str(disk) not in refused.value.text()  # a visitor never reads the server's paths
        # reads never fail because writes cannot: every page that shows stored runs still shows them
        assert manager.store.get(first.id).status == "done" and len(manager.store.metrics(first.id)) > 0
        assert [r.id for r in manager.store.list()] == [first.id] and manager.view(first.id).status == "done"
        assert manager.board() and len(manager.store.dynamics(first.id)) > 0 and manager.store.full
        restarted = RunManager(disk / "home", threads=1, data_dir=tiny_data, adopt_queued=False)
        assert restarted.store.get(first.id).status == "done" and not restarted.store.recovered  # not moved aside
        restarted.shutdown()
        assert not list((disk / "home").glob("runs.sqlite.damaged-*"))
        from explorer.identity import OWNER, Visitor
        from explorer.server import close_server
        from tests.test_app import app

        monkeypatch.setenv("EXPLORER_HOME", str(disk / "home"))
        monkeypatch.setenv("EXPLORER_DATA_DIR", tiny_data)
        for page, params in (("pages/runs.py", {"run": first.id}), ("pages/board.py", {}),
                             ("pages/train.py", {"run": first.id}), ("pages/inside.py", {"run": first.id})):
            owner = app(page, state={"visitor": OWNER}, **params)  # no exception box: it draws what is stored
            said = [w.value for w in owner.warning if "disk under the run store is full" in w.value]
            assert said or page not in ("pages/runs.py", "pages/train.py"), page  # said to the owner where runs start
        monkeypatch.setenv("EXPLORER_SHARED", "1")
        close_server()
        student = app("pages/runs.py", state={"visitor": Visitor("student")}, run=first.id)
        shown = " ".join(str(e.value) for kind in ("warning", "error", "info", "markdown", "caption")
                         for e in getattr(student, kind))
        assert str(disk) not in shown and "disk under the run store" not in shown  # visitors are not told
        close_server()
        (disk / "filler").unlink()  # space again: what was stored is all there, and runs start
        assert manager.store.get(first.id).status == "done"
        assert manager.wait(manager.start("lenet-bn", LENET_BN, QUICK), timeout=120).status == "done"
        manager.shutdown()


def test_a_second_process_on_the_same_directory_trains_nothing_twice_and_can_stop(tmp_path, tiny_data):
    home = tmp_path / "home"
    server = RunManager(home, threads=1, data_dir=tiny_data)
    slow = server.start("lenet-bn", LENET_BN, SLOW)
    queued = server.start("lenet-bn", LENET_BN, TrainSettings(lr=0.5, epochs=2, batch_size=64))
    wait_until(lambda: server.view(slow).status == "running")  # Start returns at once; its worker takes it up
    cli = RunManager(home, threads=1, data_dir=tiny_data, adopt_queued=False)  # as `python -m explorer train`
    assert cli.view(slow).status == "running"  # a live worker's run is not marked interrupted
    own = cli.start("lenet-bn", LENET_BN, QUICK)
    assert cli.wait(own, timeout=120).status == "done"
    assert cli.stop(slow)  # Stop from another process reaches the worker through the store
    assert server.wait(slow, timeout=60).status == "stopped"
    assert server.wait(queued, timeout=120).status == "done"
    metrics = server.store.metrics(queued)
    assert (metrics.kind == "epoch").sum() == 2  # trained once: two epochs, not four
    server.shutdown()
    cli.shutdown()


def test_garbage_inside_a_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    good = gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 10, 28, 28) + bytes(7840))
    path.write_bytes(good[:20] + b"\xff" * 200 + good[220:])
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert str(path) in err.value.message and "corrupt" in err.value.message


def test_a_header_claiming_millions_of_images_is_refused_unread(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:  # a gzip bomb: 200 MB of zeros in about 200 KB
        f.write(b"\x00\x00\x08\x03" + struct.pack(">3I", 4_000_000, 28, 28))
        for _ in range(200):
            f.write(bytes(2**20))
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="more than any MNIST or Fashion-MNIST file"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20  # reading it whole would allocate 200 MB; refused from its 16-byte header


def test_a_named_directory_missing_a_file_is_reported_not_replaced(tmp_path):
    data = write_dataset(tmp_path / "mine")
    next(data.glob("t10k-labels*")).unlink()
    with pytest.raises(DataError) as err:
        find_data_dir(str(data))
    assert "lacks t10k-labels-idx1-ubyte" in err.value.message
    load_data.cache_clear()


def test_a_server_killed_mid_run_leaves_no_orphan_and_a_restart_goes_on(tmp_path, tiny_data):
    home = tmp_path / "home"
    server = subprocess.Popen([sys.executable, "-m", "tests.serve_runs", str(home), tiny_data, "200", "1"],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    running, queued = server.stdout.readline().strip(), server.stdout.readline().strip()
    store = RunStore(home / "runs.sqlite")
    wait_until(lambda: len(store.metrics(running)) > 0)  # it trains
    worker = int(store.get(running).worker.split(":")[1])
    server.kill()  # SIGKILL: no shutdown code runs
    server.wait()
    wait_until(lambda: store.get(running).status == "interrupted", timeout=30)
    assert "server that started it stopped" in told(store.get(running).error)
    wait_until(lambda: not Path(f"/proc/{worker}").exists(), timeout=30)  # the worker did not train on
    assert store.get(queued).status == "queued"
    kept = len(store.metrics(running))
    restarted = RunManager(home, threads=1, data_dir=tiny_data)  # the server starts again
    assert restarted.wait(queued, timeout=120).status == "done"  # the queue goes on
    assert len(store.metrics(running)) == kept and restarted.view(running).status == "interrupted"
    restarted.shutdown()


def test_sigterm_to_the_servers_group_saves_the_run_and_starts_nothing_new(tmp_path, tiny_data):
    """systemd's default stop: SIGTERM to the server, its forkserver and its worker at once."""
    import os
    import signal

    home = tmp_path / "home"
    server = subprocess.Popen([sys.executable, "-m", "tests.serve_runs", str(home), tiny_data, "200", "1"],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent,
                              start_new_session=True)  # a process group of its own, as a service's
    running, queued = server.stdout.readline().strip(), server.stdout.readline().strip()
    store = RunStore(home / "runs.sqlite")
    wait_until(lambda: len(store.metrics(running)) > 0)  # it trains
    os.killpg(server.pid, signal.SIGTERM)
    assert server.wait(timeout=60) == 0
    record = store.get(running)
    assert record.status == "interrupted" and "shut down" in told(record.error), (record.status, record.error)
    assert (home / "weights" / record.weights_path).is_file()  # what it learned is kept
    assert store.get(queued).status == "queued"  # nothing new started during the shutdown
    env = {"EXPLORER_HOME": str(home), "EXPLORER_DATA_DIR": tiny_data, "EXPLORER_THREADS": "1"}
    with streamlit_server(env, serve=True):  # the hosting command; nobody opens a page
        wait_until(lambda: store.get(queued).status == "done", timeout=120)  # the queue goes on at once


def test_a_data_directory_moved_elsewhere_keeps_every_runs_weights(tmp_path, tiny_data):
    first = RunManager(tmp_path / "home", threads=1, data_dir=tiny_data)
    run_id = first.start("lenet-bn", LENET_BN, QUICK)
    assert first.wait(run_id, timeout=120).status == "done"
    first.shutdown()
    (tmp_path / "home").rename(tmp_path / "moved")  # a new disk, a backup restored elsewhere
    moved = RunManager(tmp_path / "moved", threads=1, data_dir=tiny_data)
    assert moved.store.get(run_id).weights_path == f"{run_id}.pt"  # stored by name, not by absolute path
    assert moved.kept.load(run_id).keys() == registry.build(LENET_BN).state_dict().keys()
    moved.delete(run_id)
    assert not (tmp_path / "moved" / "weights" / f"{run_id}.pt").exists()
    moved.shutdown()
