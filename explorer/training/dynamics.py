"""What happens inside a network while it trains, per layer with weights: how large its gradient is, how far
one step moves its weights relative to their size, and what its output looks like (mean, spread, the share of
channels a ReLU after it would zero for every image, the share of values where a sigmoid after it is flat).

Read on the steps a run reports (a few dozen an epoch), so "the gradient reaches the first layer" or "it does
not" is a measurement of the real run, at a cost the training step hardly notices (python -m explorer bench
dynamics). A layer is a module that owns parameters itself (a convolution, a dense layer, a batch norm, the
book's BatchNorm from scratch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

SATURATED = 4.0  # |x| beyond this: a sigmoid's slope is under 2% of its peak, so almost no gradient passes

STATISTICS = {  # each per-layer statistic (a column of the run store's dynamics) in words, for charts and the CLI
    "grad_norm": "gradient norm",
    "update_ratio": "update size / weight size",
    "out_mean": "output mean",
    "out_std": "output spread (std)",
    "dead": "share of dead channels (never above 0)",
    "saturated": f"share of outputs beyond ±{SATURATED:g} (a sigmoid's flat ends)",
}


@dataclass(frozen=True)
class Layer:
    path: str
    type: str
    module: nn.Module
    params: tuple[nn.Parameter, ...]


def layers(model: nn.Module) -> list[Layer]:
    """The modules that own trainable parameters themselves, in the order the model lists them."""
    found = []
    for path, module in model.named_modules():
        params = tuple(p for p in module.parameters(recurse=False) if p.requires_grad)
        if params:
            found.append(Layer(path, type(module).__name__, module, params))
    return found


class Watch:
    """Reads one training step: its outputs as the forward pass makes them, then (after the optimizer's step)
    each layer's gradient and how far the step moved its weights."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = layers(model)

    @contextlib.contextmanager
    def step(self) -> Iterator[list[dict]]:
        """Around one `sgd_step`: yields the list the step's readings are put in once the block ends. Each
        statistic stays a tensor until one transfer at the end (a GPU is not waited for layer by layer)."""
        outputs: dict[str, torch.Tensor] = {}
        hooks = [layer.module.register_forward_hook(
            lambda m, args, out, path=layer.path: outputs.__setitem__(path, _output_stats(out)))
            for layer in self.layers]
        before = [[p.detach().clone() for p in layer.params] for layer in self.layers]
        readings: list[dict] = []
        try:
            yield readings
        finally:
            for h in hooks:
                h.remove()
        nan = torch.full((4,), float("nan"))
        with torch.no_grad():
            rows = []
            for layer, old in zip(self.layers, before, strict=True):
                grads = [p.grad.float().norm() for p in layer.params if p.grad is not None]
                moved = torch.stack([(p.float() - o.float()).norm() for p, o in zip(layer.params, old, strict=True)])
                size = torch.stack([o.float().norm() for o in old]).norm()
                grad = torch.stack(grads).norm() if grads else moved.new_tensor(float("nan"))
                rows.append(torch.cat([torch.stack([grad, moved.norm() / size.clamp_min(1e-12)]),
                                       outputs.get(layer.path, nan).to(grad.device)]))
            values = torch.stack(rows).tolist() if rows else []
        for layer, (grad, ratio, mean, std, dead, saturated) in zip(self.layers, values, strict=True):
            readings.append({"layer": layer.path, "type": layer.type, "grad_norm": grad, "update_ratio": ratio,
                             "out_mean": mean, "out_std": std, "dead": dead, "saturated": saturated})


def _output_stats(out: torch.Tensor | tuple) -> torch.Tensor:
    """Mean, spread, share of channels never above zero over the batch, share of values beyond ±SATURATED."""
    if not isinstance(out, torch.Tensor) or out.ndim < 2 or out.numel() < 2:
        return torch.full((4,), float("nan"))
    with torch.no_grad():
        x = out.detach()
        peaks = x.amax(dim=[d for d in range(x.ndim) if d != 1])  # each channel's largest value over the batch
        # (mean and std, not torch.std_mean: that took 4x as long on a CPU)
        return torch.stack([x.mean(), x.std(), (peaks <= 0).sum() / peaks.numel(),
                            (x.abs() > SATURATED).sum() / x.numel()]).float()


__all__ = ["STATISTICS", "SATURATED", "Watch", "layers"]
