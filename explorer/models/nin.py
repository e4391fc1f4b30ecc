"""Network in Network (d2l 7.3): 1x1 convolutions as per-pixel dense layers, no dense head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from explorer.config import ModelConfig, knob
from explorer.errors import ConfigError
from explorer.models.layers import norm_after
from explorer.registry import BookSettings, ModelEntry, Presets, register


def nin_block(in_channels, out_channels, kernel_size, strides, padding, num_1x1=2, kernel_1x1=1, norm="none"):
    """One ordinary convolution followed by two 1x1 convolutions, each with ReLU (`num_1x1` of them, `kernel_1x1`
    wide: the exercises; a batch norm before each ReLU with `norm`)."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), *norm_after(norm, out_channels),
              nn.ReLU()]
    for _ in range(num_1x1):
        layers += [nn.Conv2d(out_channels, out_channels, kernel_size=kernel_1x1, padding=kernel_1x1 // 2),
                   *norm_after(norm, out_channels), nn.ReLU()]
    return nn.Sequential(*layers)


def nin(channels, design, dropout, num_1x1, kernel_1x1, head, norm, resolution, in_channels, num_classes):
    """NiN blocks with max pooling, one per entry of `channels` (the book: three), then a last block with one
    channel per class, averaged globally (or, with `head` "dense", flattened into one dense layer). With
    `design` "vgg" every block starts on a 3x3 convolution and is followed by a pool that halves the map, as
    VGG's blocks are: a family of NiNs is then a list of widths, as VGG-11, -16 and -19 are."""
    book = ((11, 4, 0), (5, 1, 2), (3, 1, 1))  # (kernel, stride, padding): AlexNet's, as the book's NiN has them
    convs = [book[min(i, 2)] if design == "alexnet" else (3, 1, 1) for i in range(len(channels))]
    pool_kernel, pool_stride = (3, 2) if design == "alexnet" else (2, 2)  # the book's overlapping pool, or VGG's
    layers, size, previous = [], resolution, in_channels
    for out, (kernel, stride, padding) in zip(channels, convs, strict=True):
        layers += [nin_block(previous, out, kernel, stride, padding, num_1x1, kernel_1x1, norm),
                   nn.MaxPool2d(pool_kernel, stride=pool_stride)]
        size = ((size + 2 * padding - kernel) // stride + 1 - pool_kernel) // pool_stride + 1
        previous = out
    pooled = [nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()] if head == "average" else [
        nn.Flatten(), nn.Linear(num_classes * size * size, num_classes)]
    return nn.Sequential(*layers, nn.Dropout(dropout),
                         nin_block(previous, num_classes, 3, 1, 1, num_1x1, kernel_1x1, norm), *pooled)


@dataclass(frozen=True)
class NiNConfig(ModelConfig):
    channels: tuple[int, ...] = knob((96, 256, 384), lo=1, hi=4096,
                                     help="output channels of each NiN block before the last (the book: three "
                                          "blocks; the last has one channel per class)")
    design: Literal["alexnet", "vgg"] = knob("alexnet", help="the blocks' first convolutions: AlexNet's 11x11, 5x5 "
                                                             "and 3x3 with 3x3 pools (the book), or VGG's 3x3 in "
                                                             "every block with pools that halve the map")
    dropout: float = knob(0.5, lo=0.0, hi=0.95, help="dropout probability before the last NiN block")
    num_1x1: int = knob(2, lo=0, hi=3, help="1x1 convolutions in each NiN block (the book: two)")
    kernel_1x1: int = knob(1, lo=1, hi=5, help="the kernel size of those convolutions (1 = the book; 3 turns them "
                                               "into ordinary convolutions)")
    head: Literal["average", "dense"] = knob("average", help="global average pooling of the last block's class "
                                                             "maps (the book), or one dense layer over them")
    norm: Literal["none", "builtin"] = knob("none", help="a batch norm after every convolution (the book has "
                                                         "none), or none")

    def check(self) -> None:
        if len(self.channels) > 6:
            raise ConfigError("channels", "at most 6 blocks before the last, not {n}: each one's pool shrinks the "
                                          "map", n=len(self.channels))
        if self.kernel_1x1 % 2 == 0:
            raise ConfigError("kernel_1x1", "must be odd (1, 3 or 5), so that padding keeps the map's size, not "
                                            "{kernel}", kernel=self.kernel_1x1)


register(ModelEntry("nin", "NiN", "Network in Network: 1x1 convolutions and global average pooling", "7.3",
                    NiNConfig(), nin, BookSettings(lr=0.1, batch_size=128),
                    # with Xavier init NiN's deep ReLU stacks pass almost no signal and it dies; Kaiming init and
                    # a warm-up then cosine decay of the rate fix it
                    presets=Presets(network={"resolution": 67, "channels": (24, 64, 96)},
                                    quick={"epochs": 3, "batch_size": 32, "init": "kaiming", "warmup": 0.1,
                                           "cosine": True},
                                    fast={"epochs": 21, "batch_size": 64, "lr": 0.01, "init": "kaiming"})))
