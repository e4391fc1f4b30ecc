"""Training as d2l's train_ch6 does it (Xavier init, SGD, cross-entropy), with a faster pipeline.

The dataset lives on the training device as one uint8 tensor; a batch is a slice of a shuffled index,
scaled to [0, 1] and resized on the device. The memory format (contiguous or channels_last) is the faster
of the two in a measurement of this config before the first step (explorer.training.estimate.measure_step): it
helps ResNet-18 and halves LeNet-BN on a CPU. On CUDA also mixed precision and cudnn autotuning.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import ConfigError
from explorer.summary import check
from explorer.training.data import CLASS_NAMES, FashionMNIST, load_fashion_mnist
from explorer.training.estimate import MachineLoad, StepTiming, measure_step
from explorer.training.store import RunStore

Device = Literal["cpu", "cuda"]
Init = Literal["xavier", "kaiming"]


@dataclass(frozen=True)
class TrainSettings:
    lr: float
    epochs: int
    batch_size: int
    train_subset: int | None = None  # None: all 60,000 training images
    device: Device = "cpu"
    seed: int = 0
    init: Init = "xavier"         # d2l's; "kaiming" keeps deep ReLU networks' signal (see init_weights)
    # The modern recipe (the `fast` preset); the defaults are the book's plain SGD at a constant rate.
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0     # on weights only: not on biases or batch norm's scale and shift
    warmup: float = 0.0           # the fraction of all steps over which the rate rises linearly from zero
    cosine: bool = False          # after the warm-up, the rate falls to zero along a half cosine
    label_smoothing: float = 0.0
    augment: bool = False         # random horizontal flips and shifts of up to 2 pixels, on the device
    tta: bool = False             # test-time augmentation: average the predictions of each image and its mirror

    def __post_init__(self) -> None:
        checks = [
            ("lr", isinstance(self.lr, (int, float)) and 0 < self.lr <= 100, "a number in (0, 100]"),
            ("epochs", _is_int(self.epochs) and 1 <= self.epochs <= 200, "a whole number from 1 to 200"),
            ("batch_size", _is_int(self.batch_size) and 2 <= self.batch_size <= 4096,
             "a whole number from 2 to 4096"),
            ("train_subset", self.train_subset is None
             or (_is_int(self.train_subset) and 2 <= self.train_subset <= 60_000),
             "empty (all images) or a whole number from 2 to 60000"),
            ("device", self.device in ("cpu", "cuda"), "cpu or cuda"),
            ("seed", _is_int(self.seed) and 0 <= self.seed < 2**31, "a whole number >= 0"),
            ("init", self.init in ("xavier", "kaiming"), "xavier or kaiming"),
            ("momentum", _is_number(self.momentum) and 0 <= self.momentum < 1, "a number in [0, 1)"),
            ("nesterov", isinstance(self.nesterov, bool) and (not self.nesterov or self.momentum > 0),
             "true only with a momentum above 0"),
            ("weight_decay", _is_number(self.weight_decay) and 0 <= self.weight_decay <= 0.1, "a number in [0, 0.1]"),
            ("warmup", _is_number(self.warmup) and 0 <= self.warmup <= 0.5, "a fraction of the steps in [0, 0.5]"),
            ("cosine", isinstance(self.cosine, bool), "true or false"),
            ("label_smoothing", _is_number(self.label_smoothing) and 0 <= self.label_smoothing <= 0.5,
             "a number in [0, 0.5]"),
            ("augment", isinstance(self.augment, bool), "true or false"),
            ("tta", isinstance(self.tta, bool), "true or false"),
        ]
        for knob, ok, expected in checks:
            if not ok:
                raise ConfigError(knob, f"must be {expected}, not {getattr(self, knob)!r}")
        object.__setattr__(self, "lr", float(self.lr))


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Preset:
    config: ModelConfig
    settings: TrainSettings
    changes: tuple[str, ...]  # what differs from the book, in words


# quick: about a minute on a 2-core CPU (a lower resolution, narrower layers where plain SGD needs many steps).
# fast: the quick preset's network with a modern recipe, the same pieces for every model; the rate (higher
# with batch norm), epochs and batch size per model, sized for at most 5 minutes on a 2-core CPU, and
# Kaiming init for the deep ReLU networks without batch norm. Each network's changes are in its catalog
# entry (registry.Presets); measured accuracies are in the README.
RECIPE = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "warmup": 0.1, "cosine": True,
          "label_smoothing": 0.1, "augment": True, "tta": True}
KINDS = ("book", "quick", "fast")


def preset(name: str, kind: Literal["book", "quick", "fast"] = "book", device: Device = "cpu",
           config: ModelConfig | None = None) -> Preset:
    """The book's settings for a catalog model, or the quick or fast variant and what it changed.

    `config` (default: the catalog's) is the network to train; the quick and fast presets change it too.
    """
    entry = registry.get(name)
    config = config or entry.config
    book = TrainSettings(lr=entry.book.lr, epochs=entry.book.epochs, batch_size=entry.book.batch_size,
                         device=device)
    if kind == "book":
        return Preset(config, book, ())
    if kind not in KINDS:
        raise ConfigError("preset", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    config_changes, settings_changes = entry.presets.network, entry.presets.quick
    if kind == "fast":
        settings_changes = {**settings_changes, **RECIPE, **entry.presets.fast}
    changes = [f"{key} {_text(getattr(config, key))} -> {_text(value)}" for key, value in config_changes.items()
               if getattr(config, key) != value]
    changes += [f"{key} {_text(getattr(book, key))} -> {_text(value)}" for key, value in settings_changes.items()
                if getattr(book, key) != value]
    return Preset(replace(config, **config_changes), replace(book, **settings_changes), tuple(changes))


def _text(value: object) -> str:
    if value is None:
        return "all"
    return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)


@dataclass
class Progress:
    """What a running training reports; the run manager keeps the newest and the store keeps the series."""

    step: int
    total_steps: int
    epoch: float              # fractional, as d2l's animator plots it
    train_loss: float
    train_acc: float
    test_acc: float | None    # set at the end of each epoch
    images_per_sec: float
    elapsed: float
    eta: float
    kind: Literal["step", "epoch", "phase"] = "step"
    phase: str = ""           # what a run does before its first report: loading data, building, first batch
    warning: str = ""         # set once the network has died (see DeadNetwork)

    @classmethod
    def phase_report(cls, phase: str, elapsed: float = 0.0) -> Progress:
        """A report of what a run does before its first step: no step, loss or rate yet."""
        nan = float("nan")
        return cls(0, 0, 0.0, nan, nan, None, 0.0, elapsed, nan, kind="phase", phase=phase)


DEAD_REPORTS = 5  # reports in a row with constant outputs before a network is called dead


class DeadNetwork:
    """Notices a network that stopped learning: its outputs are the same for every image (NiN's last ReLU
    dead under plain SGD, or LeNet's sigmoids saturated, say) for several reports in a row, an epoch's loss
    sits at chance, ln(classes), or the loss is NaN. The run goes on; its page and the CLI say what happened
    and what usually helps. A network that comes back (its outputs differ again and an epoch's loss is
    well below chance) is no longer called dead; a NaN stays."""

    def __init__(self, classes: int) -> None:
        self.chance = math.log(classes)
        self.constant_reports = 0
        self.message = ""
        self.diverged = False

    def report(self, logits: torch.Tensor) -> None:
        flat = bool((logits.detach().float().std(dim=0) == 0).all())  # every image gets the same outputs
        self.constant_reports = self.constant_reports + 1 if flat else 0
        if self.constant_reports >= DEAD_REPORTS:
            self._dead("its outputs are the same for every image (the last layer's units output nothing, or "
                       "its sigmoids are saturated)")

    def epoch(self, mean_loss: float) -> None:
        if not math.isfinite(mean_loss):
            self.diverged = True
            self.message = ("The loss became NaN: the weights diverged. Lower the learning rate (or warm it up "
                            "over the first steps).")
        elif abs(mean_loss - self.chance) < 0.01 * self.chance:
            self._dead(f"its loss stayed at chance, ln {round(math.exp(self.chance))} = {self.chance:.3f}, "
                       "for a whole epoch")
        elif not self.diverged and self.constant_reports == 0 and mean_loss < 0.9 * self.chance:
            self.message = ""  # it came back to life

    def _dead(self, why: str) -> None:
        if not self.message:
            self.message = (f"The network looks dead: {why}. Usually a ReLU before the output died under plain "
                            "SGD, or never passed a signal: Xavier init fades it in deep ReLU stacks. What helps: "
                            "Kaiming init (the quick and fast presets of NiN and GoogLeNet use it), a lower "
                            "learning rate, a short warm-up, or batch normalization.")


@dataclass
class TrainResult:
    stopped: bool
    history: list[Progress]
    timing: StepTiming | None = None  # the step rates measured before the first step, which chose the format
    confusion: list[list[int]] = field(default_factory=list)  # confusion[true][predicted]
    predictions: bytes = b""    # predicted class of every test image, for the detail page
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0
    others_cpu: float = 0.0     # the share of the CPUs other processes took meanwhile (estimate.MachineLoad)


class DeviceData:
    """Fashion-MNIST as uint8 tensors on the device; a batch is resized there, never per sample."""

    def __init__(self, data: FashionMNIST, device: torch.device, subset: int | None, seed: int) -> None:
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

    @property
    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train_x, self.train_y, self.test_x, self.test_y))


def _to(t: torch.Tensor, device: torch.device, pin: bool) -> torch.Tensor:
    return (t.pin_memory() if pin else t).to(device, non_blocking=pin)


def prepare(x: torch.Tensor, resolution: int, channels_last: bool) -> torch.Tensor:
    """uint8 (N, 1, 28, 28) -> float in [0, 1] at `resolution`: ToTensor then a bilinear Resize."""
    x = x.float().div_(255)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=resolution < x.shape[-1])
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


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


def default_threads() -> int:
    """Torch's CPU threads per run: the cores this process may use (set inside each worker thread)."""
    return int(os.environ.get("EXPLORER_THREADS", 0)) or len(os.sched_getaffinity(0))


def check_trainable(config: ModelConfig, settings: TrainSettings) -> None:
    """What a run needs before it starts: Fashion-MNIST's shape, the device, and a config that runs."""
    if config.in_channels != 1 or config.num_classes != len(CLASS_NAMES):
        raise ConfigError("in_channels" if config.in_channels != 1 else "num_classes",
                          "Fashion-MNIST needs in_channels=1 and num_classes=10")
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "CUDA is not available on this machine; use cpu")
    check(config)  # an impossible config is a ConfigError naming the knob, not a torch error mid-run


def train(config: ModelConfig, settings: TrainSettings, on_progress: Callable[[Progress], None] | None = None,
          stop: threading.Event | None = None, threads: int | None = None,
          data_dir: str | None = None, cache: RunStore | None = None) -> TrainResult:
    """Train `config` on Fashion-MNIST; reports progress a few dozen times an epoch; stops within a batch.
    `cache`: the run store whose saved step-rate measurements spare the one before the first step."""
    check_trainable(config, settings)
    torch.set_num_threads(threads or default_threads())
    device = torch.device(settings.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
    stop = stop or threading.Event()
    start, load = time.perf_counter(), MachineLoad()
    history: list[Progress] = []

    def emit(p: Progress) -> None:
        if p.kind != "phase":
            history.append(p)
        if on_progress:
            on_progress(p)

    def phase(text: str) -> None:
        emit(Progress.phase_report(text, time.perf_counter() - start))

    phase("loading Fashion-MNIST")
    torch.manual_seed(settings.seed)
    data = DeviceData(load_fashion_mnist(data_dir), device, settings.train_subset, settings.seed)
    phase("measuring the fastest memory format")
    timing = measure_step(config, settings.batch_size, settings.device, threads, cache)
    channels_last = timing.use_channels_last
    phase("building the model")
    model = new_model(config, settings.seed, settings.init)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = make_optimizer(model, settings)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    phase("first batch")

    n = len(data.train_y)
    steps_per_epoch = n // settings.batch_size + (1 if n % settings.batch_size >= 2 else 0)
    total = steps_per_epoch * settings.epochs
    report_every = max(1, steps_per_epoch // 25)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    train_seconds, step, stopped, images = 0.0, 0, False, 0
    test_seconds: float | None = None  # the first test pass's time, once measured
    dead = DeadNetwork(config.num_classes)

    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(n, device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        t_epoch = time.perf_counter()
        for i in range(steps_per_epoch):
            if stop.is_set():
                stopped = True
                break
            idx = order[i * settings.batch_size:(i + 1) * settings.batch_size]
            x = augment(data.train_x[idx], generator) if settings.augment else data.train_x[idx]
            X = prepare(x, config.resolution, channels_last)
            y = data.train_y[idx]
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * lr_factor(step, total, settings)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                y_hat = model(X)
                loss = loss_fn(y_hat, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            with torch.no_grad():
                loss_sum += loss.detach().float() * len(y)
                correct += (y_hat.argmax(dim=1) == y).sum()
            seen += len(y)
            step += 1
            if step % report_every == 0 or i == steps_per_epoch - 1:
                images_per_sec = (images + seen) / max(train_seconds + time.perf_counter() - t_epoch, 1e-9)
                # what remains: the steps at the measured rate, and a test pass per epoch left (a forward
                # pass costs about a third of a step per image until the first test pass is timed)
                tests_left = settings.epochs - epoch
                test_time = test_seconds if test_seconds is not None else len(data.test_y) / (3 * images_per_sec)
                eta = (total - step) * settings.batch_size / images_per_sec + tests_left * test_time
                dead.report(y_hat)
                if i == steps_per_epoch - 1:
                    dead.epoch(loss_sum.item() / seen)
                emit(Progress(step, total, epoch + (i + 1) / steps_per_epoch, loss_sum.item() / seen,
                              correct.item() / seen, None, images_per_sec, time.perf_counter() - start, eta,
                              warning=dead.message))
        train_seconds += time.perf_counter() - t_epoch
        images += seen
        if stopped or seen == 0:
            break
        t_test = time.perf_counter()
        # evaluated at twice the training batch: inference keeps no activations, so the test pass stays inside
        # the training step's memory (a fixed 500 would need 6 GB for VGG-11 at 224 on its first layer alone)
        predictions = predict(model, data.test_x, config.resolution, channels_last, amp_dtype,
                              batch_size=min(500, 2 * settings.batch_size), tta=settings.tta)
        test_acc = (predictions == data.test_y).float().mean().item()
        test_seconds = time.perf_counter() - t_test
        last = history[-1]
        epochs_left = settings.epochs - epoch - 1
        eta = epochs_left * (steps_per_epoch * settings.batch_size / last.images_per_sec + test_seconds)
        emit(replace(last, test_acc=test_acc, kind="epoch", elapsed=time.perf_counter() - start, eta=eta))

    result = TrainResult(stopped=stopped, history=history, timing=timing, seconds=time.perf_counter() - start,
                         others_cpu=load.others() if not cuda else 0.0)
    if not stopped:
        result.predictions = bytes(predictions.to(torch.uint8).cpu().numpy())
        result.confusion = confusion_matrix(data.test_y.cpu(), predictions.cpu())
    result.state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return result


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


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.SGD:
    """SGD as the settings ask; weight decay only on the weights of convolutions and linear layers, since
    decaying biases and batch norm's scale and shift only hurts. (Not "every tensor of two or more
    dimensions": d2l's own BatchNorm keeps its scale and shift as (1, C, 1, 1) tensors.)"""
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}
    weights = [p for p in model.parameters() if id(p) in decayed]
    others = [p for p in model.parameters() if id(p) not in decayed]
    return torch.optim.SGD([{"params": weights, "weight_decay": settings.weight_decay},
                            {"params": others, "weight_decay": 0.0}],
                           lr=settings.lr, momentum=settings.momentum, nesterov=settings.nesterov)


def lr_factor(step: int, total: int, settings: TrainSettings) -> float:
    """The learning rate at `step` of `total`, as a fraction of settings.lr: a linear warm-up, then constant
    or a half cosine down to zero."""
    warm = int(settings.warmup * total)
    if step < warm:
        return (step + 1) / warm
    if not settings.cosine:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def augment(x: torch.Tensor, generator: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random horizontal flips and shifts of up to `shift` pixels of a batch (N, C, H, W), each image its own,
    on the device (Fashion-MNIST's clothes are left-right symmetric; a vertical flip would not be)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dy, dx = torch.randint(-shift, shift + 1, (2, n, 1), device=x.device, generator=generator)
    rows = torch.arange(h, device=x.device) + shift - dy  # (n, h): the padded row each output row reads
    cols = torch.arange(w, device=x.device) + shift - dx
    padded = F.pad(x, (shift, shift, shift, shift))
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def confusion_matrix(y: torch.Tensor, predictions: torch.Tensor, classes: int = len(CLASS_NAMES)) -> list[list[int]]:
    counts = torch.bincount(y * classes + predictions, minlength=classes * classes)
    return counts.reshape(classes, classes).tolist()


__all__ = ["TrainSettings", "Preset", "preset", "Progress", "TrainResult", "check_trainable", "train", "prepare"]
