"""How long a run will take, from a measurement on this machine rather than a formula.

A config's training throughput comes from earlier runs of the same config, batch size and device when
there are any (the median of the newest few, leaving out runs stopped within seconds and runs that shared
the machine with other work), else from timing a few real SGD steps here (kept per config, in the
process and in the run store: the median of the newest STEP_READINGS), plus the
data path the step leaves out (indexing, augmentation, resizing), timed on a few batches. The run's time
is then its training images at that rate, a test pass per epoch (a forward pass costs about a third of a
step), and the fixed cost of loading the data and building the model.

One bad reading must not decide later ones: a measurement taken while other processes kept the CPUs busy
is used for that estimate alone and never saved; an idle one counts only through the median of several
(each run measures until the store keeps STEP_READINGS, as a reading can be slow in one format alone with no
other process to blame); and a saved median that a real run disagrees with by more than DISAGREE is
dropped, so the next estimate measures again.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import ConfigError, QuotaError
from explorer.i18n import N_, _, plural
from explorer.summary import summarize
from explorer.training import pipeline
from explorer.training.load import BUSY_SHARE, MachineLoad, Readings
from explorer.training.loop import bf16_native, default_threads, new_model, sgd_step
from explorer.training.schema import RunRecord
from explorer.training.store import RunStore, StoreError

TEST_IMAGES = 10_000
STARTUP_SECONDS = 2.0           # reading the data and building the model, measured on a 2-core CPU
STEP_BUDGET_MULT_ADDS = 4e9     # one timed step at most this much work: big configs are timed on fewer images
PEAK_MULT_ADDS = {"cpu": 1e11, "cuda": 1e15}  # per second: a CPU thread (AVX-512 FMA), a whole GPU (H200 bf16)
STEP_SECONDS, STEPS_TIMED = 0.8, 40  # steps are timed for about this long, at most this many per format
MIN_RUN_SECONDS = 20.0          # a run stopped sooner tells little of its rate (start-up, warm-up)
PAST_RUNS = 5                   # an estimate takes the median rate of at most this many earlier runs
DISAGREE = 1.5                  # a saved measurement this far off a real run's rate is dropped
# idle measurements of a config's step the store keeps (the newest): until it has this many, each run measures
# again, and a run takes the median rate of each setting over them, so one bad reading (a run's format chosen
# from it: LeNet-BN in channels_last at 60% of its speed) does not decide every later run
STEP_READINGS = 3
DATA_IMAGES = 64                # images per timed batch of the data path, at most
DATA_SECONDS = 0.25             # the data path is timed this long (the kernel counts CPU time in 10 ms ticks)
_lock = threading.Lock()        # one calibration at a time: they would slow each other down


@dataclass(frozen=True)
class Estimate:
    seconds: float
    images_per_sec: float       # training throughput the estimate assumes
    source: str                 # where the throughput comes from, in words
    busy: bool = False          # measured while other work kept the machine busy: the time now, longer than on
                                # an idle machine, so never a reason to refuse a run

    @property
    def text(self) -> str:
        return _("{duration} ({source})").format(duration=human_duration(self.seconds), source=self.source)


def human_duration(seconds: float, about: bool = True) -> str:
    """'about 40 s', 'about 4 min', 'about 2 h' (without `about`: '40 s'): never raw seconds."""
    hours = seconds / 3600
    if seconds < 60:
        amount, said = max(1, round(seconds)), (N_("about {amount} s"), N_("{amount} s"))
    elif seconds < 90 * 60:
        amount, said = round(seconds / 60), (N_("about {amount} min"), N_("{amount} min"))
    else:
        amount, said = (f"{hours:.1f}" if hours < 10 else round(hours)), (N_("about {amount} h"), N_("{amount} h"))
    return _(said[0] if about else said[1]).format(amount=amount)


def max_run_seconds() -> float:
    """The longest run a server accepts (EXPLORER_MAX_RUN_MINUTES, default 30)."""
    try:
        minutes = float(os.environ.get("EXPLORER_MAX_RUN_MINUTES", 30))
    except ValueError:
        minutes = 30.0
    return minutes * 60


def over_time_limit(how_long: str, limit: float) -> QuotaError:
    """The refusal of a run over a server's time limit (EXPLORER_MAX_RUN_MINUTES), with what to do."""
    return QuotaError("EXPLORER_MAX_RUN_MINUTES", "this run would take {how_long}, over this server's limit of "
                      "{limit} (EXPLORER_MAX_RUN_MINUTES). Choose the quick preset, a smaller resolution or fewer "
                      "epochs, or train on a GPU.", how_long=how_long, limit=human_duration(limit))


