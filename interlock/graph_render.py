"""Drawing the event-flow graph as text: Graphviz DOT, Mermaid, or one self-contained HTML page.

Owns the output formats of `interlock graph`. Reads only the graph that
`compiler.flow_graph` builds (its node and edge attributes); knows nothing of the AST.
The HTML page lays the drawing out itself, as inline SVG in columns by kind (events,
routes and chooses, targets, dead letters), so it needs no network, no script and no
stylesheet from anywhere else.
"""

from __future__ import annotations

import html
from typing import Any

import networkx as nx  # type: ignore[import-untyped]

FORMATS = ("dot", "mermaid", "html")

_KIND_ORDER = ("event", "route", "choose", "target", "dead_letter")
_COLUMN = {"event": 0, "route": 1, "choose": 1, "target": 2, "dead_letter": 3}
_COLUMN_TITLES = ("events", "routes and chooses", "targets", "dead letters")
# Long conditions are cut in labels; the full text stays in the DOT and in the HTML tooltips.
_LABEL_LIMIT = 48

Node = tuple[str, str]
Box = tuple[float, float, float, float]  # x, y, width, height


def _nodes(graph: nx.MultiDiGraph) -> list[Node]:
    """The nodes by kind, in the order the graph has them within a kind."""
    order = {kind: i for i, kind in enumerate(_KIND_ORDER)}
    return sorted(graph.nodes, key=lambda n: order[graph.nodes[n]["kind"]])


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_LIMIT else text[: _LABEL_LIMIT - 1] + "…"


def _node_lines(data: dict[str, Any]) -> list[str]:
    """The label of a node, line by line: its name, then what qualifies it."""
    lines = [data["name"]]
    if data["kind"] == "route" and data.get("when"):
        lines.append(f"when {data['when']}")
    elif data["kind"] == "target" and data.get("mode") == "sync":
        lines.append("sync")
    elif data["kind"] == "dead_letter" and data.get("unrouted"):
        lines.append("unrouted")
    elif data["kind"] == "event" and not data.get("declared"):
        lines.append("not declared")
    return lines


def _edge_label(data: dict[str, Any]) -> str | None:
    if data["kind"] == "on":
        return str(data["pattern"]) if "*" in data["pattern"] else None
    if data["kind"] == "to":
        return data.get("label")
    if data["kind"] == "emits":
        return "emits"
    return None


def _edges(graph: nx.MultiDiGraph) -> list[tuple[Node, Node, dict[str, Any]]]:
    return [(source, target, data) for source, target, data in graph.edges(data=True)]


# ---- DOT -----------------------------------------------------------------------

_DOT_NODE = {
    "event": 'shape=box, style="rounded,filled", fillcolor="#e8f1fb"',
    "route": 'shape=box, style=filled, fillcolor="#f4f4f4"',
    "choose": 'shape=hexagon, style=filled, fillcolor="#f4f4f4"',
    "target": 'shape=box, style="rounded,filled,bold", fillcolor="#e9f7ec"',
    "dead_letter": 'shape=cylinder, style=filled, fillcolor="#fdecea"',
}
_DOT_EDGE = {
    "on": "",
    "to": "",
    "dead_letter": 'style=dashed, color="#9a9a9a"',
    "emits": 'color="#c0602a", fontcolor="#c0602a", penwidth=1.6',
}


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_id(node: Node) -> str:
    return _dot_string(f"{node[0]}:{node[1]}")


