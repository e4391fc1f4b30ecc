"""Training as d2l's train_ch6 does it (Xavier init, SGD, cross-entropy), with a faster pipeline.

The dataset lives on the training device as one uint8 tensor; a batch is a slice of a shuffled index,
scaled to [0, 1] and resized on the device. The memory format (contiguous or channels_last) is the faster
of the two in a measurement of this config before the first step (explorer.training.estimate.measure_step): it
helps ResNet-18 and slows LeNet-BN down on a CPU (README: Performance). On CUDA also mixed precision and
cudnn autotuning.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import nn

from explorer.config import ModelConfig
from explorer.i18n import N_, keep
from explorer.training.data import CLASS_NAMES, DATASETS, DEFAULT_DATASET, load_data
from explorer.training.dynamics import Watch
from explorer.training.estimate import StepTiming, epoch_seconds, epochs_within, measure_step, run_seconds
from explorer.training.load import MachineLoad
from explorer.training.loop import (
    autocast_dtype,
    default_threads,
    lr_factor,
    make_optimizer,
    new_model,
    predict,
    sgd_step,
)
from explorer.training.pipeline import DeviceData, augment, prepare
from explorer.training.recipes import TrainSettings, check_trainable
from explorer.training.store import RunStore


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
    dynamics: list[dict] = field(default_factory=list)  # each layer's readings at this step (training.dynamics)
    epochs: int = 0           # the epochs the run trains: its settings', or those that fit in its minutes

    @classmethod
    def phase_report(cls, phase: str, elapsed: float = 0.0) -> Progress:
        """A report of what a run does before its first step: no step, loss or rate yet."""
        nan = float("nan")
        return cls(0, 0, 0.0, nan, nan, None, 0.0, elapsed, nan, kind="phase", phase=phase)


DEAD_REPORTS = 5  # reports in a row with constant outputs before a network is called dead
# a run reads its layers (training.dynamics) on at most this many reports, evenly spread: a 200-epoch run
# stores what a 20-epoch one does (about 25 reports an epoch, each a row per layer of about 130 bytes)
MAX_DYNAMICS_REPORTS = 500


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
            self._dead(N_("its outputs are the same for every image (the last layer's units output nothing, or "
                          "its sigmoids are saturated)"))

    def epoch(self, mean_loss: float) -> None:
        if not math.isfinite(mean_loss):
            self.diverged = True
            self.message = keep("The loss became NaN: the weights diverged. Lower the learning rate (or warm it "
                                "up over the first steps).")
        elif abs(mean_loss - self.chance) < 0.01 * self.chance:
            self._dead(N_("its loss stayed at chance, ln {classes} = {chance:.3f}, for a whole epoch"),
                       classes=round(math.exp(self.chance)), chance=self.chance)
        elif not self.diverged and self.constant_reports == 0 and mean_loss < 0.9 * self.chance:
            self.message = ""  # it came back to life

    def _dead(self, why: str, **values: object) -> None:
        """`why`: marked with N_, filled in from `values`."""
        if not self.message:
            self.message = keep("The network looks dead: {why}. Usually a ReLU before the output died under plain "
                                "SGD, or never passed a signal: Xavier init fades it in deep ReLU stacks. What helps: "
                                "Kaiming init (the quick and fast presets of NiN and GoogLeNet use it), a lower "
                                "learning rate, a short warm-up, or batch normalization.", why=why, **values)


@dataclass
class TrainResult:
    stopped: bool
    history: list[Progress]
    timing: StepTiming | None = None  # the step rates measured before the first step, which chose the format
    compiled: bool = False      # trained under torch.compile: the timing's compiled step paid for this run
    images: int = 0             # training images stepped through, repeats counted
    confusion: list[list[int]] = field(default_factory=list)  # confusion[true][predicted]
    predictions: bytes = b""    # predicted class of every test image, for the detail page
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0
    others_cpu: float = 0.0     # the share of the CPUs other processes took meanwhile (load.MachineLoad)


@dataclass(frozen=True)
class ReportPlan:
    """How often a run reports and reads its layers: what its page shows live and what the store keeps."""

    steps_per_epoch: int
    report_every: int   # steps between two reports (about 25 an epoch), and each epoch's last step
    reports: int
    watch_every: int    # reports between two that read every layer (at most MAX_DYNAMICS_REPORTS reads a run)
    epochs: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def reads(self) -> int:
        return math.ceil(self.reports / self.watch_every)


def report_plan(images: int, batch_size: int, epochs: int) -> ReportPlan:
    """The reports of a run over `images` training images (a last batch of one image is dropped: batch norm
    cannot train on it). Every report_every-th step of the run reports, and each epoch's last step."""
    steps = images // batch_size + (1 if images % batch_size >= 2 else 0)
    every = max(1, steps // 25)
    reports = sum((e + 1) * steps // every - e * steps // every + ((e + 1) * steps % every != 0)
                  for e in range(epochs))
    most = epochs * (steps // every + 1)  # the reads are spread by this bound, as they always were
    return ReportPlan(steps, every, reports, math.ceil(most / MAX_DYNAMICS_REPORTS), epochs)


def train(config: ModelConfig, settings: TrainSettings, on_progress: Callable[[Progress], None] | None = None,
          stop: threading.Event | None = None, threads: int | None = None,
          data_dir: str | None = None, cache: RunStore | None = None,
          on_measured: Callable[[StepTiming, float], None] | None = None) -> TrainResult:
    """Train `config` on Fashion-MNIST; reports progress a few dozen times an epoch; stops within a batch.
    `cache`: the run store whose saved step-rate measurements spare the one before the first step.
    `on_measured(timing, seconds)`: told that measurement and the whole run's time at its rate before the
    first step; it may raise to end the run there."""
    check_trainable(config, settings)
    torch.set_num_threads(threads or default_threads())
    device = torch.device(settings.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
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

    phase("loading Fashion-MNIST" if settings.dataset == DEFAULT_DATASET else "loading MNIST")
    torch.manual_seed(settings.seed)
    data = DeviceData(load_data(data_dir, settings.dataset), device, settings.train_subset, settings.seed)
    mirrors = DATASETS[settings.dataset].mirrors
    n, test_images = len(data.train_y), len(data.test_y) * (2 if settings.tta else 1)
    phase("measuring the fastest memory format")
    timing = measure_step(config, settings.batch_size, settings.device, threads, cache,
                          steps=report_plan(n, settings.batch_size, 1).steps_per_epoch * settings.epochs)
    # a run with a time budget plans the epochs that fit at this rate, what it spent so far counted; its first
    # epoch, test pass included, then measures the run itself and plans the rest (a step timed for a second
    # can be a fifth off the run's rate)
    epochs = epochs_within(settings.minutes, epoch_seconds(timing.images_per_sec, n, test_images), settings.epochs,
                           spent=time.perf_counter() - start)
    plan = report_plan(n, settings.batch_size, epochs)  # planned again after the first epoch of a budgeted run
    steps_per_epoch, report_every = plan.steps_per_epoch, plan.report_every
    stepped = plan.total_steps * settings.batch_size  # the run's training images, repeats counted
    compiling = timing.compile_pays(stepped)  # where `bench train` measured that it pays
    if on_measured is not None:
        on_measured(timing, run_seconds(timing.rate_over(stepped, compiling), n, epochs, test_images))
    channels_last = timing.use_channels_last
    amp_dtype = autocast_dtype(settings.device, timing.use_bf16)  # bfloat16 where measured BF16_GAIN faster
    phase("building the model")
    model = new_model(config, settings.seed, settings.init)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    # the compiled module shares the model's parameters; a step whose layers are read runs eager, so the
    # reading hooks never enter (or recompile) the compiled graph
    stepper = torch.compile(model) if compiling else model
    optimizer = make_optimizer(model, settings)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    phase("first batch")

    reported = 0
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    train_seconds, step, stopped, images = 0.0, 0, False, 0
    test_seconds: float | None = None  # the first test pass's time, once measured
    dead = DeadNetwork(config.num_classes)
    watch = Watch(model)

    epoch = 0
    while epoch < epochs:
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
            x = data.train_x.index_select(0, idx)  # (indexing with [idx] took ten times as long)
            X = prepare(augment(x, generator, flip=mirrors) if settings.augment else x, config.resolution,
                        channels_last)
            y = data.train_y.index_select(0, idx)
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * lr_factor(step, plan.total_steps, settings)
            reporting = (step + 1) % report_every == 0 or i == steps_per_epoch - 1
            watching = reporting and reported % plan.watch_every == 0
            with watch.step() if watching else contextlib.nullcontext([]) as readings:
                loss, y_hat = sgd_step(model if watching else stepper, optimizer, loss_fn, X, y, scaler, amp_dtype)
            with torch.no_grad():
                loss_sum += loss.detach().float() * len(y)
                correct += (y_hat.argmax(dim=1) == y).sum()
            seen += len(y)
            step += 1
            if reporting:
                reported += 1
                images_per_sec = (images + seen) / max(train_seconds + time.perf_counter() - t_epoch, 1e-9)
                # what remains: the steps at the measured rate, and a test pass per epoch left (a forward
                # pass costs about a third of a step per image until the first test pass is timed)
                tests_left = epochs - epoch
                test_time = test_seconds if test_seconds is not None else len(data.test_y) / (3 * images_per_sec)
                eta = (plan.total_steps - step) * settings.batch_size / images_per_sec + tests_left * test_time
                dead.report(y_hat)
                if i == steps_per_epoch - 1:
                    dead.epoch(loss_sum.item() / seen)
                emit(Progress(step, plan.total_steps, epoch + (i + 1) / steps_per_epoch, loss_sum.item() / seen,
                              correct.item() / seen, None, images_per_sec, time.perf_counter() - start, eta,
                              warning=dead.message, dynamics=readings, epochs=epochs))
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
        if settings.minutes and epoch == 0:  # the first epoch measured: the epochs that fit, from it
            compile_seconds = timing.compile_seconds if compiling else 0.0  # paid once, in this epoch
            epochs = epochs_within(settings.minutes, time.perf_counter() - t_epoch - compile_seconds,
                                   settings.epochs, spent=t_epoch - start + compile_seconds)
            plan = report_plan(n, settings.batch_size, epochs)
        last = history[-1]
        epochs_left = epochs - epoch - 1
        eta = epochs_left * (steps_per_epoch * settings.batch_size / last.images_per_sec + test_seconds)
        # the step's readings went with the step
        emit(replace(last, test_acc=test_acc, kind="epoch", elapsed=time.perf_counter() - start, eta=eta,
                     total_steps=plan.total_steps, epochs=epochs, dynamics=[]))
        epoch += 1

    result = TrainResult(stopped=stopped, history=history, timing=timing, compiled=compiling, images=images,
                         seconds=time.perf_counter() - start, others_cpu=load.others() if not cuda else 0.0)
    if not stopped:
        result.predictions = bytes(predictions.to(torch.uint8).cpu().numpy())
        result.confusion = confusion_matrix(data.test_y.cpu(), predictions.cpu())
    result.state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return result


def confusion_matrix(y: torch.Tensor, predictions: torch.Tensor, classes: int = len(CLASS_NAMES)) -> list[list[int]]:
    counts = torch.bincount(y * classes + predictions, minlength=classes * classes)
    return counts.reshape(classes, classes).tolist()


__all__ = ["Progress", "DeadNetwork", "TrainResult", "train", "confusion_matrix"]
