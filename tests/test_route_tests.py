"""`interlock test`: the `test` blocks of a project, run on the reference interpreter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import interlock
from interlock.cli import main
from interlock.compiler.payloads import compare
from interlock.compiler.route_tests import StepResult, run_tests
from interlock.dsl import CODES, load_project

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Every project under examples/: each folder is a project of its own.
PROJECTS = ["shop", "http"]

PROJECT = """
target fraud { mode sync, timeout 100ms }
target billing { mode async, on_exhausted drop }
target audit { mode async, on_exhausted drop }
route big { on order.created when amount >= 1000 to fraud, billing }
route every { on order.* to audit }
"""


@pytest.mark.parametrize("name", PROJECTS)
def test_the_examples_pass(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(EXAMPLES / name)]) == 0
    out = capsys.readouterr().out
    assert "0 failing" in out


def test_every_folder_of_examples_with_route_files_is_a_listed_project() -> None:
    folders = {path.relative_to(EXAMPLES).parts[0] for path in EXAMPLES.rglob("*.route")}
    assert folders == set(PROJECTS)


@pytest.mark.parametrize("name", PROJECTS)
def test_the_examples_check_clean(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLES / name)]) == 0
    assert capsys.readouterr() == ("", "")


def test_every_step_is_run_and_compared(tmp_path: Path) -> None:
    (tmp_path / "p.route").write_text(PROJECT + """
test t {
  send order.created { amount: 5000 }
  expect fraud, billing, audit
  send order.created { amount: 5 }
  expect audit, billing
  send payment.failed { }
  expect nothing
}""")
    results = run_tests(load_project([str(tmp_path)]))
    assert [(r.step, r.passed) for r in results] == [(1, True), (2, False), (3, True)]
    second = results[1]
    assert second.missing == {"billing"} and second.unexpected == frozenset()
    assert second.actual == {"audit"}


def test_a_failure_shows_expected_and_actual_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.route").write_text(PROJECT + "test small { send order.created { amount: 5 } expect billing }\n")
    assert main(["test", "p.route"]) == 1
    out = capsys.readouterr().out
    assert "FAIL small (step 1, send order.created)  p.route:7:14" in out
    assert "expected" in out and "actual" in out and "missing" in out and "unexpected" in out
    assert "0 tests ok, 1 failing (1 steps)" in out
    assert main(["test", "--format", "json", "p.route"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["steps"][0]["expected"] == ["billing"] and report["steps"][0]["actual"] == ["audit"]
    assert report["summary"] == {"steps": 1, "failed": 1}


def test_a_project_with_errors_is_not_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.route").write_text("test t { send e { } expect nowhere }\n")
    assert main(["test", str(tmp_path)]) == 1
    assert "error[E0104]" in capsys.readouterr().err


# ---- what a target receives: `expect TARGET with { ... }` --------------------------------

PAYLOADS = """
event order.created { id: string, amount: float, customer: { id: string, tier: string? },
                      items: list<{ sku: string, quantity: int }>, coupon: string? }
