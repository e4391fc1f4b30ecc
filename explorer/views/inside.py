"""What a network makes of an image: each stage's feature maps, the first layer's kernels, the prediction
and where it looked (saliency), and per layer how its ReLUs behave over a batch of images (a dead layer,
all zeros, as NiN's last block under plain SGD, is flagged).

Everything is computed once per (weights, image) by one forward and one backward pass, and returned as
small arrays: the strongest channels of each stage only, each at most MAP_PIXELS wide, so a page never
ships a 224x224x384 float array to the browser.
"""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn
from torch.nn import functional as F

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import ConfigError
from explorer.i18n import N_, _, say
from explorer.registry import Tap
from explorer.summary import summarize
from explorer.training import processes
from explorer.training.data import CLASS_NAMES, load_fashion_mnist
from explorer.training.loop import new_model
from explorer.training.pipeline import prepare
from explorer.training.runs import memory_budget
from explorer.views.runviews import accuracy, confused_images, preset_of

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


def side_by_side(images: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """uint8 grayscale images in one row, top-aligned on white: a block's parts in one PNG."""
    height = max(i.shape[0] for i in images)
    out = np.full((height, sum(i.shape[1] for i in images) + gap * (len(images) - 1)), 255, dtype=np.uint8)
    x = 0
    for i in images:
        out[:i.shape[0], x:x + i.shape[1]] = i
        x += i.shape[1] + gap
    return out


def stage_grid(stage: Stage) -> np.ndarray:
    """A stage's maps enlarged to about 56 pixels; a flattened stage's units folded into rows of 16."""
    maps = stage.maps
    if maps.shape[1] == 1:
        per_row = min(16, maps.shape[2])
        units = np.zeros(-(-maps.shape[2] // per_row) * per_row, dtype=maps.dtype)
        units[:maps.shape[2]] = maps[0, 0]
        return grid(units.reshape(1, -1, per_row), scale=16)
    return grid(maps, scale=max(1, 56 // max(maps.shape[1:])))


def titled(pixels: np.ndarray, title: str, min_width: int = 200) -> np.ndarray:
    """A grayscale image (uint8) enlarged to at least `min_width` pixels, under its title in black on
    white, wrapped to the image's width: a PNG that says what it shows."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    scale = max(1, -(-min_width // pixels.shape[1]))
    body = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    font = ImageFont.load_default(size=13)
    lines = textwrap.wrap(title, width=max(12, body.shape[1] // 7))
    head = 18 * len(lines) + 6
    out = Image.new("L", (body.shape[1], body.shape[0] + head), 255)
    out.paste(Image.fromarray(body), (0, head))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((2, 3 + 18 * i), line, fill=0, font=font)
    return np.asarray(out)


def kernel_grid(kernels: np.ndarray) -> np.ndarray:
    """The first layer's kernels, 16 to a row, each at least about 64 pixels wide."""
    return grid(kernels, columns=16, scale=max(4, 64 // kernels.shape[-1]))


def part_grid(part: Part) -> np.ndarray:
    """A block part's maps, four to a row, each enlarged to about 64 pixels."""
    return grid(part.maps, columns=4, scale=max(1, 64 // max(part.maps.shape[1:])))


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


MAX_UPLOAD_BYTES = 5 * 2**20
MAX_UPLOAD_PIXELS = 25_000_000  # what a photo needs; a small file can claim far more (a decompression bomb)
PREVIEW_PIXELS = 256            # an upload is decoded at most about this large: the input is 28x28


INVERSIONS = {"automatic": None, "swap": True, "keep": False}  # the page's choices for read_upload's `invert`


@dataclass(frozen=True)
class Upload:
    """A picture made to look like Fashion-MNIST: a light object on a dark ground, cropped to the object,
    padded square and shrunk to 28x28, as the data set's images were made."""

    preview: np.ndarray  # the picture as decoded, grayscale, at most PREVIEW_PIXELS a side
    image: np.ndarray    # the network's 28x28 input, uint8
    inverted: bool       # light and dark were swapped (a dark object drawn on a light ground)


def read_upload(data: bytes, invert: bool | None = None) -> Upload:
    """An uploaded PNG or JPEG as Fashion-MNIST's input. `invert`: swap light and dark, keep them, or
    (None) swap them when the picture's border is light. Anything else, over 5 MB, or claiming more than
    MAX_UPLOAD_PIXELS is refused with a ConfigError that says why; the picture is decoded reduced."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_UPLOAD_BYTES:
        raise ConfigError("image", "the file has {mb:.1f} MB; upload at most {most} MB", mb=len(data) / 2**20,
                          most=MAX_UPLOAD_BYTES // 2**20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            with Image.open(io.BytesIO(data)) as picture:
                if picture.format not in ("PNG", "JPEG"):
                    raise ConfigError("image", "upload a PNG or JPEG image, not {format}",
                                      format=picture.format or N_("this file"))
                if picture.width * picture.height > MAX_UPLOAD_PIXELS:  # checked before any pixel is decoded
                    raise ConfigError("image", "the image claims {width}x{height} pixels; upload one of at most "
                                      "{most} megapixels", width=picture.width, height=picture.height,
                                      most=MAX_UPLOAD_PIXELS // 1_000_000)
                picture.draft("L", (PREVIEW_PIXELS, PREVIEW_PIXELS))  # a JPEG decodes at 1/2, 1/4 or 1/8 scale
                gray = picture.convert("L")
                gray.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS))
    except ConfigError:
        raise
    except Image.DecompressionBombError:  # PIL's own refusal, at open, of a claim of hundreds of megapixels
        raise ConfigError("image", "the image claims more pixels than any photo needs; upload one of at most "
                                   "{most} megapixels", most=MAX_UPLOAD_PIXELS // 1_000_000) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ConfigError("image", "this file is not an image that can be read (upload a PNG or JPEG)") from err
    preview = np.asarray(gray, dtype=np.uint8).copy()
    return fashion_like(preview, invert)


def fashion_like(gray: np.ndarray, invert: bool | None = None) -> Upload:
    """A grayscale picture as Fashion-MNIST draws its items: light on dark (inverted when `invert`, or when
    None and the border is light), the ground at zero, cropped to the object, padded square with a pixel
    of margin, 28x28."""
    from PIL import Image

    a = gray.astype(np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    inverted = bool(np.median(border) > 127) if invert is None else invert
    if inverted:
        a, border = 255 - a, 255 - border
    ground = float(np.median(border))
    a = np.clip(a - ground, 0, None)
    rows, cols = np.nonzero(a > 0.2 * a.max()) if a.max() > 0 else ((), ())
    if len(rows):
        a = a[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    side = max(a.shape)
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - a.shape[0]) // 2, (side - a.shape[1]) // 2
    square[top:top + a.shape[0], left:left + a.shape[1]] = a
    square *= 255 / max(float(square.max()), 1e-6)
    small = Image.fromarray(square.round().astype(np.uint8)).resize((26, 26), Image.Resampling.LANCZOS)
    image = np.zeros((28, 28), dtype=np.uint8)
    image[1:27, 1:27] = np.asarray(small)
    return Upload(gray, image, inverted)


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
        return Look(subject, registry.get(subject).config, None, manager.data_dir, image, invert)
    if (record := manager.store.get(subject)) is not None:
        return Look(record.model, registry.config_from(record.model, record.config), manager.weights_path(subject),
                    manager.data_dir, image, invert)
    raise ConfigError("run", "{subject!r} is neither a run in this run store nor a catalog network",
                      subject=subject[:40])


INSIDE_SECONDS = 120.0  # a view still computing after this long is refused: VGG-11 at 224 px takes about 5 s


@dataclass(frozen=True)
class Look:
    """One view, as the Inside process is asked for it: the network, its weights file (None: fresh, seeded
    Xavier weights), where the data is, the image and how to read an upload."""

    name: str
    config: ModelConfig
    weights: Path | None
    data_dir: str | None
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


@functools.cache
def _service(max_bytes: int) -> processes.Service:
    return processes.Service(_answer, "inside", N_("Looking inside this network"), INSIDE_SECONDS, max_bytes)


def busy() -> bool:
    """Whether a view is being computed now (a new one waits for it): the page says so while it waits."""
    return _service(memory_budget("cpu")).busy()


@functools.lru_cache(maxsize=16)
def _view(look: Look) -> View:
    return _service(memory_budget("cpu")).ask(look)


@functools.lru_cache(maxsize=64)
def _worked_out(request: UnitLook) -> ConvUnit:
    return _service(memory_budget("cpu")).ask(request)


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
    data = load_fashion_mnist(look.data_dir)
    if not 0 <= look.image < len(data.test_labels):
        raise ConfigError("image", "must be a test image index from 0 to {last}", last=len(data.test_labels) - 1)
    return data.test_images[look.image], int(data.test_labels[look.image]), None


def _compute(look: Look) -> View:
    """One view, in the Inside process."""
    picture, label, upload = _picture(look)
    model = _model(look)
    data = load_fashion_mnist(look.data_dir)
    n = max(4, min(STATS_IMAGES, int(STATS_MULT_ADDS // max(1, summarize(look.config).totals.mult_adds))))
    return View(look.name, look.config, picture.numpy(), label, look_inside(model, look.config, picture),
                *layer_stats(model, look.config, data.test_images[:n]), n, upload)


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


def mistakes(manager, subject: str, per_pair: int = 3) -> pd.DataFrame:
    """Test images a run got wrong (image, true, predicted), its most confused (true, predicted) pairs
    first; empty for a catalog network or a run without stored predictions."""
    record = None if subject in registry.list_models() else manager.store.get(subject)
    rows = []
    if record is not None:
        data = load_fashion_mnist(manager.data_dir)
        rows = [(i, CLASS_NAMES[t], CLASS_NAMES[p]) for i, t, p in confused_images(record, data, per_pair, pairs=8)]
    return pd.DataFrame(rows, columns=["image", "true", "predicted"])


def describe_subject(manager, subject: str) -> str:
    """What a view shows, in words, for the page's main area and the CLI: a run by its name, network,
    preset, accuracy and id, or a catalog network with fresh, untrained weights."""
    if subject in registry.list_models():
        return _("{name} with fresh Xavier weights, untrained: its predictions are guesses").format(name=subject)
    r = manager.store.get(subject)
    named = f"{r.name}: " if r.name else ""
    return named + _("{model} trained with the {preset} preset ({status}, best test accuracy {best}), "
                     "run {run}").format(model=r.model, preset=preset_of(r), status=_(r.status),
                                         best=accuracy(r.best_test_acc), run=r.id)


def images_of_class(manager, label: int) -> list[int]:
    """Indices of the test images of one class, in order."""
    data = load_fashion_mnist(manager.data_dir)
    return torch.nonzero(data.test_labels == label).flatten().tolist()


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


def draw_box(image: np.ndarray, box: ReceptiveField, resolution: int, size: int = 224) -> np.ndarray:
    """The 28x28 image enlarged to `size` pixels (RGB), with `box` (in pixels of the network's input at
    `resolution`) drawn in orange, two pixels wide."""
    scale = size / 28
    out = np.repeat(image.repeat(round(scale), axis=0).repeat(round(scale), axis=1)[..., None], 3, axis=2)
    top, left, bottom, right = (round(v * out.shape[0] / resolution) for v in (box.top, box.left, box.bottom,
                                                                                 box.right))
    bottom, right = max(bottom, top + 1), max(right, left + 1)
    orange = np.array([255, 140, 0], dtype=np.uint8)
    for rows, cols in (((top, top + 2), (left, right)), ((bottom - 2, bottom), (left, right)),
                       ((top, bottom), (left, left + 2)), ((top, bottom), (right - 2, right))):
        out[max(0, rows[0]):rows[1], max(0, cols[0]):cols[1]] = orange
    return out


def prediction_chart(probabilities: np.ndarray, label: int, height: int = 300) -> go.Figure:
    """Class probabilities as horizontal bars, the true class marked, for a projector."""
    names = [_("{item} (true)").format(item=_(name)) if i == label else _(name) for i, name in enumerate(CLASS_NAMES)]
    fig = go.Figure(go.Bar(x=probabilities, y=names, orientation="h",
                           marker_color=["#2a9d8f" if i == label else "#457b9d" for i in range(len(names))]))
    fig.update_layout(title=_("Prediction"), height=height, margin={"l": 10, "r": 10, "t": 40, "b": 30},
                      xaxis={"range": [0, 1], "title": _("probability")},
                      yaxis={"autorange": "reversed", "dtick": 1})  # every class named, in presentation mode too
    return fig


def batchnorm_chart(batchnorm: pd.DataFrame, images: int, height: int = 360) -> go.Figure:
    """Each batch-norm channel's moving mean (variance) against the mean (variance) of these images'
    inputs to it: on the diagonal, evaluation normalizes these images as training would have."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(_("mean"), _("variance")), horizontal_spacing=0.12)
    layers = list(dict.fromkeys(batchnorm.layer))
    depth = batchnorm.layer.map({name: i for i, name in enumerate(layers)})
    for col, stat in ((1, "mean"), (2, "var")):
        x, y = batchnorm[f"moving_{stat}"], batchnorm[f"batch_{stat}"]
        fig.add_scatter(x=x, y=y, mode="markers", row=1, col=col, showlegend=False,
                        marker={"size": 6, "color": depth, "colorscale": "Viridis", "cmin": 0,
                                "cmax": max(1, len(layers) - 1),
                                "colorbar": {"title": _("layer"), "tickvals": [0, len(layers) - 1],
                                             "ticktext": [_("first"), _("last")]} if col == 2 else None},
                        text=batchnorm.layer + " " + _("channel") + " " + batchnorm.channel.astype(str),
                        hovertemplate=_("%{text}<br>moving %{x:.3g}<br>batch %{y:.3g}") + "<extra></extra>")
        low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        fig.add_scatter(x=[low, high], y=[low, high], mode="lines", row=1, col=col, showlegend=False,
                        line={"color": "#999", "dash": "dot"}, hoverinfo="skip")
        fig.update_xaxes(title_text=_("moving {stat} (used in evaluation)").format(stat=_(stat)), row=1, col=col)
        fig.update_yaxes(title_text=_("batch {stat} of {images} test images").format(stat=_(stat), images=images),
                         row=1, col=col)
    fig.update_layout(title=_("Batch norm: moving statistics against these images' statistics"), height=height,
                      margin={"l": 10, "r": 10, "t": 70, "b": 30})
    return fig


def unit_chart(feature_map: np.ndarray, unit: tuple[int, int], height: int = 300) -> go.Figure:
    """A feature map (h, w) as a heatmap with the picked unit ringed. Every unit carries an invisible marker
    because Plotly reports clicks on markers, not on heatmap cells; a click selects that unit."""
    h, w = feature_map.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    fig = go.Figure(go.Heatmap(z=feature_map, colorscale="gray", showscale=False, hoverinfo="skip"))
    fig.add_scatter(x=cols, y=rows, mode="markers", marker={"size": max(4, 240 // max(h, w)), "opacity": 0},
                    hovertemplate="row %{y}, column %{x}<extra></extra>", showlegend=False)
    fig.add_scatter(x=[unit[1]], y=[unit[0]], mode="markers", showlegend=False, hoverinfo="skip",
                    marker={"size": max(8, 240 // max(h, w)), "symbol": "square-open", "color": "#ff8c00",
                            "line": {"width": 3}})
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10}, clickmode="event+select",
                      xaxis={"visible": False, "constrain": "domain"},
                      yaxis={"visible": False, "autorange": "reversed", "scaleanchor": "x"})
    return fig


def unit_chart_parts(unit: ConvUnit, input_channel: int, height: int = 300) -> go.Figure:
    """One input channel of a unit's arithmetic: the patch it sees, the kernel, and their product, side by
    side, each value written in its cell when the kernel is small enough to read."""
    from plotly.subplots import make_subplots

    i = unit.in_channels.index(input_channel)
    parts = ((_("input patch"), unit.patch[i]), (_("kernel"), unit.kernel[i]), (_("patch × kernel"), unit.product[i]))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for title, _values in parts], horizontal_spacing=0.06)
    readable = unit.kernel.shape[-1] <= 7
    for col, (_title, values) in enumerate(parts, start=1):
        fig.add_heatmap(z=values, row=1, col=col, colorscale="RdBu", zmid=0, showscale=False,
                        text=np.round(values, 2) if readable else None,
                        texttemplate="%{text}" if readable else None, hovertemplate="%{z:.4f}<extra></extra>")
        fig.update_yaxes(autorange="reversed", visible=False, scaleanchor=f"x{col}", row=1, col=col)
        fig.update_xaxes(visible=False, row=1, col=col)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig
