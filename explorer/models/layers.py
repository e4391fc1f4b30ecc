"""Layers more than one family adds the same way."""

from __future__ import annotations

from torch import nn


def norm_after(norm, num_features, num_dims=4):
    """The batch norm that follows a convolution (`num_dims` 4) or a dense layer (2) when `norm` is "builtin";
    nothing when it is "none"."""
    if norm != "builtin":
        return []
    return [nn.BatchNorm2d(num_features) if num_dims == 4 else nn.BatchNorm1d(num_features)]
