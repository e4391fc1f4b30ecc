"""Plotly figures of a layer table (one or several configs overlaid), sized for a projector."""

from __future__ import annotations

import html
import unicodedata

import pandas as pd
import plotly.graph_objects as go

from explorer.i18n import _

FONT = {"size": 16}
AXIS = {"tickfont": {"size": 15}, "title_font": {"size": 16}}


def chart_text(text: str) -> str:
    """Text for a Plotly title, legend or hover label, shown as typed: Plotly renders some HTML there (<b>,
    <br>, <a href>), so a run's name is escaped as it is everywhere else."""
    return html.escape(text, quote=False)


def style(fig: go.Figure, title: str, x_title: str, y_title: str, log: bool = False,
          height: int = 420) -> go.Figure:
    """Projector-sized fonts, a title and axis names; the app's light or dark theme does the colours.

    The axis type is left to Plotly unless `log` asks for a log axis: forcing "linear" would turn a
    heatmap's class-name categories into numbers and draw an empty plot.
    """
    fig.update_layout(title={"text": chart_text(_(title)), "font": {"size": 20}}, font=FONT, height=height,
                      margin={"l": 60, "r": 20, "t": 60, "b": 60}, legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(title=axis_title(_(y_title)), **AXIS)
    if log:  # labels at powers of ten only; Plotly's minor "2" and "5" labels clutter a projector
        fig.update_yaxes(type="log", dtick=1)
    fig.update_xaxes(title=_(x_title), **AXIS)
    return fig


def axis_title(text: str, most: int = 28) -> str:
    """A vertical axis's title in at most two lines, broken before its parenthesis: one line of a long
    statistic's name ran past the plot's height into the chart's own title."""
    width = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)  # a Chinese character: two
    for mark in ("（", " ("):
        head, found, tail = text.partition(mark)
        if found and width > most:
            return chart_text(head) + "<br>" + chart_text(mark.strip() + tail)
    return chart_text(text)


def powers_of_two(values: pd.Series) -> list[int]:
    """Tick values for a log axis of channel counts or pixel sizes: 1, 2, 4, ... across the data.

    Plotly's own ticks on a short log range are minor labels such as "10.65162".
    """
    lo, hi = max(int(values.min()), 1), max(int(values.max()), 1)
    ticks = [2 ** k for k in range(0, 31) if lo / 2 < 2 ** k < hi * 2]
    return ticks[::2] if len(ticks) > 8 else ticks


def _layout(fig: go.Figure, title: str, y_title: str, log: bool = False) -> go.Figure:
    return style(fig, title, _("layer (in order)"), y_title, log).update_layout(hovermode="x unified")


def _leaves(layers: pd.DataFrame) -> pd.DataFrame:
    leaves = layers[layers.is_leaf].reset_index(drop=True)
    return leaves.assign(label=leaves.path + " " + leaves.type)


def per_layer_chart(named: dict[str, pd.DataFrame], column: str, title: str, log: bool = False) -> go.Figure:
    """Bars of `column` (params, mult_adds) per leaf layer; configs side by side."""
    fig = go.Figure()
    for name, layers in named.items():
        leaves = _leaves(layers)
        leaves = leaves[leaves[column] > 0]
        fig.add_bar(x=leaves.index, y=leaves[column], name=name, customdata=leaves.label,
                    hovertemplate="%{customdata}: %{y:,}<extra>" + name + "</extra>")
    return _layout(fig, title, column.replace("_", "-"), log)


def shape_flow_chart(named: dict[str, pd.DataFrame]) -> go.Figure:
    """Channels and spatial size of every leaf layer's output, through the network."""
    fig = go.Figure()
    for name, layers in named.items():
        leaves = _leaves(layers)
        spatial = leaves[leaves.output_shape.map(len) == 3]
        fig.add_scatter(x=leaves.index, y=leaves.output_shape.map(lambda s: s[0]), name=f"{name}: {_('channels')}",
                        mode="lines+markers", customdata=leaves.label, line_shape="hv",
                        hovertemplate="%{customdata}: %{y} channels<extra></extra>")
        fig.add_scatter(x=spatial.index, y=spatial.output_shape.map(lambda s: s[1]),
                        name=f"{name}: {_('height/width')}",
                        mode="lines+markers", customdata=spatial.label, line_shape="hv", line_dash="dot",
                        yaxis="y2", hovertemplate="%{customdata}: %{y} px<extra></extra>")
    fig = _layout(fig, _("Shape flow"), _("channels (log)"), log=True)
    channels = pd.concat([_leaves(layers).output_shape.map(lambda s: s[0]) for layers in named.values()])
    sizes = pd.concat([_leaves(layers).output_shape.map(lambda s: s[1] if len(s) == 3 else 1)
                       for layers in named.values()])
    fig.update_yaxes(tickvals=powers_of_two(channels), dtick=None, minor={"showgrid": False})
    fig.update_layout(yaxis2={"title": _("height = width (px)"), "overlaying": "y", "side": "right", "type": "log",
                              "tickvals": powers_of_two(sizes), **AXIS})
    return fig


def cumulative_chart(named: dict[str, pd.DataFrame], column: str, title: str) -> go.Figure:
    """Running total of `column` through the leaf layers: where the size of a network comes from."""
    fig = go.Figure()
    for name, layers in named.items():
        leaves = _leaves(layers)
        fig.add_scatter(x=leaves.index, y=leaves[column].cumsum(), name=name, mode="lines",
                        customdata=leaves.label, hovertemplate="%{customdata}: %{y:,}<extra>" + name + "</extra>")
    return _layout(fig, title, column.replace("_", "-"))
