"""Running a project's `test` blocks: what each step's event reaches and what each target
receives, against what the step `expect`s.

Uses the reference interpreter, the definition of matching, for where an event goes, and the
runtime's own transform for what a target receives (`payloads.received`). A step's event is
its `send`, or the event a `then TARGET emits TYPE { ... }` step says the target publishes:
it is routed like any other, so a test follows `emits` exactly as far as its steps say.

A step passes when its event reaches exactly the targets its `expect` names, each target
with a `with { ... }` receives a matching payload (`payloads.compare`), and no target is
reached by two deliveries with different payloads. (The runtime delivers such an event once,
with the payload of the first delivery in the artifact's order: routes, then chooses, each
in declaration order; `interlock check` warns about it, W0261, or refuses it, E0260, and a
test that makes it happen fails, naming both.)
"""

from __future__ import annotations

from typing import Any

import attrs

from interlock.dsl import Project, Span, ast

from .payloads import Difference, canonical, compare, received
from .reference import deliveries, project_timestamp_paths


@attrs.frozen
class PayloadResult:
    """What one target of an `expect ... with { ... }` received, against what was expected."""

    target: str
    exact: bool  # `with exactly`
    expected: dict[str, Any]
    actual: Any  # None when the target was not reached
    differences: tuple[Difference, ...]

    @property
    def reached(self) -> bool:
        return self.actual is not None

    @property
    def passed(self) -> bool:
        return self.reached and not self.differences


@attrs.frozen
class Conflict:
    """A target that one event reaches by deliveries with different payloads; it receives the first."""

    target: str
    routes: tuple[str, ...]  # the route or choose of each delivery, in the runtime's order
    payloads: tuple[Any, ...]


@attrs.frozen
class StepResult:
    test: str
    step: int  # 1-based, in the test block
    event_type: str
    span: Span  # of the `send`, or of the `then ... emits`
    expected: frozenset[str]
    actual: frozenset[str]
    emitted_by: str | None = None  # the target of a `then TARGET emits` step
    payloads: tuple[PayloadResult, ...] = ()
    conflicts: tuple[Conflict, ...] = ()

    @property
    def passed(self) -> bool:
        return (self.expected == self.actual and all(p.passed for p in self.payloads)
                and not self.conflicts)

    @property
    def missing(self) -> frozenset[str]:
        return self.expected - self.actual

    @property
    def unexpected(self) -> frozenset[str]:
        return self.actual - self.expected


def run_tests(project: Project) -> list[StepResult]:
    """Every step of every test, in declaration order. The project must have no errors."""
    routes = list(project.routes.values())
    chooses = list(project.chooses.values())
    stamps = project_timestamp_paths(project)
    results = []
    for test in project.tests.values():
        for number, step in enumerate(test.steps, 1):
            send = step.send
            data = ast.to_python(send.data) if send.data is not None else {}
            reached = deliveries(routes, chooses, send.event_type.text, data, stamps)
            given = {target: [(name, received(d, data)) for name, d in found] for target, found in reached.items()}
            results.append(StepResult(
                test=test.name.text,
                step=number,
                event_type=send.event_type.text,
                span=send.span,
                expected=frozenset(t.text for t in step.expect.targets),
                actual=frozenset(reached),
                emitted_by=send.emitted_by.text if send.emitted_by is not None else None,
                payloads=tuple(_payload(p, given) for p in step.expect.payloads),
                conflicts=tuple(c for target, found in given.items() if (c := _conflict(target, found))),
            ))
    return results


def _payload(expectation: ast.ExpectedPayload, given: dict[str, list[tuple[str, Any]]]) -> PayloadResult:
    expected = ast.to_python(expectation.data)
    assert isinstance(expected, dict)
    found = given.get(expectation.target.text)
    actual = found[0][1] if found else None
    differences = tuple(compare(expected, actual, expectation.exact)) if found else ()
    return PayloadResult(expectation.target.text, expectation.exact, expected, actual, differences)


def _conflict(target: str, found: list[tuple[str, Any]]) -> Conflict | None:
    if len({canonical(payload) for _, payload in found}) < 2:
        return None
    return Conflict(target, tuple(name for name, _ in found), tuple(payload for _, payload in found))
