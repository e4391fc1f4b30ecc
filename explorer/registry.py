"""The catalog: a name maps to a default config, its builder and the book's training settings.

As in timm, each family module registers its entries on import; `list_models()` drives the CLI,
the pages and the parametrized tests.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from explorer.config import ModelConfig
from explorer.errors import ConfigError


@dataclass(frozen=True)
class BookSettings:
    """How d2l trains this network (SGD, cross-entropy, Xavier init)."""

    lr: float
    batch_size: int
    epochs: int = 10


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    description: str
    section: str
    config: ModelConfig
    build: Callable[..., nn.Module]
    book: BookSettings


_ENTRIES: dict[str, ModelEntry] = {}
_BUILDERS: dict[type, Callable[..., nn.Module]] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add an entry; a duplicate name or a second builder for one config type is a bug."""
    if entry.name in _ENTRIES:
        raise ValueError(f"model {entry.name!r} is already registered")
    known = _BUILDERS.setdefault(type(entry.config), entry.build)
    if known is not entry.build:
        raise ValueError(f"{type(entry.config).__name__} already has the builder {known.__name__}")
    _ENTRIES[entry.name] = entry
    return entry


def list_models() -> list[str]:
    _load_catalog()
    return list(_ENTRIES)


def get(name: str) -> ModelEntry:
    _load_catalog()
    if name not in _ENTRIES:
        close = difflib.get_close_matches(name[:100], _ENTRIES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; choose from {', '.join(_ENTRIES)}"
        shown = name if len(name) <= 40 else name[:40] + "…"  # a 50 KB name is not echoed back whole
        raise ConfigError("model", f"unknown model {shown!r}{hint}")
    return _ENTRIES[name]


def families() -> dict[str, list[ModelEntry]]:
    """Entries grouped by family, in catalog order (the app's architecture, then preset)."""
    _load_catalog()
    out: dict[str, list[ModelEntry]] = {}
    for entry in _ENTRIES.values():
        out.setdefault(entry.family, []).append(entry)
    return out


def entry_for(config: ModelConfig) -> ModelEntry:
    """The catalog entry of the same family whose defaults are closest to `config`."""
    _load_catalog()
    same = [e for e in _ENTRIES.values() if type(e.config) is type(config)]
    if not same:
        raise ConfigError("model", f"{type(config).__name__} is not in the catalog")
    return min(same, key=lambda e: len(config.changes(e.config)))


def config_from(name: str, values: dict) -> ModelConfig:
    """A catalog entry's config with stored field values (from JSON) applied, validated again."""
    return dataclasses.replace(get(name).config, **values)


def build(config: ModelConfig) -> nn.Module:
    """A real `nn.Module` for `config` on torch's current default device."""
    _load_catalog()
    return _BUILDERS[type(config)](**config.kwargs())


def _load_catalog() -> None:
    import explorer.models  # noqa: F401  (registers every family on first use)
