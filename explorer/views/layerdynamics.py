"""A run's dynamics as pictures: layers by time as a heatmap (does the gradient reach the first layer?), and
lines for a few layers. Two runs side by side share one colour scale, so a network with and without its
shortcuts, or with and without batch norm, compare at a glance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.i18n import _
from explorer.training.dynamics import STATISTICS
from explorer.views.charts import chart_text, style

LOG_SCALE = ("grad_norm", "update_ratio")  # spread over orders of magnitude: shown as log10
LINES = 6  # layers drawn as lines: the first, the last and evenly spaced ones between


def layer_names(frame: pd.DataFrame) -> list[str]:
    """Each layer as `path type`, in the network's order (first at the top of a heatmap)."""
    return list(dict.fromkeys(frame.layer + " " + frame.type))


def _values(frame: pd.DataFrame, stat: str) -> pd.Series:
    values = frame[stat].astype(float)
    if stat in LOG_SCALE:
        return np.log10(values.where(values > 0))  # zero or NaN: no colour
    return values


def _label(stat: str) -> str:
    return f"log10 {_(STATISTICS[stat])}" if stat in LOG_SCALE else _(STATISTICS[stat])


def shared_range(frames: list[pd.DataFrame], stat: str) -> tuple[float, float]:
    """One colour scale for several runs: from the lowest to the highest value any of them reached."""
    values = pd.concat([_values(f, stat) for f in frames]).dropna()
    if values.empty:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def dynamics_heatmap(frame: pd.DataFrame, stat: str, title: str, zrange: tuple[float, float] | None = None,
                     height: int = 420) -> go.Figure:
    """Layers (rows, first at the top) by reported step (columns, labelled by epoch), coloured by `stat`."""
    table = frame.assign(name=frame.layer + " " + frame.type, value=_values(frame, stat)).pivot_table(
        index="name", columns="epoch", values="value", aggfunc="mean", dropna=False)
    table = table.reindex(layer_names(frame))
    low, high = zrange or shared_range([frame], stat)
    fig = go.Figure(go.Heatmap(z=table.to_numpy(), x=[f"{e:.2f}" for e in table.columns], y=list(table.index),
                               zmin=low, zmax=high, colorscale="Viridis",
                               colorbar={"title": {"text": _label(stat), "side": "right"}},
                               hovertemplate="%{y}<br>epoch %{x}<br>%{z:.3g}<extra></extra>"))
    style(fig, title, _("epoch"), _("layer"), height=height)
    fig.update_yaxes(autorange="reversed", type="category", tickfont={"size": 11})
    fig.update_xaxes(type="category", nticks=8)
    return fig


def dynamics_lines(named: dict[str, pd.DataFrame], stat: str, height: int = 380) -> go.Figure:
    """`stat` over the epochs for a few layers of each run (the first, the last, some between): solid lines
    for the first run, dashed for the second."""
    fig = go.Figure()
    for dash, (run, frame) in zip(("solid", "dash", "dot"), named.items(), strict=False):
        names = layer_names(frame)
        picks = sorted({round(i * (len(names) - 1) / max(1, LINES - 1)) for i in range(min(LINES, len(names)))})
        framed = frame.assign(name=frame.layer + " " + frame.type, value=frame[stat].astype(float))
        for rank, i in enumerate(picks):
            one = framed[framed.name == names[i]]
            fig.add_scatter(x=one.epoch, y=one.value, mode="lines", name=chart_text(f"{run}: {names[i]}"),
                            line={"dash": dash, "color": _depth_colour(rank, len(picks))})
    style(fig, _("{statistic}, a few layers from first to last").format(statistic=_(STATISTICS[stat])), _("epoch"),
          _(STATISTICS[stat]), log=stat in LOG_SCALE, height=height)
    # up to eight long names (a run's and a layer's): beside the plot, where more rows never reach the x-axis title
    return fig.update_layout(legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"})


def _depth_colour(rank: int, count: int) -> str:
    """First layers dark blue, last ones yellow (Viridis' ends), as in the heatmap."""
    stops = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
    return stops[min(len(stops) - 1, math.floor(rank * len(stops) / max(1, count)))]


__all__ = ["dynamics_heatmap", "dynamics_lines", "layer_names", "shared_range", "LOG_SCALE"]
