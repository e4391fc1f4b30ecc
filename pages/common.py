"""Widgets the pages share: the config editor, URL sync and the run manager. Streamlit only, no torch."""

from __future__ import annotations

import secrets
import typing
from typing import NamedTuple

import pandas as pd
import streamlit as st

from explorer import i18n, registry
from explorer.config import Column, ModelConfig, knob_info, knob_text, literal_choices, parse_value
from explorer.errors import ConfigError
from explorer.i18n import _
from explorer.identity import Visitor, identify, valid_token, visitor_id
from explorer.server import server_manager
from explorer.summary import check
from explorer.training.dynamics import STATISTICS
from explorer.training.runs import RunManager
from explorer.views.layerdynamics import dynamics_heatmap, dynamics_lines, shared_range
from explorer.views.tables import lesson_table
from explorer.views.ui import config_from_params, plain
from pages.language import browser_locale, use_language


def _through_app_navigation() -> None:
    """Until app.py has called st.navigation once, Streamlit serves pages/ in its legacy multipage mode: a
    first visitor who opens /train directly would get the file list as navigation and no page config.
    Leave that mode and rerun, so app.py's navigation handles the request."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_through_app_navigation()

HIDDEN_KNOBS = ("in_channels", "num_classes")
PAGE_PARAMS = ("batch", "run", "view", "depth", "present", "lang", "stat", "dataset")  # the pages' own, not knobs

# Streamlit's default page leaves about 100 px above every title; on a 1280x720 projector that is the
# difference between seeing the result and scrolling to it. Presentation mode makes all type larger.
_STYLE = """<style>
[data-testid="stMainBlockContainer"] {padding-top: 3.8rem; padding-bottom: 2rem;
                                      padding-left: 2rem; padding-right: 2rem; max-width: none;}
