"""Pictures and charts of what is inside a network: feature maps tiled into grids, a receptive field
drawn on the input, the prediction, batch-norm statistics and one unit's arithmetic, for the Inside page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.i18n import _
from explorer.training.data import DEFAULT_DATASET, class_names
from explorer.views.inside import ConvUnit, Part, ReceptiveField, Stage


def grid(maps: np.ndarray, columns: int = 8, scale: int = 1, gap: int = 1) -> np.ndarray:
    """Maps (k, h, w) in [0, 1] tiled into one uint8 grayscale image, `scale` pixels per value, for PNG
    files and the page (a browser draws one small image, not k arrays)."""
    k, h, w = maps.shape
    columns = max(1, min(columns, k))
    rows = -(-k // columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), 255, dtype=np.uint8)
    for i, m in enumerate(maps):
        r, c = divmod(i, columns)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = (m * 255).round().astype(np.uint8)
    return out.repeat(scale, axis=0).repeat(scale, axis=1)


def side_by_side(images: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """uint8 grayscale images in one row, top-aligned on white: a block's parts in one PNG."""
    height = max(i.shape[0] for i in images)
    out = np.full((height, sum(i.shape[1] for i in images) + gap * (len(images) - 1)), 255, dtype=np.uint8)
    x = 0
    for i in images:
        out[:i.shape[0], x:x + i.shape[1]] = i
        x += i.shape[1] + gap
    return out


