"""Diagnostics: the one error type family of interlock.

A `Diagnostic` is a value. Every stage collects them instead of raising at the first
problem; the CLI renders them once. Codes are stable: tools and users may match on them,
and `CODES` is the table the language reference documents.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from .source import Span


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@attrs.frozen(slots=True)
class Related:
    """A second place that explains a diagnostic, such as the first definition of a name."""

    span: Span
    message: str


@attrs.frozen(slots=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span
    label: str = ""
    help: str | None = None
    related: tuple[Related, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.file, self.span.start, self.span.end, self.code)


def error(
    code: str,
    message: str,
    span: Span,
    label: str = "",
    help: str | None = None,
    related: Iterable[Related] = (),
) -> Diagnostic:
    return Diagnostic(code, Severity.ERROR, message, span, label, help, tuple(related))


def warning(
    code: str,
    message: str,
    span: Span,
    label: str = "",
    help: str | None = None,
    related: Iterable[Related] = (),
) -> Diagnostic:
    return Diagnostic(code, Severity.WARNING, message, span, label, help, tuple(related))


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by file and position, duplicates (same code at the same place) removed."""
    unique = {(d.code, d.span, d.message): d for d in diagnostics}
    return sorted(unique.values(), key=Diagnostic.sort_key)


# code -> what it means; the language reference is written from this table.
CODES: dict[str, str] = {
    # syntax (dsl/parser.py)
    "E0001": "syntax error: a token where the grammar expects something else",
    "E0002": "a character that starts no token",
    "E0003": "a string not closed on its line",
    "E0004": "the file ends in the middle of a declaration",
    "E0005": "too many syntax errors in one file: the rest of it is not checked",
    "E0006": "brackets or `not`s nested too deep (more than 64 levels), more than 64 `??` in a row, "
             "or more than 256 levels in all",
    # literals and shapes (dsl/transform.py)
    "E0010": "invalid escape in a string",
    "E0011": "invalid duration",
    "E0012": "invalid number",
    "E0013": "invalid CIDR block",
    "E0014": "unknown type in a schema",
    "E0015": "a name of the wrong shape (a dotted name or glob where a plain name is needed)",
    "E0016": "a value outside an option's choices (`mode`, `jitter`, `on_exhausted`)",
    "E0017": "an option given twice in one block",
    "E0018": "an option not allowed in this block",
    "E0019": "a field or key given twice",
    "E0020": "a list or object where a single value is needed",
    "E0021": "an HTTP target's URL that is not an absolute http(s) URL",
    "E0022": "an `env(...)` name that is not an environment variable name",
    "E0023": "an HTTP header name or value that HTTP does not allow, or a header given twice",
    "E0024": "a header that interlock sets itself (`Content-Type`, `ce-*`, ...)",
    "E0025": "a credential written in the source (a secret header's value, a password in a URL)",
    "E0026": "an unknown HTTP error kind (`http.6xx`, `http.tiemout`, ...)",
    "E0027": "`headers` or `format` on a target that is not an HTTP target",
    "E0028": "a regular expression RE2 refuses (not one, or not runnable in linear time)",
    "W0010": "a comparison with `null`, which is never true (use `exists` / `missing`)",
    # transforms (dsl/transform.py)
    "E0030": "a template's braces that do not pair (`{` not closed, a lone `}`), or an empty `{}`",
    "E0031": "`...` that is not first in its object, or given twice",
    # names and files (dsl/project.py)
    "E0101": "a file or folder not read (missing, unreadable, not UTF-8, not a regular file, too large, "
             "outside the project's folder, of a pseudo filesystem)",
    "E0102": "import cycle",
    "E0103": "a name defined twice",
    "E0104": "unknown target",
    "E0105": "unknown retry policy",
    "E0106": "unknown dead letter",
    "E0107": "a name of another kind than the place needs",
    "E0108": "`defaults` or `unrouted` given more than once in a project",
    # compiler passes (compiler/)
    "E0201": "a field the event's schema lacks (in a predicate, `order by` or a transform)",
    "E0202": "a value of the wrong type for its field",
    "E0203": "an operator that does not apply to the field's type",
    "E0204": "a single-value test on a list field (use `any ... in [...]` or `contains`)",
    "E0205": "`any ... in [...]` or `any ... { ... }` on a field that is not a list",
    "E0206": "a timestamp that is not ISO 8601",
    "E0207": "a value test on an object (only `exists` and `missing` apply)",
    "E0208": "`order by` a field that does not hold one value per event",
    "E0209": "`any ... { ... }` on a list whose elements are not objects",
    "E0210": "a field the event's schema lacks, in test data",
    "E0211": "a value of the wrong type, in test data",
    "E0212": "a required field missing or `null`, in test data",
    "E0213": "a field the target does not receive, in an `expect ... with`",
    "E0214": "a value of the wrong type for what the target receives, in an `expect ... with`",
    "E0215": "`with exactly` leaving out a field the target always receives",
    "E0216": "`then TARGET emits TYPE` where the target's `emits` does not list TYPE",
    "E0217": "`then TARGET emits ...` where no `expect` since the last `send` names the target",
    "E0220": "`attempts 0`",
    "E0221": "a backoff `max` below its `initial` delay",
    "E0222": "an exponential backoff `factor` below 1",
    "E0223": "a `deadline` that ends before the first retry can start",
    "E0224": "an error kind in both `retry_on` and `give_up_on`",
    "W0225": "a sync target whose retries cannot all start before its policy's `deadline`",
    "E0226": "`timeout` of zero",
    "E0227": "`concurrency 0`",
    "E0228": "a `concurrency` above 10,000",
    "E0230": "an async target that can lose events (no dead letter, no `on_exhausted drop`)",
    "W0231": "a dead letter that `on_exhausted drop` leaves unused",
    # compiler passes: flow and predicates
    "E0240": "an event-flow cycle through `emits` (an event storm)",
    "W0241": "a target that no route or `choose` delivers to",
    "W0242": "a retry policy that nothing uses",
    "W0243": "a dead letter that nothing uses",
    "W0244": "a declared event that no route or `choose` handles",
    "W0245": "a glob in `on` that matches no declared event",
    "W0250": "a `when` that is never true",
    "W0251": "a `choose` branch that is never taken: earlier branches take every event it matches",
    # compiler passes: deliveries (compiler/check_deliveries.py)
    "E0260": "two deliveries that certainly bring one event to one target with different payloads",
    "W0261": "two deliveries that may bring one event to one target with different payloads",
}
