"""What hovering a name or a field path shows, as Markdown.

- a target: its effective options, each with its origin (`origins.py`);
- an event: its schema, and the routes and chooses whose `on` covers it;
- a field in a path: its type in each closed event the route's `on` covers;
- a route or choose: its `on`, condition and targets, and how it is compiled (its rules and
  their anchors, `compiler/tables.py`) when the project has no errors;
- a retry policy or dead letter: its options and who uses it;
- an import: the file it reads.
"""

from __future__ import annotations

from interlock.compiler.reference import event_type_matches
from interlock.dsl import Project, ast

from .index import ImportAt, Occurrence, PathAt
from .origins import explain_target, ms_text
from .schemas import event_text, field_types, type_text
from .state import Analysis


def hover(analysis: Analysis, file: str, offset: int) -> str | None:
    project = analysis.project
    if project is None:
        return None
    occurrence = analysis.index.at(file, offset)
    if occurrence is not None:
        return _named(analysis, project, occurrence)
    path = analysis.index.path_at(file, offset)
    if path is not None:
        return _field(project, path, offset)
    imported = analysis.index.import_at(file, offset)
    if imported is not None:
        return _import(analysis, imported)
    return None


def _code(text: str) -> str:
    return f"```route\n{text}\n```"


def _named(analysis: Analysis, project: Project, occurrence: Occurrence) -> str | None:
    name = occurrence.name
    if occurrence.namespace == "event":
        return _event(project, name)
    if occurrence.namespace == "test":
        return f"test `{name}`"
    decl = analysis.index.definitions(occurrence.namespace, name)
    found = decl[0].decl if decl else None
    if isinstance(found, ast.TargetDecl):
        return _target(project, found)
    if isinstance(found, (ast.RouteDecl, ast.ChooseDecl)):
        return _route(analysis, project, found)
    if isinstance(found, ast.RetryPolicy):
        return _retry(project, found)
    if isinstance(found, (ast.DeadLetterDecl, ast.UnroutedDecl)):
        return _dead_letter(project, name)
    return f"{occurrence.kind} `{name}`: not defined in this project"


def _target(project: Project, decl: ast.TargetDecl) -> str:
    rows = [f"| `{v.option}` | `{v.value}` | {v.origin} |" for v in explain_target(project, decl)]
    return "\n".join([f"**target** `{decl.name.text}`", "", "| option | value | from |", "|---|---|---|", *rows])


def _event(project: Project, name: str) -> str:
    decl = project.events.get(name)
    if decl is None:
        head = f"**event** `{name}`: not declared (an open event: its data is not checked)"
    elif decl.schema is None:
        head = f"**event** `{name}`: declared without a schema (open: its data is not checked)\n\n" \
               + _code(event_text(decl))
    else:
        head = f"**event** `{name}`\n\n" + _code(event_text(decl))
    routed: list[ast.RouteDecl | ast.ChooseDecl] = [*project.routes.values(), *project.chooses.values()]
    handlers = [d.name.text for d in routed if any(event_type_matches(p.text, name) for p in d.on)]
    if handlers:
        head += "\n\nhandled by " + ", ".join(f"`{h}`" for h in handlers)
    return head


def _field(project: Project, at: PathAt, offset: int) -> str:
    path = at.path
    index = next((i for i in range(len(path.parts)) if offset <= path.part_span(i).end), len(path.parts) - 1)
    parts = (*at.prefix, *path.parts[:index + 1])
    shown = ".".join(parts)
    found = field_types(project, [p.text for p in at.on], parts)
    if not found:
        return f"field `{shown}`: no closed event schema covers this route's `on` (the data is not checked)"
    lines = [f"**field** `{shown}`", ""]
    for reached in found:
        if reached.type is None:
            lines.append(f"- `{reached.event}`: no such field")
        else:
            optional = " (optional)" if reached.optional else ""
            kind = "any (not checked below)" if reached.through_any else type_text(reached.type)
            lines.append(f"- `{reached.event}`: `{kind}`{optional}")
    return "\n".join(lines)


def _condition(project: Project, expr: ast.Expr) -> str:
    source = project.sources.get(expr.span.file)
    return " ".join(source.text[expr.span.start:expr.span.end].split()) if source else "..."


def _deliveries(deliveries: tuple[ast.Delivery, ...]) -> str:
    return ", ".join(d.target.text + (" with { ... }" if d.transform else "") for d in deliveries)


