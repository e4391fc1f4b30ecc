"""Data the pages show, computed here so the pages stay layout only (no torch in pages/)."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping

import pandas as pd

from explorer import registry
from explorer.config import ModelConfig, knob_text, printable, with_overrides
from explorer.errors import ConfigError
from explorer.i18n import _
from explorer.summary import Summary, check, summarize
from explorer.views.tables import human

DEFAULT_MODEL = "vgg11-small"
VIEWS = ["Layers", "Charts", "Diagram", "Code"]
_warmed = threading.Event()


def warm_up() -> None:
    """Summarize every catalog default once, in the background: the first visitor's clicks are then instant."""
    if _warmed.is_set():
        return
    _warmed.set()

    def run() -> None:
        from explorer.views.charts import per_layer_chart  # plotly's first figure is slow too

        for name in registry.list_models():
            summary = summarize(registry.get(name).config)
        per_layer_chart({name: summary.layers}, "params", name)

    # not a daemon: torch must not be mid-call when the interpreter exits
    threading.Thread(target=run, name="explorer-warm-up").start()


def catalog_table() -> pd.DataFrame:
    """One row per catalog entry: name, book section, description and size at book settings."""
    rows = []
    for name in registry.list_models():
        e = registry.get(name)
        t = summarize(e.config, batch_size=e.book.batch_size).totals
        rows.append({_("name"): name, "d2l": e.section, _("description"): _(e.description),
                     _("resolution"): e.config.resolution, _("parameters"): human(t.params),
                     _("mult-adds"): human(t.mult_adds), _("book lr"): e.book.lr, _("book batch"): e.book.batch_size})
    return pd.DataFrame(rows)


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


_AUTOLINK = re.compile(r"(://|www\.|@)", re.IGNORECASE)
_ZWSP = "\u200b"  # invisible: the text reads the same, but no autolink matches it


def plain(text: str, limit: int = 300) -> str:
    """Visitor text made safe for Streamlit's Markdown elements: every Markdown character escaped (so
    `[x](http://...)` stays text, never a link or an image), bare URLs and addresses broken by an invisible
    space (Markdown would autolink them), control characters dropped, and a long value shortened."""
    text = printable(text)
    text = text if len(text) <= limit else text[:limit] + " …"
    text = _AUTOLINK.sub(lambda m: m.group(0)[0] + _ZWSP + m.group(0)[1:], text)
    return _MARKDOWN.sub(r"\\\1", text)


def int_param(params: Mapping[str, str], key: str, lo: int, hi: int) -> int | None:
    """A whole number from the URL within [lo, hi], or None: a page parameter, never trusted as is."""
    text = params.get(key, "")
    return int(text) if text.isdigit() and len(text) < 10 and lo <= int(text) <= hi else None


def unit_param(params: Mapping[str, str], key: str, height: int, width: int) -> tuple[int, int] | None:
    """A unit "row,col" of a height x width feature map from the URL, or None."""
    parts = params.get(key, "").split(",")
    if len(parts) != 2:
        return None
    row, col = int_param({"v": parts[0]}, "v", 0, height - 1), int_param({"v": parts[1]}, "v", 0, width - 1)
    return None if row is None or col is None else (row, col)


def config_params(name: str, config: ModelConfig, prefix: str = "") -> dict[str, str]:
    """URL query parameters for a config: its catalog name and the knobs that differ from it."""
    params = {f"{prefix}model": name}
    for key, value in config.changes(registry.get(name).config).items():
        params[prefix + key] = f"[{knob_text(value)}]" if isinstance(value, tuple) else knob_text(value)
    return params


def config_from_params(params: Mapping[str, str], prefix: str = "",
                       ignore: tuple[str, ...] = ()) -> tuple[str, ModelConfig, list[str]]:
    """A config read back from URL parameters; each bad value is reported and left at its default."""
    problems = []
    name = params.get(f"{prefix}model", DEFAULT_MODEL)
    try:
        entry = registry.get(name)
    except ConfigError as err:
        problems.append(_("{error}; showing {model}").format(error=err.text(), model=DEFAULT_MODEL))
        entry = registry.get(DEFAULT_MODEL)
    config = entry.config
    for key, text in params.items():
        if not key.startswith(prefix) or key == f"{prefix}model" or key in ignore:
            continue
        try:
            config = with_overrides(config, {key[len(prefix):]: text})
        except ConfigError as err:
            problems.append(_("URL value {key}={value} ignored: {error}").format(key=key, value=repr(text[:60]),
                                                                                  error=err.text()))
    try:
        check(config)
    except ConfigError as err:
        problems.append(_("URL config does not run ({error}); showing the {model} defaults").format(
            error=err.text(), model=entry.name))
        config = entry.config
    return entry.name, config, problems


