"""The event-flow graph of a project: which events reach which routes, targets and dead letters.

Owns the shared picture that `check_flow` reasons over and `interlock graph` draws: `flow`
gives its nodes and edges as plain data, in order (`check_flow` reads its edges: building a
`networkx` graph of 10,000 routes took a third of the checks' time), and `flow_graph` the
same as a `networkx.MultiDiGraph`, node for node and edge for edge, for the drawings. Does
not check anything, and does not render anything.

Nodes are `(kind, name)` tuples; every node has the attributes `kind` (one of `KINDS`),
`name`, and `span` (where it is declared, or first named). Per kind:

- `event`: every declared event type, and every type named in `emits` or in an `on`
  pattern without a glob. `declared` says which, `open` that it has no schema.
- `route`, `choose`: `when` is the text of the route's condition (None without one).
- `target`: `mode` is its effective mode.
- `dead_letter`: `unrouted` is true for the one `unrouted to dead_letter` names.

Edges carry `kind` and `span`:

- `on`, event -> route or choose: one per pattern and event type it matches (among the
  event nodes), with the `pattern` text, glob or not.
- `to`, route or choose -> target: one per delivery. For a `choose`, `label` is the
  branch's condition text, or "otherwise", and `branch` its 0-based index; for a route
  `label` is None.
- `dead_letter`, target -> dead letter: the target's effective dead letter; `inherited`
  is true when it comes from `defaults` (the span is then the name in `defaults`).
- `emits`, target -> event: one per `emits` entry, at that entry.

Expects a project without front-end errors (every name resolves).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import networkx as nx  # type: ignore[import-untyped]

from interlock.dsl import Project, Span, ast

from .policies import resolve_targets
from .reference import event_type_matches

KINDS = ("event", "route", "choose", "target", "dead_letter")
Node = tuple[str, str]


def _text(project: Project, span: Span) -> str:
    """The source text of a span, on one line (a condition may span several)."""
    source = project.sources.get(span.file)
    if source is None:
        return ""
    return " ".join(source.text[span.start:span.end].split())


def _event_types(project: Project) -> dict[str, tuple[Span, ast.EventDecl | None]]:
    """Declared event types first, in declaration order, then the others by first mention."""
    found: dict[str, tuple[Span, ast.EventDecl | None]] = {
        name: (decl.name.span, decl) for name, decl in project.events.items()
    }
    mentions: list[tuple[str, Span]] = []
    for target in project.targets.values():
        mentions.extend((entry.text, entry.span) for entry in target.options.emits or ())
    handlers: list[ast.RouteDecl | ast.ChooseDecl] = [*project.routes.values(), *project.chooses.values()]
    for handler in handlers:
        mentions.extend((p.text, p.span) for p in handler.on if not p.is_glob)
    for name, span in mentions:
        found.setdefault(name, (span, None))
    return found


@attrs.frozen
class Flow:
    """The graph as data: `nodes` (node -> attributes) and `edges` ((source, target,
    attributes)), each in the order they are added to `flow_graph`'s graph; `unrouted`, the
    graph's own attribute."""

    unrouted: str | None
    nodes: dict[Node, dict[str, Any]]
    edges: list[tuple[Node, Node, dict[str, Any]]]


def _deliveries(edges: list[tuple[Node, Node, dict[str, Any]]], source: Node, deliveries: Iterable[ast.Delivery],
                label: str | None, branch: int | None) -> None:
    for delivery in deliveries:
        edges.append((source, ("target", delivery.target.text),
                      {"kind": "to", "span": delivery.span, "label": label, "branch": branch}))


def flow(project: Project, with_nodes: bool = True) -> Flow:
    """The event-flow graph of `project` as data (see the module docstring for its shape);
    without its nodes (`nodes` empty) unless `with_nodes`: what the edges alone answer."""
    unrouted = project.unrouted.dead_letter.text if project.unrouted else None
    nodes: dict[Node, dict[str, Any]] = {}
    edges: list[tuple[Node, Node, dict[str, Any]]] = []
    events = _event_types(project)
    targets = resolve_targets(project)
    if with_nodes:
        for name, (span, decl) in events.items():
            nodes["event", name] = {"kind": "event", "name": name, "span": span, "declared": decl is not None,
                                    "open": decl is None or decl.schema is None}
        for route in project.routes.values():
            when = _text(project, route.when.span) if route.when is not None else None
            nodes["route", route.name.text] = {"kind": "route", "name": route.name.text, "span": route.name.span,
                                               "when": when}
        for choose in project.chooses.values():
            nodes["choose", choose.name.text] = {"kind": "choose", "name": choose.name.text,
                                                 "span": choose.name.span, "when": None}
        for name, target in targets.items():
            nodes["target", name] = {"kind": "target", "name": name, "span": target.span, "mode": target.mode}
        for name, dead_letter in project.dead_letters.items():
            nodes["dead_letter", name] = {"kind": "dead_letter", "name": name, "span": dead_letter.name.span,
                                          "unrouted": name == unrouted}

    handlers: list[ast.RouteDecl | ast.ChooseDecl] = [*project.routes.values(), *project.chooses.values()]
    matching: dict[str, list[str]] = {}  # per pattern, the event types it matches, in the order of `events`
    for handler in handlers:
        node: Node = ("route" if isinstance(handler, ast.RouteDecl) else "choose", handler.name.text)
        for pattern in handler.on:
            matched = matching.get(pattern.text)
            if matched is None:
                matched = matching[pattern.text] = (
                    [e for e in events if event_type_matches(pattern.text, e)] if pattern.is_glob
                    else [pattern.text])  # (an exact type is among `events`, and matches itself alone)
            for event in matched:
                edges.append((("event", event), node, {"kind": "on", "span": pattern.span, "pattern": pattern.text}))
        if isinstance(handler, ast.RouteDecl):
            _deliveries(edges, node, handler.to, None, None)
        else:
            for index, branch in enumerate(handler.branches):
                label = _text(project, branch.when.span) if branch.when is not None else "otherwise"
                _deliveries(edges, node, branch.to, label, index)

    defaults = project.defaults
    for name, target in targets.items():
        if target.dead_letter is not None:
            own = target.decl.options.dead_letter
            inherited = defaults.options.dead_letter if defaults is not None else None
            span = (own or inherited or target.decl.name).span
            edges.append((("target", name), ("dead_letter", target.dead_letter),
                          {"kind": "dead_letter", "span": span, "inherited": own is None}))
        for entry in target.decl.options.emits or ():
            edges.append((("target", name), ("event", entry.text), {"kind": "emits", "span": entry.span}))
    return Flow(unrouted, nodes, edges)


def flow_graph(project: Project) -> nx.MultiDiGraph:
    """The event-flow graph of `project` (see the module docstring for its shape)."""
    data = flow(project)
    graph = nx.MultiDiGraph(unrouted=data.unrouted)
    for node, attributes in data.nodes.items():
        graph.add_node(node, **attributes)
    for source, target, attributes in data.edges:
        graph.add_edge(source, target, **attributes)
    return graph
