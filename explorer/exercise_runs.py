"""The answers of the exercises that a training run answers, measured: each setup of a Train exercise trained
here on the real data with the quick preset (`python -m explorer exercises --measure`), and kept with the
machine and date in explorer/exercises_measured.json, as the lessons' measurements are kept.

A setup is kept by what it trains (network, knobs, data set), so the baseline LeNet that five exercises
share is trained once and every exercise that opens it shows the same run.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from explorer import lessons
from explorer.config import ModelConfig
from explorer.exercises import Exercise, Setup
from explorer.lessons import Result, trained, where
from explorer.measured import machine
from explorer.training.data import DEFAULT_DATASET
from explorer.training.recipes import TrainSettings, preset

KEPT = Path(__file__).with_name("exercises_measured.json")
PRESET = "quick"  # what an exercise's Train link opens with


def trains(exercise: Exercise) -> bool:
    """Whether a training run answers it: its setups open on Train."""
    return exercise.page == "train" and bool(exercise.setups)


def dataset_of(exercise: Exercise) -> str:
    return exercise.extra.get("dataset", DEFAULT_DATASET)


def run_of(setup: Setup, dataset: str) -> tuple[ModelConfig, TrainSettings]:
    """What a setup trains, as its Train link does: the quick preset, which keeps the setup's own knobs
    (GoogLeNet's small stem at 28x28 stays at 28)."""
    chosen = preset(setup.model, PRESET, config=setup.built(), dataset=dataset)
    return chosen.config, chosen.settings


def key(setup: Setup, dataset: str) -> str:
    return json.dumps([setup.model, setup.texts(), dataset, PRESET], sort_keys=True)


def to_measure(exercises: list[Exercise]) -> list[tuple[Setup, str]]:
    """The setups these exercises train, each once (setups in both editions, or shared, are one)."""
    found: dict[str, tuple[Setup, str]] = {}
    for e in exercises:
        if trains(e):
            for setup in e.setups:
                found.setdefault(key(setup, dataset_of(e)), (setup, dataset_of(e)))
    return list(found.values())


def measure(todo: list[tuple[Setup, str]], data_dir: str | None = None, threads: int | None = None,
            path: Path | None = None, on_start: Callable[[Setup, str], None] | None = None) -> Iterator[Result]:
    """Train these setups (to_measure's) here, one after the other, keeping each result as soon as it is
    measured (an interrupted measurement keeps what it finished). `data_dir` is Fashion-MNIST's; MNIST is
    found as training finds it (EXPLORER_MNIST_DIR or torchvision's cache)."""
    for setup, dataset in todo:
        if on_start:
            on_start(setup, dataset)
        config, settings = run_of(setup, dataset)
        result = trained(setup.label or setup.model, setup.model, config, settings,
                         data_dir if dataset == DEFAULT_DATASET else None, threads)
        path = path or KEPT
        kept = json.loads(path.read_text()) if path.exists() else {}
        kept[key(setup, dataset)] = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "epochs": settings.epochs,
                                     "result": dataclasses.asdict(result)}
        path.write_text(json.dumps(dict(sorted(kept.items())), indent=1, ensure_ascii=False) + "\n")
        yield result


def measured(exercise: Exercise, path: Path | None = None) -> tuple[str, list[Result]] | None:
    """An exercise's kept results, one per setup under the setup's label, and where and when they were
    measured; None unless every setup was measured."""
    path = path or KEPT
    if not trains(exercise) or not path.exists():
        return None
    kept = json.loads(path.read_text())
    found = [kept.get(key(setup, dataset_of(exercise))) for setup in exercise.setups]
    if not all(found):
        return None
    places = dict.fromkeys(where(k["machine"], k["date"]) for k in found)
    results = [dataclasses.replace(Result(**k["result"]), label=setup.label or setup.model)
               for k, setup in zip(found, exercise.setups, strict=True)]
    return "; ".join(places), results


def verdict(results: list[Result]) -> str | None:
    """An exercise's measured setups in words: the highest accuracy against the lowest (lessons.verdict),
    in the setups' order; none for a single setup."""
    if len(results) < 2:
        return None
    high = max(results, key=lambda r: r.test_acc)
    low = min(results, key=lambda r: r.test_acc)
    return lessons.verdict([r for r in results if r is high or r is low] if high is not low else results[:2])


def markdown_lines(exercise: Exercise, path: Path | None = None) -> list[str]:
    """docs/exercises.md's line for an exercise's kept results, or none."""
    kept = measured(exercise, path)
    if kept is None:
        return []
    place, results = kept
    said = ", ".join(f"{r.label} {r.test_acc:.3f} in {r.seconds:.0f} s" for r in results)
    return [f"  - measured ({PRESET} preset, {place}): test accuracy {said}"]


__all__ = ["KEPT", "dataset_of", "markdown_lines", "measure", "measured", "run_of", "to_measure", "trains",
           "verdict"]