def stage_grid(stage: Stage) -> np.ndarray:
    """A stage's maps enlarged to about 56 pixels; a flattened stage's units folded into rows of 16."""
    maps = stage.maps
    if maps.shape[1] == 1:
        per_row = min(16, maps.shape[2])
        units = np.zeros(-(-maps.shape[2] // per_row) * per_row, dtype=maps.dtype)
        units[:maps.shape[2]] = maps[0, 0]
        return grid(units.reshape(1, -1, per_row), scale=16)
    return grid(maps, scale=max(1, 56 // max(maps.shape[1:])))


def titled(pixels: np.ndarray, title: str, min_width: int = 200) -> np.ndarray:
    """A grayscale image (uint8) enlarged to at least `min_width` pixels, under its title in black on
    white, wrapped to the image's width: a PNG that says what it shows."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    scale = max(1, -(-min_width // pixels.shape[1]))
    body = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    font = ImageFont.load_default(size=13)
    lines = textwrap.wrap(title, width=max(12, body.shape[1] // 7))
    head = 18 * len(lines) + 6
    out = Image.new("L", (body.shape[1], body.shape[0] + head), 255)
    out.paste(Image.fromarray(body), (0, head))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((2, 3 + 18 * i), line, fill=0, font=font)
    return np.asarray(out)


def kernel_grid(kernels: np.ndarray) -> np.ndarray:
    """The first layer's kernels, 16 to a row, each at least about 64 pixels wide."""
    return grid(kernels, columns=16, scale=max(4, 64 // kernels.shape[-1]))


def part_grid(part: Part) -> np.ndarray:
    """A block part's maps, four to a row, each enlarged to about 64 pixels."""
    return grid(part.maps, columns=4, scale=max(1, 64 // max(part.maps.shape[1:])))


def draw_box(image: np.ndarray, box: ReceptiveField, resolution: int, size: int = 224) -> np.ndarray:
    """The 28x28 image enlarged to `size` pixels (RGB), with `box` (in pixels of the network's input at
    `resolution`) drawn in orange, two pixels wide."""
    scale = size / 28
    out = np.repeat(image.repeat(round(scale), axis=0).repeat(round(scale), axis=1)[..., None], 3, axis=2)
    top, left, bottom, right = (round(v * out.shape[0] / resolution) for v in (box.top, box.left, box.bottom,
                                                                                 box.right))
    bottom, right = max(bottom, top + 1), max(right, left + 1)
    orange = np.array([255, 140, 0], dtype=np.uint8)
    for rows, cols in (((top, top + 2), (left, right)), ((bottom - 2, bottom), (left, right)),
                       ((top, bottom), (left, left + 2)), ((top, bottom), (right - 2, right))):
        out[max(0, rows[0]):rows[1], max(0, cols[0]):cols[1]] = orange
    return out


def prediction_chart(probabilities: np.ndarray, label: int, height: int = 300,
                     dataset: str = DEFAULT_DATASET) -> go.Figure:
    """Class probabilities as horizontal bars, the true class marked, for a projector."""
    names = [_("{item} (true)").format(item=_(name)) if i == label else _(name)
             for i, name in enumerate(class_names(dataset))]
    fig = go.Figure(go.Bar(x=probabilities, y=names, orientation="h",
                           marker_color=["#2a9d8f" if i == label else "#457b9d" for i in range(len(names))]))
    fig.update_layout(title=_("Prediction"), height=height, margin={"l": 10, "r": 10, "t": 40, "b": 30},
                      xaxis={"range": [0, 1], "title": _("probability")},
                      yaxis={"autorange": "reversed", "dtick": 1})  # every class named, in presentation mode too
    return fig


def batchnorm_chart(batchnorm: pd.DataFrame, images: int, height: int = 360) -> go.Figure:
    """Each batch-norm channel's moving mean (variance) against the mean (variance) of these images'
    inputs to it: on the diagonal, evaluation normalizes these images as training would have."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(_("mean"), _("variance")), horizontal_spacing=0.12)
    layers = list(dict.fromkeys(batchnorm.layer))
    depth = batchnorm.layer.map({name: i for i, name in enumerate(layers)})
    for col, stat in ((1, "mean"), (2, "var")):
        x, y = batchnorm[f"moving_{stat}"], batchnorm[f"batch_{stat}"]
        fig.add_scatter(x=x, y=y, mode="markers", row=1, col=col, showlegend=False,
                        marker={"size": 6, "color": depth, "colorscale": "Viridis", "cmin": 0,
                                "cmax": max(1, len(layers) - 1),
                                "colorbar": {"title": _("layer"), "tickvals": [0, len(layers) - 1],
                                             "ticktext": [_("first"), _("last")]} if col == 2 else None},
                        text=batchnorm.layer + " " + _("channel") + " " + batchnorm.channel.astype(str),
                        hovertemplate=_("%{text}<br>moving %{x:.3g}<br>batch %{y:.3g}") + "<extra></extra>")
        low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        fig.add_scatter(x=[low, high], y=[low, high], mode="lines", row=1, col=col, showlegend=False,
                        line={"color": "#999", "dash": "dot"}, hoverinfo="skip")
        fig.update_xaxes(title_text=_("moving {stat} (used in evaluation)").format(stat=_(stat)), row=1, col=col)
        fig.update_yaxes(title_text=_("batch {stat} of {images} test images").format(stat=_(stat), images=images),
                         row=1, col=col)
    fig.update_layout(title=_("Batch norm: moving statistics against these images' statistics"), height=height,
                      margin={"l": 10, "r": 10, "t": 70, "b": 30})
    return fig


def unit_chart(feature_map: np.ndarray, unit: tuple[int, int], height: int = 300) -> go.Figure:
    """A feature map (h, w) as a heatmap with the picked unit ringed. Every unit carries an invisible marker
    because Plotly reports clicks on markers, not on heatmap cells; a click selects that unit."""
    h, w = feature_map.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    fig = go.Figure(go.Heatmap(z=feature_map, colorscale="gray", showscale=False, hoverinfo="skip"))
    fig.add_scatter(x=cols, y=rows, mode="markers", marker={"size": max(4, 240 // max(h, w)), "opacity": 0},
                    hovertemplate="row %{y}, column %{x}<extra></extra>", showlegend=False)
    fig.add_scatter(x=[unit[1]], y=[unit[0]], mode="markers", showlegend=False, hoverinfo="skip",
                    marker={"size": max(8, 240 // max(h, w)), "symbol": "square-open", "color": "#ff8c00",
                            "line": {"width": 3}})
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10}, clickmode="event+select",
                      xaxis={"visible": False, "constrain": "domain"},
                      yaxis={"visible": False, "autorange": "reversed", "scaleanchor": "x"})
    return fig


def unit_chart_parts(unit: ConvUnit, input_channel: int, height: int = 300) -> go.Figure:
    """One input channel of a unit's arithmetic: the patch it sees, the kernel, and their product, side by
    side, each value written in its cell when the kernel is small enough to read."""
    from plotly.subplots import make_subplots

    i = unit.in_channels.index(input_channel)
    parts = ((_("input patch"), unit.patch[i]), (_("kernel"), unit.kernel[i]), (_("patch × kernel"), unit.product[i]))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for title, _values in parts], horizontal_spacing=0.06)
    readable = unit.kernel.shape[-1] <= 7
    for col, (_title, values) in enumerate(parts, start=1):
        fig.add_heatmap(z=values, row=1, col=col, colorscale="RdBu", zmid=0, showscale=False,
                        text=np.round(values, 2) if readable else None,
                        texttemplate="%{text}" if readable else None, hovertemplate="%{z:.4f}<extra></extra>")
        fig.update_yaxes(autorange="reversed", visible=False, scaleanchor=f"x{col}", row=1, col=col)
        fig.update_xaxes(visible=False, row=1, col=col)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig
