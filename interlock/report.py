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
from rich.tree import Tree

from interlock.compiler.route_tests import StepResult
from interlock.dsl import Diagnostic, Severity, SourceFile, Span
from interlock.runtime.explain import RouteExplanation, Verdict
from interlock.runtime.schema import SchemaProblem

TAB = 4
# A source line longer than this is shown as a window around the span, CONTEXT characters on
# each side at most.
LONG_LINE = 200
CONTEXT = 60
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
    first = span.column - 1  # 0-based, in characters
    last = len(raw) if span.end_line > span.line else max(span.end_column - 1, first + 1)
    cut_before = cut_after = ""
    if len(raw) > LONG_LINE:  # a window of the line around the span: output stays linear in the input
        lo = max(first - CONTEXT, 0)
        hi = min(max(last, first + 1) + CONTEXT, len(raw), lo + LONG_LINE)
        cut_before, cut_after = ("..." if lo > 0 else ""), ("..." if hi < len(raw) else "")
        raw, first, last = raw[lo:hi], first - lo, min(last, hi) - lo
    shown = cut_before + raw.expandtabs(TAB) + cut_after
    start = len(cut_before) + _display(raw, first + 1)
    end = len(cut_before) + _display(raw, last + 1)
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


def _seen(values: tuple[Any, ...] | None) -> str:
    if values is None:
        return ""
    if not values:
        return "  saw nothing (missing)"
    shown = ", ".join(json.dumps(v, ensure_ascii=False) for v in values[:5])
    return f"  saw {shown}" + (" ..." if len(values) > 5 else "")


def _verdict_node(parent: Tree, verdict: Verdict, suffix: str = "") -> None:
    mark = Text("✓ ", "bold green") if verdict.verdict else Text("✗ ", "bold red")
    label = mark + Text(verdict.text) + Text(_seen(verdict.seen), "dim") + Text(suffix, "bold")
    node = parent.add(label)
    for part in verdict.parts:
        _verdict_node(node, part)


def _schema_node(tree: Tree, event_type: str, problems: Sequence[SchemaProblem], closed: bool) -> None:
    """Whether `publish` takes the event, and if not, every reason."""
    if not problems:
        why = f"the data fits the schema of {event_type}" if closed else f"{event_type} has no schema: any data"
        tree.add(Text("✓ ", "bold green") + Text("publish takes it", "bold") + Text(f": {why}", "dim"))
        return
    node = tree.add(Text("✗ ", "bold red") + Text("publish refuses it", "bold") + Text(
        f": {_plural(len(problems), 'problem')}" + (f" with the schema of {event_type}" if closed else "")))
    for problem in problems:
        node.add(Text("✗ ", "bold red") + Text(problem.message))


def explain_tree(event_type: str, targets: frozenset[str], explanations: Sequence[RouteExplanation],
                 problems: Sequence[SchemaProblem] = (), closed: bool = False) -> Tree:
    """A rich tree: the event, whether `publish` takes it (`problems`: why not; `closed`: its
    type has a schema), then each route or choose with its verdicts and targets."""
    header = Text(event_type, "bold") + Text(" -> ") + Text(_names(targets), "bold green" if targets else "bold red")
    if problems:
        header += Text("  (would be refused by publish)", "bold red")
    tree = Tree(header)
    _schema_node(tree, event_type, problems, closed)
    if not explanations:
        tree.add(Text("no route or choose takes this event type: it is unrouted", "yellow"))
    for e in explanations:
        mark = Text("✓ ", "bold green") if e.matched else Text("✗ ", "bold red")
        where = f"  {e.at[0]}:{e.at[1]}:{e.at[2]}"
        reached = f" -> {_names(e.targets)}" if e.matched else ""
        node = tree.add(mark + Text(f"{e.kind} {e.name}", "bold") + Text(reached) + Text(where, "dim"))
        if e.kind == "route":
            if e.condition is None:
                node.add(Text("no `when`: always", "dim"))
            else:
                _verdict_node(node, e.condition)
            continue
        for number, branch in enumerate(e.branches):
            won = " (chosen)" if number == e.chosen else ""
            if branch is None:
                node.add(Text(f"otherwise{won}", "bold" if won else "dim"))
            elif e.chosen is None or number <= e.chosen:
                _verdict_node(node, branch, won)
            else:
                node.add(Text(f"not tried: {branch.text}", "dim"))
    return tree


def _verdict_json(verdict: Verdict) -> dict[str, Any]:
    out: dict[str, Any] = {"text": verdict.text, "line": verdict.at[0], "column": verdict.at[1],
                           "verdict": verdict.verdict}
    if verdict.seen is not None:
        out["seen"] = list(verdict.seen)
    if verdict.parts:
        out["parts"] = [_verdict_json(p) for p in verdict.parts]
    return out


def explain_json(event_type: str, targets: frozenset[str], explanations: Sequence[RouteExplanation],
                 problems: Sequence[SchemaProblem] = (), closed: bool = False) -> str:
    return json.dumps({
        "type": event_type,
        "accepted": not problems,
        "schema": closed,
        "problems": [{"path": p.path, "message": p.message} for p in problems],
        "targets": sorted(targets),
        "routes": [
            {"name": e.name, "kind": e.kind, "file": e.at[0], "line": e.at[1], "column": e.at[2],
             "matched": e.matched, "targets": sorted(e.targets),
             **({"condition": _verdict_json(e.condition)} if e.condition else {}),
             **({"branches": [_verdict_json(b) if b else None for b in e.branches], "chosen": e.chosen}
                if e.kind == "choose" else {})}
            for e in explanations
        ],
    }, indent=2, ensure_ascii=False, default=str)
