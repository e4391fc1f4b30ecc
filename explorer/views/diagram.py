"""The network as a diagram that fits a projector: a Plotly figure the browser draws, with zoom and pan.

The layer table becomes a chain of units. An activation, batch norm, dropout or flatten joins the layer
before it ("Conv 3x3 · ReLU"); a container of plain layers (a `vgg_block`, a NiN block, a stem) is one
unit; a family's own blocks (registry.BlockView) are units of their own, one that adds its input to its
output with its skip drawn as an arc; identical units in a row fold into one marked "×N". The chain wraps
into rows, so even a long network is a few rows of boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go

from explorer import registry
from explorer.i18n import _

ATTACHED = ("ReLU", "Sigmoid", "Tanh", "Dropout", "BatchNorm1d", "BatchNorm2d", "Flatten")  # and a family's norms
SHORT = {"Conv2d": "Conv", "MaxPool2d": "MaxPool", "AvgPool2d": "AvgPool", "AdaptiveAvgPool2d": "GlobalAvgPool",
         "BatchNorm2d": "BN", "BatchNorm1d": "BN", "Dropout": "Dropout"}
COLORS = {"layer": "#e8eef9", "block": "#dcead5", "skip": "#fbe5c8", "io": "#ffffff"}
PER_ROW = 7


@dataclass
class _Node:
    path: str
    type: str
    shape: str
    kernel: str
    params: int
    children: list[_Node] = field(default_factory=list)

    def leaves(self) -> list[_Node]:
        return [self] if not self.children else [leaf for c in self.children for leaf in c.leaves()]


@dataclass
class Unit:
    """One box of the diagram."""

    title: str                  # "Conv 5x5 · Sigmoid", or a block's class name
    lines: tuple[str, ...]      # what is inside, in words
    shape: str                  # output shape of the (last) unit
    kind: str                   # layer, block, skip (a block that adds its input) or io
    stage: str = ""             # the top-level stage it belongs to, when it is inside one
    params: int = 0
    paths: list[str] = field(default_factory=list)
    repeat: int = 1
    skip: str = ""              # skip units: "identity" or "1x1 conv"

    def same_as(self, other: Unit) -> bool:
        return (self.title, self.lines, self.kind, self.stage, self.skip) == \
               (other.title, other.lines, other.kind, other.stage, other.skip) and self.kind != "io"


def _tree(layers: pd.DataFrame) -> list[_Node]:
    """Rows (in call order, with depths) to a tree of top-level nodes."""
    top: list[_Node] = []
    stack: list[_Node] = []
    for path, depth, type_, shape, kernel, params in zip(
            layers.path, layers.depth, layers.type, layers.output_shape, layers.kernel_size, layers.params,
            strict=True):
        node = _Node(path, type_, "×".join(map(str, shape)), kernel or "", int(params))
        del stack[depth - 1:]
        (stack[-1].children if stack else top).append(node)
        stack.append(node)
    return top


def _name(leaf: _Node) -> str:
    norm = registry.norm_view(leaf.type)
    name = norm.short if norm is not None else SHORT.get(leaf.type, leaf.type)
    return f"{name} {leaf.kernel}" if leaf.kernel and leaf.type != "AdaptiveAvgPool2d" else name


def _attached(type_: str) -> bool:
    """An activation, norm, dropout or flatten: joined to the layer before it."""
    return type_ in ATTACHED or registry.norm_view(type_) is not None


def _chain(leaves: list[_Node]) -> list[str]:
    """Leaf names with attached layers joined to the one before and repeats counted: '2× Conv 3x3 · ReLU'."""
    parts: list[str] = []
    for leaf in leaves:
        if _attached(leaf.type) and parts:
            parts[-1] += f" · {_name(leaf)}"
        else:
            parts.append(_name(leaf))
    counted: list[list] = []
    for part in parts:
        if counted and counted[-1][0] == part:
            counted[-1][1] += 1
        else:
            counted.append([part, 1])
    return [p if n == 1 else f"{n}× {p}" for p, n in counted]


def _block(node: _Node, stage: str) -> Unit:
    """A family's own block as one box: its lines and skip as its catalog entry says (registry.BlockView)."""
    view = registry.block_view(node.type)
    leaves = node.leaves()
    params = sum(leaf.params for leaf in leaves)
    paths = [leaf.path for leaf in leaves]
    if view.skip is None:
        return Unit(node.type, view.lines(leaves, _chain), node.shape, "block", stage, params, paths)
    return Unit(node.type, view.lines(leaves, _chain), node.shape, "skip", stage, params, paths,
                skip=view.skip(leaves))


def _units_of(nodes: list[_Node], stage: str) -> list[Unit]:
    units: list[Unit] = []
    for node in nodes:
        if registry.block_view(node.type) is not None:
            units.append(_block(node, stage))
        elif not node.children:
            if _attached(node.type) and units and units[-1].kind == "layer":
                last = units[-1]
                last.title += f" · {_name(node)}"
                last.shape, last.params, last.paths = node.shape, last.params + node.params, [*last.paths, node.path]
            else:
                units.append(Unit(_name(node), (), node.shape, "layer", stage, node.params, [node.path]))
        elif any(registry.block_view(c.type) is not None or c.children for c in node.children):
            units += _units_of(node.children, node.path)  # a stage of blocks: its blocks are the units
        else:
            leaves = node.leaves()
            units.append(Unit(f"{node.path} · {node.type}", tuple(_chain(leaves)), node.shape, "block", stage,
                              sum(leaf.params for leaf in leaves), [leaf.path for leaf in leaves]))
    return units


