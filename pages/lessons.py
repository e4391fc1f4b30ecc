"""Lessons: one per section of the chapter. The claim, the comparison that shows its cost, the pair of runs
that shows its effect as measured on the real data, and the same pair trained by the visitor, side by side."""

import streamlit as st

from explorer import i18n, lessons
from explorer.config import knob_text
from explorer.errors import ExplorerError
from explorer.i18n import _
from explorer.summary import summarize
from explorer.training.dynamics import STATISTICS
from explorer.views.runviews import run_progress
from explorer.views.tables import human
from explorer.views.ui import config_params, plain
from pages.common import (
    bookmark_params,
    dynamics_params,
    dynamics_section,
    fit_height,
    page_context,
    page_setup,
    results_table,
    say_run_missing,
)
from pages.language import use_language

manager, me, params = page_context()
state = st.session_state
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
st.caption(_("动手学深度学习 {section} · Dive into Deep Learning {english}").format(section=lesson.section,
                                                                                english=lesson.english))
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

runs = [r for r in pair if r is not None]
live = any(r.status in ("queued", "running") for r in runs)


@st.fragment(run_every=2.0 if live else None)
def pair_progress(ids: list[str]) -> None:
    """The visitor's pair near its button: each run's phase, progress and ETA, redrawn while it trains; the
    whole page once more when both have ended (their table and sentence, beside the kept ones)."""
    use_language()
    shown = [r for r in map(manager.store.get, ids) if r is not None]
    if not all(manager.may_act(r.id, me) for r in shown):
        st.caption(_("Someone else's runs: you can watch them, not stop them; Train both trains your own pair."))
    for r, column in zip(shown, st.columns(len(shown)), strict=False):
        view = manager.view(r.id)
        wait = manager.wait_seconds(r.id) if view.position else 0.0
        fraction, text = run_progress(view.record, view.progress, view.position, wait)
        column.progress(fraction, text=plain(f"{r.label}: {text}"))
    if live and not any(r.status in ("queued", "running") for r in shown):
        st.rerun()  # once: the page redraws with the pair's results and without the timer


if runs:
    pair_progress([r.id for r in runs])

(name_a, config_a), (name_b, config_b) = lessons.compare_configs(lesson)
cost, effect = st.columns([1, 2])
with cost:
    st.subheader(_("What it costs"), anchor=False)
    sizes = [summarize(side.config()).totals for side in lesson.pair]
    st.dataframe({_("network"): [_(side.label) for side in lesson.pair],
                  _("params"): [human(t.params) for t in sizes], _("mult-adds"): [human(t.mult_adds) for t in sizes]},
                 hide_index=True, width="stretch", height=fit_height(2))
    st.page_link("pages/compare.py", label=_("Compare them layer by layer"), icon=":material/compare_arrows:",
                 query_params={**config_params(name_a, config_a, "a."), **config_params(name_b, config_b, "b."),
                               **bookmark_params()})
with effect:
    st.subheader(_("What it does, measured"), anchor=False)
    kept = lessons.measured(lesson)
    if kept is None:
        st.info(_("Not measured yet: python -m explorer lesson {lesson} --measure").format(lesson=lesson.name))
    else:
        where, results = kept
        results_table(results, lessons.verdict(results))
        st.caption(_("Each network trained once on Fashion-MNIST ({where}). What explains it: {statistic} per "
                     "layer, below once you train the pair.").format(where=where,
                                                                     statistic=_(STATISTICS[lesson.watch])))
    mine = [lessons.result_of(side, r, manager.store) for side, r in zip(lesson.pair, runs, strict=False)]
    if len(mine) == 2 and all(mine):  # the student's own pair, in the same columns and words
        st.subheader(_("What your pair did"), anchor=False)
        results_table(mine, lessons.verdict(mine))

if lesson.exercise:  # full width: the question is a sentence
    zh_number, en_number = lesson.exercise_numbers
    st.page_link(lesson.exercise_page, label=_("The book's exercise {zh} (English edition {en}): ").format(
        zh=zh_number, en=en_number) + _(lesson.exercise), icon=":material/quiz:",
                 query_params={**lesson.exercise_params, **bookmark_params()})
edition, section = ("zh", lesson.section) if i18n.current() == "zh" else ("en", lesson.english)
st.page_link("pages/exercises.py", label=_("All of section {section}'s exercises, each set up in one click").format(
    section=section), icon=":material/assignment:",
    query_params={"exercise": f"{edition}-{section}-1", **bookmark_params()})
st.subheader(_("Train the pair yourself"), anchor=False)
st.caption(" · ".join(_("{label}: {model}, quick preset").format(label=_(side.label), model=side.model)
                      + "".join(f", {k}={knob_text(v)}" for k, v in {**side.network, **side.settings}.items())
                      for side in lesson.pair))

wanted = {"lesson": lesson.name, **({"run": pair[0].id} if pair and pair[0] else {}),
          **({"vs": pair[1].id} if len(pair) == 2 and pair[1] else {}), **bookmark_params(), **dynamics_params()}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)
for key in ("run", "vs"):
    if asked == chosen and params.get(key) and manager.store.get(params[key]) is None:
        say_run_missing(params[key])


@st.fragment(run_every=2.0 if live else None)
def the_pair(ids: list[str]) -> None:
    """The visitor's pair, layer by layer, side by side, redrawn while it trains."""
    use_language()
    shown = [r for r in map(manager.store.get, ids) if r is not None]
    st.page_link("pages/runs.py", label=_("Both runs on Runs, side by side"), icon=":material/history:",
                 query_params={"run": shown[0].id, **({"vs": shown[1].id} if len(shown) == 2 else {}),
                               **bookmark_params()})
    dynamics_section(manager, shown, "l", live=any(r.status in ("queued", "running") for r in shown),
                     default=lesson.watch)


if runs:
    the_pair([r.id for r in runs])
