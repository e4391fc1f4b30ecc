"""How a run trains: its settings, checked where they are made, and the book's, quick and fast presets of
a catalog network, and the speedrun network's own (what each changes lives in the network's catalog entry:
registry.Presets)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import ConfigError
from explorer.i18n import N_
from explorer.summary import check
from explorer.training.data import CLASS_NAMES, DATASETS, DEFAULT_DATASET

Device = Literal["cpu", "cuda"]


Init = Literal["xavier", "kaiming"]
Optimizer = Literal["sgd", "adam"]


@dataclass(frozen=True)
class TrainSettings:
    lr: float
    epochs: int
    batch_size: int
    train_subset: int | None = None  # None: all 60,000 training images
    device: Device = "cpu"
    seed: int = 0
    init: Init = "xavier"         # d2l's; "kaiming" keeps deep ReLU networks' signal (see init_weights)
    # The modern recipe (the `fast` preset); the defaults are the book's plain SGD at a constant rate.
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0     # on weights only: not on biases or batch norm's scale and shift
    warmup: float = 0.0           # the fraction of all steps over which the rate rises linearly from zero
    cosine: bool = False          # after the warm-up, the rate falls to zero along a half cosine
    label_smoothing: float = 0.0
    augment: bool = False         # random horizontal flips and shifts of up to 2 pixels, on the device
    tta: bool = False             # test-time augmentation: average the predictions of each image and its mirror
    optimizer: Optimizer = "sgd"  # the book's SGD, or Adam (its weight decay decoupled, as AdamW's)
    dataset: str = DEFAULT_DATASET  # Fashion-MNIST, the book's, or the original MNIST digits (explorer.training.data)
    # above 0: the run trains as many of its `epochs` as fit in this many minutes at the pace of its first
    # (planned from its measured step until then), its schedule sized to them (the speedrun's: its time, not
    # its epochs, is the goal)
    minutes: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            ("lr", isinstance(self.lr, (int, float)) and 0 < self.lr <= 100, N_("a number in (0, 100]")),
            ("epochs", _is_int(self.epochs) and 1 <= self.epochs <= 200, N_("a whole number from 1 to 200")),
            ("batch_size", _is_int(self.batch_size) and 2 <= self.batch_size <= 4096,
             N_("a whole number from 2 to 4096")),
            ("train_subset", self.train_subset is None
             or (_is_int(self.train_subset) and 2 <= self.train_subset <= 60_000),
             N_("empty (all images) or a whole number from 2 to 60000")),
            ("device", self.device in ("cpu", "cuda"), N_("cpu or cuda")),
            ("seed", _is_int(self.seed) and 0 <= self.seed < 2**31, N_("a whole number >= 0")),
            ("init", self.init in ("xavier", "kaiming"), N_("xavier or kaiming")),
            ("momentum", _is_number(self.momentum) and 0 <= self.momentum < 1, N_("a number in [0, 1)")),
            ("nesterov", isinstance(self.nesterov, bool) and (not self.nesterov or self.momentum > 0),
             N_("true only with a momentum above 0")),
            ("weight_decay", _is_number(self.weight_decay) and 0 <= self.weight_decay <= 0.1,
             N_("a number in [0, 0.1]")),
            ("warmup", _is_number(self.warmup) and 0 <= self.warmup <= 0.5,
             N_("a fraction of the steps in [0, 0.5]")),
            ("cosine", isinstance(self.cosine, bool), N_("true or false")),
            ("label_smoothing", _is_number(self.label_smoothing) and 0 <= self.label_smoothing <= 0.5,
             N_("a number in [0, 0.5]")),
            ("augment", isinstance(self.augment, bool), N_("true or false")),
            ("tta", isinstance(self.tta, bool), N_("true or false")),
            ("optimizer", self.optimizer in ("sgd", "adam"), N_("sgd or adam")),
            ("momentum", self.optimizer == "sgd" or self.momentum == 0,
             N_("0 with Adam, which keeps its own running averages")),
            ("dataset", self.dataset in DATASETS, N_("fashion-mnist or mnist")),
            ("minutes", _is_number(self.minutes) and (self.minutes == 0 or 0.5 <= self.minutes <= 1440),
             N_("0 (every epoch) or a number of minutes from 0.5 to 1440")),
            ("tta", not self.tta or self.dataset not in DATASETS or DATASETS[self.dataset].mirrors,
             N_("false on MNIST, where a mirrored digit is another digit or none")),
        ]
        for knob, ok, expected in checks:
            if not ok:
                raise ConfigError(knob, "must be {expected}, not {value!r}", expected=expected,
                                  value=getattr(self, knob))
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "minutes", float(self.minutes))


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Preset:
    config: ModelConfig
    settings: TrainSettings
    changes: tuple[str, ...]  # what differs from the book, in words


# quick: about a minute on a 2-core CPU (a lower resolution, narrower layers where plain SGD needs many steps).
# fast: the quick preset's network with a modern recipe, the same pieces for every model; the rate (higher
# with batch norm), epochs and batch size per model, sized for at most 5 minutes on a 2-core CPU, and
# Kaiming init for the deep ReLU networks without batch norm. Each network's changes are in its catalog
# entry (registry.Presets); measured accuracies are in the README.
RECIPE = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "warmup": 0.1, "cosine": True,
          "label_smoothing": 0.1, "augment": True, "tta": True}


Kind = Literal["book", "quick", "fast", "speedrun"]
KINDS: tuple[Kind, ...] = ("book", "quick", "fast", "speedrun")


def kinds(name: str) -> tuple[Kind, ...]:
    """The presets a catalog network has: book, quick and fast, and speedrun for the one network made for it."""
    return KINDS if registry.get(name).presets.speedrun is not None else KINDS[:3]


def check_kind(name: str, kind: str) -> None:
    """A ConfigError unless the catalog network `name` has the preset `kind`."""
    if kind not in kinds(name):
        raise ConfigError("preset", "must be one of {choices} for {name}, not {value!r}",
                          choices=", ".join(kinds(name)), name=name, value=kind)


def preset(name: str, kind: Kind = "book", device: Device = "cpu", config: ModelConfig | None = None,
           dataset: str = DEFAULT_DATASET) -> Preset:
    """The book's settings for a catalog model, or the quick, fast or speedrun variant and what it changed.

    `config` (default: the catalog's) is the network to train; the quick and fast presets change it too, but
    never a knob `config` already changed from the catalog's (an exercise's GoogLeNet at 28x28 stays at 28;
    the CLI's --set is applied after the preset, to the same end). On a `dataset` whose images do not
    mirror (MNIST), the fast recipe's mirrored test pass is left out and its augmentation only shifts.
    """
    entry = registry.get(name)
    config = config or entry.config
    book = TrainSettings(lr=entry.book.lr, epochs=entry.book.epochs, batch_size=entry.book.batch_size,
                         device=device, dataset=dataset)
    if kind == "book":
        return Preset(config, book, ())
    check_kind(name, kind)
    config_changes = {k: v for k, v in entry.presets.network.items() if getattr(config, k) == getattr(entry.config, k)}
    settings_changes = entry.presets.quick
    if kind == "fast":  # the recipe on the quick preset's settings
        settings_changes = {**settings_changes, **RECIPE, **entry.presets.fast}
    elif kind == "speedrun":  # the recipe on the book's settings
        settings_changes = {**RECIPE, **entry.presets.speedrun}
    if "tta" in settings_changes and dataset in DATASETS and not DATASETS[dataset].mirrors:
        settings_changes = {**settings_changes, "tta": False}  # a new dict: the catalog entry's stays as it is
    changes = [f"{key} {_text(getattr(config, key))} -> {_text(value)}" for key, value in config_changes.items()
               if getattr(config, key) != value]
    changes += [f"{key} {_text(getattr(book, key))} -> {_text(value)}" for key, value in settings_changes.items()
                if getattr(book, key) != value]
    return Preset(replace(config, **config_changes), replace(book, **settings_changes), tuple(changes))


def _text(value: object) -> str:
    if value is None:
        return "all"
    return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def check_trainable(config: ModelConfig, settings: TrainSettings) -> None:
    """What a run needs before it starts: the data's shape (MNIST's and Fashion-MNIST's alike), the device,
    and a config that runs."""
    if config.in_channels != 1 or config.num_classes != len(CLASS_NAMES):
        raise ConfigError("in_channels" if config.in_channels != 1 else "num_classes",
                          "Fashion-MNIST and MNIST need in_channels=1 and num_classes=10")
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "CUDA is not available on this machine; use cpu")
    check(config)  # an impossible config is a ConfigError naming the knob, not a torch error mid-run
