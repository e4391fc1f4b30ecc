"""What a network makes of an image: each stage's feature maps, the first layer's kernels, the prediction
and where it looked (saliency), per layer how its ReLUs and batch norms behave over a batch of images (a dead
layer, all zeros, as NiN's last block under plain SGD, is flagged), one convolution unit worked out by hand,
and what a unit can see (its receptive field).

Everything is returned as small arrays: the strongest channels of each stage only, each at most MAP_PIXELS
wide, so a page never ships a 224x224x384 float array to the browser. inside_service runs this in a process
of its own; pictures draws it."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import ConfigError
from explorer.i18n import _, say
from explorer.registry import Tap
from explorer.summary import summarize
from explorer.training.pipeline import prepare

MAP_PIXELS = 56     # a feature map is shrunk to at most this many pixels a side
TOP_CHANNELS = 16   # channels shown per stage, strongest (highest mean activation) first
PART_CHANNELS = 8   # and per part of a block (one of its paths, its skip, what one of its layers adds)
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
class Part:
    """One tensor inside a block, as its catalog entry names it (registry.BlockView.taps): one of its paths,
    its skip, the branch added to it, its output, or the channels one of its layers adds."""

    label: str        # a catalog key, and what it names: said by text()
    values: Mapping[str, object]
    shape: tuple[int, ...]
    maps: np.ndarray  # (k, h, w) in [0, 1], the strongest channels first
    channels: int

    def text(self) -> str:
        return say(self.label, self.values)


@dataclass(frozen=True)
class Block:
    path: str   # as in the summary, e.g. "2.1": the second block of the third stage
    type: str
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Inside:
    stages: list[Stage]
    blocks: list[Block]        # every block of the family's own (registry.BlockView), in order
    kernels: np.ndarray        # (out, kh, kw): the first convolution's kernels, scaled to [0, 1]
    probabilities: np.ndarray  # (classes,)
    saliency: np.ndarray       # (resolution, resolution): |d top score / d input|, scaled to [0, 1]


def trained_model(config: ModelConfig, weights: Path) -> nn.Module:
    """A stored run's network with its trained weights, loaded with weights_only=True."""
    model = registry.build(config)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def look_inside(model: nn.Module, config: ModelConfig, image: torch.Tensor) -> Inside:
    """The views of one image (uint8, 28x28) through `model` in evaluation mode."""
    x = prepare(image.reshape(1, 1, 28, 28), config.resolution, False).requires_grad_(True)
    outputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, out))
             for name, m in model.named_children()]
    blocks = [(path, block, block_taps) for path, block in model.named_modules() if (block_taps := taps(block))]
    tapped: dict[tuple[str, int], torch.Tensor] = {}  # (block, tap's index) -> what it saw
    for path, _block, block_taps in blocks:
        hooks += [tap.hook(lambda t, key=(path, i): tapped.__setitem__(key, t.detach()))
                  for i, tap in enumerate(block_taps)]
    try:
        with _weights_frozen(model):  # only the input's gradient is wanted: skip the weights'
            scores = model.eval()(x)
            top = int(scores.argmax())
            scores[0, top].backward()
    finally:
        for h in hooks:
            h.remove()
    stages = [_stage(name, type(m).__name__, outputs[name][0].detach()) for name, m in model.named_children()
              if name in outputs]
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    kernels = _unit(first_conv.weight.detach()[:, 0]) if first_conv is not None else np.zeros((0, 1, 1))
    return Inside(stages=stages,
                  blocks=[Block(path, type(block).__name__,
                                tuple(_part(tap, tapped[path, i][0]) for i, tap in enumerate(block_taps)))
                          for path, block, block_taps in blocks],
                  kernels=kernels,
                  probabilities=scores.detach().softmax(dim=1)[0].numpy(),
                  saliency=_unit(x.grad.abs()[0, 0]))


@contextlib.contextmanager
def _weights_frozen(model: nn.Module):
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def taps(block: nn.Module) -> list[Tap]:
    """What one of a family's own blocks is shown by, as its catalog entry says; nothing for other modules."""
    view = registry.block_view(block)
    return view.taps(block) if view is not None else []


def _stage(path: str, kind: str, out: torch.Tensor) -> Stage:
    if out.ndim != 3:  # a flattened or linear stage: shown as one row of units
        flat = out.reshape(1, 1, -1)
        return Stage(path, kind, tuple(out.shape), _unit(flat[:, :, :MAP_PIXELS * 4]), 1)
    return Stage(path, kind, tuple(out.shape), _strongest(out, TOP_CHANNELS), out.shape[0])


