"""GoogLeNet (d2l 7.4): Inception blocks run four paths in parallel and concatenate them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from explorer.config import ModelConfig, knob
from explorer.i18n import N_
from explorer.models.layers import norm_after
from explorer.registry import BlockView, BookSettings, ModelEntry, Presets, Tap, register


class Inception(nn.Module):
    """c1..c4 are the output channels of the four paths (c2 and c3 are (reduce, out) pairs). GoogLeNet's
    successors, the exercise: `norm` puts a batch norm after every convolution (Inception-v2), `factorize`
    replaces path 3's 5x5 convolution by two 3x3 ones (Inception-v3), `residual` adds the block's input to
    its concatenated paths (Inception-ResNet; through a 1x1 convolution where the channels differ)."""

    def __init__(self, in_channels, c1, c2, c3, c4, norm="none", factorize=False, residual=False):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        if factorize:
            self.p3_2 = nn.Conv2d(c3[0], c3[0], kernel_size=3, padding=1)  # the first keeps the reduced width
            self.p3_3 = nn.Conv2d(c3[0], c3[1], kernel_size=3, padding=1)
        else:
            self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
            self.p3_3 = None
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
        out_channels = c1 + c2[1] + c3[1] + c4
        self.residual = residual
        self.shortcut = (nn.Conv2d(in_channels, out_channels, kernel_size=1)
                         if residual and in_channels != out_channels else None)
        convs = {name: m for name, m in self.named_children() if isinstance(m, nn.Conv2d) and name != "shortcut"}
        self.norms = (nn.ModuleDict({name: nn.BatchNorm2d(m.out_channels) for name, m in convs.items()})
                      if norm == "builtin" else None)

    def act(self, name, y):
        """ReLU of a convolution's output, normalized first where the block has batch norms."""
        return F.relu(self.norms[name](y) if self.norms is not None else y)

    def forward(self, x):
        p1 = self.act("p1_1", self.p1_1(x))
        p2 = self.act("p2_2", self.p2_2(self.act("p2_1", self.p2_1(x))))
        p3 = self.act("p3_2", self.p3_2(self.act("p3_1", self.p3_1(x))))
        if self.p3_3 is not None:
            p3 = self.act("p3_3", self.p3_3(p3))
        p4 = self.act("p4_2", self.p4_2(self.p4_1(x)))
        y = torch.cat((p1, p2, p3, p4), dim=1)
        if self.residual:
            return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))
        return y


