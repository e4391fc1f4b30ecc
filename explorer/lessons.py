"""The chapter's claims as experiments: one lesson per section, each a claim, the comparison that shows its
cost, and a pair of runs that shows its effect on the real data.

A lesson's evidence is measured, never written: `python -m explorer lessons --measure` trains every pair on
Fashion-MNIST and keeps the table, with the machine it ran on, in MEASURED (a file in the repo, shown by the
Lessons page, the CLI and the README). A student can queue the same pair and watch it (Runs, run=A&vs=B).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from explorer.config import ModelConfig
from explorer.errors import ConfigError, QuotaError
from explorer.i18n import _
from explorer.measured import machine
from explorer.summary import summarize
from explorer.training.estimate import human_duration
from explorer.training.recipes import TrainSettings, preset
from explorer.training.runs import RunRequest
from explorer.training.train import train

MEASURED = Path(__file__).with_name("lessons_measured.json")


@dataclass(frozen=True)
class Side:
    """One network of a lesson: a catalog entry with changes to its quick preset's network and settings."""

    label: str
    model: str
    network: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def config(self) -> ModelConfig:
        return dataclasses.replace(preset(self.model, "quick").config, **self.network)

    def train_settings(self) -> TrainSettings:
        return dataclasses.replace(preset(self.model, "quick").settings, **self.settings)


@dataclass(frozen=True)
class Lesson:
    name: str
    section: str         # 动手学深度学习, the Chinese 2.0 edition
    english: str         # Dive into Deep Learning, the English edition
    title: str
    claim: str           # two sentences
    pair: tuple[Side, Side]
    watch: str           # the dynamics statistic that explains the pair (explorer.training.dynamics.STATISTICS)
    exercise: str = ""   # one of the book's exercises of this section that the app answers, in a sentence
    exercise_numbers: tuple[str, str] = ("", "")  # its number in each edition (7.6.1 in Chinese, 8.6.1 in English)
    exercise_page: str = ""                       # where it is answered, opened with these parameters
    exercise_params: Mapping[str, str] = field(default_factory=dict)


LESSONS: tuple[Lesson, ...] = (
    Lesson("lenet", "6.6", "7.6", "LeNet: the baseline",
           "A small convolutional network learns Fashion-MNIST from its pixels: two convolutions with pooling, "
           "then three dense layers. Its sigmoids pass on a small gradient, which is why the book trains it at a "
           "learning rate as large as 0.9.",
           (Side("lr 0.9, the book's", "lenet", settings={"epochs": 2}),
            Side("lr 0.1", "lenet", settings={"epochs": 2, "lr": 0.1})),
           "grad_norm"),
    Lesson("alexnet", "7.1", "8.1", "AlexNet: deeper, wider, ReLU",
           "AlexNet is LeNet made deeper and much wider, with ReLU instead of sigmoids and dropout in its dense "
           "layers. Given the same images once, does the bigger network learn more, and at what compute?",
           (Side("LeNet, one epoch", "lenet", settings={"epochs": 1}), Side("AlexNet (quick), one epoch", "alexnet")),
           "grad_norm"),
    Lesson("vgg", "7.2", "8.2", "VGG: networks from blocks",
           "VGG builds a network from one repeated block, so depth and width are a list, conv_arch, and one "
           "ratio narrows every block at once. Its convolutions do almost all of the compute, its dense layers "
           "hold most of the parameters: what does halving the width cost?",
           (Side("ratio 8 (quick)", "vgg11"), Side("ratio 16: half as wide", "vgg11", network={"ratio": 16})),
           "update_ratio",
           "VGG computes much more slowly than AlexNet and needs more memory: why?", ("7.2.2", "8.2.1"),
           "pages/compare.py", {"a.model": "alexnet", "b.model": "vgg11"}),
    Lesson("nin", "7.3", "8.3", "NiN: 1x1 convolutions instead of dense layers",
           "NiN replaces the dense layers with 1x1 convolutions and one global average pool. It needs a small "
           "fraction of AlexNet's parameters for a comparable accuracy.",
           (Side("AlexNet (quick)", "alexnet"), Side("NiN (quick)", "nin")),
           "dead"),
    Lesson("googlenet", "7.4", "8.4", "GoogLeNet: parallel paths",
           "An Inception block looks at the same input through 1x1, 3x3 and 5x5 convolutions and a pool at once "
           "and concatenates what they find. 1x1 convolutions shrink the channels first, so the block stays cheap.",
           (Side("VGG-11 (quick)", "vgg11"), Side("GoogLeNet (quick)", "googlenet")),
           "grad_norm"),
    Lesson("batchnorm", "7.5", "8.5", "Batch normalization: a steadier deep network",
           "Batch normalization rescales each layer's inputs by the statistics of the batch, so the layers in "
           "between stay in range while the weights move. The same LeNet then learns more in the same two epochs, "
           "at the same learning rate and a smaller batch.",
           (Side("LeNet", "lenet", settings={"epochs": 2}),
            Side("LeNet with batch norm", "lenet-bn", settings={"epochs": 2, "batch_size": 64, "lr": 0.9})),
           "saturated"),
    Lesson("resnet", "7.6", "8.6", "ResNet: the shortcut keeps the gradient alive",
           "A residual block adds its input to what it computes, so a deep network can fall back to a shallower "
           "one and the gradient reaches its first layers. Take the shortcut away from a deep network without "
           "batch norm and it stops learning.",
           (Side("34 layers, residual", "resnet34", network={"channels": (16, 32, 64, 128), "norm": "none"},
                 settings={"train_subset": 12_000, "batch_size": 64, "lr": 0.05}),
            Side("34 layers, plain", "resnet34",
                 network={"channels": (16, 32, 64, 128), "norm": "none", "residual": False},
                 settings={"train_subset": 12_000, "batch_size": 64, "lr": 0.05})),
           "grad_norm",
           "What are the major differences between the Inception block and the residual block?", ("7.6.1", "8.6.1"),
           "pages/compare.py", {"a.model": "googlenet", "b.model": "resnet18"}),
    Lesson("densenet", "7.7", "8.7", "DenseNet: concatenate instead of add",
           "A dense block concatenates every layer's output to its input instead of adding it, so later layers "
           "see all earlier features. The book credits it with accuracy; it pays in compute and memory as the "
           "channels grow.",
           (Side("ResNet-18 (quick)", "resnet18"), Side("DenseNet (quick)", "densenet")),
           "grad_norm"),
)


