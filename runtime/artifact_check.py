"""Checking an artifact's content against its format (runtime/artifact_format.py), and
against the invariants the router relies on that no type can say.

`check(content)` decodes the artifact into the format's Structs with `msgspec.convert`
(in C, with the collector paused: a few hundredths of a second for 10,000 routes), then
checks, on the decoded Structs: each object's own invariants (its `check`); indexes in
range (a rule's or an unconditional entry's route and branch, a table's rules, a type's
table); names that exist (a delivery's target, a target's dead letter, the dead letter of
unrouted events); conditions, schemas, transforms and constants nested at most MAX_DEPTH
levels deep (the runtime walks them recursively); schemas and transforms (maps, walked
here so that a place names its key).

The first problem raises FormatError, its place a JSON-path-like location such as
`dispatch.rules[3].check[0].op` or `targets["billing"].retry.attempts`, its problem
what was expected: `expected one of 'and', 'or', ..., got 'like'`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from .artifact_format import (
    Artifact,
    Choose,
    DeadLetter,
    Delivery,
    Dispatch,
    FieldPath,
    FormatError,
    Predicate,
    Route,
    Table,
    Target,
    check_number,
    check_numbers,
    shown,
)
from .gc_pause import paused_gc

#: The deepest a condition, schema, transform or constant may nest: the runtime walks them
#: recursively, and at 256 levels a match still has room on the stack. The compiler's
#: brackets nest at most 64 levels deep, and a run of `not`s 64; a run of `not`s in each
#: bracket can still make a condition deeper than this, which the runtime then refuses.
MAX_DEPTH = 256


def check(content: dict[str, Any]) -> None:
    """Raise FormatError unless `content` is an artifact the router can run."""
    # (The objects `_check` makes are all freed when it returns, before the collector is
    # back: none is left for its next collection.)
    with paused_gc():
        _check(content)


def _check(content: dict[str, Any]) -> None:
    artifact: Artifact = _convert(content, Artifact)
    for name, value in artifact.dead_letters.items():
        with _at(f"dead_letters[{_quote(name)}]"):
            _convert(value, DeadLetter).check()
    if artifact.unrouted is not None and artifact.unrouted not in artifact.dead_letters:
        raise FormatError("unrouted", f"expected the name of a dead letter, got {shown(artifact.unrouted)}")
    for name, value in artifact.targets.items():
        with _at(f"targets[{_quote(name)}]"):
            _target(_convert(value, Target), artifact.dead_letters)
    for name, schema in artifact.events.items():
        if schema is not None:
            with _at(f"events[{_quote(name)}]"), _not_too_deep("a schema"):
                _schema(schema, 1, top=True)
    with _at("dispatch"):
        _dispatch(artifact.dispatch, artifact.targets)


@contextmanager
def _at(where: str) -> Iterator[None]:
    """Problems inside, their places given from `where`. (Loops over every route, rule and
    predicate use try/except instead: free when nothing is raised, and the place is only
    formatted then.)"""
    try:
        yield
    except FormatError as exc:
        raise exc.within(where) from None


def _convert(value: Any, kind: Any) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise _located(exc, kind, value) from None
    except RecursionError:
        raise FormatError("", "nested too deeply to be read") from None


def _target(target: Target, dead_letters: dict[str, Any]) -> None:
    target.check()
    if target.dead_letter is not None and target.dead_letter not in dead_letters:
        raise FormatError("dead_letter", f"expected the name of a dead letter, got {shown(target.dead_letter)}")


def _dispatch(dispatch: Dispatch, targets: dict[str, Any]) -> None:
    routes, rules, tables = dispatch.routes, dispatch.rules, dispatch.tables
    for number, route in enumerate(routes):
        try:
            if isinstance(route, Route):
                _arm(route.when, route.deliveries, targets)
            else:
                for position, arm in enumerate(route.branches):
                    with _at(f"branches[{position}]"):
                        _arm(arm.when, arm.deliveries, targets)
        except FormatError as exc:
            raise exc.within(f"routes[{number}]") from None
    for number, rule in enumerate(rules):
        try:
            _names_arm(routes, rule.route, rule.branch, ("route", "branch"))
            for position, predicate in enumerate(rule.check):
                try:
                    _condition(predicate)
                except FormatError as exc:
                    raise exc.within(f"check[{position}]") from None
            if rule.anchor is not None:
                try:
                    rule.anchor.check()
                except FormatError as exc:
                    raise exc.within("anchor") from None
        except FormatError as exc:
            raise exc.within(f"rules[{number}]") from None
    for number, (route_number, branch) in enumerate(dispatch.unconditional):
        with _at(f"unconditional[{number}]"):
            _names_arm(routes, route_number, branch, ("[0]", "[1]"))
    for number, table in enumerate(tables):
        with _at(f"tables[{number}]"):
            _table(table, routes, len(rules))
    for name, table_number in dispatch.types.items():
        if type(table_number) is not int or not 0 <= table_number < len(tables):
            raise FormatError(f"types[{_quote(name)}]",
                              f"expected the number of a table (0 to {len(tables) - 1}), got {shown(table_number)}")


def _arm(when: Predicate | None, deliveries: list[Delivery], targets: dict[str, Any]) -> None:
    """A route's or a branch's condition and deliveries."""
    if when is not None:
        try:
            _condition(when)
        except FormatError as exc:
            raise exc.within("when") from None
    for number, delivery in enumerate(deliveries):
        if delivery.target not in targets:
            raise FormatError(f"deliveries[{number}].target",
                              f"expected the name of a target, got {shown(delivery.target)}")
        if delivery.transform is not None:
            with _at(f"deliveries[{number}].transform"), _not_too_deep("a transform"):
                _transform(delivery.transform, 1)


def _names_arm(routes: list[Route | Choose], route: int, branch: int | None, fields: tuple[str, str]) -> None:
    """`route` (and `branch`, for a choose) name a route, or a branch of a choose, that exists."""
    if route >= len(routes):
        raise FormatError(fields[0], f"expected the number of a route (0 to {len(routes) - 1}), got {route}")
    found = routes[route]
    if isinstance(found, Route):
        if branch is not None:
            raise FormatError(fields[1], f"expected null (route {route} is a route, not a choose), got {branch}")
    elif branch is None or branch >= len(found.branches):
        raise FormatError(fields[1], f"expected the number of a branch of choose {route} "
                                     f"(0 to {len(found.branches) - 1}), got {branch}")


def _table(table: Table, routes: list[Route | Choose], rules: int) -> None:
    for number, (route, branch) in enumerate(table.unconditional):
        with _at(f"unconditional[{number}]"):
            _names_arm(routes, route, branch, ("[0]", "[1]"))
    _rules(table.scan, rules, "scan", "")
    for number, index in enumerate(table.index):
        with _at(f"index[{number}]"):
            _rules([rule for _, rule in index.eq], rules, "eq", "[1]")
            check_numbers([value for value, _ in index.eq], "eq", "[0]")
            _rules([rule for _, rule in index.prefix], rules, "prefix", "[1]")
            _rules([rule for _, rule in index.folded], rules, "folded", "[1]")
            _rules([entry[4] for entry in index.range], rules, "range", "[4]")
            for position, (low, _, high, _, _) in enumerate(index.range):
                check_number(low, f"range[{position}][0]")
                check_number(high, f"range[{position}][2]")


def _rules(numbers: list[int], rules: int, where: str, field: str) -> None:
    """Each of `numbers` is the number of a rule."""
    if numbers and max(numbers) >= rules:
        position = next(n for n, rule in enumerate(numbers) if rule >= rules)
        raise FormatError(f"{where}[{position}]{field}",
                          f"expected the number of a rule (0 to {rules - 1}), got {numbers[position]}")


class _TooDeep(Exception):
    """Nested deeper than MAX_DEPTH: said at the top of the condition, schema or transform
    (see `_not_too_deep`), not at the end of a path of hundreds of steps."""


@contextmanager
def _not_too_deep(what: str) -> Iterator[None]:
    try:
        yield
    except _TooDeep:
        raise FormatError("", f"expected {what} nested at most {MAX_DEPTH} levels deep") from None


def _condition(node: Predicate) -> None:
    """A condition, at most MAX_DEPTH deep (`_not_too_deep`, without a context manager per
    condition)."""
    try:
        _predicate(node, 1)
    except _TooDeep:
        raise FormatError("", f"expected a condition nested at most {MAX_DEPTH} levels deep") from None


def _predicate(node: Predicate, depth: int) -> None:
    """A predicate's own invariants, and those of the predicates inside it."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    node.check()
    field = node.nested
    if field is None:
        return
    inner = getattr(node, field)
    if type(inner) is list:
        for number, part in enumerate(inner):
            try:
                _predicate(part, depth + 1)
            except FormatError as exc:
                raise exc.within(f"{field}[{number}]") from None
    else:
        try:
            _predicate(inner, depth + 1)
        except FormatError as exc:
            raise exc.within(field) from None


