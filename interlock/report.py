"""Rendering diagnostics for people (rich, in the shape of rustc and ruff) and for machines (JSON).

This is the one place diagnostics are turned into text; everything before it only
collects `Diagnostic` values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from interlock.compiler.route_tests import StepResult
from interlock.dsl import Diagnostic, Severity, SourceFile, Span

TAB = 4
_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow"}
_GUTTER = "bold blue"


def _display(line: str, column: int) -> int:
    """The display column (0-based) of a 1-based character column: tabs expanded, and wide
    characters (CJK, emoji) counted as the two terminal cells they take."""
    return cell_len(line[: max(column - 1, 0)].expandtabs(TAB))


def _snippet(out: Text, span: Span, label: str, marker: str, style: str,
             sources: Mapping[str, SourceFile], width: int) -> None:
    source = sources.get(span.file)
    if source is None or span.line > len(source.line_starts):
        return
    raw = source.line_text(span.line)
    shown = raw.expandtabs(TAB)
    start = _display(raw, span.column)
    end = cell_len(shown) if span.end_line > span.line else _display(raw, span.end_column)
    length = max(end - start, 1)
    pad = " " * width
    out.append(f"{pad} |\n", _GUTTER)
    out.append(f"{span.line:>{width}} | ", _GUTTER)
    out.append(shown + "\n")
    out.append(f"{pad} | ", _GUTTER)
    out.append(" " * start + marker * length, style)
    if label:
        out.append(" " + label, style)
    out.append("\n")


def format_diagnostic(diagnostic: Diagnostic, sources: Mapping[str, SourceFile]) -> Text:
    """One diagnostic as rich text: header, location, source line with carets, help."""
    spans = [diagnostic.span, *(r.span for r in diagnostic.related)]
    width = max(len(str(s.line)) for s in spans)
    style = _STYLE[diagnostic.severity]
    out = Text()
    out.append(f"{diagnostic.severity.value}[{diagnostic.code}]", style)
    out.append(f": {diagnostic.message}\n", "bold")
    span = diagnostic.span
    out.append(f"{' ' * width}--> ", _GUTTER)
    out.append(f"{span.file}:{span.line}:{span.column}\n")
    _snippet(out, span, diagnostic.label, "^", style, sources, width)
    for related in diagnostic.related:
        out.append(f"{' ' * width}::: ", _GUTTER)
        out.append(f"{related.span.file}:{related.span.line}:{related.span.column}\n")
        _snippet(out, related.span, related.message, "-", _GUTTER, sources, width)
    if diagnostic.help:
        out.append(f"{' ' * width} |\n", _GUTTER)
        out.append(f"{' ' * width} = ", _GUTTER)
        out.append("help", "bold")
        out.append(f": {diagnostic.help}\n")
    return out


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_line(diagnostics: Sequence[Diagnostic], files: int) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    return f"found {_plural(errors, 'error')} and {_plural(warnings, 'warning')} in {_plural(files, 'file')}"


def print_text(console: Console, diagnostics: Sequence[Diagnostic], sources: Mapping[str, SourceFile],
               files: int, max_errors: int = 0) -> None:
    """Every diagnostic (errors beyond `max_errors` left out, when it is set), then a count."""
    shown_errors = 0
    hidden = 0
    for diagnostic in diagnostics:
        if diagnostic.is_error:
            if max_errors and shown_errors >= max_errors:
                hidden += 1
                continue
            shown_errors += 1
        console.print(format_diagnostic(diagnostic, sources), soft_wrap=True)
    if diagnostics:
        line = summary_line(diagnostics, files)
        if hidden:
            line += f" ({hidden} not shown: --max-errors {max_errors})"
        console.print(Text(line, "bold"), soft_wrap=True)


def to_json(diagnostic: Diagnostic) -> dict[str, Any]:
    span = diagnostic.span
    return {
        "code": diagnostic.code,
        "severity": diagnostic.severity.value,
        "message": diagnostic.message,
        "file": span.file,
        "line": span.line,
        "column": span.column,
        "end_line": span.end_line,
        "end_column": span.end_column,
        "label": diagnostic.label,
        "help": diagnostic.help,
        "related": [
            {"message": r.message, "file": r.span.file, "line": r.span.line, "column": r.span.column,
             "end_line": r.span.end_line, "end_column": r.span.end_column}
            for r in diagnostic.related
        ],
    }


def json_report(diagnostics: Sequence[Diagnostic], files: int, max_errors: int = 0) -> str:
    kept: list[Diagnostic] = []
    errors = 0
    for diagnostic in diagnostics:
        if diagnostic.is_error:
            errors += 1
            if max_errors and errors > max_errors:
                continue
        kept.append(diagnostic)
    report = {
        "diagnostics": [to_json(d) for d in kept],
        "summary": {
            "errors": errors,
            "warnings": len(diagnostics) - errors,
            "files": files,
            "shown": len(kept),
        },
    }
    return json.dumps(report, indent=2, ensure_ascii=False)


def _names(names: frozenset[str]) -> str:
    return ", ".join(sorted(names)) if names else "nothing"


def print_test_results(console: Console, results: Sequence[StepResult]) -> None:
    """One line per test step that failed, with expected and actual side by side, then a count."""
    from rich.table import Table

    failed = [r for r in results if not r.passed]
    for result in failed:
        out = Text()
        out.append("FAIL", "bold red")
        out.append(f" {result.test}", "bold")
        out.append(f" (step {result.step}, send {result.event_type})  {result.span.file}:{result.span.line}:"
                   f"{result.span.column}")
        console.print(out, soft_wrap=True)
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 4))
        table.add_column("expected")
        table.add_column("actual")
        table.add_column("missing", style="red")
        table.add_column("unexpected", style="red")
        table.add_row(_names(result.expected), _names(result.actual),
                      _names(result.missing) if result.missing else "",
                      _names(result.unexpected) if result.unexpected else "")
        console.print(table)
    tests = {r.test for r in results}
    failed_tests = {r.test for r in failed}
    style = "bold red" if failed else "bold green"
    console.print(Text(f"{len(tests) - len(failed_tests)} tests ok, {len(failed_tests)} failing "
                       f"({len(results)} steps)", style))


def test_json(results: Sequence[StepResult]) -> str:
    return json.dumps({
        "steps": [
            {"test": r.test, "step": r.step, "event_type": r.event_type, "file": r.span.file,
             "line": r.span.line, "column": r.span.column, "passed": r.passed,
             "expected": sorted(r.expected), "actual": sorted(r.actual)}
            for r in results
        ],
        "summary": {"steps": len(results), "failed": sum(1 for r in results if not r.passed)},
    }, indent=2, ensure_ascii=False)
