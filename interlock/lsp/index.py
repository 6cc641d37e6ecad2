"""Every name of a project and where it is written: definitions, references and imports.

The namespaces are the resolver's (dsl/project.py): event types, tests, and one for targets,
retry policies, dead letters, routes and chooses together. An occurrence's `kind` is what
its place names (the declaration's kind at a definition, what the place needs at a
reference: `to billing` is a target). Globs in `on` name no single event and are left out.

Also kept: each field path with the `on` patterns whose schemas it is read in (`when`, a
transform, `order by`), for hover and for completion.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import attrs

from interlock.dsl import Project, Span, ast

EVENT, NAMES, TEST = "event", "name", "test"

KINDS: dict[type, str] = {
    ast.EventDecl: "event",
    ast.TargetDecl: "target",
    ast.RetryPolicy: "retry policy",
    ast.DeadLetterDecl: "dead letter",
    ast.RouteDecl: "route",
    ast.ChooseDecl: "choose",
    ast.TestDecl: "test",
}


@attrs.frozen
class Occurrence:
    namespace: str  # EVENT, NAMES or TEST
    kind: str  # "target", "retry policy", ... (KINDS' values)
    name: str
    span: Span
    definition: bool
    decl: ast.Decl | None = None  # at a definition


@attrs.frozen
class ImportAt:
    span: Span
    file: str  # the imported file, as the loader names it (joined to the importing file's folder)


@attrs.frozen
class PathAt:
    """A field path, read in the schemas of the events `on` covers, under `prefix` (the path of
    the list an `any PATH { ... }` is inside)."""

    path: ast.Path
    on: tuple[ast.EventPattern, ...]
    prefix: tuple[str, ...] = ()


@attrs.define
class Index:
    occurrences: dict[str, list[Occurrence]] = attrs.Factory(dict)  # by file, in order of position
    imports: dict[str, list[ImportAt]] = attrs.Factory(dict)
    paths: dict[str, list[PathAt]] = attrs.Factory(dict)
    delivering: dict[str, list[str]] = attrs.Factory(dict)  # target -> the `on` patterns of who delivers to it

    def at(self, file: str, offset: int) -> Occurrence | None:
        """The occurrence whose span holds `offset` (its end included: a cursor just after a name)."""
        return _containing(self.occurrences.get(file, []), offset, lambda o: o.span)

    def import_at(self, file: str, offset: int) -> ImportAt | None:
        return _containing(self.imports.get(file, []), offset, lambda i: i.span)

    def path_at(self, file: str, offset: int) -> PathAt | None:
        return _containing(self.paths.get(file, []), offset, lambda p: p.path.span)

    def all(self) -> Iterator[Occurrence]:
        for found in self.occurrences.values():
            yield from found

    def same(self, occurrence: Occurrence) -> list[Occurrence]:
        """Every occurrence of the name of `occurrence`, definitions first."""
        found = [o for o in self.all() if o.namespace == occurrence.namespace and o.name == occurrence.name]
        return sorted(found, key=lambda o: not o.definition)

    def definitions(self, namespace: str, name: str) -> list[Occurrence]:
        return [o for o in self.all() if o.definition and o.namespace == namespace and o.name == name]


T = TypeVar("T")


def _containing(items: Sequence[T], offset: int, span_of: Callable[[T], Span]) -> T | None:
    for item in items:
        span = span_of(item)
        if span.start <= offset <= span.end:
            return item
    return None


def build_index(project: Project) -> Index:
    index = Index()
    builder = _Builder(project, index)
    for module in project.modules:
        for decl in module.decls:
            builder.decl(module, decl)
    for found in index.occurrences.values():
        found.sort(key=lambda o: o.span.start)
    index.delivering = {target: [p.text for p in on] for target, on in builder.delivering.items()}
    return index


class _Builder:
    def __init__(self, project: Project, index: Index) -> None:
        self.project = project
        self.index = index
        self.seen: set[tuple[str, int]] = set()
        self.delivering: dict[str, list[ast.EventPattern]] = {}  # target -> the `on` of who delivers to it
        routed: list[tuple[tuple[ast.EventPattern, ...], Iterable[ast.Delivery]]] = [
            (r.on, r.to) for r in project.routes.values()]
        routed += [(c.on, [d for b in c.branches for d in b.to]) for c in project.chooses.values()]
        for on, deliveries in routed:
            for delivery in deliveries:
                self.delivering.setdefault(delivery.target.text, []).extend(on)

    def add(self, namespace: str, kind: str, name: ast.Name | ast.EventPattern, definition: bool = False,
            decl: ast.Decl | None = None) -> None:
        key = (name.span.file, name.span.start)
        if key in self.seen:  # (a target named in an `expect` and again with its payload)
            return
        self.seen.add(key)
        self.index.occurrences.setdefault(name.span.file, []).append(
            Occurrence(namespace, kind, name.text, name.span, definition, decl))

    def path(self, path: ast.Path, on: tuple[ast.EventPattern, ...], prefix: tuple[str, ...] = ()) -> None:
        self.index.paths.setdefault(path.span.file, []).append(PathAt(path, on, prefix))

    def decl(self, module: ast.Module, decl: ast.Decl) -> None:
        if isinstance(decl, ast.Import):
            file = os.path.normpath(os.path.join(os.path.dirname(module.path), decl.path))
            self.index.imports.setdefault(decl.span.file, []).append(ImportAt(decl.span, file))
        elif isinstance(decl, ast.EventDecl):
            self.add(EVENT, "event", decl.name, True, decl)
        elif isinstance(decl, ast.RetryPolicy):
            if decl.name is not None:
                self.add(NAMES, "retry policy", decl.name, True, decl)
        elif isinstance(decl, ast.DeadLetterDecl):
            self.add(NAMES, "dead letter", decl.name, True, decl)
        elif isinstance(decl, ast.TargetDecl):
            self.add(NAMES, "target", decl.name, True, decl)
            on = tuple(self.delivering.get(decl.name.text, ()))
            self.options(decl.options, on)
        elif isinstance(decl, ast.DefaultsDecl):
            self.options(decl.options, ())
        elif isinstance(decl, ast.UnroutedDecl):
            implicit = self.project.dead_letters.get(decl.dead_letter.text)
            defines = implicit is not None and implicit.name.span == decl.dead_letter.span
            self.add(NAMES, "dead letter", decl.dead_letter, defines, decl if defines else None)
        elif isinstance(decl, ast.RouteDecl):
            self.add(NAMES, "route", decl.name, True, decl)
            self.routed(decl.on, [decl.when], decl.to)
        elif isinstance(decl, ast.ChooseDecl):
            self.add(NAMES, "choose", decl.name, True, decl)
            self.routed(decl.on, [b.when for b in decl.branches], [d for b in decl.branches for d in b.to])
        elif isinstance(decl, ast.TestDecl):
            self.add(TEST, "test", decl.name, True, decl)
            for step in decl.steps:
                if step.send.emitted_by is not None:
                    self.add(NAMES, "target", step.send.emitted_by)
                self.add(EVENT, "event", step.send.event_type)
                for target in step.expect.targets:
                    self.add(NAMES, "target", target)
                for payload in step.expect.payloads:
                    self.add(NAMES, "target", payload.target)

    def options(self, options: ast.TargetOptions, on: tuple[ast.EventPattern, ...]) -> None:
        if isinstance(options.retry, ast.Name):
            self.add(NAMES, "retry policy", options.retry)
        if options.dead_letter is not None:
            self.add(NAMES, "dead letter", options.dead_letter)
        for emitted in options.emits or ():
            self.add(EVENT, "event", emitted)
        if options.order_by is not None:
            self.path(options.order_by, on)

    def routed(self, on: tuple[ast.EventPattern, ...], whens: Iterable[ast.Expr | None],
               deliveries: Iterable[ast.Delivery]) -> None:
        for pattern in on:
            if not pattern.is_glob:
                self.add(EVENT, "event", pattern)
        for when in whens:
            if when is not None:
                self.expr(when, on, ())
        for delivery in deliveries:
            self.add(NAMES, "target", delivery.target)
            if delivery.transform is not None:
                self.transform(delivery.transform, on)

    def expr(self, expr: ast.Expr, on: tuple[ast.EventPattern, ...], prefix: tuple[str, ...]) -> None:
        if isinstance(expr, (ast.And, ast.Or)):
            for operand in expr.operands:
                self.expr(operand, on, prefix)
        elif isinstance(expr, ast.Not):
            self.expr(expr.operand, on, prefix)
        else:
            self.path(expr.path, on, prefix)
            if isinstance(expr, ast.AnyElement):
                self.expr(expr.condition, on, (*prefix, *expr.path.parts))

    def transform(self, transform: ast.Transform, on: tuple[ast.EventPattern, ...]) -> None:
        for entry in transform.entries:
            self.value(entry.value, on)

    def value(self, value: ast.TransformValue, on: tuple[ast.EventPattern, ...]) -> None:
        if isinstance(value, ast.Path):
            self.path(value, on)
        elif isinstance(value, ast.Default):
            self.path(value.path, on)
            self.value(value.fallback, on)
        elif isinstance(value, ast.Template):
            for part in value.parts:
                if isinstance(part, ast.Path):
                    self.path(part, on)
        elif isinstance(value, ast.Transform):
            self.transform(value, on)