def _route(analysis: Analysis, project: Project, decl: ast.RouteDecl | ast.ChooseDecl) -> str:
    kind = "route" if isinstance(decl, ast.RouteDecl) else "choose"
    lines = [f"**{kind}** `{decl.name.text}`", "", f"- on: `{', '.join(p.text for p in decl.on)}`"]
    if isinstance(decl, ast.RouteDecl):
        lines.append(f"- when: `{_condition(project, decl.when)}`" if decl.when else "- when: always")
        lines.append(f"- to: {_deliveries(decl.to)}")
    else:
        for branch in decl.branches:
            when = f"when `{_condition(project, branch.when)}`" if branch.when else "otherwise"
            lines.append(f"- {when} → {_deliveries(branch.to)}")
    lines += _compiled(analysis, decl.name.text)
    return "\n".join(lines)


def _compiled(analysis: Analysis, name: str) -> list[str]:
    dispatch = analysis.dispatch
    if dispatch is None:
        return ["", "(not compiled: the project has errors)"]
    number = next((i for i, r in enumerate(dispatch["routes"]) if r["name"] == name), None)
    if number is None:
        return []
    lines = ["", "compiled:"]
    if any(u[0] == number for u in dispatch["unconditional"]):
        lines.append("- unconditional: every event of its types")
    for rule_id, rule in enumerate(dispatch["rules"]):
        if rule["route"] != number:
            continue
        branch = "" if rule["branch"] is None else f" (branch {rule['branch'] + 1})"
        anchor = rule.get("anchor")
        checks = len(rule["check"])
        rest = f", then {checks} check{'s' if checks != 1 else ''}" if checks else ""
        if anchor is None:
            lines.append(f"- rule {rule_id}{branch}: scanned (no indexable test){rest}")
        else:
            lines.append(f"- rule {rule_id}{branch}: {anchor['kind']} index on `{'.'.join(anchor['path'])}`{rest}")
    tables = {dispatch["types"][t] for t in dispatch["types"]}
    types = [t for t in dispatch["types"] if _in_table(dispatch, dispatch["types"][t], number)]
    if types:
        lines.append(f"- in the tables of {', '.join(f'`{t}`' for t in types)} ({len(tables)} distinct tables)")
    return lines


def _in_table(dispatch: dict[str, object], table_id: int, route: int) -> bool:
    table = dispatch["tables"][table_id]  # type: ignore[index]
    rules = dispatch["rules"]
    if any(u[0] == route for u in table["unconditional"]):
        return True
    ids = [r for index in table["index"] for kind in ("eq", "prefix", "folded", "range")
           for *_, r in index.get(kind, [])] + list(table["scan"])
    return any(rules[r]["route"] == route for r in ids)  # type: ignore[index]


def _retry(project: Project, decl: ast.RetryPolicy) -> str:
    from interlock.compiler.policies import resolve_policy

    policy = resolve_policy(decl)
    backoff = policy.backoff
    users = [t.name.text for t in project.targets.values()
             if isinstance(t.options.retry, ast.Name) and t.options.retry.text == policy.name]
    lines = [f"**retry policy** `{policy.name}`", "",
             f"- attempts: {policy.attempts}{'' if decl.attempts else ' (built-in default)'}",
             f"- backoff: {backoff.kind} {ms_text(backoff.initial_ms)}{'' if decl.backoff else ' (built-in default)'}",
             f"- jitter: {policy.jitter}",
             f"- deadline: {ms_text(policy.deadline_ms) if policy.deadline_ms is not None else 'none'}"]
    if project.defaults and isinstance(project.defaults.options.retry, ast.Name) \
            and project.defaults.options.retry.text == policy.name:
        users.append("defaults")
    lines.append(f"- used by: {', '.join(f'`{u}`' for u in users) if users else 'nothing'}")
    return "\n".join(lines)


def _dead_letter(project: Project, name: str) -> str:
    decl = project.dead_letters.get(name)
    retain = decl.retain.text if decl is not None and decl.retain is not None else "not set"
    users = [t.name.text for t in project.targets.values()
             if t.options.dead_letter is not None and t.options.dead_letter.text == name]
    if project.unrouted is not None and project.unrouted.dead_letter.text == name:
        users.append("unrouted")
    return "\n".join([f"**dead letter** `{name}`", "", f"- retain: {retain}",
                      f"- used by: {', '.join(f'`{u}`' for u in users) if users else 'nothing'}"])


def _import(analysis: Analysis, imported: ImportAt) -> str:
    read = analysis.source(imported.file) is not None
    return f"**import** `{imported.file}`" + ("" if read else " (not read)")
