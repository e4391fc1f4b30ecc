"""What a network makes of an image: each stage's feature maps, the first layer's kernels, the prediction
and where it looked (saliency), and per layer how its ReLUs behave over a batch of images (a dead layer,
all zeros, as NiN's last block under plain SGD, is flagged).

Everything is computed once per (weights, image) by one forward and one backward pass, and returned as
small arrays: the strongest channels of each stage only, each at most MAP_PIXELS wide, so a page never
ships a 224x224x384 float array to the browser.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn
from torch.nn import functional as F

from explorer import registry
from explorer.config import ModelConfig
from explorer.data import CLASS_NAMES, load_fashion_mnist
from explorer.errors import ConfigError
from explorer.summary import summarize
from explorer.train import new_model, prepare

MAP_PIXELS = 56     # a feature map is shrunk to at most this many pixels a side
TOP_CHANNELS = 16   # channels shown per stage, strongest (highest mean activation) first
DEAD_FRACTION = 0.99  # a ReLU layer whose outputs are this often zero is dead


@dataclass(frozen=True)
class Stage:
    """One top-level stage of the network (a row of depth 1 in the summary) on one image."""

    path: str
    type: str
    shape: tuple[int, ...]  # its output (channels, height, width) or (features,)
    maps: np.ndarray        # (k, h, w) in [0, 1]: the k strongest channels, each scaled to its own range
    channels: int           # all channels of the output; len(maps) of them are shown


@dataclass(frozen=True)
class Inside:
    stages: list[Stage]
    kernels: np.ndarray        # (out, kh, kw): the first convolution's kernels, scaled to [0, 1]
    probabilities: np.ndarray  # (classes,)
    saliency: np.ndarray       # (resolution, resolution): |d top score / d input|, scaled to [0, 1]


def trained_model(config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    model = registry.build(config)
    model.load_state_dict(state_dict)
    return model.eval()


def run_model(manager, run_id: str, visitor) -> tuple[str, ModelConfig, nn.Module]:
    """A stored run's network with its trained weights (loaded with weights_only=True); only its owner's
    or an admin's. A ConfigError says why not: not yours, or no saved weights."""
    record = manager.store.get(run_id)
    config = registry.config_from(record.model, record.config)
    return record.model, config, trained_model(config, manager.load_weights(run_id, visitor))


def look_inside(model: nn.Module, config: ModelConfig, image: torch.Tensor) -> Inside:
    """The views of one image (uint8, 28x28) through `model` in evaluation mode."""
    x = prepare(image.reshape(1, 1, 28, 28), config.resolution, False).requires_grad_(True)
    outputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, out))
             for name, m in model.named_children()]
    try:
        scores = model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    top = int(scores.argmax())
    scores[0, top].backward()
    stages = [_stage(name, type(m).__name__, outputs[name][0].detach()) for name, m in model.named_children()
              if name in outputs]
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    kernels = _unit(first_conv.weight.detach()[:, 0]) if first_conv is not None else np.zeros((0, 1, 1))
    return Inside(stages=stages, kernels=kernels,
                  probabilities=scores.detach().softmax(dim=1)[0].numpy(),
                  saliency=_unit(x.grad.abs()[0, 0]))


def _stage(path: str, kind: str, out: torch.Tensor) -> Stage:
    if out.ndim != 3:  # a flattened or linear stage: shown as one row of units
        flat = out.reshape(1, 1, -1)
        return Stage(path, kind, tuple(out.shape), _unit(flat[:, :, :MAP_PIXELS * 4]), 1)
    strongest = out.mean(dim=(1, 2)).argsort(descending=True)[:TOP_CHANNELS]
    maps = out[strongest]
    if max(maps.shape[-2:]) > MAP_PIXELS:
        maps = F.adaptive_avg_pool2d(maps[None], MAP_PIXELS)[0]
    return Stage(path, kind, tuple(out.shape), _unit(maps, per_map=True), out.shape[0])


def _unit(t: torch.Tensor, per_map: bool = False) -> np.ndarray:
    """Scaled to [0, 1] for display: each map by its own range, or the whole tensor by one."""
    t = t.float()
    dims = tuple(range(1, t.ndim)) if per_map else tuple(range(t.ndim))
    low, high = t.amin(dim=dims, keepdim=True), t.amax(dim=dims, keepdim=True)
    return ((t - low) / (high - low).clamp_min(1e-12)).numpy().astype(np.float32)


