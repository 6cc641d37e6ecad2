"""The reference interpreter against the normative matching semantics, one rule per case."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from matching_modes import anchors_only

import interlock
from interlock.compiler.reference import evaluate, event_type_matches, glob_matches, route
from interlock.dsl import ast, parse_text
from interlock.runtime.matching import event_type_matches as runtime_type_matches
from interlock.runtime.router import Router


def when(condition: str) -> ast.Expr:
    module, diagnostics = parse_text(f"route r {{ on e when {condition} to t }}")
    assert [d for d in diagnostics if d.is_error] == []
    (decl,) = module.decls
    assert isinstance(decl, ast.RouteDecl) and decl.when is not None
    return decl.when


CASES: list[tuple[str, dict[str, Any], bool]] = [
    # missing or null: false whatever the operator, except `missing`
    ("x == 1", {}, False),
    ("x != 1", {}, False),
    ("x != 1", {"x": None}, False),
    ("not (x == 1)", {}, True),
    ("missing x", {}, True),
    ("missing x", {"x": None}, True),
    ("exists x", {"x": None}, False),
    ("exists x", {"x": 0}, True),
    ("exists x", {"x": []}, True),
    ("x in [1, 2]", {}, False),
    ("x not in [1, 2]", {}, False),
    ("x startswith \"a\"", {}, False),
    # numbers by value; strings never equal numbers; booleans are not numbers
    ("x == 5", {"x": 5.0}, True),
    ("x == 5.0", {"x": 5}, True),
    ("x == 5", {"x": "5"}, False),
    ("x != 5", {"x": "5"}, True),
    ("x < 10", {"x": "5"}, False),
    ("x >= 10", {"x": "50"}, False),
    ("x == 1", {"x": True}, False),
    ("x == true", {"x": 1}, False),
    ("x == true", {"x": True}, True),
    ("x < \"b\"", {"x": "a"}, True),
    ("x in 10..100", {"x": 10}, True),
    ("x in 10..100", {"x": 100.0}, True),
    ("x in 10..100", {"x": 100.5}, False),
    ("x in 10..100", {"x": "50"}, False),
    ("x in [1, \"a\"]", {"x": 1.0}, True),
    ("x in [false]", {"x": False}, True),  # (a boolean in a set: a key of its own)
    ("x in [false, 1]", {"x": 0}, False),
    ("x in [true]", {"x": 1}, False),
    ("a == 0 and x in [true, \"b\"]", {"a": 0, "x": True}, True),
    ("x in [1, \"a\"]", {"x": "1"}, False),
    ("x not in [1, 2]", {"x": 3}, True),
    ("x not in [1, 2]", {"x": 2.0}, False),
    # paths through lists: any element
    ("items.sku startswith \"EU-\"", {"items": [{"sku": "US-1"}, {"sku": "EU-2"}]}, True),
    ("items.sku startswith \"EU-\"", {"items": [{"sku": "US-1"}, {"nosku": 1}]}, False),
    ("items.sku startswith \"EU-\"", {"items": []}, False),
    ("missing items.sku", {"items": [{"a": 1}]}, True),
    ("a.b.c == 1", {"a": [{"b": [{"c": 2}, {"c": 1}]}]}, True),
    ("a.b == 1", {"a": 5}, False),
    # contains: substring on strings, membership on lists
    ("s contains \"ell\"", {"s": "hello"}, True),
    ("tags contains \"vip\"", {"tags": ["press", "vip"]}, True),
    ("tags contains \"vi\"", {"tags": ["press", "vip"]}, False),
    ("tags contains 5", {"tags": [5.0]}, True),
    ("any tags in [\"vip\", \"press\"]", {"tags": ["x", "press"]}, True),
    ("any tags in [\"vip\", \"press\"]", {"tags": []}, False),
    ("tags == \"vip\"", {"tags": ["a", "vip"]}, True),
    # strings
    ("m endswith \".pdf\"", {"m": "a.pdf"}, True),
    ("t equals_ignore_case \"gold\"", {"t": "GoLd"}, True),
    ("t equals_ignore_case \"straße\"", {"t": "STRASSE"}, True),
    ("o matches \"ord-*-eu\"", {"o": "ord-123-eu"}, True),
    ("o matches \"ord-*-eu\"", {"o": "ord-123-us"}, False),
    ("o matches \"a?c\"", {"o": "abc"}, True),
    ("o matches \"a?c\"", {"o": "ac"}, False),
    ("o matches \"a\\\\*\"", {"o": "a*"}, True),
    ("o matches \"a\\\\*\"", {"o": "ab"}, False),
    ("o matches \"*\"", {"o": ""}, True),
    ("o matches \"x\"", {"o": 5}, False),
    # network
    ("ip in cidr \"10.0.0.0/8\"", {"ip": "10.1.2.3"}, True),
    ("ip in cidr \"10.0.0.0/8\"", {"ip": "11.1.2.3"}, False),
    ("ip in cidr \"10.0.0.0/8\"", {"ip": "not an ip"}, False),
    ("ip in cidr \"fd00::/8\"", {"ip": "fd12::1"}, True),
    ("ip in cidr \"10.0.0.0/8\"", {"ip": "fd12::1"}, False),
    # connectives
    ("a == 1 and b == 2", {"a": 1, "b": 2}, True),
    ("a == 1 and b == 2", {"a": 1}, False),
    ("a == 1 or b == 2", {"b": 2}, True),
    ("not a == 1 and b == 2", {"b": 2}, True),
    # fields named like the words that start a predicate: followed by an operator, a field
    ("missing == 1", {"missing": 1}, True),
    ("missing missing", {}, True),
    ("exists in [1, 2]", {"exists": 2}, True),
    ("exists exists", {"exists": 0}, True),
    ("any startswith \"q\"", {"any": "qq"}, True),
    ("any any in [1]", {"any": [0, 1]}, True),
    ("not != 2", {"not": 3}, True),
    ("not not == 2", {"not": 3}, True),
    ("not missing contains \"a\"", {"missing": "abc"}, False),
    ("exists not in [1, 2]", {"exists": 3}, True),
    # ... while words that are operators may name fields too
    ("exists in", {"in": 1}, True),
    ("missing contains", {}, True),
    ("not in in [1, 2]", {"in": 3}, True),
    ("not contains == \"x\"", {"contains": "y"}, True),
    ("any in in [1]", {"in": [0, 1]}, True),
    ("exists startswith and x == 1", {"startswith": 0, "x": 1}, True),
    # lists within lists are entered, at any depth, on the way and at the end of a path
    ("employees.firstName == \"Anna\"", {"employees": [[{"firstName": "Anna"}]]}, True),
    ("employees.firstName == \"Anna\"", {"employees": [[[{"firstName": "Bob"}]], [{"firstName": "Anna"}]]}, True),
    ("tags == \"vip\"", {"tags": [["vip"]]}, True),
    ("tags contains \"vip\"", {"tags": [["x"], ["vip"]]}, True),
    ("any tags in [\"vip\"]", {"tags": [[["vip"]]]}, True),
    ("tags contains \"vip\"", {"tags": [["x"], []]}, False),
    ("exists employees.firstName", {"employees": [[], [[]]]}, False),
    # case-insensitive prefix and suffix, with the case folding of equals_ignore_case
    ("x startswith_ignore_case \"eu-\"", {"x": "EU-1"}, True),
    ("x startswith_ignore_case \"STRASSE\"", {"x": "Straße 5"}, True),
    ("x startswith_ignore_case \"straße\"", {"x": "STRASSE 5"}, True),
    ("x startswith_ignore_case \"eu-\"", {"x": "US-EU-1"}, False),
    ("x endswith_ignore_case \"@EXAMPLE.com\"", {"x": "a@example.COM"}, True),
    ("x endswith_ignore_case \"ss\"", {"x": "Gauß"}, True),
    ("x endswith_ignore_case \"a\"", {"x": 5}, False),
    ("tags startswith_ignore_case \"v\"", {"tags": ["x", ["VIP"]]}, True),
    # two case-folded prefixes on one field, the shorter with a check (the generated code's
    # variables must not meet: the check's loop once overwrote the folded value)
    ("(x startswith_ignore_case \"a\" and y > 0) or x startswith_ignore_case \"AB\"", {"x": "abc", "y": 1}, True),
    ("(x startswith_ignore_case \"a\" and y > 0) or x startswith_ignore_case \"AB\"", {"x": "abc", "y": -1}, True),
    # regular expressions (RE2): the whole string
    ("x matches regex \"EU-\\d+\"", {"x": "EU-12"}, True),
    ("x matches regex \"EU-\\d+\"", {"x": "EU-12x"}, False),
    ("x matches regex \"EU-\\d+\"", {"x": "xEU-12"}, False),
    ("x matches regex \"(?i)eu-[a-c]\"", {"x": "Eu-B"}, True),
    ("x matches regex \"a|b\"", {"x": "b"}, True),
    ("x matches regex \"a|b\"", {"x": "ab"}, False),
    ("x matches regex \"1\"", {"x": 1}, False),
    ("x matches regex \".*\"", {"x": "\ud800"}, False),
    ("x matches regex \".*\"", {}, False),
    ("not (x matches regex \"a\")", {}, True),
    ("items.sku matches regex \"[A-Z]{2}-[0-9]\"", {"items": [{"sku": "x"}, {"sku": "EU-1"}]}, True),
    # `is null`: a null that is there, not a missing field
    ("x is null", {"x": None}, True),
    ("x is null", {}, False),
    ("x is null", {"x": 0}, False),
    ("x is null", {"x": [1, None]}, True),
    ("x is null", {"x": [[None]]}, True),
    ("x is null", {"x": []}, False),
    ("a.b is null", {"a": None}, False),
    ("a.b is null", {"a": [{"b": 1}, {"b": None}]}, True),
    ("a.b is null", {"a": [{"c": 1}]}, False),
    ("not (x is null)", {}, True),
    # `any PATH { ... }`: one element passes every test of the group
    ("any items { sku == \"a\" and q > 10 }", {"items": [{"sku": "a", "q": 1}, {"sku": "b", "q": 20}]}, False),
    ("items.sku == \"a\" and items.q > 10", {"items": [{"sku": "a", "q": 1}, {"sku": "b", "q": 20}]}, True),
    ("any items { sku == \"a\" and q > 10 }", {"items": [{"sku": "b", "q": 20}, {"sku": "a", "q": 11}]}, True),
    ("any items { sku == \"a\" }", {"items": [[{"sku": "a"}]]}, True),
    ("any items { sku == \"a\" }", {"items": {"sku": "a"}}, True),
    ("any items { missing sku }", {"items": [1, "a"]}, False),
    ("any items { missing sku }", {"items": [1, {}]}, True),
    ("any items { missing sku }", {"items": []}, False),
    ("not (any items { sku == \"a\" })", {}, True),
    ("any items { not (sku == \"a\") }", {"items": [{"sku": "a"}, {"sku": "b"}]}, True),
    ("any a.b { c == 1 and any d { e == 2 } }", {"a": [{"b": [{"c": 1, "d": [{"e": 1}]}, {"c": 2, "d": {"e": 2}}]}]},
     False),
    ("any a.b { c == 1 and any d { e == 2 } }", {"a": [{"b": [{"c": 1, "d": [{"e": 1}, {"e": 2}]}]}]}, True),
    # quoted path segments
    ("`c.count` > 1", {"c.count": 2}, True),
    ("`c.count` > 1", {"c": {"count": 2}}, False),
    ("c.count > 1", {"c": {"count": 2}}, True),
    ("headers.`x-id` == \"a\"", {"headers": {"x-id": "a"}}, True),
    ("exists `$or`", {"$or": 1}, True),
    ("`ü`.`a\\`b` == 1", {"ü": {"a`b": 1}}, True),
    ("`a\\\\b` == 1", {"a\\b": 1}, True),
    # integers of any size compare exactly, with integers and floats alike
    ("x > 1.5e308", {"x": 10**400}, True),
    ("x < -1.5e308", {"x": -10**400}, True),
    ("x >= 1", {"x": -10**400}, False),
    ("x in 1..100", {"x": 10**400}, False),
    ("x in [1, 2.5]", {"x": 10**400}, False),
    ("x != 1", {"x": 10**400}, True),
    ("x == 9007199254740992.0", {"x": 2**53 + 1}, False),
    ("x > 9007199254740992.0", {"x": 2**53 + 1}, True),
    ("x == 9007199254740993", {"x": 9007199254740992.0}, False),
    ("x in 0..9007199254740992.0", {"x": 2**53 + 1}, False),
    ("x in [9007199254740992.0]", {"x": 2**53}, True),
]


@pytest.mark.parametrize(("condition", "data", "expected"), CASES)
def test_semantics(condition: str, data: dict[str, Any], expected: bool) -> None:
    assert evaluate(when(condition), data) is expected


@pytest.mark.parametrize(("condition", "data", "expected"), CASES)
def test_compiled_router_agrees(condition: str, data: dict[str, Any], expected: bool, tmp_path: Path) -> None:
    """The same case through the artifact, its tables and the generated code, and `explain`."""
    (tmp_path / "p.route").write_text(f"target t {{ mode sync }}\nroute r {{ on e when {condition} to t }}\n")
    router = Router(interlock.compile(str(tmp_path)))
    assert router.match("e", data) == ({"t"} if expected else set())
    assert set(router.deliveries("e", data)) == ({"t"} if expected else set())
    with anchors_only():
        anchored = Router(interlock.compile(str(tmp_path)))
    assert anchored.match("e", data) == ({"t"} if expected else set())
    assert set(anchored.deliveries("e", data)) == ({"t"} if expected else set())
    assert {t for e in router.explain("e", data) for t in e.targets} == ({"t"} if expected else set())


@pytest.mark.parametrize(("pattern", "event_type", "expected"), [
    ("order.created", "order.created", True),
    ("order.created", "order.updated", False),
    ("order.*", "order.created", True),
    ("order.*", "order", False),
    ("order.*", "order.created.v2", False),
    ("order.**", "order", True),
    ("order.**", "order.created.v2", True),
    ("**", "anything.at.all", True),
    ("*.created", "order.created", True),
    ("**.declined", "payment.card.declined", True),
    ("a.**.z", "a.z", True),
    ("a.**.z", "a.b.c.z", True),
    ("a.**.z", "a.b.c", False),
])
def test_event_type_globs(pattern: str, event_type: str, expected: bool) -> None:
    assert event_type_matches(pattern, event_type) is expected


def test_glob_is_not_catastrophic() -> None:
    assert glob_matches("*a" * 30 + "b", "a" * 5000) is False


def _by_every_split(pattern: list[str], parts: list[str]) -> bool:
    """The definition of an event-type glob, tried split by split (exponential in the `**`s)."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_by_every_split(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and pattern[0] in ("*", parts[0]) and _by_every_split(pattern[1:], parts[1:])


