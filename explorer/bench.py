"""Benchmarks: `python -m explorer bench summary|train|presets|speedrun|memory|dynamics|inference|store`;
`--save` keeps their rows through explorer.measured."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from explorer import registry
from explorer.summary import summaries, summarize

if TYPE_CHECKING:
    from explorer.training.ceiling import Ceiling
    from explorer.training.recipes import Preset
    from explorer.training.store import RunStore


@dataclass(frozen=True)
class SummaryTiming:
    name: str
    layers: int          # leaf layers
    first_ms: float      # first summary of this config in the process (after earlier models warmed torch)
    warm_ms: float       # median uncached summary: a config the cache has not seen, built and traced
    cached_ms: float     # median cached summary: what the app pays to redraw
    torchinfo_ms: float  # median torchinfo.summary of the same network, already built on the meta device

    @property
    def us_per_layer(self) -> float:
        return self.warm_ms * 1000 / self.layers


def bench_summary(repeat: int = 5) -> list[SummaryTiming]:
    """Each catalog network's summary, and torchinfo.summary's pass over the same network in the same run."""
    import torchinfo

    out = []
    for name in registry.list_models():
        config = registry.get(name).config
        summaries.clear()
        first = _timed(summarize, config)
        warm = []
        for _ in range(repeat):
            summaries.clear()
            warm.append(_timed(summarize, config))
        cached = [_timed(summarize, config) for _ in range(repeat)]
        with torch.device("meta"):
            model = registry.build(config).eval()
        x = torch.empty(1, config.in_channels, config.resolution, config.resolution, device="meta")
        theirs = [_timed(partial(torchinfo.summary, model, input_data=x, device="meta", verbose=0))
                  for _ in range(repeat)]
        layers = int(summarize(config).layers.is_leaf.sum())
        out.append(SummaryTiming(name, layers, first, statistics.median(warm), statistics.median(cached),
                                 statistics.median(theirs)))
    return out


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t) * 1000


@dataclass(frozen=True)
class TrainBench:
    name: str
    resolution: int
    batch_size: int
    batches: int
    d2l_images_per_sec: float
    # (the train step alone as a run takes it, on one fixed batch; ours) images/s, per stretch between two of
    # our run's reports, over every round (a fresh run each); the ceiling timed on either side of each stretch
    pairs: tuple[tuple[float, float], ...]
    ceilings: tuple[Ceiling, ...] = ()  # the step under each setting the machine offers (training.ceiling)
    rounds: int = 1                     # our runs the stretches came from

    @property
    def eager_ceiling(self) -> Ceiling:
        """The fastest step in float32 without a compile."""
        return max((c for c in self.ceilings if not c.compiled and not c.bf16), key=lambda c: c.images_per_sec)

    @property
    def best_ceiling(self) -> Ceiling:
        """The fastest step under any setting."""
        return max(self.ceilings, key=lambda c: c.images_per_sec)

    @property
    def ceiling_images_per_sec(self) -> float:
        return statistics.median(c for c, _ in self.pairs)

    @property
    def ours_images_per_sec(self) -> float:
        return statistics.median(o for _, o in self.pairs)

    @property
    def efficiencies(self) -> list[float]:
        return [o / c for c, o in self.pairs]

    @property
    def efficiency(self) -> float:
        """Ours over the ceiling, the interquartile mean of the stretches' ratios (the mean of the middle half):
        what the pipeline around the step costs. A noisy machine slows both of a pair alike, and a stretch that
        one of them lost to it falls outside the middle half. Drawn at random from 192 stretches of LeNet-BN
        measured on this project's 2-core machine, 64 gave it within 0.013 (one standard deviation), 32 within
        0.018, the median of 12 within 0.028."""
        ordered = sorted(self.efficiencies)
        quarter = len(ordered) // 4
        return statistics.mean(ordered[quarter:len(ordered) - quarter])

    @property
    def quartiles(self) -> tuple[float, float]:
        """The first and third quartiles of the stretches' efficiencies: how much the machine moved them."""
        if len(self.pairs) < 2:
            return self.efficiency, self.efficiency
        q = statistics.quantiles(self.efficiencies, n=4)
        return q[0], q[2]

    @property
    def ratio(self) -> float:
        return self.ours_images_per_sec / self.d2l_images_per_sec


