"""VGG (d2l 7.2): a network is its `conv_arch`, a list of (num_convs, out_channels) blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from explorer.config import Column, ModelConfig, knob
from explorer.errors import ConfigError
from explorer.registry import BookSettings, ModelEntry, Presets, register

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs, in_channels, out_channels):
    """`num_convs` 3x3 convolutions with ReLU, then a 2x2 max pool that halves height and width."""
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(conv_arch, ratio, fc_width, dropout, resolution, in_channels, num_classes):
    """VGG blocks, then three dense layers; `ratio` divides every convolution's channel count."""
    conv_blks = []
    size = resolution
    for num_convs, out_channels in conv_arch:
        out_channels = out_channels // ratio
        conv_blks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
        size //= 2
    return nn.Sequential(
        *conv_blks, nn.Flatten(),
        nn.Linear(in_channels * size * size, fc_width), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(fc_width, fc_width), nn.ReLU(), nn.Dropout(dropout),
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

    depth_knob: ClassVar[str | None] = "conv_arch"

    def layer_count(self) -> int:
        return sum(2 * num_convs + 1 for num_convs, _ in self.conv_arch) + 8

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
