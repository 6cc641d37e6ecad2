"""The generated code of rules (runtime/codegen.py) against the closures it replaces."""

from __future__ import annotations

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
