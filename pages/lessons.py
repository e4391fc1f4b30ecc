"""Lessons: one per section of the chapter. The claim, the comparison that shows its cost, the pair of runs
that shows its effect as measured on the real data, and the same pair trained by the visitor, side by side."""

import streamlit as st

from explorer import lessons
from explorer.errors import ExplorerError
from explorer.i18n import _
from explorer.summary import summarize
from explorer.training.dynamics import STATISTICS
from explorer.training.runs import server_manager
from explorer.views.tables import human, lesson_table
from explorer.views.ui import config_params, knob_text, plain
from pages.common import (
    bookmark_params,
    dynamics_section,
    fit_height,
    page_setup,
    say_run_missing,
    visitor,
)
from pages.language import use_language

use_language()  # this run's language (app.py sets it first; AppTest's reruns start at the page)
manager = server_manager()
me = visitor()
state = st.session_state
params = st.query_params.to_dict()
names = [lesson.name for lesson in lessons.LESSONS]
asked = params.get("lesson")
with st.sidebar:
    if state.get("l.lesson") not in names:
        state["l.lesson"] = asked if asked in names else names[0]
    chosen = st.radio(_("Lesson"), names, key="l.lesson",
                      format_func=lambda n: f"{lessons.get(n).section} {_(lessons.get(n).title)}")
page_setup()

if asked is not None and asked not in names and state.get("l.left") != asked:  # say so, keep the URL
    st.error(_("There is no lesson {lesson}: the lessons are {lessons}.").format(lesson=plain(asked, 40),
                                                                                lessons=", ".join(names)),
             icon=":material/link_off:")
    if st.button(_("Open the sidebar's lesson instead"), key="l.leave"):
        state["l.left"] = asked
        st.rerun()
    st.stop()
lesson = lessons.get(chosen)
pair = [manager.store.get(params[k]) for k in ("run", "vs") if params.get(k)] if asked == chosen else []

st.title(f"{lesson.section} {_(lesson.title)}")
st.caption(f"动手学深度学习 {lesson.section} · Dive into Deep Learning {lesson.english}")
claim, start = st.columns([5, 1], vertical_alignment="center")  # the claim and its experiment, on one screen
claim.markdown(f"**{_(lesson.claim)}**")
train_both = start.button(_("Train both"), key="l.train", type="primary", width="stretch",
                          help=_("Queue both runs of the pair for yourself (the quick presets; your quotas apply)"))
if train_both:
    try:
        first, second = lessons.queue_pair(manager, lesson, me)
        st.query_params.from_dict({"lesson": lesson.name, "run": first, "vs": second, **bookmark_params()})
        st.rerun()
    except ExplorerError as err:
        st.error(plain(err.text()), icon=":material/block:")

(name_a, config_a), (name_b, config_b) = lessons.compare_configs(lesson)
cost, effect = st.columns([1, 2])
with cost:
    st.subheader(_("What it costs"), anchor=False)
    sizes = {f"{label}: {name}": summarize(config).totals
             for label, (name, config) in zip("AB", ((name_a, config_a), (name_b, config_b)), strict=True)}
    st.dataframe({_("network"): list(sizes), _("params"): [human(t.params) for t in sizes.values()],
                  _("mult-adds"): [human(t.mult_adds) for t in sizes.values()]}, hide_index=True,
                 width="stretch", height=fit_height(2))
    st.page_link("pages/compare.py", label=_("Compare them layer by layer"), icon=":material/compare_arrows:",
                 query_params={**config_params(name_a, config_a, "a."), **config_params(name_b, config_b, "b.")})
with effect:
    st.subheader(_("What it does, measured"), anchor=False)
    kept = lessons.measured(lesson)
    if kept is None:
        st.info(_("Not measured yet: python -m explorer lesson {lesson} --measure").format(lesson=lesson.name))
    else:
        where, results = kept
        table = lesson_table(results)
        st.dataframe(table, hide_index=True, width="stretch", height=fit_height(len(table)))
        st.text(lessons.verdict(results))
        st.caption(_("Each network trained once on Fashion-MNIST ({where}). What explains it: {statistic} per "
                     "layer, below once you train the pair.").format(where=where,
                                                                     statistic=_(STATISTICS[lesson.watch])))

if lesson.exercise:  # full width: the question is a sentence
    st.page_link(lesson.exercise_page, label=_("The book's exercise: ") + _(lesson.exercise), icon=":material/quiz:",
                 query_params=dict(lesson.exercise_params))
st.subheader(_("Train the pair yourself"), anchor=False)
st.caption(" · ".join(_("{label}: {model}, quick preset").format(label=_(side.label), model=side.model)
                      + "".join(f", {k}={knob_text(v)}" for k, v in {**side.network, **side.settings}.items())
                      for side in lesson.pair))

wanted = {"lesson": lesson.name, **({"run": pair[0].id} if pair and pair[0] else {}),
          **({"vs": pair[1].id} if len(pair) == 2 and pair[1] else {}), **bookmark_params()}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)
for key in ("run", "vs"):
    if asked == chosen and params.get(key) and manager.store.get(params[key]) is None:
        say_run_missing(params[key])
live = any(r is not None and r.status in ("queued", "running") for r in pair)


@st.fragment(run_every=2.0 if live else None)
def the_pair(ids: list[str]) -> None:
    """The visitor's pair: its status, then its layers side by side, redrawn while it trains."""
    use_language()
    runs = [r for r in map(manager.store.get, ids) if r is not None]
    if not runs:
        return
    st.caption(" · ".join(plain(f"{r.label}: {_(r.status)}") for r in runs))
    st.page_link("pages/runs.py", label=_("Both runs on Runs, side by side"), icon=":material/history:",
                 query_params={"run": runs[0].id, **({"vs": runs[1].id} if len(runs) == 2 else {})})
    state.setdefault("l.stat", lesson.watch)
    dynamics_section(manager, runs, "l", live=any(r.status in ("queued", "running") for r in runs))


the_pair([r.id for r in pair if r is not None])