def diagram_units(layers: pd.DataFrame, input_shape: tuple[int, ...], fold: bool = True) -> list[Unit]:
    """The boxes, input to logits; with `fold`, identical neighbours become one box marked ×N."""
    top = _tree(layers)
    units = [Unit("input", (), "×".join(map(str, input_shape)), "io"), *_units_of(top, ""),
             Unit("logits", (), top[-1].shape, "io")]
    if not fold:
        return units
    folded: list[Unit] = []
    for unit in units:
        if folded and unit.same_as(folded[-1]):
            last = folded[-1]
            last.repeat += 1
            last.shape, last.params, last.paths = unit.shape, last.params + unit.params, last.paths + unit.paths
        else:
            folded.append(unit)
    return folded


def grid(n: int) -> tuple[int, int]:
    """(rows, boxes per row) for n boxes: at most seven a row, rows filled evenly, more a row past five rows."""
    rows = min(math.ceil(n / PER_ROW), 5)
    per_row = math.ceil(n / rows)
    return math.ceil(n / per_row), per_row


def _fold(line: str, width: int = 22) -> list[str]:
    """A box's line, split in two at its middle " | " when it is too wide for the box (a block's parallel paths)."""
    parts = line.split(" | ")
    if len(line) <= width or len(parts) < 2:
        return [line]
    half = len(parts) // 2
    return [" | ".join(parts[:half]) + " |", " | ".join(parts[half:])]


def diagram_figure(units: list[Unit], title: str = "", scale: float = 1.0) -> go.Figure:
    """Boxes in reading order, arrows between them, skips as dashed arcs; zoom and pan in the browser.
    `scale` enlarges the type and the rows (presentation mode), as far as the whole still fits 600 pixels."""
    rows, per_row = grid(len(units))
    w, h = 0.82, 0.62
    fig = go.Figure()
    xs, ys, hover = [], [], []
    for i, unit in enumerate(units):
        r, c = divmod(i, per_row)
        x, y = c, -r
        fig.add_shape(type="rect", x0=x - w / 2, x1=x + w / 2, y0=y - h / 2, y1=y + h / 2,
                      line={"color": "#4c78a8" if unit.kind != "io" else "#888888", "width": 1.5},
                      fillcolor=COLORS[unit.kind], layer="below")
        shown = _(unit.title) if unit.kind == "io" else unit.title  # input, logits; layer names stay the book's
        fits = len(shown) <= 20 / scale  # about 20 characters fit a box at 12 px
        label = shown if fits else shown.replace(" · ", "<br>· ")
        title_text = f"<b>{label}</b>" + (f" <b>×{unit.repeat}</b>" if unit.repeat > 1 else "")
        named = unit.stage if unit.stage.startswith("stage") else f"{_('stage')} {unit.stage}"  # RegNet names its own
        stage = f"<span style='color:#777777'>{named}</span><br>" if unit.stage else ""
        body = "".join(f"<br><span style='font-size:{round(11 * scale)}px'>{line}</span>"
                       for line in unit.lines for line in _fold(line, round(22 / scale)))
        fig.add_annotation(x=x, y=y, text=f"{stage}{title_text}{body}<br><i>{unit.shape}</i>", showarrow=False,
                           font={"size": round(12 * scale), "color": "#1f1f1f"}, align="center")
        xs.append(x)
        ys.append(y)
        hover.append(f"{shown}{f' ×{unit.repeat}' if unit.repeat > 1 else ''}<br>"
                     + _("output {shape}").format(shape=unit.shape) + "<br>"
                     + _("{n:,} parameters").format(n=unit.params) + "<br>"
                     + _("layers: {paths}").format(paths=", ".join(unit.paths[:8]))
                     + (" …" if len(unit.paths) > 8 else ""))
        if unit.kind == "skip":  # the skip: from this box's input, over the box, into its addition
            bypass, side = y + h / 2 + 0.07, w / 2 + 0.045
            fig.add_shape(type="path", line={"color": "#e45756", "dash": "dash", "width": 2},
                          path=f"M {x - side},{y} L {x - side},{bypass} L {x + side},{bypass} L {x + side},{y}")
            fig.add_annotation(x=x, y=bypass + 0.07, text=_("skip: {skip}").format(skip=_(unit.skip)), showarrow=False,
                               font={"size": round(11 * scale), "color": "#e45756"})
        if i == 0:
            continue
        pr, pc = divmod(i - 1, per_row)
        if pr == r:
            fig.add_annotation(x=x - w / 2, y=y, ax=pc + w / 2, ay=y, xref="x", yref="y", axref="x", ayref="y",
                               showarrow=True, arrowhead=2, arrowsize=1, arrowwidth=1.5, arrowcolor="#555555",
                               text="")
        else:  # wrap to the next row: down from the previous box, back to the left, into this one
            mid = -pr - 0.43  # above the next row's skip labels
            fig.add_shape(type="path", path=f"M {pc},{-pr - h / 2} L {pc},{mid} L {x},{mid} L {x},{y + h / 2}",
                          line={"color": "#555555", "width": 1.5})
    fig.add_scatter(x=xs, y=ys, mode="markers", marker={"size": 40, "opacity": 0}, hovertext=hover,
                    hoverinfo="text", showlegend=False)
    row_px = min(round((165 if rows <= 3 else 118) * scale), max(118, 570 // rows))
    fig.update_layout(
        title={"text": title, "font": {"size": 18}} if title else None,
        height=rows * row_px + (70 if title else 30), margin={"l": 10, "r": 10, "t": 50 if title else 10, "b": 10},
        xaxis={"visible": False, "range": [-0.55, per_row - 0.45], "fixedrange": False},
        yaxis={"visible": False, "range": [-rows + 0.5, 0.62], "scaleanchor": None},
        plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)", dragmode="pan", showlegend=False)
    return fig
