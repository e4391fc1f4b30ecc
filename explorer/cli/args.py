"""What several commands share: naming a catalog network and changing its knobs."""

from __future__ import annotations

import argparse

from explorer.config import ModelConfig
from explorer.errors import ConfigError


def model_args(s: argparse.ArgumentParser) -> None:
    """A catalog name, --set KEY=VALUE and --resolution: how every command names a network."""
    s.add_argument("name", help="catalog name (see `list`)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a knob, e.g. --set ratio=4 --set 'conv_arch=((1,16),(1,32))'")
    s.add_argument("--resolution", type=int, help="input resolution (same as --set resolution=N)")


def config_from(args: argparse.Namespace, base: ModelConfig | None = None) -> ModelConfig:
    """The config `args` name: the catalog's (or `base`) with every --set and --resolution applied."""
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
