"""The layout's rules, read from the source: what a network is lives in its catalog entry, and the engine's
modules depend one way."""

import ast
import re
from pathlib import Path

from explorer import registry

ROOT = Path(__file__).resolve().parent.parent
READERS = [ROOT / "explorer" / "views", ROOT / "explorer" / "training", ROOT / "explorer" / "summary.py",
           ROOT / "pages"]


def sources(*places: Path) -> list[Path]:
    return sorted(f for p in places for f in ([p] if p.is_file() else p.rglob("*.py")))


def test_views_training_and_pages_name_no_family_block():
    """They read the catalog entry (its presets, its blocks' views), so a new network needs nothing of
    theirs: no family's block class appears in them, in any case (the issue's grep for Residual,
    Inception and DenseBlock, and every block added since)."""
    entries = [registry.get(n) for n in registry.list_models()]
    blocks = {v.type.__name__ for e in entries for v in e.blocks}
    assert {"Residual", "Inception", "DenseBlock"} <= blocks
    pattern = re.compile("|".join(map(re.escape, sorted(blocks))), re.IGNORECASE)
    found = [f"{f.relative_to(ROOT)}:{n}: {m.group(0)}" for f in sources(*READERS)
             for n, line in enumerate(f.read_text().splitlines(), 1) for m in pattern.finditer(line)]
    assert not found, found


def imports_of(path: Path) -> set[str]:
    """The explorer modules a module imports, anywhere in it (a function's import is a dependency too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("explorer"):
            found |= {f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("explorer")}
    return found


def _is_module(name: str) -> bool:
    parts = name.split(".")
    return (ROOT.joinpath(*parts).with_suffix(".py")).exists() or (ROOT.joinpath(*parts) / "__init__.py").exists()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_engine_depends_one_way():
    """No import cycle inside explorer/, apart from the catalog's own: each family module registers itself
    with the registry, which imports the families on first use."""
    graph = {module_name(f): imports_of(f) for f in sources(ROOT / "explorer")}
    catalog = {"explorer.registry", "explorer.models"} | {m for m in graph if m.startswith("explorer.models.")}
    edges = {m: {d for d in deps if d in graph and d != m and not (m in catalog and d in catalog)}
             for m, deps in graph.items()}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        for dep in edges[module]:
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(module)

    done: set[str] = set()
    for module in graph:
        if module not in done:
            visit(module, [module])
    assert not cycles, cycles
    assert "explorer.training.estimate" in edges["explorer.training.train"]  # the graph was read
