"""Test steps checked against the project: what `expect TARGET with { ... }` says a target
receives, and which target a `then TARGET emits TYPE { ... }` step says publishes an event.

(The data of every step's event is checked against its schema by `check_types`, E0210-E0212;
whether a test's expectations hold is for `interlock test`.)

What a target receives from an event of type E is known from the deliveries that can bring E
to it (of every route and `choose` whose `on` matches E): the event's data, whose shape is E's
closed schema (nothing is known of an open event), or what a delivery's `with { ... }` makes:
an object of its keys, a copied path of the type it has in E's schema (a list of them when
the path goes through a list), a constant of its own type. When the deliveries make different
shapes, a problem is reported only when it is one in every shape. Reports:

- `E0213` a field that the target does not receive, in an expected payload;
- `E0214` a value of the wrong type for what the target receives (and `E0206` a timestamp
  that is not ISO 8601, which no received timestamp can equal);
- `E0215` `with exactly` leaving out a field that the target always receives;
- `E0216` `then TARGET emits TYPE` where the target's `emits` does not list TYPE;
- `E0217` `then TARGET emits ...` where no `expect` since the last `send` names the target.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from interlock.dsl import Diagnostic, Project, Related, Span, ast
from interlock.dsl.diagnostics import error
from interlock.dsl.transform import did_you_mean

from .check_types import _fits, _is_timestamp, _join, _type_text, literal_kind
from .payloads import canonical
from .reference import event_type_matches
from .tables import _transform_json


@attrs.frozen
class _Problem:
    code: str
    span: Span
    message: str
    label: str
    help: str


@attrs.frozen
class _Shape:
    """What a target receives from one kind of delivery of an event: its type (None: not known),
    and where that is written."""

    event: str
    type: ast.Type | None
    related: Related


def check_tests(project: Project) -> list[Diagnostic]:
    """Expected payloads (`E0213`-`E0215`, `E0206`) and emitting targets (`E0216`, `E0217`)."""
    diagnostics: list[Diagnostic] = []
    shapes = _Shapes(project)
    for test in project.tests.values():
        chain: set[str] = set()  # targets expected since the last `send`
        for step in test.steps:
            send = step.send
            if send.emitted_by is None:
                chain = set()
            else:
                diagnostics.extend(_emitter(project, send, send.emitted_by, chain))
            chain.update(t.text for t in step.expect.targets)
            for expectation in step.expect.payloads:
                diagnostics.extend(_payload(shapes.of(send.event_type.text, expectation.target.text), expectation))
    return diagnostics


# ---- then TARGET emits TYPE ----------------------------------------------------------


def _emitter(project: Project, send: ast.Send, target: ast.Name, chain: set[str]) -> list[Diagnostic]:
    found = []
    if target.text not in chain:
        found.append(error(
            "E0217", f"`{target.text}` emits here, but no step since the last `send` expects it", target.span,
            "not reached above",
            f"a target emits what it was sent: name `{target.text}` in an `expect` above (since the last `send`), "
            "or start from an event that reaches it"))
    decl = project.targets[target.text]
    emits = decl.options.emits or ()
    event = send.event_type.text
    if all(entry.text != event for entry in emits):
        listed = ", ".join(f"`{e.text}`" for e in emits)
        said = f"it emits {listed}" if emits else "it declares no `emits`"
        hint = did_you_mean(event, [e.text for e in emits])
        found.append(error(
            "E0216", f"target `{target.text}` does not emit `{event}`", send.event_type.span,
            f"not in the `emits` of `{target.text}`",
            f"{hint + ' ' if hint else ''}{said}; add `{event}` to its `emits [...]` if it publishes it",
            [Related(decl.name.span, f"`{target.text}` is declared here")]))
    return found


# ---- expected payloads -----------------------------------------------------------------


def _payload(shapes: list[_Shape], expectation: ast.ExpectedPayload) -> list[Diagnostic]:
    if not shapes:
        return []  # nothing delivers this event there: `interlock test` says the target is not reached
    found: dict[tuple[str, Span], _Problem] | None = None
    for shape in shapes:
        problems: list[_Problem] = []
        _Checker(expectation.target.text, shape.event, expectation.exact, problems).check(
            expectation.data, shape.type, "")
        keyed = {(p.code, p.span): p for p in problems}
        found = keyed if found is None else {key: p for key, p in found.items() if key in keyed}
    assert found is not None
    related = [shapes[0].related]
    return [error(p.code, p.message, p.span, p.label, p.help, related) for p in found.values()]


class _Shapes:
    """What targets receive, by event type and target, computed once for all the tests."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.cache: dict[tuple[str, str], list[_Shape]] = {}
        # per target, its deliveries with the route or choose they belong to, in the runtime's order
        self.to: dict[str, list[tuple[ast.RouteDecl | ast.ChooseDecl, ast.Delivery]]] = {}
        handlers: list[ast.RouteDecl | ast.ChooseDecl] = [*project.routes.values(), *project.chooses.values()]
        for handler in handlers:
            to = handler.to if isinstance(handler, ast.RouteDecl) else [d for b in handler.branches for d in b.to]
            for delivery in to:
                self.to.setdefault(delivery.target.text, []).append((handler, delivery))

    def of(self, event: str, target: str) -> list[_Shape]:
        """One shape per different way the deliveries of `event` to `target` make its payload."""
        key = (event, target)
        if key not in self.cache:
            self.cache[key] = list(self.compute(event, target))
        return self.cache[key]

    def compute(self, event: str, target: str) -> Iterator[_Shape]:
        decl = self.project.events.get(event)
        schema = decl.schema if decl is not None else None
        seen: set[str] = set()
        for handler, delivery in self.to.get(target, ()):
            if not any(event_type_matches(p.text, event) for p in handler.on):
                continue
            key = canonical(_transform_json(delivery.transform) if delivery.transform is not None else None)
            if key in seen:
                continue
            seen.add(key)
            kind = "route" if isinstance(handler, ast.RouteDecl) else "choose"
            if delivery.transform is not None:
                yield _Shape(event, _transform_type(delivery.transform, schema), Related(
                    delivery.target.span, f"{kind} `{handler.name.text}` delivers `{event}` here, through its "
                    "`with { ... }`"))
            elif schema is not None and decl is not None:
                yield _Shape(event, schema, Related(decl.name.span, f"`{target}` receives the data of `{event}` "
                                                                    "as declared here"))
            else:
                yield _Shape(event, None, Related(delivery.target.span,
                                                  f"{kind} `{handler.name.text}` delivers `{event}` here"))


