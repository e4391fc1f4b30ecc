"""ResNet (d2l 7.6): residual blocks add their input to their output, so depth stays trainable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn
from torch.nn import functional as F

from explorer.config import ModelConfig, knob
from explorer.errors import ConfigError
from explorer.registry import BlockView, BookSettings, ModelEntry, Presets, register

MAX_STAGES = 12


class Residual(nn.Module):
    """Two 3x3 conv-BN layers plus the input; a 1x1 convolution matches shapes when they change."""

    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        return F.relu(Y + X)


def stem(in_channels, out_channels):
    """The book's b1: a 7x7 stride-2 convolution, batch norm, ReLU and a stride-2 max pool."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=7, stride=2, padding=3),
                         nn.BatchNorm2d(out_channels), nn.ReLU(),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
    """A stage; all but the first stage halve height and width in their first residual block."""
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


def resnet(blocks, channels, resolution, in_channels, num_classes):
    """Stem, one stage per entry of `blocks` with the matching `channels`, global pooling, one dense layer."""
    stages = [nn.Sequential(*resnet_block(channels[0], channels[0], blocks[0], first_block=True))]
    for i in range(1, len(blocks)):
        stages.append(nn.Sequential(*resnet_block(channels[i - 1], channels[i], blocks[i])))
    return nn.Sequential(stem(in_channels, channels[0]), *stages,
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(channels[-1], num_classes))


@dataclass(frozen=True)
class ResNetConfig(ModelConfig):
    blocks: tuple[int, ...] = knob((2, 2, 2, 2), lo=1, hi=64, help="residual blocks in each stage")
    channels: tuple[int, ...] = knob((64, 128, 256, 512), lo=1, hi=4096, help="output channels of each stage")
    resolution: int = knob(96, lo=8, hi=1024, help="input height and width in pixels")

    depth_knob: ClassVar[str | None] = "blocks"

    def layer_count(self) -> int:
        return 4 * sum(self.blocks) + (len(self.blocks) - 1) + 7  # 1x1 skips where a stage downsamples

    def check(self) -> None:
        if len(self.blocks) > MAX_STAGES:
            raise ConfigError("blocks", f"has {len(self.blocks)} stages; at most {MAX_STAGES}: each stage after the "
                                        "first halves height and width, so even 1024 pixels are 1x1 by then")
        if len(self.blocks) != len(self.channels):
            raise ConfigError("blocks", f"blocks has {len(self.blocks)} stages but channels has "
                                        f"{len(self.channels)}: give one channel count per stage, i.e. the "
                                        "same number of entries in both", related=("channels",))


RESIDUAL = BlockView.residual(Residual, ("conv3",), "bn2", "residual branch F(x), before the sum",
                              "a 1x1 convolution matches the input's shape")
SMALL = {"resolution": 28, "channels": (16, 32, 64, 128)}
register(ModelEntry("resnet18", "ResNet", "ResNet-18: four stages of two residual blocks", "7.6",
                    ResNetConfig(), resnet, BookSettings(lr=0.05, batch_size=256),
                    presets=Presets(network=SMALL, quick={"epochs": 1, "batch_size": 64},
                                    fast={"epochs": 4, "batch_size": 64, "lr": 0.1}),
                    blocks=(RESIDUAL,)))
register(ModelEntry("resnet34", "ResNet", "a ResNet-34-style network: (3, 4, 6, 3) residual blocks", "7.6",
                    ResNetConfig(blocks=(3, 4, 6, 3)), resnet, BookSettings(lr=0.05, batch_size=256),
                    presets=Presets(network=SMALL, quick={"epochs": 1, "batch_size": 32, "train_subset": 36_000},
                                    fast={"epochs": 3, "batch_size": 64, "lr": 0.1, "train_subset": None}),
                    blocks=(RESIDUAL,)))
