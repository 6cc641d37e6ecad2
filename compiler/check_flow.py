"""Checks on the event-flow graph: event storms, and what nothing uses or nothing handles.

Reports:

- `E0240` an `emits` cycle: a target emits an event that is routed, directly or through
  other targets, back to it (an event storm). Each elementary cycle is reported once, at
  the `emits` entry that closes it (the last of the cycle's entries in source order), with
  the whole chain in the message.
- `W0241` a target that no route or `choose` delivers to.
- `W0242` a named retry policy that no target and not `defaults` uses.
- `W0243` a dead letter that no target, not `defaults` and not `unrouted` uses.
- `W0244` a declared event type that no `on` pattern matches.
- `W0245` a glob in `on` that matches no declared event type (only in a project that
  declares event types at all), with a "did you mean" when a close pattern would match.

Does not look at conditions: a route whose `when` is never true still counts as delivering,
and still closes a cycle (`check_predicates` reports such conditions). Event types that are
named but not declared are not reported: declaring them is optional.
"""

from __future__ import annotations

import difflib
import itertools

import networkx as nx  # type: ignore[import-untyped]

from interlock.dsl import Diagnostic, Project, Related, Span, ast
from interlock.dsl.diagnostics import error, warning

from .flow_graph import Flow, Node, flow
from .reference import event_type_matches

# simple_cycles enumerates every elementary cycle, and a dense tangle has exponentially many;
# past this many the first ones say enough.
MAX_CYCLES = 50


def _cycles(data: Flow) -> list[Diagnostic]:
    # Without `emits`, nothing leads back to an event: no cycle to look for.
    if not any(attributes["kind"] == "emits" for _, _, attributes in data.edges):
        return []
    return _storms(data)


def _storms(data: Flow) -> list[Diagnostic]:
    # The projection on events and targets: event -> target when a route or choose delivers
    # it there (`via` keeps the first one, in declaration order, and its first delivery
    # there), target -> event for `emits`.
    handlers: dict[Node, dict[Node, None]] = {}  # event -> the handlers whose `on` takes it, in order
    deliveries: dict[Node, dict[Node, Span]] = {}  # handler -> target -> its first delivery there
    for source, target, attributes in data.edges:
        if attributes["kind"] == "on":
            handlers.setdefault(source, {})[target] = None
        elif attributes["kind"] == "to":
            deliveries.setdefault(source, {}).setdefault(target, attributes["span"])
    storm = nx.DiGraph()
    for event, takers in handlers.items():
        for handler in takers:
            for target, span in deliveries.get(handler, {}).items():
                if not storm.has_edge(event, target):
                    storm.add_edge(event, target, via=handler, span=span)
    for source, emitted, attributes in data.edges:
        if attributes["kind"] == "emits" and not storm.has_edge(source, emitted):
            storm.add_edge(source, emitted, span=attributes["span"])
    # networkx finds cycles through sets of nodes, whose order follows the nodes' hashes, which
    # for strings change from one process to the next: past MAX_CYCLES, which cycles were
    # reported changed from run to run. Numbered in the graph's order, the nodes hash as
    # themselves, and the same project reports the same cycles.
    nodes = list(storm.nodes)
    numbered = nx.relabel_nodes(storm, {node: number for number, node in enumerate(nodes)})
    cycles = itertools.islice(nx.simple_cycles(numbered), MAX_CYCLES)
    return [_storm(storm, [nodes[number] for number in cycle]) for cycle in cycles]


def _position(span: Span) -> tuple[str, int]:
    return (span.file, span.start)


def _storm(storm: nx.DiGraph, cycle: list[Node]) -> Diagnostic:
    # Rotate so that the cycle starts at an event and ends with the emits entry that closes it.
    steps = len(cycle)
    emits_at = [i for i, node in enumerate(cycle) if node[0] == "target"]
    closing = max(emits_at, key=lambda i: _position(storm.edges[cycle[i], cycle[(i + 1) % steps]]["span"]))
    start = (closing + 1) % steps
    ordered = cycle[start:] + cycle[:start]
    parts = [f"`{ordered[0][1]}`"]
    related = []
    for i, node in enumerate(ordered):
        following = ordered[(i + 1) % steps]
        edge = storm.edges[node, following]
        if node[0] == "event":
            kind, name = edge["via"]
            parts.append(f"{kind} `{name}`")
            parts.append(f"target `{following[1]}`")
            related.append(Related(edge["span"], f"{kind} `{name}` delivers `{node[1]}` to `{following[1]}`"))
        else:
            parts.append(f"emits `{following[1]}`")
    closing_span = storm.edges[ordered[-1], ordered[0]]["span"]
    return error(
        "E0240", f"event storm: {' -> '.join(parts)}", closing_span, "emitted back into the cycle",
        "every event in this cycle makes another one, forever: remove this `emits` entry, or stop routing "
        "the emitted event back to a target in the cycle",
        related,
    )


