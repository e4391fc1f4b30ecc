"""`python -m explorer ...`: the catalog, summaries, code export, training and benchmarks, headless."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from explorer.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python -m explorer summary ... | head`
        return 0


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
    s.set_defaults(func=cmd_bench_summary)
    return p


def _model_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("name", help="catalog name (see `list`)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a knob, e.g. --set ratio=4 --set 'conv_arch=((1,16),(1,32))'")
    s.add_argument("--resolution", type=int, help="input resolution (same as --set resolution=N)")


def _config(args: argparse.Namespace):
    from explorer import registry
    from explorer.config import with_overrides

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"expected KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value
    if args.resolution is not None:
        overrides["resolution"] = str(args.resolution)
    return with_overrides(registry.get(args.name).config, overrides)


def cmd_list(args: argparse.Namespace) -> int:
    from explorer import registry

    for name in registry.list_models():
        e = registry.get(name)
        print(f"{name:18s} d2l {e.section:6s} {e.description}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from explorer.summary import summarize
    from explorer.tables import format_layers, totals_dict

    summary = summarize(_config(args), batch_size=args.batch_size)
    if args.format == "json":
        layers = summary.layers.astype(object).where(summary.layers.notna(), None)
        print(json.dumps({"layers": layers.to_dict(orient="records"), "totals": totals_dict(summary.totals)},
                         default=list))
    elif args.format == "csv":
        print(summary.layers.to_csv(index=False), end="")
    else:
        print(format_layers(summary.layers).to_string(index=False))
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
    from explorer.bench import bench_summary

    print(f"{'model':18s} {'first ms':>9s} {'warm ms':>8s} {'cached ms':>9s}")
    for row in bench_summary(repeat=args.repeat):
        print(f"{row.name:18s} {row.first_ms:9.1f} {row.warm_ms:8.1f} {row.cached_ms:9.3f}")
    return 0
