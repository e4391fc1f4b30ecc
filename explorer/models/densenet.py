"""DenseNet (d2l 7.7): each convolution sees the concatenation of every earlier output in its block."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
from torch import nn

from explorer.config import ModelConfig, knob
from explorer.errors import ConfigError
from explorer.i18n import N_
from explorer.models.resnet import stem
from explorer.registry import BlockView, BookSettings, ModelEntry, Presets, Tap, register


def _bn(channels, norm):
    """The batch norm before a ReLU, or nothing where `norm` is "none"."""
    return [nn.BatchNorm2d(channels)] if norm == "builtin" else []


def conv_block(input_channels, num_channels, norm="builtin"):
    """BN, ReLU, 3x3 convolution: the unit a dense block repeats."""
    return nn.Sequential(*_bn(input_channels, norm), nn.ReLU(),
                         nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))


def bottleneck_block(input_channels, num_channels, norm="builtin"):
    """DenseNet-B's layer (Huang et al.): BN, ReLU and a 1x1 convolution to 4x the growth rate, then the
    book's conv_block, so a 3x3 convolution never sees the whole, ever wider, concatenation."""
    return nn.Sequential(*_bn(input_channels, norm), nn.ReLU(),
                         nn.Conv2d(input_channels, 4 * num_channels, kernel_size=1),
                         *conv_block(4 * num_channels, num_channels, norm))


class DenseBlock(nn.Module):
    """`num_convs` conv blocks; each adds `num_channels` (the growth rate) channels to its input (bottleneck
    blocks with `bottleneck`).

    With `memory_efficient` (Pleiss et al., torchvision's option of the same name) a layer's concatenation,
    batch norm and ReLU are not kept for the backward pass but computed again in it: training keeps each
    layer's new channels once instead of every ever-wider concatenation, for about one more forward pass
    (batch norm's running averages are then updated twice a step, as in torchvision)."""

    def __init__(self, num_convs, input_channels, num_channels, norm="builtin", bottleneck=False,
                 memory_efficient=False):
        super().__init__()
        self.net = nn.Sequential(*[bottleneck_block(num_channels * i + input_channels, num_channels, norm)
                                   if bottleneck else conv_block(num_channels * i + input_channels, num_channels, norm)
                                   for i in range(num_convs)])
        self.memory_efficient = memory_efficient

    def forward(self, X):
        if not (self.memory_efficient and torch.is_grad_enabled()):  # the book's
            for blk in self.net:
                Y = blk(X)
                X = torch.cat((X, Y), dim=1)
            return X
        features = [X]
        for blk in self.net:
            def layer(*inputs, blk=blk):  # what the backward pass computes again
                return blk(torch.cat(inputs, dim=1))

            features.append(torch.utils.checkpoint.checkpoint(layer, *features, use_reentrant=False))
        return torch.cat(features, dim=1)


def transition_block(input_channels, num_channels, norm="builtin", pool="avg"):
    """A 1x1 convolution to `num_channels` and a 2x2 average pool (max pool: the exercise) that halves height
    and width."""
    return nn.Sequential(*_bn(input_channels, norm), nn.ReLU(),
                         nn.Conv2d(input_channels, num_channels, kernel_size=1),
                         (nn.AvgPool2d if pool == "avg" else nn.MaxPool2d)(kernel_size=2, stride=2))