h1 {font-size: 2rem !important; padding: 0 0 .25rem 0 !important;}
[data-testid="stMetricLabel"] p {font-size: .95rem;}
[data-testid="stMetricValue"] {font-size: 2rem;}
</style>"""
PRESENT_FONT = 20  # pixels: the root font in presentation mode
_PRESENT_STYLE = f"""<style>
html {{font-size: {PRESENT_FONT}px;}}
[data-testid="stMetricValue"] {{font-size: 2.4rem;}}
</style>"""


# Streamlit's own "Running... Stop" widget speaks English whatever the page's language; a Chinese page says
# what it is doing itself (measuring, starting a worker, each run's progress), so it does without it.
_CHINESE_STYLE = """<style>[data-testid="stStatusWidget"] {display: none;}</style>"""


def page_setup() -> bool:
    """Style every page for a projector and draw the presentation-mode toggle; True when it is on.

    Presentation mode comes from `?present=1` on a first visit (a lecturer's bookmark) and is put back
    into the URL by the page's own URL sync (see `bookmark_params`).
    """
    state = st.session_state
    if "present" not in state:
        state["present"] = st.query_params.get("present") == "1"
    present = st.sidebar.toggle(_("Presentation mode"), key="present",
                                help=_("Larger type and the sidebar collapsed on load; bookmark the URL to keep it"))
    st.html(_STYLE + (_PRESENT_STYLE if present else "") + (_CHINESE_STYLE if i18n.current() == "zh" else ""))
    return present


ROW_PIXELS = 35  # st.dataframe's row height, the header's too


def fit_height(rows: int, most: int | None = None) -> int:
    """A table's height that shows its rows and no blank filler rows below them (at most `most` pixels). In
    presentation mode the root font is 20 px, not 16, and a table's rows grow with it."""
    scale = PRESENT_FONT / 16 if st.session_state.get("present") else 1.0
    height = round(ROW_PIXELS * scale * (rows + 1)) + 3
    return height if most is None else min(height, most)


def results_table(results: list, verdict: str | None) -> None:
    """Trained networks' results (explorer.lessons.Result) as a table that shows every row, and the sentence
    their numbers make: a lesson's pair, a student's own pair, an exercise's setups."""
    table = lesson_table(results)
    st.dataframe(table, hide_index=True, width="stretch", height=fit_height(len(table)))
    if verdict:
        st.text(verdict)


def bookmark_params() -> dict[str, str]:
    """The URL parameters that keep presentation mode and the language in a bookmark (the language when it
    is not what the browser would pick)."""
    chosen = st.session_state.get("lang", "en")
    return ({"present": "1"} if st.session_state.get("present") else {}) | (
        {"lang": chosen} if chosen != i18n.from_locale(browser_locale()) or "lang" in st.query_params else {})


COOKIE = "cnn_explorer_visitor"


class PageContext(NamedTuple):
    """What a page that shows runs starts from: the server's run manager, who is looking, the URL's parameters."""

    manager: RunManager
    me: Visitor
    params: dict[str, str]


def page_context() -> PageContext:
    """Every runs page's first line: this script run's language (app.py sets it first; AppTest's reruns start
    at the page), then the run manager, the visitor and the URL."""
    use_language()
    return PageContext(server_manager(), visitor(), st.query_params.to_dict())


def visitor() -> Visitor:
    """Who this browser is (explorer.identity): the machine's owner, a login, or the random token this
    browser keeps in a cookie. Only the cookie and the connection are read here."""
    state = st.session_state
    if "visitor" not in state:
        token, login = st.context.cookies.get(COOKIE, ""), _login()
        fresh = not valid_token(token)
        if fresh:
            token = secrets.token_hex(16)
        ip = st.context.ip_address if isinstance(st.context.ip_address, str) else None  # AppTest: a mock
        headers = {k: v for k, v in dict(st.context.headers).items() if isinstance(k, str) and isinstance(v, str)}
        me = identify(ip, headers, token, login)
        if fresh and me.id == visitor_id(token):  # a new visitor: this browser keeps its token
            # the value is ours, never visitor text; kept a year, sent only to this site, and only over HTTPS
            # where the page came over HTTPS. Streamlit offers no way to set it from the server (HttpOnly).
            st.html(f"<script>document.cookie = '{COOKIE}={token}; path=/; max-age=31536000; SameSite=Strict'"
                    " + (location.protocol === 'https:' ? '; Secure' : '');</script>", unsafe_allow_javascript=True)
        state["visitor"] = me
    return state["visitor"]


def _login() -> str | None:
    """The signed-in user's e-mail when the host configured st.login, else None."""
    try:
        email = st.user.email if st.user.is_logged_in is True else None
    except (AttributeError, KeyError, st.errors.StreamlitAPIException):
        return None
    return email if isinstance(email, str) and email else None


def say_run_missing(run_id: str, what_now: str = "") -> None:
    """The main area's word when a URL names a run this store does not have; the page keeps the URL."""
    st.error(_("There is no run {run} here: it was deleted, or its link belongs to another server.").format(
        run=plain(run_id, 40)) + (f" {what_now}" if what_now else ""), icon=":material/link_off:")


def forget_browser(me: Visitor) -> None:
    """On a shared computer (a lab PC), a visitor known by this browser's cookie can drop it: whoever sits
    here next is a new visitor, with none of these runs. The runs stay; their links open them read-only."""
    if me.admin or _login() is not None:  # the machine's owner, an admin, or a login: no cookie to forget
        return
    if st.sidebar.button(_("Forget this browser"), key="forget", help=_(
            "On a shared computer: the next person here will not be you. Your runs stay on the server; keep "
            "their links to see them")):
        st.html(f"<script>document.cookie = '{COOKIE}=; path=/; max-age=0; SameSite=Strict';</script>",
                unsafe_allow_javascript=True)
        del st.session_state["visitor"]  # this session, too, is a new visitor from its next rerun
        st.sidebar.success(_("This browser no longer holds your identity: the next visit here is a new visitor."))


def admin_notices(me: Visitor) -> None:
    """What only the machine's owner or an admin needs to hear: a damaged run store moved aside (its server
    paths included), a full disk. Visitors are not told, neither on every page nor forever."""
    if me.admin and server_manager().store.recovered:
        st.warning(plain(server_manager().store.recovered), icon="⚠️")
    if me.admin and server_manager().store.full:
        st.warning(_("The disk under the run store is full: stored runs can be looked at, but new runs cannot be "
                     "saved until space is freed."), icon="⚠️")


def config_editor(prefix: str, where, params: dict[str, str] | None = None,
                  url_prefix: str = "") -> tuple[str, ModelConfig, ConfigError | None]:
    """Draw the architecture, preset and knob widgets in `where` (widget keys start with `prefix`).

    On a session's first run the config comes from the URL parameters starting with `url_prefix`.

    Returns (catalog name, the config to show, the error or None). A bad knob gets its message right under
    its widget (for a rule between two knobs, under the one the user changed) and the config to show is
    then the last valid one, so the page can say so.
    """
    state = st.session_state
    if f"{prefix}init" not in state:
        name, config, problems = config_from_params(params or {}, url_prefix, ignore=PAGE_PARAMS)
        _seed_widgets(prefix, name, config)
        state[f"{prefix}url_problems"] = problems
        state[f"{prefix}init"] = True
    for problem in state.get(f"{prefix}url_problems", []):
        where.warning(plain(problem))  # it quotes what the URL said

    families = registry.families()
    family = where.selectbox(_("Architecture"), list(families), key=f"{prefix}family",
                             help=_("The networks of d2l chapter 7"))
    entries = families[family]
    names = [e.name for e in entries]
    if state.get(f"{prefix}preset:{family}") not in names:
        state[f"{prefix}preset:{family}"] = names[0]
    name = where.selectbox(_("Preset"), names, key=f"{prefix}preset:{family}",
                           format_func=lambda n: f"{n} (d2l {s})" if (s := registry.get(n).section) else n)
    entry = registry.get(name)
    where.caption(_(entry.description))

    values, slots = {}, {}
    for info in knob_info(entry.config):
        if info["name"] in HIDDEN_KNOBS:
            continue
        values[info["name"]] = _knob_widget(prefix, name, info, getattr(entry.config, info["name"]), where)
        slots[info["name"]] = where.empty()

    last_key = f"{prefix}last_valid"
    valid = state.get(last_key)
    last = valid[1] if valid and valid[0] == name else entry.config
    config, parsed, error = _assemble(entry.config, values)
    if error is None:
        try:
            check(config)
        except ConfigError as err:
            error = err
    if error is not None:
        changed = [k for k in (error.knob, *error.related) if k in parsed and parsed[k] != getattr(last, k)]
        slot = slots.get(changed[0] if changed else error.knob) or where
        slot.error(plain(error.text()), icon="⚠️")  # it may quote what the visitor typed
        return name, last, error
    state[last_key] = (name, config)
    return name, config, None


def show_fallback(error: ConfigError | None) -> None:
    """Say in the main area that the view shows the last valid config while a knob is invalid."""
    if error is not None:
        st.warning(_("{knob} is invalid (see the message under it): this shows the last valid config.").format(
            knob=error.knob),
                   icon="⚠️")


def _wkey(prefix: str, name: str, knob: str) -> str:
    return f"{prefix}{name}.{knob}"


def _seed_widgets(prefix: str, name: str, config: ModelConfig) -> None:
    """Put a config (from the URL) into the widgets' session state before they are drawn."""
    state = st.session_state
    entry = registry.get(name)
    state[f"{prefix}family"] = entry.family
    state[f"{prefix}preset:{entry.family}"] = name
    for info in knob_info(config):
        knob, value = info["name"], getattr(config, info["name"])
        if knob in HIDDEN_KNOBS:
            continue
        key = _wkey(prefix, name, knob)
        if info["columns"]:
            state[key + ".data"] = _rows_frame(info["columns"], value)
        elif typing.get_origin(info["type"]) is tuple:
            state[key] = knob_text(value)
        else:
            state[key] = value


def _rows_frame(columns: tuple[Column, ...], rows) -> pd.DataFrame:
    """A table knob's rows as the table editor shows them, one column per Column."""
    return pd.DataFrame(list(rows), columns=[c.name for c in columns])


def _knob_widget(prefix: str, name: str, info: dict, default, where):
    """One widget fitted to the knob's type and bounds; returns its raw value."""
    key = _wkey(prefix, name, info["name"])
    hint, label, help_text = info["type"], info["name"], info["help"]
    state = st.session_state
    if info["columns"]:
        data = state.setdefault(key + ".data", _rows_frame(info["columns"], default))
        where.markdown(f"**{label}**: {_(help_text)}")
        # short headers (the book's names are in their help): the columns, their headers and four digits fit
        # the sidebar beside the row marker; a new row arrives filled in, never half-empty
        return where.data_editor(data, key=key, num_rows="dynamic", hide_index=True, width="stretch",
                                 column_config={c.name: st.column_config.NumberColumn(
                                     _(c.header), help=_(c.help), min_value=c.lo, max_value=c.hi, step=1,
                                     default=c.default, width=max(84, 8 * len(c.header) + 40))
                                     for c in info["columns"]})
    if hint is bool:
        state.setdefault(key, default)
        return where.checkbox(label, key=key, help=_(help_text))
    if literal_choices(hint):
        state.setdefault(key, default)
        return where.selectbox(label, literal_choices(hint), key=key, help=_(help_text))
    if typing.get_origin(hint) is tuple:
        state.setdefault(key, knob_text(default))
        return where.text_input(label, key=key, help=_(help_text) + _("; e.g. 3, 4, 6, 3 or (3, 4, 6, 3)"))
    if hint is int:
        state.setdefault(key, default)
        return where.number_input(label, min_value=int(info["lo"]), max_value=int(info["hi"]), step=1, key=key,
                                  help=_(help_text))
    state.setdefault(key, default)
    return where.number_input(label, min_value=float(info["lo"]), max_value=float(info["hi"]), step=0.05,
                              format="%.2f", key=key, help=_(help_text))


def _assemble(base: ModelConfig, values: dict) -> tuple[ModelConfig, dict, ConfigError | None]:
    """Widget values -> (a validated config, the parsed values, None), or (base, parsed so far, the error)."""
    hints = typing.get_type_hints(type(base))
    parsed: dict = {}
    try:
        for knob, raw in values.items():
            if isinstance(raw, pd.DataFrame):  # a table knob's rows
                frame = raw.dropna(how="all")
                if frame.isna().any().any():
                    raise ConfigError(knob, "fill in every number of every row (or delete the row)")
                parsed[knob] = tuple(tuple(int(v) for v in row) for row in frame.itertuples(index=False))
            elif isinstance(raw, str):
                parsed[knob] = parse_value(knob, hints[knob], raw)
            else:
                parsed[knob] = raw
        return type(base)(**{**base.kwargs(), **parsed}), parsed, None
    except ConfigError as err:
        return base, parsed, err


def dynamics_params() -> dict[str, str]:
    """The dynamics view's statistic as the URL names it (`stat`), for a page to keep in its URL: a lecturer's
    link opens on the statistic they chose."""
    return {"stat": st.query_params["stat"]} if st.query_params.get("stat") in STATISTICS else {}


def dynamics_section(manager, runs: list, key: str, live: bool = False, default: str | None = None) -> None:
    """Each layer's gradients, updates and outputs as the runs trained: a heatmap per run on one colour
    scale (two runs side by side), and lines for a few layers. A run from before they were recorded says so.
    The statistic shown is the URL's `stat`, else `default`, and a change is written back to the URL."""
    st.subheader(_("Inside the training: each layer, report by report"), anchor=False)
    default = default or next(iter(STATISTICS))
    if f"{key}.stat" not in st.session_state:
        st.session_state[f"{key}.stat"] = dynamics_params().get("stat", default)
    stat = st.selectbox(_("Statistic"), list(STATISTICS), format_func=lambda s: _(STATISTICS[s]), key=f"{key}.stat",
                        help=_("the gradient norm shows whether the gradient reaches the first layers; the update "
                               "size / weight size how fast each layer learns; dead channels and saturated outputs "
                               "where ReLUs or sigmoids stopped passing a signal"))
    if st.query_params.get("stat", default) != stat:  # the default keeps the URL as it was
        st.query_params["stat"] = stat
    frames = {r.label: manager.store.dynamics(r.id) for r in runs}
    for r in runs:
        if frames[r.label].empty:
            st.caption(plain(_("{label} (run {run}) has no dynamics: ").format(label=r.label, run=r.id)
                             + (_("it has not reported a step yet.") if live else
                                _("it was trained before they were recorded, or stopped before its first report."))))
    shown = {label: frame for label, frame in frames.items() if not frame.empty}
    if not shown:
        return
    scale = shared_range(list(shown.values()), stat)
    for (label, frame), column in zip(shown.items(), st.columns(len(shown)), strict=True):
        column.plotly_chart(dynamics_heatmap(frame, stat, label, scale, height=420 if len(shown) == 1 else 480),
                            key=f"{key}.heat.{label}")
    st.plotly_chart(dynamics_lines(shown, stat), key=f"{key}.lines")