def epoch_seconds(images_per_sec: float, train_images: int, test_images: int = TEST_IMAGES) -> float:
    """Wall time of an epoch at a training throughput: its steps and its test pass."""
    return train_images / images_per_sec + test_images / (3 * images_per_sec)


def run_seconds(images_per_sec: float, train_images: int, epochs: int, test_images: int = TEST_IMAGES) -> float:
    """Wall time of a run at a training throughput: its epochs and the start-up."""
    return STARTUP_SECONDS + epochs * epoch_seconds(images_per_sec, train_images, test_images)


def epochs_within(minutes: float, seconds_each: float, epochs: int, spent: float = STARTUP_SECONDS) -> int:
    """How many of `epochs` a run with a time budget trains (TrainSettings.minutes; 0: no budget, all of
    them): as many as fit in the minutes at `seconds_each` an epoch, `spent` seconds of the budget gone
    before the first; at least one."""
    if not minutes:
        return epochs
    return max(1, min(epochs, int((60 * minutes - spent) / seconds_each)))


def estimate_run(config: ModelConfig, batch_size: int, epochs: int, train_images: int, device: str,
                 store: RunStore | None = None, threads: int | None = None,
                 test_images: int = TEST_IMAGES, tta: bool = False, augment: bool = False,
                 measured: Callable[[], Measured | None] | None = None, minutes: float = 0.0) -> Estimate | None:
    """The expected wall time of a run; see the module's docstring for how. With `tta` each test image
    is seen twice (itself and its mirror); `augment` adds the fast recipe's flips and shifts to each batch.
    `measured` gives the measurement when no earlier run tells the rate (a server's comes from a process of
    its own: explorer.training.measure), or None when there is none yet; by default it is taken here.
    `minutes`: the run's time budget, which trains only the epochs that fit (epochs_within)."""
    runs = same_runs(config, batch_size, device, augment, store) if store is not None else []
    rates = [float(r.images_per_sec) for r in runs if _tells_rate(r)][:PAST_RUNS]
    if rates:
        rate, busy = statistics.median(rates), False
        source = plural(len(rates), N_("measured by an earlier run of this config"),
                        N_("measured by {n} earlier runs of this config"))
    else:
        m = measured() if measured is not None else measure(config, batch_size, device, threads, store, augment)
        if m is None:
            return None
        rate, busy = m.images_per_sec, m.busy
        source = _("measured on this machine while it was busy: faster once it is idle") if busy else \
            _("measured on this machine")
        last = runs[0] if runs else None
        if last is not None and last.seconds and _busy_run(last):  # why the run just done took longer
            source += _("; its last run took {duration} while the machine was busy").format(
                duration=human_duration(last.seconds, about=False))
    test_images *= 2 if tta else 1
    epochs = epochs_within(minutes, epoch_seconds(rate, train_images, test_images), epochs)
    return Estimate(run_seconds(rate, train_images, epochs, test_images), rate, source, busy)


def fastest_seconds(config: ModelConfig, device: str, images: int, threads: int | None = None) -> float:
    """A floor under a run's training time from its summary alone: its multiply-adds (the backward pass
    about twice the forward) at a peak no machine of that kind beats (PEAK_MULT_ADDS). What is over a
    server's limit even so is refused before anything is built or timed."""
    peak = PEAK_MULT_ADDS["cuda"] if device == "cuda" else PEAK_MULT_ADDS["cpu"] * (threads or default_threads())
    return 3 * summarize(config).totals.mult_adds * images / peak