def _any(span: Span) -> ast.ScalarType:
    return ast.ScalarType("any", span)


def _transform_type(transform: ast.Transform, schema: ast.ObjectType | None) -> ast.ObjectType | None:
    """The object a transform makes; a field that may be left out (a copied path that can
    reach nothing) is optional. With `...`, the event's fields come first, the entries' keys
    over them; None when the event is open (its fields are not known)."""
    fields: dict[str, ast.Field] = {}
    if transform.spread is not None:
        if schema is None:
            return None
        fields = {f.name.text: f for f in schema.fields}
    for entry in transform.entries:
        kind, optional = _value_type(entry, schema)
        fields[entry.key.text] = ast.Field(entry.key, kind, optional, entry.span)
    return ast.ObjectType(tuple(fields.values()), transform.span)


def _value_type(entry: ast.TransformEntry, schema: ast.ObjectType | None) -> tuple[ast.Type, bool]:
    """The type of an entry's value, and whether the entry may be left out; a kind of value
    not known here is `any`, which anything matches."""
    value = entry.value
    if isinstance(value, ast.Path):
        return _copied_type(value, schema)
    if isinstance(value, ast.Transform):
        made = _transform_type(value, schema)
        return (_any(value.span), False) if made is None else (made, False)
    if isinstance(value, ast.Template):
        return ast.ScalarType("string", value.span), False
    if isinstance(value, ast.Default):
        kind, _ = _copied_type(value.path, schema)
        fallback = value.fallback
        return kind, isinstance(fallback, ast.Scalar) and fallback.value is None
    if isinstance(value, ast.Scalar) and value.value is not None:
        constant = value.value
        name = "bool" if isinstance(constant, bool) else "string" if isinstance(constant, str) else "float"
        return ast.ScalarType(name, value.span), False
    if isinstance(value, ast.ListLit):
        return ast.ListType(_any(value.span), value.span), False
    return _any(entry.span), True


