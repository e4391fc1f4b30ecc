"""The data path: Fashion-MNIST as uint8 tensors on the training device, and what a batch goes through
before the network (the fast recipe's flips and shifts, scaling to [0, 1], resizing), all on the device."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from explorer.training.data import ImageData


class DeviceData:
    """Fashion-MNIST as uint8 tensors on the device; a batch is resized there, never per sample."""

    def __init__(self, data: ImageData, device: torch.device, subset: int | None, seed: int) -> None:
        n = len(data.train_labels)
        if subset is not None and subset < n:
            keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:subset]
        else:
            keep = torch.arange(n)
        pin = device.type == "cuda"
        self.train_x = _to(data.train_images[keep].unsqueeze(1), device, pin)
        self.train_y = _to(data.train_labels[keep], device, pin)
        self.test_x = _to(data.test_images.unsqueeze(1), device, pin)
        self.test_y = _to(data.test_labels, device, pin)


def _to(t: torch.Tensor, device: torch.device, pin: bool) -> torch.Tensor:
    return (t.pin_memory() if pin else t).to(device, non_blocking=pin)


def prepare(x: torch.Tensor, resolution: int, channels_last: bool) -> torch.Tensor:
    """uint8 (N, 1, 28, 28) -> float in [0, 1] at `resolution`: ToTensor then a bilinear Resize."""
    x = x.float().div_(255)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=resolution < x.shape[-1])
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def augment(x: torch.Tensor, generator: torch.Generator, shift: int = 2, flip: bool = True) -> torch.Tensor:
    """Random horizontal flips (with `flip`) and shifts of up to `shift` pixels of a batch (N, C, H, W), each
    image its own, on the device (Fashion-MNIST's clothes are left-right symmetric; digits are not). Each
    image's window is picked from a view of every window (unfold): half the time of gathering pixel by pixel."""
    n, _, h, w = x.shape
    if flip:
        flipped = torch.rand(n, device=x.device, generator=generator) < 0.5
        x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
    dy, dx = torch.randint(-shift, shift + 1, (2, n), device=x.device, generator=generator)
    windows = F.pad(x, (shift, shift, shift, shift)).unfold(2, h, 1).unfold(3, w, 1)  # (N, C, 2s+1, 2s+1, H, W)
    return windows[torch.arange(n, device=x.device), :, shift - dy, shift - dx]
