"""The checking passes that run after the front end, in order.

Each pass is a module with one public function, `pass(project) -> list[Diagnostic]`,
that reads the resolved project and reports; none changes it. They run only on a project
without front-end errors (every name resolves), so a pass never has to guard against a
dangling reference. Order matters only for reading: type errors before the warnings that
build on types.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable

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
                    wrong = _Spans(d.span for d in diagnostics if d.is_error)
                    found = [d for d in found
                             if not any(wrong.any_within(where) for where in (d.span, *(r.span for r in d.related)))]
                diagnostics.extend(found)
    return sorted_diagnostics(diagnostics)


class _Spans:
    """Spans, asked whether one of them lies within a given span in O(log n): per file, their
    starts in order and, from each on, the least end (every error against every warning was
    quadratic: 8,000 routes with a type error each checked in 15 s)."""

    def __init__(self, spans: Iterable[Span]) -> None:
        by_file: dict[str, list[tuple[int, int]]] = {}
        for span in spans:
            by_file.setdefault(span.file, []).append((span.start, span.end))
        self.starts: dict[str, list[int]] = {}
        self.least_end: dict[str, list[int]] = {}
        for file, found in by_file.items():
            found.sort()
            self.starts[file] = [start for start, _ in found]
            least = [end for _, end in found]
            for i in range(len(least) - 2, -1, -1):
                least[i] = min(least[i], least[i + 1])
            self.least_end[file] = least

    def any_within(self, outer: Span) -> bool:
        starts = self.starts.get(outer.file)
        if not starts:
            return False
        i = bisect.bisect_left(starts, outer.start)  # the spans that start inside or after it
        return i < len(starts) and self.least_end[outer.file][i] <= outer.end
