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

from interlock.compiler.payloads import Difference
from interlock.compiler.route_tests import Conflict, PayloadResult, StepResult
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

# What a file must not send to a terminal through a diagnostic: C0 controls (escape sequences
# that move the cursor, retitle the window, clear the screen; newlines that forge lines),
# DEL, C1 controls, and the bidirectional formatting characters that reorder what is shown.
_CONTROLS = (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x2028, 0x202F),
             *range(0x2066, 0x206A))
# In messages, paths and hints: escaped as Python writes them (`\x1b`, `\n`).
_ESCAPED = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _CONTROLS} | {
    0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
# In a source line shown: one visible character for one, so that carets stay under their span
# (a C0 control as its Unicode control picture, ␛ for ESC; the others as U+FFFD); tabs are expanded.
_PICTURED = {c: "\ufffd" for c in _CONTROLS} | {c: chr(0x2400 + c) for c in range(0x20)} | {0x7F: "\u2421"}
del _PICTURED[0x09]


def visible(text: str) -> str:
    """`text` with the characters a terminal would act on escaped (`\\x1b`, `\\n`): for
    anything from a file or the command line printed for people (JSON keeps exact text)."""
    return text.translate(_ESCAPED)


def _display(line: str, column: int) -> int:
    """The display column (0-based) of a 1-based character column: tabs expanded, and wide
    characters (CJK, emoji) counted as the two terminal cells they take."""
    return cell_len(line[: max(column - 1, 0)].expandtabs(TAB))


def _snippet(out: Text, span: Span, label: str, marker: str, style: str,
             sources: Mapping[str, SourceFile], width: int) -> None:
    source = sources.get(span.file)
    if source is None or span.line > len(source.line_starts):
        return
    raw = source.line_text(span.line).translate(_PICTURED)
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
    out.append(f": {visible(diagnostic.message)}\n", "bold")
    span = diagnostic.span
    out.append(f"{' ' * width}--> ", _GUTTER)
    out.append(f"{visible(span.file)}:{span.line}:{span.column}\n")
    _snippet(out, span, visible(diagnostic.label), "^", style, sources, width)
    for related in diagnostic.related:
        out.append(f"{' ' * width}::: ", _GUTTER)
        out.append(f"{visible(related.span.file)}:{related.span.line}:{related.span.column}\n")
        _snippet(out, related.span, visible(related.message), "-", _GUTTER, sources, width)
    if diagnostic.help:
        out.append(f"{' ' * width} |\n", _GUTTER)
        out.append(f"{' ' * width} = ", _GUTTER)
        out.append("help", "bold")
        out.append(f": {visible(diagnostic.help)}\n")
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


def _shown(value: Any, limit: int = 60) -> str:
    """A value as JSON on one line, cut to `limit` characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _step_title(result: StepResult) -> str:
    if result.emitted_by is not None:
        return f"step {result.step}, {result.emitted_by} emits {result.event_type}"
    return f"step {result.step}, send {result.event_type}"


def _payload_lines(console: Console, payload: PayloadResult) -> None:
    """Why one `expect TARGET with { ... }` failed: field by field, then the whole payload."""
    from rich.table import Table

    how = "with exactly" if payload.exact else "with"
    head = Text(f"    {payload.target} ", "bold") + Text(f"({how} {{ ... }}): ")
    if not payload.reached:
        console.print(head + Text("not reached, so it received nothing", "red"), soft_wrap=True)
        return
    console.print(head + Text(f"{_plural(len(payload.differences), 'field')} differ", "red"), soft_wrap=True)
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 6))
    table.add_column("field")
    table.add_column("expected")
    table.add_column("actual", style="red")
    for difference in payload.differences:
        expected = "(no other field)" if difference.kind == "unexpected" else (
            "missing or null" if difference.expected is None else _shown(difference.expected))
        actual = "missing" if difference.kind == "missing" else _shown(difference.actual)
        table.add_row(difference.path or "(payload)", expected, actual)
    console.print(table)
    console.print(Text(f"      received: {_shown(payload.actual, 240)}", "dim"), soft_wrap=True)


def _conflict_lines(console: Console, conflict: Conflict) -> None:
    routes = ", ".join(f"`{name}`" for name in conflict.routes)
    console.print(Text(f"    {conflict.target}", "bold") + Text(
        f" is reached by {routes} with different payloads; it receives the first one's "
        "(see W0261 in `interlock check`)", "red"), soft_wrap=True)
    for name, payload in zip(conflict.routes, conflict.payloads, strict=True):
        console.print(Text(f"      {name}: {_shown(payload, 240)}", "dim"), soft_wrap=True)


def print_test_results(console: Console, results: Sequence[StepResult]) -> None:
    """Each test step that failed: expected and actual targets side by side, then each payload
    that does not match, field by field, and each target reached with two payloads; then a count."""
    from rich.table import Table

    failed = [r for r in results if not r.passed]
    for result in failed:
        out = Text()
        out.append("FAIL", "bold red")
        out.append(f" {result.test}", "bold")
        out.append(f" ({_step_title(result)})  {result.span.file}:{result.span.line}:{result.span.column}")
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
        for payload in result.payloads:
            if not payload.passed:
                _payload_lines(console, payload)
        for conflict in result.conflicts:
            _conflict_lines(console, conflict)
    tests = {r.test for r in results}
    failed_tests = {r.test for r in failed}
    style = "bold red" if failed else "bold green"
    console.print(Text(f"{len(tests) - len(failed_tests)} tests ok, {len(failed_tests)} failing "
                       f"({len(results)} steps)", style))


def _difference_json(difference: Difference) -> dict[str, Any]:
    out: dict[str, Any] = {"path": difference.path, "kind": difference.kind}
    if difference.kind != "unexpected":
        out["expected"] = difference.expected
    if difference.kind != "missing":
        out["actual"] = difference.actual
    return out


def _step_json(r: StepResult) -> dict[str, Any]:
    return {
        "test": r.test, "step": r.step, "event_type": r.event_type, "emitted_by": r.emitted_by,
        "file": r.span.file, "line": r.span.line, "column": r.span.column, "passed": r.passed,
        "expected": sorted(r.expected), "actual": sorted(r.actual),
        "payloads": [
            {"target": p.target, "exact": p.exact, "passed": p.passed, "reached": p.reached,
             "expected": p.expected, "actual": p.actual,
             "differences": [_difference_json(d) for d in p.differences]}
            for p in r.payloads
        ],
        "conflicts": [
            {"target": c.target, "deliveries": [{"route": name, "payload": payload}
                                                for name, payload in zip(c.routes, c.payloads, strict=True)]}
            for c in r.conflicts
        ],
    }


def test_json(results: Sequence[StepResult]) -> str:
    return json.dumps({
        "steps": [_step_json(r) for r in results],
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
