"""A store with a size: what each run keeps, a limit per visitor, and an admin's prune."""

import time

import pytest

from explorer import registry
from explorer.cli import main
from explorer.errors import QuotaError
from explorer.identity import OWNER, Visitor
from explorer.training.admission import Quotas
from explorer.training.recipes import TrainSettings
from explorer.training.runs import RunManager

CONFIG = registry.get("lenet-bn").config


@pytest.fixture
def kept(tmp_path, tiny_data):
    """Alice's two finished runs, of one and of three epochs."""
    manager = RunManager(tmp_path / "home", max_running=2, threads=1, data_dir=tiny_data,
                         quotas=Quotas(store_mb_per_visitor=1, runs_per_visitor=5))
    alice = Visitor("alice")
    ids = [manager.start("lenet-bn", CONFIG, TrainSettings(lr=0.5, epochs=e, batch_size=32), alice, name=f"{e} ep")
           for e in (1, 3)]
    for run_id in ids:
        assert manager.wait(run_id, timeout=120).status == "done"
    yield manager, alice, ids
    manager.shutdown()


def test_what_a_run_keeps_counts_its_weights_and_its_rows(kept):
    manager, alice, (short, long) = kept
    sizes = manager.kept.sizes(alice.id)
    weights = manager.kept.weights_path(short).stat().st_size
    assert set(sizes) == {short, long} and sizes[short] > weights
    rows = len(manager.store.dynamics(long)) - len(manager.store.dynamics(short))
    assert sizes[long] - sizes[short] > rows * 70  # each dynamics row costs what it stores
    assert manager.kept.sizes("bob") == {}


def test_a_visitor_over_the_store_limit_is_told_which_runs_to_delete(kept, monkeypatch):
    manager, alice, (short, long) = kept
    settings = TrainSettings(lr=0.5, epochs=1, batch_size=32)
    assert sum(manager.kept.sizes(alice.id).values()) < 2**20  # under a megabyte: still admitted
    manager.stop(manager.start("lenet-bn", CONFIG, settings, alice))
    # as if her runs had grown past the limit (a real megabyte of runs takes minutes to train)
    monkeypatch.setattr("explorer.training.kept.Kept.sizes",
                        lambda self, owner=None: {short: 700_000, long: 900_000} if owner == alice.id else {})
    with pytest.raises(QuotaError) as err:
        manager.start("lenet-bn", CONFIG, settings, alice)
    assert err.value.limit == "EXPLORER_STORE_MB_PER_VISITOR"
    assert "1.5 MB" in err.value.message and err.value.message.index("3 ep") < err.value.message.index("1 ep")
    manager.stop(manager.start("lenet-bn", CONFIG, settings, Visitor("bob")))  # another visitor is not bound
    manager.stop(manager.start("lenet-bn", CONFIG, settings, OWNER))  # nor the machine's owner


def test_prune_deletes_old_finished_runs_and_their_weights_never_a_running_one(kept, capsys):
    manager, alice, (short, long) = kept
    weights = manager.kept.weights_path(short)
    queued = manager.start("lenet-bn", CONFIG, TrainSettings(lr=0.5, epochs=200, batch_size=8), alice)
    time.sleep(0.1)
    assert main(["prune", "--older-than", "0m", "--dry-run", "--home", str(manager.home)]) == 0
    out = capsys.readouterr().out
    assert short in out and long in out and queued not in out and "would delete 2 runs" in out
    assert weights.is_file() and manager.store.get(short) is not None
    assert main(["prune", "--older-than", "0m", "--home", str(manager.home)]) == 0
    assert "deleted 2 runs" in capsys.readouterr().out
    assert manager.store.get(short) is None and not weights.exists() and manager.store.get(queued) is not None
    manager.stop(queued)
    assert main(["prune", "--older-than", "soon", "--home", str(manager.home)]) == 2


def test_bench_store_writes_what_a_real_run_writes(kept):
    """`bench store` (docs/hosting.md's table of what each network and preset keeps) writes the rows a run's
    reports write: the same count as the real three-epoch run's, and about its bytes."""
    from explorer.training.kept import store_of

    manager, alice, (_, long) = kept
    record = manager.store.get(long)
    bench = store_of("lenet-bn", "quick", CONFIG, TrainSettings(lr=0.5, epochs=3, batch_size=32), 512, 200)
    assert bench.metric_rows == len(manager.store.metrics(long))
    assert bench.dynamics_rows == len(manager.store.dynamics(long))
    real_rows = manager.kept.sizes(alice.id)[long] - manager.kept.weights_path(long).stat().st_size
    assert 0.9 < bench.store_bytes / real_rows < 1.1 and 0.8 < bench.store_bytes / bench.disk_bytes < 1.3
    assert abs(bench.weights_bytes - manager.kept.weights_path(long).stat().st_size) < 2048
    assert record.test_acc is not None