def test_event_type_globs_agree_with_their_definition_in_the_compiler_and_the_runtime() -> None:
    segments = ["a", "b", "*", "**"]
    patterns = [list(p) for n in range(1, 5) for p in itertools.product(segments, repeat=n)]
    types = [list(t) for n in range(1, 5) for t in itertools.product(["a", "b"], repeat=n)]
    for pattern in patterns:
        for parts in types:
            expected = _by_every_split(pattern, parts)
            assert event_type_matches(".".join(pattern), ".".join(parts)) is expected, (pattern, parts)
            assert runtime_type_matches(".".join(pattern), ".".join(parts)) is expected, (pattern, parts)


def test_event_type_globs_are_not_catastrophic() -> None:
    # Tried split by split, this takes hours: each `**` multiplies the splits by the type's length.
    # (Tests assert no timing: a catastrophic algorithm would not end here.)
    pattern, event_type = ".".join(["**", "a"] * 20) + ".b", ".".join(["a"] * 400)
    assert event_type_matches(pattern, event_type) is False
    assert runtime_type_matches(pattern, event_type) is False
    assert runtime_type_matches(pattern, event_type + ".b") is True


def test_route_fans_out_and_choose_takes_the_first_match() -> None:
    module, diagnostics = parse_text("""
    route big { on order.created when amount >= 1000 to fraud, billing }
    route every { on order.* to audit }
    choose region {
      on order.created
      when tier == "gold" to priority
      when currency == "EUR" to eu
      otherwise to billing
    }""")
    assert diagnostics == []
    routes = [d for d in module.decls if isinstance(d, ast.RouteDecl)]
    chooses = [d for d in module.decls if isinstance(d, ast.ChooseDecl)]
    assert route(routes, chooses, "order.created", {"amount": 5000, "tier": "gold", "currency": "EUR"}) == {
        "fraud", "billing", "audit", "priority"}
    assert route(routes, chooses, "order.created", {"amount": 5, "currency": "EUR"}) == {"audit", "eu"}
    assert route(routes, chooses, "order.created", {}) == {"audit", "billing"}
    assert route(routes, chooses, "order.cancelled", {"amount": 5000}) == {"audit"}
    assert route(routes, chooses, "payment.failed", {}) == set()


def test_data_nested_100_000_deep_is_walked_without_recursion() -> None:
    deep: Any = "vip"
    for _ in range(100_000):
        deep = [deep]
    assert evaluate(when('tags == "vip"'), {"tags": deep}) is True
    assert evaluate(when('tags contains "vip"'), {"tags": deep}) is True
    assert evaluate(when('tags.x == "vip"'), {"tags": [deep, [{"x": "vip"}]]}) is True
