"""Data the pages draw, computed here so pages stay layout only (no torch in pages/)."""

from __future__ import annotations

import pandas as pd

from explorer import registry
from explorer.summary import summarize
from explorer.tables import human


def catalog_table() -> pd.DataFrame:
    """One row per catalog entry: name, family, book section, description and size at book settings."""
    rows = []
    for name in registry.list_models():
        e = registry.get(name)
        t = summarize(e.config, batch_size=e.book.batch_size).totals
        rows.append({"name": name, "family": e.family, "d2l": e.section, "description": e.description,
                     "resolution": e.config.resolution, "parameters": human(t.params),
                     "mult-adds": human(t.mult_adds), "book lr": e.book.lr, "book batch": e.book.batch_size})
    return pd.DataFrame(rows)
