"""The speedrun network: the chapter's ideas put together for one goal, 93% on Fashion-MNIST within ten minutes
of a 2-core CPU. VGG's blocks of 3x3 convolutions (7.2), a batch norm after each (7.5), and NiN's answer to
the dense layers (7.3): a global pooling, then one dense layer to the classes. Not a network of the book; its
`speedrun` preset (explorer.training.recipes) is the recipe: as many epochs as fit in eight and a half minutes
(so more on a CPU with native bfloat16), and its measured time is in docs/performance.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from torch import nn

from explorer.config import Column, ModelConfig, knob
from explorer.models.vgg import vgg_block
from explorer.registry import BookSettings, ModelEntry, Presets, register

CONV_ARCH = ((2, 32), (2, 64), (2, 128))


def speedrun(conv_arch, pool, resolution, in_channels, num_classes):
    """VGG blocks with a batch norm after every convolution, a global pooling and one dense layer."""
    blocks = []
    for num_convs, out_channels in conv_arch:
        blocks.append(vgg_block(num_convs, in_channels, out_channels, norm="builtin"))
        in_channels = out_channels
    global_pool = nn.AdaptiveMaxPool2d((1, 1)) if pool == "max" else nn.AdaptiveAvgPool2d((1, 1))
    return nn.Sequential(*blocks, global_pool, nn.Flatten(), nn.Linear(in_channels, num_classes))


@dataclass(frozen=True)
class SpeedrunConfig(ModelConfig):
    conv_arch: tuple[tuple[int, int], ...] = knob(
        CONV_ARCH, lo=1, hi=1024, help="one (num_convs, out_channels) row per VGG block",
        columns=(Column("num_convs", "convs", 1, 16, 1, "num_convs: the block's 3x3 convolutions"),
                 Column("out_channels", "channels", 1, 1024, 32, "out_channels: each convolution's output channels")))
    pool: Literal["max", "avg"] = knob("max", help="the global pooling before the dense layer: max or average")
    resolution: int = knob(28, lo=8, hi=1024, help="input height and width in pixels")

    depth_knob: ClassVar[str | None] = "conv_arch"

    def layer_count(self) -> int:
        return sum(3 * num_convs + 1 for num_convs, _ in self.conv_arch) + 3


register(ModelEntry("speedrun", "Speedrun", "VGG blocks with batch norm and a global pooling head, for 93% in "
                    "ten CPU minutes", "", SpeedrunConfig(), speedrun, BookSettings(lr=0.05, batch_size=128),
                    presets=Presets(network={}, quick={"epochs": 1, "batch_size": 128, "lr": 0.1},
                                    fast={"epochs": 4, "batch_size": 128, "lr": 0.2},
                                    speedrun={"epochs": 30, "minutes": 8.5, "batch_size": 128, "lr": 0.2})))
