"""Train: send a config to the run manager and watch loss and accuracy live, with progress and a stop button."""

import secrets
from dataclasses import replace

import streamlit as st

from explorer import registry
from explorer.errors import ExplorerError
from explorer.i18n import N_, _, plural, told
from explorer.measured import speedrun_said
from explorer.summary import summarize
from explorer.training.admission import NAME_CHARACTERS, check_time, estimate_bytes
from explorer.training.data import DATASETS, DEFAULT_DATASET
from explorer.training.estimate import human_duration
from explorer.training.loop import cuda_available
from explorer.training.measure import StillMeasuring
from explorer.training.recipes import kinds, preset
from explorer.training.schema import FINISHED
from explorer.views.runviews import recipe_widgets, reopen_settings, run_progress, run_title, training_chart
from explorer.views.tables import human
from explorer.views.ui import config_label, config_params, plain
from pages.common import (
    admin_notices,
    bookmark_params,
    config_editor,
    dynamics_params,
    dynamics_section,
    page_context,
    page_setup,
    say_run_missing,
    show_fallback,
)
from pages.language import use_language

TITLES = {"fashion-mnist": N_("Train on Fashion-MNIST"), "mnist": N_("Train on MNIST")}
manager, me, params = page_context()
state = st.session_state
admin_notices(me)

seed_params = params
linked_id = params.get("run")
linked = manager.store.get(linked_id) if linked_id else None
if "t.init" not in state:
    if linked is not None:  # a run's URL opens with that run's network and settings, not another's
        state["t.run"] = linked.id
        name, config, kind, settings = reopen_settings(linked)
        seed_params = config_params(name, config)
        state["t.preset"] = kind
        state["t.dataset"] = linked.dataset
        for widget, value in settings.items():
            state[f"t.{name}.{kind}.{widget}"] = value
    elif "model" not in params and state.get("x.last_valid"):  # the config from Explore carries over
        seed_params = config_params(*state["x.last_valid"])
with st.sidebar:
    name, config, error = config_editor("t.", st.sidebar, seed_params)
page_setup()

asked = params.get("dataset", DEFAULT_DATASET)
if state.get("t.dataset") not in DATASETS:
    state["t.dataset"] = asked if asked in DATASETS else DEFAULT_DATASET
st.title(_(TITLES[state["t.dataset"]]))
if asked not in DATASETS:  # said, and kept in the URL: the page never silently trains on another data set
    st.warning(plain(_("The link asks for data set {value!r}; this page trains on fashion-mnist or mnist.").format(
        value=asked[:40])), icon="⚠️")
if linked_id and linked is None:  # the URL names a run this store does not have: say so, keep the URL
    say_run_missing(linked_id, _("The settings below train a new run."))
show_fallback(error)
presets = [k for k in ("quick", "fast", "book", "speedrun") if k in kinds(name)]
top = st.columns([2.3 if len(presets) > 3 else 1.7, 0.9, 1.1, 1.8])  # the speedrun network's four on one line
if state.get("t.preset") not in presets:  # the speedrun preset, left from the speedrun network, is its own
    state["t.preset"] = presets[0]
kind = top[0].radio(_("Preset"), presets, horizontal=True, key="t.preset",
                    help=_("quick: about a minute on a laptop CPU; fast: the quick network with a modern recipe "
                           "(a few minutes); book: exactly d2l's settings; speedrun: the speedrun network's own "
                           "recipe, for 93% in ten minutes of a 2-core CPU"))
devices = ["cuda", "cpu"] if cuda_available() else ["cpu"]
device = top[1].selectbox(_("Device"), devices, key="t.device")
dataset = top[2].selectbox(_("Data set"), list(DATASETS), key="t.dataset", format_func=lambda d: DATASETS[d].title,
                           help=_("the book's Fashion-MNIST, or the original MNIST digits the chapter's exercises "
                                  "ask about"))
run_label = top[3].text_input(_("Run name (optional)"), key="t.name", max_chars=NAME_CHARACTERS,
                              placeholder=_("e.g. resnet without batch norm"),
                              help=_("Shown in lists and legends instead of the run's id"))
chosen = preset(name, kind, device, config, dataset)
s = chosen.settings
key = f"t.{name}.{kind}"
for widget, value in (("lr", s.lr), ("epochs", s.epochs), ("minutes", s.minutes), ("batch", s.batch_size),
                      ("subset", s.train_subset or 0), ("init", s.init), *recipe_widgets(s)):
    state.setdefault(f"{key}.{widget}", value)  # the preset's value, unless the user or a reopened run set one
