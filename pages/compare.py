"""Compare: two configs side by side, their totals, a per-stage difference and overlaid charts."""

import streamlit as st

from explorer.i18n import _
from explorer.summary import summarize
from explorer.views import charts
from explorer.views.ui import compare_labels, config_params, int_param, stage_table, totals_table, warm_up
from pages.common import bookmark_params, config_editor, fit_height, page_setup, show_fallback
from pages.language import use_language

use_language()  # this run's language (app.py sets it first; AppTest's reruns start at the page)
warm_up()
params = st.query_params.to_dict()
if "a.model" not in params and "b.model" not in params:  # a first visit: the book's VGG-11 against ratio 4
    params = {**params, "a.model": "vgg11", "b.model": "vgg11-small"}
with st.sidebar:
    batch = st.number_input(_("Batch size (memory estimate)"), 1, 4096, key="c.batch",
                            value=int_param(params, "batch", 1, 4096) or 128)
    st.subheader(_("Network A"), anchor=False)  # headings, not expanders: an expander's margins cut the editor
    name_a, config_a, error_a = config_editor("a.", st, params, url_prefix="a.")
    st.subheader(_("Network B"), anchor=False)
    name_b, config_b, error_b = config_editor("b.", st, params, url_prefix="b.")
page_setup()

a, b = summarize(config_a, batch_size=batch), summarize(config_b, batch_size=batch)
labels = compare_labels((name_a, config_a), (name_b, config_b))
st.title(_("{a}  vs  {b}").format(a=labels[0], b=labels[1]))
show_fallback(error_a or error_b)
totals = totals_table(a, b, labels)
st.dataframe(totals, hide_index=True, width="stretch", height=fit_height(len(totals)))
st.caption(_("Memory is for one training step at batch size {batch} (weights, gradients, activations). Edit "
             "both networks in the sidebar.").format(batch=batch))
st.subheader(_("Stage by stage"))
stages = stage_table(a, b, labels)
st.dataframe(stages, hide_index=True, width="stretch", height=fit_height(len(stages)))
named = {labels[0]: a.layers, labels[1]: b.layers}
st.plotly_chart(charts.cumulative_chart(named, "params", _("Parameters, accumulated through the layers")),
                key="c.cum_params")
st.plotly_chart(charts.cumulative_chart(named, "mult_adds", _("Mult-adds, accumulated through the layers")),
                key="c.cum_macs")
st.plotly_chart(charts.per_layer_chart(named, "params", _("Parameters per layer"), log=True), key="c.params")
st.plotly_chart(charts.shape_flow_chart(named), key="c.shapes")

wanted = {**config_params(name_a, config_a, "a."), **config_params(name_b, config_b, "b."), "batch": str(batch),
          **bookmark_params()}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)
