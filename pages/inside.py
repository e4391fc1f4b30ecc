"""Inside: what each stage of a network makes of one test image, and what a trained run has learned."""

import streamlit as st

from explorer import registry
from explorer.errors import ExplorerError
from explorer.i18n import _
from explorer.summary import summarize
from explorer.training.data import class_names
from explorer.views.inside import DEAD_ADVICE, MAP_PIXELS, conv_layers, receptive_box, relu_name, relu_table
from explorer.views.inside_service import (
    busy,
    conv_unit,
    dataset_of,
    describe_subject,
    images_of_class,
    mistakes,
    view,
)
from explorer.views.pictures import (
    batchnorm_chart,
    draw_box,
    grid,
    kernel_grid,
    part_grid,
    prediction_chart,
    unit_chart,
    unit_chart_parts,
)
from explorer.views.ui import int_param, plain, unit_param
from explorer.views.uploads import INVERSIONS
from pages.common import bookmark_params, fit_height, page_context, page_setup, say_run_missing

manager, me, params = page_context()
state = st.session_state
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
    source = st.radio(_("Look inside"), sources, key="i.source", format_func=_)
    if source == "A trained run":
        if state.get("i.run") not in labels:
            state["i.run"] = linked_id if linked_id in labels else next(iter(labels))
        subject = st.selectbox(_("Run"), list(labels), format_func=labels.get, key="i.run")
    else:
        if state.get("i.model") not in names:  # the network of the run looked at, else the URL's
            seen = manager.store.get(state.get("i.run", "")) or linked
            state["i.model"] = params["model"] if params.get("model") in names else seen.model if seen else names[0]
        subject = st.selectbox(_("Network (Xavier-initialised, untrained)"), names, key="i.model")
    wrong = mistakes(manager, subject)
    dataset = dataset_of(manager, subject)
    classes = class_names(dataset)
    ways = ["by index", "by class"] + (["one it got wrong"] if len(wrong) else [])
    way = st.radio(_("Pick a test image"), ways, key="i.way", horizontal=True, format_func=_)
    if way == "by class":
        label = st.selectbox(_("Class"), range(len(classes)), format_func=lambda k: _(classes[k]),
                             key="i.class")
        of_class = images_of_class(manager, label, dataset)
        nth = st.number_input(_("Which {item} (0 is the first)").format(item=_(classes[label])), 0,
                              len(of_class) - 1, key="i.nth")
        image = of_class[nth]
    elif way == "one it got wrong":
        rows = {row.image: _("image {image}: a {true} taken for a {predicted}").format(
                    image=row.image, true=_(row.true), predicted=_(row.predicted))
                for row in wrong.itertuples()}
        image = st.selectbox(_("Mistake (the most confused pairs first)"), list(rows), format_func=rows.get,
                             key="i.wrong")
    else:
        image = st.number_input(_("Test image"), 0, 9999, key="i.image",
                                value=int_param(params, "image", 0, 9999) or 0)
    upload = st.file_uploader(_("Or your own picture (PNG or JPEG, at most 5 MB)"), type=["png", "jpg", "jpeg"],
                              key="i.upload")
    inversion = st.radio(_("Light and dark"), list(INVERSIONS), key="i.invert", horizontal=True, format_func=_,
                         help=_("Fashion-MNIST draws a light item on a black ground; automatic swaps a picture "
                                "whose border is light"), disabled=upload is None)
page_setup()

st.title(_("Inside the network"))
if linked_id and linked is None and state.get("i.left") != linked_id:  # say so, keep the URL as it was
    say_run_missing(linked_id)
    if st.button(_("Look at the sidebar's choice instead"), key="i.leave"):
        state["i.left"] = linked_id
        st.rerun()
    st.stop()
if linked is not None and not linked.weights_path:
    st.warning(plain(_("{label} ({model}, run {run}) is {status} and has no saved weights yet: there is nothing "
                       "trained to look inside.").format(label=linked.label, model=linked.model, run=linked.id,
                                                         status=_(linked.status))), icon=":material/hourglass:")
    st.stop()
