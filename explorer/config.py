"""Typed, frozen model configs whose fields carry their own bounds.

Every knob is declared with `knob(...)`, so the same metadata validates a config built in Python,
parsed from the CLI or a URL, and sizes the widgets in the app.
"""

from __future__ import annotations

import ast
import os
import typing
import unicodedata
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, ClassVar, Literal

from explorer.errors import ConfigError

MAX_LITERAL_CHARS = 2000


@dataclass(frozen=True)
class Column:
    """One column of a table knob (a list of rows, as VGG's conv_arch): the book's name for it, the table's
    short header, its bounds, and the value a new row starts with."""

    name: str
    header: str
    lo: int
    hi: int
    default: int
    help: str


def knob(default: Any, *, lo: float | None = None, hi: float | None = None, help: str = "",
         columns: tuple[Column, ...] = ()) -> Any:
    """A config field with bounds (applied to every number inside tuples) and a help line. A list of rows
    names its `columns`: each is checked against its own bounds, and the app edits it as a table."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "help": help, "columns": columns})


def printable(text: str) -> str:
    """Visitor text without control and formatting characters (a right-to-left override turns what follows
    around; a bell or an escape has no business on a page), whatever else it holds."""
    return "".join(c for c in str(text) if c in "\n\t" or unicodedata.category(c)[0] != "C")


def max_params() -> int:
    """The parameter cap; absurd configs are refused before anything is allocated."""
    return int(os.environ.get("EXPLORER_MAX_PARAMS", 1_000_000_000))


@dataclass(frozen=True)
class ModelConfig:
    """Fields every network shares; families subclass it and may change the defaults."""

    resolution: int = knob(224, lo=8, hi=1024, help="input height and width in pixels")
    in_channels: int = knob(1, lo=1, hi=16, help="image channels (Fashion-MNIST: 1)")
    num_classes: int = knob(10, lo=2, hi=10_000, help="output classes (Fashion-MNIST: 10)")

    # The knob a user shortens when the input shrinks to nothing (named in the error).
    depth_knob: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = _coerce(f.name, hints[f.name], getattr(self, f.name), f.metadata)
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Cross-field rules of a family; field-level bounds are already checked."""

    def layer_count(self) -> int:
        """Leaf layers of the network, counted from the config without building it (the summary budget).
        Families whose depth is fixed stay far below the budget and count 0."""
        return 0

    def peak_config(self) -> ModelConfig:
        """The config whose summary a run's memory is admitted by: itself, unless an option keeps less for
        the backward pass than a real training step's peak comes down by (DenseNet's memory_efficient)."""
        return self

    def kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments for the family's builder function."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def changes(self, default: ModelConfig) -> dict[str, Any]:
        """Fields that differ from `default` (used for compact URLs and run labels)."""
        return {k: v for k, v in self.kwargs().items() if getattr(default, k) != v}


