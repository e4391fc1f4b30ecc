"""How long a run will take, from a measurement on this machine rather than a formula.

A config's training throughput comes from earlier runs of the same config, batch size and device when
there are any, else from timing a few real SGD steps here (cached per config, in the process and in the
run store, so the Train page and the run's worker measure once between them), plus the data path the step
leaves out (indexing, augmentation, resizing), timed on a few batches. The run's time is then its
training images at that rate, a test pass per epoch (a forward pass costs about a third of a step), and
the fixed cost of loading the data and building the model.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
from dataclasses import dataclass

import torch
from torch import nn

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import ConfigError
from explorer.summary import summarize
from explorer.training.store import RunStore

TEST_IMAGES = 10_000
STARTUP_SECONDS = 2.0           # reading the data and building the model, measured on a 2-core CPU
STEP_BUDGET_MULT_ADDS = 4e9     # one timed step at most this much work: big configs are timed on fewer images
_lock = threading.Lock()        # one calibration at a time: they would slow each other down


@dataclass(frozen=True)
class Estimate:
    seconds: float
    images_per_sec: float       # training throughput the estimate assumes
    source: str                 # where the throughput comes from, in words

    @property
    def text(self) -> str:
        return f"{human_duration(self.seconds)} ({self.source})"


def human_duration(seconds: float) -> str:
    """'about 40 s', 'about 4 min', 'about 2 h': never raw seconds."""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    hours = seconds / 3600
    return f"about {hours:.1f} h" if hours < 10 else f"about {round(hours)} h"


def max_run_seconds() -> float:
    """The longest run a server accepts (EXPLORER_MAX_RUN_MINUTES, default 30)."""
    try:
        minutes = float(os.environ.get("EXPLORER_MAX_RUN_MINUTES", 30))
    except ValueError:
        minutes = 30.0
    return minutes * 60


def run_seconds(images_per_sec: float, train_images: int, epochs: int, test_images: int = TEST_IMAGES) -> float:
    """Wall time of a run at a training throughput: its steps, one test pass per epoch, the start-up."""
    per_epoch = train_images / images_per_sec + test_images / (3 * images_per_sec)
    return STARTUP_SECONDS + epochs * per_epoch


def estimate_run(config: ModelConfig, batch_size: int, epochs: int, train_images: int, device: str,
                 store: RunStore | None = None, threads: int | None = None,
                 test_images: int = TEST_IMAGES, tta: bool = False, augment: bool = False) -> Estimate:
    """The expected wall time of a run; see the module's docstring for how. With `tta` each test image
    is seen twice (itself and its mirror); `augment` adds the fast recipe's flips and shifts to each batch."""
    past = _past_rate(config, batch_size, device, augment, store) if store is not None else None
    if past is not None:
        rate, source = past, "measured by earlier runs of this config"
    else:
        step = measure_step(config, batch_size, device, threads, store).images_per_sec
        rate = 1 / (1 / step + data_seconds(config.resolution, batch_size, augment, device))
        source = "measured on this machine"
    return Estimate(run_seconds(rate, train_images, epochs, test_images * (2 if tta else 1)), rate, source)


def _past_rate(config: ModelConfig, batch_size: int, device: str, augment: bool, store: RunStore) -> float | None:
    for r in reversed(store.with_status("done", "stopped")[-50:]):
        if not r.images_per_sec or r.settings.get("device") != device or r.settings.get("batch_size") != batch_size:
            continue
        if bool(r.settings.get("augment", False)) != augment:  # its rate paid for augmentation, or did not
            continue
        try:
            same = registry.config_from(r.model, r.config) == config
        except (ConfigError, TypeError):  # a run stored by an older catalog
            continue
        if same:
            return float(r.images_per_sec)
    return None


