"""The Ray backend on a real local Ray instance (2 CPUs): a short run, a stop and a failure, each recorded in
the run store as with local workers. Skipped where the optional extra (requirements-ray.txt) is absent."""

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-ray.txt")

from explorer import registry  # noqa: E402
from explorer.i18n import told  # noqa: E402
from explorer.training.backends import LocalWorkers, backend_from_env  # noqa: E402
from explorer.training.ray_backend import RayCluster  # noqa: E402
from explorer.training.recipes import TrainSettings  # noqa: E402
from explorer.training.runs import RunManager  # noqa: E402
from tests.test_faults import wait_until  # noqa: E402

LENET_BN = registry.get("lenet-bn").config


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False)
    yield RayCluster()
    ray.shutdown()


@pytest.fixture
def manager(cluster, tmp_path, tiny_data):
    manager = RunManager(tmp_path / "home", threads=1, data_dir=tiny_data, backend=cluster)
    yield manager
    manager.shutdown()


def test_a_run_trains_on_ray_and_its_metrics_and_weights_reach_the_store(manager):
    view = manager.wait(manager.start("lenet-bn", LENET_BN, TrainSettings(lr=0.5, epochs=2, batch_size=64)),
                        timeout=180)
    assert view.status == "done", view.record.error
    assert view.record.worker.startswith("ray actor")
    metrics = manager.store.metrics(view.id)
    assert (metrics.kind == "epoch").sum() == 2 and metrics.train_loss.notna().all()
    assert view.record.confusion is not None and view.record.test_acc is not None
    weights = manager.kept.load(view.id)
    assert weights.keys() == registry.build(LENET_BN).state_dict().keys()


def test_stop_reaches_a_run_on_ray(manager):
    run = manager.start("lenet-bn", LENET_BN, TrainSettings(lr=0.5, epochs=200, batch_size=8))
    wait_until(lambda: len(manager.store.metrics(run)) > 0, timeout=120)  # it trains
    assert manager.stop(run)
    view = manager.wait(run, timeout=30)
    assert view.status == "stopped" and view.record.weights_path


def test_a_ray_worker_killed_from_outside_fails_its_run_with_the_reason(manager):
    run = manager.start("lenet-bn", LENET_BN, TrainSettings(lr=0.5, epochs=200, batch_size=8))
    wait_until(lambda: len(manager.store.metrics(run)) > 0, timeout=120)
    ray.kill(ray.get_actor(f"explorer-run-{run}"))
    view = manager.wait(run, timeout=60)
    assert view.status == "failed" and "Ray worker ended" in told(view.record.error)
    assert len(manager.store.metrics(run)) > 0  # what it reported is kept
    after = manager.wait(manager.start("lenet-bn", LENET_BN, TrainSettings(lr=0.5, epochs=1, batch_size=64)),
                         timeout=180)
    assert after.status == "done"  # the backend goes on


def test_the_server_uses_ray_when_its_address_is_set(cluster, monkeypatch):
    monkeypatch.setenv("EXPLORER_RAY_ADDRESS", "auto")
    assert isinstance(backend_from_env(), RayCluster)
    monkeypatch.delenv("EXPLORER_RAY_ADDRESS")
    assert isinstance(backend_from_env(), LocalWorkers)
