"""Explore: edit one network and see every layer's shape, parameters, compute and memory."""

import streamlit as st

from explorer import registry
from explorer.codegen import export_code
from explorer.i18n import _
from explorer.summary import summarize
from explorer.views import charts
from explorer.views.diagram import diagram_figure, diagram_units
from explorer.views.tables import csv_text, format_layers
from explorer.views.ui import VIEWS, config_params, headline, int_param, warm_up
from pages.common import bookmark_params, config_editor, fit_height, page_setup, show_fallback
from pages.language import use_language

use_language()  # this run's language (app.py sets it first; AppTest's reruns start at the page)
warm_up()
params = st.query_params.to_dict()
state = st.session_state
if "x.view" not in state:  # a shared link opens on the view and depth it was copied from
    state["x.view"] = params.get("view") if params.get("view") in VIEWS else VIEWS[0]
with st.sidebar:
    name, config, error = config_editor("x.", st.sidebar, params)
    batch = st.number_input(_("Batch size (memory estimate)"), 1, 4096, key="x.batch",
                            value=int_param(params, "batch", 1, 4096) or registry.get(name).book.batch_size)
present = page_setup()

summary = summarize(config, batch_size=batch)
default = summarize(registry.get(name).config, batch_size=batch)
max_depth = int(summary.layers.depth.max())
if "x.depth" not in state:
    state["x.depth"] = min(int_param(params, "depth", 1, max_depth) or 2, max_depth)
state["x.depth"] = min(state["x.depth"], max_depth)  # another network may be shallower

st.title(name)
about = _("d2l {section} · {description} · input {shape}. Changes are against the book's {name}; copy the URL to "
          "share this view.") if registry.get(name).section else _(
    "Not one of the book's networks: {description} · input {shape}. Changes are against the catalog's {name}; copy "
    "the URL to share this view.")
st.caption(about.format(section=registry.get(name).section, description=_(registry.get(name).description), name=name,
                        shape=f"{config.in_channels}x{config.resolution}x{config.resolution}"))
show_fallback(error)
figures = headline(summary, default)
# the memory label is the longest: it keeps its whole text at 1280 wide in presentation mode, sidebar open
for column, (label, value, delta, exact) in zip(st.columns([1, 1, 1.4, 0.7]), figures, strict=True):
    column.metric(label, value, delta, delta_color="off", help=exact)
exact, train = st.columns([3, 1], vertical_alignment="center")
exact.caption(_("Exactly {params} and {mult_adds}.").format(params=figures[0][3], mult_adds=figures[1][3]))
train.page_link("pages/train.py", label=_("Train this network"), icon=":material/model_training:",
                query_params=config_params(name, config) | bookmark_params())

# one view at a time: st.tabs would build and ship every chart and the diagram on each change
left, right = st.columns([3, 2], vertical_alignment="bottom")
view = left.segmented_control(_("View"), VIEWS, key="x.view", required=True, label_visibility="collapsed",
                              format_func=_)
depth = state["x.depth"]
if view == "Layers":
    if max_depth > 1:
        depth = right.slider(_("Unfold blocks to depth"), 1, max_depth, key="x.depth")
    table = format_layers(summary.layers, summary.totals, depth)
    st.dataframe(table, hide_index=True, width="stretch", height=fit_height(len(table), 390))
    st.download_button(_("Download the layer table (CSV)"), csv_text(summary.layers),
                       file_name=f"{name}-layers.csv", mime="text/csv")
elif view == "Charts":
    log = right.toggle(_("Log scale for parameters"), value=True, key="x.log")
    named = {name: summary.layers}
    st.plotly_chart(charts.per_layer_chart(named, "params", _("Parameters per layer"), log), key="x.params")
    st.plotly_chart(charts.per_layer_chart(named, "mult_adds", _("Mult-adds per layer (one image)")), key="x.macs")
    st.plotly_chart(charts.shape_flow_chart(named), key="x.shapes")
elif view == "Diagram":
    fold = right.toggle(_("Fold repeated blocks (×N)"), value=True, key="x.fold")
    units = diagram_units(summary.layers, summary.totals.input_shape, fold)
    st.plotly_chart(diagram_figure(units, scale=1.3 if present else 1.0), key="x.diagram",  # larger type on a projector
                    config={"scrollZoom": True, "displaylogo": False})
    st.caption(_("Drag to pan, scroll to zoom, double-click to reset. Hover a box for its layers."))
else:
    code = export_code(config)
    right.download_button(_("Download as a .py file"), code, file_name=f"{name}.py", mime="text/x-python")
    st.code(code, language="python", height=420)

wanted = {**config_params(name, config), "batch": str(batch), "view": view, "depth": str(depth), **bookmark_params()}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)
