"""What the Runs page shows, from a real run stored by a real run manager on small generated data."""

import dataclasses

import pytest

from explorer import registry
from explorer.training.recipes import TrainSettings, preset
from explorer.training.runs import RunManager
from explorer.views.runviews import (
    batchnorm_parameters,
    confused_examples,
    describe_config,
    first_with_results,
    history_table,
    overlay_chart,
    per_class_accuracy,
    reopen_settings,
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from tests.conftest import write_dataset

    data = str(write_dataset(tmp_path_factory.mktemp("data"), n_train=256, n_test=100))
    manager = RunManager(tmp_path_factory.mktemp("home"), max_running=2, threads=1, data_dir=data)
    config = registry.get("lenet-bn-scratch").config
    runs = [manager.start("lenet-bn-scratch", config, TrainSettings(lr=0.5, epochs=e, batch_size=32))
            for e in (1, 2)]
    records = [manager.wait(r, timeout=120).record for r in runs]
    yield manager, records, data
    manager.shutdown()


def test_overlay_has_one_curve_per_run(finished):
    manager, records, _ = finished
    named = {r.id: manager.store.metrics(r.id) for r in records}
    fig = overlay_chart(named, "test_acc", "Test accuracy")
    assert [t.name for t in fig.data] == [r.id for r in records]
    assert [len(t.x) for t in fig.data] == [1, 2]  # one point per epoch


def test_history_table_and_config_description(finished):
    _, records, _ = finished
    table = history_table(records)
    assert list(table.status) == ["done", "done"]
    assert all(t.endswith((" s", " min", " h")) and t[0].isdigit() for t in table.time)  # words, not raw seconds
    assert set(table.config) == {"catalog defaults"}
    assert describe_config("vgg11", {**registry.get("vgg11").config.kwargs(), "ratio": 8}) == "ratio=8"


def test_confusions_and_per_class_accuracy(finished):
    _, records, data = finished
    r = records[1]
    accuracy = per_class_accuracy(r.confusion)
    assert accuracy.images.sum() == 100
    assert abs((accuracy.accuracy * accuracy.images).sum() / 100 - r.test_acc) < 1e-6  # test_acc is float32
    examples = confused_examples(r, data_dir=data)
    off_diagonal = sorted((r.confusion[t][p] for t in range(10) for p in range(10) if t != p), reverse=True)
    assert len(examples) == sum(min(4, n) for n in off_diagonal[:6])  # 4 images of each of the top 6 pairs
    first_pair = examples[0][1]
    assert sum(caption == first_pair for _, caption in examples) == min(4, off_diagonal[0])
    assert all(img.shape == (28, 28) and caption.startswith("true ") for img, caption in examples)
    from explorer import i18n

    i18n.use("zh")  # a Chinese page's captions: no English left
    try:
        assert all(c.startswith("真实 ") and " / 预测 " in c for _, c in confused_examples(r, data_dir=data))
    finally:
        i18n.use("en")


def test_scratch_batchnorm_gamma_and_beta(finished):
    manager, records, _ = finished
    r = records[1]
    norms = batchnorm_parameters(r.model, r.config, manager.kept.load(r.id))
    assert {name: len(gamma) for name, (gamma, _beta) in norms.items()} == {"1": 6, "5": 16, "10": 120, "13": 84}
    assert any(abs(g - 1.0) > 1e-4 for g in norms["1"][0])  # training moved gamma off its initial 1


def stored_run(store, config, rate: float, seconds: float, status: str = "done", others_cpu: float = 0.0,
               batch_size: int = 32) -> str:
    """A finished run as the store keeps it, with the training rate and time given."""
    run_id = f"r{len(store.list()):011d}"
    settings = dataclasses.asdict(TrainSettings(lr=0.5, epochs=2, batch_size=batch_size))
    store.create(run_id, "lenet-bn-scratch", config.kwargs(), settings, "cli", 1)
    store.add_metrics(run_id, [{"step": 1, "epoch": 1.0, "kind": "step", "train_loss": 1.0, "train_acc": 0.5,
                                "test_acc": None, "images_per_sec": rate, "elapsed": seconds}])
    store.finish(run_id, status, confusion=None, predictions=None, weights_path=None, seconds=seconds)
    store.set_calibration(run_id, {"others_cpu": others_cpu})
    return run_id


def test_time_estimate_takes_the_median_of_real_runs_that_say_something(tmp_path):
    from explorer.training.estimate import estimate_run
    from explorer.training.store import RunStore

    store = RunStore(tmp_path / "runs.sqlite")
    config = registry.get("lenet-bn-scratch").config

    def estimate(**kw):
        return estimate_run(config, kw.pop("batch_size", 32), epochs=2, train_images=256, device="cpu", store=store,
                            **kw)

    stored_run(store, config, rate=50.0, seconds=6, status="stopped")  # stopped within seconds: its start-up
    stored_run(store, config, rate=60.0, seconds=300, others_cpu=0.6)  # shared the machine with a busy one
    assert estimate().source.startswith("measured on this machine")  # neither says anything of the rate
    # (", which was busy" follows where other work shared the machine: the suite's own runs, say)
    stored_run(store, config, rate=5000.0, seconds=60)
    first = estimate()
    assert first.source == "measured by an earlier run of this config" and first.images_per_sec == 5000.0
    stored_run(store, config, rate=400.0, seconds=60, status="stopped")  # one bad reading among three
    stored_run(store, config, rate=5400.0, seconds=90)
    median = estimate()
    assert median.source == "measured by 3 earlier runs of this config" and median.images_per_sec == 5000.0
    assert estimate(batch_size=64).source.startswith("measured on this machine")  # another batch size: measured
    assert estimate(augment=True).source.startswith("measured on this machine")  # they did not pay for augmenting


def test_a_reopened_run_brings_its_own_network_and_settings(finished):
    _, records, _ = finished
    name, config, kind, settings = reopen_settings(records[1])
    assert (name, config) == ("lenet-bn-scratch", registry.get("lenet-bn-scratch").config)
    assert settings == {"lr": 0.5, "epochs": 2, "minutes": 0.0, "batch": 32, "subset": 0, "init": "xavier",
                        "optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "label_smoothing": 0.0,
                        "warmup": 0.0, "cosine": False, "augment": False}  # the book's plain SGD: no recipe switch on
    kaiming = dataclasses.replace(records[1], settings={**records[1].settings, "init": "kaiming"})
    assert reopen_settings(kaiming)[3]["init"] == "kaiming"
    quick = preset("vgg11", "quick")
    record = dataclasses.replace(records[1], model="vgg11", config=quick.config.kwargs())
    assert reopen_settings(record)[:3] == ("vgg11", quick.config, "quick")


def test_the_runs_page_opens_on_a_run_with_results(finished):
    _, records, _ = finished
    empty = dataclasses.replace(records[0], status="stopped", confusion=None, train_loss=None)
    assert first_with_results([empty, *records]) == 1
    assert first_with_results([empty]) == 0


def test_smoothing_is_tensorboards_debiased_moving_average():
    import pandas as pd

    from explorer.views.runviews import smooth

    values = pd.Series([1.0, 0.0, 0.0, 1.0])
    assert smooth(values, 0.0).equals(values)
    weight, last, expected = 0.6, 0.0, []
    for i, v in enumerate(values, start=1):
        last = weight * last + (1 - weight) * v
        expected.append(last / (1 - weight ** i))
    assert smooth(values, weight).tolist() == pytest.approx(expected)
    assert smooth(values, weight).iloc[0] == 1.0  # debiased: it starts where the values start
    assert smooth(pd.Series([2.0] * 5), 0.9).tolist() == pytest.approx([2.0] * 5)


def test_runs_of_one_config_over_seeds_are_one_band_and_all_selected_runs_one_csv(finished):
    import pandas as pd

    from explorer.views.runviews import band_chart, runs_csv, seed_groups

    manager, records, _ = finished
    seeds = [dataclasses.replace(records[0], id=f"seed{s}", settings={**records[0].settings, "seed": s})
             for s in range(3)]
    groups = seed_groups(seeds + [records[1]])
    assert sorted(len(runs) for runs in groups.values()) == [1, 3]  # the 2-epoch run is a config of its own
    base = manager.store.metrics(records[0].id)
    frames = [base.assign(test_acc=base.test_acc + shift) for shift in (0.0, 0.1, 0.2)]
    fig = band_chart({"lenet": frames}, "test_acc", "Test accuracy")
    band, mean = fig.data
    epochs = base[base.kind == "epoch"].test_acc.tolist()
    assert list(mean.y) == pytest.approx([a + 0.1 for a in epochs])  # the mean of the three seeds
    assert list(band.y) == pytest.approx([a + 0.2 for a in epochs] + [a for a in epochs][::-1])  # max, then min
    assert "mean of 3 seeds" in mean.name
    assert overlay_chart({"a": base}, "train_loss", "Training loss", log=True).layout.yaxis.type == "log"
    table = pd.read_csv(__import__("io").StringIO(runs_csv(records, [manager.store.metrics(r.id) for r in records])))
    assert set(table.run) == {r.id for r in records} and len(table) == sum(
        len(manager.store.metrics(r.id)) for r in records)


HOSTILE_NAMES = ['=HYPERLINK("http://evil.example/x","click")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


def test_every_csv_export_neutralises_cells_that_a_spreadsheet_would_evaluate(finished, capsys):
    """OWASP's rule, names included: a cell that begins with = + - @ tab or CR is written with a leading
    apostrophe; numbers, negative ones too, stay numbers."""
    import io

    import pandas as pd

    from explorer.cli import main
    from explorer.views.board import board_table
    from explorer.views.runviews import runs_csv
    from explorer.views.tables import csv_text

    manager, records, _ = finished
    for name in HOSTILE_NAMES:
        named = [dataclasses.replace(r, name=name) for r in records]
        text = runs_csv(named, [manager.store.metrics(r.id) for r in records])
        column = pd.read_csv(io.StringIO(text), keep_default_na=False)["name"]
        assert set(column) == {"'" + name}, name
        board = pd.read_csv(io.StringIO(csv_text(board_table(named).assign(note=name))), keep_default_na=False)
        assert set(board.note) == {"'" + name} and board.params.dtype.kind == "i"  # the board's own columns too
    frame = pd.DataFrame({"x": [-0.5, 2.0], "=y": ["-x", "ok"]})
    assert csv_text(frame).splitlines() == ["\"x\",\"'=y\"", "-0.5,\"'-x\"", "2.0,\"ok\""]
    assert main(["dynamics", records[0].id, "--format", "csv", "--home", str(manager.home)]) == 0
    assert all(not line.startswith(("=", "+", "@")) for line in capsys.readouterr().out.splitlines())


def test_a_run_name_is_text_in_every_chart_never_markup(finished):
    """Plotly renders <b>, <br> and <a href> in titles, legends and hover labels: a name is escaped there."""
    from explorer.views.layerdynamics import dynamics_lines
    from explorer.views.runviews import band_chart, training_chart

    manager, records, _ = finished
    link, bold = '<a href="javascript:alert(1)">x</a>', "<b>x</b>"
    metrics = manager.store.metrics(records[0].id)
    legend = overlay_chart({link: metrics, bold: metrics}, "test_acc", "Test accuracy")
    assert [t.name for t in legend.data] == ['&lt;a href="javascript:alert(1)"&gt;x&lt;/a&gt;', "&lt;b&gt;x&lt;/b&gt;"]
    titled = training_chart(metrics, f"{bold}: loss and accuracy")
    assert titled.layout.title.text == "&lt;b&gt;x&lt;/b&gt;: loss and accuracy"
    band = band_chart({link: [metrics, metrics]}, "test_acc", "Test accuracy")
    assert all("<a" not in (t.name or "") for t in band.data)
    lines = dynamics_lines({bold: manager.store.dynamics(records[0].id)}, "grad_norm")
    assert lines.data and all(t.name.startswith("&lt;b&gt;x&lt;/b&gt;: ") for t in lines.data)


def test_a_long_statistic_is_a_two_line_axis_title_in_either_language(finished):
    """One line of "share of dead channels (never above 0 on 32 images)" ran up the chart's side into its
    title at 1280x720: it breaks before its parenthesis, in English and in Chinese."""
    from explorer import i18n
    from explorer.views.layerdynamics import dynamics_lines

    manager, records, _ = finished
    frame = manager.store.dynamics(records[0].id)
    for lang, parts in (("en", ["share of dead channels", "(never above 0 on 32 images)"]),
                        ("zh", ["死通道的比例", "（32 张图像上从未大于 0）"])):
        i18n.use(lang)
        try:
            assert dynamics_lines({"run": frame}, "dead").layout.yaxis.title.text.split("<br>") == parts
            assert "<br>" not in dynamics_lines({"run": frame}, "out_mean").layout.yaxis.title.text
        finally:
            i18n.use("en")
