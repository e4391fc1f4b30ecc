"""ResNet (d2l 7.6): residual blocks add their input to their output, so depth stays trainable."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from torch import nn
from torch.nn import functional as F

from explorer.config import ModelConfig, knob
from explorer.errors import ConfigError
from explorer.i18n import N_
from explorer.registry import BlockView, BookSettings, ModelEntry, Presets, Tap, register

MAX_STAGES = 12


class Residual(nn.Module):
    """Two 3x3 conv-BN layers plus the input; a 1x1 convolution matches shapes when they change. With
    `norm="none"` the batch norms are left out (7.5's lesson, on a deep network). With `preact`, He et al.'s
    later order (2016, "Identity Mappings"): batch norm, ReLU, convolution, twice, and nothing after the sum."""

    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1, norm="builtin", preact=False):
        super().__init__()
        self.preact = preact
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(input_channels if preact else num_channels) if norm == "builtin" else None
        self.bn2 = nn.BatchNorm2d(num_channels) if norm == "builtin" else None

    def branch(self, X):
        """F(x): what the block adds to its input."""
        if self.preact:
            Y = self.conv1(F.relu(self.bn1(X) if self.bn1 is not None else X))
            return self.conv2(F.relu(self.bn2(Y) if self.bn2 is not None else Y))
        Y = self.conv1(X)
        Y = F.relu(self.bn1(Y) if self.bn1 is not None else Y)
        Y = self.conv2(Y)
        return self.bn2(Y) if self.bn2 is not None else Y

    def forward(self, X):
        Y = self.branch(X)
        if self.conv3 is not None:
            X = self.conv3(X)
        return Y + X if self.preact else F.relu(Y + X)


class Bottleneck(nn.Module):
    """He et al.'s bottleneck block for deeper ResNets (ResNet-50 and up): a 1x1 convolution to a quarter of
    the channels, a 3x3 that carries the stride, a 1x1 back to all of them, a batch norm after each (before
    each, with `preact`); in the book's conventions, every convolution has a bias and the 1x1 shortcut where
    channels or stride change has no batch norm."""

    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1, norm="builtin", preact=False):
        super().__init__()
        self.preact = preact
        width = num_channels // 4
        self.conv1 = nn.Conv2d(input_channels, width, kernel_size=1)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, padding=1, stride=strides)
        self.conv3 = nn.Conv2d(width, num_channels, kernel_size=1)
        self.shortcut = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        widths = (input_channels, width, width) if preact else (width, width, num_channels)
        self.bn1, self.bn2, self.bn3 = (nn.BatchNorm2d(c) if norm == "builtin" else None for c in widths)

    def branch(self, X):
        """F(x): what the block adds to its input."""
        Y = X
        for conv, bn, last in ((self.conv1, self.bn1, False), (self.conv2, self.bn2, False),
                               (self.conv3, self.bn3, True)):
            if self.preact:
                Y = conv(F.relu(bn(Y) if bn is not None else Y))
            else:
                Y = conv(Y)
                Y = bn(Y) if bn is not None else Y
                Y = Y if last else F.relu(Y)
        return Y

    def forward(self, X):
        Y = self.branch(X)
        if self.shortcut is not None:
            X = self.shortcut(X)
        return Y + X if self.preact else F.relu(Y + X)


class PlainBlock(Residual):
    """A residual block with its shortcut taken away: the same two convolutions (and batch norms), nothing
    added. A plain network is as deep and as wide as its ResNet, but a block can no longer fall back to
    passing its input on (He et al.'s "plain" baseline, the exercise of 7.6)."""

    def __init__(self, input_channels, num_channels, strides=1, norm="builtin", preact=False):
        super().__init__(input_channels, num_channels, strides=strides, norm=norm, preact=preact)

    def forward(self, X):
        Y = self.branch(X)
        return Y if self.preact else F.relu(Y)


def stem(in_channels, out_channels, norm="builtin"):
    """The book's b1: a 7x7 stride-2 convolution, batch norm, ReLU and a stride-2 max pool."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=7, stride=2, padding=3),
                         *([nn.BatchNorm2d(out_channels)] if norm == "builtin" else []), nn.ReLU(),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def resnet_block(input_channels, num_channels, num_residuals, first_block=False, residual=True, norm="builtin",
                 block="basic", preact=False):
    """A stage; all but the first stage halve height and width in their first residual block. Without
    `residual`, plain blocks: no shortcut, so no 1x1 convolution where the shape changes. Bottleneck blocks
    take a 1x1 shortcut in every stage's first block, where their channels change."""
    blk = []
    for i in range(num_residuals):
        strides = 2 if i == 0 and not first_block else 1
        inputs = input_channels if i == 0 else num_channels
        if block == "bottleneck":
            blk.append(Bottleneck(inputs, num_channels, use_1x1conv=i == 0, strides=strides, norm=norm,
                                  preact=preact))
        elif not residual:
            blk.append(PlainBlock(inputs, num_channels, strides=strides, norm=norm, preact=preact))
        elif strides == 2:
            blk.append(Residual(inputs, num_channels, use_1x1conv=True, strides=2, norm=norm, preact=preact))
        else:
            blk.append(Residual(num_channels, num_channels, norm=norm, preact=preact))
    return blk


def resnet(blocks, channels, residual, norm, block, preact, resolution, in_channels, num_classes):
    """Stem, one stage per entry of `blocks` with the matching `channels`, global pooling, one dense layer.
    The stem has `channels[0]` channels (a quarter of them before bottleneck blocks, which widen them); with
    `preact` a batch norm and ReLU come before the pooling, as the blocks end on a convolution."""
    stem_channels = channels[0] // 4 if block == "bottleneck" else channels[0]
    stages = [nn.Sequential(*resnet_block(stem_channels, channels[0], blocks[0], True, residual, norm, block,
                                          preact))]
    for i in range(1, len(blocks)):
        stages.append(nn.Sequential(*resnet_block(channels[i - 1], channels[i], blocks[i], False, residual, norm,
                                                  block, preact)))
    head = [*([nn.BatchNorm2d(channels[-1])] if norm == "builtin" else []), nn.ReLU()] if preact else []
    return nn.Sequential(stem(in_channels, stem_channels, norm), *stages, *head,
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(channels[-1], num_classes))


@dataclass(frozen=True)
class ResNetConfig(ModelConfig):
    blocks: tuple[int, ...] = knob((2, 2, 2, 2), lo=1, hi=64, help="residual blocks in each stage")
    channels: tuple[int, ...] = knob((64, 128, 256, 512), lo=1, hi=4096, help="output channels of each stage")
    residual: bool = knob(True, help="each block adds its input to its output; off: the plain network of the same "
                                     "depth and widths, no shortcuts")
    norm: Literal["builtin", "none"] = knob("builtin", help="batch normalization (nn.BatchNorm2d) after each "
                                                             "convolution, or none")
    block: Literal["basic", "bottleneck"] = knob("basic", help="the book's residual block of two 3x3 convolutions, "
                                                               "or the bottleneck of ResNet-50 and up: 1x1 to a "
                                                               "quarter of the channels, 3x3, 1x1 back")
    preact: bool = knob(False, help="pre-activation blocks (He et al. 2016): batch norm and ReLU before each "
                                    "convolution, nothing after the sum, one more batch norm and ReLU before the head")
    resolution: int = knob(96, lo=8, hi=1024, help="input height and width in pixels")

    depth_knob: ClassVar[str | None] = "blocks"

    def layer_count(self) -> int:
        norms = self.norm == "builtin"  # one with each convolution but the shortcuts'
        head = (2 if norms else 1) if self.preact else 0  # batch norm and ReLU before the pooling
        if self.block == "bottleneck":  # three convolutions a block, a shortcut in every stage's first
            return (6 if norms else 3) * sum(self.blocks) + len(self.blocks) + (7 if norms else 6) + head
        shortcuts = len(self.blocks) - 1 if self.residual else 0  # 1x1 convolutions where a stage downsamples
        return (4 if norms else 2) * sum(self.blocks) + shortcuts + (7 if norms else 6) + head

    def check(self) -> None:
        if len(self.blocks) > MAX_STAGES:
            raise ConfigError("blocks", "has {n} stages; at most {most}: each stage after the first halves height "
                                        "and width, so even 1024 pixels are 1x1 by then", n=len(self.blocks),
                              most=MAX_STAGES)
        if len(self.blocks) != len(self.channels):
            raise ConfigError("blocks", "blocks has {n} stages but channels has {m}: give one channel count per "
                                        "stage, i.e. the same number of entries in both", ("channels",),
                              n=len(self.blocks), m=len(self.channels))
        if self.block == "bottleneck":
            if not self.residual:
                raise ConfigError("residual", "the plain network is built of basic blocks: set block to basic to "
                                              "take the shortcuts away", ("block",))
            if min(self.channels) < 4:
                raise ConfigError("channels", "a bottleneck block narrows to a quarter of its channels: give every "
                                              "stage at least 4", ("block",))


RESIDUAL = BlockView.residual(Residual, ("conv3",), ("bn2", "conv2"), N_("residual branch F(x), before the sum"),
                              N_("a 1x1 convolution matches the input's shape"))
BOTTLENECK = BlockView.residual(Bottleneck, ("shortcut",), ("bn3", "conv3"),
                                N_("residual branch F(x), before the sum"),
                                N_("a 1x1 convolution matches the input's shape"))
PLAIN = BlockView(PlainBlock, lambda leaves, chain: (*chain(leaves), "ReLU, no shortcut"),
                  lambda block: [Tap(N_("F(x): the two convolutions"), block.bn2 or block.conv2),
                                 Tap(N_("output: ReLU(F(x)), nothing added"), block, after_relu=True)])
SMALL = {"resolution": 28, "channels": (16, 32, 64, 128)}
register(ModelEntry("resnet18", "ResNet", "ResNet-18: four stages of two residual blocks", "7.6",
                    ResNetConfig(), resnet, BookSettings(lr=0.05, batch_size=256),
                    presets=Presets(network=SMALL, quick={"epochs": 1, "batch_size": 64},
                                    fast={"epochs": 10, "batch_size": 64, "lr": 0.1}),
                    blocks=(RESIDUAL, BOTTLENECK, PLAIN)))
register(ModelEntry("resnet34", "ResNet", "a ResNet-34-style network: (3, 4, 6, 3) residual blocks", "7.6",
                    ResNetConfig(blocks=(3, 4, 6, 3)), resnet, BookSettings(lr=0.05, batch_size=256),
                    presets=Presets(network=SMALL, quick={"epochs": 1, "batch_size": 32, "train_subset": 36_000},
                                    fast={"epochs": 10, "batch_size": 128, "lr": 0.2, "train_subset": None}),
                    blocks=(RESIDUAL, BOTTLENECK, PLAIN)))
# He et al.'s Table 1, in the book's conventions (its b1 stem, one input channel, ten classes); the fast
# preset's epochs are as many as fit in 4.5 minutes at the rate measured on a 2-core CPU (docs/performance.md)
BIG = Presets(network={"resolution": 28, "channels": (64, 128, 256, 512)},
              quick={"epochs": 1, "batch_size": 32, "train_subset": 12_000},
              fast={"batch_size": 64, "lr": 0.1, "train_subset": None})
for name, depths, epochs in (("resnet50", (3, 4, 6, 3), 6), ("resnet101", (3, 4, 23, 3), 3),
                             ("resnet152", (3, 8, 36, 3), 2)):
    register(ModelEntry(name, "ResNet", f"ResNet-{name[6:]}: bottleneck blocks {depths}, He et al.'s Table 1",
                        "7.6", ResNetConfig(blocks=depths, channels=(256, 512, 1024, 2048), block="bottleneck"),
                        resnet, BookSettings(lr=0.05, batch_size=256),
                        presets=replace(BIG, fast={**BIG.fast, "epochs": epochs}),
                        blocks=(RESIDUAL, BOTTLENECK, PLAIN)))
