"""Network in Network (d2l 7.3): 1x1 convolutions as per-pixel dense layers, no dense head."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from explorer.config import ModelConfig, knob
from explorer.registry import BookSettings, ModelEntry, Presets, register


def nin_block(in_channels, out_channels, kernel_size, strides, padding):
    """One ordinary convolution followed by two 1x1 convolutions, each with ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())


def nin(channels, dropout, resolution, in_channels, num_classes):
    """Three NiN blocks with max pooling; the last block has one channel per class, averaged globally."""
    c1, c2, c3 = channels
    return nn.Sequential(
        nin_block(in_channels, c1, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(c1, c2, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(c2, c3, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(dropout),
        nin_block(c3, num_classes, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten())


@dataclass(frozen=True)
class NiNConfig(ModelConfig):
    channels: tuple[int, int, int] = knob((96, 256, 384), lo=1, hi=4096,
                                          help="output channels of the first three NiN blocks")
    dropout: float = knob(0.5, lo=0.0, hi=0.95, help="dropout probability before the last NiN block")


register(ModelEntry("nin", "NiN", "Network in Network: 1x1 convolutions and global average pooling", "7.3",
                    NiNConfig(), nin, BookSettings(lr=0.1, batch_size=128),
                    # with Xavier init NiN's deep ReLU stacks pass almost no signal and it dies; Kaiming init and
                    # a warm-up then cosine decay of the rate fix it
                    presets=Presets(network={"resolution": 67, "channels": (24, 64, 96)},
                                    quick={"epochs": 3, "batch_size": 32, "init": "kaiming", "warmup": 0.1,
                                           "cosine": True},
                                    fast={"epochs": 12, "batch_size": 64, "lr": 0.01, "init": "kaiming"})))