with st.sidebar:  # beside the network's knobs: the main area keeps the live chart on a projector's first screen
    st.subheader(_("Training: the {kind} preset's settings").format(kind=kind), anchor=False)
    if chosen.changes:
        st.caption(_("{kind} preset changes: ").format(kind=kind.capitalize()) + "; ".join(chosen.changes))
    lr = st.number_input(_("Learning rate"), 0.0001, 100.0, format="%.4f", key=key + ".lr")
    epochs = st.number_input(_("Epochs"), 1, 200, key=key + ".epochs")
    minutes = st.number_input(_("Time budget (minutes, 0 = every epoch)"), 0.0, 1440.0, step=0.5,
                              key=key + ".minutes",
                              help=_("above 0: the run trains as many of its epochs as fit in this time at the "
                                     "pace of its first (planned from its measured step until then), its schedule "
                                     "sized to them"))
    batch = st.number_input(_("Batch size"), 2, 4096, key=key + ".batch")
    subset = st.number_input(_("Images (0 = all)"), 0, 60_000, step=1000, key=key + ".subset",
                             help=_("training images; 0 trains on all 60,000"))
    init = st.selectbox(_("Init"), ["xavier", "kaiming"], key=key + ".init",
                        help=_("xavier: d2l's; kaiming: He et al.'s, which keeps the signal through deep ReLU "
                               "stacks (NiN dies without it)"))
    with st.expander(_("Recipe: one switch at a time"), expanded=kind in ("fast", "speedrun")):
        optimizer = st.selectbox(_("Optimizer"), ["sgd", "adam"], key=key + ".optimizer",
                                 help=_("sgd: the book's; adam: Adam, its weight decay decoupled (AdamW)"))
        momentum = st.number_input(_("Momentum"), 0.0, 0.99, step=0.1, key=key + ".momentum",
                                   disabled=optimizer == "adam", help=_("SGD's momentum (the book: 0)"))
        weight_decay = st.number_input(_("Weight decay"), 0.0, 0.1, step=0.0005, format="%.4f",
                                       key=key + ".weight_decay", help=_("on the weights only (the book: 0)"))
        smoothing = st.number_input(_("Label smoothing"), 0.0, 0.5, step=0.05, key=key + ".label_smoothing")
        warmup = st.number_input(_("Warm-up (fraction of the steps)"), 0.0, 0.5, step=0.05, key=key + ".warmup")
        cosine = st.checkbox(_("Cosine schedule"), key=key + ".cosine",
                             help=_("after the warm-up the rate falls to zero along a half cosine"))
        augment = st.checkbox(_("Augmentation"), key=key + ".augment",
                              help=_("random horizontal flips (not of digits) and shifts of up to 2 pixels"))
st.markdown(_("Trains **{network}** ({params:,} parameters), {kind} preset: learning rate {lr:g}, {epochs} "
              "{epoch_word} of {images} images at batch size {batch}, {init} init.").format(
    epoch_word=plural(epochs, N_("epoch"), N_("epochs")),
    network=plain(config_label(name, chosen.config), 200), params=summarize(chosen.config).totals.params,
    kind=kind, lr=lr, epochs=epochs, images=f"{subset:,}" if subset else _("all 60,000"), batch=batch,
    init=init.capitalize()))
if minutes:
    st.caption(_("At most {epochs} {epoch_word}: as many as fit in {minutes:g} minutes at the pace of the first, "
                 "the schedule sized to them.").format(
        epochs=epochs, epoch_word=plural(epochs, N_("epoch"), N_("epochs")), minutes=minutes))
if kind == "speedrun":  # the goal, and what this preset reached here (bench speedrun), not a promise
    st.caption(speedrun_said() or _("Not measured yet: python -m explorer bench speedrun --save"))
switched = [f"{_(label)} {value}" for label, value, book in (
    (N_("Optimizer"), optimizer, "sgd"), (N_("Momentum"), momentum, 0.0), (N_("Weight decay"), weight_decay, 0.0),
    (N_("Label smoothing"), smoothing, 0.0), (N_("Warm-up (fraction of the steps)"), warmup, 0.0),
    (N_("Cosine schedule"), cosine, False), (N_("Augmentation"), augment, False)) if value != book]
if switched:  # what the recipe changes from the book's plain SGD, on the first screen with the rest
    st.caption(_("Recipe, beyond the book's plain SGD: {switches}.").format(switches="; ".join(switched)))

info, button = st.columns([4, 1], vertical_alignment="center")
refusal = measuring = None
ahead = manager.busy_slots()  # a new run waits for these when every worker is taken
waiting = "" if ahead < manager.max_running else plural(
    ahead, N_(" It would start after the run ahead of it, in {wait}."),
    N_(" It would start after {n} other runs, in {wait}."), wait=human_duration(manager.wait_seconds("")))
try:
    settings = replace(s, lr=lr, epochs=epochs, minutes=minutes, batch_size=batch, train_subset=subset or None,
                       device=device, init=init, optimizer=optimizer, momentum=0.0 if optimizer == "adam" else momentum,
                       nesterov=s.nesterov and optimizer == "sgd" and momentum > 0, weight_decay=weight_decay,
                       label_smoothing=smoothing, warmup=warmup, cosine=cosine, augment=augment)
    need = estimate_bytes(chosen.config, settings)
    limit = manager.quotas.max_seconds
    limit_text = "" if limit is None else _(" This server's limit is {limit}.").format(limit=human_duration(limit))
    estimate = manager.estimate_time(chosen.config, settings, wait=1.0)  # measured out of this page's process
    info.caption(_("Estimated: {time}, {memory} of memory.").format(time=estimate.text, memory=human(need, "B"))
                 + waiting + limit_text)
    # a busy machine's measurement never refuses: the run waits its turn
    check_time(estimate, manager.quotas.max_seconds)
