"""The pages through Streamlit's AppTest: knobs change what is shown, URLs restore it, errors stay calm."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer import registry
from explorer.summary import summarize
from explorer.tables import human

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def app(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    if page:
        at.switch_page(page).run()
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
    dot = at.get("graphviz_chart")[0].proto.spec
    assert dot.startswith("digraph") and "Conv2d 5x5" in dot and "AvgPool2d 2x2" in dot


def test_compare_two_configs():
    at = app("pages/compare.py")
    totals = table(at, "ratio")
    assert list(totals.columns) == ["", "A vgg11", "B vgg11-small", "ratio"]
    assert totals.iloc[0]["A vgg11"] == f"{summarize(registry.get('vgg11').config).totals.params:,}"
    assert len(at.get("plotly_chart")) == 4
    stages = table(at, "params change")
    assert stages["params change"].sum() == (summarize(registry.get("vgg11-small").config).totals.params
                                             - summarize(registry.get("vgg11").config).totals.params)


def test_compare_restores_both_sides_from_the_url():
    at = app()
    at.query_params.clear()
    for key, value in {"a.model": "resnet18", "b.model": "resnet18", "b.blocks": "[3, 4, 6, 3]"}.items():
        at.query_params[key] = value
    at.switch_page("pages/compare.py").run()
    totals = table(at, "ratio")
    assert totals.iloc[0]["B resnet18"] == f"{summarize(registry.get('resnet34').config).totals.params:,}"


@pytest.mark.parametrize("page", ["pages/catalog.py"])
def test_catalog_lists_every_model(page):
    at = app(page)
    assert list(table(at, "description").name) == registry.list_models()
