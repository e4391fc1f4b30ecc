"""The Train and Runs pages through AppTest, training for real on small generated data."""

import base64
import json
import multiprocessing
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import write_dataset
from tests.test_app import APP


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    """A run store and data directory of this module's own; the app's run manager is rebuilt on them."""
    from explorer.server import close_server

    home = tmp_path_factory.mktemp("home")
    data = write_dataset(tmp_path_factory.mktemp("data"))
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPLORER_HOME", str(home))
    mp.setenv("EXPLORER_DATA_DIR", str(data))
    mp.setenv("EXPLORER_THREADS", "1")
    yield home
    close_server()
    mp.undo()


def train_page(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page("pages/train.py").run()  # opened directly, as a bookmarked URL is
    assert not at.exception, [e.value for e in at.exception]
    return until_measured(at)


def measuring(at: AppTest) -> bool:
    return any(c.value.startswith(("Measuring", "Waiting for")) for c in at.caption)


def until_measured(at: AppTest, timeout: float = 60) -> AppTest:
    """Rerun as the page's timer does while its estimate is measured in another process."""
    deadline = time.monotonic() + timeout
    while measuring(at) and time.monotonic() < deadline:
        assert not at.button(key="t.start").disabled  # a run measures itself: Start need not wait for the page's
        time.sleep(0.5)
        at.run()
    assert not measuring(at) and not at.exception
    return at


def pick_lenet_bn(at: AppTest, epochs: int, batch: int) -> None:
    at.sidebar.selectbox(key="t.family").set_value("LeNet").run()
    at.sidebar.selectbox(key="t.preset:LeNet").set_value("lenet-bn").run()
    at.number_input(key="t.lenet-bn.quick.epochs").set_value(epochs).run()
    at.number_input(key="t.lenet-bn.quick.batch").set_value(batch).run()
    until_measured(at)


def array_length(values) -> int:
    """Plotly's JSON holds numeric arrays as base64 ({"dtype": "f8", "bdata": ...}) or as plain lists."""
    if isinstance(values, dict):
        return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize
    return len(values)


def points(at: AppTest) -> int:
    charts = at.get("plotly_chart")
    if not charts:
        return 0
    return sum(array_length(trace.get("x", [])) for trace in json.loads(charts[0].proto.spec)["data"])


def wait_for(at: AppTest, predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
        at.run()


def test_explore_config_carries_over_to_train(app_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.sidebar.number_input(key="x.vgg11-small.ratio").set_value(8).run()
    until_measured(at.switch_page("pages/train.py").run())
    assert at.sidebar.number_input(key="t.vgg11-small.ratio").value == 8
    assert any("Estimated:" in c.value and "MiB" in c.value for c in at.caption)


def test_start_watch_stop_and_inspect(app_env):
    at = train_page()
    pick_lenet_bn(at, epochs=200, batch=8)
    at.button(key="t.start").click().run()
    run_id = at.query_params["run"]
    assert set(at.query_params) == {"run"}  # no identity in a URL that a student shares
    wait_for(at, lambda: points(at) > 0)
    first = points(at)
    wait_for(at, lambda: points(at) > first)  # the chart's data grows as the run goes on
    second = points(at)
    wait_for(at, lambda: points(at) > second)
    assert any("running" in s.value for s in at.subheader)
    assert at.get("progress")[0].proto.value > 0
    at.button(key="t.stop").click().run()
    wait_for(at, lambda: any("stopped" in s.value for s in at.subheader), timeout=30)

    again = train_page(run=run_id)  # the shared URL, opened by someone else: another visitor, read-only
    assert any(run_id in s.value and "stopped" in s.value for s in again.subheader)
    assert any("A shared run: you can watch it, not stop it" in c.value for c in again.caption)
    assert not [b for b in again.button if b.key == "t.stop"]
    assert not again.warning  # page parameters are not mistaken for knobs
    # and shows that run's network and settings, so Start would train the same again
    assert again.sidebar.selectbox(key="t.preset:LeNet").value == "lenet-bn"
    assert again.number_input(key="t.lenet-bn.quick.epochs").value == 200
    assert again.number_input(key="t.lenet-bn.quick.batch").value == 8

    pick_lenet_bn(at, epochs=2, batch=64)
    assert at.selectbox(key="t.lenet-bn.quick.init").value == "xavier"  # the quick preset's, as d2l's
    until_measured(at.selectbox(key="t.lenet-bn.quick.init").set_value("kaiming").run())
    at.text_input(key="t.name").set_value("kaiming \u202etry\x07 [x](http://e.invalid)").run()
    at.button(key="t.start").click().run()
    done_id = at.query_params["run"]
    wait_for(at, lambda: any("done" in s.value for s in at.subheader))
    assert train_page(run=done_id).selectbox(key="t.lenet-bn.quick.init").value == "kaiming"  # as it trained

    at.switch_page("pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    history = next(t.value for t in at.dataframe if "best test acc" in t.value.columns)
    assert list(history.run[:2]) == [done_id, run_id]  # newest first
    assert list(history.status[:2]) == ["done", "stopped"]
    assert list(history.preset[:2]) == ["quick", "quick"]
    assert list(history.name[:2]) == ["kaiming try [x](http://e.invalid)", "-"]  # control characters dropped
    assert history["best test acc"][1] == "-" or float(history["best test acc"][1]) > 0  # never "None"
    assert history["final test acc"][0] != "-"
    assert any("kaiming try" in h.value and "quick preset · done" in h.value for h in at.header)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert "loss and accuracy" in specs[0]["layout"]["title"]["text"]  # the selected run's curve
    assert any(c.value.startswith("Memory format ") for c in at.caption)  # how its settings were chosen
    heatmap = next(s for s in specs if s["data"][0]["type"] == "heatmap")
    assert heatmap["layout"]["yaxis"].get("type") in (None, "category")
    z = heatmap["data"][0]["z"]
    total = (np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).sum() if isinstance(z, dict)
             else sum(map(sum, z)))
    assert total == 200  # every test image counted once
    gammas = [s for s in specs if "gamma" in s["layout"]["title"]["text"]]
    assert len(gammas) == 4  # lenet-bn has four batch-norm layers
    assert at.get("imgs") or at.get("image")  # the confused test images
    assert len(at.get("download_button")) == 2

    at.button(key="r.delete").click().run()  # asks first
    assert any("for good?" in w.value for w in at.warning)
    assert done_id in set(next(t.value for t in at.dataframe if "best test acc" in t.value.columns).run)
    at.button(key="r.delete.yes").click().run()
    assert any("Deleted kaiming try" in m.value and done_id in m.value for m in at.success)
    history = next(t.value for t in at.dataframe if "best test acc" in t.value.columns)
    assert done_id not in set(history.run)


def test_an_unknown_run_says_so_on_every_page_and_keeps_its_url(app_env):
    for page in ("pages/train.py", "pages/runs.py", "pages/inside.py"):
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["run"] = "0123456789ab"
        at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("There is no run 0123456789ab here" in e.value for e in at.error), page
        assert at.query_params["run"] == "0123456789ab", page
    at.button(key="i.leave").click().run()  # Inside: the visitor chooses to look at something else
    assert not at.error and "run" not in at.query_params and at.query_params["model"] == "lenet"


def test_a_run_over_the_servers_limit_says_why_start_is_off(app_env, monkeypatch):
    from explorer.server import close_server

    monkeypatch.setenv("EXPLORER_MAX_RUN_MINUTES", "1")  # another environment: a manager of its own
    try:
        at = train_page()
        at.sidebar.selectbox(key="t.family").set_value("VGG").run()
        at.radio(key="t.preset").set_value("book").run()
        assert at.button(key="t.start").disabled
        refusal = " ".join(e.value for e in at.error)
        assert "over this server's limit of about 1 min" in refusal and "quick preset" in refusal
        until_measured(at.radio(key="t.preset").set_value("quick").run())
        assert not at.button(key="t.start").disabled
        assert any(c.value.startswith("Estimated: about") for c in at.caption)
    finally:
        close_server()


def test_the_fast_preset_says_what_it_changes_trains_with_its_recipe_and_reopens_as_fast(app_env):
    from explorer.server import server_manager

    at = train_page()
    at.sidebar.selectbox(key="t.family").set_value("LeNet").run()
    at.sidebar.selectbox(key="t.preset:LeNet").set_value("lenet-bn").run()
    at.radio(key="t.preset").set_value("fast").run()
    changes = next(c.value for c in at.caption if c.value.startswith("Fast preset changes: "))
    assert "momentum 0.0 -> 0.9" in changes and "augment False -> True" in changes
    until_measured(at.number_input(key="t.lenet-bn.fast.epochs").set_value(1).run())
    at.button(key="t.start").click().run()
    run_id = at.query_params["run"]
    settings = server_manager().store.get(run_id).settings
    assert settings["momentum"] == 0.9 and settings["augment"] and settings["tta"] and settings["epochs"] == 1
    server_manager().wait(run_id, timeout=120)
    again = train_page(run=run_id)
    assert again.radio(key="t.preset").value == "fast"


def test_one_recipe_switch_at_a_time_trains_and_reopens_as_set(app_env):
    """The quick preset with only label smoothing and Adam switched on: the run stores exactly those, the
    rest stays the book's, and its link reopens them."""
    from explorer.server import server_manager

    at = train_page()
    pick_lenet_bn(at, epochs=1, batch=64)
    at.selectbox(key="t.lenet-bn.quick.optimizer").set_value("adam").run()
    at.number_input(key="t.lenet-bn.quick.label_smoothing").set_value(0.1).run()
    said = "Recipe, beyond the book's plain SGD: Optimizer adam; Label smoothing 0.1."
    assert any(c.value == said for c in at.caption)  # what it will train with, said before Start
    until_measured(at)
    at.button(key="t.start").click().run()
    run_id = at.query_params["run"]
    settings = server_manager().store.get(run_id).settings
    assert settings["optimizer"] == "adam" and settings["label_smoothing"] == 0.1
    assert settings["momentum"] == 0 and not settings["augment"] and not settings["cosine"]
    assert server_manager().wait(run_id, timeout=120).status == "done"
    again = train_page(run=run_id)
    assert again.selectbox(key="t.lenet-bn.quick.optimizer").value == "adam"
    assert again.number_input(key="t.lenet-bn.quick.label_smoothing").value == 0.1


def test_a_run_whose_weights_went_missing_still_shows_and_can_be_deleted(app_env):
    from explorer import registry
    from explorer.identity import OWNER
    from explorer.server import server_manager
    from explorer.training.recipes import TrainSettings

    manager = server_manager()
    run_id = manager.start("lenet-bn", registry.get("lenet-bn").config, TrainSettings(lr=0.5, epochs=1, batch_size=64))
    record = manager.wait(run_id, timeout=120).record
    weights = manager.kept.weights_of(record)
    weights.rename(weights.with_suffix(".moved"))  # the file went away
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["visitor"] = OWNER  # the person at the machine, as a loopback browser is
    at.query_params["run"] = run_id
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    assert any("has no saved weights" in w.value for w in at.warning)
    assert any("Confusion matrix" in json.loads(c.proto.spec)["layout"]["title"]["text"]
               for c in at.get("plotly_chart"))  # the rest of the run is still shown
    at.button(key="r.delete").click().run()
    at.button(key="r.delete.yes").click().run()
    assert manager.store.get(run_id) is None and not at.exception


def test_a_train_url_too_big_to_train_is_refused_without_building_or_timing_anything(app_env, monkeypatch):
    """The attack: a URL whose network would take hundreds of hours. Its page view must not train in the server."""
    import resource

    from explorer.server import close_server
    from explorer.training.measure import Measurements

    monkeypatch.setenv("EXPLORER_MAX_RUN_MINUTES", "1")  # this module's data set has 512 training images

    def never(*args, **kwargs):
        raise AssertionError("a step was timed for a run no machine could finish within the limit")

    slow = train_page(model="resnet34")  # its quick preset is measured as usual
    monkeypatch.setattr(Measurements, "get", never)
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    at = train_page(model="lenet", resolution="256", channels="[1024, 1024]")  # 46.5 GiB at the quick batch
    assert time.perf_counter() - start < 5 and at.button(key="t.start").disabled
    assert "needs about 46.5 GiB" in " ".join(e.value for e in at.error).replace("\\", "")
    at = slow.radio(key="t.preset").set_value("book").run()  # fits in memory, but too slow for any CPU
    assert at.button(key="t.start").disabled
    refusal = " ".join(e.value for e in at.error)
    assert "would take at least" in refusal and "over this server's limit of about 1 min" in refusal
    assert time.perf_counter() - start < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1024 * 1024  # KiB: under 1 GB
    close_server()


def test_a_measurement_runs_out_of_the_server_and_blocks_no_other_visitors_page(app_env):
    """One Train URL costs the server under 1 GB and blocks no other page for more than 5 s: its steps are
    timed in a process of its own, one at a time, and the page says it is measuring."""
    import resource

    from explorer.server import server_manager
    from explorer.training import measure

    heavy = {"model": "lenet", "resolution": "160", "channels": "[64, 256]"}  # seconds of steps, 1.5 GiB to train
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in heavy.items():
        at.query_params[k] = v
    at.switch_page("pages/train.py").run()
    assert time.perf_counter() - start < 5 and measuring(at) and not at.button(key="t.start").disabled
    assert any(c.value.startswith("Measuring a few training steps") and "You can start now" in c.value
               for c in at.caption)
    other = time.perf_counter()
    second = AppTest.from_file(APP, default_timeout=60)  # another visitor, another network
    second.query_params["model"] = "nin"
    second.switch_page("pages/train.py").run()
    assert time.perf_counter() - other < 5 and not second.exception
    assert any(c.value.startswith("Waiting for 1 other measurement") for c in second.caption)
    until_measured(at, timeout=120)
    assert any(c.value.startswith("Estimated: about") for c in at.caption)
    assert not at.button(key="t.start").disabled
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 1024 * 1024  # KiB: under 1 GB
    # the second visitor closed the tab: nobody asks for its measurement any more, so it is abandoned
    deadline = time.monotonic() + measure.ABANDON_SECONDS + 60
    measurements = server_manager().measurements
    while (measurements._asked or measurements._current) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not measurements._asked and measurements._current is None
    assert not [p for p in multiprocessing.active_children() if p.name == "explorer-measure"]


def test_the_estimate_says_how_many_runs_a_new_one_would_wait_for(app_env):
    from explorer import registry
    from explorer.server import server_manager
    from explorer.training.recipes import TrainSettings

    manager = server_manager()
    running = manager.start("lenet-bn", registry.get("lenet-bn").config, TrainSettings(lr=0.5, epochs=200,
                                                                                        batch_size=8))
    try:
        at = train_page(model="lenet")
        assert any("It would start after the run ahead of it, in about" in c.value for c in at.caption)
    finally:
        manager.stop(running)
        manager.wait(running, timeout=60)
    at = train_page(model="lenet")
    assert not any("It would start after" in c.value for c in at.caption)  # a free worker: at once


def test_the_speedrun_preset_is_the_speedrun_networks_own_and_says_what_it_reached_here(app_env):
    from explorer.measured import kept_speedrun, speedrun_said
    from explorer.training.recipes import preset

    at = train_page(model="speedrun")
    assert at.radio(key="t.preset").options == ["quick", "fast", "book", "speedrun"]
    at.radio(key="t.preset").set_value("speedrun").run()
    _, _, runs = kept_speedrun()  # the kept measurement (bench speedrun --save), as the page says it
    said = [c.value for c in at.caption if c.value.startswith("Measured on")]
    assert said == [speedrun_said()] and f"{min(r.test_acc for r in runs):.2%}" in said[0]
    trains = next(m.value for m in at.markdown if m.value.startswith("Trains **"))
    s = preset("speedrun", "speedrun").settings
    assert f"speedrun preset: learning rate {s.lr:g}, {s.epochs} epochs of all 60,000 images at batch size " \
           f"{s.batch_size}" in trains
    # its time, not its epochs, is the goal: the budget is a widget of its own, said beside the sentence
    assert at.sidebar.number_input(key="t.speedrun.speedrun.minutes").value == s.minutes > 0
    captions = " ".join(c.value for c in at.caption)
    assert f"At most {s.epochs} epochs: as many as fit in {s.minutes:g} minutes" in captions
    at.sidebar.number_input(key="t.speedrun.speedrun.minutes").set_value(0.2).run()  # under half a minute
    refusal = " ".join(e.value for e in at.error).replace("\\", "")  # as shown: Markdown's escapes left out
    assert "minutes: must be 0 (every epoch) or a number of minutes from 0.5 to 1440, not 0.2" in refusal
    assert at.button(key="t.start").disabled and not at.exception
    at.sidebar.selectbox(key="t.family").set_value("LeNet").run()  # another network: its own presets
    assert at.radio(key="t.preset").options == ["quick", "fast", "book"]
    assert at.radio(key="t.preset").value == "quick" and not at.exception
