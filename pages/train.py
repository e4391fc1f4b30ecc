"""Train: send a config to the run manager and watch loss and accuracy live, with progress and a stop button."""

import uuid

import streamlit as st

from explorer.errors import ConfigError
from explorer.runviews import estimate_seconds, training_chart
from explorer.store import FINISHED
from explorer.tables import human
from explorer.train import TrainSettings, cuda_available, preset
from explorer.ui import config_params
from pages.common import config_editor, run_manager

manager = run_manager()
state = st.session_state
params = st.query_params.to_dict()
state.setdefault("owner", params.get("me") or uuid.uuid4().hex[:8])
if "run" in params and "t.run" not in state:
    state["t.run"] = params["run"]

st.title("Train on Fashion-MNIST")
explored = state.get("x.last_valid")  # the config from Explore carries over
seed_params = config_params(*explored) if explored else params
with st.sidebar:
    name, config, _ = config_editor("t.", st.sidebar, seed_params)

left, right = st.columns([1, 2])
with left:
    kind = st.radio("Preset", ["quick", "book"], horizontal=True, key="t.preset",
                    help="book: exactly d2l's settings; quick: about a minute on a laptop CPU")
    devices = ["cuda", "cpu"] if cuda_available() else ["cpu"]
    device = st.selectbox("Device", devices, key="t.device")
    chosen = preset(name, kind, device, config)
    if chosen.changes:
        st.caption("Quick preset changes: " + "; ".join(chosen.changes))
    s = chosen.settings
    key = f"t.{name}.{kind}"
    lr = st.number_input("Learning rate", 0.0001, 100.0, s.lr, format="%.4f", key=key + ".lr")
    epochs = st.number_input("Epochs", 1, 200, s.epochs, key=key + ".epochs")
    batch = st.number_input("Batch size", 2, 4096, s.batch_size, key=key + ".batch")
    subset = st.number_input("Training images (0 = all 60,000)", 0, 60_000, s.train_subset or 0, step=1000,
                             key=key + ".subset")
    try:
        settings = TrainSettings(lr=lr, epochs=epochs, batch_size=batch, train_subset=subset or None,
                                 device=device)
        need = manager.estimate_bytes(chosen.config, settings)
        st.caption(f"Estimated: {human(need, 'B')} of memory, about "
                   f"{estimate_seconds(chosen.config, settings, manager.store):.0f} s.")
    except ConfigError as err:
        settings = None
        st.error(err.message)
    if st.button("Start training", type="primary", disabled=settings is None, key="t.start"):
        try:
            state["t.run"] = manager.start(name, chosen.config, settings, owner=state["owner"])
        except ConfigError as err:
            st.error(err.message)

run_id = state.get("t.run")
if run_id:
    st.query_params.from_dict({"run": run_id, "me": state["owner"]})


@st.fragment(run_every=1.0 if run_id and getattr(manager.view(run_id), "status", "") not in FINISHED else None)
def live(run_id: str) -> None:
    view = manager.view(run_id)
    if view is None:
        st.info(f"Run {run_id} is not in the run store.")
        return
    r = view.record
    st.subheader(f"{r.model} · run {r.id} · {r.status}")
    if view.position:
        st.info(f"Queued: position {view.position}. It starts when a worker is free.")
    p = view.progress
    metrics = manager.store.metrics(run_id)
    tested = metrics.test_acc.dropna()
    if p is not None:
        st.progress(p.step / p.total_steps,
                    text=f"epoch {min(int(p.epoch) + 1, r.settings['epochs'])}/{r.settings['epochs']} · batch "
                         f"{p.step}/{p.total_steps} · {p.images_per_sec:.0f} images/s · ETA {p.eta:.0f} s")
    cols = st.columns(4)
    cols[0].metric("train loss", "-" if p is None and r.train_loss is None else
                   f"{(p.train_loss if p else r.train_loss):.3f}")
    cols[1].metric("train acc", "-" if p is None and r.train_acc is None else
                   f"{(p.train_acc if p else r.train_acc):.3f}")
    cols[2].metric("test acc", f"{tested.iloc[-1]:.3f}" if len(tested) else "-")
    cols[3].metric("time", f"{(p.elapsed if p else (r.seconds or 0)):.0f} s")
    if r.status in ("queued", "running") and st.button("Stop", key="t.stop"):
        manager.stop(run_id)
    if r.error:
        st.error(r.error)
    if len(metrics):
        st.plotly_chart(training_chart(metrics, f"{r.model}: loss and accuracy"), key="t.chart")
    if r.status in FINISHED and state.get("t.live") == run_id:
        state["t.live"] = None
        st.rerun()  # once: the page redraws without the timer
    if r.status not in FINISHED:
        state["t.live"] = run_id


if run_id:
    with right:
        live(run_id)
        st.page_link("pages/runs.py", label="All runs and details", icon=":material/history:")
