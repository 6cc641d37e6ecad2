"""Field paths, values and test data checked against closed event schemas.

An event declared with a `{ ... }` schema is closed; one declared without, or not declared,
is open and not checked here. What is checked, and against which schemas:

- a `when` of a route or `choose`, and each path of its transforms (copied, in a template's
  places, with a default), against the schema of every closed event its `on` patterns match
  (`reference.event_type_matches`). A problem found for several of them is reported once,
  naming them;
- `order by` of a target, against every closed event a route or `choose` delivers to it (the
  key is read from the event, even when the delivery has a transform);
- the data of every `send` of a `test`, against its event's schema.

Rules (codes E0201-E0212):

- a path must name a field at every step, through nested objects and the items of lists of
  objects (E0201, with "did you mean" among the fields at that step);
- a value must fit its field (E0202): strings for `string`, numbers for `int` and `float`
  (`5` and `5.0` alike), `true` / `false` for `bool`, ISO 8601 strings for `timestamp` (E0206
  when the string is not one); `any` takes everything; a comparison with `null` is the front
  end's W0010 and is skipped here;
- an operator must fit the field's type (E0203): string tests and `in cidr` need a string,
  `in LOW..HIGH` a number, `contains` a string or a list;
- a list at the end of a path takes `contains` and `any ... in [...]` (their values checked
  against the item type), `exists` and `missing`; any other test is E0204. A path *through* a
  list of objects (`items.sku`) is a test on every element and is fine. `any ... in` needs a
  list (E0205). A path that ends at an object takes only `exists` / `missing` (E0207);
- `order by` must name one value per event: not a list, an object, or a field inside a list
  (E0208);
- a default, `path ?? fallback`, must be of the type of what the path gives (a list of its
  type when the path goes through a list) (E0202; E0206 for a timestamp): a constant by the
  rules of test data, a template for a string or timestamp, an object for an object, another
  path of the same kind of value (strings and timestamps alike, numbers alike); `null` fits
  all. A template's places take any field: they write any value as text;
- test data: no field the schema lacks (E0210), every value of its field's type (E0211, E0206),
  every field that is not optional present and not `null` (E0212); through nested objects and
  lists.

Does not check what a predicate means (a `when` that can never hold), nor anything about open
events, nor whether a `send`'s expectations hold (`interlock test`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import attrs

from interlock.dsl import Diagnostic, Project, Related, Span, ast
from interlock.dsl.diagnostics import error
from interlock.dsl.transform import did_you_mean

from .reference import event_type_matches, instant

# Placeholders in a message for the events it applies to, filled once problems found for
# several events at one place are merged.
_EVENT = "\x00event\x00"  # always named: "`order.created`"
_IN_EVENT = "\x00in\x00"  # named when the route sees several closed events: " in `order.created`"
_EXAMPLE_TIMESTAMP = '"2024-05-02T09:14:00Z"'


def check_types(project: Project) -> list[Diagnostic]:
    checker = _Checker(project)
    for route in project.routes.values():
        checker.check_route(route.on, [route.when], route.to)
    for choose in project.chooses.values():
        checker.check_route(choose.on, [b.when for b in choose.branches],
                            [d for b in choose.branches for d in b.to])
    for target in project.targets.values():
        checker.check_order_by(target)
    for test in project.tests.values():
        for step in test.steps:
            checker.check_send(step.send)
    return checker.diagnostics()


@attrs.frozen
class _Scope:
    """One closed event a check runs against."""

    event: str
    schema: ast.ObjectType
    several: bool  # the construct sees more than one closed event: say which one a problem is in


@attrs.frozen
class _Problem:
    code: str
    span: Span
    message: str  # with _EVENT / _IN_EVENT
    label: str
    help: str | None
    related: tuple[Related, ...] = ()


@attrs.frozen
class _End:
    """Where a path leads in a schema: its type (None for `any`), and whether it went through a list."""

    type: ast.Type | None
    through_list: bool


def _join(names: Sequence[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _type_text(t: ast.Type) -> str:
    if isinstance(t, ast.ScalarType):
        return t.name
    if isinstance(t, ast.ListType):
        return f"list<{_type_text(t.item)}>"
    return "{...}"


def _items_text(t: ast.Type) -> str:
    """What the elements of a list of `t` are, in a sentence."""
    return "objects" if isinstance(t, ast.ObjectType) else f"`{_type_text(t)}`"


def _innermost(t: ast.Type) -> ast.Type:
    while isinstance(t, ast.ListType):
        t = t.item
    return t


def _is_any(t: ast.Type) -> bool:
    return isinstance(t, ast.ScalarType) and t.name == "any"


def _kind(value: ast.ScalarValue) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "`null`"


def _is_timestamp(text: str) -> bool:
    return instant(text) is not None


def _fits(type_name: str, value: ast.ScalarValue) -> bool:
    """Whether a present (not null) value has the scalar type; a timestamp string is judged apart."""
    if type_name == "any":
        return True
    if type_name in ("string", "timestamp"):
        return isinstance(value, str)
    if type_name == "bool":
        return isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Checker:
    def __init__(self, project: Project) -> None:
        self.project = project
        self.problems: dict[tuple[str, Span, str], tuple[_Problem, list[str]]] = {}
        self.closed = {name: decl.schema for name, decl in project.events.items() if decl.schema is not None}
        self._deliverers: dict[str, list[tuple[ast.Name, tuple[ast.EventPattern, ...]]]] | None = None
        self._scopes: dict[tuple[str, ...], list[_Scope]] = {}  # by the texts of `on` patterns
        self._fields: dict[int, dict[str, ast.Field]] = {}  # by id() of an object type of a schema

    # ---- reporting ---------------------------------------------------------------

    def report(self, scope: _Scope, problem: _Problem) -> None:
        if not scope.several:
            problem = attrs.evolve(problem, message=problem.message.replace(_IN_EVENT, ""))
        key = (problem.code, problem.span, problem.message)
        _, events = self.problems.setdefault(key, (problem, []))
        if scope.event not in events:
            events.append(scope.event)

    def diagnostics(self) -> list[Diagnostic]:
        found = []
        for problem, events in self.problems.values():
            named = _join(events)

            def fill(text: str, named: str = named) -> str:
                return text.replace(_EVENT, named).replace(_IN_EVENT, f" in {named}")

            found.append(error(problem.code, fill(problem.message), problem.span, fill(problem.label),
                               fill(problem.help) if problem.help else None, problem.related))
        return found

    def text(self, span: Span) -> str:
        return self.project.sources[span.file].text[span.start:span.end]

    # ---- which schemas ---------------------------------------------------------

    def scopes(self, patterns: Iterable[ast.EventPattern]) -> list[_Scope]:
        """The closed events the patterns match (worked out once for the same patterns)."""
        texts = tuple(p.text for p in patterns)
        found = self._scopes.get(texts)
        if found is None:
            if any("*" in t for t in texts):
                seen = [(name, schema) for name, schema in self.closed.items()
                        if any(event_type_matches(p, name) for p in texts)]
            else:  # exact types: looked up, not matched against every closed event
                seen = [(t, self.closed[t]) for t in dict.fromkeys(texts) if t in self.closed]
            found = self._scopes[texts] = [_Scope(name, schema, len(seen) > 1) for name, schema in seen]
        return found

    def field(self, schema: ast.ObjectType, name: str) -> ast.Field | None:
        """The (first) field of `schema` called `name`: looked up, not searched for, however
        many fields the schema has."""
        fields = self._fields.get(id(schema))
        if fields is None:
            fields = self._fields[id(schema)] = {}
            for f in schema.fields:
                fields.setdefault(f.name.text, f)
        return fields.get(name)

    # ---- paths -----------------------------------------------------------------

    def resolve(self, path: ast.Path, scope: _Scope, related: tuple[Related, ...] = ()) -> _End | None:
        """Follow `path` in the scope's schema; report the first step that names no field (None)."""
        current: ast.Type = scope.schema
        through_list = False
        for index, part in enumerate(path.parts):
            if index > 0:  # a list met before a further step is entered: any element
                while isinstance(current, ast.ListType):
                    current = current.item
                    through_list = True
            if _is_any(current):
                return _End(None, through_list)
            if not isinstance(current, ast.ObjectType):
                prefix = path.prefix(index)
                self.report(scope, self.unknown(path, index, f"`{prefix}` is `{_type_text(current)}`",
                                                f"`{prefix}` has no fields: only objects do", related))
                return None
            found = self.field(current, part)
            if found is None:
                prefix = path.prefix(index)
                names = [f.name.text for f in current.fields]
                where = f"`{prefix}`" if prefix else f"`{scope.event}`"
                listed = ", ".join(f"`{n}`" for n in names[:10]) + (", ..." if len(names) > 10 else "")
                help_ = did_you_mean(part, names) or (
                    f"the fields of {where} are {listed}" if names else f"{where} has no fields")
                self.report(scope, self.unknown(path, index, "unknown field", help_, related))
                return None
            current = found.type
        return _End(None if _is_any(current) else current, through_list)

    def unknown(self, path: ast.Path, index: int, label: str, help_: str,
                related: tuple[Related, ...]) -> _Problem:
        span = path.part_span(index)
        shown = path.prefix(index + 1)
        return _Problem("E0201", span, f"unknown field `{shown}` in {_EVENT}", label, help_, related)

    # ---- routes and chooses ------------------------------------------------------

    def check_route(self, on: Iterable[ast.EventPattern], whens: Iterable[ast.Expr | None],
                    deliveries: Iterable[ast.Delivery]) -> None:
        scopes = self.scopes(on)
        if not scopes:
            return
        predicates = [p for when in whens if when is not None for p in _predicates(when)]
        transforms = [d.transform for d in deliveries if d.transform is not None]
        for scope in scopes:
            for predicate in predicates:
                self.check_predicate(predicate, scope)
            for transform in transforms:
                self.check_transform(transform, scope)

    def check_predicate(self, predicate: ast.Predicate, scope: _Scope) -> None:
        end = self.resolve(predicate.path, scope)
        if isinstance(predicate, ast.AnyElement):
            self.check_any_element(predicate, end, scope)
            return
        if end is None or end.type is None or isinstance(predicate, (ast.Exists, ast.Missing, ast.IsNull)):
            return
        path, t = predicate.path, end.type
        membership = isinstance(predicate, ast.Contains) or (isinstance(predicate, ast.InList)
                                                              and predicate.any_element)
        if isinstance(t, ast.ObjectType) or (
                isinstance(t, ast.ListType) and isinstance(_innermost(t), ast.ObjectType) and not membership):
            self.report(scope, self.object_problem(path, t))
            return
        if isinstance(predicate, ast.Contains):
            self.check_contains(predicate, t, scope)
        elif isinstance(predicate, ast.InList) and predicate.any_element:
            if isinstance(t, ast.ListType):
                self.check_items(path, _innermost(t), predicate.values, scope)
            elif end.through_list:
                self.check_items(path, t, predicate.values, scope)
            else:
                self.report(scope, _Problem(
                    "E0205", path.span, f"`any` needs a list, and `{path.text}` is `{_type_text(t)}`{_IN_EVENT}",
                    "not a list", f"drop `any`: `{path.text} in [...]` tests the value"))
        elif isinstance(t, ast.ListType):
            self.report(scope, self.list_problem(predicate, t))
        else:
            assert isinstance(t, ast.ScalarType)
            self.check_scalar(predicate, t, scope)

    def check_any_element(self, predicate: ast.AnyElement, end: _End | None, scope: _Scope) -> None:
        """`any path { ... }`: the path leads to a list of objects, and the condition is checked
        against the schema of its elements."""
        if end is None:
            return
        inner = list(_predicates(predicate.condition))
        element = None if end.type is None else _innermost(end.type)
        path = predicate.path
        if end.type is not None and not isinstance(end.type, ast.ListType) and not end.through_list:
            hint = (f"drop `any {path.text} {{ ... }}` and test the fields of `{path.text}` directly"
                    if isinstance(end.type, ast.ObjectType) else f"test the value itself: `{path.text} == ...`")
            self.report(scope, _Problem(
                "E0205", path.span, f"`any` needs a list, and `{path.text}` is `{_type_text(end.type)}`{_IN_EVENT}",
                "not a list", hint))
            return
        if element is not None and not isinstance(element, ast.ObjectType) and not _is_any(element):
            self.report(scope, _Problem(
                "E0209", path.span, f"the elements of `{path.text}` are {_items_text(element)}{_IN_EVENT}: "
                "`any ... { ... }` tests fields of objects", "not a list of objects",
                f"test its values with `any {path.text} in [...]` or `{path.text} contains ...`"))
            return
        if not isinstance(element, ast.ObjectType):  # `any`: nothing to check the fields against
            return
        element_scope = _Scope(scope.event, element, scope.several)
        for each in inner:
            self.check_predicate(each, element_scope)

    def object_problem(self, path: ast.Path, t: ast.Type) -> _Problem:
        inner = _innermost(t)
        assert isinstance(inner, ast.ObjectType)
        fields = [f"`{ast.Path((*path.parts, f.name.text), path.span).text}`" for f in inner.fields
                  if isinstance(f.type, ast.ScalarType)][:3]
        what = "an object" if isinstance(t, ast.ObjectType) else "a list of objects"
        hint = f"test one of its fields, such as {' or '.join(fields)}" if fields else "test one of its fields"
        return _Problem("E0207", path.span, f"`{path.text}` is {what}{_IN_EVENT}: only `exists` and `missing` "
                        "apply to it", what, f"{hint}, or `exists {path.text}`")

    def list_problem(self, predicate: ast.Predicate, t: ast.ListType) -> _Problem:
        path = predicate.path.text
        if isinstance(predicate, ast.Compare) and predicate.op == "==":
            hint = f"to test for an element, write `{path} contains {self.text(predicate.value.span)}`"
        elif isinstance(predicate, ast.InList) and not predicate.negated:
            hint = f"to test the elements, write `any {path} in [...]`"
        else:
            hint = f"test its elements with `any {path} in [...]` or `{path} contains ...`"
        return _Problem("E0204", predicate.path.span, f"`{path}` is a list (`{_type_text(t)}`){_IN_EVENT}: this "
                        "test needs a single value", "a list", hint)

    def check_contains(self, predicate: ast.Contains, t: ast.Type, scope: _Scope) -> None:
        path, value = predicate.path, predicate.value
        if value.value is None:
            return
        if isinstance(t, ast.ListType):
            self.check_items(path, _innermost(t), (value,), scope)
        elif isinstance(t, ast.ScalarType) and t.name == "string":
            if not isinstance(value.value, str):
                self.report(scope, _Problem(
                    "E0202", value.span, f"`{path.text}` is `string`{_IN_EVENT}: `contains` looks for text, "
                    f"not {_kind(value.value)}", _kind(value.value),
                    f"write it as a string: `\"{self.text(value.span)}\"`"))
        else:
            self.report(scope, self.operator_problem(predicate, "`contains` needs a string or a list", t))

    def check_items(self, path: ast.Path, item: ast.Type, values: Iterable[ast.Scalar], scope: _Scope) -> None:
        """Values tested for membership among the elements of the list at `path`."""
        if _is_any(item):
            return
        if not isinstance(item, ast.ScalarType):
            self.report(scope, _Problem(
                "E0207", path.span, f"the elements of `{path.text}` are {_items_text(item)}{_IN_EVENT}: they cannot "
                "equal a single value", "not a list of values", "test a field of its elements"))
            return
        for value in values:
            self.check_value(path, item, value, scope, "its elements are")

    def check_scalar(self, predicate: ast.Predicate, t: ast.ScalarType, scope: _Scope) -> None:
        path = predicate.path
        if isinstance(predicate, ast.Compare):
            self.check_value(path, t, predicate.value, scope)
        elif isinstance(predicate, ast.InList):
            for value in predicate.values:
                self.check_value(path, t, value, scope)
        elif isinstance(predicate, ast.InRange):
            if t.name not in ("int", "float"):
                self.report(scope, self.operator_problem(predicate, "a range needs a number", t))
        elif isinstance(predicate, ast.InCidr):
            if t.name != "string":
                self.report(scope, self.operator_problem(predicate, "`in cidr` needs a string (an IP address)", t))
        elif isinstance(predicate, ast.StringTest) and t.name != "string":
            self.report(scope, self.operator_problem(predicate, f"`{predicate.op}` needs a string", t))
        elif isinstance(predicate, ast.RegexTest) and t.name != "string":
            self.report(scope, self.operator_problem(predicate, "`matches regex` needs a string", t))

    def operator_problem(self, predicate: ast.Predicate, needs: str, t: ast.Type) -> _Problem:
        path = predicate.path.text
        if isinstance(t, ast.ScalarType) and t.name == "timestamp":
            hint = f"compare timestamps with `<`, `>=`, ...: `{path} >= {_EXAMPLE_TIMESTAMP}`"
        elif isinstance(t, ast.ScalarType) and t.name in ("int", "float"):
            hint = f"compare numbers with `==`, `<`, `in LOW..HIGH`, ...: `{path} >= 10`"
        else:
            hint = f"test `{path}` with an operator for `{_type_text(t)}`, such as `==`"
        return _Problem("E0203", predicate.path.span, f"{needs}, and `{path}` is `{_type_text(t)}`{_IN_EVENT}",
                        f"`{_type_text(t)}`", hint)

    def check_value(self, path: ast.Path, t: ast.ScalarType, value: ast.Scalar, scope: _Scope,
                    what: str = "it is") -> None:
        if value.value is None or t.name == "any":
            return
        if not _fits(t.name, value.value):
            subject = f"`{path.text}` is `{t.name}`" if what == "it is" else f"the elements of `{path.text}` are " \
                f"`{t.name}`"
            self.report(scope, _Problem(
                "E0202", value.span, f"{subject}{_IN_EVENT}, and this is {_kind(value.value)}",
                _kind(value.value), self.suggestion(t.name, value)))
        elif t.name == "timestamp":
            assert isinstance(value.value, str)
            if not _is_timestamp(value.value):
                self.report(scope, self.bad_timestamp(value))

    def bad_timestamp(self, value: ast.Scalar) -> _Problem:
        shown = self.text(value.span)
        shown = shown if len(shown) <= 40 else shown[:36] + '..."'
        return _Problem("E0206", value.span, f"`{shown}` is not a timestamp", "not ISO 8601",
                        f"write an ISO 8601 date and time, such as `{_EXAMPLE_TIMESTAMP}`")

    def suggestion(self, type_name: str, value: ast.Scalar) -> str:
        """How to write `value` as a `type_name`."""
        raw = value.value
        if type_name == "string":
            return f"write it as a string: `\"{self.text(value.span)}\"`"
        if type_name == "timestamp":
            return f"write a timestamp as an ISO 8601 string, such as `{_EXAMPLE_TIMESTAMP}`"
        if type_name == "bool":
            if isinstance(raw, str) and raw in ("true", "false"):
                return f"write `{raw}` without quotes"
            return "write `true` or `false`"
        if isinstance(raw, str):
            try:
                float(raw)
            except ValueError:
                pass
            else:
                return f"write the number without quotes: `{raw.strip()}`"
        return f"write a number, such as `{'10' if type_name == 'int' else '9.99'}`"

    # ---- transforms --------------------------------------------------------------

    def check_transform(self, transform: ast.Transform, scope: _Scope) -> None:
        for entry in transform.entries:
            self.check_transform_value(entry.value, scope)

    def check_transform_value(self, value: ast.TransformValue, scope: _Scope) -> None:
        """The paths of a transform's value (copied, in a template's places, defaulted)."""
        if isinstance(value, ast.Path):
            self.resolve(value, scope)
        elif isinstance(value, ast.Template):
            for part in value.parts:
                if isinstance(part, ast.Path):
                    self.resolve(part, scope)
        elif isinstance(value, ast.Default):
            self.check_default(value, scope)
        elif isinstance(value, ast.Transform):
            self.check_transform(value, scope)

    def check_default(self, default: ast.Default, scope: _Scope) -> None:
        """`path ?? fallback ?? ...`: every path resolves, and every fallback is of what the
        first path gives (a list when it goes through one)."""
        end = self.resolve(default.path, scope)
        expected = _given(end, default.path.span)
        subject = "" if expected is None else _gives(default.path, expected, end is not None and end.through_list)
        fallback = default.fallback
        while isinstance(fallback, ast.Default | ast.Path):
            path = fallback.path if isinstance(fallback, ast.Default) else fallback
            other = _given(self.resolve(path, scope), path.span)
            if expected is not None and other is not None and not _compatible(expected, other):
                self.report(scope, _Problem(
                    "E0202", path.span, f"{subject}{_IN_EVENT}, and its default `{path.text}` is "
                    f"`{_type_text(other)}`", f"`{_type_text(other)}`",
                    f"fall back to a field of type `{_type_text(expected)}`, or to a constant of that type"))
            if not isinstance(fallback, ast.Default):
                return
            fallback = fallback.fallback
        self.check_transform_value(fallback, scope)
        if expected is not None:
            self.check_fallback(subject, default.path, expected, fallback, scope)

    def check_fallback(self, subject: str, path: ast.Path, expected: ast.Type, fallback: ast.TransformValue,
                       scope: _Scope) -> None:
        """A default that is not a path (a constant, a template, an object) against the type of
        what `path` gives; `null` fits every type (the key is then present, with `null`)."""
        if isinstance(fallback, ast.Scalar) and fallback.value is None:
            return
        if isinstance(fallback, ast.Scalar | ast.ListLit):
            fits = _literal_fits(fallback, expected)
        elif isinstance(fallback, ast.Template):
            fits = isinstance(expected, ast.ScalarType) and expected.name in ("string", "timestamp")
        else:
            fits = isinstance(fallback, ast.Transform) and isinstance(expected, ast.ObjectType)
        if fits:
            if isinstance(fallback, ast.Scalar) and isinstance(fallback.value, str) \
                    and isinstance(expected, ast.ScalarType) and expected.name == "timestamp" \
                    and not _is_timestamp(fallback.value):
                self.report(scope, self.bad_timestamp(fallback))
            return
        kind = _fallback_kind(fallback, expected)
        if isinstance(fallback, ast.Scalar) and isinstance(expected, ast.ScalarType):
            help_ = "write a whole number" if kind == "a fraction" else self.suggestion(expected.name, fallback)
        elif isinstance(expected, ast.ObjectType):
            help_ = f"give an object as its default: `{{ ... }}` with the fields of `{path.text}`"
        else:
            help_ = f"give a default of type `{_type_text(expected)}`"
        self.report(scope, _Problem("E0202", fallback.span, f"{subject}{_IN_EVENT}, and its default is {kind}",
                                    kind, help_))

    # ---- order by ----------------------------------------------------------------

    def check_order_by(self, target: ast.TargetDecl) -> None:
        path = target.options.order_by
        if path is None:
            return
        reached: dict[str, ast.Name] = {}  # closed event -> the route or choose that delivers it
        for name, on in self.deliverers_of().get(target.name.text, ()):
            for scope in self.scopes(on):
                reached.setdefault(scope.event, name)
        for event, via in reached.items():
            scope = _Scope(event, self.closed[event], several=True)
            related = (Related(via.span, f"delivers `{event}` to `{target.name.text}`"),)
            end = self.resolve(path, scope, related)
            if end is None or end.type is None:
                continue
            if isinstance(end.type, (ast.ListType, ast.ObjectType)) or end.through_list:
                if isinstance(end.type, ast.ObjectType):
                    what = "an object"
                elif isinstance(end.type, ast.ListType):
                    what = f"a list (`{_type_text(end.type)}`)"
                else:
                    what = "a field of the elements of a list"
                self.report(scope, _Problem(
                    "E0208", path.span, f"`order by` needs one value per event, and `{path.text}` is {what}"
                    f"{_IN_EVENT}", "not a single value",
                    "order by a field that holds one value per event, such as an id", related))

    def deliverers_of(self) -> dict[str, list[tuple[ast.Name, tuple[ast.EventPattern, ...]]]]:
        """Per target, the routes and chooses that deliver to it (routes first, in order), with
        their `on`: worked out once, not once per target with `order by`."""
        if self._deliverers is None:
            self._deliverers = {}
            found = [(route.name, route.on, route.to) for route in self.project.routes.values()]
            found += [(choose.name, choose.on, tuple(d for b in choose.branches for d in b.to))
                      for choose in self.project.chooses.values()]
            for name, on, deliveries in found:
                for target in dict.fromkeys(d.target.text for d in deliveries):
                    self._deliverers.setdefault(target, []).append((name, on))
        return self._deliverers

    # ---- test data -----------------------------------------------------------------

    def check_send(self, send: ast.Send) -> None:
        schema = self.closed.get(send.event_type.text)
        if schema is None:
            return
        scope = _Scope(send.event_type.text, schema, several=False)
        data = send.data if send.data is not None else ast.ObjectLit((), send.event_type.span)
        self.check_object(data, schema, scope, "", send.event_type.span)

    def check_object(self, data: ast.ObjectLit, schema: ast.ObjectType, scope: _Scope, prefix: str,
                     where: Span) -> None:
        """Test data for an object of `schema`; `where` is the place to report missing fields at."""
        fields = {f.name.text: f for f in schema.fields}
        given = set()
        for entry in data.entries:
            key = entry.key.text
            given.add(key)
            field = fields.get(key)
            if field is None:
                names = list(fields)
                help_ = did_you_mean(key, names) or ("remove it: the schema has no fields" if not names else
                                                     "remove it, or add it to the schema of " + _EVENT)
                self.report(scope, _Problem("E0210", entry.key.span, f"unknown field `{prefix}{key}` in the test "
                                            f"data of {_EVENT}", "unknown field", help_))
                continue
            if isinstance(entry.value, ast.Scalar) and entry.value.value is None:
                if not field.optional:
                    self.report(scope, _Problem(
                        "E0212", entry.value.span, f"required field `{prefix}{key}` is `null` in the test data of "
                        f"{_EVENT}", "`null` counts as missing", f"give `{prefix}{key}` a value of type "
                        f"`{_type_text(field.type)}`"))
                continue
            self.check_data(entry.value, field.type, scope, f"{prefix}{key}", entry.key.span)
        missing = [f.name.text for f in schema.fields if not f.optional and f.name.text not in given]
        if missing:
            shown = _join([f"{prefix}{m}" for m in missing])
            plural = "s" if len(missing) > 1 else ""
            self.report(scope, _Problem(
                "E0212", where, f"required field{plural} {shown} missing from the test data of {_EVENT}",
                f"no {_join(missing)}", f"add {shown}, or make {'them' if plural else 'it'} optional in the schema "
                f"(`{missing[0]}: {_type_text(fields[missing[0]].type)}?`)"))

    def check_data(self, value: ast.Literal, t: ast.Type, scope: _Scope, path: str, where: Span) -> None:
        if _is_any(t):
            return
        if isinstance(t, ast.ObjectType):
            if isinstance(value, ast.ObjectLit):
                self.check_object(value, t, scope, f"{path}.", where)
            else:
                self.report(scope, self.data_mismatch(value, t, path))
        elif isinstance(t, ast.ListType):
            if not isinstance(value, ast.ListLit):
                self.report(scope, self.data_mismatch(value, t, path))
                return
            for item in value.items:
                if isinstance(item, ast.Scalar) and item.value is None:
                    self.report(scope, _Problem(
                        "E0211", item.span, f"the elements of `{path}` are {_items_text(t.item)}, and this is "
                        "`null`", "`null`", "leave the element out: a list holds values"))
                else:
                    self.check_data(item, t.item, scope, path, item.span)
        elif not isinstance(value, ast.Scalar) or not _fits(t.name, value.value) or (
                t.name == "int" and isinstance(value.value, float) and not value.value.is_integer()):
            self.report(scope, self.data_mismatch(value, t, path))
        elif t.name == "timestamp" and isinstance(value.value, str) and not _is_timestamp(value.value):
            self.report(scope, self.bad_timestamp(value))

    def data_mismatch(self, value: ast.Literal, t: ast.Type, path: str) -> _Problem:
        kind = literal_kind(value, t)
        if isinstance(t, ast.ScalarType) and isinstance(value, ast.Scalar):
            hint = self.suggestion(t.name, value) if kind != "a fraction" else "write a whole number"
        elif isinstance(t, ast.ListType):
            hint = f"write a list: `[...]` of `{_type_text(t.item)}`"
        elif isinstance(t, ast.ObjectType):
            hint = "write an object: `{ ... }` with the fields of the schema"
        else:
            hint = f"write a single `{_type_text(t)}` value"
        return _Problem("E0211", value.span, f"`{path}` is `{_type_text(t)}` in {_EVENT}, and this is {kind}",
                        kind, hint)