def headline(summary: Summary, default: Summary) -> list[tuple[str, str, str | None, str]]:
    """(label, value, change against the book's default, the exact figure) for the headline metrics."""
    t, d = summary.totals, default.totals

    def delta(a: int, b: int, unit: str = "") -> str | None:
        return None if a == b else ("+" if a > b else "-") + human(abs(a - b), unit)

    return [
        (_("parameters"), human(t.params), delta(t.params, d.params), _("{n:,} parameters").format(n=t.params)),
        (_("mult-adds / image"), human(t.mult_adds), delta(t.mult_adds, d.mult_adds),
         _("{n:,} multiply-adds per image").format(n=t.mult_adds)),
        (_("train memory, batch {batch}").format(batch=t.batch_size), human(t.training_bytes, "B"),
         delta(t.training_bytes, d.training_bytes, "B"),
         _("{n:,} bytes for one training step at batch size {batch}").format(n=t.training_bytes,
                                                                              batch=t.batch_size)),
        (_("output shape"), "x".join(map(str, t.output_shape)), None, "x".join(map(str, t.output_shape))),
    ]


def config_label(name: str, config: ModelConfig) -> str:
    """A catalog name and what differs from it, e.g. 'resnet18 (blocks=3,4,6,3)'."""
    changed = config.changes(registry.get(name).config)
    return name + (f" ({', '.join(f'{k}={knob_text(v)}' for k, v in changed.items())})" if changed else "")


def compare_labels(a: tuple[str, ModelConfig], b: tuple[str, ModelConfig], width: int = 60) -> tuple[str, str]:
    """Column titles that say what each side changed from its catalog entry, shortened for a table."""
    return tuple(_shorten(f"{side} {config_label(*nc)}", width) for side, nc in (("A", a), ("B", b)))


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def stage_table(a: Summary, b: Summary, names: tuple[str, str]) -> pd.DataFrame:
    """Top-level stages side by side: output shape, parameters and mult-adds, and their difference."""
    rows = []
    sa, sb = (s.layers[s.layers.depth == 1].reset_index(drop=True) for s in (a, b))
    for i in range(max(len(sa), len(sb))):
        ra = sa.iloc[i] if i < len(sa) else None
        rb = sb.iloc[i] if i < len(sb) else None
        pa, pb = (0 if r is None else int(r.params) for r in (ra, rb))
        ma, mb = (0 if r is None else int(r.mult_adds) for r in (ra, rb))
        rows.append({
            "stage": i,
            "A layer": "" if ra is None else f"{ra.path} {ra.type}",
            "A shape": "" if ra is None else "x".join(map(str, ra.output_shape)),
            "B layer": "" if rb is None else f"{rb.path} {rb.type}",
            "B shape": "" if rb is None else "x".join(map(str, rb.output_shape)),
            "A params": f"{pa:,}", "B params": f"{pb:,}", "params change": f"{pb - pa:+,}",
            "A mult-adds": human(ma), "B mult-adds": human(mb), "mult-adds change": _signed(mb - ma),
        })
    return pd.DataFrame(rows, columns=list(STAGE_COLUMNS)).rename(columns={c: _(c) for c in STAGE_COLUMNS})


STAGE_COLUMNS = ("stage", "A layer", "A shape", "B layer", "B shape", "A params", "B params", "params change",
                 "A mult-adds", "B mult-adds", "mult-adds change")  # Compare's stage table, in the page's language


def _signed(n: int) -> str:
    return "0" if n == 0 else ("+" if n > 0 else "-") + human(abs(n))


def totals_table(a: Summary, b: Summary, names: tuple[str, str]) -> pd.DataFrame:
    """Both configs' totals and the ratio b / a; memory is at the summaries' batch size."""
    keys = [(_("parameters"), "params", ""), (_("trainable parameters"), "trainable_params", ""),
            (_("mult-adds per image"), "mult_adds", ""),
            (_("training memory (batch {batch})").format(batch=a.totals.batch_size), "training_bytes", "B"),
            (_("activations per image"), "activation_bytes", "B")]
    rows = []
    for label, key, unit in keys:
        va, vb = getattr(a.totals, key), getattr(b.totals, key)
        shown = (human(va, unit), human(vb, unit)) if unit else (f"{va:,}", f"{vb:,}")
        rows.append({"": label, names[0]: shown[0], names[1]: shown[1], _("ratio"): f"{vb / va:.2f}x" if va else ""})
    return pd.DataFrame(rows)