def same_runs(config: ModelConfig, batch_size: int, device: str, augment: bool, store: RunStore,
              kept: int = 2 * PAST_RUNS) -> list[RunRecord]:
    """The newest earlier runs (at most `kept`) of this config, batch size, device and augmentation that
    trained at a measured rate, newest first."""
    runs = []
    for r in reversed(store.with_status("done", "stopped", "interrupted")[-200:]):
        s = r.settings
        if not r.images_per_sec or s.get("device") != device or s.get("batch_size") != batch_size \
                or bool(s.get("augment", False)) != augment:
            continue
        try:
            same = registry.config_from(r.model, r.config) == config
        except (ConfigError, TypeError):  # a run stored by an older catalog
            continue
        if same:
            runs.append(r)
            if len(runs) == kept:
                break
    return runs


def _busy_run(r: RunRecord) -> bool:
    """Other processes kept the machine busy while this run trained (its rate says little of the config's)."""
    return (r.calibration or {}).get("others_cpu", 0.0) > BUSY_SHARE


def _tells_rate(r: RunRecord) -> bool:
    """A run that says something of its config's rate: not stopped within MIN_RUN_SECONDS, not run while
    other work kept the machine busy."""
    return (r.seconds or 0) >= MIN_RUN_SECONDS and not _busy_run(r)


def _busy(load: MachineLoad, device: str) -> bool:
    """Whether other processes took too much of the CPUs for a CPU timing to be kept."""
    return device == "cpu" and load.others() > BUSY_SHARE


_step_readings, _data_readings = Readings(), Readings()


@dataclass(frozen=True)
class DataTiming:
    seconds: float   # per training image
    busy: bool       # other processes kept the CPUs busy meanwhile (see MachineLoad)


def data_seconds(resolution: int, batch_size: int, augment: bool, device: str) -> DataTiming:
    """Seconds per training image of what the step's timing leaves out: picking the batch's uint8 images,
    the recipe's flips and shifts, scaling to [0, 1] and resizing. Measured on at least 4 batches after
    one, over about DATA_SECONDS; on this 2-core CPU it is 1-10% of a run (most where the step is cheap:
    LeNet with augmentation)."""
    key = (resolution, batch_size, augment, device)
    if (kept := _data_readings.get(key)) is not None:
        return kept
    dev = torch.device(device)
    generator = torch.Generator(device=dev).manual_seed(0)
    per_batch = min(batch_size, DATA_IMAGES)  # the time per image needs no 4,096 images resized to 512
    images = torch.randint(0, 256, (5 * per_batch, 1, 28, 28), dtype=torch.uint8, device=dev)
    order = torch.randperm(len(images), device=dev, generator=generator)

    def batch(i: int) -> None:
        x = images[order[i * per_batch:(i + 1) * per_batch]]
        pipeline.prepare(pipeline.augment(x, generator) if augment else x, resolution, False)

    with _lock:
        batch(0)
        _sync(dev)
        load, start, batches = MachineLoad(), time.perf_counter(), 0
        while batches < 4 or (time.perf_counter() - start < DATA_SECONDS and batches < 400):
            batch(1 + batches % 4)  # long enough for the kernel's CPU counters to tell a busy machine
            batches += 1
        _sync(dev)
        timing = DataTiming((time.perf_counter() - start) / (batches * per_batch), _busy(load, device))
    _data_readings.put(key, timing, timing.busy)
    return timing


# bfloat16 keeps 8 bits of each number's mantissa: a run takes it only for at least this much more speed
BF16_GAIN = 1.2


