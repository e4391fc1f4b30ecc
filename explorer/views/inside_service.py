"""The Inside views, computed in a child process of their own (the server's pages never wait on a forward
pass), one at a time, within the server's memory budget, and cached; and what a view says about its subject."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import ConfigError
from explorer.i18n import N_, _
from explorer.summary import summarize
from explorer.training import processes
from explorer.training.admission import memory_budget
from explorer.training.data import DEFAULT_DATASET, class_names, load_data
from explorer.training.loop import new_model
from explorer.views.inside import ConvUnit, Inside, layer_stats, look_inside, trained_model, unit_arithmetic
from explorer.views.runviews import accuracy, confused_images, preset_of
from explorer.views.uploads import Upload, read_upload

STATS_IMAGES = 64          # test images the activation statistics are taken over, at most
STATS_MULT_ADDS = 1e10     # and at most this much work: VGG-11 at 224 gets 4 images, about 1 s on 2 cores


@dataclass(frozen=True)
class View:
    """Everything the Inside page and `inspect` show for one (network, image)."""

    name: str
    config: ModelConfig
    image: np.ndarray    # the 28x28 input, uint8
    label: int           # its true class; -1 for an upload
    inside: Inside
    stats: pd.DataFrame      # per ReLU, over the first `stats_images` test images (layer_stats)
    batchnorm: pd.DataFrame  # per batch-norm channel: moving against batch statistics, the same images
    stats_images: int
    upload: Upload | None = None  # how an uploaded picture was made into the input



def view(manager, subject: str, image: int | bytes, invert: bool | None = None) -> View:
    """The views of test image `image` (an index), or of an uploaded PNG or JPEG (its bytes, inverted as
    `invert` says: see read_upload), through a stored run (`subject` a run id: its link is a read-only view
    for whoever has it) or a catalog network with fresh weights (`subject` a catalog name).

    Computed in a process of its own (the server's pages never wait on a network's forward pass), one view
    at a time, within the server's memory budget and INSIDE_SECONDS; cached per (run manager, subject,
    image). A QuotaError says which limit a view broke."""
    return _view(_look(manager, subject, image, invert))


def conv_unit(manager, subject: str, image: int | bytes, invert: bool | None, layer: str, channel: int, row: int,
              col: int) -> ConvUnit:
    """One unit of a convolution's output worked out by hand (see unit_arithmetic), for the same subjects and
    images as `view`, in the same process."""
    return _worked_out(UnitLook(_look(manager, subject, image, invert), layer, channel, row, col))


def _look(manager, subject: str, image: int | bytes, invert: bool | None) -> Look:
    if subject in registry.list_models():
        return Look(subject, registry.get(subject).config, None, manager.data_of(), DEFAULT_DATASET, image, invert)
    if (record := manager.store.get(subject)) is not None:
        return Look(record.model, registry.config_from(record.model, record.config), manager.kept.weights_path(subject),
                    manager.data_of(record.dataset), record.dataset, image, invert)
    raise ConfigError("run", "{subject!r} is neither a run in this run store nor a catalog network",
                      subject=subject[:40])


INSIDE_SECONDS = 120.0  # a view still computing after this long is refused: VGG-11 at 224 px takes about 5 s


@dataclass(frozen=True)
class Look:
    """One view, as the Inside process is asked for it: the network, its weights file (None: fresh, seeded
    Xavier weights), where the data is and which (a run's test images are of the data set it trained on),
    the image and how to read an upload."""

    name: str
    config: ModelConfig
    weights: Path | None
    data_dir: str | None
    dataset: str
    image: int | bytes
    invert: bool | None


@dataclass(frozen=True)
class UnitLook:
    """One convolution unit worked out by hand, as the Inside process is asked for it."""

    look: Look
    layer: str
    channel: int
    row: int
    col: int


def _ask(request: Look | UnitLook) -> View | ConvUnit:
    """The Inside process's answer, within the memory budget as the environment sets it now."""
    SERVICE.max_bytes = memory_budget("cpu")
    return SERVICE.ask(request)


def busy() -> bool:
    """Whether a view is being computed now (a new one waits for it): the page says so while it waits."""
    return SERVICE.busy()


@functools.lru_cache(maxsize=16)
def _view(look: Look) -> View:
    return _ask(look)


@functools.lru_cache(maxsize=64)
def _worked_out(request: UnitLook) -> ConvUnit:
    return _ask(request)


@functools.lru_cache(maxsize=2)
def _fresh(name: str) -> nn.Module:
    """A catalog network with fresh, seeded Xavier weights, built once in the Inside process and shared by
    every view of it."""
    return new_model(registry.get(name).config)


def _answer(request: Look | UnitLook) -> View | ConvUnit:
    """The Inside process's work: a view, or one unit worked out."""
    if isinstance(request, UnitLook):
        picture, _label, _upload = _picture(request.look)
        return unit_arithmetic(_model(request.look), request.look.config, picture, request.layer, request.channel,
                               request.row, request.col)
    return _compute(request)


def _model(look: Look) -> nn.Module:
    return _fresh(look.name) if look.weights is None else trained_model(look.config, look.weights)


def _picture(look: Look) -> tuple[torch.Tensor, int, Upload | None]:
    """The 28x28 input of a view, its true class (-1 for an upload) and how an upload was read."""
    if isinstance(look.image, bytes):
        upload = read_upload(look.image, look.invert)
        return torch.from_numpy(upload.image), -1, upload
    data = load_data(look.data_dir, look.dataset)
    if not 0 <= look.image < len(data.test_labels):
        raise ConfigError("image", "must be a test image index from 0 to {last}", last=len(data.test_labels) - 1)
    return data.test_images[look.image], int(data.test_labels[look.image]), None


def _compute(look: Look) -> View:
    """One view, in the Inside process."""
    picture, label, upload = _picture(look)
    model = _model(look)
    data = load_data(look.data_dir, look.dataset)
    n = max(4, min(STATS_IMAGES, int(STATS_MULT_ADDS // max(1, summarize(look.config).totals.mult_adds))))
    return View(look.name, look.config, picture.numpy(), label, look_inside(model, look.config, picture),
                *layer_stats(model, look.config, data.test_images[:n]), n, upload)


# One process answers every view (started on the first, kept so that what it caches survives); its memory
# budget is set from the environment at each request.
SERVICE = processes.Service(_answer, "inside", N_("Looking inside this network"), INSIDE_SECONDS, 0)


def mistakes(manager, subject: str, per_pair: int = 3) -> pd.DataFrame:
    """Test images a run got wrong (image, true, predicted), its most confused (true, predicted) pairs
    first; empty for a catalog network or a run without stored predictions."""
    record = None if subject in registry.list_models() else manager.store.get(subject)
    rows = []
    if record is not None:
        data, names = load_data(manager.data_of(record.dataset), record.dataset), class_names(record.dataset)
        rows = [(i, names[t], names[p]) for i, t, p in confused_images(record, data, per_pair, pairs=8)]
    return pd.DataFrame(rows, columns=["image", "true", "predicted"])


def describe_subject(manager, subject: str) -> str:
    """What a view shows, in words, for the page's main area and the CLI: a run by its name, network,
    preset, accuracy and id, or a catalog network with fresh, untrained weights."""
    if subject in registry.list_models():
        return _("{name} with fresh Xavier weights, untrained: its predictions are guesses").format(name=subject)
    r = manager.store.get(subject)
    named = f"{r.name}: " if r.name else ""
    said = (_("{model} trained with the {preset} preset ({status}, best test accuracy {best}), run {run}")
            if r.dataset == DEFAULT_DATASET else
            _("{model} trained on MNIST with the {preset} preset ({status}, best test accuracy {best}), run {run}"))
    return named + said.format(model=r.model, preset=preset_of(r), status=_(r.status), best=accuracy(r.best_test_acc),
                               run=r.id)


def dataset_of(manager, subject: str) -> str:
    """The data set a view's test images come from: a run's own, else Fashion-MNIST."""
    record = None if subject in registry.list_models() else manager.store.get(subject)
    return DEFAULT_DATASET if record is None else record.dataset


def images_of_class(manager, label: int, dataset: str = DEFAULT_DATASET) -> list[int]:
    """Indices of the test images of one class, in order."""
    data = load_data(manager.data_of(dataset), dataset)
    return torch.nonzero(data.test_labels == label).flatten().tolist()
