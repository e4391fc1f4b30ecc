"""What the figures draw: the diagram's boxes and skips, the heatmap's categories, the log axes' ticks."""

import pytest

from explorer import registry
from explorer.summary import summarize
from explorer.views import charts
from explorer.views.diagram import diagram_figure, diagram_units, grid
from explorer.views.runviews import confusion_heatmap

MAX_DIAGRAM_PX = 560  # with the page's header, the whole network fits a 1280x720 projector


def units(name, fold=True, **changes):
    config = registry.get(name).config
    if changes:
        config = type(config)(**{**config.kwargs(), **changes})
    s = summarize(config)
    return diagram_units(s.layers, s.totals.input_shape, fold)


@pytest.mark.parametrize("name", registry.list_models())
def test_every_diagram_fits_a_projector(name):
    u = units(name)
    fig = diagram_figure(u)
    rows, per_row = grid(len(u))
    assert rows <= 2 and per_row <= 7
    assert fig.layout.height <= MAX_DIAGRAM_PX
    assert (u[0].title, u[-1].title) == ("input", "logits")
    assert u[-1].shape == "10"
    texts = [a.text for a in fig.layout.annotations if a.text]
    assert sum(1 for t in texts if t.startswith("<b>") or "stage" in t[:40]) == len(u)  # one label per box
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == len(u)
    xs = [r.x0 for r in rects] + [r.x1 for r in rects]
    assert fig.layout.xaxis.range[0] <= min(xs) and max(xs) <= fig.layout.xaxis.range[1]  # no box off screen


@pytest.mark.parametrize("name", registry.list_models())
def test_presentation_mode_enlarges_the_diagrams_type_and_it_still_fits(name):
    u = units(name)
    plain, large = diagram_figure(u), diagram_figure(u, scale=1.3)
    sizes = [(a.font.size, b.font.size) for a, b in zip(plain.layout.annotations, large.layout.annotations,
                                                        strict=True) if a.font.size]
    assert sizes and all(b >= 1.25 * a for a, b in sizes)  # every label, 12 px -> 16 px
    assert "font-size:14px" in large.layout.annotations[1].text or not u[1].lines
    assert large.layout.height <= 600 and large.layout.height >= plain.layout.height  # taller rows, still whole


def test_a_deep_unfolded_network_in_presentation_mode_still_fits():
    assert diagram_figure(units("resnet18", fold=False, blocks=(10, 10, 10, 3)), scale=1.3).layout.height <= 620


def test_resnet_folds_identical_blocks_and_draws_every_skip():
    folded, flat = units("resnet18"), units("resnet18", fold=False)
    residual = [u for u in folded if u.kind == "skip"]
    assert sum(u.repeat for u in residual) == 8 == sum(u.kind == "skip" for u in flat)
    assert [u.skip for u in residual].count("1x1 conv") == 3  # the first block of stages 2-4 downsamples
    assert residual[0].repeat == 2 and residual[0].shape == "64×24×24"
    fig = diagram_figure(folded)
    skips = [s for s in fig.layout.shapes if s.type == "path" and s.line.dash == "dash"]
    assert len(skips) == len(residual)
    deep = units("resnet34")
    assert [u.repeat for u in deep if u.kind == "skip"] == [3, 1, 3, 1, 5, 1, 2]


def test_inception_and_dense_blocks_show_their_paths_and_growth():
    inception = [u for u in units("googlenet") if u.title == "Inception"]
    assert [u.repeat for u in inception] == [2, 5, 2]
    assert inception[0].lines[0] == "1x1 | 1x1→3x3 | 1x1→5x5 | pool→1x1"
    dense = [u for u in units("densenet") if u.title == "DenseBlock"]
    assert len(dense) == 4 and dense[0].lines == ("4× BN · ReLU · Conv 3x3", "concat, +32 ch each")


def test_a_long_chain_wraps_into_rows_not_a_tall_column():
    u = units("resnet18", fold=False, blocks=(10, 10, 10, 3))
    rows, per_row = grid(len(u))
    assert len(u) > 30 and rows <= 5 and diagram_figure(u).layout.height <= 620


def test_the_heatmap_keeps_its_class_categories():
    fig = confusion_heatmap([[i * 10 + j for j in range(10)] for i in range(10)])
    assert fig.layout.yaxis.type is None and fig.layout.xaxis.type is None  # Plotly infers "category"
    assert list(fig.data[0].y)[0] == "t-shirt" and len(fig.data[0].z) == 10
    assert fig.layout.yaxis.autorange == "reversed"


def test_log_axes_are_labelled_with_powers_of_two():
    fig = charts.shape_flow_chart({"r": summarize(registry.get("resnet18").config).layers})
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    for ticks in (fig.layout.yaxis.tickvals, fig.layout.yaxis2.tickvals):
        assert ticks and all(t & (t - 1) == 0 for t in ticks)  # whole powers of two, no "10.65162"
    assert 512 in fig.layout.yaxis.tickvals and 96 > max(fig.layout.yaxis2.tickvals) / 2


def test_a_log_chart_labels_powers_of_ten_only():
    layers = summarize(registry.get("resnet18").config).layers
    fig = charts.per_layer_chart({"r": layers}, "params", "Parameters per layer", log=True)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1
    assert charts.per_layer_chart({"r": layers}, "params", "p").layout.yaxis.type is None
