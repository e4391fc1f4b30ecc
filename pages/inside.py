"""Inside: what each stage of a network makes of one test image, and what a trained run has learned."""

import streamlit as st

from explorer import registry
from explorer.errors import ConfigError
from explorer.training.data import CLASS_NAMES
from explorer.views.inside import (
    DEAD_ADVICE,
    MAP_PIXELS,
    batchnorm_chart,
    draw_box,
    grid,
    images_of_class,
    mistakes,
    part_grid,
    prediction_chart,
    receptive_box,
    unit_chart,
    view,
)
from explorer.views.ui import int_param, plain, unit_param
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
    wrong = mistakes(manager, subject, me)
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
page_setup()

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

wanted = {("run" if source == "My run" else "model"): subject, "image": str(image), **present_param()}
if path is not None:
    wanted |= {"stage": path, "unit": f"{row},{col}"}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)

if len(v.batchnorm):
    st.subheader("Batch norm: what evaluation normalizes with")
    st.plotly_chart(batchnorm_chart(v.batchnorm, v.stats_images), key="i.batchnorm")
with st.expander(f"Activations per ReLU layer over {v.stats_images} test images"):
    st.dataframe(v.stats, hide_index=True, width="stretch")
