"""Deliveries that bring one event to one target with different payloads.

A target receives an event once, however many routes and `choose`s deliver it there; when
their deliveries make different payloads (one has a `with { ... }` and the other not, or two
different ones), the runtime uses the first delivery in the artifact's order (routes, then
chooses, each in declaration order) and the others' payloads are silently not used. Reports:

- `E0260` when that certainly happens: two deliveries in one route or one `choose` branch, or
  two routes without `when` whose `on` patterns can match one event type;
- `W0261` when it may: the `on` patterns of two deliveries can match one event type and their
  conditions (a route's `when`; a `choose` branch's `when`, with the negation of the branches
  before it) are not provably exclusive. The proof is `check_predicates`' (the one behind
  `W0250`): no event satisfies both conditions. Branches of one `choose` never both deliver.

Two payloads are different when the transforms differ as JSON (`payloads.canonical`), so the
same `with { ... }` written twice is fine. The later delivery is reported, naming the first.
Each delivery is compared with at most `MAX_COMPARED` earlier deliveries of its target with
another payload, and a branch's condition holds the negations of at most `MAX_BEFORE`
branches before it (else none: a looser condition, which can only make a warning more
likely), so a project with thousands of them stays linear.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from interlock.dsl import Diagnostic, Project, Related, ast
from interlock.dsl.diagnostics import error, warning

from .check_predicates import _never, _single_paths
from .payloads import canonical
from .reference import Stamps, project_timestamp_paths
from .tables import _transform_json

MAX_COMPARED = 64
MAX_BEFORE = 16


@attrs.frozen
class _Delivery:
    """One delivery, with when it happens."""

    kind: str  # "route" or "choose"
    name: str
    group: tuple[str, int]  # deliveries of one group happen together: (handler name, branch; -1 for a route)
    on: tuple[ast.EventPattern, ...]
    when: ast.Expr | None  # a route's `when`, a branch's (None: `otherwise`)
    branches: tuple[ast.Branch, ...]  # a choose's branches (this one is `group[1]`); () for a route
    delivery: ast.Delivery
    payload: str  # the transform, canonical
    stamps: Stamps

    @property
    def handler(self) -> str:
        return f"{self.kind} `{self.name}`"

    @property
    def unconditional(self) -> bool:
        return self.when is None and self.group[1] <= 0

    def condition(self) -> ast.Expr | None:
        """When it delivers, `on` aside: its `when` and not the `when` of a branch before it."""
        # (built only for the pairs compared; past MAX_BEFORE branches their negations are left out:
        # a looser condition, so never a false proof that two deliveries exclude each other)
        before = self.branches[:self.group[1]] if 0 < self.group[1] <= MAX_BEFORE else ()
        parts = [*(ast.Not(b.when, b.when.span) for b in before if b.when is not None),
                 *([self.when] if self.when is not None else [])]
        if len(parts) < 2:
            return parts[0] if parts else None
        return ast.And(tuple(parts), self.delivery.span)


def patterns_overlap(left: str, right: str) -> bool:
    """Whether some event type matches both patterns (`*` one segment, `**` any number)."""
    a, b = left.split("."), right.split(".")
    seen = {(0, 0)}
    stack = [(0, 0)]
    while stack:
        i, j = stack.pop()
        if i == len(a) and j == len(b):
            return True
        following = []
        if i < len(a) and a[i] == "**":
            following.append((i + 1, j))  # `**` matching nothing more
        if j < len(b) and b[j] == "**":
            following.append((i, j + 1))
        if i < len(a) and j < len(b) and ("*" in a[i] or "*" in b[j] or a[i] == b[j]):
            # one segment that both sides take; a `**` may go on taking more
            following.append((i if a[i] == "**" else i + 1, j if b[j] == "**" else j + 1))
        for state in following:
            if state not in seen:
                seen.add(state)
                stack.append(state)
    return False


def _overlap(left: Sequence[ast.EventPattern], right: Sequence[ast.EventPattern]) -> tuple[str, str] | None:
    """Words for the event types both `on`s match (for "every ..." and for "one ..."), or None
    when there are none."""
    for p in left:
        for q in right:
            if patterns_overlap(p.text, q.text):
                exact = p.text if p.text == q.text or not p.is_glob else q.text if not q.is_glob else None
                if exact is not None:
                    return f"every `{exact}`", f"the same `{exact}` event"
                both = f"`{p.text}` and `{q.text}` both match"
                return f"every event that {both}", f"the same event (one that {both})"
    return None


def _deliveries(project: Project) -> list[_Delivery]:
    """Every delivery, in the runtime's order: routes, then chooses."""
    stamps = project_timestamp_paths(project)
    found = []
    for route in project.routes.values():
        for delivery in route.to:
            found.append(_Delivery("route", route.name.text, (route.name.text, -1), route.on, route.when, (), delivery,
                                   _payload(delivery), stamps[route.name.text]))
    for choose in project.chooses.values():
        for number, branch in enumerate(choose.branches):
            for delivery in branch.to:
                found.append(_Delivery("choose", choose.name.text, (choose.name.text, number), choose.on, branch.when,
                                       choose.branches, delivery, _payload(delivery),
                                       stamps[choose.name.text]))
    return found