def _part(tap: Tap, out: torch.Tensor) -> Part:
    return Part(tap.label, tap.values, tuple(out.shape), _strongest(out, PART_CHANNELS), out.shape[0])


def _strongest(out: torch.Tensor, k: int) -> np.ndarray:
    """The k channels of (C, H, W) with the highest mean, each scaled to its own range, at most MAP_PIXELS."""
    maps = out[out.mean(dim=(1, 2)).argsort(descending=True)[:k]]
    if max(maps.shape[-2:]) > MAP_PIXELS:
        maps = F.adaptive_avg_pool2d(maps[None], MAP_PIXELS)[0]
    return _unit(maps, per_map=True)


def _unit(t: torch.Tensor, per_map: bool = False) -> np.ndarray:
    """Scaled to [0, 1] for display: each map by its own range, or the whole tensor by one."""
    t = t.float()
    dims = tuple(range(1, t.ndim)) if per_map else tuple(range(t.ndim))
    low, high = t.amin(dim=dims, keepdim=True), t.amax(dim=dims, keepdim=True)
    return ((t - low) / (high - low).clamp_min(1e-12)).numpy().astype(np.float32)


@torch.no_grad()
def layer_stats(model: nn.Module, config: ModelConfig, images: torch.Tensor) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One pass over a batch of images (uint8, N x 28 x 28) in evaluation mode. First, per ReLU: mean,
    standard deviation and the fraction of zero outputs, `dead` where it is (almost) always zero. Second,
    per batch-norm channel: the moving mean and variance it normalizes with, beside the mean and variance
    of these images' inputs to it (what training mode would have used)."""
    relus: list[dict] = []
    norms: list[pd.DataFrame] = []

    def relu_row(name: str, out: torch.Tensor, part: str = "") -> None:
        relus.append({"layer": name, "part": part, "mean": out.mean().item(), "std": out.std().item(),
                      "zero_fraction": (out == 0).float().mean().item()})

    def norm_rows(name: str, module: nn.Module, x: torch.Tensor) -> None:
        dims = [d for d in range(x.ndim) if d != 1]
        moving_mean, moving_var = _moving_stats(module)
        norms.append(pd.DataFrame({"layer": name, "channel": np.arange(x.shape[1]),
                                   "moving_mean": moving_mean, "batch_mean": x.mean(dim=dims).numpy(),
                                   "moving_var": moving_var, "batch_var": x.var(dim=dims, unbiased=False).numpy()}))

    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.ReLU):
            hooks.append(m.register_forward_hook(lambda m, a, out, name=name: relu_row(name, out)))
        elif _moving_stats(m) is not None:
            hooks.append(m.register_forward_hook(lambda m, a, out, name=name: norm_rows(name, m, a[0])))
        hooks += [tap.hook(functools.partial(relu_row, name, part=tap.label)) for tap in taps(m) if tap.after_relu]
    try:
        model.eval()(prepare(images.reshape(-1, 1, 28, 28), config.resolution, False))
    finally:
        for h in hooks:
            h.remove()
    stats = pd.DataFrame(relus, columns=["layer", "part", "mean", "std", "zero_fraction"])
    stats["dead"] = stats.zero_fraction >= DEAD_FRACTION
    columns = ["layer", "channel", "moving_mean", "batch_mean", "moving_var", "batch_var"]
    return stats, pd.concat(norms, ignore_index=True) if norms else pd.DataFrame(columns=columns)


def relu_name(layer: str, part: str) -> str:
    """A ReLU's name for a reader: its layer, and the part of a block whose output it is (a block that
    applies its ReLU functionally has no module of its own)."""
    return f"{layer} {_(part)}" if part else layer


def relu_table(stats: pd.DataFrame) -> pd.DataFrame:
    """layer_stats' ReLU rows as the page shows them, in the reader's language."""
    return pd.DataFrame({_("layer"): [relu_name(r.layer, r.part) for r in stats.itertuples()],
                         _("mean"): stats["mean"], _("standard deviation"): stats["std"],
                         _("share of zero outputs"): stats.zero_fraction, _("dead"): stats.dead})


