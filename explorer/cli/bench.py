"""`python -m explorer bench ...`: the benchmarks (explorer.bench) printed as tables."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from typing import Any


def add_commands(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(required=True, metavar="WHAT")
    s = bench.add_parser("summary", help="warm summary time per catalog model")
    s.add_argument("--repeat", type=int, default=5)
    _save_arg(s, "summary")
    s.set_defaults(func=cmd_bench_summary)
    s = bench.add_parser("train", help="images/s of d2l's pipeline against ours, and the ratio")
    s.add_argument("name")
    s.add_argument("--resolution", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--batches", type=int, default=20)
    s.add_argument("--rounds", type=int, default=16, help="runs of our pipeline, each stretch between two of its "
                                                          "reports timed beside the step alone; the efficiency is "
                                                          "the interquartile mean of the stretches (default: 16)")
    s.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    s.add_argument("--data-dir")
    s.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the step under torch.compile, its compile time said, and keep it in the run "
                        "store: later runs of this network and batch size compile where that pays (default: on)")
    s.add_argument("--home", help="data directory for the run store (default: $EXPLORER_HOME or ~/.cnn-explorer)")
    s.add_argument("--save", action="store_true", help="add this run to docs/measured/train.json, the source of "
                                                       "its table in docs/performance.md (python -m explorer docs)")
    s.set_defaults(func=cmd_bench_train)
    s = bench.add_parser("memory", help="each preset's memory estimate beside the measured peak of real steps")
    s.add_argument("names", nargs="*", help="catalog names (default: all)")
    s.add_argument("--preset", choices=("quick", "book"), action="append", help="default: both")
    _save_arg(s, "memory")
    s.set_defaults(func=cmd_bench_memory)
    s = bench.add_parser("dynamics", help="what reading each layer's gradients and outputs adds to a training step")
    s.add_argument("names", nargs="*", help="catalog names (default: all)")
    s.add_argument("--steps", type=int, default=12)
    _save_arg(s, "dynamics")
    s.set_defaults(func=cmd_bench_dynamics)
    s = bench.add_parser("inference", help="each catalog network's prediction time: one image, and a batch")
    s.add_argument("names", nargs="*", help="catalog names (default: all)")
    s.add_argument("--repeat", type=int, default=5)
    _save_arg(s, "inference")
    s.set_defaults(func=cmd_bench_inference)
    s = bench.add_parser("store", help="what one finished run of each network and preset keeps: rows, weights")
    s.add_argument("names", nargs="*", help="catalog names (default: all)")
    _save_arg(s, "store")
    s.set_defaults(func=cmd_bench_store)
    s = bench.add_parser("presets", help="train each preset on the real data: test accuracy over seeds, time")
    s.add_argument("names", nargs="*", help="catalog names (default: all)")
    s.add_argument("--preset", choices=("quick", "fast", "book"), default="quick")
    s.add_argument("--seeds", type=int, default=1, help="train seeds 0 to N-1 (default: 1)")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_bench_presets)
    s = bench.add_parser("speedrun", help="the speedrun network with its own preset on the real data, seed by seed: "
                                          "test accuracy and the whole run's time")
    s.add_argument("--seeds", type=int, default=3, help="train seeds 0 to N-1 (default: 3)")
    s.add_argument("--data-dir")
    _save_arg(s, "speedrun")
    s.set_defaults(func=cmd_bench_speedrun)


def _save_arg(s: argparse.ArgumentParser, what: str) -> None:
    s.add_argument("--save", action="store_true", help=f"keep it in docs/measured/{what}.json, the source of "
                                                       "its table in docs/performance.md (python -m explorer docs)")


def cmd_bench_summary(args: argparse.Namespace) -> int:
    from explorer.bench import bench_summary
    from explorer.measured import save

    rows = bench_summary(repeat=args.repeat)
    print(f"{'model':18s} {'layers':>6s} {'first ms':>9s} {'warm ms':>8s} {'us/layer':>8s} {'cached ms':>9s} "
          f"{'torchinfo ms':>12s}")
    for row in rows:
        print(f"{row.name:18s} {row.layers:6d} {row.first_ms:9.1f} {row.warm_ms:8.1f} {row.us_per_layer:8.0f} "
              f"{row.cached_ms:9.3f} {row.torchinfo_ms:12.1f}")
    if args.save:
        save("summary", rows)
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    from explorer.bench import bench_train
    from explorer.training.runs import store_at

    store = store_at(args.home)
    r = bench_train(args.name, args.resolution, args.batch_size, args.batches, args.device, args.data_dir,
                    args.compile, args.rounds, store)
    print(f"{r.name} at {r.resolution}x{r.resolution}, batch {r.batch_size}, {r.batches} batches "
          f"({args.device}, first 3 not timed)")
    print("the train step alone, one fixed batch, under each setting:")
    for c in r.ceilings:
        said = f"failed: {c.failed}" if c.failed else f"{c.images_per_sec:10.1f} images/s"
        if c.compiled and not c.failed:
            said += f" after a {c.setup_seconds:.1f} s compile"
        print(f"  {c.setting:48s} {said}")
    eager, best = r.eager_ceiling, r.best_ceiling
    print(f"eager ceiling {eager.images_per_sec:10.1f} images/s  ({eager.setting})")
    print(f"best ceiling  {best.images_per_sec:10.1f} images/s  ({best.setting})")
    print(f"ceiling       {r.ceiling_images_per_sec:10.1f} images/s  (the step as a run takes it: the memory format "
          "and precision it measures, eager; the median of the stretches)")
    print(f"ours          {r.ours_images_per_sec:10.1f} images/s")
    print(f"d2l pipeline  {r.d2l_images_per_sec:10.1f} images/s")
    low, high = r.quartiles
    print(f"efficiency {r.efficiency:.2f} (the mean of the middle half of {len(r.pairs)} stretches between two "
          f"reports of ours in {r.rounds} runs, each against the step alone timed on either side; quartiles "
          f"{low:.2f}-{high:.2f})")
    print(f"ratio {r.ratio:.2f}")
    if args.save:
        from explorer.measured import add_train

        add_train(r)
    return 0


def cmd_bench_presets(args: argparse.Namespace) -> int:
    from explorer.bench import bench_presets

    if args.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return 2
    print(f"| model | test acc, lowest | highest | time (s), longest | estimated (s) | time / estimate | images/s | "
          f"{args.preset} preset changes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in bench_presets(args.preset, args.names or None, args.seeds, args.data_dir):
        print(f"| {r.name} | {min(r.accuracies):.3f} | {max(r.accuracies):.3f} | {max(r.seconds):.0f} | "
              f"{r.estimate_seconds:.0f} | {max(r.seconds) / r.estimate_seconds:.2f} | {r.images_per_sec:.0f} | "
              f"{'; '.join(r.changes)} |", flush=True)
    return 0


def cmd_bench_speedrun(args: argparse.Namespace) -> int:
    from explorer.bench import bench_speedrun

    if args.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return 2
    return _report("speedrun", f"{'seed':>4s} {'epochs':>6s} {'test acc':>8s} {'run s':>6s} {'process s':>9s} "
                               f"{'images/s':>8s}",
                   bench_speedrun(args.seeds, args.data_dir),
                   lambda r: f"{r.seed:4d} {r.epochs:6d} {r.test_acc:8.4f} {r.seconds:6.0f} {r.process_seconds:9.0f} "
                             f"{r.images_per_sec:8.0f}", args.save)


def cmd_bench_memory(args: argparse.Namespace) -> int:
    from explorer.bench import bench_memory

    return _report("memory", f"{'model':18s} {'preset':6s} {'batch':>5s} {'size':>4s} {'estimate':>9s} {'peak':>9s} "
                   f"{'ratio':>5s}", bench_memory(tuple(args.preset or ("quick", "book")), args.names or None),
                   lambda r: f"{r.name:18s} {r.kind:6s} {r.batch_size:5d} {r.resolution:4d} "
                             f"{r.estimate_bytes / 2**30:8.2f}G {r.peak_bytes / 2**30:8.2f}G {r.ratio:5.2f}", args.save)


def cmd_bench_dynamics(args: argparse.Namespace) -> int:
    from explorer.bench import bench_dynamics

    return _report("dynamics", f"{'model':18s} {'batch':>5s} {'step ms':>8s} {'watched':>8s} {'step cost':>9s} "
                   f"{'every':>5s} {'run cost':>8s}", bench_dynamics(args.names or None, steps=args.steps),
                   lambda r: f"{r.name:18s} {r.batch_size:5d} {r.step_ms:8.1f} {r.watched_ms:8.1f} "
                             f"{r.watched_cost:+9.1%} {r.report_every:5d} {r.run_cost:+8.2%}", args.save)


def cmd_bench_inference(args: argparse.Namespace) -> int:
    from explorer.bench import bench_inference

    return _report("inference", f"{'model':18s} {'input':>7s} {'one image ms':>12s} {'images/s':>9s}",
                   bench_inference(args.names or None, repeat=args.repeat),
                   lambda r: f"{r.name:18s} {r.resolution:4d} px {r.latency_ms:12.1f} {r.images_per_sec:9.0f}",
                   args.save)


def cmd_bench_store(args: argparse.Namespace) -> int:
    from explorer.bench import bench_store

    return _report("store", f"{'model':18s} {'preset':6s} {'epochs':>6s} {'metric rows':>11s} {'dynamics rows':>13s} "
                   f"{'store MB':>8s} {'disk MB':>8s} {'weights MB':>10s}", bench_store(args.names or None),
                   lambda r: f"{r.name:18s} {r.preset:6s} {r.epochs:6d} {r.metric_rows:11d} {r.dynamics_rows:13d} "
                             f"{r.store_bytes / 2**20:8.2f} {r.disk_bytes / 2**20:8.2f} "
                             f"{r.weights_bytes / 2**20:10.2f}", args.save)


def _report(what: str, header: str, rows: Iterable, line: Callable[[Any], str], keep: bool) -> int:
    """Print a benchmark's rows as they come (each can take minutes); with `keep`, save them for the docs."""
    from explorer.measured import save

    print(header)
    done = []
    for row in rows:
        print(line(row), flush=True)
        done.append(row)
    if keep:
        save(what, done)
    return 0