def _coerce(name: str, hint: Any, value: Any, meta: typing.Mapping[str, Any]) -> Any:
    """Check `value` against the annotation and bounds; turn lists into tuples."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(name, "must be one of {allowed}, not {value!r}",
                              allowed=", ".join(map(str, allowed)), value=value)
        return value
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            if isinstance(value, (int, float)) and typing.get_origin(args[0]) is not tuple:
                value = (value,)  # one number for a list of them (a run stored when RegNet's groups was one)
            if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= 64:
                raise ConfigError(name, "must be a list of 1 to 64 entries, not {value!r}", value=value)
            rows = tuple(_coerce(name, args[0], v, meta) for v in value)
            for i, row in enumerate(rows if meta.get("columns") else ()):
                for column, v in zip(meta["columns"], row, strict=True):
                    if not column.lo <= v <= column.hi:
                        raise ConfigError(name, "row {row}: {column} must be from {lo} to {hi}, not {value}",
                                          row=i + 1, column=column.name, lo=column.lo, hi=column.hi, value=v)
            return rows
        if not isinstance(value, (tuple, list)) or len(value) != len(args):
            raise ConfigError(name, "needs {n} numbers in each place, e.g. {example}, not {value!r}", n=len(args),
                              example=_example(args), value=value)
        return tuple(_coerce(name, a, v, meta) for a, v in zip(args, value, strict=True))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(name, "must be true or false, not {value!r}", value=value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, "must be a whole number, not {value!r}", value=value)
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ConfigError(name, "must be a number, not {value!r}", value=value)
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(name, "must be text, not {value!r}", value=value)
        return value
    else:  # pragma: no cover - a family declared a type this module does not know
        raise TypeError(f"unsupported config type {hint!r} for {name}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and value < lo:
        raise ConfigError(name, "must be at least {lo}, not {value}", lo=lo, value=value)
    if hi is not None and value > hi:
        raise ConfigError(name, "must be at most {hi}, not {value}", hi=hi, value=value)
    return value


def _example(args: tuple) -> str:
    return "(" + ", ".join("1" if a is int else "0.5" for a in args) + ")"


def parse_value(name: str, hint: Any, text: str) -> Any:
    """Parse one widget, URL or CLI value strictly: Python/JSON literals only, bare words for text knobs.

    List knobs take the same text everywhere: `3, 4, 6, 3`, `(3, 4, 6, 3)` or `[3, 4, 6, 3]`; one number
    is a list of one, and one `(num_convs, out_channels)` pair is a conv_arch of one row.
    """
    text = text.strip()
    if len(text) > MAX_LITERAL_CHARS:
        raise ConfigError(name, "value is longer than {n} characters", n=MAX_LITERAL_CHARS)
    if hint is str or typing.get_origin(hint) is Literal:
        return text
    try:
        value = ast.literal_eval(text.replace("true", "True").replace("false", "False"))
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        raise ConfigError(name, "cannot read {text!r} as a value; write e.g. 4, 0.5, 3, 4, 6, 3 or ((1, 64), "
                                "(2, 128))", text=text) from None
    return _as_list(hint, value)


def _as_list(hint: Any, value: Any) -> Any:
    """Wrap a lone entry of a variable-length list knob in a list of one."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is not tuple or len(args) != 2 or args[1] is not Ellipsis:
        return value
    if not isinstance(value, (tuple, list)):
        return (value,)
    inner_is_tuple = typing.get_origin(args[0]) is tuple
    if inner_is_tuple and value and not any(isinstance(v, (tuple, list)) for v in value):
        return (value,)
    return value


def knob_text(value: object) -> str:
    """A knob's value as the text a URL or a text box holds; `parse_value` reads it back."""
    if isinstance(value, tuple):
        return ", ".join(knob_text(v) if not isinstance(v, tuple) else f"({knob_text(v)})" for v in value)
    if isinstance(value, bool):
        return str(value).lower()  # true or false, as the CLI's --set takes it
    return str(value)


def with_overrides(config: ModelConfig, overrides: typing.Mapping[str, str]) -> ModelConfig:
    """A copy of `config` with KEY=VALUE strings applied, validated."""
    hints = typing.get_type_hints(type(config))
    known = {f.name for f in fields(config)}
    values = {}
    for key, text in overrides.items():
        if key not in known:
            raise ConfigError(key, "is not a knob of this model; knobs are: {knobs}", knobs=", ".join(sorted(known)))
        values[key] = parse_value(key, hints[key], text)
    return replace(config, **values)


def knob_info(config: ModelConfig) -> list[dict[str, Any]]:
    """Name, type, bounds, help and default of each knob, for widgets and `--help` text."""
    hints = typing.get_type_hints(type(config))
    return [
        {
            "name": f.name,
            "type": hints[f.name],
            "lo": f.metadata.get("lo"),
            "hi": f.metadata.get("hi"),
            "help": f.metadata.get("help", ""),
            "default": f.default if f.default is not MISSING else None,
            "columns": f.metadata.get("columns", ()),
        }
        for f in fields(config)
    ]


def literal_choices(hint: Any) -> tuple[Any, ...]:
    """The allowed values of a Literal knob, or () for other types."""
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


__all__ = [
    "Column",
    "ModelConfig",
    "knob",
    "max_params",
    "parse_value",
    "with_overrides",
    "knob_info",
    "literal_choices",
]
