"""Export a config as one standalone PyTorch file: the family's book-style code and a single call."""

from __future__ import annotations

import inspect
import re
import sys

from explorer import registry
from explorer.config import ModelConfig


def export_code(config: ModelConfig) -> str:
    """Readable source that rebuilds exactly this network with torch alone (same parameter count)."""
    builder = registry.entry_for(config).build
    module = sys.modules[builder.__module__]
    pieces = _needed(builder)
    args = ",\n    ".join(f"{k}={v!r}" for k, v in config.kwargs().items())
    body = "\n\n\n".join(inspect.getsource(obj).rstrip() for obj in pieces)
    return (
        f'"""{builder.__name__} as configured in CNN Explorer: {_doc_line(module)}"""\n\n'
        "import torch\n"
        "from torch import nn\n"
        "from torch.nn import functional as F\n\n\n"
        f"{body}\n\n\n"
        f"net = {builder.__name__}(\n    {args},\n)\n\n"
        'if __name__ == "__main__":\n'
        f"    X = torch.rand(1, {config.in_channels}, {config.resolution}, {config.resolution})\n"
        "    print(net(X).shape)\n"
        '    print("parameters:", sum(p.numel() for p in net.parameters()))\n'
    )


def _needed(builder) -> list:
    """The functions and classes the builder uses, in the order their modules define them."""
    seen: list = []

    def visit(obj) -> None:
        if obj in seen:
            return
        src = inspect.getsource(obj)
        home = sys.modules[obj.__module__]
        for name, value in vars(home).items():
            if (inspect.isfunction(value) or inspect.isclass(value)) and value is not obj \
                    and value.__module__.startswith("explorer.models") and _uses(src, name):
                visit(value)
        seen.append(obj)

    visit(builder)
    return seen


def _uses(src: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\(", src) is not None


def _doc_line(module) -> str:
    return (module.__doc__ or "").strip().splitlines()[0]