@torch.no_grad()
def activation_stats(model: nn.Module, config: ModelConfig, images: torch.Tensor) -> pd.DataFrame:
    """Per ReLU layer over a batch of images (uint8, N x 28 x 28): mean, standard deviation and the
    fraction of zero outputs; `dead` where it is (almost) always zero."""
    rows: list[dict] = []
    hooks = [m.register_forward_hook(lambda m, a, out, name=name: rows.append(
        {"layer": name, "mean": out.mean().item(), "std": out.std().item(),
         "zero_fraction": (out == 0).float().mean().item()}))
        for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
    try:
        model.eval()(prepare(images.reshape(-1, 1, 28, 28), config.resolution, False))
    finally:
        for h in hooks:
            h.remove()
    stats = pd.DataFrame(rows, columns=["layer", "mean", "std", "zero_fraction"])
    stats["dead"] = stats.zero_fraction >= DEAD_FRACTION
    return stats


DEAD_ADVICE = ("A dead layer outputs zero for every image, so nothing after it learns. What usually helps: "
               "a lower learning rate, a short warm-up, batch normalization, or the fast preset's momentum "
               "with a schedule.")


def grid(maps: np.ndarray, columns: int = 8, scale: int = 1, gap: int = 1) -> np.ndarray:
    """Maps (k, h, w) in [0, 1] tiled into one uint8 grayscale image, `scale` pixels per value, for PNG
    files and the page (a browser draws one small image, not k arrays)."""
    k, h, w = maps.shape
    columns = max(1, min(columns, k))
    rows = -(-k // columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), 255, dtype=np.uint8)
    for i, m in enumerate(maps):
        r, c = divmod(i, columns)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = (m * 255).round().astype(np.uint8)
    return out.repeat(scale, axis=0).repeat(scale, axis=1)


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
    stats: pd.DataFrame  # activation_stats over the first `stats_images` test images
    stats_images: int


MAX_UPLOAD_BYTES = 5 * 2**20


def read_upload(data: bytes) -> torch.Tensor:
    """An uploaded PNG or JPEG as Fashion-MNIST's input: 28x28 grayscale uint8 (resized, not cropped).
    Anything else, or over 5 MB, is refused with a ConfigError that says why."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_UPLOAD_BYTES:
        raise ConfigError("image", f"the file has {len(data) / 2**20:.1f} MB; upload at most 5 MB")
    try:
        with Image.open(io.BytesIO(data)) as picture:
            if picture.format not in ("PNG", "JPEG"):
                raise ConfigError("image", f"upload a PNG or JPEG image, not {picture.format or 'this file'}")
            if picture.width * picture.height > 50_000_000:  # a small file can claim a huge image
                raise ConfigError("image", "the image is too large; upload one under 50 megapixels")
            small = picture.convert("L").resize((28, 28), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ConfigError("image", "this file is not an image that can be read (upload a PNG or JPEG)") from err
    return torch.from_numpy(np.asarray(small, dtype=np.uint8).copy())


def view(manager, subject: str, image: int | bytes, visitor) -> View:
    """The views of test image `image` (an index), or of an uploaded PNG or JPEG (its bytes), through a
    stored run (`subject` a run id, the visitor's own or an admin's) or a catalog network with fresh
    weights (`subject` a catalog name). Computed once per (run store, subject, image) and cached; the
    owner check comes first, every time."""
    if subject not in registry.list_models():
        if manager.store.get(subject) is None:
            raise ConfigError("run", f"{subject[:40]!r} is neither a run in this run store nor a catalog network")
        if not manager.may_act(subject, visitor):
            raise ConfigError("run", "you can look inside your own runs, or any catalog network with fresh "
                                     "weights")
    return _view(manager, subject, image, visitor)


@functools.lru_cache(maxsize=16)
def _view(manager, subject: str, image: int | bytes, visitor) -> View:
    data = load_fashion_mnist(manager.data_dir)
    if isinstance(image, bytes):
        picture, label = read_upload(image), -1  # an upload has no true class
    elif 0 <= image < len(data.test_labels):
        picture, label = data.test_images[image], int(data.test_labels[image])
    else:
        raise ConfigError("image", f"must be a test image index from 0 to {len(data.test_labels) - 1}")
    if subject in registry.list_models():
        name, config = subject, registry.get(subject).config
        model = new_model(config)
    else:
        name, config, model = run_model(manager, subject, visitor)
    n = max(4, min(STATS_IMAGES, int(STATS_MULT_ADDS // max(1, summarize(config).totals.mult_adds))))
    return View(name, config, picture.numpy(), label, look_inside(model, config, picture),
                activation_stats(model, config, data.test_images[:n]), n)


def prediction_chart(probabilities: np.ndarray, label: int, height: int = 260) -> go.Figure:
    """Class probabilities as horizontal bars, the true class marked, for a projector."""
    names = [f"{name} (true)" if i == label else name for i, name in enumerate(CLASS_NAMES)]
    fig = go.Figure(go.Bar(x=probabilities, y=names, orientation="h",
                           marker_color=["#2a9d8f" if i == label else "#457b9d" for i in range(len(names))]))
    fig.update_layout(title="Prediction", height=height, margin={"l": 10, "r": 10, "t": 40, "b": 30},
                      xaxis={"range": [0, 1], "title": "probability"}, yaxis={"autorange": "reversed"})
    return fig
