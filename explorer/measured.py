"""Kept measurements: benchmarks' rows saved with the machine and date as docs/measured/*.json, and the
Markdown tables `python -m explorer docs` generates from them (never typed)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path

from explorer.bench import DynamicsBench, InferenceBench, SeedRun, TrainBench
from explorer.i18n import _
from explorer.training.ceiling import Ceiling
from explorer.training.estimate import human_duration
from explorer.training.kept import StoreBench

MEASURED = Path(__file__).parent.parent / "docs" / "measured"  # kept benchmarks, the docs' tables' source


def machine() -> str:
    """Where a kept measurement was taken: the architecture and the CPU cores this process may use."""
    return f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPU cores"


def save(what: str, rows: list, directory: Path = MEASURED) -> None:
    """Keep a benchmark's rows (dataclasses) with where and when it ran, as docs/measured/WHAT.json: the
    source of its table in docs/performance.md (python -m explorer docs)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{what}.json").write_text(json.dumps(
        {"machine": machine(), "date": time.strftime("%Y-%m-%d"),
         "rows": [dataclasses.asdict(r) for r in rows]}, indent=1) + "\n")


def add_train(bench: TrainBench, directory: Path = MEASURED) -> None:
    """Add one run of `bench train` to docs/measured/train.json, with where and when it ran, after those kept
    before: its efficiency is asked of every run, so each run is a row."""
    path = directory / "train.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    directory.mkdir(parents=True, exist_ok=True)
    rows.append({"date": time.strftime("%Y-%m-%d"), "machine": machine(), **dataclasses.asdict(bench)})
    path.write_text(json.dumps({"rows": rows}, indent=1) + "\n")


def kept_train(directory: Path = MEASURED) -> list[tuple[str, str, TrainBench]]:
    """The kept runs of `bench train`: (date, machine, its figures), oldest first."""
    path = directory / "train.json"
    if not path.is_file():
        return []
    runs = []
    for r in json.loads(path.read_text())["rows"]:
        figures = {k: v for k, v in r.items() if k not in ("date", "machine")}
        figures["pairs"] = tuple(tuple(p) for p in figures["pairs"])
        figures["ceilings"] = tuple(Ceiling(**c) for c in figures["ceilings"])
        runs.append((r["date"], r["machine"], TrainBench(**figures)))
    return runs


