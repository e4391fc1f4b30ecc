"""`python -m explorer ...`: the catalog, summaries, code export, training and benchmarks, headless."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from explorer import i18n
from explorer.errors import ConfigError, ExplorerError
from explorer.i18n import _, told


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if args.func is cmd_serve:
        args.streamlit_options = unknown  # streamlit's own options, passed on
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    i18n.for_cli()  # English, unless LANG asks for Chinese
    try:
        return args.func(args)
    except ExplorerError as err:  # in the CLI's language (English, unless LANG asks for Chinese)
        print(_("error: {message}").format(message=(f"{err.knob}: " if isinstance(err, ConfigError) else "")
                                            + err.text()), file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python -m explorer summary ... | head`
        return 0
    except KeyboardInterrupt:  # Ctrl-C before a run exists (a run in progress is stopped in cmd_train)
        print(_("interrupted"), file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explorer", description=__doc__)
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="catalog names with descriptions")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("summary", help="per-layer shapes, parameters, mult-adds and memory")
    _model_args(s)
    s.add_argument("--batch-size", type=int, default=1, help="batch size for the training-memory estimate")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s.set_defaults(func=cmd_summary)

    s = sub.add_parser("code", help="a standalone PyTorch file that builds the network")
    _model_args(s)
    s.set_defaults(func=cmd_code)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(required=True, metavar="WHAT")
    s = bench.add_parser("summary", help="warm summary time per catalog model")
    s.add_argument("--repeat", type=int, default=5)
    s.add_argument("--save", action="store_true", help="keep it in docs/measured/summary.json, the source of "
                                                       "docs/performance.md's table (python -m explorer docs)")
    s.set_defaults(func=cmd_bench_summary)
    s = bench.add_parser("train", help="images/s of d2l's pipeline against ours, and the ratio")
    s.add_argument("name")
    s.add_argument("--resolution", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--batches", type=int, default=20)
    s.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_bench_train)
    s = bench.add_parser("memory", help="each preset's memory estimate beside the measured peak of real steps")
    s.add_argument("names", nargs="*", help="catalog names (default: all)")
    s.add_argument("--preset", choices=("quick", "book"), action="append", help="default: both")
    s.set_defaults(func=cmd_bench_memory)
    s = bench.add_parser("dynamics", help="what reading each layer's gradients and outputs adds to a training step")
    s.add_argument("names", nargs="*", help="catalog names (default: all)")
    s.add_argument("--steps", type=int, default=12)
    s.set_defaults(func=cmd_bench_dynamics)
    s = bench.add_parser("presets", help="train each preset on the real data: test accuracy over seeds, time")
    s.add_argument("names", nargs="*", help="catalog names (default: all)")
    s.add_argument("--preset", choices=("quick", "fast", "book"), default="quick")
    s.add_argument("--seeds", type=int, default=1, help="train seeds 0 to N-1 (default: 1)")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_bench_presets)

    s = sub.add_parser("serve", help="start the app (streamlit run app.py) with its run manager up before the "
                                     "first visitor, so that a restarted server's queued runs go on at once")
    s.epilog = "Any other option is streamlit run's, passed on: --server.port 8501, --server.address 0.0.0.0."
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("train", help="train on Fashion-MNIST; the run is stored")
    _model_args(s)
    s.add_argument("--preset", choices=("book", "quick", "fast"), default="book",
                   help="book: d2l's settings; quick: about a minute on a CPU; fast: a modern recipe")
    s.add_argument("--epochs", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--train-subset", type=int, help="train on this many images (default: the preset's)")
    s.add_argument("--init", choices=("xavier", "kaiming"), help="weight init (default: the preset's)")
    recipe = s.add_argument_group("one recipe switch at a time (default: the preset's; fast turns several on)")
    recipe.add_argument("--optimizer", choices=("sgd", "adam"), help="the book's SGD, or Adam (decoupled decay)")
    recipe.add_argument("--momentum", type=float, help="SGD's momentum, 0 to below 1 (the book: 0)")
    recipe.add_argument("--weight-decay", type=float, help="on the weights, 0 to 0.1 (the book: 0)")
    recipe.add_argument("--label-smoothing", type=float, help="0 to 0.5 (the book: 0)")
    recipe.add_argument("--warmup", type=float, help="the fraction of steps the rate rises over, 0 to 0.5")
    recipe.add_argument("--cosine", action=argparse.BooleanOptionalAction, help="the rate falls along a half cosine")
    recipe.add_argument("--augment", action=argparse.BooleanOptionalAction,
                        help="random flips and shifts of up to 2 pixels")
    s.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    s.add_argument("--name", dest="run_name", help="what to call the run in lists and legends")
    s.add_argument("--data-dir", help="directory with the four Fashion-MNIST IDX files")
    s.add_argument("--home", help="data directory for the run store (default: $EXPLORER_HOME or ~/.cnn-explorer)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("runs", help="stored runs, one line each")
    s.add_argument("--home")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("lessons", help="the chapter's lessons, one per section, with what was measured")
    s.add_argument("--measure", action="store_true", help="train every lesson's pair on the real data now and "
                                                          "keep the results (minutes per lesson)")
    s.add_argument("--markdown", action="store_true", help="print every lesson's kept measurement as Markdown "
                                                           "(docs/lessons.md's measured part)")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_lessons)
    s = sub.add_parser("lesson", help="one lesson: its claim, comparison, training pair and measured answer")
    s.add_argument("lesson", metavar="NAME", help="a lesson's name or its Chinese-edition section (resnet or 7.6)")
    s.add_argument("--measure", action="store_true", help="train its pair on the real data now and keep the results")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_lesson)

    s = sub.add_parser("exercises", help="the chapter's exercises, both editions, with what answers each")
    s.add_argument("--edition", choices=("zh", "en"), help="one edition's (default: both)")
    s.add_argument("--format", choices=("table", "json", "markdown"), default="table",
                   help="markdown: docs/exercises.md, the coverage table and every exercise")
    s.set_defaults(func=cmd_exercises)
    s = sub.add_parser("exercise", help="one exercise: its question, setups and computed answer")
    s.add_argument("exercise", metavar="ID", help="as each edition numbers it: zh-7.6-3 or en-8.6-3")
    s.set_defaults(func=cmd_exercise)

    s = sub.add_parser("docs", help="write the docs' generated parts from the data they show (README's exercise "
                                    "coverage, docs/exercises.md, docs/lessons.md's measurements)")
    s.add_argument("--check", action="store_true", help="only say which differ (exit status 1 if any)")
    s.set_defaults(func=cmd_docs)

    s = sub.add_parser("prune", help="delete finished runs older than an age, with their weights (an admin's tool)")
    s.add_argument("--older-than", required=True, metavar="AGE", help="30d, 12h or 90m")
    s.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    s.add_argument("--home")
    s.set_defaults(func=cmd_prune)

    s = sub.add_parser("dynamics", help="a run's gradients, updates and outputs per layer, one row per (report, "
                                        "layer)")
    s.add_argument("run_id", metavar="RUN_ID")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s.add_argument("--home")
    s.set_defaults(func=cmd_dynamics)

    s = sub.add_parser("inspect", help="what a network makes of a test image: PNG files and the prediction")
    s.add_argument("subject", metavar="RUN_ID|MODEL", help="a stored run (trained weights) or a catalog name "
                                                           "(fresh Xavier-initialised weights)")
    s.add_argument("--image", type=int, default=0, help="index of the test image (default: 0)")
    s.add_argument("--out", default="inside", help="directory for the PNG files (default: ./inside)")
    s.add_argument("--data-dir")
    s.add_argument("--home")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("data", help="Fashion-MNIST: where it is, or download it")
    s.add_argument("action", choices=("where", "download"))
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_data)
    return p


def _model_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("name", help="catalog name (see `list`)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a knob, e.g. --set ratio=4 --set 'conv_arch=((1,16),(1,32))'")
    s.add_argument("--resolution", type=int, help="input resolution (same as --set resolution=N)")


def _config(args: argparse.Namespace, base=None):
    from explorer import registry
    from explorer.config import with_overrides

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", "expected KEY=VALUE, got {item!r}", item=item)
        overrides[key.strip()] = value
    if args.resolution is not None:
        overrides["resolution"] = str(args.resolution)
    return with_overrides(base or registry.get(args.name).config, overrides)


def cmd_list(args: argparse.Namespace) -> int:
    from explorer import registry

    for name in registry.list_models():
        e = registry.get(name)
        print(f"{name:18s} d2l {e.section:6s} {_(e.description)}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from explorer.summary import summarize
    from explorer.views.tables import csv_text, format_layers, totals_dict

    summary = summarize(_config(args), batch_size=args.batch_size)
    if args.format == "json":
        layers = summary.layers.astype(object).where(summary.layers.notna(), None)
        print(json.dumps({"layers": layers.to_dict(orient="records"), "totals": totals_dict(summary.totals)},
                         default=list))
    elif args.format == "csv":
        print(csv_text(summary.layers), end="")
    else:
        print(format_layers(summary.layers, summary.totals).to_string(index=False))
        print()
        for key, value in totals_dict(summary.totals, readable=True).items():
            print(f"{key:>24s}  {value}")
    return 0


def cmd_code(args: argparse.Namespace) -> int:
    from explorer.codegen import export_code
    from explorer.summary import check

    config = _config(args)
    check(config)
    print(export_code(config), end="")
    return 0


def cmd_bench_summary(args: argparse.Namespace) -> int:
    from explorer.bench import bench_summary, save_summary

    rows = bench_summary(repeat=args.repeat)
    print(f"{'model':18s} {'first ms':>9s} {'warm ms':>8s} {'cached ms':>9s}")
    for row in rows:
        print(f"{row.name:18s} {row.first_ms:9.1f} {row.warm_ms:8.1f} {row.cached_ms:9.3f}")
    if args.save:
        save_summary(rows)
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    from explorer.bench import bench_train

    r = bench_train(args.name, args.resolution, args.batch_size, args.batches, args.device, args.data_dir)
    print(f"{r.name} at {r.resolution}x{r.resolution}, batch {r.batch_size}, {r.batches} batches "
          f"({args.device}, first 3 not timed)")
    print(f"ceiling       {r.ceiling_images_per_sec:10.1f} images/s  (the train step alone, one fixed batch)")
    print(f"ours          {r.ours_images_per_sec:10.1f} images/s")
    print(f"d2l pipeline  {r.d2l_images_per_sec:10.1f} images/s")
    print(f"efficiency {r.efficiency:.2f}")
    print(f"ratio {r.ratio:.2f}")
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


def cmd_bench_memory(args: argparse.Namespace) -> int:
    from explorer.bench import bench_memory

    print(f"{'model':18s} {'preset':6s} {'batch':>5s} {'size':>4s} {'estimate':>9s} {'peak':>9s} {'ratio':>5s}")
    for r in bench_memory(tuple(args.preset or ("quick", "book")), args.names or None):
        print(f"{r.name:18s} {r.kind:6s} {r.batch_size:5d} {r.resolution:4d} {r.estimate_bytes / 2**30:8.2f}G "
              f"{r.peak_bytes / 2**30:8.2f}G {r.ratio:5.2f}", flush=True)
    return 0


def cmd_bench_dynamics(args: argparse.Namespace) -> int:
    from explorer.bench import bench_dynamics

    print("| model | batch | step (ms) | watched step (ms) | a watched step's cost | reported every | cost to a run |")
    print("|---|---|---|---|---|---|---|")
    for r in bench_dynamics(args.names or None, steps=args.steps):
        print(f"| {r.name} | {r.batch_size} | {r.step_ms:.1f} | {r.watched_ms:.1f} | {r.watched_cost:+.1%} | "
              f"{r.report_every} steps | {r.run_cost:+.2%} |", flush=True)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamlit.web import cli as streamlit_cli

    from explorer import server

    server.trust_proxies()  # read by the web server as it starts
    server.tune()  # before the first visitor; app.py's own call then finds it done
    app = Path(__file__).resolve().parent.parent / "app.py"
    sys.argv = ["streamlit", "run", str(app), *args.streamlit_options]
    return streamlit_cli.main()


def cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from explorer.training.recipes import TrainSettings, preset
    from explorer.training.runs import RunManager
    from explorer.views.runviews import accuracy, calibration_text

    chosen = preset(args.name, args.preset, args.device)
    config = _config(args, chosen.config)
    changes = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size),
                                 ("train_subset", args.train_subset), ("init", args.init),
                                 ("optimizer", args.optimizer), ("momentum", args.momentum),
                                 ("weight_decay", args.weight_decay), ("label_smoothing", args.label_smoothing),
                                 ("warmup", args.warmup), ("cosine", args.cosine), ("augment", args.augment))
               if v is not None}
    settings: TrainSettings = replace(chosen.settings, **changes)
    manager = RunManager(args.home, data_dir=args.data_dir, adopt_queued=False)  # a server's queue stays its own
    if manager.store.recovered:
        print(_("warning: {message}").format(message=manager.store.recovered), file=sys.stderr)
    # the CLI has no time limit: it says what it knows of the time and trains, busy machine or not
    run_id = manager.start(args.name, config, settings, preset=args.preset, name=args.run_name or "")
    if chosen.changes:
        print(_("{preset} preset: {changes}").format(preset=args.preset, changes="; ".join(chosen.changes)),
              file=sys.stderr)
    estimate = manager.estimate_time(config, settings, measure=False)
    print(_("Estimated: {time}.").format(time=estimate.text) if estimate is not None else
          _("Estimated: measured by the run before its first step."), file=sys.stderr)
    interrupted = False
    try:
        view = _follow(manager, run_id)
    except KeyboardInterrupt:
        interrupted = True
        manager.stop(run_id)
        view = manager.wait(run_id)
    r = view.record
    if r.warning:
        print(_("warning: {message}").format(message=told(r.warning)), file=sys.stderr)
    if r.status == "failed":
        print(_("error: run {run} failed: {error}").format(run=run_id, error=told(r.error)), file=sys.stderr)
        return 1
    if r.status == "interrupted" and r.error:
        print(_("error: run {run} interrupted: {error}").format(run=run_id, error=told(r.error)), file=sys.stderr)
    if r.train_loss is None:  # ended before its first report: it did not train
        print(_("run {run} {status} before its first report").format(run=run_id, status=_(r.status)))
        return 130 if interrupted else 1
    print(_("run {run} {status}: loss {loss:.3f}, train acc {train_acc:.3f}, best test acc {best} (final "
            "{final}), {rate:.0f} images/s, {seconds:.1f} s").format(
        run=run_id, status=_(r.status), loss=r.train_loss, train_acc=r.train_acc, best=accuracy(r.best_test_acc),
        final=accuracy(r.test_acc), rate=r.images_per_sec, seconds=r.seconds))
    if calibration_text(r):
        print(calibration_text(r))
    # the exit status says whether the run trained to its end: 130 when Ctrl-C stopped it, 1 when it was
    # interrupted (its worker or server gone)
    return 0 if r.status == "done" else 130 if interrupted else 1


def _follow(manager, run_id: str):
    """Draw a progress bar on stderr until the run finishes."""
    import time

    from explorer.training.store import FINISHED

    while True:
        view = manager.view(run_id)
        if view.status in FINISHED:
            print(file=sys.stderr)
            return view
        p = view.progress
        if p is not None and p.kind == "phase":
            print(f"\r{_(p.phase)}…{' ' * 60}", end="", file=sys.stderr, flush=True)
        elif p is not None:
            filled = int(30 * p.step / p.total_steps)
            line = (_("epoch {epoch:5.2f} loss {loss:.3f} acc {acc:.3f} {rate:.0f} img/s ETA {eta:4.0f}s")
                    if p.test_acc is None else
                    _("epoch {epoch:5.2f} loss {loss:.3f} acc {acc:.3f} test {test:.3f} {rate:.0f} img/s ETA "
                      "{eta:4.0f}s")).format(epoch=p.epoch, loss=p.train_loss, acc=p.train_acc, test=p.test_acc,
                                             rate=p.images_per_sec, eta=p.eta)
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {line} ", end="", file=sys.stderr, flush=True)
        time.sleep(0.2)


def cmd_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from PIL import Image

    from explorer.training.data import CLASS_NAMES
    from explorer.training.runs import RunManager
    from explorer.views.inside import relu_name
    from explorer.views.inside_service import describe_subject, view
    from explorer.views.pictures import kernel_grid, part_grid, side_by_side, stage_grid, titled

    manager = RunManager(args.home, data_dir=args.data_dir, adopt_queued=False)
    v = view(manager, args.subject, args.image)
    what = describe_subject(manager, args.subject)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = CLASS_NAMES[v.label]
    images = {"input.png": titled(v.image, f"test image {args.image}: {truth}, as the network gets it (28x28)")}
    images |= {f"stage-{i:02d}-{s.type.lower()}.png":
               titled(stage_grid(s), f"stage {s.path} {s.type} -> {'x'.join(map(str, s.shape))}: "
                                     f"{len(s.maps) if s.channels > 1 else s.shape[0]} of {s.channels} channels"
                                     if s.channels > 1 else f"stage {s.path} {s.type}: {s.shape[0]} units")
               for i, s in enumerate(v.inside.stages)}
    images |= {f"block-{b.path}-{b.type.lower()}.png":
               side_by_side([titled(part_grid(p), f"{b.type} {b.path}, {p.text()} -> {'x'.join(map(str, p.shape))}")
                             for p in b.parts])
               for b in v.inside.blocks}
    if len(v.inside.kernels):
        images["kernels.png"] = titled(kernel_grid(v.inside.kernels), "the first convolution's kernels")
    images["saliency.png"] = titled((v.inside.saliency * 255).round().astype("uint8"),
                                    f"where it looked for '{CLASS_NAMES[int(v.inside.probabilities.argmax())]}' "
                                    "(saliency)", min_width=224)
    for file, pixels in images.items():
        Image.fromarray(pixels).save(out / file)
    top = int(v.inside.probabilities.argmax())
    print(what)
    print(_("test image {image} ({truth}): predicted {predicted} with probability {p:.3f}").format(
        image=args.image, truth=_(truth), predicted=_(CLASS_NAMES[top]), p=v.inside.probabilities[top]))
    for row in v.stats[v.stats.dead].itertuples():
        print(_("warning: layer {layer} is dead (zero for {fraction:.0%} of outputs)").format(
            layer=relu_name(row.layer, row.part), fraction=row.zero_fraction), file=sys.stderr)
    print(_("wrote {n} PNG files to {out}/").format(n=len(images), out=out))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from datetime import datetime
    from pathlib import Path

    from explorer.training.runs import default_home
    from explorer.training.store import RunStore
    from explorer.views.runviews import accuracy, preset_of

    store = RunStore(Path(args.home or default_home()) / "runs.sqlite")
    if store.recovered:
        print(f"warning: {store.recovered}", file=sys.stderr)
    print(f"{'run':12s}  {'started':16s}  {'model':16s} {'preset':6s} {'status':11s} {'settings':32s} "
          f"{'best acc':8s} {'final':5s}  {'time':>6s}  name")
    for r in store.list():
        when = datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M")
        s = r.settings
        settings = f"lr {s['lr']:g}, {s['epochs']} epochs, batch {s['batch_size']}"
        print(f"{r.id:12s}  {when:16s}  {r.model:16s} {preset_of(r):6s} {r.status:11s} {settings:32s} "
              f"{accuracy(r.best_test_acc):8s} {accuracy(r.test_acc):5s}  "
              f"{'-' if r.seconds is None else f'{r.seconds:.0f} s':>6s}  {r.name or '-'}")
    return 0


def cmd_lessons(args: argparse.Namespace) -> int:
    from explorer import lessons

    for lesson in lessons.LESSONS if args.measure or not args.markdown else ():
        if args.measure:
            lessons.save(lesson, lessons.measure(lesson, args.data_dir))
        if args.markdown:
            continue
        kept = lessons.measured(lesson)
        answer = " · ".join(f"{_(r.label)} {r.test_acc:.3f}" for r in kept[1]) if kept else _("not measured yet")
        print(f"{lesson.section} ({lesson.english})  {lesson.name:10s} {_(lesson.title)}: {answer}", flush=True)
    if args.markdown:
        print(lessons.markdown(), end="")
    return 0


def cmd_exercises(args: argparse.Namespace) -> int:
    from explorer import exercises

    chosen = exercises.of_edition(args.edition)
    if args.format == "json":
        print(json.dumps([exercises.as_json(e) for e in chosen], ensure_ascii=False, indent=1))
    elif args.format == "markdown":
        print(exercises.markdown(), end="")
    else:
        for e in chosen:
            print(f"{e.id:10s} {_(e.coverage):12s} {_(e.question)}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from explorer import docs

    changed = docs.stale() if args.check else docs.write()
    for path in changed:
        print(("differs: " if args.check else "written: ") + path)
    return 1 if args.check and changed else 0


def cmd_prune(args: argparse.Namespace) -> int:
    import re

    from explorer.training.runs import RunManager

    age = re.fullmatch(r"(\d+)([dhm])", args.older_than.strip())
    if age is None:
        raise ConfigError("older_than", "an age like 30d, 12h or 90m, not {value!r}", value=args.older_than[:20])
    seconds = int(age.group(1)) * {"d": 86400, "h": 3600, "m": 60}[age.group(2)]
    manager = RunManager(args.home, adopt_queued=False)
    try:
        pruned = manager.prune(seconds, dry_run=args.dry_run)
    finally:
        manager.shutdown()
    for record, size in pruned:
        print(f"{record.id}  {record.label[:40]:40s} {record.status:11s} {size / 2**20:8.1f} MB")
    freed = sum(size for _, size in pruned) / 2**20
    print((_("would delete {n} runs, {mb:.1f} MB") if args.dry_run else _("deleted {n} runs, {mb:.1f} MB")).format(
        n=len(pruned), mb=freed))
    return 0


def cmd_exercise(args: argparse.Namespace) -> int:
    import shlex

    from explorer import exercises

    e = exercises.get(args.exercise)
    print(f"{e.id} ({exercises.EDITIONS[e.edition]} {e.section}, {_('exercise')} {e.number}) · {_(e.kind)}")
    print(f"\n{_(e.question)}\n")
    if e.same:
        print(_("The same exercise in the other edition: {id}").format(id=e.same))
    for setup in e.setups:
        print(f"  {_(setup.label) if setup.label else setup.model}: python -m explorer summary {setup.model}"
              + "".join(f" --set {shlex.quote(f'{k}={v}')}" for k, v in setup.texts().items()))
    if e.note:
        print(_(e.note))
    for what, value in exercises.answer(e):
        print(f"  {what}: {value}")
    return 0


def cmd_lesson(args: argparse.Namespace) -> int:
    import pandas as pd

    from explorer import lessons
    from explorer.training.dynamics import STATISTICS
    from explorer.views.tables import lesson_table

    lesson = lessons.get(args.lesson)
    if args.measure:
        lessons.save(lesson, lessons.measure(lesson, args.data_dir))
    print(_("{section} (English edition {english}) {title}").format(section=lesson.section, english=lesson.english,
                                                                    title=_(lesson.title)))
    print(f"\n{_(lesson.claim)}\n")
    for side in lesson.pair:
        print(_("Train: {label}: {model}, quick preset").format(label=_(side.label), model=side.model)
              + "".join(f", {k}={v}" for k, v in {**side.network, **side.settings}.items()))
    kept = lessons.measured(lesson)
    if kept is None:
        print("\n" + _("Not measured yet: python -m explorer lesson {lesson} --measure").format(lesson=lesson.name))
        return 0
    where, results = kept
    print("\n" + _("Measured on the real data ({where}):").format(where=where))
    with pd.option_context("display.unicode.east_asian_width", True):  # a Chinese character is two cells wide
        print(lesson_table(results).to_string(index=False))
    print(lessons.verdict(results))
    print("\n" + _("What explains it: {statistic} per layer (python -m explorer dynamics RUN_ID, or the Runs "
                   "page).").format(statistic=_(STATISTICS[lesson.watch])))
    return 0


def cmd_dynamics(args: argparse.Namespace) -> int:
    from pathlib import Path

    from explorer.training.runs import default_home
    from explorer.training.store import RunStore
    from explorer.views.tables import csv_text

    store = RunStore(Path(args.home or default_home()) / "runs.sqlite")
    record = store.get(args.run_id)
    if record is None:
        raise ConfigError("run", "{run!r} is not a run in {path}", run=args.run_id[:40], path=str(store.path))
    frame = store.dynamics(record.id)
    if frame.empty:
        print(_("run {run} ({model}, {status}) has no dynamics: it was trained before they were recorded, or has "
                "not reported a step yet").format(run=record.id, model=record.model, status=_(record.status)),
              file=sys.stderr)
        return 0
    if args.format == "json":
        print(frame.to_json(orient="records"))
    elif args.format == "csv":
        print(csv_text(frame), end="")
    else:
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from explorer.training.data import download, find_data_dir

    print(find_data_dir(args.data_dir) if args.action == "where" else download())
    return 0