def _moving_stats(module: nn.Module) -> tuple[np.ndarray, np.ndarray] | None:
    """A batch-norm layer's moving mean and variance: torch's running_* buffers, or what a family's own norm
    layer keeps (registry.NormView)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
        return module.running_mean.numpy(), module.running_var.numpy()
    if (norm := registry.norm_view(module)) is not None:
        mean, var = norm.moving(module)
        return mean.flatten().numpy(), var.flatten().numpy()
    return None


DEAD_ADVICE = ("A dead layer outputs zero for every image, so nothing after it learns. What usually helps: "
               "Kaiming init (the quick and fast presets of NiN and GoogLeNet), a lower learning rate, a short "
               "warm-up, or batch normalization.")


@dataclass(frozen=True)
class ConvUnit:
    """What one unit of a convolution's output is made of: the patch of its input it sees (zeros where the
    padding is), the kernel of its output channel, their elementwise product, and the sum plus the bias,
    which is the unit's value in the feature map."""

    layer: str
    channel: int
    row: int
    col: int
    in_channels: tuple[int, ...]  # the input channels the kernel reads (one group's, for a grouped convolution)
    patch: np.ndarray             # (len(in_channels), kh, kw)
    kernel: np.ndarray            # (len(in_channels), kh, kw)
    product: np.ndarray           # patch * kernel
    bias: float
    total: float                  # product.sum() + bias
    value: float                  # the feature map's own value at (channel, row, col)
    output_shape: tuple[int, int, int]


def conv_layers(config: ModelConfig) -> list[str]:
    """The paths of a network's convolutions, in order (from its summary: nothing is built)."""
    layers = summarize(config).layers
    return list(layers[(layers.type == "Conv2d") & layers.is_leaf].path)


@torch.no_grad()
def unit_arithmetic(model: nn.Module, config: ModelConfig, image: torch.Tensor, layer: str, channel: int, row: int,
                    col: int) -> ConvUnit:
    """Unit (channel, row, col) of the convolution at `layer` on one image (uint8, 28x28), worked out from its
    input as the convolution itself does it: stride, padding, dilation and groups included."""
    conv = dict(model.named_modules()).get(layer)
    if not isinstance(conv, nn.Conv2d):
        raise ConfigError("layer", "{layer!r} is not a convolution of this network", layer=layer[:40])
    seen: dict[str, torch.Tensor] = {}
    hook = conv.register_forward_hook(lambda m, args, out: seen.update(x=args[0][0], y=out[0]))
    try:
        model.eval()(prepare(image.reshape(1, 1, 28, 28), config.resolution, False))
    finally:
        hook.remove()
    x, y = seen["x"], seen["y"]
    out_c, out_h, out_w = y.shape
    if not (0 <= channel < out_c and 0 <= row < out_h and 0 <= col < out_w):
        raise ConfigError("unit", "must be a channel from 0 to {channels}, a row from 0 to {rows} and a column "
                                  "from 0 to {cols}", channels=out_c - 1, rows=out_h - 1, cols=out_w - 1)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    per_group = conv.in_channels // conv.groups
    group = channel // (conv.out_channels // conv.groups)
    inputs = range(group * per_group, (group + 1) * per_group)
    padded = F.pad(x[inputs.start:inputs.stop], (pw, pw, ph, ph))
    top, left = row * sh, col * sw
    patch = padded[:, top:top + (kh - 1) * dh + 1:dh, left:left + (kw - 1) * dw + 1:dw]
    kernel = conv.weight[channel]
    product = patch * kernel
    bias = float(conv.bias[channel]) if conv.bias is not None else 0.0
    return ConvUnit(layer, channel, row, col, tuple(inputs), patch.numpy(), kernel.numpy(), product.numpy(), bias,
                    float(product.sum()) + bias, float(y[channel, row, col]), (out_c, out_h, out_w))



@dataclass(frozen=True)
class ReceptiveField:
    """What one unit can see, in pixels of the network's input: a `size` x `size` square cut to the image."""

    top: float
    left: float
    bottom: float
    right: float
    size: int

    @property
    def cut(self) -> bool:
        return (self.bottom - self.top, self.right - self.left) != (self.size, self.size)


def receptive_box(config: ModelConfig, path: str, row: int, col: int) -> ReceptiveField:
    """What unit (row, col) of the output of the layer at `path` can see: a square of the summary's
    receptive field, centred where the unit sits on the input, cut to the image."""
    layers = summarize(config).layers
    layer = layers[layers.path == path].iloc[0]
    h, w = layer.output_shape[1:]
    if not (0 <= row < h and 0 <= col < w):
        raise ConfigError("unit", "must be a row from 0 to {rows} and a column from 0 to {cols}", rows=h - 1,
                          cols=w - 1)
    res, field = config.resolution, int(layer.receptive_field)
    cy, cx = (row + 0.5) * res / h, (col + 0.5) * res / w
    return ReceptiveField(max(0.0, cy - field / 2), max(0.0, cx - field / 2), min(res, cy + field / 2),
                          min(res, cx + field / 2), field)
