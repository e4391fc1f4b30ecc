"""AlexNet (d2l 7.1) as the book trains it on Fashion-MNIST: one input channel, ten classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from explorer.config import ModelConfig, knob
from explorer.models.layers import norm_after
from explorer.registry import BookSettings, ModelEntry, Presets, register


def alexnet(channels, fc_width, dropout, norm, first_kernel, first_stride, resolution, in_channels, num_classes):
    """Five convolutions, three max pools, two dropout-regularized dense layers. `norm` puts a batch norm after
    every convolution and hidden dense layer; a smaller first kernel and stride fit 28x28 images."""
    c1, c2, c3, c4, c5 = channels
    size = (resolution + 2 * 1 - first_kernel) // first_stride + 1  # the first convolution, padding 1
    for _ in range(3):                                                # three 3x3 max pools of stride 2
        size = (size - 3) // 2 + 1
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, kernel_size=first_kernel, stride=first_stride, padding=1), *norm_after(norm, c1),
        nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(c1, c2, kernel_size=5, padding=2), *norm_after(norm, c2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(c2, c3, kernel_size=3, padding=1), *norm_after(norm, c3), nn.ReLU(),
        nn.Conv2d(c3, c4, kernel_size=3, padding=1), *norm_after(norm, c4), nn.ReLU(),
        nn.Conv2d(c4, c5, kernel_size=3, padding=1), *norm_after(norm, c5), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(c5 * size * size, fc_width), *norm_after(norm, fc_width, 2), nn.ReLU(), nn.Dropout(p=dropout),
        nn.Linear(fc_width, fc_width), *norm_after(norm, fc_width, 2), nn.ReLU(), nn.Dropout(p=dropout),
        nn.Linear(fc_width, num_classes))


@dataclass(frozen=True)
class AlexNetConfig(ModelConfig):
    channels: tuple[int, int, int, int, int] = knob(
        (96, 256, 384, 384, 256), lo=1, hi=4096, help="output channels of the five convolutions")
    fc_width: int = knob(4096, lo=1, hi=16384, help="width of the two hidden dense layers")
    dropout: float = knob(0.5, lo=0.0, hi=0.95, help="dropout probability after each hidden dense layer")
    norm: Literal["none", "builtin"] = knob("none", help="a batch norm after every convolution and hidden dense "
                                                         "layer (the book has none), or none")
    first_kernel: int = knob(11, lo=1, hi=15, help="the first convolution's kernel size (3 fits 28x28 images)")
    first_stride: int = knob(4, lo=1, hi=8, help="the first convolution's stride (1 fits 28x28 images)")


register(ModelEntry("alexnet", "AlexNet", "AlexNet: deep convolutions, ReLU and dropout", "7.1",
                    AlexNetConfig(), alexnet, BookSettings(lr=0.01, batch_size=128),
                    presets=Presets(network={"resolution": 67, "channels": (24, 64, 96, 96, 64), "fc_width": 512},
                                    quick={"epochs": 1, "batch_size": 32, "lr": 0.1},
                                    fast={"epochs": 15, "batch_size": 64, "lr": 0.01, "init": "kaiming"})))
