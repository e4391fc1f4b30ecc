"""The run commands: train, runs, dynamics, prune, data and serve."""

from __future__ import annotations

import argparse
import sys

from explorer.cli.args import config_from, model_args
from explorer.errors import ConfigError
from explorer.i18n import _, told


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("train", help="train on Fashion-MNIST; the run is stored")
    model_args(s)
    s.add_argument("--preset", choices=("book", "quick", "fast", "speedrun"), default="book",  # recipes.KINDS
                   help="book: d2l's settings; quick: about a minute on a CPU; fast: a modern recipe; speedrun: the "
                        "speedrun network's own, for 93%% in ten CPU minutes")
    s.add_argument("--epochs", type=int)
    s.add_argument("--minutes", type=float, help="train as many of the epochs as fit in this many minutes at the "
                                                 "pace of the first; 0: every epoch")
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
    s.add_argument("--dataset", choices=("fashion-mnist", "mnist"), default="fashion-mnist",
                   help="the book's Fashion-MNIST, or the original MNIST digits (the chapter's exercises)")
    s.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    s.add_argument("--name", dest="run_name", help="what to call the run in lists and legends")
    s.add_argument("--data-dir", help="directory with the data set's four IDX files")
    s.add_argument("--home", help="data directory for the run store (default: $EXPLORER_HOME or ~/.cnn-explorer)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("runs", help="stored runs, one line each")
    s.add_argument("--home")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("dynamics", help="a run's gradients, updates and outputs per layer, one row per (report, "
                                        "layer)")
    s.add_argument("run_id", metavar="RUN_ID")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s.add_argument("--home")
    s.set_defaults(func=cmd_dynamics)

    s = sub.add_parser("prune", help="delete finished runs older than an age, with their weights (an admin's tool)")
    s.add_argument("--older-than", required=True, metavar="AGE", help="30d, 12h or 90m")
    s.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    s.add_argument("--home")
    s.set_defaults(func=cmd_prune)

    s = sub.add_parser("data", help="Fashion-MNIST (or MNIST): where it is, or download it")
    s.add_argument("action", choices=("where", "download"))
    s.add_argument("--dataset", choices=("fashion-mnist", "mnist"), default="fashion-mnist")
    s.add_argument("--data-dir")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("serve", help="start the app (streamlit run app.py) with its run manager up before the "
                                     "first visitor, so that a restarted server's queued runs go on at once")
    s.epilog = "Any other option is streamlit run's, passed on: --server.port 8501, --server.address 0.0.0.0."
    s.set_defaults(func=cmd_serve)


def cmd_train(args: argparse.Namespace) -> int:
    import os
    from dataclasses import replace

    from explorer.training.data import DEFAULT_DATASET, dataset
    from explorer.training.recipes import TrainSettings, preset
    from explorer.training.runs import RunManager
    from explorer.views.runviews import accuracy, run_notes

    chosen = preset(args.name, args.preset, args.device, dataset=args.dataset)
    config = config_from(args, chosen.config)
    changes = {k: v for k, v in (("epochs", args.epochs), ("minutes", args.minutes), ("lr", args.lr),
                                 ("batch_size", args.batch_size),
                                 ("train_subset", args.train_subset), ("init", args.init),
                                 ("optimizer", args.optimizer), ("momentum", args.momentum),
                                 ("weight_decay", args.weight_decay), ("label_smoothing", args.label_smoothing),
                                 ("warmup", args.warmup), ("cosine", args.cosine), ("augment", args.augment))
               if v is not None}
    settings: TrainSettings = replace(chosen.settings, **changes)
    data_dir = args.data_dir
    if data_dir and args.dataset != DEFAULT_DATASET:  # a manager's data_dir is Fashion-MNIST's; MNIST's by name
        os.environ[dataset(args.dataset).env] = data_dir
        data_dir = None
    manager = RunManager(args.home, data_dir=data_dir, adopt_queued=False)  # a server's queue stays its own
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
    for said in run_notes(r, manager.store.metrics(run_id)):
        print(said)
    # the exit status says whether the run trained to its end: 130 when Ctrl-C stopped it, 1 when it was
    # interrupted (its worker or server gone)
    return 0 if r.status == "done" else 130 if interrupted else 1


def _follow(manager, run_id: str):
    """Draw a progress bar on stderr until the run finishes."""
    import time

    from explorer.training.schema import FINISHED

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


def cmd_runs(args: argparse.Namespace) -> int:
    from datetime import datetime

    from explorer.training.runs import store_at
    from explorer.views.runviews import accuracy, preset_of, settings_text

    store = store_at(args.home)
    if store.recovered:
        print(f"warning: {store.recovered}", file=sys.stderr)
    print(f"{'run':12s}  {'started':16s}  {'model':16s} {'preset':6s} {'status':11s} {'settings':32s} "
          f"{'best acc':8s} {'final':5s}  {'time':>6s}  name")
    for r in store.list():
        when = datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M")
        settings = settings_text(r)
        print(f"{r.id:12s}  {when:16s}  {r.model:16s} {preset_of(r):6s} {r.status:11s} {settings:32s} "
              f"{accuracy(r.best_test_acc):8s} {accuracy(r.test_acc):5s}  "
              f"{'-' if r.seconds is None else f'{r.seconds:.0f} s':>6s}  {r.name or '-'}")
    return 0


def cmd_dynamics(args: argparse.Namespace) -> int:
    from explorer.training.runs import store_at
    from explorer.views.tables import csv_text

    store = store_at(args.home)
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


def cmd_data(args: argparse.Namespace) -> int:
    from explorer.training.data import download, find_data_dir

    print(find_data_dir(args.data_dir, args.dataset) if args.action == "where" else download(name=args.dataset))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamlit.web import cli as streamlit_cli

    from explorer import server

    server.trust_proxies()  # read by the web server as it starts
    server.tune()  # before the first visitor; app.py's own call then finds it done
    app = Path(__file__).resolve().parents[2] / "app.py"
    sys.argv = ["streamlit", "run", str(app), *args.streamlit_options]
    return streamlit_cli.main()
