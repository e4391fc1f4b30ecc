"""Readable numbers for the layer table and totals, shared by the CLI and the pages."""

from __future__ import annotations

import csv
from typing import Any

import pandas as pd

from explorer.i18n import _
from explorer.summary import Totals

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula (OWASP's CSV injection)


def csv_text(frame: pd.DataFrame) -> str:
    """A table as CSV that is safe to open in a spreadsheet: a text cell (or header) that begins like a
    formula gets a leading apostrophe, so a run named '=HYPERLINK(...)' is shown, never evaluated. Numbers
    stay numbers (a negative one is not text)."""
    def safe(value: Any) -> Any:
        return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value

    out = frame.rename(columns=safe)
    for column in out.select_dtypes(include=["object", "string"]).columns:
        out[column] = out[column].map(safe)
    return out.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC)  # text quoted: a CR inside stays inside


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M'; bytes get binary prefixes ('12.0 MiB')."""
    if pd.isna(n):
        return ""
    if unit == "B":
        for prefix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(n) < 1024 or prefix == "TiB":
                return f"{n:.0f} B" if prefix == "B" else f"{n:.1f} {prefix}"
            n /= 1024
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.0f}{unit}"


def format_layers(layers: pd.DataFrame, totals: Totals, max_depth: int | None = None) -> pd.DataFrame:
    """The layer table indented by depth, with readable counts; folded below `max_depth`; the network's
    totals (every layer's, whatever is folded) in a last row."""
    df = layers if max_depth is None else layers[layers.depth <= max_depth]
    table = pd.DataFrame({
        "layer": [("  " * (d - 1)) + f"{p} {t}" for p, d, t in zip(df.path, df.depth, df.type, strict=True)],
        "output shape": ["x".join(map(str, s)) for s in df.output_shape],
        "params": [f"{n:,}" for n in df.params],
        "mult-adds": [human(n) for n in df.mult_adds],
        "activations": [human(n, "B") for n in df.activation_bytes],
        "kernel": df.kernel_size,
        "receptive field": [("" if pd.isna(v) else str(v)) for v in df.receptive_field],
        "stride": [("" if pd.isna(v) else str(v)) for v in df.cumulative_stride],
    })
    total = {"layer": _("total"), "output shape": "x".join(map(str, totals.output_shape)),
             "params": f"{totals.params:,}", "mult-adds": human(totals.mult_adds),
             "activations": human(totals.activation_bytes, "B"), "kernel": "", "receptive field": "", "stride": ""}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table.rename(columns={c: _(c) for c in LAYER_COLUMNS})


LAYER_COLUMNS = ("layer", "output shape", "params", "mult-adds", "activations", "kernel", "receptive field",
                 "stride")  # the layer table's headers, shown in the page's language


def totals_dict(t: Totals, readable: bool = False) -> dict[str, Any]:
    """Totals as a flat mapping (JSON output, headline metrics)."""
    raw = {
        "params": t.params,
        "trainable_params": t.trainable_params,
        "mult_adds": t.mult_adds,
        "input_shape": list(t.input_shape),
        "output_shape": list(t.output_shape),
        "batch_size": t.batch_size,
        "weight_bytes": t.weight_bytes,
        "gradient_bytes": t.gradient_bytes,
        "optimizer_bytes": t.optimizer_bytes,
        "saved_bytes": t.saved_bytes,
        "in_flight_bytes": t.in_flight_bytes,
        "training_bytes": t.training_bytes,
    }
    if not readable:
        return raw
    return {k: (human(v, "B") if k.endswith("bytes") else f"{v:,}" if isinstance(v, int)
                else "x".join(map(str, v)) if isinstance(v, list) else v) for k, v in raw.items()}


def markdown_table(frame: pd.DataFrame) -> str:
    """A table as GitHub Markdown, for the docs generated from kept measurements."""
    rows = [list(frame.columns), ["---"] * len(frame.columns), *frame.astype(str).values.tolist()]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def lesson_table(results: list) -> pd.DataFrame:
    """A lesson's measured pair (explorer.lessons.Result), one row per network, for the page, the CLI and the
    README."""
    return pd.DataFrame({
        _("network"): [_(r.label) for r in results],
        _("params"): [human(r.params) for r in results],
        _("mult-adds"): [human(r.mult_adds) for r in results],
        _("test acc"): [f"{r.test_acc:.3f}" for r in results],
        _("time"): [f"{r.seconds:.0f} {_('s')}" for r in results],
        _("grad, first layer"): [f"{r.first_grad:.2g}" for r in results],
        _("grad, last layer"): [f"{r.last_grad:.2g}" for r in results],
    })
