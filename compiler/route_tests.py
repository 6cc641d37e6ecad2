"""Running a project's `test` blocks: what each `send` reaches, against what it `expect`s.

Uses the reference interpreter, the definition of matching. (When the compiled router
exists, the same steps run through it too, and the two must agree.)
"""

from __future__ import annotations

import attrs

from interlock.dsl import Project, Span, ast

from .reference import project_timestamp_paths, route


@attrs.frozen
class StepResult:
    test: str
    step: int  # 1-based, in the test block
    event_type: str
    span: Span  # of the `send`
    expected: frozenset[str]
    actual: frozenset[str]

    @property
    def passed(self) -> bool:
        return self.expected == self.actual

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
            data = ast.to_python(step.send.data) if step.send.data is not None else {}
            actual = route(routes, chooses, step.send.event_type.text, data, stamps)
            results.append(StepResult(
                test=test.name.text,
                step=number,
                event_type=step.send.event_type.text,
                span=step.send.span,
                expected=frozenset(t.text for t in step.expect.targets),
                actual=frozenset(actual),
            ))
    return results
