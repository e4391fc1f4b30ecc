"""Generated input through the boundary: URL parameter sets and CLI values through the parser and the
summary. Whatever arrives, the only error is the project's own, naming a knob, never a traceback."""

import os
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer import registry
from explorer.config import knob_info, with_overrides
from explorer.errors import ConfigError
from explorer.summary import summarize
from explorer.views.ui import config_from_params, plain

EXAMPLES = int(os.environ.get("EXPLORER_PROPERTY_EXAMPLES", 5000))  # two tests: 10,000 in all
NAMES = registry.list_models()
KNOBS = sorted({info["name"] for name in NAMES for info in knob_info(registry.get(name).config)})

number = st.one_of(st.integers(-3, 70), st.integers(-10**6, 10**12), st.floats(allow_nan=True),
                   st.sampled_from([0, 1, 2, 3, 4, 8, 16, 28, 32, 64, 96, 224]))
small = st.integers(0, 9)
literal = st.one_of(
    number.map(repr),
    st.lists(small, max_size=8).map(lambda v: ", ".join(map(str, v))),
    st.lists(st.tuples(small, st.integers(0, 600)), max_size=6).map(repr),
    st.lists(st.integers(0, 130), min_size=1, max_size=14).map(repr),
    st.sampled_from(["none", "scratch", "builtin", "'wide'", "(", ")(", "[[]]", "1e309", "True", "None",
                     "__import__('os').system('true')", "[CLICK](http://example.invalid)", "1" * 3000]),
    st.text(max_size=40),
)
params = st.fixed_dictionaries(
    {"model": st.one_of(st.sampled_from(NAMES), st.text(max_size=20))},
    optional={knob: literal for knob in KNOBS},
)


def knob_named(err: ConfigError, allowed: set[str]) -> bool:
    return err.knob in allowed and err.message.strip() != ""


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(params)
def test_url_parameter_sets_never_raise(values):
    name, config, problems = config_from_params(values)
    assert name in NAMES  # an unknown model falls back to the default, with a warning
    assert values["model"] in NAMES or problems, "an unknown model was replaced without a word"
    assert all(isinstance(p, str) and "Traceback" not in p for p in problems)
    assert all("://" not in plain(p) for p in problems)  # shown on the page, no URL in it stays a link
    summarize(config)  # what the page then draws: a config the URL reading let through always summarizes


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(NAMES), st.dictionaries(st.sampled_from(KNOBS), literal, max_size=4))
def test_cli_values_through_the_summary_raise_only_config_errors(name, overrides):
    base = registry.get(name).config
    allowed = set(typing.get_type_hints(type(base))) | set(overrides) | {"config", "model"}
    try:
        summarize(with_overrides(base, overrides))
    except ConfigError as err:
        assert knob_named(err, allowed), err