target ledger { mode sync }
target audit { mode sync }
target billing { mode sync, emits [invoice.issued] }
route book {
  on order.created
  to ledger with { order: id, amount_cents: amount, customer: { id: customer.id }, skus: items.sku, kind: "sale" },
     audit
}
route bill { on order.created to billing }
route booked { on invoice.issued to ledger with { invoice: id } }
"""
ORDER = ('{ id: "o1", amount: 500, customer: { id: "c1", tier: "gold" }, '
         'items: [{ sku: "A", quantity: 1 }, { sku: "B", quantity: 2 }] }')


def _results(tmp_path: Path, steps: str, project: str = PAYLOADS) -> list[StepResult]:
    (tmp_path / "p.route").write_text(project + "test t {\n" + steps + "\n}\n")
    loaded = load_project([str(tmp_path)])
    assert loaded.ok, loaded.diagnostics
    return run_tests(loaded)


def _order_step(expectation: str) -> str:
    """The order sent, expecting the targets it reaches, one of them with `expectation`."""
    target = expectation.split()[0]
    listed = ", ".join(expectation if name == target else name for name in ("billing", "audit", "ledger"))
    return f"send order.created {ORDER}\nexpect {listed}"


@pytest.mark.parametrize("expectation", [
    'ledger with { amount_cents: 500 }',                            # a subset of the fields
    'ledger with { amount_cents: 500.0 }',                          # numbers by value
    'ledger with { customer: { id: "c1" }, skus: ["A", "B"] }',     # nested objects, lists in order
    'ledger with { coupon: null }',                                 # null: no such field
    'ledger with exactly { order: "o1", amount_cents: 500, customer: { id: "c1" }, skus: ["A", "B"], kind: "sale" }',
    'audit with { items: [{ sku: "A" }, { quantity: 2 }] }',        # objects in lists by subset too
    'audit with { customer: { tier: "gold" } }',                    # no transform: the event's data
])
def test_an_expected_payload_that_matches_passes(tmp_path: Path, expectation: str) -> None:
    (result,) = _results(tmp_path, _order_step(expectation))
    assert result.passed, result
    (payload,) = result.payloads
    assert payload.reached and payload.differences == ()


@pytest.mark.parametrize(("expectation", "differences"), [
    ('ledger with { amount_cents: 5 }', [("amount_cents", "differs", 5, 500)]),
    ('ledger with { skus: ["A"] }', [("skus", "differs", ["A"], ["A", "B"])]),           # lists: the same length
    ('ledger with { skus: ["B", "A"] }', [("skus[0]", "differs", "B", "A"), ("skus[1]", "differs", "A", "B")]),
    ('ledger with { customer: { id: "c2" } }', [("customer.id", "differs", "c2", "c1")]),
    ('ledger with exactly { order: "o1", amount_cents: 500, customer: { }, skus: ["A", "B"] }',
     [("customer.id", "unexpected", None, "c1"), ("kind", "unexpected", None, "sale")]),
    ('audit with { coupon: "X" }', [("coupon", "missing", "X", None)]),
    ('audit with { customer: { tier: null } }', [("customer.tier", "differs", None, "gold")]),
    ('audit with { items: [{ sku: "A" }, { sku: "C" }] }', [("items[1].sku", "differs", "C", "B")]),
])
def test_an_expected_payload_that_does_not_match_fails_field_by_field(
        tmp_path: Path, expectation: str, differences: list[tuple[str, str, object, object]]) -> None:
    (result,) = _results(tmp_path, _order_step(expectation))
    assert result.expected == result.actual
    assert not result.passed
    (payload,) = result.payloads
    assert [(d.path, d.kind, d.expected, d.actual) for d in payload.differences] == differences


def test_a_payload_expected_of_a_target_not_reached_fails(tmp_path: Path) -> None:
    (result,) = _results(tmp_path, 'send invoice.issued { id: "i1" }\nexpect ledger, audit with { id: "i1" }')
    (payload,) = result.payloads
    assert not payload.reached and not payload.passed and not result.passed


def test_one_target_reached_with_two_payloads_fails_and_gets_the_first(tmp_path: Path) -> None:
    project = PAYLOADS + 'route big { on order.created when amount > 100 to ledger with { big: true } }\n'
    (result,) = _results(tmp_path, _order_step('ledger with { kind: "sale" }'), project)
    (payload,) = result.payloads
    assert payload.passed  # it receives the first delivery's payload, as the runtime does
    (conflict,) = result.conflicts
    assert conflict.target == "ledger" and conflict.routes == ("book", "big")
    assert conflict.payloads[1] == {"big": True}
    assert not result.passed
    # the runtime delivers the same payload to ledger
    router = interlock.load(str(tmp_path))
    received = {}
    router.handler("ledger")(lambda event: received.update(event.data))
    for name in ("audit", "billing"):
        router.handler(name)(lambda event: None)
    router.publish_sync("order.created", {"id": "o1", "amount": 500, "customer": {"id": "c1"}, "items": []})
    assert received == {"order": "o1", "amount_cents": 500, "customer": {"id": "c1"}, "kind": "sale"}


def test_a_failing_payload_is_shown_field_by_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.route").write_text(PAYLOADS + f"""
test t {{
  send order.created {ORDER}
  expect billing, audit with {{ amount: 400, coupon: "X" }}, ledger
}}""")
    assert main(["test", "p.route"]) == 1
    out = capsys.readouterr().out
    assert "audit (with { ... }): 2 fields differ" in out
    assert re.search(r"amount +400 +500", out) and re.search(r"coupon +\"X\" +missing", out)
    assert 'received: {"id": "o1", "amount": 500' in out
    assert main(["test", "--format", "json", "p.route"]) == 1
    (payload,) = json.loads(capsys.readouterr().out)["steps"][0]["payloads"]
    assert payload["target"] == "audit" and not payload["passed"] and not payload["exact"]
    assert payload["actual"]["amount"] == 500
    assert payload["differences"] == [
        {"path": "amount", "kind": "differs", "expected": 400, "actual": 500},
        {"path": "coupon", "kind": "missing", "expected": "X"},
    ]


# ---- following `emits`: `then TARGET emits TYPE { ... }` -----------------------------------


def test_a_then_step_routes_what_a_target_emits(tmp_path: Path) -> None:
    first, second = _results(tmp_path, f"""
  send order.created {ORDER}
  expect billing, audit, ledger
  then billing emits invoice.issued {{ id: "i1" }}
  expect ledger with exactly {{ invoice: "i1" }}""")
    assert first.passed and first.emitted_by is None
    assert second.emitted_by == "billing" and second.event_type == "invoice.issued"
    assert second.actual == {"ledger"} and second.passed


def test_a_failing_then_step_is_named_by_its_emitter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.route").write_text(PAYLOADS + f"""
test t {{
  send order.created {ORDER}
  expect billing, audit, ledger
  then billing emits invoice.issued {{ id: "i1" }}
  expect ledger, audit
}}""")
    assert main(["test", "p.route"]) == 1
    assert "FAIL t (step 2, billing emits invoice.issued)  p.route:18:3" in capsys.readouterr().out
    assert main(["test", "--format", "json", "p.route"]) == 1
    step = json.loads(capsys.readouterr().out)["steps"][1]
    assert step["emitted_by"] == "billing" and step["actual"] == ["ledger"] and not step["passed"]


def test_check_refuses_a_then_step_a_target_cannot_take(tmp_path: Path) -> None:
    (tmp_path / "p.route").write_text(PAYLOADS + """
