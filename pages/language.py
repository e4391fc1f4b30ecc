"""The visitor's language, chosen before anything is drawn: app.py reads it before its navigation (so this
module imports nothing of the pages'), and each page's fragments set it again for their own reruns."""

from __future__ import annotations

import streamlit as st

from explorer import i18n


def browser_locale() -> str | None:
    locale = st.context.locale
    return locale if isinstance(locale, str) else None  # AppTest: a mock


def use_language() -> str:
    """The language of this script run: the URL's lang (a bookmark), else the one chosen here, else the
    browser's. Called by app.py before anything is drawn, and by each fragment (a fragment's rerun may run
    where app.py's choice is not)."""
    state = st.session_state
    asked = st.query_params.get("lang")
    if "lang" not in state or (asked in i18n.LANGUAGES and state.get("lang.url") != asked):
        state["lang"] = asked if asked in i18n.LANGUAGES else i18n.from_locale(browser_locale())
        state["lang.url"] = asked
    return i18n.use(state["lang"])


def language_switch() -> None:
    """English or 中文, at the top of the sidebar of every page; the choice holds as pages change (it is kept
    in the session's own "lang", which outlives any one page's widgets)."""
    st.session_state["lang.switch"] = st.session_state["lang"]  # the switch shows the language in use
    st.sidebar.radio("Language / 语言", list(i18n.LANGUAGES), key="lang.switch", on_change=_switched, horizontal=True,
                     format_func=i18n.LANGUAGES.get, label_visibility="collapsed")


def _switched() -> None:
    st.session_state["lang"] = st.session_state["lang.switch"]