def get(name: str) -> Lesson:
    """A lesson by its name or its section in the Chinese edition (resnet or 7.6)."""
    for lesson in LESSONS:
        if name in (lesson.name, lesson.section):
            return lesson
    raise ConfigError("lesson", "no lesson {name!r}; choose from {choices}", name=name[:40],
                      choices=", ".join(x.name for x in LESSONS))


def compare_configs(lesson: Lesson) -> tuple[tuple[str, ModelConfig], tuple[str, ModelConfig]]:
    """The pair's own two networks, each with its catalog name, for the cost table and Compare."""
    return tuple((side.model, side.config()) for side in lesson.pair)


def queue_pair(manager, lesson: Lesson, visitor) -> tuple[str, str]:
    """Queue both runs of a lesson for `visitor` (their quotas apply); both or neither. Each is named by its
    section and side in English, read in each reader's language (i18n.said_name). A refusal never asks for a
    change the lesson cannot make: over the time limit it says to wait or to open the pair in Train."""
    try:
        first, second = manager.start_many(
            [RunRequest(side.model, side.config(), side.train_settings(), "quick", f"{lesson.section} {side.label}")
             for side in lesson.pair], visitor)
    except QuotaError as err:
        if err.limit != "EXPLORER_MAX_RUN_MINUTES":
            raise  # the per-visitor, per-address and queue refusals already say what to wait for
        raise QuotaError(err.limit, "this pair would take longer than this server's limit of {limit} "
                         "(EXPLORER_MAX_RUN_MINUTES) on an idle machine. Try again when fewer runs share the server, "
                         "or open each network in Train, where you can choose fewer epochs or images.",
                         limit=human_duration(manager.quotas.max_seconds)) from None
    return first, second


@dataclass(frozen=True)
class Result:
    """One side of a lesson, measured: trained once on the real data."""

    label: str
    model: str
    params: int
    mult_adds: int
    test_acc: float
    train_loss: float
    seconds: float
    first_grad: float  # the first layer's gradient norm at the last report
    last_grad: float   # the last layer's


