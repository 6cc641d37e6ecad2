"""`interlock check`'s diagnostics as LSP diagnostics, grouped by the file they are in."""

from __future__ import annotations

from collections.abc import Callable

from lsprotocol import types

from interlock.dsl import Diagnostic, Severity, SourceFile, Span

from .positions import UTF16, to_range

SEVERITIES = {Severity.ERROR: types.DiagnosticSeverity.Error, Severity.WARNING: types.DiagnosticSeverity.Warning}


def _range(sources: Callable[[str], SourceFile | None], span: Span, encoding: str) -> types.Range:
    source = sources(span.file)
    if source is None:  # a file not read: its first line
        return types.Range(types.Position(0, 0), types.Position(0, 0))
    return to_range(source, span, encoding)


def to_lsp(diagnostic: Diagnostic, sources: Callable[[str], SourceFile | None], uri_of: Callable[[str], str],
           encoding: str = UTF16) -> types.Diagnostic:
    """The message as `interlock check` gives it, the label and the help on lines of their own."""
    message = diagnostic.message
    if diagnostic.label:
        message += f"\n{diagnostic.label}"
    if diagnostic.help:
        message += f"\nhelp: {diagnostic.help}"
    related = [types.DiagnosticRelatedInformation(types.Location(uri_of(r.span.file),
                                                                 _range(sources, r.span, encoding)), r.message)
               for r in diagnostic.related]
    return types.Diagnostic(
        range=_range(sources, diagnostic.span, encoding),
        message=message,
        severity=SEVERITIES[diagnostic.severity],
        code=diagnostic.code,
        source="interlock",
        related_information=related or None,
    )


def by_file(diagnostics: list[Diagnostic], sources: Callable[[str], SourceFile | None],
            uri_of: Callable[[str], str], encoding: str = UTF16) -> dict[str, list[types.Diagnostic]]:
    """The diagnostics of each file (by URI), in `check`'s order."""
    grouped: dict[str, list[types.Diagnostic]] = {}
    for diagnostic in diagnostics:
        grouped.setdefault(uri_of(diagnostic.span.file), []).append(
            to_lsp(diagnostic, sources, uri_of, encoding))
    return grouped
