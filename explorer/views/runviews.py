"""What the Train and Runs pages show of runs: tables, d2l-style curves, confusions and learned BatchNorm."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import ConfigError
from explorer.i18n import N_, _, plural
from explorer.training.data import DEFAULT_DATASET, ImageData, class_names, load_data
from explorer.training.estimate import human_duration
from explorer.training.recipes import TrainSettings, preset
from explorer.training.schema import RunRecord
from explorer.views.charts import chart_text, style
from explorer.views.tables import csv_text

MAX_POINTS = 400  # thin long series before drawing: each redraw ships the whole figure


def _thin(df: pd.DataFrame) -> pd.DataFrame:
    if len(df) <= MAX_POINTS:
        return df
    keep = np.unique(np.linspace(0, len(df) - 1, MAX_POINTS).round().astype(int))
    return df.iloc[keep]


def training_chart(metrics: pd.DataFrame, title: str = "Training", height: int = 400) -> go.Figure:
    """d2l's animator: train loss and train accuracy through each epoch, test accuracy at its end."""
    steps = _thin(metrics[metrics.kind == "step"])
    epochs = metrics[metrics.kind == "epoch"]
    fig = go.Figure()
    fig.add_scatter(x=steps.epoch, y=steps.train_loss, name=_("train loss"), mode="lines")
    fig.add_scatter(x=steps.epoch, y=steps.train_acc, name=_("train acc"), mode="lines", line_dash="dash")
    fig.add_scatter(x=epochs.epoch, y=epochs.test_acc, name=_("test acc"), mode="lines+markers", line_dash="dot")
    return style(fig, title, _("epoch"), "", height=height)


def overlay_chart(named: dict[str, pd.DataFrame], column: str, title: str, smoothing: float = 0.0,
                  log: bool = False) -> go.Figure:
    """One curve per run: train loss or accuracy per step (smoothed as TensorBoard smooths, `smoothing` 0 to
    0.99), or test accuracy per epoch."""
    fig = go.Figure()
    for name, metrics in named.items():
        rows = _series(metrics, column, smoothing)
        fig.add_scatter(x=rows.epoch, y=rows[column], name=chart_text(name),
                        mode="lines+markers" if column == "test_acc" else "lines")
    return style(fig, title, _("epoch"), _(column.replace("_", " ")), log=log, height=400)


def band_chart(groups: dict[str, list[pd.DataFrame]], column: str, title: str, smoothing: float = 0.0,
               log: bool = False) -> go.Figure:
    """Runs of one config over several seeds as one band: the mean across seeds, and their lowest to highest
    value, at each step (train curves, smoothed first) or epoch (test accuracy)."""
    fig = go.Figure()
    for (label, runs), colour in zip(groups.items(), _COLOURS * 4, strict=False):
        joined = pd.concat([_series(m, column, smoothing).set_index("epoch")[column] for m in runs], axis=1)
        joined = joined.sort_index().interpolate(limit_area="inside")
        low, high, mean = joined.min(axis=1), joined.max(axis=1), joined.mean(axis=1)
        x = list(joined.index)
        fig.add_scatter(x=x + x[::-1], y=list(high) + list(low[::-1]), fill="toself", fillcolor=colour,
                        opacity=0.25, line={"width": 0}, hoverinfo="skip", showlegend=False)
        fig.add_scatter(x=x, y=mean, name=chart_text(_("{label}: mean of {n} seeds").format(label=label, n=len(runs))),
                        mode="lines", line={"color": colour})
    return style(fig, title, _("epoch"), _(column.replace("_", " ")), log=log, height=400)


_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _series(metrics: pd.DataFrame, column: str, smoothing: float) -> pd.DataFrame:
    """A run's points of `column`: per epoch for test accuracy, else per step, thinned and smoothed."""
    if column == "test_acc":
        return metrics[metrics.kind == "epoch"][["epoch", column]]
    rows = metrics[metrics.kind == "step"][["epoch", column]]
    return _thin(rows.assign(**{column: smooth(rows[column], smoothing)}))


def smooth(values: pd.Series, weight: float) -> pd.Series:
    """TensorBoard's smoothing: an exponential moving average, debiased so that the curve starts at the first
    value rather than at zero. weight 0 leaves the values as they are."""
    if weight <= 0 or values.empty:
        return values
    return values.ewm(alpha=1 - weight, adjust=True).mean()  # adjust: the weights over what came so far sum to 1


