"""Event schemas for the editor: written out, and the fields a path reaches in them.

A path is read as `compiler/check_types.py` reads it: in the schema of every closed event the
`on` patterns cover (`reference.event_type_matches`), a list met before a further step
standing for any of its elements, `any` ending the walk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from interlock.compiler.reference import event_type_matches
from interlock.dsl import Project, ast


def type_text(t: ast.Type, indent: str = "") -> str:
    if isinstance(t, ast.ScalarType):
        return t.name
    if isinstance(t, ast.ListType):
        return f"list<{type_text(t.item, indent)}>"
    return object_text(t, indent)


def object_text(t: ast.ObjectType, indent: str = "") -> str:
    if not t.fields:
        return "{}"
    inner = indent + "  "
    lines = [f"{inner}{f.name.text}: {type_text(f.type, inner)}{'?' if f.optional else ''}" for f in t.fields]
    return "{\n" + "\n".join(lines) + f"\n{indent}}}"


def event_text(decl: ast.EventDecl) -> str:
    if decl.schema is None:
        return f"event {decl.name.text}"
    return f"event {decl.name.text} {object_text(decl.schema)}"


def closed_events(project: Project, on: Iterable[str]) -> list[tuple[str, ast.ObjectType]]:
    patterns = list(on)
    return [(name, decl.schema) for name, decl in project.events.items()
            if decl.schema is not None and any(event_type_matches(p, name) for p in patterns)]


@attrs.frozen
class Reached:
    event: str
    type: ast.Type | None  # None: the path names no field of the event (or goes through `any`)
    optional: bool = False
    through_any: bool = False


def reach(schema: ast.ObjectType, parts: Sequence[str]) -> tuple[ast.Type | None, bool, bool]:
    """(the type `parts` leads to or None, whether the last field is optional, whether an `any` was met)."""
    current: ast.Type = schema
    optional = False
    for index, part in enumerate(parts):
        if index > 0:
            while isinstance(current, ast.ListType):
                current = current.item
        if isinstance(current, ast.ScalarType) and current.name == "any":
            return current, False, True
        if not isinstance(current, ast.ObjectType):
            return None, False, False
        found = next((f for f in current.fields if f.name.text == part), None)
        if found is None:
            return None, False, False
        current, optional = found.type, found.optional
    return current, optional, False


def field_types(project: Project, on: Iterable[str], parts: Sequence[str]) -> list[Reached]:
    found = []
    for event, schema in closed_events(project, on):
        reached, optional, through_any = reach(schema, parts)
        found.append(Reached(event, reached, optional, through_any))
    return found


def fields_below(project: Project, on: Iterable[str], parts: Sequence[str]) -> dict[str, ast.Field]:
    """The fields one step below `parts` (the top level for no parts), in every closed event of `on`."""
    fields: dict[str, ast.Field] = {}
    for _, schema in closed_events(project, on):
        reached, _, _ = reach(schema, parts) if parts else (schema, False, False)
        while isinstance(reached, ast.ListType):
            reached = reached.item
        if isinstance(reached, ast.ObjectType):
            for field in reached.fields:
                fields.setdefault(field.name.text, field)
    return fields