test t {
  send invoice.issued { id: "i1" }
  expect ledger
  then ledger emits invoice.issued { id: "i2" }
  expect ledger
}""")
    found = [(d.code, d.span.line) for d in interlock.check(str(tmp_path))]
    assert found == [("E0216", 18)]


# ---- payloads.compare, the rule -------------------------------------------------------------


@pytest.mark.parametrize(("expected", "actual", "exact", "matches"), [
    ({"a": 1}, {"a": 1.0, "b": 2}, False, True),
    ({"a": 1}, {"a": 1.0, "b": 2}, True, False),
    ({"a": 1}, {"a": 1, "b": None}, True, True),          # null is no value
    ({"a": True}, {"a": 1}, False, False),                # booleans are not numbers
    ({"a": 1}, {"a": True}, False, False),
    ({"a": [1, [2]]}, {"a": [1, [2]]}, True, True),
    ({"a": [1, [2]]}, {"a": [1, [2, 3]]}, False, False),
    ({"a": {"b": {}}}, {"a": {"b": {"c": 1}}}, False, True),
    ({"a": {"b": {}}}, {"a": {"b": {"c": 1}}}, True, False),
    ({"a": [{"b": 1}]}, {"a": [{"b": 1, "c": 2}]}, False, True),
    ({"a": "x"}, {"a": ["x"]}, False, False),
])
def test_compare(expected: dict[str, object], actual: dict[str, object], exact: bool, matches: bool) -> None:
    assert (compare(expected, actual, exact) == []) is matches


# ---- the language reference says so ----------------------------------------------------------

LANGUAGE = Path(__file__).resolve().parent.parent / "docs" / "language.md"


def test_the_runnable_test_example_of_the_reference_passes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """§4.11's example with `then ... emits` and `with` is a whole project: it checks clean and its test passes."""
    blocks = re.findall(r"```route\n(.*?)```", LANGUAGE.read_text(), re.DOTALL)
    (example,) = [b for b in blocks if "then billing emits" in b]
    (tmp_path / "example.route").write_text(example)
    assert main(["check", str(tmp_path)]) == 0
    assert main(["test", str(tmp_path)]) == 0
    assert "1 tests ok, 0 failing (2 steps)" in capsys.readouterr().out


def test_every_code_is_in_the_reference_table_and_every_row_is_a_code() -> None:
    rows = set(re.findall(r"^\| `([EW]\d{4})` \| (?:error|warning) \|", LANGUAGE.read_text(), re.MULTILINE))
    assert rows == set(CODES)


def test_expected_payloads_know_the_new_transforms(tmp_path: Path) -> None:
    """`expect t with { ... }` against a transform with `...`, a template and a default: the
    event's fields are received too (E0213 said `id` was not, found when merging), a template
    is a string, a default's field is there."""
    (tmp_path / "a.route").write_text(
        'event order.created { id: string, amount: float }\ntarget t { mode sync }\n'
        'route r { on order.created to t with { ..., source: "x", label: f"order {id}", amt: amount ?? 0 } }\n'
        'test spread {\n  send order.created { id: "o1", amount: 5 }\n'
        '  expect t with { id: "o1", source: "x", label: "order o1", amt: 5 }\n}\n'
        'test wrong_kinds {\n  send order.created { id: "o1", amount: 5 }\n  expect t with { label: 5 }\n}\n')
    found = [(d.code, d.span.line) for d in interlock.check(str(tmp_path))]
    assert found == [("E0214", 10)]


def test_a_spread_alone_is_the_same_payload_as_no_transform(tmp_path: Path) -> None:
    """`to t` and `to t with { ... }` deliver the same payload (the event's data): no E0260,
    which refused a project without conflict (found by review)."""
    (tmp_path / "a.route").write_text('target t { mode sync }\nroute a { on o.a to t }\n'
                                      'route b { on o.a to t with { ... } }\n'
                                      'route c { on o.a to t with { ..., x: 1 } }\n')
    found = [(d.code, d.span.line) for d in interlock.check(str(tmp_path))]
    assert found == [("E0260", 4)]  # only the one that adds a field differs