st.markdown(f"**{plain(describe_subject(manager, subject), 400)}**")
if source == "A trained run" and not manager.may_act(subject, me):
    st.caption(_("Someone else's run, opened from its link: you can look inside it; it stays theirs."))
try:
    with st.spinner(_("Waiting for other views of a network to finish…") if busy() else _("Looking inside…"),
                    show_time=True):
        v = view(manager, subject, upload.getvalue() if upload is not None else int(image), INVERSIONS[inversion])
except ExplorerError as err:
    st.error(plain(err.text()))
    st.stop()

top = int(v.inside.probabilities.argmax())
picture, saliency, chart = st.columns([1, 1, 2])
if v.upload is not None:
    picture.image(v.upload.preview, width=96, caption=_("your picture"))
shown = (_("what the network sees: 28x28") + (_(", light and dark swapped") if v.upload.inverted else "")
         if v.upload is not None else _("test image {image}: {item}").format(image=image, item=_(classes[v.label])))
picture.image(v.image, width=200 if v.upload is None else 112, clamp=True, caption=shown)
saliency.image(grid(v.inside.saliency[None]), width=200,
               caption=_("where it looked for '{item}' (saliency)").format(item=_(classes[top])))
chart.plotly_chart(prediction_chart(v.inside.probabilities, v.label, dataset=dataset), key="i.prediction")

dead = v.stats[v.stats.dead]
if len(dead):
    names = ", ".join(relu_name(r.layer, r.part) for r in dead.itertuples())
    st.warning(_("Dead layers: {layers}. ").format(layers=names) + _(DEAD_ADVICE), icon="⚠️")
if len(v.inside.kernels):
    st.subheader(_("The first layer's kernels"))
    st.image(kernel_grid(v.inside.kernels))
