"""The pages through Streamlit's AppTest: knobs change what is shown, URLs restore it, errors stay calm."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer import registry, server
from explorer.summary import summarize
from explorer.views.tables import human

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def app(page: str | None = None, timeout: float = 60, state: dict | None = None, **params: str) -> AppTest:
    """The app opened at `page` (Explore by default) with these URL parameters and session state (a visitor),
    drawn without an exception."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.query_params.update(params)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    (at.switch_page(page) if page else at).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table(at: AppTest, column: str):
    """The shown table that has `column` (the conv_arch editors are tables too)."""
    return next(t.value for t in at.dataframe if column in t.value.columns)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def params_of(name: str, **changes) -> str:
    config = registry.get(name).config.__class__(**{**registry.get(name).config.kwargs(), **changes})
    return human(summarize(config).totals.params)


def test_explore_shows_the_default_network():
    at = app()
    assert metric(at, "parameters") == params_of("vgg11-small")
    assert at.query_params["model"] == "vgg11-small"
    assert any("d2l 7.2" in c.value for c in at.caption)


def test_changing_a_knob_updates_metrics_and_url():
    at = app()
    at.sidebar.number_input(key="x.vgg11-small.ratio").set_value(8).run()
    assert metric(at, "parameters") == params_of("vgg11-small", ratio=8)
    assert next(m.delta for m in at.metric if m.label == "parameters").startswith("-")
    assert at.query_params["ratio"] == "8"


def test_switching_architecture_and_editing_a_tuple_knob():
    at = app()
    at.sidebar.selectbox(key="x.family").set_value("ResNet").run()
    assert metric(at, "parameters") == params_of("resnet18")
    at.sidebar.text_input(key="x.resnet18.blocks").set_value("3, 4, 6, 3").run()
    assert metric(at, "parameters") == params_of("resnet34")
    assert at.query_params["blocks"] == "[3, 4, 6, 3]"


def test_a_shared_url_restores_the_view():
    at = app(model="resnet18", blocks="[3, 4, 6, 3]", batch="64")
    assert metric(at, "parameters") == params_of("resnet34")
    assert at.sidebar.text_input(key="x.resnet18.blocks").value == "3, 4, 6, 3"
    assert "batch 64" in " ".join(m.label for m in at.metric)
    at = app(model="vgg11", conv_arch="[(1, 32), (1, 64), (2, 128)]", resolution="64")
    assert metric(at, "parameters") == params_of("vgg11", conv_arch=((1, 32), (1, 64), (2, 128)), resolution=64)


def test_bad_url_values_warn_and_fall_back():
    at = app(model="vgg99")
    assert any("unknown model 'vgg99'" in w.value for w in at.warning)
    assert metric(at, "parameters") == params_of("vgg11-small")
    at = app(model="vgg11-small", ratio="lots", resolution="16")
    messages = " ".join(w.value for w in at.warning)
    assert "ratio" in messages and "resolution" in messages
    assert metric(at, "parameters") == params_of("vgg11-small")
    at = app(model="vgg11-small", ratio="lots", lang="zh")  # said in the page's language, the URL quoted as it was
    messages = " ".join(w.value for w in at.warning)
    assert "已忽略网址中的 ratio='lots'" in messages.replace("\\", "") and "ignored" not in messages


def test_an_impossible_knob_shows_a_message_and_keeps_the_last_view():
    at = app()
    at.sidebar.number_input(key="x.vgg11-small.ratio").set_value(8).run()
    at.sidebar.number_input(key="x.vgg11-small.resolution").set_value(16).run()
    assert not at.exception
    assert any("use a resolution of at least 32" in e.value for e in at.sidebar.error)
    assert metric(at, "parameters") == params_of("vgg11-small", ratio=8)  # the last valid config
    at.sidebar.number_input(key="x.vgg11-small.ratio").set_value(128).run()
    assert any("leaves no channels" in e.value for e in at.sidebar.error)


