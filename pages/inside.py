"""Inside: what each stage of a network makes of one test image, and what a trained run has learned."""

import streamlit as st

from explorer import registry
from explorer.data import CLASS_NAMES
from explorer.errors import ConfigError
from explorer.inside import DEAD_ADVICE, grid, prediction_chart, view
from explorer.ui import int_param, plain
from pages.common import page_setup, present_param, run_manager, visitor

manager = run_manager()
me = visitor()
params = st.query_params.to_dict()
mine = [r for r in manager.store.list(me.id) if r.weights_path]
names = registry.list_models()
with st.sidebar:
    sources = ["My run", "Fresh weights"] if mine else ["Fresh weights"]
    source = st.radio("Look inside", sources, key="i.source",
                      index=0 if params.get("run") in {r.id for r in mine} or "model" not in params else
                      sources.index("Fresh weights"))
    if source == "My run":
        labels = {r.id: f"{r.model} · run {r.id} · {r.status}" for r in mine}
        ids = list(labels)
        subject = st.selectbox("Run", ids, format_func=labels.get, key="i.run",
                               index=ids.index(params["run"]) if params.get("run") in ids else 0)
    else:
        subject = st.selectbox("Network (Xavier-initialised, untrained)", names, key="i.model",
                               index=names.index(params["model"]) if params.get("model") in names else 0)
    image = st.number_input("Test image", 0, 9999, key="i.image", value=int_param(params, "image", 0, 9999) or 0)
    upload = st.file_uploader("Or your own picture (PNG or JPEG, at most 5 MB)", type=["png", "jpg", "jpeg"],
                              key="i.upload")
page_setup()

wanted = {("run" if source == "My run" else "model"): subject, "image": str(image), **present_param()}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)

st.title("Inside the network")
try:
    v = view(manager, subject, upload.getvalue() if upload is not None else int(image), me)
except ConfigError as err:
    st.error(plain(err.message))
    st.stop()

top = int(v.inside.probabilities.argmax())
picture, saliency, chart = st.columns([1, 1, 2])
shown = "your picture, as 28x28 grayscale" if v.label < 0 else f"test image {image}: {CLASS_NAMES[v.label]}"
picture.image(v.image, width=200, clamp=True, caption=shown)
saliency.image(grid(v.inside.saliency[None]), width=200,
               caption=f"where it looked for '{CLASS_NAMES[top]}' (saliency)")
chart.plotly_chart(prediction_chart(v.inside.probabilities, v.label), key="i.prediction")

dead = v.stats[v.stats.dead]
if len(dead):
    st.warning(f"Dead layers: {', '.join(dead.layer)}. {DEAD_ADVICE}", icon="⚠️")
if len(v.inside.kernels):
    st.subheader("The first layer's kernels")
    st.image(grid(v.inside.kernels, columns=16, scale=6))
st.subheader("Each stage's feature maps, strongest channels first")
columns = st.columns(2)
for i, stage in enumerate(s for s in v.inside.stages if len(s.shape) == 3):
    shown = f"{len(stage.maps)} of {stage.channels} channels" if stage.channels > len(stage.maps) else \
        f"all {stage.channels} channels"
    with columns[i % 2]:
        st.caption(f"{stage.path} {stage.type} → {'x'.join(map(str, stage.shape))}: {shown}")
        st.image(grid(stage.maps, scale=max(1, 48 // max(stage.maps.shape[1:]))))
with st.expander(f"Activations per ReLU layer over {v.stats_images} test images"):
    st.dataframe(v.stats, hide_index=True, width="stretch")