def render_dot(graph: nx.MultiDiGraph) -> str:
    lines = [
        "digraph interlock {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node in _nodes(graph):
        data = graph.nodes[node]
        lines_of = _node_lines(data)
        label = _dot_string("\n".join(_short(line) for line in lines_of))
        tooltip = _dot_string("\n".join(lines_of))
        lines.append(f"  {_dot_id(node)} [label={label}, tooltip={tooltip}, {_DOT_NODE[data['kind']]}];")
    for source, target, data in _edges(graph):
        attributes = [_DOT_EDGE[data["kind"]]] if _DOT_EDGE[data["kind"]] else []
        edge_label = _edge_label(data)
        if edge_label is not None:
            attributes.append(f"label={_dot_string(edge_label)}")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {_dot_id(source)} -> {_dot_id(target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- Mermaid -------------------------------------------------------------------

_MERMAID_SHAPE = {
    "event": ("([", "])"),
    "route": ("[", "]"),
    "choose": ("{{", "}}"),
    "target": ("(", ")"),
    "dead_letter": ("[(", ")]"),
}
_MERMAID_ARROW = {"on": "-->", "to": "-->", "dead_letter": "-.->", "emits": "==>"}
_MERMAID_STYLE = {
    "event": "fill:#e8f1fb,stroke:#4a7ab8",
    "route": "fill:#f4f4f4,stroke:#777",
    "choose": "fill:#f4f4f4,stroke:#777",
    "target": "fill:#e9f7ec,stroke:#3f8f56,stroke-width:2px",
    "dead_letter": "fill:#fdecea,stroke:#c0392b",
}


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: its special characters as entity codes."""
    for raw, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        text = text.replace(raw, code)
    return text


def render_mermaid(graph: nx.MultiDiGraph) -> str:
    nodes = _nodes(graph)
    ids = {node: f"n{i}" for i, node in enumerate(nodes)}
    lines = ["flowchart LR"]
    for node in nodes:
        data = graph.nodes[node]
        opening, closing = _MERMAID_SHAPE[data["kind"]]
        label = "<br/>".join(_mermaid_text(_short(line)) for line in _node_lines(data))
        lines.append(f'  {ids[node]}{opening}"{label}"{closing}')
    for source, target, data in _edges(graph):
        arrow = _MERMAID_ARROW[data["kind"]]
        edge_label = _edge_label(data)
        middle = f'|"{_mermaid_text(_short(edge_label))}"|' if edge_label is not None else ""
        lines.append(f"  {ids[source]} {arrow}{middle} {ids[target]}")
    for kind in _KIND_ORDER:
        members = [ids[n] for n in nodes if graph.nodes[n]["kind"] == kind]
        if members:
            lines.append(f"  classDef {kind} {_MERMAID_STYLE[kind]}")
            lines.append(f"  class {','.join(members)} {kind}")
    return "\n".join(lines) + "\n"


# ---- HTML ----------------------------------------------------------------------

_CHAR_WIDTH = 7.6  # of the 12px bold font, roughly: enough to size boxes without measuring text
_LABEL_CHAR_WIDTH = 6.0  # of the 10px font of edge labels
_LINE_HEIGHT = 15
_PAD = 10
_GAP_Y = 14
_GAP_X = 170
_TOP = 110  # room for the column titles and for the lanes of `emits` edges above the nodes
_LEFT = 50  # room for the lanes of `emits` edges left of the events
_LANES = 12  # `emits` edges take lanes 4px apart, round robin
_FILL = {"event": "#e8f1fb", "route": "#f4f4f4", "choose": "#f4f4f4", "target": "#e9f7ec", "dead_letter": "#fdecea"}
_STROKE = {"event": "#4a7ab8", "route": "#777", "choose": "#777", "target": "#3f8f56", "dead_letter": "#c0392b"}
_EDGE_COLOUR = {"on": "#555", "to": "#555", "dead_letter": "#9a9a9a", "emits": "#c0602a"}


def _columns(graph: nx.MultiDiGraph) -> list[list[Node]]:
    """Nodes in columns by kind, each column ordered to keep edges short (barycentre sweeps)."""
    columns: list[list[Node]] = [[] for _ in _COLUMN_TITLES]
    for node in _nodes(graph):
        columns[_COLUMN[graph.nodes[node]["kind"]]].append(node)
    undirected = graph.to_undirected(as_view=True)

    def sweep(column: int, neighbour: int) -> None:
        rank = {node: i for i, node in enumerate(columns[neighbour])}
        before = {node: i for i, node in enumerate(columns[column])}

        def key(node: Node) -> float:
            near = [rank[n] for n in undirected.neighbors(node) if n in rank]
            return sum(near) / len(near) if near else float(before[node])

        columns[column].sort(key=key)

    for _ in range(3):
        for column in range(1, len(columns)):
            sweep(column, column - 1)
        for column in range(len(columns) - 2, -1, -1):
            sweep(column, column + 1)
    return columns


def _layout(graph: nx.MultiDiGraph, columns: list[list[Node]]) -> tuple[dict[Node, Box], float, float, list[float]]:
    """Each node's box (x, y, width, height), the drawing's size, and each column's left edge."""
    boxes: dict[Node, Box] = {}
    x = float(_LEFT)
    lefts = []
    bottom = float(_TOP)
    for index, column in enumerate(columns):
        if index:  # room for the labels of the edges that arrive in this column
            labels = [_short(lb) for _, t, d in _edges(graph) if t in column and d["kind"] != "emits"
                      and (lb := _edge_label(d)) is not None]
            x += max(_GAP_X, max((len(lb) for lb in labels), default=0) * _LABEL_CHAR_WIDTH + 40)
        lines = {node: [_short(line) for line in _node_lines(graph.nodes[node])] for node in column}
        width = max((max(len(t) for t in ls) * _CHAR_WIDTH + 2 * _PAD for ls in lines.values()), default=120.0)
        width = max(width, 120.0)
        y = float(_TOP)
        for node in column:
            height = len(lines[node]) * _LINE_HEIGHT + _PAD
            boxes[node] = (x, y, width, height)
            y += height + _GAP_Y
        bottom = max(bottom, y)
        lefts.append(x)
        x += width
    return boxes, x + 20, bottom + 20, lefts


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _svg(graph: nx.MultiDiGraph) -> str:
    columns = _columns(graph)
    boxes, width, height, lefts = _layout(graph, columns)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        "<defs>",
    ]
    for kind, colour in _EDGE_COLOUR.items():
        out.append(f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
                   f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/>'
                   "</marker>")
    out.append("</defs>")
    for left, title, column in zip(lefts, _COLUMN_TITLES, columns, strict=True):
        if column:
            out.append(f'<text x="{left:.1f}" y="24" font-weight="bold" fill="#333">{_attr(title)}</text>')

    labels = []
    arrivals: dict[Node, int] = {}  # labelled edges that arrive at a node so far
    drawn: set[tuple[Node, str]] = set()
    emitted = 0
    for source, target, data in _edges(graph):
        kind = data["kind"]
        if kind == "emits":
            path, (x, y) = _emits_path(boxes[source], boxes[target], emitted % _LANES)
            emitted += 1
        else:
            path, (x, y) = _edge_path(boxes[source], boxes[target])
        dash = ' stroke-dasharray="5,4"' if kind == "dead_letter" else ""
        out.append(f'<path d="{path}" fill="none" stroke="{_EDGE_COLOUR[kind]}" stroke-width="1.3"{dash} '
                   f'stroke-linejoin="round" '
                   f'marker-end="url(#arrow-{kind})"><title>{_attr(_edge_title(source, target, data))}</title>'
                   "</path>")
        label = _edge_label(data)
        # `emits` arcs go without one (their colour, in the legend, says it); a label goes just before
        # the arrow head, once per text (one `order.*` per route, however many events it matches), and
        # stacked upwards when several arrive at one node.
        if label is None or kind == "emits" or (target, label) in drawn:
            continue
        drawn.add((target, label))
        arrivals[target] = arrivals.get(target, -1) + 1
        y -= 12 * arrivals[target]
        labels.append(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="end" font-size="10" fill="{_EDGE_COLOUR[kind]}" '
            f'stroke="#fff" stroke-width="3" paint-order="stroke"><title>{_attr(label)}</title>'
            f"{_attr(_short(label))}</text>")
    out.extend(labels)  # after every edge, so that no line crosses a label

    for node, (x, y, w, h) in boxes.items():
        data = graph.nodes[node]
        kind = data["kind"]
        radius = {"event": h / 2, "target": 8, "dead_letter": 2}.get(kind, 3)
        dash = ' stroke-dasharray="4,3"' if kind == "choose" or (kind == "event" and not data["declared"]) else ""
        span = data.get("span")
        where = f" ({span.file}:{span.line})" if span is not None else ""
        out.append(f'<g><title>{_attr(kind.replace("_", " "))} {_attr(data["name"])}{_attr(where)}</title>')
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{radius:.1f}" '
                   f'fill="{_FILL[kind]}" stroke="{_STROKE[kind]}" stroke-width="{2 if kind == "target" else 1}"'
                   f"{dash}/>")
        for i, line in enumerate(_node_lines(data)):
            weight = ' font-weight="bold"' if i == 0 else ' fill="#555" font-size="11"'
            out.append(f'<text x="{x + _PAD:.1f}" y="{y + _PAD / 2 + (i + 0.8) * _LINE_HEIGHT:.1f}"{weight}>'
                       f"{_attr(_short(line))}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _edge_path(source: Box, target: Box) -> tuple[str, tuple[float, float]]:
    """A forward edge's SVG path, a curve from column to column, and where a label of it goes."""
    sx, sy, sw, sh = source
    tx, ty, _, th = target
    x1, y1, x2, y2 = sx + sw, sy + sh / 2, tx, ty + th / 2
    bend = (x2 - x1) / 2
    path = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    return path, (x2 - 8, y2 - 4)


def _emits_path(source: Box, target: Box, lane: int) -> tuple[str, tuple[float, float]]:
    """An `emits` edge, back from a target to an event: out of the target's right side, up to a
    lane above every node, across, down a lane left of the events, into the event's left side.
    So it crosses edges but never a node."""
    sx, sy, sw, sh = source
    tx, ty, _, th = target
    right, top, left = sx + sw + 10 + 4 * lane, _TOP - 20 - 4 * lane, tx - 12 - 3 * lane
    points = [(sx + sw, sy + sh / 2), (right, sy + sh / 2), (right, top), (left, top), (left, ty + th / 2),
              (tx, ty + th / 2)]
    path = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return path, ((right + left) / 2, top)


def _edge_title(source: Node, target: Node, data: dict[str, Any]) -> str:
    what = {"on": "on", "to": "to", "dead_letter": "dead letter", "emits": "emits"}[data["kind"]]
    label = _edge_label(data)
    return f"{source[1]} -> {target[1]} ({what}{': ' + label if label else ''})"


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 18px; margin: 0 0 4px; }}
p {{ margin: 4px 0 16px; color: #555; font-size: 13px; }}
.legend span {{ display: inline-block; padding: 1px 8px; margin-right: 8px; border: 1px solid; border-radius: 4px; }}
.drawing {{ overflow: auto; border-top: 1px solid #ddd; padding-top: 8px; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
<p class="legend">{legend}</p>
<div class="drawing">
{svg}
</div>
</body>
</html>
"""


def render_html(graph: nx.MultiDiGraph, title: str = "interlock event flow") -> str:
    counts = {kind: sum(1 for _, d in graph.nodes(data=True) if d["kind"] == kind) for kind in _KIND_ORDER}
    summary = ", ".join(f"{n} {kind.replace('_', ' ')}{'' if n == 1 else 's'}" for kind, n in counts.items())
    legend = " ".join(
        f'<span style="background:{_FILL[k]};border-color:{_STROKE[k]}">{k.replace("_", " ")}</span>'
        for k in _KIND_ORDER
    ) + ' <span style="border-color:#c0602a;color:#c0602a">emits</span>'
    return _PAGE.format(title=_attr(title), summary=_attr(summary), legend=legend, svg=_svg(graph))


def render(graph: nx.MultiDiGraph, output_format: str, title: str = "interlock event flow") -> str:
    """The graph in one of `FORMATS` (`title` is the HTML page's)."""
    if output_format == "dot":
        return render_dot(graph)
    if output_format == "mermaid":
        return render_mermaid(graph)
    if output_format == "html":
        return render_html(graph, title)
    raise ValueError(f"not a graph format: {output_format!r}")