def train_markdown(directory: Path = MEASURED) -> str:
    """The kept runs of `bench train`, one row each (generated into docs/performance.md)."""
    lines = ["Each row one run of `python -m explorer bench train NAME --save` (book settings; the ceiling and "
             "ours: medians of the stretches).", "",
             "| measured | network, batch (batches x runs) | eager ceiling | best ceiling | ceiling beside ours | "
             "ours | efficiency (quartiles) | d2l's | ratio |", "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for date, where, b in kept_train(directory):
        eager, best = b.eager_ceiling, b.best_ceiling
        low, high = b.quartiles
        lines.append(f"| {date}, {where} | {b.name}, {b.batch_size} ({b.batches} x {b.rounds}) | "
                     f"{eager.images_per_sec:,.0f} | "
                     f"{best.images_per_sec:,.0f} ({best.setting}) | {b.ceiling_images_per_sec:,.0f} | "
                     f"{b.ours_images_per_sec:,.0f} | {b.efficiency:.2f} ({low:.2f}-{high:.2f}) | "
                     f"{b.d2l_images_per_sec:,.0f} | {b.ratio:.2f} |")
    return "\n".join(lines) + "\n"


def kept(what: str, directory: Path = MEASURED) -> tuple[str, list[dict]]:
    """A kept benchmark's rows, and a sentence that says when, where and by which command it was measured."""
    kept = json.loads((directory / f"{what}.json").read_text())
    return (f"Measured {kept['date']} on {kept['machine']} (`python -m explorer bench {what} --save`).",
            kept["rows"])


def summary_markdown(directory: Path = MEASURED) -> str:
    """The kept summary benchmark as a Markdown table (generated into docs/performance.md, never typed)."""
    where, rows = kept("summary", directory)
    lines = [where, "", "| model | layers | first in a process (ms) | warm, uncached (ms) | per layer (µs) | "
             "cached (ms) | torchinfo.summary (ms) |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['layers']} | {r['first_ms']:.1f} | {r['warm_ms']:.1f} | "
              f"{r['warm_ms'] * 1000 / r['layers']:.0f} | {r['cached_ms']:.3f} | {r['torchinfo_ms']:.1f} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def memory_markdown(directory: Path = MEASURED) -> str:
    """The kept memory benchmark: each model's presets, estimate beside measured peak (generated into
    docs/performance.md)."""
    where, rows = kept("memory", directory)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    by = {(r["name"], r["kind"]): r for r in rows}
    lines = [where, "", "| model | " + " | ".join(f"{k}: batch, size | estimate / peak (GiB) | ratio" for k in kinds)
             + " |", "|---|" + "---|---:|---:|" * len(kinds)]
    for name in dict.fromkeys(r["name"] for r in rows):
        cells = []
        for kind in kinds:
            r = by.get((name, kind))
            cells += ["", "", ""] if r is None else [
                f"{r['batch_size']}, {r['resolution']}",
                f"{r['estimate_bytes'] / 2**30:.2f} / {r['peak_bytes'] / 2**30:.2f}",
                f"{r['estimate_bytes'] / r['peak_bytes']:.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def dynamics_markdown(directory: Path = MEASURED) -> str:
    """The kept dynamics benchmark: what reading each layer costs a step and a run (generated into
    docs/performance.md)."""
    where, rows = kept("dynamics", directory)
    lines = [where, "", "| model | batch | step (ms) | watched step (ms) | a watched step's cost | reported every | "
             "cost to a run |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = DynamicsBench(**r)
        lines.append(f"| {b.name} | {b.batch_size} | {b.step_ms:.1f} | {b.watched_ms:.1f} | {b.watched_cost:+.1%} | "
                     f"{b.report_every} steps | {b.run_cost:+.2%} |")
    return "\n".join(lines) + "\n"


def inference_markdown(directory: Path = MEASURED) -> str:
    """The kept inference benchmark (generated into docs/performance.md)."""
    where, rows = kept("inference", directory)
    lines = [where, "", "| model | input | one image (ms) | images/s, a batch at a time |", "|---|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['resolution']}x{r['resolution']} | {r['latency_ms']:.1f} | "
              f"{r['images_per_sec']:.0f} (batch {r['batch']}) |" for r in rows]
    return "\n".join(lines) + "\n"


def kept_inference(name: str, directory: Path | None = None) -> tuple[str, str, InferenceBench] | None:
    """The kept prediction time of a catalog network at its catalog config, with when and on what machine
    it was measured; None when none is kept."""
    path = (directory or MEASURED) / "inference.json"
    if not path.is_file():
        return None
    kept = json.loads(path.read_text())
    found = [InferenceBench(**r) for r in kept["rows"] if r["name"] == name]
    return (kept["date"], kept["machine"], found[0]) if found else None


def store_markdown(directory: Path = MEASURED) -> str:
    """The kept store benchmark: what one finished run of each network and preset keeps, as a visitor's quota
    (EXPLORER_STORE_MB_PER_VISITOR) counts it (generated into docs/hosting.md)."""
    where, rows = kept("store", directory)
    kinds = list(dict.fromkeys(r["preset"] for r in rows))
    by = {(r["name"], r["preset"]): StoreBench(**r) for r in rows}
    lines = [where, "", "| model | " + " | ".join(f"{k}: rows + weights (MB)" for k in kinds) + " |",
             "|---|" + "---:|" * len(kinds)]
    for name in dict.fromkeys(r["name"] for r in rows):
        cells = [f"{b.store_bytes / 2**20:.1f} + {b.weights_bytes / 2**20:.1f} = **{b.total_bytes / 2**20:.1f}**"
                 if (b := by.get((name, k))) else "" for k in kinds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def kept_speedrun(directory: Path | None = None) -> tuple[str, str, list[SeedRun]] | None:
    """The speedrun's kept seeds (`bench speedrun --save`), with when and on what machine; None when none is
    kept."""
    path = (directory or MEASURED) / "speedrun.json"
    if not path.is_file():
        return None
    kept = json.loads(path.read_text())
    return kept["date"], kept["machine"], [SeedRun(**r) for r in kept["rows"]]


def speedrun_said(directory: Path | None = None) -> str | None:
    """The speedrun as measured, in a sentence in the reader's language (the Train page's), or None."""
    found = kept_speedrun(directory)
    if found is None:
        return None
    date, where, runs = found
    accuracies, epochs = [r.test_acc for r in runs], sorted({r.epochs for r in runs})
    return _("Measured on {date} ({machine}): {low:.2%} to {high:.2%} test accuracy over {n} seeds in {epochs} "
             "epochs, each whole run (loading the data and every test pass included) at most {time}.").format(
        date=date, machine=where, low=min(accuracies), high=max(accuracies), n=len(runs),
        epochs=f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}",
        time=human_duration(max(r.process_seconds for r in runs)))


def speedrun_markdown(directory: Path = MEASURED) -> str:
    """The kept speedrun, seed by seed, with the network and its preset (generated into docs/performance.md)."""
    from explorer.summary import summarize
    from explorer.training.recipes import preset

    where, rows = kept("speedrun", directory)
    p = preset("speedrun", "speedrun")
    totals = summarize(p.config).totals
    lines = [where, "", f"`speedrun`: {totals.params:,} parameters, {totals.mult_adds / 1e6:.1f} M mult-adds an "
             f"image at {p.config.resolution}x{p.config.resolution}; its preset: {'; '.join(p.changes)}.", "",
             "| seed | epochs | test accuracy | the run (s) | its process, from start (s) | training images/s |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['seed']} | {r['epochs']} | {r['test_acc']:.4f} | {r['seconds']:.0f} | "
              f"{r['process_seconds']:.0f} | {r['images_per_sec']:.0f} |" for r in rows]
    return "\n".join(lines) + "\n"