@dataclass(frozen=True)
class StepTiming:
    """Training images per second of one config in each memory format, and in the faster one under bfloat16
    autocast where the CPU computes it natively; the settings a run takes from them."""

    contiguous: float
    channels_last: float
    bf16: float = 0.0     # the faster format under bfloat16 autocast; 0: not timed (no native bfloat16)
    # the step under torch.compile in the format and precision a run takes, and the compile's seconds: timed
    # only by `bench train` (a compile costs as much to measure as to use) and kept in the run store; 0: not timed
    compiled_rate: float = 0.0
    compile_seconds: float = 0.0
    cached: bool = False  # read from the run store, not measured now
    busy: bool = False    # other processes kept the CPUs busy while it was measured: used once, never saved
    readings: int = 1     # the measurements whose median it is (STEP_READINGS)
    key: str = field(default="", compare=False)  # where the run store keeps it

    def describe(self) -> dict[str, object]:
        """What a run records and its page shows: the rates, the choices and where they came from."""
        return {"contiguous": round(self.contiguous, 1), "channels_last": round(self.channels_last, 1),
                "memory_format": "channels_last" if self.use_channels_last else "contiguous",
                "bf16": round(self.bf16, 1), "precision": "bfloat16" if self.use_bf16 else "float32",
                "cached": self.cached, "readings": self.readings, "compiled_rate": round(self.compiled_rate, 1),
                "compile_seconds": round(self.compile_seconds, 1)}

    @property
    def use_channels_last(self) -> bool:
        return self.channels_last > self.contiguous

    @property
    def use_bf16(self) -> bool:
        return self.bf16 >= BF16_GAIN * max(self.contiguous, self.channels_last)

    @property
    def images_per_sec(self) -> float:
        """The eager step's rate in the settings a run takes."""
        return max(self.contiguous, self.channels_last, self.bf16 if self.use_bf16 else 0.0)

    def rate_over(self, images: int, compiled: bool) -> float:
        """Training images a second over `images` of them, eager or compiled (its compile counted)."""
        if not compiled:
            return self.images_per_sec
        return images / (self.compile_seconds + images / self.compiled_rate)

    def compile_pays(self, images: int) -> bool:
        """Whether a run of `images` training images ends sooner compiled, its compile counted: a compile of
        60 s that doubles the rate pays for a run of two minutes' eager steps, not of one."""
        return self.compiled_rate > 0 and self.rate_over(images, True) > self.images_per_sec


def measure_step(config: ModelConfig, batch_size: int, device: str = "cpu", threads: int | None = None,
                 store: RunStore | None = None, steps: int = STEPS_TIMED) -> StepTiming:
    """The step rates of `config`: from this process's earlier measurement of this config, batch size, device
    and thread count, or the median of the STEP_READINGS the store keeps from this machine; else measured
    now (and kept beside the earlier ones, unless the machine was busy). `steps`: at most this many timed per
    format (a run of a few batches is not timed for longer than it trains)."""
    threads = threads or default_threads()  # what the measurement runs with (it sets torch's threads)
    key = step_key(config, batch_size, device, threads)
    if (kept := _step_readings.get(key)) is not None and not kept.busy:
        return kept
    if store is not None and (saved := saved_step(config, batch_size, device, threads, store)) is not None \
            and saved.readings >= STEP_READINGS:
        return saved
    if kept is not None:
        return kept
    timing = replace(_measure_step(config, batch_size, device, threads, steps), key=key)
    if store is not None and not timing.busy:
        with contextlib.suppress(StoreError):  # a full disk: the measurement serves, unkept
            timing = _keep_reading(timing, store)
    _step_readings.put(key, timing, timing.busy)
    return timing


def _keep_reading(timing: StepTiming, store: RunStore) -> StepTiming:
    """Keep an idle measurement beside the store's earlier ones of its config (the newest STEP_READINGS);
    returns the median of them all, as measured now."""
    saved = store.calibration(timing.key) or {}
    readings = (_saved_readings(saved) + [{"contiguous": timing.contiguous, "channels_last": timing.channels_last,
                                          "bf16": timing.bf16}])[-STEP_READINGS:]
    compiled = {k: saved[k] for k in ("compiled_rate", "compile_seconds") if k in saved}
    store.save_calibration(timing.key, {"readings": readings, **compiled})
    return replace(_median_timing(readings, compiled, timing.key), cached=False)


def _saved_readings(saved: dict) -> list[dict[str, float]]:
    """The measurements a calibration keeps: a list, or (saved before there were several) the one."""
    return list(saved.get("readings", [saved] if "contiguous" in saved else []))


def _median_timing(readings: list[dict[str, float]], compiled: dict, key: str) -> StepTiming:
    def median(name: str) -> float:
        return statistics.median(r.get(name, 0.0) for r in readings)

    return StepTiming(median("contiguous"), median("channels_last"), median("bf16"),
                      compiled.get("compiled_rate", 0.0), compiled.get("compile_seconds", 0.0), cached=True,
                      readings=len(readings), key=key)


def step_key(config: ModelConfig, batch_size: int, device: str, threads: int) -> str:
    """Where the run store keeps a config's step rates: per machine, torch version, batch, device, threads."""
    return json.dumps([socket.gethostname(), torch.__version__, type(config).__name__, config.kwargs(), batch_size,
                       device, threads], sort_keys=True, default=list)


