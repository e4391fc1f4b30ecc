"""Runs: your runs, curves of several overlaid, and one run in detail: yours, or any run whose link you have."""

import streamlit as st

from explorer.errors import ExplorerError
from explorer.i18n import _, told
from explorer.views.runviews import (
    accuracy,
    band_chart,
    batchnorm_chart,
    batchnorm_parameters,
    confused_examples,
    confusion_heatmap,
    first_with_results,
    history_table,
    overlay_chart,
    per_class_accuracy,
    run_notes,
    run_title,
    runs_csv,
    seed_groups,
    training_chart,
)
from explorer.views.tables import csv_text
from explorer.views.ui import plain
from pages.common import (
    admin_notices,
    bookmark_params,
    dynamics_params,
    dynamics_section,
    fit_height,
    forget_browser,
    page_context,
    page_setup,
    say_run_missing,
)

manager, me = page_context()[:2]
state = st.session_state
admin_notices(me)
forget_browser(me)
page_setup()

st.title(_("Runs"))
if deleted := state.pop("r.deleted", None):
    st.success(plain(deleted), icon=":material/delete:")
queue = manager.queue()
if queue:
    said = {(True, True): _("your {model} {run}, running"), (True, False): _("your {model} {run}, waiting #{position}"),
            (False, True): _("another visitor's run, running"),
            (False, False): _("another visitor's run, waiting #{position}")}
    st.caption(_("The server's queue: {runs}").format(runs=" · ".join(  # others' runs are counted, not named
        said[manager.may_act(v.id, me), v.position is None].format(model=v.record.model, run=v.id,
                                                                  position=v.position) for v in queue)))

linked_id = st.query_params.get("run")
linked = manager.store.get(linked_id) if linked_id else None
if linked_id and linked is None:  # the URL names a run this store does not have: say so, keep the URL
    say_run_missing(linked_id, _("Your own runs are listed below."))
versus_id = st.query_params.get("vs")  # a second run beside the first (a lesson's pair): read-only, as a link is
versus = manager.store.get(versus_id) if versus_id and linked is not None else None
if versus_id and linked is not None and versus is None:
    say_run_missing(versus_id, _("The first run is shown alone."))

records = manager.store.list(owner=None if me.admin else me.id)
if records:
    st.caption((_("Every run in this data directory, however it was started.") if me.admin else _("Your runs."))
               + _(" Select rows to overlay their curves; the first selected is shown in detail."))
    picked = st.dataframe(history_table(records), hide_index=True, width="stretch", on_select="rerun",
                          selection_mode="multi-row", key="r.table", height=fit_height(len(records), 300))
    rows = picked.selection.rows
else:
    st.info(_("You have no runs yet: start one on the Train page."))
    rows = []
if rows:
    chosen = [records[i] for i in rows]
elif linked is not None:
    chosen = [linked] + ([versus] if versus is not None and versus.id != linked.id else [])
elif records and not linked_id:  # nothing asked for: the newest run with something to show
    chosen = [records[first_with_results(records)]]
else:
    st.stop()

if len(chosen) > 1:
    named = {r.label: manager.live.metrics(r.id) for r in chosen}
    groups = seed_groups(chosen)
    smoothing, log, banded, csv = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    weight = smoothing.slider(_("Smoothing"), 0.0, 0.99, 0.6, 0.01, key="r.smooth",
                              help=_("an exponential moving average of the train curves, as TensorBoard draws them"))
    log_loss = log.toggle(_("Log-scale loss"), key="r.log")
    bands = banded.toggle(_("Seeds as bands"), key="r.bands", disabled=len(groups) == len(chosen),
                          help=_("runs of one config that differ only in their seed: their mean, and their lowest "
                                 "to highest value"))
    csv.download_button(_("Selected runs (CSV)"), runs_csv(chosen, list(named.values())), file_name="runs.csv",
                        mime="text/csv")
    a, b = st.columns(2)
    if bands and len(groups) < len(chosen):
        metrics_of = {label: [named[r.label] for r in runs] for label, runs in groups.items()}
        a.plotly_chart(band_chart(metrics_of, "train_loss", _("Training loss"), weight, log_loss), key="r.loss")
        b.plotly_chart(band_chart(metrics_of, "test_acc", _("Test accuracy")), key="r.acc")
    else:
        a.plotly_chart(overlay_chart(named, "train_loss", _("Training loss"), weight, log_loss), key="r.loss")
        b.plotly_chart(overlay_chart(named, "test_acc", _("Test accuracy")), key="r.acc")

