"""RegNetX (d2l-en 8.8, Designing Convolution Network Architectures): AnyNet's stem, stages of ResNeXt blocks
and head, with the design space's rules (one group width and bottleneck ratio for every stage, widths and
depths that grow) picking a 32-layer network. AnyNet itself lets each stage have its own group width and
bottleneck ratio: the exercises break the rules that way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn
from torch.nn import functional as F

from explorer.config import ModelConfig, knob
from explorer.errors import ConfigError
from explorer.i18n import N_
from explorer.registry import BlockView, BookSettings, ModelEntry, Presets, register


class ResNeXtBlock(nn.Module):
    """A bottleneck residual block whose 3x3 convolution is grouped: `groups` channels a group (the group
    width), `bot_mul` times `num_channels` inside; a 1x1 convolution matches shapes when they change."""

    def __init__(self, input_channels, num_channels, groups, bot_mul, use_1x1conv=False, strides=1):
        super().__init__()
        bot_channels = int(round(num_channels * bot_mul))
        self.conv1 = nn.Conv2d(input_channels, bot_channels, kernel_size=1, stride=1)
        self.conv2 = nn.Conv2d(bot_channels, bot_channels, kernel_size=3, stride=strides, padding=1,
                               groups=bot_channels // groups)
        self.conv3 = nn.Conv2d(bot_channels, num_channels, kernel_size=1, stride=1)
        self.bn1 = nn.BatchNorm2d(bot_channels)
        self.bn2 = nn.BatchNorm2d(bot_channels)
        self.bn3 = nn.BatchNorm2d(num_channels)
        if use_1x1conv:
            self.conv4 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
            self.bn4 = nn.BatchNorm2d(num_channels)
        else:
            self.conv4 = None

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = F.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        if self.conv4:
            X = self.bn4(self.conv4(X))
        return F.relu(Y + X)


def anynet_stem(in_channels, num_channels):
    """AnyNet's stem: a 3x3 stride-2 convolution, batch norm and ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, num_channels, kernel_size=3, stride=2, padding=1),
                         nn.BatchNorm2d(num_channels), nn.ReLU())


def stage(input_channels, depth, num_channels, groups, bot_mul):
    """`depth` ResNeXt blocks; the first halves height and width."""
    blk = []
    for i in range(depth):
        if i == 0:
            blk.append(ResNeXtBlock(input_channels, num_channels, groups, bot_mul, use_1x1conv=True, strides=2))
        else:
            blk.append(ResNeXtBlock(num_channels, num_channels, groups, bot_mul))
    return nn.Sequential(*blk)


def anynet(depths, channels, groups, bot_mul, stem_channels, resolution, in_channels, num_classes):
    """Stem, one stage per entry of `depths` with the matching `channels`, group width and bottleneck ratio
    (`groups` and `bot_mul`: one value for every stage, RegNet's rule, or one per stage), global pooling and a
    dense layer."""
    net = nn.Sequential(anynet_stem(in_channels, stem_channels))
    input_channels = stem_channels
    groups, bot_mul = per_stage(groups, len(depths)), per_stage(bot_mul, len(depths))
    for i, (depth, num_channels) in enumerate(zip(depths, channels, strict=True)):
        net.add_module(f"stage{i + 1}", stage(input_channels, depth, num_channels, groups[i], bot_mul[i]))
        input_channels = num_channels
    net.add_module("head", nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                                         nn.Linear(input_channels, num_classes)))
    return net


def per_stage(values: tuple, stages: int) -> tuple:
    """One value for every stage, or one per stage."""
    return values * stages if len(values) == 1 else values


@dataclass(frozen=True)
class RegNetConfig(ModelConfig):
    depths: tuple[int, ...] = knob((4, 6), lo=1, hi=64, help="ResNeXt blocks in each stage (d_i)")
    channels: tuple[int, ...] = knob((32, 80), lo=1, hi=4096, help="output channels of each stage (c_i)")
    groups: tuple[int, ...] = knob((16,), lo=1, hi=4096, help="group width: channels in each group of the 3x3 "
                                                               "convolutions (g); one for every stage (RegNet's "
                                                               "rule) or one per stage")
    bot_mul: tuple[float, ...] = knob((1.0,), lo=0.05, hi=4.0,
                                      help="bottleneck ratio: channels inside a block over its output (1/k; the "
                                           "book's RegNetX: 1, no bottleneck); one for every stage or one per stage")
    stem_channels: int = knob(32, lo=1, hi=1024, help="output channels of the stem (c_0)")
    resolution: int = knob(96, lo=8, hi=1024, help="input height and width in pixels")

    depth_knob: ClassVar[str | None] = "depths"

    def layer_count(self) -> int:
        return 3 + 6 * sum(self.depths) + 2 * len(self.depths) + 3  # stem, blocks, 1x1 shortcuts, head

    def check(self) -> None:
        if len(self.depths) != len(self.channels):
            raise ConfigError("depths", "depths has {depths} stages but channels has {channels}: give one channel "
                                        "count per stage", ("channels",), depths=len(self.depths),
                              channels=len(self.channels))
        if len(self.depths) > 12:
            raise ConfigError("depths", "at most 12 stages: each halves height and width")
        for knob_name in ("groups", "bot_mul"):
            if len(getattr(self, knob_name)) not in (1, len(self.depths)):
                raise ConfigError(knob_name, "give one value for every stage or one per stage ({stages}), not "
                                             "{n}", stages=len(self.depths), n=len(getattr(self, knob_name)))
        stages = len(self.depths)
        for c, groups, bot_mul in zip(self.channels, per_stage(self.groups, stages), per_stage(self.bot_mul, stages),
                                      strict=True):
            inside = int(round(c * bot_mul))
            if inside < groups or inside % (inside // groups):
                raise ConfigError("groups", "a stage of {c} channels has {inside} inside its blocks, which groups "
                                            "of {groups} channels do not divide evenly; choose a group width "
                                            "that divides every stage's channels", ("channels", "bot_mul"),
                                  c=c, inside=inside, groups=groups)


RESNEXT = BlockView.residual(ResNeXtBlock, ("conv4", "bn4"), ("bn3",),
                             N_("residual branch F(x): 1x1, grouped 3x3, 1x1, before the sum"),
                             N_("a 1x1 convolution and batch norm match the input's shape"))

register(ModelEntry(
    "regnetx32", "RegNet", "RegNetX-32 (English edition): two stages of ResNeXt blocks with grouped convolutions",
    "8.8", RegNetConfig(), anynet, BookSettings(lr=0.05, batch_size=128),
    presets=Presets(network={"resolution": 32}, quick={"epochs": 1, "batch_size": 64, "lr": 0.1},
                    fast={"epochs": 6, "batch_size": 64, "lr": 0.1}),
    blocks=(RESNEXT,)))
