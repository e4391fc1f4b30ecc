"""Compare: two configs side by side, their totals, a per-stage difference and overlaid charts."""

import streamlit as st

from explorer import charts
from explorer.summary import summarize
from explorer.ui import config_params, stage_table, totals_table, warm_up
from pages.common import config_editor

warm_up()
params = st.query_params.to_dict()
if "a.model" not in params and "b.model" not in params:  # a first visit: the book's VGG-11 against ratio 4
    params = {"a.model": "vgg11", "b.model": "vgg11-small"}

st.title("Compare two networks")
left, right = st.columns(2)
with left.expander("Network A", expanded=True):
    name_a, config_a, _ = config_editor("a.", st, params, url_prefix="a.")
with right.expander("Network B", expanded=True):
    name_b, config_b, _ = config_editor("b.", st, params, url_prefix="b.")

wanted = {**config_params(name_a, config_a, "a."), **config_params(name_b, config_b, "b.")}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)

a, b = summarize(config_a), summarize(config_b)
labels = (f"A {name_a}", f"B {name_b}")
st.subheader("Totals")
st.dataframe(totals_table(a, b, labels), hide_index=True, width="stretch")
st.subheader("Stage by stage")
st.dataframe(stage_table(a, b, labels), hide_index=True, width="stretch")
named = {labels[0]: a.layers, labels[1]: b.layers}
st.plotly_chart(charts.cumulative_chart(named, "params", "Parameters, accumulated through the layers"),
                key="c.cum_params")
st.plotly_chart(charts.cumulative_chart(named, "mult_adds", "Mult-adds, accumulated through the layers"),
                key="c.cum_macs")
st.plotly_chart(charts.per_layer_chart(named, "params", "Parameters per layer", log=True), key="c.params")
st.plotly_chart(charts.shape_flow_chart(named), key="c.shapes")