_SCHEMA_TYPES = ("string", "int", "float", "bool", "timestamp", "any", "list", "object")


def _schema(schema: Any, depth: int, *, top: bool = False, field: bool = False) -> None:
    """An event's schema (runtime/schema.py): `{"type": T, "item": ..., "fields": {NAME: ...}}`;
    a field's also says whether it is `optional`."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    if not isinstance(schema, dict):
        raise FormatError("", f"expected a schema (an object with a `type`), got {_kind(schema)}")
    kind = schema.get("type")
    if top and kind != "object":
        raise FormatError("type", f"expected 'object' (an event's schema is an object), got {shown(kind)}")
    if type(kind) is not str or kind not in _SCHEMA_TYPES:
        raise FormatError("type", f"expected one of {', '.join(map(repr, _SCHEMA_TYPES))}, got {shown(kind)}")
    if field and type(schema.get("optional")) is not bool:
        raise FormatError("optional", f"expected true or false, got {shown(schema.get('optional'))}")
    if kind == "list":
        with _at("item"):
            _schema(schema.get("item"), depth + 1)
    elif kind == "object":
        fields = schema.get("fields")
        if not isinstance(fields, dict):
            raise FormatError("fields", f"expected an object of fields, got {_kind(fields)}")
        for name, inner in fields.items():
            with _at(f"fields[{_quote(name)}]"):
                _schema(inner, depth + 1, field=True)


_TRANSFORM_KINDS = ("copy", "template", "object", "value")
_EXPECTED = 'expected one of {"copy": PATH}, {"template": [...]}, {"object": {...}}, {"value": ...}'


def _transform(transform: dict[str, Any], depth: int) -> None:
    """A `with { }` (runtime/transform.py): per key, `{"copy": PATH}` (with a "default": a
    value spec), `{"template": [TEXT | PATH, ...]}`, `{"object": {...}}` or `{"value": JSON}`;
    under the key "" `{"spread": []}`."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    for key, spec in transform.items():
        where = f"[{_quote(key)}]"
        if key == "":
            if spec != {"spread": []}:
                raise FormatError(where, f'expected {{"spread": []}} under the empty key, got {_kind(spec)}')
            continue
        _value_spec(spec, where, depth)