def _payload(delivery: ast.Delivery) -> str:
    transform = delivery.transform
    if transform is not None and transform.spread is not None and not transform.entries:
        transform = None  # `with { ... }` alone builds the event's data: no transform at all
    return canonical(_transform_json(transform)) if transform is not None else _NO_TRANSFORM


_NO_TRANSFORM = canonical(None)  # (most deliveries: written once)


def _exclusive(project: Project, first: _Delivery, second: _Delivery) -> bool:
    """Whether the two conditions provably never hold for one event."""
    if first.unconditional and second.unconditional:
        return False
    if first.stamps != second.stamps:
        return False  # their comparisons would be read by two rules at once: not reasoned about
    conditions = [c for c in (first.condition(), second.condition()) if c is not None]
    both = conditions[0] if len(conditions) == 1 else ast.And(tuple(conditions), conditions[0].span)
    single = _single_paths(project, [*first.on, *second.on])
    return _never(both, single, first.stamps) is not None


def _conflict(project: Project, first: _Delivery, second: _Delivery) -> Diagnostic | None:
    target = second.delivery.target.text
    related = [Related(first.delivery.target.span, f"{first.handler} delivers it earlier: its payload wins")]
    if first.group == second.group:
        where = f"{second.handler}" if second.kind == "route" else f"a branch of {second.handler}"
        return error("E0260", f"{where} delivers to `{target}` twice, with different payloads",
                     second.delivery.target.span, "this payload is never delivered",
                     f"a target receives an event once, with the first delivery's payload: deliver to `{target}` "
                     "once", related)
    if first.group[0] == second.group[0] and first.kind == "choose":
        return None  # two branches of one choose: never both
    overlap = _overlap(first.on, second.on)
    if overlap is None or _exclusive(project, first, second):
        return None
    every, one = overlap
    fix = (f"a target receives an event once, with the first delivery's payload ({first.handler}'s): give both "
           "deliveries the same `with { ... }`, or narrow one's `on` or `when`")
    if first.unconditional and second.unconditional:
        return error("E0260", f"{first.handler} and {second.handler} both deliver to `{target}` {every}, with "
                     "different payloads", second.delivery.target.span, "this payload is never delivered", fix,
                     related)
    return warning("W0261", f"{first.handler} and {second.handler} may both deliver to `{target}` {one}, "
                   "with different payloads", second.delivery.target.span,
                   f"not used when {first.handler} delivers too",
                   f"{fix}; put them in one `choose` if only one should deliver, or make their conditions exclude "
                   "each other", related)


def check_deliveries(project: Project) -> list[Diagnostic]:
    """Two deliveries of one event to one target with different payloads: certain (`E0260`),
    or possible (`W0261`)."""
    by_target: dict[str, list[_Delivery]] = {}
    for delivery in _deliveries(project):
        by_target.setdefault(delivery.delivery.target.text, []).append(delivery)
    diagnostics = []
    for deliveries in by_target.values():
        earlier: dict[str, list[_Delivery]] = {}  # by payload, in order
        groups: dict[tuple[str, int], list[_Delivery]] = {}
        checked: set[tuple[tuple[str, int], str]] = set()
        for second in deliveries:
            group = groups.setdefault(second.group, [])
            if (second.group, second.payload) not in checked:  # (the same delivery twice in one `to`: once)
                checked.add((second.group, second.payload))
                found = _first_conflict(project, earlier, group, second)
                if found is not None:
                    diagnostics.append(found)
            earlier.setdefault(second.payload, []).append(second)
            group.append(second)
    return diagnostics


def _first_conflict(project: Project, earlier: dict[str, list[_Delivery]], group: list[_Delivery],
                    second: _Delivery) -> Diagnostic | None:
    """A conflict of `second` with an earlier delivery of another payload: one of its own route
    or branch (`group`) first, then the others by payload (at most MAX_COMPARED of them)."""
    for first in group:
        if first.payload != second.payload:
            return _conflict(project, first, second)
    compared = 0
    for payload, firsts in earlier.items():
        if payload == second.payload:
            continue
        for first in firsts:
            found = _conflict(project, first, second)
            if found is not None:
                return found
            compared += 1
            if compared >= MAX_COMPARED:
                return None
    return None