@functools.lru_cache(maxsize=64)
def data_seconds(resolution: int, batch_size: int, augment: bool, device: str) -> float:
    """Seconds per training image of what the step's timing leaves out: picking the batch's uint8 images,
    the recipe's flips and shifts, scaling to [0, 1] and resizing. Measured on 4 batches after one; on
    this 2-core CPU it is 1-10% of a run (most where the step is cheap: LeNet with augmentation)."""
    from explorer.training.train import augment as flip_and_shift
    from explorer.training.train import prepare

    dev = torch.device(device)
    generator = torch.Generator(device=dev).manual_seed(0)
    images = torch.randint(0, 256, (5 * batch_size, 1, 28, 28), dtype=torch.uint8, device=dev)
    order = torch.randperm(len(images), device=dev, generator=generator)

    def batch(i: int) -> None:
        x = images[order[i * batch_size:(i + 1) * batch_size]]
        prepare(flip_and_shift(x, generator) if augment else x, resolution, False)

    with _lock:
        batch(0)
        _sync(dev)
        start = time.perf_counter()
        for i in range(1, 5):
            batch(i)
        _sync(dev)
        return (time.perf_counter() - start) / (4 * batch_size)


@dataclass(frozen=True)
class StepTiming:
    """Training images per second of one config in each memory format, and the faster format."""

    contiguous: float
    channels_last: float
    cached: bool = False  # read from the run store, not measured now

    def describe(self) -> dict[str, object]:
        """What a run records and its page shows: the rates, the choice and where it came from."""
        return {"contiguous": round(self.contiguous, 1), "channels_last": round(self.channels_last, 1),
                "memory_format": "channels_last" if self.use_channels_last else "contiguous",
                "cached": self.cached}

    @property
    def use_channels_last(self) -> bool:
        return self.channels_last > self.contiguous

    @property
    def images_per_sec(self) -> float:
        return max(self.contiguous, self.channels_last)


def measure_step(config: ModelConfig, batch_size: int, device: str = "cpu", threads: int | None = None,
                 store: RunStore | None = None) -> StepTiming:
    """The step rates of `config` in both memory formats: from the store's cache when this machine measured
    this config, batch size, device and thread count before, else measured now (and saved there)."""
    key = json.dumps([socket.gethostname(), torch.__version__, type(config).__name__, config.kwargs(), batch_size,
                      device, threads or torch.get_num_threads()], sort_keys=True, default=list)
    saved = store.calibration(key) if store is not None else None
    if saved is not None:
        return StepTiming(saved["contiguous"], saved["channels_last"], cached=True)
    timing = _measure_step(config, batch_size, device, threads)
    if store is not None:
        store.save_calibration(key, {"contiguous": timing.contiguous, "channels_last": timing.channels_last})
    return timing


@functools.lru_cache(maxsize=256)
def _measure_step(config: ModelConfig, batch_size: int, device: str, threads: int | None) -> StepTiming:
    """Time a few real SGD steps on random data in both memory formats, after a warm-up of each.

    `channels_last` speeds some networks up and halves others (LeNet-BN on a CPU), so it is measured per
    config, never assumed. A config too big to time cheaply is timed on fewer images per step and scaled
    up per image, which errs towards a longer estimate: a bigger batch only runs faster per image.
    """
    from explorer.training.train import default_threads, new_model

    work = 3 * summarize(config).totals.mult_adds  # backward costs about twice the forward
    batch = max(2, min(batch_size, int(STEP_BUDGET_MULT_ADDS // max(work, 1))))
    dev = torch.device(device)
    with _lock:
        torch.set_num_threads(threads or default_threads())
        model = new_model(config).to(dev)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        loss_fn = nn.CrossEntropyLoss()
        x = torch.rand(batch, config.in_channels, config.resolution, config.resolution, device=dev)
        y = torch.randint(0, config.num_classes, (batch,), device=dev)
        formats = (torch.contiguous_format, torch.channels_last)
        inputs = {fmt: x.contiguous(memory_format=fmt) for fmt in formats}

        def step(fmt: torch.memory_format) -> float:
            model.to(memory_format=fmt)  # converting the weights is not part of the timed step
            _sync(dev)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(inputs[fmt]), y).backward()
            optimizer.step()
            _sync(dev)
            return time.perf_counter() - start

        for fmt in formats:  # warm-up of both before either is timed: the first one timed would pay for it
            step(fmt)
        seconds = dict.fromkeys(formats, 0.0)
        steps, start = 0, time.perf_counter()
        while steps < 5 and (steps < 2 or time.perf_counter() - start < 0.8):
            for fmt in formats:  # alternated, so a busy moment of the machine hits both alike
                seconds[fmt] += step(fmt)
            steps += 1
        rates = {fmt: steps * batch / seconds[fmt] for fmt in formats}
    return StepTiming(rates[torch.contiguous_format], rates[torch.channels_last])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
