"""Inside: what each stage of a network makes of one test image, and what a trained run has learned."""

import streamlit as st

from explorer import registry
from explorer.errors import ExplorerError
from explorer.training.data import CLASS_NAMES
from explorer.training.runs import server_manager
from explorer.views.inside import (
    DEAD_ADVICE,
    INVERSIONS,
    MAP_PIXELS,
    batchnorm_chart,
    busy,
    describe_subject,
    draw_box,
    grid,
    images_of_class,
    kernel_grid,
    mistakes,
    part_grid,
    prediction_chart,
    receptive_box,
    unit_chart,
    view,
)
from explorer.views.ui import int_param, plain, unit_param
from pages.common import fit_height, page_setup, present_param, say_run_missing, visitor

manager = server_manager()
me = visitor()
state = st.session_state
params = st.query_params.to_dict()
linked_id = params.get("run")
linked = manager.store.get(linked_id) if linked_id else None
runs = [r for r in manager.store.list(None if me.admin else me.id) if r.weights_path]
if linked is not None and linked.weights_path and linked.id not in {r.id for r in runs}:
    runs.append(linked)  # a run's link: read-only, for whoever has it
labels = {r.id: f"{r.label} · {r.model} · {r.status}" for r in runs}
names = registry.list_models()
with st.sidebar:
    sources = ["A trained run", "Fresh weights"] if runs else ["Fresh weights"]
    if "i.source" not in state or state["i.source"] not in sources:
        state["i.source"] = sources[0] if linked_id in labels or "model" not in params else "Fresh weights"
    source = st.radio("Look inside", sources, key="i.source")
    if source == "A trained run":
        if state.get("i.run") not in labels:
            state["i.run"] = linked_id if linked_id in labels else next(iter(labels))
        subject = st.selectbox("Run", list(labels), format_func=labels.get, key="i.run")
    else:
        if state.get("i.model") not in names:  # the network of the run looked at, else the URL's
            seen = manager.store.get(state.get("i.run", "")) or linked
            state["i.model"] = params["model"] if params.get("model") in names else seen.model if seen else names[0]
        subject = st.selectbox("Network (Xavier-initialised, untrained)", names, key="i.model")
    wrong = mistakes(manager, subject)
    ways = ["by index", "by class"] + (["one it got wrong"] if len(wrong) else [])
    way = st.radio("Pick a test image", ways, key="i.way", horizontal=True)
    if way == "by class":
        label = st.selectbox("Class", range(len(CLASS_NAMES)), format_func=CLASS_NAMES.__getitem__, key="i.class")
        of_class = images_of_class(manager, label)
        nth = st.number_input(f"Which {CLASS_NAMES[label]} (0 is the first)", 0, len(of_class) - 1, key="i.nth")
        image = of_class[nth]
    elif way == "one it got wrong":
        rows = {row.image: f"image {row.image}: a {row.true} taken for a {row.predicted}"
                for row in wrong.itertuples()}
        image = st.selectbox("Mistake (the most confused pairs first)", list(rows), format_func=rows.get,
                             key="i.wrong")
    else:
        image = st.number_input("Test image", 0, 9999, key="i.image",
                                value=int_param(params, "image", 0, 9999) or 0)
    upload = st.file_uploader("Or your own picture (PNG or JPEG, at most 5 MB)", type=["png", "jpg", "jpeg"],
                              key="i.upload")
    inversion = st.radio("Light and dark", list(INVERSIONS), key="i.invert", horizontal=True,
                         help="Fashion-MNIST draws a light item on a black ground; automatic swaps a picture "
                              "whose border is light", disabled=upload is None)
page_setup()

st.title("Inside the network")
if linked_id and linked is None and state.get("i.left") != linked_id:  # say so, keep the URL as it was
    say_run_missing(linked_id)
    if st.button("Look at the sidebar's choice instead", key="i.leave"):
        state["i.left"] = linked_id
        st.rerun()
    st.stop()
if linked is not None and not linked.weights_path:
    st.warning(plain(f"{linked.label} ({linked.model}, run {linked.id}) is {linked.status} and has no saved "
                     "weights yet: there is nothing trained to look inside."), icon=":material/hourglass:")
    st.stop()
st.markdown(f"**{plain(describe_subject(manager, subject), 400)}**")
try:
    with st.spinner("Waiting for other views of a network to finish…" if busy() else "Looking inside…",
                    show_time=True):
        v = view(manager, subject, upload.getvalue() if upload is not None else int(image), INVERSIONS[inversion])
except ExplorerError as err:
    st.error(plain(err.message))
    st.stop()

top = int(v.inside.probabilities.argmax())
picture, saliency, chart = st.columns([1, 1, 2])
if v.upload is not None:
    picture.image(v.upload.preview, width=96, caption="your picture")
