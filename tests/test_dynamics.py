"""What happens inside while a network trains: each layer's gradient, update and output, read on the steps a
run reports, stored with the run, printed by the CLI and drawn on Runs and Train."""

import json
import math
import sqlite3

import pytest
import torch
from streamlit.testing.v1 import AppTest
from torch import nn

from explorer.identity import Visitor
from explorer.training.dynamics import Watch, layers
from explorer.training.recipes import TrainSettings, preset
from explorer.training.runs import RunManager
from tests.test_app import app
from tests.test_cli import run_cli


def test_a_watched_step_reads_each_layers_gradient_update_and_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every unit of the first layer below zero for every input: dead after its ReLU
        model[2].bias.copy_(torch.tensor([50.0, -50.0]))  # far out where a sigmoid is flat
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.rand(8, 4), torch.tensor([0, 1] * 4)
    weights = [[p.detach().clone() for p in layer.params] for layer in layers(model)]
    with Watch(model).step() as readings:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert [r["layer"] for r in readings] == ["0", "2", "3"]  # the ReLU owns no weights
    assert [r["type"] for r in readings] == ["Linear", "Linear", "BatchNorm1d"]
    for r, layer, old in zip(readings, layers(model), weights, strict=True):
        grad = torch.cat([p.grad.flatten() for p in layer.params]).norm().item()
        moved = torch.cat([(p - o).flatten() for p, o in zip(layer.params, old, strict=True)]).norm().item()
        size = torch.cat([o.flatten() for o in old]).norm().item()
        assert r["grad_norm"] == pytest.approx(grad, rel=1e-5)
        assert r["update_ratio"] == pytest.approx(moved / size, rel=1e-5)
        assert r["update_ratio"] == pytest.approx(0.1 * grad / size, rel=1e-4)  # plain SGD moves lr x gradient
    first, second, _ = readings
    assert first["dead"] == 1.0 and first["out_mean"] == pytest.approx(-100, abs=2)
    assert second["saturated"] == pytest.approx(1.0) and second["dead"] == 0.5
    assert first["grad_norm"] == 0.0  # a dead layer learns nothing: no gradient reaches it
    # only the watched step pays: the hooks are gone afterwards
    assert all(not layer.module._forward_hooks for layer in layers(model))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """ResNet's quick network with and without its shortcuts, one short epoch each on generated data."""
    import dataclasses

    from tests.conftest import write_dataset

    home = tmp_path_factory.mktemp("home")
    manager = RunManager(home, max_running=2, threads=1, data_dir=str(write_dataset(tmp_path_factory.mktemp("data"))))
    p = preset("resnet18", "quick")
    ids = []
    for residual in (True, False):
        config = dataclasses.replace(p.config, residual=residual, channels=(8, 16, 16, 32))
        ids.append(manager.start("resnet18", config, TrainSettings(lr=0.05, epochs=1, batch_size=32),
                                 Visitor("alice"), name=f"residual {residual}"))
    for run_id in ids:
        assert manager.wait(run_id, timeout=300).status == "done"
    yield manager, ids, home
    manager.shutdown()


def test_a_run_stores_every_layer_at_every_report(two_runs):
    manager, (residual, plain), _ = two_runs
    frame = manager.store.dynamics(residual)
    reports = manager.live.metrics(residual)
    steps = sorted(reports[reports.kind == "step"].step)
    assert sorted(frame.step.unique()) == steps  # every report, once (the epoch's report repeats none)
    from explorer import registry

    record = manager.store.get(residual)
    expected = [layer.path for layer in layers(registry.build(registry.config_from(record.model, record.config)))]
    for _, one in frame.groupby("step"):
        assert list(one.layer) == expected  # every layer with weights, in the network's order
    assert frame.grad_norm.gt(0).all() and frame.update_ratio.gt(0).all() and frame.notna().all().all()
    plain_layers = set(manager.store.dynamics(plain).layer)
    assert {"2.0.conv3", "3.0.conv3", "4.0.conv3"} <= set(frame.layer) and not any(
        name.endswith("conv3") for name in plain_layers)  # the plain network has no 1x1 shortcuts


def test_the_cli_prints_a_runs_dynamics_one_row_per_report_and_layer(two_runs):
    manager, (residual, _), home = two_runs
    frame = manager.store.dynamics(residual)
    out = run_cli("dynamics", residual, "--format", "json", "--home", str(home))
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == len(frame) and rows[0]["layer"] == frame.layer.iloc[0]
    assert rows[0]["grad_norm"] == pytest.approx(frame.grad_norm.iloc[0])
    import io

    import pandas as pd

    table = pd.read_csv(io.StringIO(run_cli("dynamics", residual, "--format", "csv", "--home", str(home)).stdout))
    assert list(table.columns[:5]) == ["step", "epoch", "layer", "type", "grad_norm"] and len(table) == len(frame)
    assert table.layer.iloc[0] == frame.layer.iloc[0]
    table = run_cli("dynamics", residual, "--home", str(home)).stdout.splitlines()
    assert table[0].split()[:4] == ["step", "epoch", "layer", "type"] and len(table) == len(frame) + 1
    missing = run_cli("dynamics", "nosuchrun", "--home", str(home))
    assert missing.returncode != 0 and "not a run" in missing.stderr and "Traceback" not in missing.stderr


