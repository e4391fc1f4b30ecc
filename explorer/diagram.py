"""A Graphviz DOT description of a layer table; the browser draws it (st.graphviz_chart, no system Graphviz).

Top-level Sequential stages become boxes around their layers; a ResNet `Residual` shows its skip
connection into an addition, `Inception` its four parallel paths into a concatenation, and a
`DenseBlock` the concatenation after each of its convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

BLOCKS = ("Residual", "Inception", "DenseBlock")


@dataclass
class _Node:
    path: str
    type: str
    shape: str
    kernel: str
    children: list[_Node] = field(default_factory=list)

    def leaves(self) -> list[_Node]:
        return [self] if not self.children else [leaf for c in self.children for leaf in c.leaves()]

    @property
    def id(self) -> str:
        return "n_" + self.path.replace(".", "_")


def _tree(layers: pd.DataFrame) -> list[_Node]:
    """Rows (in call order, with depths) to a tree of top-level nodes."""
    top: list[_Node] = []
    stack: list[_Node] = []
    for path, depth, type_, shape, kernel in zip(layers.path, layers.depth, layers.type, layers.output_shape,
                                                 layers.kernel_size, strict=True):
        node = _Node(path, type_, "x".join(map(str, shape)), kernel or "")
        del stack[depth - 1:]
        (stack[-1].children if stack else top).append(node)
        stack.append(node)
    return top


def diagram_dot(layers: pd.DataFrame) -> str:
    """DOT source for the whole network, top to bottom."""
    lines = ['digraph net {', 'rankdir=TB; nodesep=0.25; ranksep=0.25;',
             'node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=14];',
             'edge [color="#555555"];', 'input [label="input", shape=oval, fillcolor="#ffffff"];']
    last = "input"
    top = _tree(layers)
    for node in top:
        if node.type in BLOCKS or not node.children:
            last = _unit(lines, node, last)
            continue
        lines.append(f'subgraph cluster_{node.id} {{ label="{node.path}: {node.type} -> {node.shape}"; '
                     'style="rounded,dashed"; color="#999999"; fontname="Helvetica";')
        for child in node.children:
            last = _unit(lines, child, last)
        lines.append("}")
    lines.append(f'output [label="{top[-1].shape} logits", shape=oval, fillcolor="#ffffff"];')
    lines.append(f"{last} -> output;")
    lines.append("}")
    return "\n".join(lines)


def _unit(lines: list[str], node: _Node, last: str) -> str:
    """One layer, one block with its join, or a small container (conv_block, NiN block) as one box."""
    if node.type in BLOCKS:
        return _block(lines, node, last)
    detail = " / ".join(leaf.type for leaf in node.leaves()) if node.children else ""
    text = f"{node.type} {node.kernel}".strip() + (f"\\n{detail}" if detail else "")
    lines.append(f'{node.id} [label="{text}\\n{node.shape}"];')
    lines.append(f"{last} -> {node.id};")
    return node.id


def _block(lines: list[str], node: _Node, last: str) -> str:
    """A residual, Inception or dense block with its join (+ or concat)."""
    join = node.id + "_join"
    lines.append(f'subgraph cluster_{node.id} {{ label="{node.path}: {node.type}"; style=rounded; '
                 'color="#4c78a8"; fontname="Helvetica";')
    leaves = node.leaves()
    if node.type == "Residual":
        main = [leaf for leaf in leaves if not leaf.path.endswith("conv3")]
        body = " / ".join(f"{leaf.type} {leaf.kernel}".strip() for leaf in main)
        lines.append(f'{node.id} [label="{body}\\n{node.shape}"];')
        lines.append(f'{join} [label="+  ReLU", shape=circle, fillcolor="#fde9c9"];')
        lines.append(f"{last} -> {node.id} -> {join};")
        skip = "1x1 conv" if len(main) < len(leaves) else "identity"
        lines.append(f'{last} -> {join} [style=dashed, color="#e45756", label=" {skip}", fontcolor="#e45756"];')
    elif node.type == "Inception":
        lines.append(f'{join} [label="concat\\n{node.shape}", shape=hexagon, fillcolor="#d8f0d2"];')
        for path in ("p1", "p2", "p3", "p4"):
            branch = [leaf for leaf in leaves if leaf.path.rsplit(".", 1)[-1].startswith(path + "_")]
            text = " -> ".join(f"{leaf.type} {leaf.kernel}" for leaf in branch)
            lines.append(f'{node.id}_{path} [label="{text}\\n{branch[-1].shape}"];')
            lines.append(f"{last} -> {node.id}_{path} -> {join};")
    else:  # DenseBlock: each conv block's output is concatenated to its input
        for k, blk in enumerate(node.children[0].children):
            cat = f"{join}{k}"
            lines.append(f'{blk.id} [label="{" / ".join(leaf.type for leaf in blk.leaves())}\\n{blk.shape}"];')
            lines.append(f'{cat} [label="concat", shape=hexagon, fillcolor="#d8f0d2"];')
            lines.append(f"{last} -> {blk.id} -> {cat};")
            lines.append(f'{last} -> {cat} [style=dashed, color="#54a24b"];')
            last = cat
        join = last
    lines.append("}")
    return join