def literal_kind(value: ast.Literal, t: ast.Type) -> str:
    """What a literal is, in a message about a value of the wrong type for `t` ("a fraction"
    where `t` is `int`)."""
    if isinstance(value, ast.Scalar):
        if isinstance(value.value, float) and isinstance(t, ast.ScalarType) and t.name == "int":
            return "a fraction"
        return _kind(value.value)
    return "a list" if isinstance(value, ast.ListLit) else "an object"


def _predicates(expr: ast.Expr) -> Iterator[ast.Predicate]:
    if isinstance(expr, (ast.And, ast.Or)):
        for operand in expr.operands:
            yield from _predicates(operand)
    elif isinstance(expr, ast.Not):
        yield from _predicates(expr.operand)
    else:
        yield expr


def _given(end: _End | None, span: Span) -> ast.Type | None:
    """The type of what a transform copies from a path that leads to `end`: a list of the
    field's type when the path goes through a list; None when it is unknown or `any`."""
    if end is None or end.type is None:
        return None
    return ast.ListType(end.type, span) if end.through_list else end.type


def _gives(path: ast.Path, t: ast.Type, through_list: bool) -> str:
    """What a defaulted path gives, to begin a message."""
    if through_list:
        return f"`{path.text}` gives a list, `{_type_text(t)}` (the path goes through a list)"
    if isinstance(t, ast.ObjectType):
        return f"`{path.text}` is an object"
    return f"`{path.text}` is `{_type_text(t)}`"