def bench_train(name: str, resolution: int | None = None, batch_size: int | None = None, batches: int = 20,
                device: str = "cpu", data_dir: str | None = None, compiled: bool = True,
                rounds: int = 16, store: RunStore | None = None) -> TrainBench:
    """Images per second of the train step under each setting (its ceilings), of d2l's pipeline and of
    ours, same model and batch size, in this process; ours in `rounds` runs, each stretch between two of its
    reports beside its own ceiling. The compiled step is kept in `store`, for later runs of the same config and
    batch size to choose from (ceiling.keep_compiled)."""
    from dataclasses import replace

    from explorer.training.loop import default_threads
    from explorer.training.recipes import TrainSettings

    entry = registry.get(name)
    config = replace(entry.config, resolution=resolution or entry.config.resolution)
    batch_size = batch_size or entry.book.batch_size

    from explorer.errors import ConfigError
    from explorer.training.ceiling import WARMUP_BATCHES, ceilings, keep_compiled
    from explorer.training.data import load_data
    from explorer.training.estimate import measure_step
    from explorer.training.train import report_plan

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError("rounds", "must be a whole number of at least 1, not {value!r}", value=rounds)
    if batches <= WARMUP_BATCHES:
        raise ConfigError("batches", "must be more than {warmup} (the warm-up batches)", warmup=WARMUP_BATCHES)
    available = len(load_data(data_dir).train_labels)
    if (batches + 1) * batch_size > available:
        raise ConfigError("batches", "{batches} batches of {batch_size} need {need} training images; the data has "
                                     "{available}", batches=batches, batch_size=batch_size,
                          need=(batches + 1) * batch_size, available=available)
    every = report_plan(available, batch_size, 1).report_every  # ours is timed between two of its reports
    if batches < -(-WARMUP_BATCHES // every) * every + every:
        raise ConfigError("batches", "must be at least {least} here: a run over {available} images reports every "
                                     "{every} steps, and two reports after the warm-up are timed",
                          least=-(-WARMUP_BATCHES // every) * every + every, available=available, every=every)

    torch.set_num_threads(default_threads())
    settings = TrainSettings(lr=entry.book.lr, epochs=1, batch_size=batch_size, train_subset=batches * batch_size,
                             device=device)
    # what `train` measures and picks its memory format and precision from
    timing = measure_step(config, settings.batch_size, settings.device, store=store)
    rows = tuple(ceilings(config, settings, batches, timing, compiled))
    if store is not None:
        keep_compiled(timing, rows[-1], store)
    # ours against the ceiling of `train` itself (that format and precision, its threads, eager), stretch by stretch
    pairs = tuple(pair for _ in range(rounds) for pair in _stretches(config, settings, batches, data_dir, store))
    d2l = _d2l_images_per_sec(config, settings, batches, data_dir)
    return TrainBench(name, config.resolution, batch_size, batches, d2l, pairs, rows, rounds)


def _stretches(config, settings, batches: int, data_dir: str | None,
               store: RunStore | None) -> list[tuple[float, float]]:
    """(ceiling, ours) images/s over each stretch between two of our run's reports after the warm-up, for
    `batches` batches. Ours is a real run on the whole training set, so it reports and reads its layers as
    often as a run does (about 25 times an epoch), timed from one report to the next. The ceiling, the step
    alone, is timed inside each report for as many steps as a stretch, so each stretch of ours lies between
    two of the ceiling's, all within a second: a machine whose speed moves by 5-20% from one second to the
    next slows both of a pair alike. A stretch's ceiling is the mean of the two beside it, in the memory format
    and precision the run measured and took."""
    import threading
    from dataclasses import replace

    from explorer.training.ceiling import WARMUP_BATCHES, FixedBatchStep
    from explorer.training.train import train

    stop, steps_alone = threading.Event(), []
    marks: list[tuple[int, float]] = []  # (step, our seconds at its report, the ceiling's seconds left out)
    ceiling: list[float] = []            # seconds a step of the step alone, timed at each of those reports
    aside = 0.0

    def on_progress(p) -> None:
        nonlocal aside
        if p.kind != "step" or p.step < WARMUP_BATCHES:  # an epoch's report repeats its last step's number
            return
        start = time.perf_counter()
        marks.append((p.step, p.elapsed - aside))
        if not ceiling:
            steps_alone[0].run(WARMUP_BATCHES)
        steps = p.step - marks[-2][0] if len(marks) > 1 else p.step
        ceiling.append(steps_alone[0].run(steps) / steps)
        if p.step >= batches:
            stop.set()
        aside += time.perf_counter() - start

    def on_measured(timing, _seconds: float) -> None:  # the run's own choice of format and precision
        steps_alone.append(FixedBatchStep(config, settings, timing.use_channels_last, bf16=timing.use_bf16))

    train(config, replace(settings, train_subset=None), on_progress, stop, data_dir=data_dir, cache=store,
          on_measured=on_measured)
    pairs = []
    for i in range(1, len(marks)):  # two reports at least: bench_train checked `batches`
        images = (marks[i][0] - marks[i - 1][0]) * settings.batch_size
        ours = images / (marks[i][1] - marks[i - 1][1])
        pairs.append((settings.batch_size / ((ceiling[i - 1] + ceiling[i]) / 2), ours))
    return pairs


def _d2l_images_per_sec(config, settings, batches: int, data_dir: str | None) -> float:
    """d2l's load_data_fashion_mnist + train_ch6 step, as the book writes them (4 loader workers)."""
    import gzip
    import shutil
    import tempfile

    import torchvision
    from torch import nn
    from torch.utils import data
    from torchvision import transforms

    from explorer.training.ceiling import WARMUP_BATCHES
    from explorer.training.data import FILES, find_data_dir
    from explorer.training.loop import init_weights

    source = find_data_dir(data_dir)
    with tempfile.TemporaryDirectory() as root:
        raw = Path(root) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for name in FILES.values():  # torchvision reads the uncompressed files from root/FashionMNIST/raw
            src = source / name if (source / name).exists() else source / f"{name}.gz"
            opener = gzip.open if src.suffix == ".gz" else open
            with opener(src, "rb") as f, open(raw / name, "wb") as out:
                shutil.copyfileobj(f, out)
        trans = [transforms.ToTensor()]
        if config.resolution != 28:
            trans.insert(0, transforms.Resize(config.resolution))
        mnist_train = torchvision.datasets.FashionMNIST(root, train=True, transform=transforms.Compose(trans))
        train_iter = data.DataLoader(mnist_train, settings.batch_size, shuffle=True, num_workers=4)

        device = torch.device(settings.device)
        torch.manual_seed(settings.seed)
        net = registry.build(config)
        net.apply(init_weights)
        net.to(device)
        optimizer = torch.optim.SGD(net.parameters(), lr=settings.lr)
        loss = nn.CrossEntropyLoss()
        net.train()
        loader = iter(train_iter)
        for i in range(batches):
            if i == WARMUP_BATCHES:
                start = time.perf_counter()
            X, y = next(loader)
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)
            l.backward()
            optimizer.step()
            with torch.no_grad():  # d2l's Accumulator reads both back every batch
                float(l * X.shape[0]), float((y_hat.argmax(axis=1).type(y.dtype) == y).sum())
        elapsed = time.perf_counter() - start
        del loader  # shuts its worker processes down before our pipeline is timed
    return (batches - WARMUP_BATCHES) * settings.batch_size / elapsed


@dataclass(frozen=True)
class PresetResult:
    name: str
    kind: str
    accuracies: tuple[float, ...]  # final test accuracy, one per seed
    seconds: tuple[float, ...]     # wall time, one per seed
    estimate_seconds: float        # what the Train page would have said before Start (a few steps, measured)
    images_per_sec: float
    changes: tuple[str, ...]


def bench_presets(kind: str = "quick", names: list[str] | None = None, seeds: int = 1,
                  data_dir: str | None = None) -> Iterator[PresetResult]:
    """Train each model's preset on the real data, seed 0 to seeds-1, one run at a time: final test
    accuracy and wall time of each, beside the estimate made before the first."""
    from explorer.training.data import load_data
    from explorer.training.estimate import estimate_run
    from explorer.training.recipes import preset

    data = load_data(data_dir)
    for name in names or registry.list_models():
        p = preset(name, kind)
        images = min(p.settings.train_subset or len(data.train_labels), len(data.train_labels))
        estimate = estimate_run(p.config, p.settings.batch_size, p.settings.epochs, images, p.settings.device,
                                test_images=len(data.test_labels), tta=p.settings.tta,
                                augment=p.settings.augment, minutes=p.settings.minutes)
        runs = [_trained(p, seed, data_dir) for seed in range(seeds)]
        yield PresetResult(name, kind, tuple(r.test_acc for r in runs), tuple(r.seconds for r in runs),
                           estimate.seconds, statistics.median(r.images_per_sec for r in runs), p.changes)


@dataclass(frozen=True)
class SeedRun:
    seed: int
    test_acc: float        # after the last epoch, on the 10,000 test images (with the preset's mirrored pass)
    seconds: float         # the run's own: loading the data, measuring the step, training, every test pass
    images_per_sec: float  # training images a second over the run
    process_seconds: float = 0.0  # all of it in a fresh process, from its start (importing torch included)
    epochs: int = 0        # trained: a preset with a time budget trains those that fit (0: kept before it was said)


def bench_speedrun(seeds: int = 3, data_dir: str | None = None) -> Iterator[SeedRun]:
    """The speedrun network trained with its own preset on the real data, seed 0 to seeds-1, one at a time,
    each in a fresh process, timed from the process's start: nothing is loaded or warmed up before it."""
    import multiprocessing

    for seed in range(seeds):
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            run = pool.apply(_speedrun_seed, (seed, data_dir))
        yield replace(run, process_seconds=time.perf_counter() - start)


def _speedrun_seed(seed: int, data_dir: str | None) -> SeedRun:
    from explorer.training.recipes import preset

    return _trained(preset("speedrun", "speedrun"), seed, data_dir)


def _trained(p: Preset, seed: int, data_dir: str | None) -> SeedRun:
    """Train a preset in this process with `seed`: its last epoch's test accuracy and the whole run's time."""
    from explorer.training.train import train

    result = train(p.config, replace(p.settings, seed=seed), data_dir=data_dir)
    epochs = [h for h in result.history if h.kind == "epoch"]
    return SeedRun(seed, epochs[-1].test_acc, result.seconds, epochs[-1].images_per_sec, epochs=len(epochs))


@dataclass(frozen=True)
class MemoryResult:
    name: str
    kind: str
    batch_size: int
    resolution: int
    estimate_bytes: int   # what the run manager admits a run by
    peak_bytes: int       # measured: the process's peak resident memory beyond torch's import

    @property
    def ratio(self) -> float:
        return self.estimate_bytes / self.peak_bytes


def bench_memory(kinds: tuple[str, ...] = ("quick", "book"), names: list[str] | None = None,
                 threads: int = 2) -> Iterator[MemoryResult]:
    """Each preset's memory estimate beside the peak of real training steps, each in a fresh process."""
    from explorer.training.admission import estimate_bytes
    from explorer.training.recipes import preset

    for kind in kinds:
        for name in names or registry.list_models():
            p = preset(name, kind)
            yield MemoryResult(name, kind, p.settings.batch_size, p.config.resolution,
                               estimate_bytes(p.config, p.settings),
                               measure_peak_bytes(p.config, p.settings.batch_size, threads))


def measure_peak_bytes(config, batch_size: int, threads: int = 2) -> int:
    """The peak resident memory of two SGD steps and a test batch of `config`, as `train` runs them on the
    CPU, with the data set in memory: measured in a fresh process, beyond what importing torch took."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh process: its peak is this run's alone
    with ctx.Pool(1) as pool:
        return pool.apply(_peak_in_this_process, (config, batch_size, threads))


def _peak_in_this_process(config, batch_size: int, threads: int) -> int:
    import resource

    from torch import nn

    from explorer.training.dynamics import Watch
    from explorer.training.loop import new_model, predict, sgd_step
    from explorer.training.pipeline import prepare

    torch.set_num_threads(threads)
    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * resource.getpagesize()
    images = torch.randint(0, 256, (70_000, 1, 28, 28), dtype=torch.uint8)  # the data set's size
    labels = torch.randint(0, config.num_classes, (70_000,))
    model = new_model(config)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(2):  # the second step's forward pass runs while the first step's gradients are held,
        idx = torch.randint(0, len(labels), (batch_size,))  # and is watched, as a reported step is
        with Watch(model).step() if _ else contextlib.nullcontext():
            sgd_step(model, optimizer, nn.functional.cross_entropy,
                     prepare(images[idx], config.resolution, False), labels[idx])
    predict(model.eval(), images[:2 * batch_size], config.resolution, False, None, batch_size=2 * batch_size)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before


@dataclass(frozen=True)
class DynamicsBench:
    name: str
    batch_size: int
    report_every: int   # a run of this preset reads the dynamics on one step in this many
    step_ms: float      # the median training step (a fixed batch on the device), not watched
    watched_ms: float   # the median step with its dynamics read (training.dynamics.Watch)

    @property
    def watched_cost(self) -> float:
        """What reading a step's dynamics adds to that step."""
        return self.watched_ms / self.step_ms - 1

    @property
    def run_cost(self) -> float:
        """What it adds to a run, whose dynamics are read on one step in report_every."""
        return self.watched_cost / self.report_every


def bench_dynamics(names: list[str] | None = None, kind: str = "quick", steps: int = 12) -> Iterator[DynamicsBench]:
    """Each preset's training step with and without its dynamics read, alternating in one process (a noisy
    machine slows both alike)."""
    from torch import nn

    from explorer.training.ceiling import WARMUP_BATCHES
    from explorer.training.dynamics import Watch
    from explorer.training.loop import default_threads, new_model, sgd_step
    from explorer.training.recipes import preset

    torch.set_num_threads(default_threads())
    for name in names or registry.list_models():
        p = preset(name, kind)
        config, batch = p.config, p.settings.batch_size
        model = new_model(config)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=p.settings.momentum)
        watch = Watch(model)
        x = torch.rand(batch, config.in_channels, config.resolution, config.resolution)
        y = torch.randint(0, config.num_classes, (batch,))
        plain, watched = [], []
        for i in range(steps + WARMUP_BATCHES):
            for times, around in ((plain, contextlib.nullcontext), (watched, watch.step)):
                start = time.perf_counter()
                with around():
                    sgd_step(model, optimizer, nn.functional.cross_entropy, x, y)
                if i >= WARMUP_BATCHES:
                    times.append((time.perf_counter() - start) * 1000)
        images = p.settings.train_subset or 60_000
        report_every = max(1, images // batch // 25)  # as training.train reports: about 25 times an epoch
        yield DynamicsBench(name, batch, report_every, statistics.median(plain), statistics.median(watched))


@dataclass(frozen=True)
class InferenceBench:
    name: str
    resolution: int
    latency_ms: float       # one image at a time: the median forward pass in evaluation mode
    images_per_sec: float   # a batch of `batch` images at a time
    batch: int


def bench_inference(names: list[str] | None = None, repeat: int = 5, batch: int = 16) -> Iterator[InferenceBench]:
    """Each catalog network's prediction time at its catalog input size, measured here: one image at a time
    (the median of `repeat` passes after a warm-up) and a batch at a time. What its summary cannot say."""

    from explorer.training.loop import default_threads

    torch.set_num_threads(default_threads())
    for name in names or registry.list_models():
        config = registry.get(name).config
        torch.manual_seed(0)
        model = registry.build(config).eval()
        one = torch.rand(1, config.in_channels, config.resolution, config.resolution)
        many = one.expand(batch, -1, -1, -1).contiguous()
        with torch.inference_mode():
            model(one)  # kernels and caches are built on the first pass
            latency = statistics.median(_timed(model, one) for _ in range(repeat))
            model(many)
            per_batch = min(_timed(model, many) for _ in range(2))
        yield InferenceBench(name, config.resolution, latency, batch * 1000 / per_batch, batch)


def bench_store(names: list[str] | None = None, kinds: tuple[str, ...] = ("quick", "fast", "book"),
                train_images: int = 60_000, test_images: int = 10_000) -> Iterator:
    """What one finished run of each catalog network and preset keeps on Fashion-MNIST (store_of)."""
    from explorer.training.kept import store_of
    from explorer.training.recipes import preset

    for name in names or registry.list_models():
        for kind in kinds:
            chosen = preset(name, kind)
            yield store_of(name, kind, chosen.config, chosen.settings, train_images, test_images)