r = chosen[0]
mine = manager.may_act(r.id, me)
wanted = {"run": r.id, **({"vs": chosen[1].id} if len(chosen) == 2 else {}), **bookmark_params(), **dynamics_params()}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)

st.header(plain(run_title(r)), anchor=False)
st.caption(plain(_("{model}, run {run}. Best test accuracy {best}, final {final}.").format(
    model=r.model, run=r.id, best=accuracy(r.best_test_acc), final=accuracy(r.test_acc)))
           + ("" if mine else _(" A shared run: you can look at it; only its owner can stop, delete or download it.")))
if mine and r.best_test_acc is not None:
    shared = st.toggle(_("Share with the class"), value=bool(r.shared), key=f"r.share.{r.id}",
                       help=_("Put this run on the class board: its network, settings and results, never your name"))
    if shared != bool(r.shared):
        manager.share(r.id, shared, me)
if mine and r.status in ("queued", "running") and st.button(_("Stop this run"), key="r.stop"):
    manager.stop(r.id, me)
    st.rerun()
metrics = manager.live.metrics(r.id)
if r.error:
    st.error(plain(told(r.error)))
if r.warning:
    st.warning(plain(told(r.warning)), icon="⚠️")
for said in run_notes(r, metrics):
    st.caption(said)
if len(metrics):
    st.plotly_chart(training_chart(metrics, _("{label}: loss and accuracy").format(label=r.label), height=360),
                    key="r.curve")
else:
    st.info(_("This run stopped before its first report: it has no curve."))
if r.confusion:
    left, right = st.columns([3, 2])
    left.plotly_chart(confusion_heatmap(r.confusion, r.dataset), key="r.confusion")
    right.dataframe(per_class_accuracy(r.confusion, r.dataset), hide_index=True, width="stretch", height=fit_height(10),
                    column_config={_("accuracy"): st.column_config.ProgressColumn(min_value=0, max_value=1,
                                                                               format="%.3f")})
    examples = confused_examples(r, data_dir=manager.data_of(r.dataset))
    if examples:
        st.subheader(_("Test images it gets wrong, most confused pairs first"))
        st.image([img for img, _ in examples], caption=[c for _, c in examples], width=112)

try:
    norms = batchnorm_parameters(r.model, r.config, manager.kept.load(r.id)) if r.weights_path else {}
except ExplorerError as err:  # the file was moved or damaged: the rest of the run is still shown, and can go
    st.warning(plain(_("{message}: what it learned cannot be shown.").format(message=err.text())), icon="⚠️")
    norms = {}
if norms:
    st.subheader(_("What batch normalization learned"))
    for layer, (gamma, beta) in norms.items():
        st.plotly_chart(batchnorm_chart(layer, gamma, beta), key=f"r.bn.{layer}")

dynamics_section(manager, chosen[:2], "r")
st.page_link("pages/inside.py", label=_("Look inside this run"), icon=":material/visibility:",
             query_params={"run": r.id, **bookmark_params()})
downloads = st.columns(3)
downloads[0].download_button(_("Download the metrics (CSV)"), csv_text(metrics),
                             file_name=f"{r.model}-{r.id}.csv", mime="text/csv")
if mine and r.weights_path:  # read only when clicked
    downloads[1].download_button(_("Download the weights (state_dict)"), lambda: manager.weights_file(r.id, me),
                                 file_name=f"{r.model}-{r.id}.pt")
if mine:
    if state.get("r.confirm") != r.id:
        if downloads[2].button(_("Delete this run"), key="r.delete"):
            state["r.confirm"] = r.id
            st.rerun()
    else:
        st.warning(plain(_("Delete {label} (run {run}), its curves and its weights for good?").format(
            label=r.label, run=r.id)), icon="⚠️")
        yes, no, _rest = st.columns([1, 1, 4])
        if yes.button(_("Yes, delete it"), key="r.delete.yes", type="primary"):
            manager.delete(r.id, me)
            state["r.deleted"] = _("Deleted {label} (run {run}).").format(label=r.label, run=r.id)
            state.pop("r.confirm")
            st.query_params.from_dict(bookmark_params())
            st.rerun()
        if no.button(_("Cancel"), key="r.delete.no"):
            state.pop("r.confirm")
            st.rerun()