def _copied_type(path: ast.Path, schema: ast.ObjectType | None) -> tuple[ast.Type, bool]:
    """The type of what a copied path gives (a list of its values when it goes through a list),
    and whether it may be left out."""
    if schema is None:
        return _any(path.span), True
    current: ast.Type = schema
    through_list = optional = False
    for index, part in enumerate(path.parts):
        if index > 0:
            while isinstance(current, ast.ListType):
                current, through_list = current.item, True
        if not isinstance(current, ast.ObjectType):
            return _any(path.span), True  # `any`, or a path that `check_types` reports (E0201)
        field = next((f for f in current.fields if f.name.text == part), None)
        if field is None:
            return _any(path.span), True
        optional = optional or field.optional
        current = field.type
    if through_list:
        return ast.ListType(current, path.span), True
    return current, optional


@attrs.define
class _Checker:
    """An expected payload against one shape of what the target receives."""

    target: str
    event: str
    exact: bool
    problems: list[_Problem]

    def check(self, value: ast.Literal, kind: ast.Type | None, path: str) -> None:
        if kind is None or (isinstance(kind, ast.ScalarType) and kind.name == "any"):
            return
        if isinstance(value, ast.Scalar) and value.value is None:
            return  # `null`: no value, which any field may lack
        if isinstance(kind, ast.ObjectType):
            if isinstance(value, ast.ObjectLit):
                self.object(value, kind, path)
            else:
                self.mismatch(value, kind, path)
        elif isinstance(kind, ast.ListType):
            if isinstance(value, ast.ListLit):
                for number, item in enumerate(value.items):
                    self.check(item, kind.item, f"{path}[{number}]")
            else:
                self.mismatch(value, kind, path)
        elif not isinstance(value, ast.Scalar) or not _fits(kind.name, value.value) or (
                kind.name == "int" and isinstance(value.value, float) and not value.value.is_integer()):
            self.mismatch(value, kind, path)
        elif kind.name == "timestamp" and isinstance(value.value, str) and not _is_timestamp(value.value):
            self.problems.append(_Problem(
                "E0206", value.span, f"`{value.value}` is not a timestamp", "not ISO 8601",
                f"`{self.target}` receives `{path}` as a timestamp: write an ISO 8601 date and time, "
                'such as "2024-05-02T09:14:00Z"'))

    def object(self, value: ast.ObjectLit, kind: ast.ObjectType, path: str) -> None:
        fields = {f.name.text: f for f in kind.fields}
        given = set()
        for entry in value.entries:
            key = entry.key.text
            where = f"{path}.{key}" if path else key
            field = fields.get(key)
            if field is None:
                names = list(fields)
                shown = ", ".join(f"`{n}`" for n in names[:10]) + (", ..." if len(names) > 10 else "")
                inside = f"`{path}` holds" if path else "it receives"
                self.problems.append(_Problem(
                    "E0213", entry.key.span, f"`{self.target}` receives no field `{where}` from `{self.event}`",
                    "not received",
                    did_you_mean(key, names) or (f"{inside} {shown}" if names else f"{inside} no fields")))
                continue
            if not (isinstance(entry.value, ast.Scalar) and entry.value.value is None):
                given.add(key)
            self.check(entry.value, field.type, where)
        left_out = [f.name.text for f in kind.fields if not f.optional and f.name.text not in given]
        if self.exact and left_out:
            shown = _join([f"{path}.{n}" if path else n for n in left_out])
            self.problems.append(_Problem(
                "E0215", value.span, f"`with exactly` leaves out {shown}, which `{self.target}` always receives "
                f"from `{self.event}`", "not the whole payload",
                f"add {shown}, or write `with {{ ... }}` to compare only the fields it names"))

    def mismatch(self, value: ast.Literal, kind: ast.Type, path: str) -> None:
        what = literal_kind(value, kind)
        if isinstance(kind, ast.ObjectType):
            shown, hint = "an object", "an object `{ ... }`"
        elif isinstance(kind, ast.ListType):
            shown, hint = f"a list (`{_type_text(kind)}`)", "a list `[...]`"
        else:
            shown = f"`{_type_text(kind)}`"
            hint = "a whole number" if kind.name == "int" else f"a `{kind.name}` value"
        self.problems.append(_Problem(
            "E0214", value.span, f"`{self.target}` receives `{path}` as {shown} from `{self.event}`, and this is "
            f"{what}", what, f"expect {hint} here: a value of another type never matches"))
