"""Explore: edit one network and see every layer's shape, parameters, compute and memory."""

import streamlit as st

from explorer import charts, registry
from explorer.codegen import export_code
from explorer.diagram import diagram_dot
from explorer.summary import summarize
from explorer.tables import format_layers
from explorer.ui import config_params, headline, warm_up
from pages.common import config_editor

warm_up()
params = st.query_params.to_dict()
with st.sidebar:
    name, config, _ = config_editor("x.", st.sidebar, params)
    batch = st.number_input("Batch size (memory estimate)", 1, 4096, key="x.batch",
                            value=int(params["batch"]) if params.get("batch", "").isdigit()
                            and 1 <= int(params["batch"]) <= 4096 else registry.get(name).book.batch_size)

summary = summarize(config, batch_size=batch)
default = summarize(registry.get(name).config, batch_size=batch)
wanted = {**config_params(name, config), "batch": str(batch)}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)

st.title(f"{name}")
st.caption(f"d2l {registry.get(name).section} · {registry.get(name).description} · input "
           f"{config.in_channels}x{config.resolution}x{config.resolution}. Changes are against the book's "
           f"{name}; copy the URL to share this view.")
for column, (label, value, delta) in zip(st.columns(5), headline(summary, default), strict=True):
    column.metric(label, value, delta, delta_color="off")

# one view at a time: st.tabs would build and ship every chart and the diagram on each change
view = st.segmented_control("View", ["Layers", "Charts", "Diagram", "Code"], default="Layers", key="x.view",
                            required=True, label_visibility="collapsed")
if view == "Layers":
    max_depth = int(summary.layers.depth.max())
    depth = st.slider("Unfold blocks to depth", 1, max_depth, min(2, max_depth), key="x.depth") \
        if max_depth > 1 else 1
    st.dataframe(format_layers(summary.layers, depth), hide_index=True, width="stretch", height=520)
    st.download_button("Download the layer table (CSV)", summary.layers.to_csv(index=False),
                       file_name=f"{name}-layers.csv", mime="text/csv")
elif view == "Charts":
    log = st.toggle("Log scale for parameters", value=True, key="x.log")
    named = {name: summary.layers}
    st.plotly_chart(charts.per_layer_chart(named, "params", "Parameters per layer", log), key="x.params")
    st.plotly_chart(charts.per_layer_chart(named, "mult_adds", "Mult-adds per layer (one image)"), key="x.macs")
    st.plotly_chart(charts.shape_flow_chart(named), key="x.shapes")
elif view == "Diagram":
    st.graphviz_chart(diagram_dot(summary.layers), width="stretch")
else:
    code = export_code(config)
    st.download_button("Download as a .py file", code, file_name=f"{name}.py", mime="text/x-python")
    st.code(code, language="python")