def _unused(project: Project, data: Flow) -> list[Diagnostic]:
    diagnostics = []
    delivered = {target for _, target, attributes in data.edges if attributes["kind"] == "to"}
    for name, target in project.targets.items():
        if ("target", name) not in delivered:
            diagnostics.append(warning(
                "W0241", f"target `{name}` receives nothing", target.name.span, "no route or choose delivers here",
                f"deliver to it from a route (`to {name}`), or remove it",
            ))
    used_policies: set[str] = set()
    used_dead_letters: set[str] = set()
    options = [t.options for t in project.targets.values()]
    if project.defaults is not None:
        options.append(project.defaults.options)
    for option in options:
        if isinstance(option.retry, ast.Name):
            used_policies.add(option.retry.text)
        if option.dead_letter is not None:
            used_dead_letters.add(option.dead_letter.text)
    if project.unrouted is not None:
        used_dead_letters.add(project.unrouted.dead_letter.text)
    for name, policy in project.retries.items():
        if name not in used_policies and policy.name is not None:
            diagnostics.append(warning(
                "W0242", f"retry policy `{name}` is never used", policy.name.span, "no target uses it",
                f"name it in a target or in `defaults` (`retry {name}`), or remove it",
            ))
    for name, dead_letter in project.dead_letters.items():
        if name not in used_dead_letters:
            diagnostics.append(warning(
                "W0243", f"dead letter `{name}` is never used", dead_letter.name.span, "nothing is sent here",
                f"name it in a target or in `defaults` (`dead_letter {name}`), or remove it",
            ))
    return diagnostics


def _handled(project: Project, data: Flow) -> list[Diagnostic]:
    diagnostics = []
    routed = {source for source, _, attributes in data.edges if attributes["kind"] == "on"}
    for name, decl in project.events.items():
        if ("event", name) not in routed:
            where = (f"every `{name}` goes to the unrouted dead letter `{project.unrouted.dead_letter.text}`; "
                     if project.unrouted is not None else "")
            diagnostics.append(warning(
                "W0244", f"no route or choose handles event `{name}`", decl.name.span, "never routed",
                f"{where}route it (`on {name}`), or remove the declaration",
            ))
    if not project.events:
        return diagnostics
    declared = list(project.events)
    handlers: list[ast.RouteDecl | ast.ChooseDecl] = [*project.routes.values(), *project.chooses.values()]
    for handler in handlers:
        for pattern in handler.on:
            if pattern.is_glob and not any(event_type_matches(pattern.text, e) for e in declared):
                diagnostics.append(warning(
                    "W0245", f"`{pattern.text}` matches no declared event", pattern.span, "matches nothing declared",
                    _glob_help(pattern.text, declared),
                ))
    return diagnostics


def _reshaped(pattern: list[str], event: list[str]) -> str | None:
    """`pattern` with its named segments taken from `event`, where the shapes line up:
    the pattern the user may have meant, if they meant `event`."""
    if "**" not in pattern:
        if len(pattern) != len(event):
            return None
        return ".".join(p if p in ("*", "**") else e for p, e in zip(pattern, event, strict=True))
    at = pattern.index("**")
    head, tail = pattern[:at], pattern[at + 1:]
    if "**" in tail or len(head) + len(tail) > len(event):
        return None
    fixed_head = [p if p == "*" else e for p, e in zip(head, event, strict=False)]
    fixed_tail = [p if p == "*" else e for p, e in zip(tail, event[len(event) - len(tail):], strict=True)]
    return ".".join([*fixed_head, "**", *fixed_tail])


def _glob_help(pattern: str, declared: list[str]) -> str:
    segments = pattern.split(".")
    candidates = {c for e in declared if (c := _reshaped(segments, e.split("."))) is not None and c != pattern}
    close = difflib.get_close_matches(pattern, sorted(candidates), n=1, cutoff=0.6)
    shown = ", ".join(f"`{e}`" for e in declared[:6]) + (", ..." if len(declared) > 6 else "")
    if close:
        return f"did you mean `{close[0]}`? declared events: {shown}"
    return f"declared events: {shown}; declare the events this pattern is for, or fix the pattern"


def check_flow(project: Project) -> list[Diagnostic]:
    """Event storms (`E0240`), unused targets, policies and dead letters (`W0241`-`W0243`),
    unhandled events and globs that match nothing declared (`W0244`, `W0245`)."""
    data = flow(project, with_nodes=False)
    return [*_cycles(data), *_unused(project, data), *_handled(project, data)]
