"""What the Train and Runs pages show of runs: tables, d2l-style curves, confusions and learned BatchNorm."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import nn

from explorer import registry
from explorer.config import ModelConfig
from explorer.errors import ConfigError
from explorer.training.data import CLASS_NAMES, FashionMNIST, load_fashion_mnist
from explorer.training.estimate import human_duration
from explorer.training.recipes import TrainSettings, preset
from explorer.training.store import RunRecord
from explorer.views.charts import style

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
    fig.add_scatter(x=steps.epoch, y=steps.train_loss, name="train loss", mode="lines")
    fig.add_scatter(x=steps.epoch, y=steps.train_acc, name="train acc", mode="lines", line_dash="dash")
    fig.add_scatter(x=epochs.epoch, y=epochs.test_acc, name="test acc", mode="lines+markers", line_dash="dot")
    return style(fig, title, "epoch", "", height=height)


def overlay_chart(named: dict[str, pd.DataFrame], column: str, title: str) -> go.Figure:
    """One curve per run: train loss or accuracy per step, or test accuracy per epoch."""
    fig = go.Figure()
    for name, metrics in named.items():
        rows = metrics[metrics.kind == "epoch"] if column == "test_acc" else _thin(metrics[metrics.kind == "step"])
        fig.add_scatter(x=rows.epoch, y=rows[column], name=name,
                        mode="lines+markers" if column == "test_acc" else "lines")
    return style(fig, title, "epoch", column.replace("_", " "), height=400)


def describe_config(model: str, config: dict) -> str:
    """The knobs that differ from the catalog entry, e.g. 'ratio=8, resolution=32' (or 'book defaults')."""
    try:
        changed = registry.config_from(model, config).changes(registry.get(model).config)
    except (ConfigError, TypeError):
        return "stored by an older catalog"
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "catalog defaults"


def calibration_text(record: RunRecord) -> str | None:
    """How the run's settings were chosen, in words: the measured step rates and the format they picked."""
    c = record.calibration
    if not c:
        return None
    chosen, other = ("channels_last", "contiguous") if c["memory_format"] == "channels_last" \
        else ("contiguous", "channels_last")
    source = "measured earlier on this machine, reused" if c["cached"] else "measured before its first step"
    return (f"Memory format {chosen}: {c[chosen]:,.0f} training images/s against {c[other]:,.0f} for {other} "
            f"({c[chosen] / c[other]:.2f}x; {source}).")


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
        "settings": (f"lr {r.settings['lr']:g}, {r.settings['epochs']} epochs, batch {r.settings['batch_size']}"
                     + (f", {r.settings['train_subset']} images" if r.settings.get("train_subset") else "")),
        "status": r.status,
        "best test acc": accuracy(r.best_test_acc),
        "final test acc": accuracy(r.test_acc),
        "time": "-" if r.seconds is None else human_duration(r.seconds).removeprefix("about "),
        "started": datetime.fromtimestamp(r.created).strftime("%m-%d %H:%M:%S"),
    } for r in records], columns=["run", "name", "model", "preset", "config", "settings", "status", "best test acc",
                                  "final test acc", "time", "started"])


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
    return f"{record.label} · {preset_of(record)} preset · {record.status}"


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
    return record.model, config, kind, {"lr": s.lr, "epochs": s.epochs, "batch": s.batch_size,
                                        "subset": s.train_subset or 0, "init": s.init}


def confusion_heatmap(confusion: list[list[int]]) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=confusion, x=list(CLASS_NAMES), y=list(CLASS_NAMES), colorscale="Blues",
                               text=confusion, texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: "
                               "%{z}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return style(fig, "Confusion matrix (test set)", "predicted", "true", height=560)


def per_class_accuracy(confusion: list[list[int]]) -> pd.DataFrame:
    m = np.array(confusion)
    return pd.DataFrame({"class": CLASS_NAMES, "accuracy": m.diagonal() / m.sum(axis=1).clip(min=1),
                         "images": m.sum(axis=1)})


def confused_images(record: RunRecord, data: FashionMNIST, per_pair: int = 4,
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
    """Misclassified test images with captions, the most confused (true, predicted) pairs first."""
    data = load_fashion_mnist(data_dir)
    return [(data.test_images[i].numpy(), f"true {CLASS_NAMES[t]} / predicted {CLASS_NAMES[p]}")
            for i, t, p in confused_images(record, data, per_pair, pairs)]


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
    fig.add_bar(x=np.arange(len(gamma)), y=gamma, name="gamma (scale)")
    fig.add_bar(x=np.arange(len(beta)), y=beta, name="beta (shift)")
    return style(fig, f"Batch norm {layer}: learned gamma and beta", "channel", "value", height=320)