def _compatible(a: ast.Type, b: ast.Type) -> bool:
    """Whether a field of type `b` can stand for one of type `a`: the same kind of JSON value
    (strings and timestamps alike, ints and floats alike), lists of such, any two objects."""
    if _is_any(a) or _is_any(b):
        return True
    if isinstance(a, ast.ListType) and isinstance(b, ast.ListType):
        return _compatible(a.item, b.item)
    if isinstance(a, ast.ScalarType) and isinstance(b, ast.ScalarType):
        kinds = {"timestamp": "string", "int": "number", "float": "number"}
        return kinds.get(a.name, a.name) == kinds.get(b.name, b.name)
    return isinstance(a, ast.ObjectType) and isinstance(b, ast.ObjectType)


def _literal_fits(value: ast.Literal, t: ast.Type) -> bool:
    """Whether a constant is a value of type `t`, by the rules of a publish's schema check: an
    `int` takes whole numbers, lists hold no `null`, objects have the fields of their type."""
    if _is_any(t):
        return True
    if isinstance(value, ast.Scalar):
        if not isinstance(t, ast.ScalarType) or value.value is None or not _fits(t.name, value.value):
            return False
        return not (t.name == "int" and isinstance(value.value, float) and not value.value.is_integer())
    if isinstance(value, ast.ListLit):
        return isinstance(t, ast.ListType) and all(_literal_fits(item, t.item) for item in value.items)
    if not isinstance(t, ast.ObjectType):
        return False
    fields = {f.name.text: f for f in t.fields}
    given = {e.key.text: e.value for e in value.entries}
    return all(name in fields and (_is_null(item) or _literal_fits(item, fields[name].type))
               for name, item in given.items()) and all(
        f.optional or not _is_null(given.get(f.name.text)) for f in t.fields)


def _is_null(value: ast.Literal | None) -> bool:
    return value is None or (isinstance(value, ast.Scalar) and value.value is None)


def _fallback_kind(value: ast.TransformValue, expected: ast.Type) -> str:
    """What a default that does not fit `expected` is, in words."""
    if isinstance(value, ast.Scalar):
        if isinstance(value.value, float) and not value.value.is_integer() and isinstance(expected, ast.ScalarType) \
                and expected.name == "int":
            return "a fraction"
        return _kind(value.value)
    if isinstance(value, ast.ListLit):
        if isinstance(expected, ast.ListType):
            return f"a list whose items are not all `{_type_text(expected.item)}`"
        return "a list"
    if isinstance(value, ast.Template):
        return "a template (a string)"
    return "an object"
