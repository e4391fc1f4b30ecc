"""Runs: the history, curves of several runs overlaid, and one run in detail."""

import io

import streamlit as st

from explorer.views.runviews import (
    batchnorm_chart,
    batchnorm_parameters,
    calibration_text,
    confused_examples,
    confusion_heatmap,
    first_with_results,
    history_table,
    overlay_chart,
    per_class_accuracy,
    training_chart,
)
from explorer.views.ui import plain
from pages.common import page_setup, run_manager, visitor

manager = run_manager()
me = visitor()
if manager.store.recovered:  # a damaged run store was moved aside, not overwritten: say so
    st.warning(plain(manager.store.recovered), icon="⚠️")
page_setup()

st.title("Runs")
queue = manager.queue()
if queue:
    st.caption("The server's queue: " + " · ".join(  # others' runs are counted, not named
        (f"your {v.record.model} {v.id}" if v.record.owner == me.id else "another visitor's run")
        + (" running" if v.position is None else f" waiting #{v.position}") for v in queue))

records = manager.store.list(owner=None if me.admin else me.id)
if not records:
    st.info("No runs yet: start one on the Train page.")
    st.stop()

table = history_table(records)
st.caption(("Every visitor's runs (you are an admin)." if me.admin else "Your runs.")
           + " Select rows to overlay their curves; the first selected is shown in detail.")
picked = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row",
                      key="r.table", column_config={"best test acc": st.column_config.NumberColumn(format="%.3f")})
# nothing selected: the newest run that has something to show, not a stopped or queued one with no results
rows = picked.selection.rows or [first_with_results(records)]
chosen = [records[i] for i in rows]

if len(chosen) > 1:
    named = {f"{r.model} {r.id}": manager.metrics(r.id) for r in chosen}
    a, b = st.columns(2)
    a.plotly_chart(overlay_chart(named, "train_loss", "Training loss"), key="r.loss")
    b.plotly_chart(overlay_chart(named, "test_acc", "Test accuracy"), key="r.acc")

r = chosen[0]
st.header(f"{r.model} · run {r.id} · {r.status}")
metrics = manager.metrics(r.id)
if r.error:
    st.error(plain(r.error))
if r.warning:
    st.warning(plain(r.warning), icon="⚠️")
if calibration_text(r):
    st.caption(calibration_text(r))
if len(metrics):
    st.plotly_chart(training_chart(metrics, f"{r.model}: loss and accuracy", height=360), key="r.curve")
else:
    st.info("This run stopped before its first report: it has no curve.")
if r.confusion:
    left, right = st.columns([3, 2])
    left.plotly_chart(confusion_heatmap(r.confusion), key="r.confusion")
    right.dataframe(per_class_accuracy(r.confusion), hide_index=True, width="stretch",
                    column_config={"accuracy": st.column_config.ProgressColumn(min_value=0, max_value=1,
                                                                               format="%.3f")})
    examples = confused_examples(r, data_dir=manager.data_dir)
    if examples:
        st.subheader("Test images it gets wrong, most confused pairs first")
        st.image([img for img, _ in examples], caption=[c for _, c in examples], width=112)

if r.weights_path:
    weights = manager.load_weights(r.id, me)
    norms = batchnorm_parameters(r.model, r.config, weights)
    if norms:
        st.subheader("What batch normalization learned")
        for layer, (gamma, beta) in norms.items():
            st.plotly_chart(batchnorm_chart(layer, gamma, beta), key=f"r.bn.{layer}")
    buffer = io.BytesIO()
    with open(r.weights_path, "rb") as f:
        buffer.write(f.read())
    st.download_button("Download the weights (state_dict)", buffer.getvalue(), file_name=f"{r.model}-{r.id}.pt")

st.download_button("Download the metrics (CSV)", metrics.to_csv(index=False), file_name=f"{r.model}-{r.id}.csv",
                   mime="text/csv")
if st.button("Delete this run", key="r.delete"):
    manager.delete(r.id, me)
    st.rerun()