def _value_spec(spec: Any, where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _TooDeep
    kinds = [k for k in _TRANSFORM_KINDS if k in spec] if isinstance(spec, dict) else []
    extra = [k for k in spec if k not in (*_TRANSFORM_KINDS, "default")] if isinstance(spec, dict) else []
    if len(kinds) != 1 or extra or ("default" in spec and kinds != ["copy"]):
        raise FormatError(where, f"{_EXPECTED}, got {_kind(spec)}{' with ' + ' and '.join(kinds) if kinds else ''}")
    value = spec[kinds[0]]
    if kinds[0] == "copy":
        with _at(f"{where}.copy"):
            _convert(value, FieldPath)
        if "default" in spec:
            _value_spec(spec["default"], f"{where}.default", depth + 1)
    elif kinds[0] == "template":
        if not isinstance(value, list):
            raise FormatError(f"{where}.template", f"expected a list of texts and paths, got {_kind(value)}")
        for number, part in enumerate(value):
            if not isinstance(part, str):
                with _at(f"{where}.template[{number}]"):
                    _convert(part, FieldPath)
    elif kinds[0] == "object":
        if not isinstance(value, dict):
            raise FormatError(f"{where}.object", f"expected an object, got {_kind(value)}")
        with _at(f"{where}.object"):
            _transform(value, depth + 1)
    else:
        with _at(f"{where}.value"):
            _constant(value, depth + 1)


def _constant(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _TooDeep
    if isinstance(value, list):
        for number, item in enumerate(value):
            with _at(f"[{number}]"):
                _constant(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            with _at(f"[{_quote(key)}]"):
                _constant(item, depth + 1)
    else:
        check_number(value)


def _quote(name: Any) -> str:
    return '"' + str(name)[:80].replace("\\", "\\\\").replace('"', '\\"') + '"'


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


# ---- msgspec's errors, as places and expectations ------------------------------------

_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]")
_AT = re.compile(r"(.*?)(?: - at `\$(.*)`)?", re.DOTALL)


def _located(error: msgspec.ValidationError, kind: Any, value: Any) -> FormatError:
    """msgspec's `Expected `int`, got `str` - at `$.rules[3].route``, as a FormatError at
    `rules[3].route`; an enumeration says which values it takes, a bound the value found."""
    found = _AT.fullmatch(str(error))
    assert found is not None
    message, path = found.group(1), found.group(2) or ""
    steps: list[str | int] = [m.group(1) or int(m.group(2)) for m in _STEP.finditer(path)]
    if message.startswith(("Invalid enum value", "Invalid value")):
        options = _options(kind, value, steps)
        if options:
            message = f"expected one of {', '.join(map(repr, options))}, got {message.split(' ', 3)[-1][:80]}"
    elif message.startswith("Object missing required field"):
        path, message = f"{path}.{message.split('`')[1]}", "missing"
    elif message.startswith("Expected") and ", got" not in message:  # a bound: `Expected `int` >= 1`
        message = f"{message}, got {shown(_value_at(value, steps))}"
    return FormatError(path.lstrip("."), message[0].lower() + message[1:])


def _value_at(value: Any, steps: list[str | int]) -> Any:
    for step in steps:
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and isinstance(step, int) and step < len(value):
            value = value[step]
        else:
            return None
    return value


def _options(kind: Any, value: Any, steps: list[str | int]) -> list[Any]:
    """The values the enumeration at `steps` takes (a Literal, or the tags of a union of
    Structs), found by walking msgspec's description of `kind` along `value`."""
    info: Any = msgspec.inspect.type_info(kind)
    for number, step in enumerate(steps):
        if isinstance(info, msgspec.inspect.UnionType):
            structs = [t for t in info.types if isinstance(t, msgspec.inspect.StructType) and t.tag_field]
            if structs and step == structs[0].tag_field and number == len(steps) - 1:
                return [t.tag for t in structs]
            info = _member(info, value)
        if isinstance(info, msgspec.inspect.StructType) and isinstance(step, str):
            info = {f.encode_name: f.type for f in info.fields}.get(step)
            value = value.get(step) if isinstance(value, dict) else None
        elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.VarTupleType)) and isinstance(step, int):
            info = info.item_type
            value = value[step] if isinstance(value, list) and step < len(value) else None
        elif isinstance(info, msgspec.inspect.TupleType) and isinstance(step, int) and step < len(info.item_types):
            info = info.item_types[step]
            value = value[step] if isinstance(value, list) and step < len(value) else None
        else:
            return []
    if isinstance(info, msgspec.inspect.UnionType):
        info = _member(info, value)
    return list(info.values) if isinstance(info, msgspec.inspect.LiteralType) else []


def _member(union: Any, value: Any) -> Any:
    """The member of a union that `value` is meant to be: the Struct its tag names, else the
    first that is not None."""
    for member in union.types:
        if isinstance(member, msgspec.inspect.StructType) and member.tag_field and isinstance(value, dict) and (
                value.get(member.tag_field) == member.tag):
            return member
    return next((m for m in union.types if not isinstance(m, msgspec.inspect.NoneType)), union)
