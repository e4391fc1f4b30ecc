"""VGG (d2l 7.2): a network is its `conv_arch`, a list of (num_convs, out_channels) blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from torch import nn

from explorer.config import Column, ModelConfig, knob
from explorer.errors import ConfigError
from explorer.models.layers import norm_after
from explorer.registry import BookSettings, ModelEntry, Presets, register

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))  # Simonyan and Zisserman's configuration A
VGG16 = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))  # D
VGG19 = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))  # E


def vgg_block(num_convs, in_channels, out_channels, norm="none"):
    """`num_convs` 3x3 convolutions with ReLU (a batch norm before each ReLU with `norm`), then a 2x2 max pool
    that halves height and width."""
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers += norm_after(norm, out_channels)
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(conv_arch, ratio, fc_width, dropout, norm, resolution, in_channels, num_classes):
    """VGG blocks, then three dense layers; `ratio` divides every convolution's channel count, `norm` puts a
    batch norm after every convolution and hidden dense layer."""
    conv_blks = []
    size = resolution
    for num_convs, out_channels in conv_arch:
        out_channels = out_channels // ratio
        conv_blks.append(vgg_block(num_convs, in_channels, out_channels, norm))
        in_channels = out_channels
        size //= 2
    return nn.Sequential(
        *conv_blks, nn.Flatten(),
        nn.Linear(in_channels * size * size, fc_width), *norm_after(norm, fc_width, 2), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(fc_width, fc_width), *norm_after(norm, fc_width, 2), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(fc_width, num_classes))


@dataclass(frozen=True)
class VGGConfig(ModelConfig):
    conv_arch: tuple[tuple[int, int], ...] = knob(
        VGG11, lo=1, hi=4096, help="one (num_convs, out_channels) row per VGG block",
        columns=(Column("num_convs", "convs", 1, 16, 1, "num_convs: the block's 3x3 convolutions"),
                 Column("out_channels", "channels", 1, 4096, 64, "out_channels: each convolution's output channels")))
    ratio: int = knob(1, lo=1, hi=512, help="divides every convolution's channel count (the book trains 4)")
    fc_width: int = knob(4096, lo=1, hi=16384, help="width of the two hidden dense layers")
    dropout: float = knob(0.5, lo=0.0, hi=0.95, help="dropout probability after each hidden dense layer")
    norm: Literal["none", "builtin"] = knob("none", help="a batch norm after every convolution and hidden dense "
                                                         "layer (the book has none), or none")

    depth_knob: ClassVar[str | None] = "conv_arch"

    def layer_count(self) -> int:
        norms = self.norm == "builtin"
        return sum((3 if norms else 2) * num_convs + 1 for num_convs, _ in self.conv_arch) + (10 if norms else 8)

    def check(self) -> None:
        for i, (_, out_channels) in enumerate(self.conv_arch):
            if out_channels // self.ratio < 1:
                raise ConfigError("ratio", "ratio {ratio} leaves no channels in conv_arch row {row} ({channels} "
                                           "// {ratio} = 0); use a ratio of at most {channels}, or give that row "
                                           "at least {ratio} channels", ("conv_arch",), ratio=self.ratio,
                                  row=i + 1, channels=out_channels)


QUICK_AND_FAST = Presets(network={"resolution": 32, "ratio": 8, "fc_width": 512}, quick={"epochs": 1, "batch_size": 16},
                         fast={"epochs": 12, "batch_size": 32, "lr": 0.01, "init": "kaiming"})
register(ModelEntry("vgg11", "VGG", "VGG-11: five VGG blocks of 3x3 convolutions", "7.2",
                    VGGConfig(), vgg, BookSettings(lr=0.05, batch_size=128), presets=QUICK_AND_FAST))
register(ModelEntry("vgg11-small", "VGG", "the book's VGG-11 with every channel count divided by 4", "7.2",
                    VGGConfig(ratio=4), vgg, BookSettings(lr=0.05, batch_size=128), presets=QUICK_AND_FAST))
register(ModelEntry("vgg16", "VGG", "VGG-16: the paper's configuration D, 13 convolutions in five VGG blocks", "7.2",
                    VGGConfig(conv_arch=VGG16), vgg, BookSettings(lr=0.05, batch_size=128), presets=QUICK_AND_FAST))
register(ModelEntry("vgg19", "VGG", "VGG-19: the paper's configuration E, 16 convolutions in five VGG blocks", "7.2",
                    VGGConfig(conv_arch=VGG19), vgg, BookSettings(lr=0.05, batch_size=128), presets=QUICK_AND_FAST))
