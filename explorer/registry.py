"""The catalog: a name maps to everything the app knows of that network, kept with the network's own module
(as timm keeps a model's defaults with it): its default config and builder, the book's training settings,
the quick and fast presets, and how the views show the family's own modules (its blocks, its norm layers).

Each module of `explorer.models` registers its entries on import; `list_models()` drives the CLI, the pages
and the parametrized tests, in the book's order (by section).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from explorer.config import ModelConfig
from explorer.errors import ConfigError
from explorer.i18n import N_


@dataclass(frozen=True)
class BookSettings:
    """How d2l trains this network (SGD, cross-entropy, Xavier init)."""

    lr: float
    batch_size: int
    epochs: int = 10


@dataclass(frozen=True)
class Presets:
    """What the quick and fast presets change (measured on the real data: README). `network`: the config
    both train, as changes to the book's; `quick`: changes to the book's settings; `fast`: the modern
    recipe's settings for this network (explorer.training.recipes.RECIPE), on top of `quick`'s. `speedrun`:
    the speedrun network's own preset, the modern recipe's settings on top of the book's; no other has one."""

    network: Mapping[str, Any]
    quick: Mapping[str, Any]
    fast: Mapping[str, Any]
    speedrun: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Tap:
    """A tensor a block is shown by on Inside: the input or output of one of its modules, after a ReLU if
    the block applies one functionally (F.relu leaves no module to hook)."""

    label: str                # a catalog key (marked with N_), said in the reader's language with `values`
    module: nn.Module
    where: Literal["input", "output"] = "output"
    relu: bool = False        # apply the ReLU the block's forward applies to this output
    after_relu: bool = False  # the tensor is a ReLU's output: it counts in the activation statistics
    values: Mapping[str, object] = dataclasses.field(default_factory=dict)  # what `label` names

    def hook(self, record: Callable[[torch.Tensor], None]) -> torch.utils.hooks.RemovableHandle:
        def fire(module, args, out):
            t = args[0] if self.where == "input" else out
            record(F.relu(t) if self.relu else t)
        return self.module.register_forward_hook(fire)


class Leaf(Protocol):
    """A layer of the summary under a block, as the diagram hands it over: its path, type and kernel."""

    path: str
    type: str
    kernel: str
    shape: str


@dataclass(frozen=True)
class BlockView:
    """How the app shows one of a family's own blocks: one box of the diagram, opened up on Inside.
    `lines`: the box's lines, from the summary's leaves under the block and the diagram's way of naming a
    chain of layers ("2× Conv 3x3 · BN"); `taps`: what Inside shows of it; `skip`: for a block that adds its
    input to its output, what the skip is ("identity", "1x1 conv"), drawn as an arc."""

    type: type[nn.Module]
    lines: Callable[[Sequence[Leaf], Callable[[Sequence[Leaf]], list[str]]], tuple[str, ...]]
    taps: Callable[[nn.Module], list[Tap]]
    skip: Callable[[Sequence[Leaf]], str] | None = None

    @classmethod
    def residual(cls, block: type[nn.Module], projection: tuple[str, ...], branch: tuple[str, ...],
                 branch_label: str, projection_label: str) -> BlockView:
        """A block that adds its input to its branch: unchanged, or through `projection` (its attribute names,
        None where the shapes agree; the last is tapped) where the shape changes. `branch` names the modules
        whose output may be the branch before the sum: the first the block has (its last norm, else the
        convolution before it, where the norm was left out)."""

        def skip(leaves: Sequence[Leaf]) -> str:
            return "1x1 conv" if any(leaf.path.endswith(projection[0]) for leaf in leaves) else "identity"

        def lines(leaves: Sequence[Leaf], chain: Callable[[Sequence[Leaf]], list[str]]) -> tuple[str, ...]:
            main = [leaf for leaf in leaves if not leaf.path.endswith(projection)]
            preact = bool(main) and main[0].type.startswith("BatchNorm")  # a pre-activation block ends on the sum
            return (*chain(main), f"+ {skip(leaves)}" + ("" if preact else " · ReLU"))

        def taps(module: nn.Module) -> list[Tap]:
            shortcut = (Tap(N_("identity path: the block's input, added unchanged"), module, "input")
                        if getattr(module, projection[0]) is None
                        else Tap(N_("shortcut: {projection}"), getattr(module, projection[-1]),
                                 values={"projection": projection_label}))
            if getattr(module, "preact", False):  # its branch ends on a convolution, its output on the sum
                return [shortcut, Tap(branch_label, getattr(module, branch[-1])),
                        Tap(N_("output: F(x) + x, no ReLU after the sum"), module)]
            end = next(m for name in branch if (m := getattr(module, name, None)) is not None)
            return [shortcut, Tap(branch_label, end),
                    Tap(N_("output: ReLU(F(x) + x)"), module, after_relu=True)]

        return cls(block, lines, taps, skip)


