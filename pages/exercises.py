"""Exercises: every exercise of the chapter in both editions' numbering, each set up in one click, a
measurement's answer computed from its setups and folded away so that the student tries first."""

import streamlit as st

from explorer import exercise_runs, exercises, i18n
from explorer.i18n import _
from explorer.training.data import DATASETS
from explorer.views.ui import config_params, plain
from pages.common import bookmark_params, page_setup, results_table
from pages.language import use_language

use_language()  # this run's language (app.py sets it first; AppTest's reruns start at the page)
state = st.session_state
params = st.query_params.to_dict()
asked = params.get("exercise")
known = asked in exercises.BY_ID
with st.sidebar:
    editions = list(exercises.EDITIONS)
    if "e.edition" not in state:  # the link's edition, else the reader's language's
        state["e.edition"] = asked.split("-")[0] if known else ("zh" if i18n.current() == "zh" else "en")
    edition = st.radio(_("Edition"), editions, key="e.edition", format_func=lambda e: exercises.EDITIONS[e])
    ids = [e.id for e in exercises.of_edition(edition)]
    if state.get("e.exercise") not in ids:
        state["e.exercise"] = asked if asked in ids else ids[0]
    chosen = st.selectbox(_("Exercise"), ids, key="e.exercise",
                          format_func=lambda i: f"{i} · {_(exercises.get(i).question)[:48]}…")
page_setup()

if asked is not None and not known and state.get("e.left") != asked:  # say so, keep the URL
    st.error(_("There is no exercise {id}: they are numbered as each edition numbers them, like zh-7.6-3 or "
               "en-8.6-3.").format(id=plain(asked, 40)), icon=":material/link_off:")
    if st.button(_("Open the sidebar's exercise instead"), key="e.leave"):
        state["e.left"] = asked
        st.rerun()
    st.stop()
exercise = exercises.get(chosen)

st.title(_("Exercise {id}").format(id=exercise.id))
st.caption(_("{book} {section}, exercise {number} · {kind}").format(
    book=exercises.EDITIONS[exercise.edition], section=exercise.section, number=exercise.number,
    kind=_(exercise.kind)))
st.markdown(f"**{plain(_(exercise.question), 400)}**")
if exercise.same:
    other = exercises.get(exercise.same)
    st.page_link("pages/exercises.py", label=_("The same exercise in {book}: {id}").format(
        book=exercises.EDITIONS[other.edition], id=other.id), icon=":material/translate:",
        query_params={"exercise": other.id, **bookmark_params()})


def label(setup: exercises.Setup) -> str:
    return _(setup.label) if setup.label else setup.model


if exercise.setups or exercise.page == "lessons":
    st.subheader(_("Set it up"), anchor=False)
    links = st.container(horizontal=True)
    setups = list(exercise.setups)
    if exercise.page == "lessons":
        links.page_link("pages/lessons.py", label=_("Open the lesson that trains this pair"),
                        icon=":material/school:", query_params={**exercise.extra, **bookmark_params()})
    elif exercise.page == "compare" and len(setups) >= 2:
        a, b = setups[:2]
        links.page_link("pages/compare.py", label=_("Compare {a} with {b}").format(a=label(a), b=label(b)),
                        icon=":material/compare_arrows:",
                        query_params={**config_params(a.model, a.built(), "a."),
                                      **config_params(b.model, b.built(), "b."), **bookmark_params()})
        setups = setups[2:]
    for setup in setups:
        page = {"train": "pages/train.py", "inside": "pages/inside.py"}.get(exercise.page, "pages/explore.py")
        verb = {"train": _("Train: {setup}"), "inside": _("Look inside: {setup}")}.get(exercise.page,
                                                                                        _("Explore: {setup}"))
        links.page_link(page, label=verb.format(setup=label(setup)), icon=":material/play_arrow:",
                        query_params={**config_params(setup.model, setup.built()), **exercise.extra,
                                      **bookmark_params()})
if exercise.note:
    (st.warning if exercise.partly else st.info)(plain(_(exercise.note), 400), icon=":material/lightbulb:")
answer = exercises.answer(exercise)
if answer:
    with st.expander(_("What we measured (computed from the summaries of these networks, on the meta device)")):
        for what, value in answer:
            st.text(f"{what}: {value}")
if exercise_runs.trains(exercise):
    data = DATASETS[exercise_runs.dataset_of(exercise)].title
    with st.expander(_("What we measured (each setup trained once on {data} with the quick preset)").format(data=data)):
        kept = exercise_runs.measured(exercise)
        if kept is None:
            st.info(_("Not measured yet: python -m explorer exercise {id} --measure").format(id=exercise.id))
        else:
            place, results = kept
            results_table(results, exercise_runs.verdict(results))
            st.caption(_("Trained on {where} (python -m explorer exercises --measure). Your own runs of these "
                         "setups are on the Runs page.").format(where=place))

section = [e for e in exercises.of_edition(exercise.edition) if e.section == exercise.section]
st.subheader(_("This section's exercises"), anchor=False)
for e in section:
    st.page_link("pages/exercises.py", label=f"{e.id} · {_(e.coverage)} · {plain(_(e.question), 90)}",
                 query_params={"exercise": e.id, **bookmark_params()}, disabled=e.id == exercise.id)

wanted = {"exercise": exercise.id, **bookmark_params()}
if st.query_params.to_dict() != wanted:
    st.query_params.from_dict(wanted)