except ExplorerError as err:
    refusal = err
except StillMeasuring as pending:  # Start is usable meanwhile: a run measures itself before its first step
    measuring = pending
    info.caption(pending.text + _(" You can start now: the run times itself before its first step.") + waiting)


@st.fragment(run_every=1.0)
def measured() -> None:
    """Asks again every second (so the measurement is not abandoned) and redraws the page once it is there.
    Called last, so that the redrawn page's elements keep their places (no stale copy left beside them)."""
    use_language()
    try:
        manager.estimate_time(chosen.config, settings, wait=0.0)
    except StillMeasuring:
        return
    except ExplorerError:
        pass
    st.rerun()


if button.button(_("Start training"), type="primary", disabled=refusal is not None,
                 key="t.start", width="stretch"):
    try:
        state["t.run"] = manager.start(name, chosen.config, settings, visitor=me, preset=kind, name=run_label)
    except ExplorerError as err:
        refusal = err
if refusal is not None:  # why Start is off, never a greyed-out mystery; a setting's refusal names the setting
    st.error(plain(refusal.said()), icon=":material/block:")

run_id = state.get("t.run")
if run_id:
    wanted = {"run": run_id}
elif linked_id:  # the URL named a run that is not here: it stays as it was
    wanted = {"run": linked_id}
else:  # a Train URL names the network it trains, and the data unless it is the book's
    wanted = config_params(name, config) | ({} if dataset == DEFAULT_DATASET else {"dataset": dataset})
    if asked not in DATASETS and dataset == DEFAULT_DATASET:  # kept until another data set is picked
        wanted["dataset"] = asked
wanted |= bookmark_params() | dynamics_params()
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)

live_now = run_id and getattr(manager.view(run_id), "status", "") not in FINISHED
state.setdefault("t.session", secrets.token_hex(8))


@st.fragment(run_every=manager.live.refresh_interval(state["t.session"]) if live_now else None)
def live(run_id: str) -> None:
    use_language()
    view = manager.view(run_id)
    if view is None:
        st.text(_("Run {run} is not in the run store.").format(run=run_id[:40]))  # the id came from a URL
        return
    r = view.record
    p = view.progress
    head, stop = st.columns([5, 1], vertical_alignment="center")
    head.subheader(plain(run_title(r)), anchor=False)
    mine = manager.may_act(run_id, me)
    if r.status in ("queued", "running") and mine and stop.button(_("Stop"), key="t.stop", width="stretch"):
        manager.stop(run_id, me)
    if r.name or not mine:  # else the heading names the model and id already
        st.caption(plain(_("{model}, run {run}").format(model=r.model, run=r.id))
                   + ("" if mine else _(". A shared run: you can watch it, not stop it; Start trains your own copy.")))
    if view.position:
        st.info(run_progress(r, p, view.position, manager.wait_seconds(run_id))[1])
    elif r.status == "running":
        st.progress(*run_progress(r, p, None, 0.0))
    metrics = manager.live.metrics(run_id)
    tested = metrics.test_acc.dropna()
    stepped = p is not None and p.kind != "phase"
    numbers, chart = st.columns([1, 4])  # side by side: the chart stays on a 1280x720 projector's first screen
    numbers.metric(_("train loss"), f"{p.train_loss:.3f}" if stepped else
                   "-" if r.train_loss is None else f"{r.train_loss:.3f}")
    numbers.metric(_("train acc"), f"{p.train_acc:.3f}" if stepped else
                   "-" if r.train_acc is None else f"{r.train_acc:.3f}")
    numbers.metric(_("test acc (last epoch)"), f"{tested.iloc[-1]:.3f}" if len(tested) else "-")
    numbers.metric(_("time"), human_duration(p.elapsed if p else (r.seconds or 0), about=False))
    if r.error:
        st.error(plain(told(r.error)))
    if r.warning:
        st.warning(plain(told(r.warning)), icon="⚠️")
    if len(metrics):
        chart.plotly_chart(training_chart(metrics, _("{label}: loss and accuracy").format(label=r.label),
                                          height=300), key="t.chart")
    if st.toggle(_("Gradients and activations per layer"), key="t.dynamics",
                 help=_("what each layer's gradient, update and output do while it trains")):
        dynamics_section(manager, [r], "t", live=r.status not in FINISHED)
    if r.status in FINISHED and state.get("t.live") == run_id:
        state["t.live"] = None
        st.rerun()  # once: the page redraws without the timer
    if r.status not in FINISHED:
        state["t.live"] = run_id


state["t.init"] = True
if run_id:
    live(run_id)
    st.page_link("pages/runs.py", label=_("This run in detail, beside your other runs"), icon=":material/history:",
                 query_params={"run": run_id, **bookmark_params()})
else:
    st.caption(_("Pick a network in the sidebar ({description}), then Start.").format(
        description=_(registry.get(name).description)))
if measuring is not None:  # last on the page: drawn or not, it moves no other element
    measured()
