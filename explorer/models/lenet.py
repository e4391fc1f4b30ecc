"""LeNet (d2l 6.6) and LeNet with batch normalization (d2l 7.5), from scratch and concise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from explorer.config import ModelConfig, knob
from explorer.registry import BookSettings, ModelEntry, NormView, Presets, register


def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum, training):
    """d2l's batch_norm: batch statistics while training, moving averages in evaluation."""
    if not training:
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
        else:
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        X_hat = (X - mean) / torch.sqrt(var + eps)
        moving_mean = momentum * moving_mean + (1.0 - momentum) * mean.detach()
        moving_var = momentum * moving_var + (1.0 - momentum) * var.detach()
    Y = gamma * X_hat + beta
    return Y, moving_mean, moving_var


class BatchNorm(nn.Module):
    """d2l's BatchNorm layer; the moving statistics are buffers so they follow .to() and state_dict."""

    def __init__(self, num_features, num_dims):
        super().__init__()
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.register_buffer("moving_mean", torch.zeros(shape))
        self.register_buffer("moving_var", torch.ones(shape))

    def forward(self, X):
        Y, moving_mean, moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean, self.moving_var,
            eps=1e-5, momentum=0.9, training=self.training)
        if self.training:
            self.moving_mean.copy_(moving_mean.reshape(self.moving_mean.shape))
            self.moving_var.copy_(moving_var.reshape(self.moving_var.shape))
        return Y


def lenet(norm, channels, fc, first_padding, resolution, in_channels, num_classes):
    """LeNet-5 with sigmoids and average pooling; `norm` adds BatchNorm after each conv and hidden linear."""
    def norm_layer(num_features, num_dims):
        if norm == "scratch":
            return [BatchNorm(num_features, num_dims)]
        if norm == "builtin":
            return [nn.BatchNorm2d(num_features) if num_dims == 4 else nn.BatchNorm1d(num_features)]
        return []

    c1, c2 = channels
    size = (resolution + 2 * first_padding - 4) // 2  # conv 5x5, then pool 2x2
    size = (size - 4) // 2                            # conv 5x5, then pool 2x2
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, kernel_size=5, padding=first_padding), *norm_layer(c1, 4), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(c1, c2, kernel_size=5), *norm_layer(c2, 4), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(c2 * size * size, fc[0]), *norm_layer(fc[0], 2), nn.Sigmoid(),
        nn.Linear(fc[0], fc[1]), *norm_layer(fc[1], 2), nn.Sigmoid(),
        nn.Linear(fc[1], num_classes))


@dataclass(frozen=True)
class LeNetConfig(ModelConfig):
    norm: Literal["none", "scratch", "builtin"] = knob(
        "none", help="batch normalization: none, the book's from-scratch BatchNorm, or nn.BatchNorm2d/1d")
    channels: tuple[int, int] = knob((6, 16), lo=1, hi=1024, help="output channels of the two convolutions")
    fc: tuple[int, int] = knob((120, 84), lo=1, hi=8192, help="widths of the two hidden linear layers")
    first_padding: int = knob(2, lo=0, hi=8, help="padding of the first convolution (the BN LeNet uses 0)")
    resolution: int = knob(28, lo=8, hi=512, help="input height and width in pixels")


register(ModelEntry("lenet", "LeNet", "LeNet-5 with sigmoid activations and average pooling",
                    "6.6", LeNetConfig(), lenet, BookSettings(lr=0.9, batch_size=256),
                    presets=Presets(network={}, quick={"epochs": 7, "batch_size": 64},
                                    # sigmoids want a high rate, and no weight decay, smoothing or augmentation
                                    fast={"epochs": 40, "batch_size": 64, "lr": 0.6, "weight_decay": 0.0,
                                          "label_smoothing": 0.0, "augment": False})))
WITH_BATCH_NORM = Presets(network={}, quick={"epochs": 5, "batch_size": 128, "lr": 0.5},
                          fast={"epochs": 8, "batch_size": 128, "lr": 0.3})
register(ModelEntry("lenet-bn-scratch", "LeNet", "LeNet with the book's from-scratch BatchNorm layers",
                    "7.5.3", LeNetConfig(norm="scratch", first_padding=0), lenet,
                    BookSettings(lr=1.0, batch_size=256), presets=WITH_BATCH_NORM,
                    norms=(NormView(BatchNorm, "BN", lambda m: (m.moving_mean, m.moving_var), ("gamma", "beta")),)))
register(ModelEntry("lenet-bn", "LeNet", "LeNet with nn.BatchNorm2d / nn.BatchNorm1d (concise)",
                    "7.5.4", LeNetConfig(norm="builtin", first_padding=0), lenet,
                    BookSettings(lr=1.0, batch_size=256), presets=WITH_BATCH_NORM))
