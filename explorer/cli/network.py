"""The network commands: list, summary, code and inspect."""

from __future__ import annotations

import argparse
import json
import sys

from explorer.cli.args import config_from, model_args
from explorer.i18n import _


def add_commands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("list", help="catalog names with descriptions")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("summary", help="per-layer shapes, parameters, mult-adds and memory")
    model_args(s)
    s.add_argument("--batch-size", type=int, default=1, help="batch size for the training-memory estimate")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s.set_defaults(func=cmd_summary)

    s = sub.add_parser("code", help="a standalone PyTorch file that builds the network")
    model_args(s)
    s.set_defaults(func=cmd_code)

    s = sub.add_parser("inspect", help="what a network makes of a test image: PNG files and the prediction")
    s.add_argument("subject", metavar="RUN_ID|MODEL", help="a stored run (trained weights) or a catalog name "
                                                           "(fresh Xavier-initialised weights)")
    s.add_argument("--image", type=int, default=0, help="index of the test image (default: 0)")
    s.add_argument("--out", default="inside", help="directory for the PNG files (default: ./inside)")
    s.add_argument("--data-dir")
    s.add_argument("--home")
    s.set_defaults(func=cmd_inspect)


def cmd_list(args: argparse.Namespace) -> int:
    from explorer import registry

    for name in registry.list_models():
        e = registry.get(name)
        print(f"{name:18s} {'d2l ' + e.section if e.section else '':10s} {_(e.description)}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from explorer.summary import summarize
    from explorer.views.tables import csv_text, format_layers, totals_dict

    summary = summarize(config_from(args), batch_size=args.batch_size)
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

    config = config_from(args)
    check(config)
    print(export_code(config), end="")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from PIL import Image

    from explorer.training.data import class_names
    from explorer.training.runs import RunManager
    from explorer.views.inside import relu_name
    from explorer.views.inside_service import dataset_of, describe_subject, view
    from explorer.views.pictures import kernel_grid, part_grid, side_by_side, stage_grid, titled

    manager = RunManager(args.home, data_dir=args.data_dir, adopt_queued=False)
    v = view(manager, args.subject, args.image)
    what = describe_subject(manager, args.subject)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = class_names(dataset_of(manager, args.subject))
    truth = names[v.label]
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
                                    f"where it looked for '{names[int(v.inside.probabilities.argmax())]}' "
                                    "(saliency)", min_width=224)
    for file, pixels in images.items():
        Image.fromarray(pixels).save(out / file)
    top = int(v.inside.probabilities.argmax())
    print(what)
    print(_("test image {image} ({truth}): predicted {predicted} with probability {p:.3f}").format(
        image=args.image, truth=_(truth), predicted=_(names[top]), p=v.inside.probabilities[top]))
    for row in v.stats[v.stats.dead].itertuples():
        print(_("warning: layer {layer} is dead (zero for {fraction:.0%} of outputs)").format(
            layer=relu_name(row.layer, row.part), fraction=row.zero_fraction), file=sys.stderr)
    print(_("wrote {n} PNG files to {out}/").format(n=len(images), out=out))
    return 0
