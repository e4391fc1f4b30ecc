"""Widgets the pages share: the config editor, URL sync and the run manager. Streamlit only, no torch."""

from __future__ import annotations

import typing

import pandas as pd
import streamlit as st

from explorer import registry
from explorer.config import ModelConfig, knob_info, literal_choices, parse_value
from explorer.errors import ConfigError
from explorer.summary import check
from explorer.ui import config_from_params, knob_text


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
PAGE_PARAMS = ("batch", "run", "me")  # URL parameters of the pages themselves, not knobs


@st.cache_resource
def run_manager():
    """One run manager per server process, shared by every session (cheap to build, idempotent)."""
    from explorer.runs import RunManager

    return RunManager()


def config_editor(prefix: str, where, params: dict[str, str] | None = None,
                  url_prefix: str = "") -> tuple[str, ModelConfig, ModelConfig]:
    """Draw the architecture, preset and knob widgets in `where` (widget keys start with `prefix`).

    On a session's first run the config comes from the URL parameters starting with `url_prefix`.

    Returns (catalog name, the config to show, the valid config or the last valid one). A bad knob
    gets its message right under its widget; the view keeps the last valid config meanwhile.
    """
    state = st.session_state
    if f"{prefix}init" not in state:
        name, config, problems = config_from_params(params or {}, url_prefix, ignore=PAGE_PARAMS)
        _seed_widgets(prefix, name, config)
        state[f"{prefix}url_problems"] = problems
        state[f"{prefix}init"] = True
    for problem in state.get(f"{prefix}url_problems", []):
        where.warning(problem)

    families = registry.families()
    family = where.selectbox("Architecture", list(families), key=f"{prefix}family",
                             help="The networks of d2l chapter 7")
    entries = families[family]
    names = [e.name for e in entries]
    if state.get(f"{prefix}preset:{family}") not in names:
        state[f"{prefix}preset:{family}"] = names[0]
    name = where.selectbox("Preset", names, key=f"{prefix}preset:{family}",
                           format_func=lambda n: f"{n} (d2l {registry.get(n).section})")
    entry = registry.get(name)
    where.caption(entry.description)

    values, slots = {}, {}
    for info in knob_info(entry.config):
        if info["name"] in HIDDEN_KNOBS:
            continue
        values[info["name"]] = _knob_widget(prefix, name, info, getattr(entry.config, info["name"]), where)
        slots[info["name"]] = where.empty()

    config, error = _assemble(entry.config, values)
    if error is None:
        try:
            check(config)
        except ConfigError as err:
            error = err
    last_key = f"{prefix}last_valid"
    if error is not None:
        (slots.get(error.knob) or where).error(error.message, icon="⚠️")
        valid = state.get(last_key)
        fallback = valid[1] if valid and valid[0] == name else entry.config
        return name, fallback, fallback
    state[last_key] = (name, config)
    return name, config, config


def _wkey(prefix: str, name: str, knob: str) -> str:
    return f"{prefix}{name}.{knob}"


def _seed_widgets(prefix: str, name: str, config: ModelConfig) -> None:
    """Put a config (from the URL) into the widgets' session state before they are drawn."""
    state = st.session_state
    entry = registry.get(name)
    state[f"{prefix}family"] = entry.family
    state[f"{prefix}preset:{entry.family}"] = name
    hints = typing.get_type_hints(type(config))
    for knob, value in config.kwargs().items():
        if knob in HIDDEN_KNOBS:
            continue
        key = _wkey(prefix, name, knob)
        if knob == "conv_arch":
            state[key + ".data"] = _arch_frame(value)
        elif typing.get_origin(hints[knob]) is tuple:
            state[key] = knob_text(value)
        else:
            state[key] = value


def _arch_frame(conv_arch) -> pd.DataFrame:
    return pd.DataFrame(list(conv_arch), columns=["num_convs", "out_channels"])


def _knob_widget(prefix: str, name: str, info: dict, default, where):
    """One widget fitted to the knob's type and bounds; returns its raw value."""
    key = _wkey(prefix, name, info["name"])
    hint, label, help_text = info["type"], info["name"], info["help"]
    state = st.session_state
    if info["name"] == "conv_arch":
        data = state.setdefault(key + ".data", _arch_frame(default))
        where.markdown(f"**conv_arch** — {help_text}")
        return where.data_editor(data, key=key, num_rows="dynamic", hide_index=True, width="stretch",
                                 column_config={
                                     "num_convs": st.column_config.NumberColumn(min_value=1, max_value=16, step=1),
                                     "out_channels": st.column_config.NumberColumn(min_value=1, max_value=4096,
                                                                                   step=1)})
    if literal_choices(hint):
        state.setdefault(key, default)
        return where.selectbox(label, literal_choices(hint), key=key, help=help_text)
    if typing.get_origin(hint) is tuple:
        state.setdefault(key, knob_text(default))
        return where.text_input(label, key=key, help=f"{help_text}; comma-separated")
    if hint is int:
        state.setdefault(key, default)
        return where.number_input(label, min_value=int(info["lo"]), max_value=int(info["hi"]), step=1, key=key,
                                  help=help_text)
    state.setdefault(key, default)
    return where.number_input(label, min_value=float(info["lo"]), max_value=float(info["hi"]), step=0.05,
                              format="%.2f", key=key, help=help_text)


def _assemble(base: ModelConfig, values: dict) -> tuple[ModelConfig, ConfigError | None]:
    """Widget values -> a validated config, or the first error with its knob."""
    hints = typing.get_type_hints(type(base))
    parsed = {}
    try:
        for knob, raw in values.items():
            if knob == "conv_arch":
                frame = raw.dropna(how="all")
                if frame.isna().any().any():
                    raise ConfigError("conv_arch", "fill in both numbers of every row (or delete the row)")
                parsed[knob] = tuple((int(a), int(b)) for a, b in frame.itertuples(index=False))
            elif isinstance(raw, str):
                parsed[knob] = parse_value(knob, hints[knob], f"[{raw}]" if typing.get_origin(hints[knob]) is tuple
                                           else raw)
            else:
                parsed[knob] = raw
        return type(base)(**{**base.kwargs(), **parsed}), None
    except ConfigError as err:
        return base, err
