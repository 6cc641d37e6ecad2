"""`explain`: why each route whose `on` takes an event type did or did not deliver an event,
predicate by predicate, with the values each one saw. It walks every route's full condition
(the tables are not used), so it agrees with the reference semantics by construction."""

from __future__ import annotations

from typing import Any

import attrs

from .matching import event_type_matches
from .predicates import compile_predicate, elements_at, values_at

MAX_ELEMENTS = 10  # the elements of `any PATH { ... }` an explanation shows


@attrs.frozen
class Verdict:
    """One predicate of an explanation: its source text, the values it saw, and its verdict."""

    text: str
    at: tuple[int, int]
    seen: tuple[Any, ...] | None  # None for `and` / `or` / `not`
    verdict: bool
    parts: tuple[Verdict, ...] = ()


@attrs.frozen
class RouteExplanation:
    """Why one route or choose did or did not deliver the event."""

    name: str
    kind: str  # "route" or "choose"
    at: tuple[str, int, int]
    matched: bool
    targets: frozenset[str]
    condition: Verdict | None = None  # a route's `when`
    branches: tuple[Verdict | None, ...] = ()  # a choose's branch conditions (None: otherwise)
    chosen: int | None = None  # the branch that won


def _explain(node: dict[str, Any], data: Any) -> Verdict:
    op = node["op"]
    at = (node["at"][0], node["at"][1])
    if op in ("and", "or"):
        parts = tuple(_explain(a, data) for a in node["args"])
        verdict = all(p.verdict for p in parts) if op == "and" else any(p.verdict for p in parts)
        return Verdict(node["text"], at, None, verdict, parts)
    if op == "not":
        inner = _explain(node["arg"], data)
        return Verdict(node["text"], at, None, not inner.verdict, (inner,))
    if op == "any":
        return _elements(node, at, data)
    verdict = compile_predicate(node)(data)
    if op == "null" and verdict:
        return Verdict(node["text"], at, (None,), True)
    return Verdict(node["text"], at, tuple(values_at(data, node["path"])), verdict)


def _elements(node: dict[str, Any], at: tuple[int, int], data: Any) -> Verdict:
    """`any PATH { ... }`: the condition on each element, the first MAX_ELEMENTS of them and
    the first that passes (the one that decides)."""
    shown: list[Verdict] = []
    verdict = False
    for number, element in enumerate(elements_at(data, node["path"]), 1):
        inner = _explain(node["arg"], element)
        if number <= MAX_ELEMENTS or (inner.verdict and not verdict):
            shown.append(Verdict(f"element {number}", at, None, inner.verdict, (inner,)))
        verdict = verdict or inner.verdict
        if verdict and number >= MAX_ELEMENTS:
            break
    if not shown:
        return Verdict(node["text"], at, (), False)  # no element: "saw nothing"
    return Verdict(node["text"], at, None, verdict, tuple(shown))


def explain(routes: list[dict[str, Any]], event_type: str, data: Any) -> list[RouteExplanation]:
    """Every route and choose whose `on` takes the event type, with each predicate's verdict."""
    out = []
    for route in routes:
        if not any(event_type_matches(p, event_type) for p in route["on"]):
            continue
        at = (route["file"], route["line"], route["column"])
        if route["kind"] == "route":
            condition = _explain(route["when"], data) if route["when"] else None
            matched = condition is None or condition.verdict
            targets = frozenset(d["target"] for d in route["deliveries"]) if matched else frozenset()
            out.append(RouteExplanation(route["name"], "route", at, matched, targets, condition=condition))
            continue
        verdicts = tuple(_explain(b["when"], data) if b["when"] else None for b in route["branches"])
        chosen = next((i for i, v in enumerate(verdicts) if v is None or v.verdict), None)
        targets = (frozenset(d["target"] for d in route["branches"][chosen]["deliveries"])
                   if chosen is not None else frozenset())
        out.append(RouteExplanation(route["name"], "choose", at, chosen is not None, targets,
                                    branches=verdicts, chosen=chosen))
    return out