def verdict(results: list[Result]) -> str:
    """What a measured pair showed, in words made from its numbers (never written by hand): which reached the
    higher accuracy and by how many points, said without a sign, and how long each took."""
    a, b = results
    high, low = (a, b) if a.test_acc >= b.test_acc else (b, a)
    points = (high.test_acc - low.test_acc) * 100
    if points < 0.05:
        said = _('"{a}" and "{b}" both reached {acc:.1%} test accuracy').format(a=_(a.label), b=_(b.label),
                                                                                 acc=a.test_acc)
    else:
        said = _('"{high}" reached {high_acc:.1%} test accuracy, {points:.1f} points above "{low}" ({low_acc:.1%})'
                 ).format(high=_(high.label), high_acc=high.test_acc, points=points, low=_(low.label),
                          low_acc=low.test_acc)
    said += _('; "{a}" trained in {a_s:.0f} s, "{b}" in {b_s:.0f} s').format(a=_(a.label), a_s=a.seconds,
                                                                           b=_(b.label), b_s=b.seconds)
    dead = [r for r in (a, b) if r.first_grad == 0]
    if len(dead) == 1:  # a network that stopped learning: a ratio to nothing says less than this
        said += _('; no gradient reached the first layer of "{name}"').format(name=_(dead[0].label))
    elif not dead and not 0.01 <= b.first_grad / a.first_grad <= 100:
        said += _('; the gradient at the first layer of "{b}" was {ratio:.1g} times that of "{a}"').format(
            a=_(a.label), b=_(b.label), ratio=b.first_grad / a.first_grad)
    return _("{sentence}.").format(sentence=said)


def result_of(side: Side, record, store) -> Result | None:
    """One side of a lesson as a visitor's run of it measured it (explorer.training.schema.RunRecord), in the
    kept measurement's columns; None until the run has finished with a result."""
    if record is None or record.status != "done" or record.test_acc is None:
        return None
    totals = summarize(side.config()).totals
    dynamics = store.dynamics(record.id)
    last = dynamics[dynamics.step == dynamics.step.max()] if len(dynamics) else dynamics
    grads = last.grad_norm.tolist() if len(last) else [float("nan"), float("nan")]
    return Result(side.label, side.model, totals.params, totals.mult_adds, float(record.test_acc),
                  float(record.train_loss), float(record.seconds or 0.0), grads[0], grads[-1])


def trained(label: str, model: str, config: ModelConfig, settings: TrainSettings, data_dir: str | None = None,
            threads: int | None = None) -> Result:
    """Train one network here on the real data and read what it did (a lesson's side, an exercise's setup)."""
    run = train(config, settings, data_dir=data_dir, threads=threads)
    last = run.history[-1]
    readings = next(h.dynamics for h in reversed(run.history) if h.dynamics)
    totals = summarize(config).totals
    return Result(label, model, totals.params, totals.mult_adds, last.test_acc, last.train_loss, run.seconds,
                  readings[0]["grad_norm"], readings[-1]["grad_norm"])


def measure(lesson: Lesson, data_dir: str | None = None, threads: int | None = None) -> list[Result]:
    """Train both sides of a lesson here, one after the other, and read what they did."""
    return [trained(side.label, side.model, side.config(), side.train_settings(), data_dir, threads)
            for side in lesson.pair]


def save(lesson: Lesson, results: list[Result], path: Path = MEASURED) -> None:
    """Keep a lesson's measurement with where and when it was taken (other lessons' stay as they were)."""
    kept = json.loads(path.read_text()) if path.exists() else {}
    kept[lesson.name] = {"machine": machine(),
                         "date": time.strftime("%Y-%m-%d"), "results": [dataclasses.asdict(r) for r in results]}
    path.write_text(json.dumps(kept, indent=1) + "\n")


def measured(lesson: Lesson, path: Path = MEASURED) -> tuple[str, list[Result]] | None:
    """A lesson's kept measurement: where and when, and each side's result; None if never measured."""
    kept = json.loads(path.read_text()).get(lesson.name) if path.exists() else None
    if not kept:
        return None
    return where(kept["machine"], kept["date"]), [Result(**r) for r in kept["results"]]


def where(machine: str, date: str) -> str:
    """A kept measurement's machine and date, in the reader's language."""
    arch, _sep, cores = machine.partition(", ")
    said = _("{arch}, {cores} CPU cores").format(arch=arch, cores=cores.split()[0]) if cores else arch
    return f"{said}, {date}"


def markdown(path: Path = MEASURED) -> str:
    """Every lesson's claim, kept table and verdict as Markdown: docs/lessons.md's measured part, generated
    (python -m explorer lessons --markdown), never typed."""
    from explorer.views.tables import lesson_table, markdown_table

    blocks = []
    for lesson in LESSONS:
        block = f"**{lesson.section} (English edition {lesson.english}) {_(lesson.title)}.** {_(lesson.claim)}"
        kept = measured(lesson, path)
        if kept is None:
            blocks.append(block + "\n\nNot measured yet.")
            continue
        where, results = kept
        blocks.append(f"{block}\n\n{markdown_table(lesson_table(results))}\n\n{verdict(results)} ({where})")
    return "\n\n".join(blocks) + "\n"


__all__ = ["LESSONS", "Lesson", "Result", "Side", "compare_configs", "get", "markdown", "measure", "measured",
           "queue_pair", "result_of", "save", "trained", "verdict", "where"]