def densenet(growth_rate, num_convs_in_dense_blocks, stem_channels, norm, bottleneck, pool, memory_efficient,
             resolution, in_channels, num_classes):
    """Dense blocks with transition blocks between them that halve the channel count."""
    num_channels = stem_channels
    blks = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate, norm, bottleneck, memory_efficient))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            blks.append(transition_block(num_channels, num_channels // 2, norm, pool))
            num_channels = num_channels // 2
    return nn.Sequential(stem(in_channels, stem_channels, norm), *blks,
                         *_bn(num_channels, norm), nn.ReLU(),
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(num_channels, num_classes))


@dataclass(frozen=True)
class DenseNetConfig(ModelConfig):
    growth_rate: int = knob(32, lo=1, hi=1024, help="channels each convolution adds inside a dense block")
    num_convs_in_dense_blocks: tuple[int, ...] = knob((4, 4, 4, 4), lo=1, hi=128,
                                                      help="convolutions in each dense block")
    stem_channels: int = knob(64, lo=2, hi=1024, help="output channels of the first convolution")
    norm: Literal["builtin", "none"] = knob("builtin", help="batch normalization (nn.BatchNorm2d) before each "
                                                             "ReLU, or none")
    bottleneck: bool = knob(False, help="DenseNet-B: a 1x1 convolution to 4x the growth rate before each 3x3 "
                                        "(DenseNet-121 and up)")
    pool: Literal["avg", "max"] = knob("avg", help="the transition blocks' pooling: average (the book) or max")
    memory_efficient: bool = knob(False, help="recompute each layer's concatenation, batch norm and ReLU in the "
                                              "backward pass instead of keeping them: less training memory, "
                                              "more time (torchvision's option)")
    resolution: int = knob(96, lo=8, hi=1024, help="input height and width in pixels")

    depth_knob: ClassVar[str | None] = "num_convs_in_dense_blocks"

    def layer_count(self) -> int:
        blocks, norms = self.num_convs_in_dense_blocks, self.norm == "builtin"
        per_layer = (3 if norms else 2) * (2 if self.bottleneck else 1)
        return per_layer * sum(blocks) + (4 if norms else 3) * (len(blocks) - 1) + (9 if norms else 7)

    def peak_config(self) -> DenseNetConfig:
        # recomputation cuts what autograd keeps 2-5x, but a CPU's measured peak fell only 13-17% (and once
        # rose): the allocator keeps what the recomputed layers freed. Admitted as the book's layers, then.
        return replace(self, memory_efficient=False)

    def check(self) -> None:
        if len(self.num_convs_in_dense_blocks) > 12:
            raise ConfigError("num_convs_in_dense_blocks",
                              "at most 12 dense blocks: each transition halves height and width")


def _lines(leaves, chain) -> tuple[str, ...]:
    convs = [leaf for leaf in leaves if leaf.type == "Conv2d"]
    threes = [leaf for leaf in convs if leaf.kernel == "3x3"]
    growth = threes[0].shape.split("×")[0] if threes else "?"
    if len(threes) != len(convs):  # DenseNet-B
        return f"{len(threes)}× BN · ReLU · Conv 1x1 · BN · ReLU · Conv 3x3", f"concat, +{growth} ch each"
    return f"{len(convs)}× BN · ReLU · Conv 3x3", f"concat, +{growth} ch each"


def _taps(block: DenseBlock) -> list[Tap]:
    return [Tap(N_("layer {i} adds {channels} channels"), layer,
                values={"i": i + 1, "channels": layer[-1].out_channels}) for i, layer in enumerate(block.net)]


register(ModelEntry("densenet", "DenseNet", "DenseNet: dense blocks of concatenated features", "7.7",
                    DenseNetConfig(), densenet, BookSettings(lr=0.1, batch_size=256),
                    presets=Presets(network={"resolution": 32, "growth_rate": 12, "stem_channels": 32},
                                    quick={"epochs": 1, "batch_size": 64, "train_subset": 30_000},
                                    fast={"epochs": 7, "batch_size": 64, "lr": 0.1, "train_subset": None}),
                    blocks=(BlockView(DenseBlock, _lines, _taps),)))
# Huang et al.'s Table 1 (DenseNet-BC: bottlenecks, transitions that halve), in the book's conventions; the
# fast preset's epochs are as many as fit in 4.5 minutes at the rate measured on a 2-core CPU
# (docs/performance.md)
LARGE = Presets(network={"resolution": 32, "growth_rate": 12, "stem_channels": 32},
                quick={"epochs": 1, "batch_size": 32, "train_subset": 12_000},
                fast={"batch_size": 64, "lr": 0.1, "train_subset": None})
for name, blocks, epochs in (("densenet121", (6, 12, 24, 16), 2), ("densenet169", (6, 12, 32, 32), 1),
                             ("densenet201", (6, 12, 48, 32), 1), ("densenet264", (6, 12, 64, 48), 1)):
    register(ModelEntry(name, "DenseNet", f"DenseNet-{name[8:]}: bottleneck dense blocks {blocks}, Huang et al.'s "
                        "Table 1", "7.7", DenseNetConfig(num_convs_in_dense_blocks=blocks, bottleneck=True),
                        densenet, BookSettings(lr=0.1, batch_size=256),
                        presets=replace(LARGE, fast={**LARGE.fast, "epochs": epochs}),
                        blocks=(BlockView(DenseBlock, _lines, _taps),)))