def googlenet(width, norm, factorize, residual, stem, resolution, in_channels, num_classes):
    """The book's stages b1..b5; `width` scales every channel count (1.0 is the book's network). `stem`
    "small" starts with a 3x3 convolution of stride 1 and no pool, for 28x28 images."""
    def w(c):
        return max(1, round(c * width))

    def inception(in_c, c1, c2, c3, c4):
        block = Inception(in_c, w(c1), (w(c2[0]), w(c2[1])), (w(c3[0]), w(c3[1])), w(c4), norm, factorize, residual)
        return block, w(c1) + w(c2[1]) + w(c3[1]) + w(c4)

    def stage(in_c, specs):
        blocks = []
        for spec in specs:
            block, in_c = inception(in_c, *spec)
            blocks.append(block)
        return blocks, in_c

    if stem == "small":
        b1 = nn.Sequential(nn.Conv2d(in_channels, w(64), kernel_size=3, padding=1), *norm_after(norm, w(64)),
                           nn.ReLU())
    else:
        b1 = nn.Sequential(nn.Conv2d(in_channels, w(64), kernel_size=7, stride=2, padding=3),
                           *norm_after(norm, w(64)), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(nn.Conv2d(w(64), w(64), kernel_size=1), *norm_after(norm, w(64)), nn.ReLU(),
                       nn.Conv2d(w(64), w(192), kernel_size=3, padding=1), *norm_after(norm, w(192)), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    blocks3, c = stage(w(192), [(64, (96, 128), (16, 32), 32), (128, (128, 192), (32, 96), 64)])
    b3 = nn.Sequential(*blocks3, nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    blocks4, c = stage(c, [(192, (96, 208), (16, 48), 64), (160, (112, 224), (24, 64), 64),
                           (128, (128, 256), (24, 64), 64), (112, (144, 288), (32, 64), 64),
                           (256, (160, 320), (32, 128), 128)])
    b4 = nn.Sequential(*blocks4, nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    blocks5, c = stage(c, [(256, (160, 320), (32, 128), 128), (384, (192, 384), (48, 128), 128)])
    b5 = nn.Sequential(*blocks5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    return nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(c, num_classes))


@dataclass(frozen=True)
class GoogLeNetConfig(ModelConfig):
    width: float = knob(1.0, lo=0.05, hi=4.0, help="multiplies every channel count (1.0 = the book)")
    norm: Literal["none", "builtin"] = knob("none", help="a batch norm after every convolution, in the Inception "
                                                         "blocks too (the book has none), or none")
    factorize: bool = knob(False, help="path 3 of each Inception block: two 3x3 convolutions in place of the 5x5 "
                                       "(the same field of view, fewer weights)")
    residual: bool = knob(False, help="each Inception block adds its input to its concatenated paths "
                                      "(Inception-ResNet; a 1x1 convolution where the channels differ)")
    stem: Literal["book", "small"] = knob("book", help="the book's 7x7 stride-2 convolution and pool, or a 3x3 "
                                                       "convolution of stride 1 without the pool, for 28x28 images")
    resolution: int = knob(96, lo=8, hi=1024, help="input height and width in pixels")


def _lines(leaves, chain) -> tuple[str, ...]:
    """One line of the four paths' kernels ("1x1 | 1x1→3x3 | 1x1→5x5 | pool→1x1"), then the concatenation."""
    paths = []
    for p in ("p1", "p2", "p3", "p4"):
        path = [leaf for leaf in leaves if leaf.path.rsplit(".", 1)[-1].startswith(p + "_")
                and not leaf.type.startswith("BatchNorm")]
        paths.append("→".join((leaf.kernel or "") if leaf.type == "Conv2d" else "pool" for leaf in path))
    normed = any(leaf.type.startswith("BatchNorm") for leaf in leaves)
    projected = any(leaf.path.endswith("shortcut") for leaf in leaves)  # a residual block whose channels change
    return " | ".join(paths), "4 paths → concat" + (" · BN" if normed else "") + (" + 1x1 conv" if projected else "")


def _taps(block: Inception) -> list[Tap]:
    def end(name: str) -> nn.Module:  # what the path's ReLU is applied to
        return block.norms[name] if block.norms is not None else getattr(block, name)

    return [Tap(N_("path 1: 1x1 convolution"), end("p1_1"), relu=True, after_relu=True),
            Tap(N_("path 2: 1x1 then 3x3 convolution"), end("p2_2"), relu=True, after_relu=True),
            Tap(N_("path 3: 1x1 then 5x5 convolution") if block.p3_3 is None
                else N_("path 3: 1x1 then two 3x3 convolutions"), end("p3_2" if block.p3_3 is None else "p3_3"),
                relu=True, after_relu=True),
            Tap(N_("path 4: 3x3 max pool then 1x1 convolution"), end("p4_2"), relu=True, after_relu=True)]


register(ModelEntry("googlenet", "GoogLeNet", "GoogLeNet: nine Inception blocks of parallel paths", "7.4",
                    GoogLeNetConfig(), googlenet, BookSettings(lr=0.1, batch_size=128),
                    # with Xavier init its deep ReLU stacks pass little signal and it learns slowly; Kaiming
                    # init and a warm-up then cosine decay of the rate fix it
                    presets=Presets(network={"resolution": 32, "width": 0.25},
                                    quick={"epochs": 1, "batch_size": 32, "lr": 0.1, "init": "kaiming",
                                           "warmup": 0.1, "cosine": True},
                                    fast={"epochs": 16, "batch_size": 128, "lr": 0.04, "init": "kaiming"}),
                    blocks=(BlockView(Inception, _lines, _taps),)))
