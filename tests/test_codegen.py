"""The generated code of rules (runtime/codegen.py) against the closures it replaces."""

from __future__ import annotations

import contextlib
from pathlib import Path

from matching_modes import anchors_only

import interlock
from interlock.compiler.reference import route
from interlock.dsl import load_project
from interlock.runtime.codegen import RuleSource
from interlock.runtime.predicates import compile_predicate


def _node(op: str, **fields: object) -> dict[str, object]:
    return {"op": op, "text": "", "at": [1, 1], **fields}


def test_one_source_holds_a_rule_twice_as_two_functions() -> None:
    """A rule's whole check and its residual tests were once two functions of one name in one
    module: the second replaced the first, and a table matched by anchors ran the residual tests
    alone (an extra target, found by the property test)."""
    source = RuleSource("test")
    whole = [_node("cmp", path=["a"], cmp="==", value=1), _node("cmp", path=["b"], cmp="==", value=2)]
    first = source.add(whole, 7, "r", "p.route:1:1")
    second = source.add(whole[1:], 7, "r", "p.route:1:1")
    functions = source.build()
    assert functions[first]({"a": 0, "b": 2}) is False
    assert functions[second]({"a": 0, "b": 2}) is True


def test_generated_tests_agree_with_the_closures() -> None:
    values = [None, 0, 1, 1.0, -0.0, 2**53 + 1, float(2**53), 10**400, float("nan"), float("inf"), True, False,
              "", "a", "A", "ß", "SS", "b", [1, "a"], [[None, 2]], [], {}, {"x": 1}]
    nodes = [_node("cmp", path=["x"], cmp=op, value=v) for op in ("==", "!=", "<", "<=", ">", ">=")
             for v in (1, 1.5, 2**53, "a", True, None)]
    nodes += [_node("in", path=["x"], values=vs, negated=n) for vs in ([1, "a"], [True], [], [None, 0.0])
              for n in (False, True)]
    nodes += [_node("range", path=["x"], low=0, high=2), _node("str", path=["x"], test="startswith", value="a")]
    nodes += [_node("str", path=["x"], test=t, value="ss") for t in ("equals_ignore_case", "startswith_ignore_case",
                                                                      "endswith_ignore_case", "endswith")]
    nodes += [_node("exists", path=["x"]), _node("missing", path=["x"]),
              _node("cmp", path=["y", "x"], cmp="==", value=1)]
    source = RuleSource("test")
    indexes = [source.add([node], number, "r", "here") for number, node in enumerate(nodes)]
    functions = source.build()
    for node, index in zip(nodes, indexes, strict=True):
        closure = compile_predicate(node)
        for value in values:
            for data in ({"x": value}, {"y": {"x": value}}, {"y": [{"x": value}]}):
                assert functions[index](data) == closure(data), (node, data)


def test_conditions_nested_past_what_python_parses_are_called_as_closures(tmp_path: Path) -> None:
    """63 levels of `not not not (... and ...)` check and compile (E0006 counts brackets and
    `not`s apart), and generated code nested that deep was a SyntaxError at load: "too many
    nested parentheses" (found by review). Past MAX_INLINE_DEPTH the code calls the closure."""
    condition = "y == 0"
    for level in range(63):
        condition = f"not not not (y == {level} or {condition})"
    (tmp_path / "p.route").write_text(f"target t {{ mode sync }}\nroute r {{ on e when {condition} to t }}\n")
    assert [d for d in interlock.check(str(tmp_path)) if d.is_error] == []
    artifact = interlock.compile(str(tmp_path))
    project = load_project([str(tmp_path / "p.route")])
    for mode in (contextlib.nullcontext, anchors_only):
        with mode():
            router = interlock.Router(artifact)
        for y in (0, 1, 5, 62, 500):
            assert router.match("e", {"y": y}) == route(list(project.routes.values()), [], "e", {"y": y}), y


def test_scalar_subclasses_are_no_kind_and_list_subclasses_are_lists(tmp_path: Path) -> None:
    """Data given to `match` directly may hold Python objects `publish` refuses. The reference
    took a str or int subclass as a string or number, the runtime not; the anchors took a list
    subclass as one value, the other ways as a list (found by review). Now: scalars by exact
    type everywhere, lists by isinstance everywhere."""
    class S(str):
        pass

    class I(int):  # noqa: E742 - a name as short as the others
        pass

    class L(list):  # type: ignore[type-arg]
        pass

    (tmp_path / "p.route").write_text('target t { mode sync }\ntarget u { mode sync }\ntarget w { mode sync }\n'
                                      'route a { on e when a == "x" to t }\nroute b { on e when b == 1 to u }\n'
                                      'route c { on e when c in ["x"] to w }\n')
    project = load_project([str(tmp_path / "p.route")])
    artifact = interlock.compile(str(tmp_path))
    cases = [({"a": S("x")}, set()), ({"b": I(1)}, set()), ({"c": L(["x"])}, {"w"}), ({"a": "x", "c": L([["x"]])},
             {"t", "w"})]
    for mode in (contextlib.nullcontext, anchors_only):
        with mode():
            router = interlock.Router(artifact)
        for data, expected in cases:
            assert route(list(project.routes.values()), [], "e", data) == expected, data
            assert router.match("e", data) == expected, data
            assert set(router.deliveries("e", data)) == expected, data


def test_rules_alike_but_for_their_constants_share_their_code() -> None:
    """Compiling a function costs about 0.1 ms: the residual tests of 40,000 routes
    `s == "a" and t endswith "xN"` took 5.4 s to load. Rules that differ only in their
    constants are one factory, compiled once, called with each rule's constants."""
    source = RuleSource("test")
    nodes = [[_node("str", path=["t"], test="endswith", value=f"x{i}"),
              _node("in", path=["r"], values=["eu", f"r{i}"], negated=False)] for i in range(300)]
    indexes = [source.add(checks, i, f"r{i}", f"p.route:{i + 1}:1") for i, checks in enumerate(nodes)]
    functions = source.build()
    assert len(source.shapes) == 1
    for i in (0, 7, 299):
        check = functions[indexes[i]]
        assert check({"t": f"ax{i}", "r": "eu"}) and check({"t": ["q", f"x{i}"], "r": f"r{i}"})
        assert not check({"t": f"ax{i + 1}", "r": "eu"}) and not check({"t": f"x{i}", "r": "us"})
        assert check.__code__.co_name == f"route r{i}, p.route:{i + 1}:1"  # (what a traceback shows)
