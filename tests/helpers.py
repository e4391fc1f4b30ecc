"""Small tools the tests share."""

import torch
from torch import nn


def leaf_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Output shape of every leaf module, in call order, from one forward pass on the meta device."""
    shapes = []
    hooks = [m.register_forward_hook(lambda m, a, out: shapes.append(tuple(out.shape)))
             for m in model.modules() if not any(m.children())]
    model.eval()(torch.empty(1, *input_shape, device="meta"))
    for h in hooks:
        h.remove()
    return shapes


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