def saved_step(config: ModelConfig, batch_size: int, device: str, threads: int, store: RunStore) -> StepTiming | None:
    """The median of the step rates idle measurements saved in the store (only idle ones are saved), or
    None; nothing is measured."""
    key = step_key(config, batch_size, device, threads)
    saved = store.calibration(key) or {}
    readings = [r for r in _saved_readings(saved)  # those saved before bfloat16 was timed do not count
                if "bf16" in r or not bf16_native(device)]
    return _median_timing(readings, saved, key) if readings else None


def check_against_run(timing: StepTiming, run_images_per_sec: float, store: RunStore, images: int = 0,
                      compiled: bool = False) -> None:
    """Drop a saved measurement that a real run of its config disagrees with by more than DISAGREE: the
    next estimate, and the next run's choice of memory format, measure again. A `compiled` run of `images`
    training images is held to the compiled step's rate, its compile counted."""
    ratio = run_images_per_sec / timing.rate_over(images, compiled)
    if timing.key and not 1 / DISAGREE <= ratio <= DISAGREE:
        _step_readings.drop(timing.key)
        store.drop_calibration(timing.key)


@dataclass(frozen=True)
class Measured:
    """What an estimate measures of a config: its step rates and its data path."""

    step: StepTiming
    data: DataTiming

    @property
    def busy(self) -> bool:
        return self.step.busy or self.data.busy

    @property
    def images_per_sec(self) -> float:
        return 1 / (1 / self.step.images_per_sec + self.data.seconds)


def measure(config: ModelConfig, batch_size: int, device: str = "cpu", threads: int | None = None,
            store: RunStore | None = None, augment: bool = False) -> Measured:
    """Measure the step (or read it from this process's or the store's earlier measurement) and the data
    path of a run of `config`, in this process."""
    return Measured(measure_step(config, batch_size, device, threads, store),
                    data_seconds(config.resolution, batch_size, augment, device))


def _measure_step(config: ModelConfig, batch_size: int, device: str, threads: int | None,
                  steps_timed: int = STEPS_TIMED) -> StepTiming:
    """Time a few real SGD steps on random data in both memory formats, after a warm-up of each; then, on a
    CPU that computes bfloat16 natively, the faster format again under bfloat16 autocast.

    `channels_last` speeds some networks up and halves others (LeNet-BN on a CPU), and bfloat16 doubles
    some (DenseNet) and slows others (ResNet-18's quick network), so both are measured per config, never
    assumed. A config too big to time cheaply is timed on fewer images per step and scaled
    up per image, which errs towards a longer estimate: a bigger batch only runs faster per image.
    """
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

        def step(fmt: torch.memory_format, amp_dtype: torch.dtype | None = None) -> float:
            model.to(memory_format=fmt)  # converting the weights is not part of the timed step
            _sync(dev)
            start = time.perf_counter()
            sgd_step(model, optimizer, loss_fn, inputs[fmt], y, amp_dtype=amp_dtype)
            _sync(dev)
            return time.perf_counter() - start

        for fmt in formats * 2:  # warm-up of both before either is timed: the first ones timed would pay for it
            step(fmt)
        load = MachineLoad()
        seconds: dict[torch.memory_format, list[float]] = {fmt: [] for fmt in formats}
        steps, start = 0, time.perf_counter()
        while steps < max(2, steps_timed) and (steps < 2 or time.perf_counter() - start < STEP_SECONDS):
            for fmt in formats:  # alternated, so a busy moment of the machine hits both alike
                seconds[fmt].append(step(fmt))
            steps += 1
        rates = {fmt: batch / statistics.median(seconds[fmt]) for fmt in formats}  # a hiccup does not count
        bf16 = 0.0
        if bf16_native(device):  # the faster format again, under bfloat16 autocast (a CPU's or a GPU's)
            fmt = max(formats, key=lambda f: rates[f])
            step(fmt, torch.bfloat16)
            bf16 = batch / statistics.median([step(fmt, torch.bfloat16) for _ in range(steps)])
        busy = _busy(load, device)
    return StepTiming(rates[torch.contiguous_format], rates[torch.channels_last], bf16, busy=busy)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