@dataclass(frozen=True)
class NormView:
    """A family's own normalization layer (d2l's BatchNorm from scratch), shown like torch's: joined to the
    layer before it in the diagram as `short`, its moving statistics and learned scale and shift on Inside
    and Runs."""

    type: type[nn.Module]
    short: str
    moving: Callable[[nn.Module], tuple[torch.Tensor, torch.Tensor]]
    scale_shift: tuple[str, str]  # the names of its scale and shift parameters


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    description: str
    section: str                    # the Chinese edition's (7.1-7.7), else the English edition's; "" not the book's
    config: ModelConfig
    build: Callable[..., nn.Module]
    book: BookSettings
    presets: Presets
    blocks: tuple[BlockView, ...] = ()
    norms: tuple[NormView, ...] = ()


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
    _views.cache_clear()
    return entry


def list_models() -> list[str]:
    return [e.name for e in _in_book_order()]


def get(name: str) -> ModelEntry:
    _load_catalog()
    if name not in _ENTRIES:
        close = difflib.get_close_matches(name[:100], _ENTRIES, n=3)
        shown = name if len(name) <= 40 else name[:40] + "…"  # a 50 KB name is not echoed back whole
        if close:
            raise ConfigError("model", "unknown model {name!r}; did you mean {close}?", name=shown,
                              close=", ".join(close))
        raise ConfigError("model", "unknown model {name!r}; choose from {choices}", name=shown,
                          choices=", ".join(_ENTRIES))
    return _ENTRIES[name]


def families() -> dict[str, list[ModelEntry]]:
    """Entries grouped by family, in the book's order (the app's architecture, then preset)."""
    out: dict[str, list[ModelEntry]] = {}
    for entry in _in_book_order():
        out.setdefault(entry.family, []).append(entry)
    return out


def entry_for(config: ModelConfig) -> ModelEntry:
    """The catalog entry of the same family whose defaults are closest to `config`."""
    _load_catalog()
    same = [e for e in _ENTRIES.values() if type(e.config) is type(config)]
    if not same:
        raise ConfigError("model", "{name} is not in the catalog", name=type(config).__name__)
    return min(same, key=lambda e: len(config.changes(e.config)))


def config_from(name: str, values: dict) -> ModelConfig:
    """A catalog entry's config with stored field values (from JSON) applied, validated again."""
    return dataclasses.replace(get(name).config, **values)


def build(config: ModelConfig) -> nn.Module:
    """A real `nn.Module` for `config` on torch's current default device."""
    _load_catalog()
    return _BUILDERS[type(config)](**config.kwargs())


def block_view(block: nn.Module | str) -> BlockView | None:
    """How a family's block is shown (by the module, or its class name as the summary has it), or None for
    any other module."""
    name = block if isinstance(block, str) else type(block).__name__
    return _views()[0].get(name)


def norm_view(module: nn.Module | str) -> NormView | None:
    """How a family's own normalization layer is shown (by the module or its class name), or None."""
    name = module if isinstance(module, str) else type(module).__name__
    return _views()[1].get(name)


@functools.cache
def _views() -> tuple[dict[str, BlockView], dict[str, NormView]]:
    _load_catalog()
    blocks = {v.type.__name__: v for e in _ENTRIES.values() for v in e.blocks}
    norms = {v.type.__name__: v for e in _ENTRIES.values() for v in e.norms}
    return blocks, norms


def _in_book_order() -> list[ModelEntry]:
    """Families by the first section they appear in (LeNet 6.6, AlexNet 7.1, ...), entries of a family in
    the order their module registers them."""
    _load_catalog()

    def number(section: str) -> tuple[int, ...]:
        return tuple(int(part) for part in section.split(".")) if section else (99,)  # not the book's: last

    first: dict[str, tuple[int, ...]] = {}
    for e in _ENTRIES.values():
        first[e.family] = min(first.get(e.family, number(e.section)), number(e.section))
    return sorted(_ENTRIES.values(), key=lambda e: first[e.family])


def _load_catalog() -> None:
    import explorer.models  # noqa: F401  (registers every family on first use)