st.subheader(_("Each stage's feature maps, strongest channels first"))
spatial = [s for s in v.inside.stages if len(s.shape) == 3]
columns = st.columns(2)
for i, stage in enumerate(spatial):
    shown = _("{shown} of {channels} channels").format(shown=len(stage.maps), channels=stage.channels) \
        if stage.channels > len(stage.maps) else _("all {channels} channels").format(channels=stage.channels)
    with columns[i % 2]:
        st.caption(f"{stage.path} {stage.type} → {'x'.join(map(str, stage.shape))}: {shown}")
        st.image(grid(stage.maps, scale=max(1, 48 // max(stage.maps.shape[1:]))))

# One stage up close: a unit's receptive field on the input, and the blocks inside the stage.
pickable = {s.path: s for s in spatial if max(s.shape[1:]) <= MAP_PIXELS}  # shown at their own size
if pickable:
    st.subheader(_("One stage up close"))
    paths = list(pickable)
    path = st.selectbox(_("Stage"), paths, key="i.stage",
                        format_func=lambda p: f"{_('stage')} {p}: {pickable[p].type}, "
                                              f"{'x'.join(map(str, pickable[p].shape))}",
                        index=paths.index(params["stage"]) if params.get("stage") in paths else len(paths) - 1)
    h, w = pickable[path].shape[1:]
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
        row = pick_row.number_input(_("Unit row"), 0, h - 1, key="i.row")
        col = pick_col.number_input(_("Unit column"), 0, w - 1, key="i.col")
        st.plotly_chart(unit_chart(pickable[path].maps[0], (row, col)), key="i.unitmap", on_select="rerun",
                        selection_mode="points", config={"displayModeBar": False})
        st.caption(_("The stage's strongest channel; click a unit, or pick its row and column."))
    box = receptive_box(v.config, path, row, col)
    with right:
        st.image(draw_box(v.image, box, v.config.resolution), width=300)
        st.caption(_("Unit ({row}, {col}) of stage {path} sees the boxed part of the {size}x{size} input: its "
                     "receptive field is {field}x{field} pixels").format(row=row, col=col, path=path,
                                                                         size=v.config.resolution, field=box.size)
                   + (_(", cut at the image's edge.") if box.cut else "."))
    for block in (b for b in v.inside.blocks if b.path == path or b.path.startswith(f"{path}.")):
        st.markdown(f"**{_('Block')} {block.path}: {block.type}**")
        for part, column in zip(block.parts, st.columns(len(block.parts)), strict=True):
            with column:
                st.image(part_grid(part))
                st.caption(f"{part.text()} → {'x'.join(map(str, part.shape))}")
else:
    path, row, col = None, None, None

# One convolution up close: a unit's value worked out from the patch it sees, the kernel and the bias.
convs = conv_layers(v.config)
if convs:
    st.subheader(_("One convolution up close"))
    layers = summarize(v.config).layers
    pick_layer, pick_channel, pick_row, pick_col = st.columns([2, 1, 1, 1])
    layer = pick_layer.selectbox(_("Convolution"), convs, key="i.conv",
                                 format_func=lambda p: f"{p} Conv2d {layers[layers.path == p].kernel_size.iloc[0]}")
    out_c, out_h, out_w = layers[layers.path == layer].output_shape.iloc[0]
    for key, most in (("i.conv.channel", out_c), ("i.conv.row", out_h), ("i.conv.col", out_w)):
        state[key] = min(state.get(key, 0), most - 1)  # another layer may be smaller
    channel = pick_channel.number_input(_("Output channel"), 0, out_c - 1, key="i.conv.channel")
    unit_row = pick_row.number_input(_("Unit row"), 0, out_h - 1, key="i.conv.row")
    unit_col = pick_col.number_input(_("Unit column"), 0, out_w - 1, key="i.conv.col")
    try:
        u = conv_unit(manager, subject, upload.getvalue() if upload is not None else int(image),
                      INVERSIONS[inversion], layer, channel, unit_row, unit_col)
    except ExplorerError as err:
        st.error(plain(err.text()))
    else:
        shares = {c: float(u.product[i].sum()) for i, c in enumerate(u.in_channels)}
        strongest = sorted(shares, key=lambda c: -abs(shares[c]))
        shown_channel = st.selectbox(_("Input channel (largest contribution first)"), strongest, key="i.conv.in",
                                     format_func=lambda c: _("channel {c}: adds {share:+.4f}").format(
                                         c=c, share=shares[c]))
        st.plotly_chart(unit_chart_parts(u, shown_channel), key="i.conv.chart", config={"displayModeBar": False})
        st.markdown(_("Σ (patch × kernel) over {n} input channels of {kh}x{kw} = **{sum:.4f}**, plus the bias "
                      "{bias:.4f}: **{total:.4f}**. The feature map holds **{value:.4f}** at channel {channel}, "
                      "({row}, {col}).").format(
            n=len(u.in_channels), kh=u.kernel.shape[1], kw=u.kernel.shape[2], sum=u.total - u.bias, bias=u.bias,
            total=u.total, value=u.value, channel=channel, row=unit_row, col=unit_col))
        def step(by: int) -> None:  # a callback: it runs before the widgets are drawn again
            state["i.conv.row"], state["i.conv.col"] = divmod(unit_row * out_w + unit_col + by, out_w)

        back, forward, _rest = st.columns([1, 1, 4])
        back.button(_("← step"), key="i.conv.back", on_click=step, args=(-1,),
                    disabled=unit_row == 0 and unit_col == 0)
        forward.button(_("step →"), key="i.conv.forward", on_click=step, args=(1,),
                       disabled=unit_row == out_h - 1 and unit_col == out_w - 1)

wanted = {("run" if source == "A trained run" else "model"): subject, "image": str(image), **bookmark_params()}
if path is not None:
    wanted |= {"stage": path, "unit": f"{row},{col}"}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)

if len(v.batchnorm):
    st.subheader(_("Batch norm: what evaluation normalizes with"))
    st.plotly_chart(batchnorm_chart(v.batchnorm, v.stats_images), key="i.batchnorm")
with st.expander(_("Activations per ReLU layer over {n} test images").format(n=v.stats_images)):
    if len(v.stats):
        st.dataframe(relu_table(v.stats), hide_index=True, width="stretch", height=fit_height(len(v.stats)))
    else:
        st.caption(_("{name} has no ReLU layers (LeNet's activations are sigmoids): nothing to count here.").format(
            name=v.name))
