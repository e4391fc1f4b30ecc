"""The layout's rules, read from the source: what a network is lives in its catalog entry, and the engine's
modules depend one way."""

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
