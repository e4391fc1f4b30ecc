"""The network as a run starts it and the pieces of its loop: initialisation, the optimizer and its
schedule, threads and devices, prediction."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from explorer import registry
from explorer.config import ModelConfig
from explorer.training.pipeline import prepare
from explorer.training.recipes import Init, TrainSettings


def init_weights(m: nn.Module) -> None:
    """d2l's init: Xavier-uniform weights for every Linear and Conv2d."""
    if type(m) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(m.weight)


def kaiming_init(model: nn.Module) -> None:
    """He et al.'s init for ReLU networks: normal weights scaled by fan-in so each ReLU keeps the signal's
    variance (Xavier's halves it at every ReLU: after NiN's 12 layers an image's output differs from the
    next one's by 0.01%), and zero biases. Where a ReLU follows the last layer (NiN's class scores), its
    weights start non-negative: its inputs are ReLU outputs too, so no class starts at zero for every
    image, where its gradient would be zero for good."""
    modules = list(model.modules())
    layers = [i for i, m in enumerate(modules) if type(m) in (nn.Linear, nn.Conv2d)]
    for i in layers:
        nn.init.kaiming_normal_(modules[i].weight, nonlinearity="relu")
        if modules[i].bias is not None:
            nn.init.zeros_(modules[i].bias)
    if any(isinstance(m, nn.ReLU) for m in modules[layers[-1] + 1:]):
        with torch.no_grad():
            modules[layers[-1]].weight.abs_()


def new_model(config: ModelConfig, seed: int = 0, init: Init = "xavier") -> nn.Module:
    """The network as a run starts it: built, then initialised (d2l's Xavier, or Kaiming) with torch seeded
    by `seed`."""
    torch.manual_seed(seed)
    model = registry.build(config)
    if init == "kaiming":
        kaiming_init(model)
    else:
        model.apply(init_weights)
    return model


def cuda_available() -> bool:
    return torch.cuda.is_available()


def bf16_native(device: str = "cpu", cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this hardware computes in bfloat16 itself: on a CPU, the AVX-512 BF16 or AMX instructions its
    flags list (without them torch emulates bfloat16, 14x slower on one of this project's machines); on a
    GPU, what torch says of it."""
    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    except OSError:  # not Linux: no way to tell, so not assumed
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def autocast_dtype(device: str, use_bf16: bool) -> torch.dtype | None:
    """The precision a run computes in under autocast: bfloat16 where its measurement found it faster
    (StepTiming.use_bf16, timed on a CPU or GPU that computes it natively); on a GPU without bfloat16,
    float16 with a loss scaler, unmeasured (its tensor cores only run reduced precision); else float32
    (None)."""
    if device == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16 if use_bf16 else None


def default_threads() -> int:
    """Torch's CPU threads per run: the cores this process may use (EXPLORER_THREADS, else the affinity mask);
    a run's worker and a measurement set it before they start."""
    return int(os.environ.get("EXPLORER_THREADS", 0)) or len(os.sched_getaffinity(0))


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, resolution: int, channels_last: bool,
            amp_dtype: torch.dtype | None, batch_size: int = 500, tta: bool = False) -> torch.Tensor:
    """Predicted class of every image, in evaluation mode (BatchNorm uses its moving averages); with `tta`,
    from the summed probabilities of each image and its mirror image."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        X = prepare(images[i:i + batch_size], resolution, channels_last)
        with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            scores = model(X).softmax(dim=1)
            if tta:
                scores = scores + model(X.flip(-1)).softmax(dim=1)
        out.append(scores.argmax(dim=1))
    return torch.cat(out)


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """SGD (or Adam) as the settings ask; weight decay only on the weights of convolutions and linear layers,
    since decaying biases and batch norm's scale and shift only hurts. (Not "every tensor of two or more
    dimensions": d2l's own BatchNorm keeps its scale and shift as (1, C, 1, 1) tensors.) Adam's decay is
    decoupled from its update (AdamW), so that it decays the weights as SGD's does."""
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}
    weights = [p for p in model.parameters() if id(p) in decayed]
    others = [p for p in model.parameters() if id(p) not in decayed]
    groups = [{"params": weights, "weight_decay": settings.weight_decay}, {"params": others, "weight_decay": 0.0}]
    if settings.optimizer == "adam":
        return torch.optim.AdamW(groups, lr=settings.lr)
    return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum, nesterov=settings.nesterov)


def lr_factor(step: int, total: int, settings: TrainSettings) -> float:
    """The learning rate at `step` of `total`, as a fraction of settings.lr: a linear warm-up, then constant
    or a half cosine down to zero."""
    warm = int(settings.warmup * total)
    if step < warm:
        return (step + 1) / warm
    if not settings.cosine:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def sgd_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, X: torch.Tensor,
             y: torch.Tensor, scaler: torch.amp.GradScaler | None = None,
             amp_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step, as runs, estimates and benchmarks all take it: the forward pass (in mixed precision
    where `amp_dtype` says), the loss, the backward pass (scaled where `scaler` is given) and the optimizer's
    step. Returns the loss and the scores."""
    with torch.autocast(X.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        y_hat = model(X)
        loss = loss_fn(y_hat, y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss, y_hat