def test_code_and_csv_are_offered():
    at = app(model="lenet")
    assert len(at.get("download_button")) == 1  # the layer table as CSV
    at.segmented_control(key="x.view").set_value("Code").run()
    assert "def lenet(" in at.code[0].value and "net = lenet(" in at.code[0].value
    assert len(at.get("download_button")) == 1  # the .py file
    at.segmented_control(key="x.view").set_value("Charts").run()
    assert len(at.get("plotly_chart")) == 3
    at.segmented_control(key="x.view").set_value("Diagram").run()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    labels = " ".join(a.get("text", "") for a in figure["layout"]["annotations"])
    assert "Conv 5x5 · Sigmoid" in labels and "AvgPool 2x2" in labels
    assert at.query_params["view"] == "Diagram"


def test_compare_two_configs():
    at = app("pages/compare.py")
    totals = table(at, "ratio")
    assert list(totals.columns) == ["", "A vgg11", "B vgg11-small", "ratio"]
    assert totals.iloc[0]["A vgg11"] == f"{summarize(registry.get('vgg11').config).totals.params:,}"
    assert "training memory (batch 128)" in list(totals[""])  # the batch the memory is for, said
    assert len(at.get("plotly_chart")) == 4
    stages = table(at, "params change")
    change = sum(int(v.replace(",", "")) for v in stages["params change"])
    assert change == (summarize(registry.get("vgg11-small").config).totals.params
                      - summarize(registry.get("vgg11").config).totals.params)
    assert "-77,070,336" in list(stages["params change"])  # thousands separators
    at.sidebar.number_input(key="b.vgg11-small.ratio").set_value(8).run()
    at.sidebar.number_input(key="c.batch").set_value(16).run()
    totals = table(at, "ratio")
    assert list(totals.columns) == ["", "A vgg11", "B vgg11-small (ratio=8)", "ratio"]  # says what differs
    assert "training memory (batch 16)" in list(totals[""])


def test_compare_restores_both_sides_from_the_url():
    at = app()
    at.query_params.clear()
    for key, value in {"a.model": "resnet18", "b.model": "resnet18", "b.blocks": "[3, 4, 6, 3]"}.items():
        at.query_params[key] = value
    at.switch_page("pages/compare.py").run()
    totals = table(at, "ratio")
    resnet34 = summarize(registry.get("resnet34").config).totals.params
    assert totals.iloc[0]["B resnet18 (blocks=3, 4, 6, 3)"] == f"{resnet34:,}"


@pytest.mark.parametrize("page", ["pages/catalog.py"])
def test_catalog_lists_every_model(page):
    at = app(page)
    assert list(table(at, "description").name) == registry.list_models()


def test_a_typed_tuple_works_in_the_widget():
    at = app(model="resnet18")
    at.sidebar.text_input(key="x.resnet18.blocks").set_value("(3,4,6,3)").run()
    assert not at.sidebar.error
    assert metric(at, "parameters") == params_of("resnet34")


def sidebar_order(at: AppTest) -> list[str]:
    """The sidebar's widgets and errors in drawing order: keys of inputs, "error: ..." for errors."""
    out = []
    for node in at.sidebar:
        kind = type(node).__name__
        if kind == "Error":
            out.append("error: " + node.value)
        elif getattr(node, "key", None):
            out.append(node.key)
    return out


def test_an_error_lands_under_the_knob_that_was_changed():
    at = app(model="resnet18")
    at.sidebar.text_input(key="x.resnet18.blocks").set_value("3,4,6").run()
    order = sidebar_order(at)
    after = order[order.index("x.resnet18.blocks") + 1]
    assert after.startswith("error: blocks has 3 stages but channels has 4")
    assert any("shows the last valid config" in w.value for w in at.main.warning)  # the main area says so
    assert metric(at, "parameters") == params_of("resnet18")

    at = app(model="resnet18")
    at.sidebar.text_input(key="x.resnet18.channels").set_value("64, 128, 256").run()
    order = sidebar_order(at)
    assert order[order.index("x.resnet18.channels") + 1].startswith("error: blocks has 4 stages")


