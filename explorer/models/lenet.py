"""LeNet (d2l 6.6) and LeNet with batch normalization (d2l 7.5), from scratch and concise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from explorer.config import ModelConfig, knob
from explorer.errors import ConfigError
from explorer.registry import BookSettings, ModelEntry, NormView, Presets, register


def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum, training, stats="both"):
    """d2l's batch_norm: batch statistics while training, moving averages in evaluation. `stats`: what it
    removes, the mean and the variance (the book), or only one of them (a "lite" batch norm, the exercise)."""
    if not training:
        mean, var = moving_mean, moving_var
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
        else:
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        moving_mean = momentum * moving_mean + (1.0 - momentum) * mean.detach()
        moving_var = momentum * moving_var + (1.0 - momentum) * var.detach()
    X_hat = (X - mean if stats != "variance" else X) / (torch.sqrt(var + eps) if stats != "mean" else 1.0)
    Y = gamma * X_hat + beta
    return Y, moving_mean, moving_var


class BatchNorm(nn.Module):
    """d2l's BatchNorm layer; the moving statistics are buffers so they follow .to() and state_dict. Without
    `affine`, the scale γ and shift β stay at 1 and 0 (buffers, not learned)."""

    def __init__(self, num_features, num_dims, stats="both", affine=True):
        super().__init__()
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.stats = stats
        if affine:
            self.gamma = nn.Parameter(torch.ones(shape))
            self.beta = nn.Parameter(torch.zeros(shape))
        else:
            self.register_buffer("gamma", torch.ones(shape))
            self.register_buffer("beta", torch.zeros(shape))
        self.register_buffer("moving_mean", torch.zeros(shape))
        self.register_buffer("moving_var", torch.ones(shape))

    def forward(self, X):
        Y, moving_mean, moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean, self.moving_var,
            eps=1e-5, momentum=0.9, training=self.training, stats=self.stats)
        if self.training:
            self.moving_mean.copy_(moving_mean.reshape(self.moving_mean.shape))
            self.moving_var.copy_(moving_var.reshape(self.moving_var.shape))
        return Y


def lenet(norm, channels, fc, first_padding, kernel, pool, activation, dropout, norm_at, bias, norm_stats,
          affine, resolution, in_channels, num_classes):
    """LeNet-5: convolutions, each followed by a 2x2 pool, then dense layers (the book: sigmoids and average
    pooling, two of each). `norm` adds BatchNorm after the convolutions and hidden dense layers (`norm_at`
    picks which); `bias` off drops the bias of a layer a norm follows, whose shift undoes it anyway."""
    Activation = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}[activation]
    Pool = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}[pool]

    def norm_layer(num_features, num_dims):
        if norm == "none" or norm_at != "every" and norm_at != ("convolutions" if num_dims == 4 else "dense"):
            return []
        if norm == "scratch":
            return [BatchNorm(num_features, num_dims, norm_stats, affine)]
        return [nn.BatchNorm2d(num_features, affine=affine) if num_dims == 4
                else nn.BatchNorm1d(num_features, affine=affine)]

    def has_bias(num_dims):
        return bias or not norm_layer(1, num_dims)

    layers, size, padding = [], resolution, first_padding
    for out_channels in channels:
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=kernel, padding=padding, bias=has_bias(4)),
                   *norm_layer(out_channels, 4), Activation(), Pool(kernel_size=2, stride=2)]
        size = (size + 2 * padding - kernel + 1) // 2
        in_channels, padding = out_channels, 0
    layers.append(nn.Flatten())
    width = in_channels * size * size
    for hidden in fc:
        layers += [nn.Linear(width, hidden, bias=has_bias(2)), *norm_layer(hidden, 2), Activation(),
                   *([nn.Dropout(dropout)] if dropout else [])]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


@dataclass(frozen=True)
class LeNetConfig(ModelConfig):
    norm: Literal["none", "scratch", "builtin"] = knob(
        "none", help="batch normalization: none, the book's from-scratch BatchNorm, or nn.BatchNorm2d/1d")
    channels: tuple[int, ...] = knob((6, 16), lo=1, hi=1024, help="output channels of each convolution (each "
                                                                   "is followed by a 2x2 pool)")
    fc: tuple[int, ...] = knob((120, 84), lo=1, hi=8192, help="widths of the hidden dense layers")
    first_padding: int = knob(2, lo=0, hi=8, help="padding of the first convolution (the BN LeNet uses 0)")
    kernel: int = knob(5, lo=1, hi=11, help="the convolutions' kernel size")
    pool: Literal["avg", "max"] = knob("avg", help="average pooling (the book) or max pooling")
    activation: Literal["sigmoid", "relu", "tanh"] = knob("sigmoid", help="the activation after each layer but "
                                                                           "the last")
    dropout: float = knob(0.0, lo=0.0, hi=0.95, help="dropout probability after each hidden dense layer")
    norm_at: Literal["every", "convolutions", "dense"] = knob(
        "every", help="where the batch norms go: after every convolution and hidden dense layer (the book), or "
                      "after the convolutions only, or the dense layers only")
    bias: bool = knob(True, help="layers followed by a batch norm keep their bias; off: no bias there (the "
                                 "norm's shift β takes its place)")
    norm_stats: Literal["both", "mean", "variance"] = knob(
        "both", help="what the book's BatchNorm removes: the mean and the variance, or only one of them (needs "
                     "norm=scratch)")
    affine: bool = knob(True, help="the batch norms learn their scale γ and shift β; off: γ and β stay 1 and 0")
    resolution: int = knob(28, lo=8, hi=512, help="input height and width in pixels")

    depth_knob: ClassVar[str | None] = "channels"

    def check(self) -> None:
        if self.norm_stats != "both" and self.norm != "scratch":
            raise ConfigError("norm_stats", "a batch norm that removes only the {stats} is the book's BatchNorm "
                                            "changed: set norm to scratch", ("norm",), stats=self.norm_stats)


register(ModelEntry("lenet", "LeNet", "LeNet-5 with sigmoid activations and average pooling",
                    "6.6", LeNetConfig(), lenet, BookSettings(lr=0.9, batch_size=256),
                    presets=Presets(network={}, quick={"epochs": 7, "batch_size": 64},
                                    # sigmoids want a high rate, and no weight decay or smoothing; the flips
                                    # and shifts are what carry it past 90% (0.892 in 60 epochs without them)
                                    fast={"epochs": 70, "batch_size": 128, "lr": 1.0, "weight_decay": 0.0,
                                          "label_smoothing": 0.0})))
WITH_BATCH_NORM = Presets(network={}, quick={"epochs": 5, "batch_size": 128, "lr": 0.5},
                          fast={"epochs": 20, "batch_size": 128, "lr": 0.3})
register(ModelEntry("lenet-bn-scratch", "LeNet", "LeNet with the book's from-scratch BatchNorm layers",
                    "7.5.3", LeNetConfig(norm="scratch", first_padding=0), lenet,
                    BookSettings(lr=1.0, batch_size=256), presets=WITH_BATCH_NORM,
                    norms=(NormView(BatchNorm, "BN", lambda m: (m.moving_mean, m.moving_var), ("gamma", "beta")),)))
register(ModelEntry("lenet-bn", "LeNet", "LeNet with nn.BatchNorm2d / nn.BatchNorm1d (concise)",
                    "7.5.4", LeNetConfig(norm="builtin", first_padding=0), lenet,
                    BookSettings(lr=1.0, batch_size=256), presets=WITH_BATCH_NORM))