shown = (f"what the network sees: 28x28{', light and dark swapped' if v.upload.inverted else ''}"
         if v.upload is not None else f"test image {image}: {CLASS_NAMES[v.label]}")
picture.image(v.image, width=200 if v.upload is None else 112, clamp=True, caption=shown)
saliency.image(grid(v.inside.saliency[None]), width=200,
               caption=f"where it looked for '{CLASS_NAMES[top]}' (saliency)")
chart.plotly_chart(prediction_chart(v.inside.probabilities, v.label), key="i.prediction")

dead = v.stats[v.stats.dead]
if len(dead):
    st.warning(f"Dead layers: {', '.join(dead.layer)}. {DEAD_ADVICE}", icon="⚠️")
if len(v.inside.kernels):
    st.subheader("The first layer's kernels")
    st.image(kernel_grid(v.inside.kernels))
st.subheader("Each stage's feature maps, strongest channels first")
spatial = [s for s in v.inside.stages if len(s.shape) == 3]
columns = st.columns(2)
for i, stage in enumerate(spatial):
    shown = f"{len(stage.maps)} of {stage.channels} channels" if stage.channels > len(stage.maps) else \
        f"all {stage.channels} channels"
    with columns[i % 2]:
        st.caption(f"{stage.path} {stage.type} → {'x'.join(map(str, stage.shape))}: {shown}")
        st.image(grid(stage.maps, scale=max(1, 48 // max(stage.maps.shape[1:]))))

# One stage up close: a unit's receptive field on the input, and the blocks inside the stage.
pickable = {s.path: s for s in spatial if max(s.shape[1:]) <= MAP_PIXELS}  # shown at their own size
if pickable:
    st.subheader("One stage up close")
    paths = list(pickable)
    path = st.selectbox("Stage", paths, key="i.stage", format_func=lambda p: f"stage {p}: {pickable[p].type}, "
                        f"{'x'.join(map(str, pickable[p].shape))}",
                        index=paths.index(params["stage"]) if params.get("stage") in paths else len(paths) - 1)
    _, h, w = pickable[path].shape
    clicked = st.session_state.get("i.unitmap")
    points = clicked.selection.points if clicked else []
    if points and points[0].get("curve_number") == 1 and st.session_state.get("i.click") != points[0]:
        st.session_state["i.click"] = points[0]  # a new click on the map picks that unit
        st.session_state["i.row"], st.session_state["i.col"] = int(points[0]["y"]), int(points[0]["x"])
    if "i.row" not in st.session_state:
        st.session_state["i.row"], st.session_state["i.col"] = unit_param(params, "unit", h, w) or (h // 2, w // 2)
    st.session_state["i.row"] = min(st.session_state["i.row"], h - 1)  # the stage may have changed
    st.session_state["i.col"] = min(st.session_state["i.col"], w - 1)
    left, right = st.columns(2)
    with left:
        pick_row, pick_col = st.columns(2)
        row = pick_row.number_input("Unit row", 0, h - 1, key="i.row")
        col = pick_col.number_input("Unit column", 0, w - 1, key="i.col")
        st.plotly_chart(unit_chart(pickable[path].maps[0], (row, col)), key="i.unitmap", on_select="rerun",
                        selection_mode="points", config={"displayModeBar": False})
        st.caption("The stage's strongest channel; click a unit, or pick its row and column.")
    box = receptive_box(v.config, path, row, col)
    with right:
        st.image(draw_box(v.image, box, v.config.resolution), width=300)
        st.caption(f"Unit ({row}, {col}) of stage {path} sees the boxed part of the "
                   f"{v.config.resolution}x{v.config.resolution} input"
                   f": its receptive field is {box.size}x{box.size} pixels"
                   + (", cut at the image's edge." if box.cut else "."))
    for block in (b for b in v.inside.blocks if b.path == path or b.path.startswith(f"{path}.")):
        st.markdown(f"**Block {block.path}: {block.type}**")
        for part, column in zip(block.parts, st.columns(len(block.parts)), strict=True):
            with column:
                st.image(part_grid(part))
                st.caption(f"{part.label} → {'x'.join(map(str, part.shape))}")
else:
    path, row, col = None, None, None

wanted = {("run" if source == "A trained run" else "model"): subject, "image": str(image), **present_param()}
if path is not None:
    wanted |= {"stage": path, "unit": f"{row},{col}"}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)

if len(v.batchnorm):
    st.subheader("Batch norm: what evaluation normalizes with")
    st.plotly_chart(batchnorm_chart(v.batchnorm, v.stats_images), key="i.batchnorm")
with st.expander(f"Activations per ReLU layer over {v.stats_images} test images"):
    if len(v.stats):
        st.dataframe(v.stats, hide_index=True, width="stretch", height=fit_height(len(v.stats)))
    else:
        st.caption(f"{v.name} has no ReLU layers (LeNet's activations are sigmoids): nothing to count here.")
