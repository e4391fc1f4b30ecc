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
READ_IMAGES = 32  # a layer's output is read on the batch's first 32 images: the same sample whatever the batch
                  # size, and an eighth of the work at the book's 256 (python -m explorer bench dynamics)

STATISTICS = {  # each per-layer statistic (a column of the run store's dynamics) in words, for charts and the CLI
    "grad_norm": "gradient norm",
    "update_ratio": "update size / weight size",
    "out_mean": "output mean",
    "out_std": "output spread (std)",
    "dead": "share of dead channels (never above 0 on 32 images)",
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
        statistic stays a tensor until one transfer at the end (a GPU is not waited for layer by layer), and
        the norms of every layer's tensors are taken in a few calls for all of them at once."""
        outputs: dict[str, torch.Tensor] = {}
        hooks = [layer.module.register_forward_hook(
            lambda m, args, out, path=layer.path: outputs.__setitem__(path, _output_stats(out)))
            for layer in self.layers]
        params = [p for layer in self.layers for p in layer.params]
        before = [p.detach().clone() for p in params]
        readings: list[dict] = []
        try:
            yield readings
        finally:
            for h in hooks:
                h.remove()
        if not params:
            return
        with torch.no_grad():
            device = params[0].device
            owner = torch.tensor([i for i, layer in enumerate(self.layers) for _ in layer.params], device=device)

            def per_layer(values: torch.Tensor) -> torch.Tensor:
                """Each layer's sum of `values`, one per tensor (index_add_: one call, not one per layer)."""
                return torch.zeros(len(self.layers), device=device).index_add_(0, owner, values.float())

            def norms(tensors: list[torch.Tensor]) -> torch.Tensor:  # each layer's norm over all its tensors
                return per_layer(torch.stack(torch._foreach_norm(tensors)) ** 2).sqrt()

            # a tensor without a gradient adds nothing; a layer with none reads NaN
            grads = [p.grad if p.grad is not None else p.new_zeros(()) for p in params]
            with_grad = per_layer(torch.tensor([p.grad is not None for p in params], device=device))
            grad = torch.where(with_grad > 0, norms(grads), float("nan"))
            ratio = norms(torch._foreach_sub([p.detach() for p in params], before)) / norms(before).clamp_min(1e-12)
            nan = torch.full((4,), float("nan"), device=device)
            out = torch.stack([outputs.get(layer.path, nan).to(device) for layer in self.layers])
            values = torch.cat([grad[:, None], ratio[:, None], out], dim=1).tolist()
        for layer, (grad, ratio, mean, std, dead, saturated) in zip(self.layers, values, strict=True):
            readings.append({"layer": layer.path, "type": layer.type, "grad_norm": grad, "update_ratio": ratio,
                             "out_mean": mean, "out_std": std, "dead": dead, "saturated": saturated})


def _output_stats(out: torch.Tensor | tuple) -> torch.Tensor:
    """Mean, spread, share of channels never above zero over the images read, share of values beyond
    ±SATURATED; in float32 (a bfloat16 step's outputs are converted once: reductions over bfloat16 took six
    times as long on a CPU)."""
    if not isinstance(out, torch.Tensor) or out.ndim < 2 or out.numel() < 2:
        return torch.full((4,), float("nan"))
    with torch.no_grad():
        x = out.detach()[:READ_IMAGES].float()
        peaks = x.amax(dim=[d for d in range(x.ndim) if d != 1])  # each channel's largest value over the images
        # (mean and std, not torch.std_mean: that took 4x as long on a CPU; count_nonzero, not a boolean sum:
        # a seventh of its time)
        counts = torch.stack([torch.count_nonzero(peaks <= 0), torch.count_nonzero(x.abs() > SATURATED)])
        return torch.cat([torch.stack([x.mean(), x.std()]), counts / counts.new_tensor([peaks.numel(), x.numel()])])


__all__ = ["STATISTICS", "SATURATED", "Watch", "layers"]