def test_a_shared_link_opens_on_its_view_and_depth():
    at = app(model="resnet18", view="Charts", depth="1")
    assert at.segmented_control(key="x.view").value == "Charts"
    assert len(at.get("plotly_chart")) == 3
    assert not at.sidebar.warning  # page parameters are not mistaken for knobs
    at = app(model="resnet18", view="Layers", depth="1")
    assert at.slider(key="x.depth").value == 1
    layers = table(at, "output shape")
    assert set(layers.layer.str.strip().str.split(" ").str[0]) == {"0", "1", "2", "3", "4", "5", "6", "7", "total"}
    total = summarize(registry.get("resnet18").config).totals.params
    assert layers.iloc[-1].layer == "total" and layers.iloc[-1].params == f"{total:,}"  # every layer's, folded too
    assert next(m for m in at.metric if m.label == "parameters").help == f"{total:,} parameters"
    assert any(f"Exactly {total:,} parameters" in c.value for c in at.caption)
    at.slider(key="x.depth").set_value(2).run()
    assert at.query_params["depth"] == "2"


def test_presentation_mode_is_a_toggle_and_a_url_parameter():
    at = app(model="lenet", present="1")
    assert at.sidebar.toggle(key="present").value is True
    assert at.query_params["present"] == "1"
    at.sidebar.toggle(key="present").set_value(False).run()
    assert "present" not in at.query_params


def test_visitor_text_is_shown_as_text_never_as_markdown():
    at = app(model="vgg11-small", ratio="[CLICK HERE](http://example.invalid)", resolution="![x](http://e.invalid/t.png)")
    shown = " ".join(w.value for w in at.warning)
    assert "\\[CLICK HERE\\]\\(http\\:\u200b//example\\.invalid\\)" in shown and r"\!\[x\]" in shown
    at = app(model="x" * 50_000)
    assert at.warning and all(len(w.value) < 400 for w in at.warning)  # a 50 KB name is said, not echoed whole
    at = app(model="vgg\u202e11\x1b[31m")  # a right-to-left override and a terminal escape
    shown = " ".join(w.value for w in at.warning)
    assert "vgg11" in shown and "\u202e" not in shown and "\x1b" not in shown


def test_a_switch_knob_is_a_checkbox_that_takes_the_shortcut_away_and_says_so_in_the_url():
    at = app(model="resnet18")
    box = at.sidebar.checkbox(key="x.resnet18.residual")
    assert box.label == "residual" and box.value is True
    box.uncheck().run()
    assert metric(at, "parameters") == params_of("resnet18", residual=False)
    assert at.query_params["residual"] == "false"
    restored = app(model="resnet18", residual="false", norm="none")  # the link opens the same network
    assert restored.sidebar.checkbox(key="x.resnet18.residual").value is False
    assert restored.sidebar.selectbox(key="x.resnet18.norm").value == "none"
    assert metric(restored, "parameters") == params_of("resnet18", residual=False, norm="none")
    assert not any("BatchNorm2d" in str(layer) for layer in table(restored, "kernel").layer)


def test_streamlit_run_app_tunes_its_server_as_explorer_serve_does(tmp_path):
    """The README's quickstart serves as the hosting command does: summaries traced in two processes beside
    the server, a short switch interval, the loaded modules frozen out of the collector, the run manager up."""
    script = textwrap.dedent(f"""
        import gc, sys, threading
        from streamlit.testing.v1 import AppTest
        from explorer import summary
        from explorer import server
        at = AppTest.from_file({APP!r}, default_timeout=120)
        at.run()
        at.run()  # a second script run does nothing more
        print(len(summary._processes.services), sys.getswitchinterval(), gc.get_freeze_count() > 0,
              server._SERVER is not None, flush=True)
        for thread in threading.enumerate():
            if thread.name.startswith("explorer-warm"):
                thread.join()
        server.close_server()
        summary._processes.stop()
    """)
    env = {**os.environ, "EXPLORER_SUMMARY_PROCESSES": "2", "EXPLORER_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                         cwd=Path(APP).parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-4:] == ["2", str(server.SWITCH_INTERVAL), "True", "True"]
