"""`python -m explorer ...`: the catalog, summaries, code export, training and benchmarks, headless.

Each module here adds its commands' parsers and handlers: network (list, summary, code, inspect), runs
(train, runs, dynamics, prune, data, serve), book (lessons, exercises, docs) and bench."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from explorer import i18n
from explorer.cli import bench, book, network, runs
from explorer.errors import ExplorerError
from explorer.i18n import _


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if args.func is runs.cmd_serve:
        args.streamlit_options = unknown  # streamlit's own options, passed on
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    i18n.for_cli()  # English, unless LANG asks for Chinese
    try:
        return args.func(args)
    except ExplorerError as err:  # in the CLI's language (English, unless LANG asks for Chinese)
        print(_("error: {message}").format(message=err.said()), file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python -m explorer summary ... | head`
        return 0
    except KeyboardInterrupt:  # Ctrl-C before a run exists (a run in progress is stopped in cmd_train)
        print(_("interrupted"), file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m explorer", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(required=True, metavar="COMMAND")
    for group in (network, bench, runs, book):  # the order `--help` lists them in
        group.add_commands(sub)
    return p