def test_a_run_from_before_dynamics_says_it_has_none_and_nothing_breaks(two_runs, tmp_path):
    import shutil

    manager, (residual, _), home = two_runs
    old = tmp_path / "old"
    shutil.copytree(home, old)
    with sqlite3.connect(old / "runs.sqlite") as db:
        db.execute("DELETE FROM dynamics")  # as a store from before the table was filled
    out = run_cli("dynamics", residual, "--home", str(old))
    assert out.returncode == 0 and out.stdout == "" and "has no dynamics" in out.stderr


def heatmaps(at: AppTest) -> list[dict]:
    """The layers-by-time heatmaps the page drew."""
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [f for f in figures if f["data"] and f["data"][0].get("type") == "heatmap"
            and f["layout"]["yaxis"]["title"]["text"] == "layer"]


def test_runs_draws_a_runs_layers_and_a_pair_side_by_side_on_one_scale(two_runs, monkeypatch):
    manager, (residual, plain), home = two_runs
    monkeypatch.setenv("EXPLORER_HOME", str(home))
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(manager.data_dir))
    at = app("pages/runs.py", run=residual)
    [figure] = heatmaps(at)
    frame = manager.store.dynamics(residual)
    rows = figure["data"][0]["y"]
    assert rows[0] == f"{frame.layer.iloc[0]} {frame.type.iloc[0]}" and len(rows) == frame.layer.nunique()
    assert figure["layout"]["title"]["text"] == manager.store.get(residual).label
    # a lesson's link names two runs: both drawn side by side, on one colour scale, and the URL keeps both
    at = app("pages/runs.py", run=residual, vs=plain)
    pair = heatmaps(at)
    assert [f["layout"]["title"]["text"] for f in pair] == [manager.store.get(i).label for i in (residual, plain)]
    scales = {(f["data"][0]["zmin"], f["data"][0]["zmax"]) for f in pair}
    assert len(scales) == 1  # one scale for both
    low, high = scales.pop()
    both = [manager.store.dynamics(i).grad_norm for i in (residual, plain)]
    assert low == pytest.approx(math.log10(min(b.min() for b in both)))  # the gradient norm, on a log scale
    assert high == pytest.approx(math.log10(max(b.max() for b in both)))
    assert at.query_params["vs"] == plain


def test_train_draws_its_runs_layers_when_asked(two_runs, monkeypatch):
    manager, (residual, _), home = two_runs
    monkeypatch.setenv("EXPLORER_HOME", str(home))
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(manager.data_dir))
    at = app("pages/train.py", run=residual)
    assert heatmaps(at) == []  # off by default: the live page reads nothing more each second
    at.toggle(key="t.dynamics").set_value(True).run()
    [figure] = heatmaps(at)
    assert len(figure["data"][0]["y"]) == manager.store.dynamics(residual).layer.nunique()
    at.selectbox(key="t.stat").set_value("dead").run()
    [figure] = heatmaps(at)
    assert figure["data"][0]["colorbar"]["title"]["text"].startswith("share of dead channels")


def test_the_statistic_shown_is_in_the_url_so_a_link_opens_on_it(two_runs, monkeypatch):
    manager, (residual, plain), home = two_runs
    monkeypatch.setenv("EXPLORER_HOME", str(home))
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(manager.data_dir))
    at = app("pages/runs.py", run=residual, vs=plain, stat="dead")  # a lecturer's link
    assert at.selectbox(key="r.stat").value == "dead"
    assert all(f["data"][0]["colorbar"]["title"]["text"].startswith("share of dead channels") for f in heatmaps(at))
    at.selectbox(key="r.stat").set_value("update_ratio").run()
    assert at.query_params["stat"] == "update_ratio" and at.query_params["vs"] == plain
    lesson = app("pages/lessons.py", lesson="resnet", run=residual, vs=plain, stat="out_std")
    assert lesson.selectbox(key="l.stat").value == "out_std" and lesson.query_params["stat"] == "out_std"


def test_the_lines_legend_sits_beside_the_plot_clear_of_the_x_axis_title(two_runs):
    """Eight long names in Chinese made a legend below the plot climb onto the x-axis title at 1280x720."""
    from explorer.views.layerdynamics import dynamics_lines

    manager, (residual, plain), _ = two_runs
    fig = dynamics_lines({"a": manager.store.dynamics(residual), "b": manager.store.dynamics(plain)}, "grad_norm")
    assert fig.layout.legend.orientation == "v" and fig.layout.legend.x > 1  # right of the plot area
    assert fig.layout.xaxis.title.text == "epoch"


def test_a_long_run_reads_its_layers_on_at_most_a_fixed_number_of_reports_evenly_spread(tiny_data, monkeypatch):
    """So that a 200-epoch run stores what a 20-epoch one does: the dynamics thin themselves."""
    from explorer import registry
    from explorer.training import train as training

    config = registry.get("lenet-bn").config
    settings = TrainSettings(lr=0.5, epochs=4, batch_size=16)  # 32 steps an epoch: a report every step

    def watched() -> tuple[int, list[int]]:
        seen: list = []
        training.train(config, settings, on_progress=seen.append, threads=1, data_dir=tiny_data)
        steps = [p.step for p in seen if p.kind == "step"]
        return len(steps), [p.step for p in seen if p.dynamics]

    reports, every = watched()
    assert len(every) == reports > 100  # a short run reads its layers on every report
    monkeypatch.setattr(training, "MAX_DYNAMICS_REPORTS", 10)
    reports, thinned = watched()
    gaps = {b - a for a, b in zip(thinned, thinned[1:], strict=False)}
    assert len(thinned) <= 10 and len(gaps) == 1 and thinned[0] <= min(gaps)  # evenly, from the start
