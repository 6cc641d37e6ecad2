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
    "E0006": "brackets or `not`s nested too deep (more than 64 levels)",
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
    "W0010": "a comparison with `null`, which is never true (use `exists` / `missing`)",
    # names and files (dsl/project.py)
    "E0101": "a file that cannot be read (missing, unreadable, or not UTF-8)",
    "E0102": "import cycle",
    "E0103": "a name defined twice",
    "E0104": "unknown target",
    "E0105": "unknown retry policy",
    "E0106": "unknown dead letter",
    "E0107": "a name of another kind than the place needs",
    "E0108": "`defaults` or `unrouted` given more than once in a project",
}