def runs_csv(records: list[RunRecord], metrics: list[pd.DataFrame]) -> str:
    """Several runs' metrics as one CSV, each row marked with its run's id and name."""
    return csv_text(pd.concat([m.assign(run=r.id, name=r.label) for r, m in zip(records, metrics, strict=True)]))


def seed_groups(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """Runs of one network and settings that differ only in their seed, by a label naming the config."""
    groups: dict[tuple, list[RunRecord]] = {}
    for r in records:
        same = {k: v for k, v in r.settings.items() if k != "seed"}
        groups.setdefault((r.model, json.dumps(r.config, sort_keys=True), json.dumps(same, sort_keys=True)),
                          []).append(r)
    labelled: dict[str, list[RunRecord]] = {}
    for runs in groups.values():
        first = runs[0]
        label = f"{first.model} {describe_config(first.model, first.config)}".strip() + " · " + settings_text(first)
        while label in labelled:  # the same in words, different in a setting the words leave out
            label += "′"
        labelled[label] = runs
    return labelled


def settings_text(record: RunRecord) -> str:
    """A run's rate, epochs and batch in words, and its time budget where it has one."""
    s = record.settings
    text = _("lr {lr:g}, {epochs} epochs, batch {batch}").format(lr=s["lr"], epochs=s["epochs"], batch=s["batch_size"])
    return text + (_(", as many as fit in {minutes:g} min").format(minutes=s["minutes"]) if s.get("minutes") else "")


def describe_config(model: str, config: dict) -> str:
    """The knobs that differ from the catalog entry, e.g. 'ratio=8, resolution=32' (or 'book defaults')."""
    try:
        changed = registry.config_from(model, config).changes(registry.get(model).config)
    except (ConfigError, TypeError):
        return _("stored by an older catalog")
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or _("catalog defaults")


def budget_text(record: RunRecord, metrics: pd.DataFrame) -> str | None:
    """What a run with a time budget trained of its epochs (its metrics' epoch rows), or None without one."""
    minutes = record.settings.get("minutes")
    if not minutes:
        return None
    trained = int((metrics.kind == "epoch").sum()) if len(metrics) else 0
    return _("Time budget {minutes:g} min: {trained} of at most {epochs} epochs trained, as many as fit at the pace "
             "of its first.").format(minutes=minutes, trained=trained, epochs=record.settings["epochs"])


def run_notes(record: RunRecord, metrics: pd.DataFrame) -> list[str]:
    """What a finished run's page and `train`'s result say under it: its time budget, how its settings were
    chosen (each where it has one)."""
    return [said for said in (budget_text(record, metrics), calibration_text(record)) if said]


def calibration_text(record: RunRecord) -> str | None:
    """How the run's settings were chosen, in words: the measured step rates and the format they picked."""
    c = record.calibration
    if not c:
        return None
    chosen, other = ("channels_last", "contiguous") if c["memory_format"] == "channels_last" \
        else ("contiguous", "channels_last")
    readings = c.get("readings", 1)  # runs recorded before there were several took one
    if c["cached"]:
        source = _("the median of {n} measurements on this machine, reused").format(n=readings) if readings > 1 \
            else _("measured earlier on this machine, reused")
    else:
        source = plural(readings - 1, N_("measured before its first step; the median of it and {n} earlier "
                                         "measurement on this machine"),
                        N_("measured before its first step; the median of it and {n} earlier measurements on "
                           "this machine")) if readings > 1 else _("measured before its first step")
    said = _("Memory format {chosen}: {rate:,.0f} training images/s against {other_rate:,.0f} for {other} "
             "({ratio:.2f}x; {source}).").format(chosen=chosen, rate=c[chosen], other_rate=c[other], other=other,
                                                 ratio=c[chosen] / c[other], source=source)
    if c.get("bf16"):  # timed: this CPU or GPU computes bfloat16 natively
        taken = c.get("precision") == "bfloat16"
        said += " " + (_("bfloat16 autocast, which this machine computes natively: {rate:,.0f} images/s, {ratio:.2f}x "
                         "float32's, so taken.") if taken else
                       _("bfloat16 autocast, which this machine computes natively: {rate:,.0f} images/s, {ratio:.2f}x "
                         "float32's, too little to give up float32's precision for.")).format(
            rate=c["bf16"], ratio=c["bf16"] / c[chosen])
    if c.get("compiled_rate"):  # measured by `bench train` on this machine
        said += " " + (_("torch.compile, measured by bench train: {rate:,.0f} images/s after a {seconds:.0f} s "
                         "compile, which this run's length pays for, so taken.") if c.get("compiled") else
                       _("torch.compile, measured by bench train: {rate:,.0f} images/s after a {seconds:.0f} s "
                         "compile, more than it saves over this run's steps, so not taken.")).format(
            rate=c["compiled_rate"], seconds=c["compile_seconds"])
    return said


def first_with_results(records: list[RunRecord]) -> int:
    """Index of the first run (in the page's order) that finished with results, else of the first with any
    metrics, else 0: the run the Runs page opens on."""
    for wanted in (lambda r: r.confusion, lambda r: r.train_loss is not None):
        for i, r in enumerate(records):
            if wanted(r):
                return i
    return 0


def history_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run; "-" where a run has no value yet (a queued or stopped one)."""
    return pd.DataFrame([{
        "run": r.id,
        "name": r.name or "-",
        "model": r.model,
        "preset": preset_of(r),
        "config": describe_config(r.model, r.config),
        "settings": settings_text(r) + (_(", {n} images").format(n=r.settings["train_subset"])
                                        if r.settings.get("train_subset") else ""),
        "status": _(r.status),
        "best test acc": accuracy(r.best_test_acc),
        "final test acc": accuracy(r.test_acc),
        "time": "-" if r.seconds is None else human_duration(r.seconds, about=False),
        "started": datetime.fromtimestamp(r.created).strftime("%m-%d %H:%M:%S"),
    } for r in records], columns=list(HISTORY_COLUMNS)).rename(columns={c: _(c) for c in HISTORY_COLUMNS})


HISTORY_COLUMNS = ("run", "name", "model", "preset", "config", "settings", "status", "best test acc", "final test acc",
                   "time", "started")  # the history table's headers, shown in the page's language


def accuracy(value: float | None) -> str:
    """A test accuracy as the pages and the CLI print it: three decimals, or "-" for none."""
    return "-" if value is None else f"{value:.3f}"


def preset_of(record: RunRecord) -> str:
    """The preset a run was started from: as recorded, or for a run stored before presets were recorded,
    the one its network and settings match (see reopen_settings)."""
    if record.preset:
        return record.preset
    try:
        return reopen_settings(record)[2]
    except (ConfigError, TypeError):  # stored by an older catalog
        return "-"


def run_title(record: RunRecord) -> str:
    """A run's heading on the Train and Runs pages: its name (or model and id), preset and status."""
    return _("{label} · {preset} preset · {status}").format(label=record.label, preset=preset_of(record),
                                                            status=_(record.status))


def run_progress(record: RunRecord, progress, position: int | None, wait_seconds: float) -> tuple[float, str]:
    """Where a run is, as a progress bar's (fraction, text): queued with its place and wait, its phase before
    the first step, its epoch, batch, rate and ETA, or how it ended. `progress`: its newest
    explorer.training.train.Progress (None if none)."""
    import math

    if position:
        return 0.0, _("Queued: position {position}. It should start in {wait}, when a worker is free.").format(
            position=position, wait=human_duration(wait_seconds))
    if record.status == "running" and (progress is None or progress.kind == "phase"):
        doing = _(progress.phase) if progress is not None else _("starting")
        return 0.0, f"{doing}… ({(progress.elapsed if progress else 0):.0f} s)"
    if record.status == "running":
        line = (_("epoch {epoch}/{epochs} · batch {step}/{steps} · {rate:.0f} images/s") if math.isnan(progress.eta)
                else _("epoch {epoch}/{epochs} · batch {step}/{steps} · {rate:.0f} images/s · {time} left"))
        epochs = progress.epochs or record.settings["epochs"]  # a run with a time budget: those that fit
        return min(progress.step / progress.total_steps, 1.0), line.format(
            epoch=min(int(progress.epoch) + 1, epochs), epochs=epochs,
            step=progress.step, steps=progress.total_steps, rate=progress.images_per_sec,
            time=human_duration(progress.eta) if not math.isnan(progress.eta) else "")
    ended = (_(record.status) if record.test_acc is None else
             _("{status} · test acc {acc}").format(status=_(record.status), acc=accuracy(record.test_acc)))
    return (1.0 if record.status == "done" else 0.0), ended


def reopen_settings(record: RunRecord) -> tuple[str, ModelConfig, str, dict[str, float | int | str]]:
    """What the Train page shows for a stored run: its network, the preset it was started from (or, for a
    run stored before presets were recorded, the one it matches) and its settings.

    A run whose config is what the quick preset makes of it matches "fast" when it trained with the modern
    recipe (momentum), else "quick"; any other matches "book", which leaves the config as it is. The
    settings are the run's own either way.
    """
    config = registry.config_from(record.model, record.config)
    s = TrainSettings(**record.settings)
    kind = record.preset or "book"
    if record.preset is None and preset(record.model, "quick", config=config).config == config:
        kind = "fast" if s.momentum > 0 else "quick"
    return record.model, config, kind, {"lr": s.lr, "epochs": s.epochs, "minutes": s.minutes, "batch": s.batch_size,
                                        "subset": s.train_subset or 0, "init": s.init, **dict(recipe_widgets(s))}


def recipe_widgets(s: TrainSettings) -> list[tuple[str, float | bool | str]]:
    """The Train page's recipe switches (its widgets' keys) as a run's settings set them."""
    return [("optimizer", s.optimizer), ("momentum", s.momentum), ("weight_decay", s.weight_decay),
            ("label_smoothing", s.label_smoothing), ("warmup", s.warmup), ("cosine", s.cosine),
            ("augment", s.augment)]


def confusion_heatmap(confusion: list[list[int]], dataset: str = DEFAULT_DATASET) -> go.Figure:
    names = [_(name) for name in class_names(dataset)]
    fig = go.Figure(go.Heatmap(z=confusion, x=names, y=names, colorscale="Blues",
                               text=confusion, texttemplate="%{text}",
                               hovertemplate=_("true %{y}, predicted %{x}: %{z}") + "<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return style(fig, _("Confusion matrix (test set)"), _("predicted"), _("true"), height=560)


def per_class_accuracy(confusion: list[list[int]], dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    m = np.array(confusion)
    return pd.DataFrame({_("class"): [_(name) for name in class_names(dataset)],
                         _("accuracy"): m.diagonal() / m.sum(axis=1).clip(min=1), _("images"): m.sum(axis=1)})


def confused_images(record: RunRecord, data: ImageData, per_pair: int = 4,
                    pairs: int = 6) -> list[tuple[int, int, int]]:
    """(test image index, true class, predicted class) of misclassified images, the most confused
    (true, predicted) pairs first."""
    if not record.predictions or not record.confusion:
        return []
    predicted = torch.frombuffer(bytearray(record.predictions), dtype=torch.uint8).long()
    truth = data.test_labels
    if len(predicted) != len(truth):  # stored against another copy of the data
        return []
    m = np.array(record.confusion)
    np.fill_diagonal(m, 0)
    order = np.dstack(np.unravel_index(np.argsort(-m, axis=None), m.shape))[0][:pairs]
    out = []
    for t, p in order:
        if m[t, p] == 0:
            break
        idx = torch.nonzero((truth == int(t)) & (predicted == int(p))).flatten()[:per_pair]
        out += [(i, int(t), int(p)) for i in idx.tolist()]
    return out


def confused_examples(record: RunRecord, per_pair: int = 4, pairs: int = 6,
                      data_dir: str | None = None) -> list[tuple[np.ndarray, str]]:
    """Misclassified test images with captions, the most confused (true, predicted) pairs first. `data_dir`:
    where the run's data set is (RunManager.data_of)."""
    data, names = load_data(data_dir, record.dataset), class_names(record.dataset)
    return [(data.test_images[i].numpy(), _("true {true} / predicted {predicted}").format(
        true=_(names[t]), predicted=_(names[p]))) for i, t, p in confused_images(record, data, per_pair, pairs)]


def batchnorm_parameters(model: str, config: dict, state_dict: dict[str, torch.Tensor]) -> dict[str, tuple]:
    """Learned scale (gamma) and shift (beta) of each batch-norm layer, as d2l shows net[1].gamma."""
    with torch.device("meta"):
        net = registry.build(registry.config_from(model, config))
    out = {}
    for name, module in net.named_modules():
        if (norm := registry.norm_view(module)) is not None:  # a family's own, as d2l's from scratch
            keys = tuple(f"{name}.{key}" for key in norm.scale_shift)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            keys = (f"{name}.weight", f"{name}.bias")
        else:
            continue
        gamma, beta = (state_dict[k].flatten().numpy() for k in keys)
        out[name] = (gamma, beta)
    return out


def batchnorm_chart(layer: str, gamma: np.ndarray, beta: np.ndarray) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(x=np.arange(len(gamma)), y=gamma, name=_("gamma (scale)"))
    fig.add_bar(x=np.arange(len(beta)), y=beta, name=_("beta (shift)"))
    return style(fig, _("Batch norm {layer}: learned gamma and beta").format(layer=layer), _("channel"), _("value"),
                 height=320)
