"""The checking passes that run after the front end, in order.

Each pass is a module with one public function, `pass(project) -> list[Diagnostic]`,
that reads the resolved project and reports; none changes it. They run only on a project
without front-end errors (every name resolves), so a pass never has to guard against a
dangling reference. Order matters only for reading: type errors before the warnings that
build on types.
"""

from __future__ import annotations

from collections.abc import Callable

from interlock.dsl import Diagnostic, Project
from interlock.dsl.diagnostics import sorted_diagnostics
from interlock.dsl.project import paused_gc
from interlock.dsl.source import Span

from .check_deliveries import check_deliveries
from .check_flow import check_flow
from .check_loss import check_loss
from .check_predicates import check_predicates
from .check_retries import check_retries
from .check_tests import check_tests
from .check_types import check_types

Pass = Callable[[Project], list[Diagnostic]]

PASSES: tuple[Pass, ...] = (check_types, check_retries, check_loss, check_flow, check_predicates, check_deliveries,
                            check_tests)


def check(project: Project) -> list[Diagnostic]:
    """The front end's diagnostics, then, if it found no error, every pass's; sorted."""
    diagnostics = list(project.diagnostics)
    if project.ok:
        with paused_gc():
            for check_pass in PASSES:
                found = check_pass(project)
                if check_pass is check_predicates:  # no warning built on a predicate found wrong
                    wrong = [d.span for d in diagnostics if d.is_error]
                    found = [d for d in found if not any(_within(span, where) for span in wrong
                                                         for where in (d.span, *(r.span for r in d.related)))]
                diagnostics.extend(found)
    return sorted_diagnostics(diagnostics)


def _within(inner: Span, outer: Span) -> bool:
    return inner.file == outer.file and outer.start <= inner.start and inner.end <= outer.end
