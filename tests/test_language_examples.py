"""Every normative example of the language brief parses into the AST it means.

The fixtures in tests/fixtures/normative/ are the brief's fenced `route` blocks,
copied verbatim, one file per section.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.dsl import ast, load_project, parse_text

NORMATIVE = Path(__file__).parent / "fixtures" / "normative"


def parse(name: str) -> ast.Module:
    path = NORMATIVE / f"{name}.route"
    module, diagnostics = parse_text(path.read_text(), str(path))
    assert diagnostics == []
    return module


def test_section_2_imports() -> None:
    (imp,) = parse("02_imports").decls
    assert isinstance(imp, ast.Import)
    assert imp.path == "common.route"
    assert (imp.span.line, imp.span.column) == (1, 1)


def test_section_3_schemas() -> None:
    created, cancelled = parse("03_schemas").decls
    assert isinstance(created, ast.EventDecl) and isinstance(cancelled, ast.EventDecl)
    assert created.name.text == "order.created"
    assert created.schema is not None
    fields = {f.name.text: f for f in created.schema.fields}
    assert list(fields) == ["id", "amount", "currency", "customer", "tags", "coupon"]
    assert fields["amount"].type == ast.ScalarType("float", fields["amount"].type.span)
    customer = fields["customer"].type
    assert isinstance(customer, ast.ObjectType)
    assert [(f.name.text, f.type.name) for f in customer.fields if isinstance(f.type, ast.ScalarType)] == [
        ("id", "string"), ("tier", "string")]
    tags = fields["tags"].type
    assert isinstance(tags, ast.ListType) and isinstance(tags.item, ast.ScalarType) and tags.item.name == "string"
    assert fields["coupon"].optional and not fields["id"].optional
    assert cancelled.schema is not None
    assert [(f.name.text, f.optional) for f in cancelled.schema.fields] == [("id", False), ("reason", True)]


def test_section_4_retry_policies_and_dead_letters() -> None:
    standard, quick, never, dlq = parse("04_retry").decls
    assert isinstance(standard, ast.RetryPolicy)
    assert standard.attempts is not None and standard.attempts.value == 5
    backoff = standard.backoff
    assert isinstance(backoff, ast.ExponentialBackoff)
    assert (backoff.initial.ms, backoff.factor.value) == (100, 2.0)
    assert backoff.max is not None and backoff.max.ms == 10_000
    assert standard.jitter is not None and standard.jitter.value == "full"
    assert [n.text for n in standard.retry_on or ()] == ["TimeoutError", "ConnectionError"]
    assert [n.text for n in standard.give_up_on or ()] == ["ValidationError"]
    assert standard.deadline is not None and standard.deadline.ms == 120_000
    assert isinstance(quick, ast.RetryPolicy)
    assert quick.attempts is not None and quick.attempts.value == 3
    assert isinstance(quick.backoff, ast.FixedBackoff) and quick.backoff.delay.ms == 50
    assert quick.jitter is None and quick.retry_on is None and quick.give_up_on is None
    assert isinstance(never, ast.RetryPolicy)
    assert never.attempts is not None and never.attempts.value == 1 and never.backoff is None
    assert isinstance(dlq, ast.DeadLetterDecl)
    assert dlq.name.text == "billing_dlq" and dlq.retain is not None and dlq.retain.ms == 7 * 86_400_000


def test_section_5_targets() -> None:
    billing, fraud, audit = parse("05_targets").decls
    assert isinstance(billing, ast.TargetDecl)
    o = billing.options
    assert o.mode is not None and o.mode.value == "async"
    assert isinstance(o.retry, ast.Name) and o.retry.text == "standard"
    assert o.dead_letter is not None and o.dead_letter.text == "billing_dlq"
    assert o.timeout is not None and o.timeout.ms == 2000
    assert o.concurrency is not None and o.concurrency.value == 8
    assert o.order_by is not None and o.order_by.parts == ("customer", "id")
    assert [e.text for e in o.emits or ()] == ["invoice.issued"]
    assert isinstance(fraud, ast.TargetDecl)
    assert fraud.options.mode is not None and fraud.options.mode.value == "sync"
    assert fraud.options.timeout is not None and fraud.options.timeout.ms == 200
    assert isinstance(fraud.options.retry, ast.Name) and fraud.options.retry.text == "quick"
    # "commas also separate"
    assert isinstance(audit, ast.TargetDecl)
    assert audit.options.mode is not None and audit.options.mode.value == "async"
    assert isinstance(audit.options.retry, ast.Name) and audit.options.retry.text == "standard"
    assert audit.options.dead_letter is not None and audit.options.dead_letter.text == "billing_dlq"


def test_section_6_routes_and_predicates() -> None:
    big, every = parse("06_routes").decls
    assert isinstance(big, ast.RouteDecl)
    assert [p.text for p in big.on] == ["order.created"]
    assert isinstance(big.when, ast.And)
    first, second, third = big.when.operands
    assert isinstance(first, ast.Compare)
    assert (first.path.text, first.op, first.value.value) == ("amount", ">=", 1000)
    assert isinstance(second, ast.InList)
    assert second.path.text == "currency" and [v.value for v in second.values] == ["USD", "EUR"]
    assert not second.negated and not second.any_element
    assert isinstance(third, ast.Compare)
    assert (third.path.parts, third.op, third.value.value) == (("customer", "tier"), "!=", "free")
    assert [d.target.text for d in big.to] == ["fraud", "billing"]
    assert isinstance(every, ast.RouteDecl)
    assert every.on[0].text == "order.*" and every.on[0].is_glob
    assert every.when is None
    assert [d.target.text for d in every.to] == ["audit"]


def test_section_7_choose() -> None:
    (choose,) = parse("07_choose").decls
    assert isinstance(choose, ast.ChooseDecl)
    assert choose.name.text == "by_region"
    first, second, otherwise = choose.branches
    assert isinstance(first.when, ast.Compare) and first.when.path.text == "customer.tier"
    assert [d.target.text for d in first.to] == ["priority_billing"]
    assert isinstance(second.when, ast.Compare) and second.when.value.value == "EUR"
    assert otherwise.when is None and [d.target.text for d in otherwise.to] == ["billing"]


def test_section_8_defaults_and_unrouted() -> None:
    defaults, unrouted = parse("08_defaults").decls
    assert isinstance(defaults, ast.DefaultsDecl)
    assert isinstance(defaults.options.retry, ast.Name) and defaults.options.retry.text == "standard"
    assert defaults.options.dead_letter is not None and defaults.options.dead_letter.text == "billing_dlq"
    assert defaults.options.timeout is not None and defaults.options.timeout.ms == 5000
    assert isinstance(unrouted, ast.UnroutedDecl) and unrouted.dead_letter.text == "unrouted_dlq"


def test_section_9_transform() -> None:
    (slim,) = parse("09_transform").decls
    assert isinstance(slim, ast.RouteDecl)
    (delivery,) = slim.to
    assert delivery.target.text == "analytics"
    assert delivery.transform is not None
    entries = {e.key.text: e.value for e in delivery.transform.entries}
    assert {k: v.parts for k, v in entries.items() if isinstance(v, ast.Path)} == {
        "order_id": ("id",), "total": ("amount",), "tier": ("customer", "tier")}


def test_section_10_tests() -> None:
    big, small = parse("10_tests").decls
    assert isinstance(big, ast.TestDecl) and isinstance(small, ast.TestDecl)
    (step,) = big.steps
    assert step.send.event_type.text == "order.created"
    assert step.send.data is not None
    assert ast.to_python(step.send.data) == {
        "id": "o1", "amount": 5000, "currency": "USD", "customer": {"id": "c1", "tier": "gold"}, "tags": []}
    assert [t.text for t in step.expect.targets] == ["fraud", "billing", "audit", "priority_billing", "analytics"]
    assert [t.text for t in small.steps[0].expect.targets] == ["billing", "audit", "analytics"]


def test_expect_nothing() -> None:
    module, diagnostics = parse_text('test t { send x.y { a: 1 } expect nothing }')
    assert diagnostics == []
    (test,) = module.decls
    assert isinstance(test, ast.TestDecl) and test.steps[0].expect.targets == ()


def test_sections_together_form_a_project_that_resolves(tmp_path: Path) -> None:
    """Sections 3 to 10 in one project, plus the targets the brief leaves undeclared, check clean."""
    for path in NORMATIVE.glob("*.route"):
        if path.name != "02_imports.route":
            (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "glue.route").write_text(
        "target priority_billing { mode async }\ntarget eu_billing { mode async }\ntarget analytics { mode async }\n")
    project = load_project([str(tmp_path)])
    assert project.diagnostics == ()
    assert set(project.targets) == {"billing", "fraud", "audit", "priority_billing", "eu_billing", "analytics"}
    assert set(project.retries) == {"standard", "quick", "never"}
    # `unrouted to dead_letter unrouted_dlq` declares the dead letter it names
    assert set(project.dead_letters) == {"billing_dlq", "unrouted_dlq"}
    assert set(project.routes) == {"big_orders", "every_order", "slim"}
    assert set(project.chooses) == {"by_region"}
    assert set(project.tests) == {"big_order_goes_to_fraud", "small_order"}
    assert project.defaults is not None and project.unrouted is not None


@pytest.mark.parametrize("text", [
    "1m30s", "250ms", "2s", "5m", "1h", "7d", "1d2h3m4s5ms",
])
def test_durations(text: str) -> None:
    module, diagnostics = parse_text(f"target t {{ timeout {text} }}")
    assert diagnostics == []
    (target,) = module.decls
    assert isinstance(target, ast.TargetDecl) and target.options.timeout is not None
    from interlock.dsl.transform import parse_duration
    assert target.options.timeout.ms == parse_duration(text)[0]


def test_duration_values() -> None:
    from interlock.dsl.transform import parse_duration
    assert parse_duration("1m30s") == (90_000, None)
    assert parse_duration("1d2h3m4s5ms") == (93_784_005, None)
    assert parse_duration("30s1m")[0] is None
    assert parse_duration("5min")[0] is None


def test_string_escapes() -> None:
    module, diagnostics = parse_text(
        r'test t { send e.x { s: "q\" b\\ n\n t\t e\u00e9 p\ud83d\ude00" } expect nothing }')
    assert diagnostics == []
    (test,) = module.decls
    assert isinstance(test, ast.TestDecl) and test.steps[0].send.data is not None
    assert ast.to_python(test.steps[0].send.data) == {"s": 'q" b\\ n\n t\t e\u00e9 p\U0001F600'}


def test_numbers() -> None:
    module, diagnostics = parse_text("test t { send e.x { a: 42, b: -7, c: 3.14, d: 1e6, e: 5.0 } expect nothing }")
    assert diagnostics == []
    (test,) = module.decls
    assert isinstance(test, ast.TestDecl) and test.steps[0].send.data is not None
    data = ast.to_python(test.steps[0].send.data)
    assert data == {"a": 42, "b": -7, "c": 3.14, "d": 1e6, "e": 5.0}
    assert isinstance(data, dict) and isinstance(data["a"], int) and isinstance(data["e"], float)


def test_every_predicate_form() -> None:
    text = """route r {
      on order.*, payment.**
      when a == 1 and b != "x" and c < 2 and d <= 2.5 and e > -1 and f >= 0
        and g in ["a", "b"] and h not in [1, 2] and i in 10..100 and exists j and missing k
        and l startswith "EU-" and m endswith ".pdf" and n contains "x" and o matches "ord-*-eu"
        and p equals_ignore_case "gold" and tags contains "vip" and any tags in ["vip", "press"]
        and source_ip in cidr "10.0.0.0/8" and not (q == true or r == false) and items.sku startswith "EU-"
      to t
    }"""
    module, diagnostics = parse_text(text)
    assert diagnostics == []
    (route,) = module.decls
    assert isinstance(route, ast.RouteDecl) and isinstance(route.when, ast.And)
    kinds = [type(p).__name__ for p in route.when.operands]
    assert kinds == ["Compare"] * 6 + ["InList", "InList", "InRange", "Exists", "Missing"] + ["StringTest"] * 2 + [
        "Contains", "StringTest", "StringTest", "Contains", "InList", "InCidr", "Not", "StringTest"]
    negated = route.when.operands[7]
    assert isinstance(negated, ast.InList) and negated.negated
    any_in = route.when.operands[17]
    assert isinstance(any_in, ast.InList) and any_in.any_element
    cidr = route.when.operands[18]
    assert isinstance(cidr, ast.InCidr) and cidr.cidr == "10.0.0.0/8"


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    module, _ = parse_text("route r { on e when not a == 1 and b == 2 or c == 3 to t }")
    (route,) = module.decls
    assert isinstance(route, ast.RouteDecl)
    when = route.when
    assert isinstance(when, ast.Or)
    left, right = when.operands
    assert isinstance(left, ast.And) and isinstance(left.operands[0], ast.Not)
    assert isinstance(right, ast.Compare)


def test_keywords_are_contextual() -> None:
    """Words that are keywords elsewhere work as field names and in paths."""
    text = """event e.x { type: string, order: int, key: string, route: string, to: string, list: int }
    route r { on e.x when type == "a" and order > 1 and key startswith "k" to t }
    target t { mode async, order by key }"""
    module, diagnostics = parse_text(text)
    assert diagnostics == []
    event = module.decls[0]
    assert isinstance(event, ast.EventDecl) and event.schema is not None
    assert [f.name.text for f in event.schema.fields] == ["type", "order", "key", "route", "to", "list"]


def test_spans_cover_declarations() -> None:
    text = "# comment\n\ntarget billing {\n  mode async\n}\n"
    module, _ = parse_text(text, "f.route")
    (target,) = module.decls
    assert isinstance(target, ast.TargetDecl)
    assert (target.span.line, target.span.column, target.span.end_line, target.span.end_column) == (3, 1, 5, 2)
    assert text[target.span.start:target.span.end].startswith("target billing {")
    assert (target.name.span.line, target.name.span.column) == (3, 8)
    assert target.span.file == "f.route"


def test_matches_keeps_escaped_stars_for_the_glob() -> None:
    module, diagnostics = parse_text(r'route r { on e when x matches "a\*b?" to t }')
    assert diagnostics == []
    (route,) = module.decls
    assert isinstance(route, ast.RouteDecl) and isinstance(route.when, ast.StringTest)
    assert route.when.value.value == "a\\*b?"


def test_transforms_nest_objects_and_hold_constants() -> None:
    module, diagnostics = parse_text(
        'route r { on e to t with { total: { amount: amount, currency: "EUR" }, tags: [1, 2] } }')
    assert diagnostics == []
    (route,) = module.decls
    assert isinstance(route, ast.RouteDecl) and route.to[0].transform is not None
    total, tags = route.to[0].transform.entries
    assert isinstance(total.value, ast.Transform)
    assert [(e.key.text, type(e.value).__name__) for e in total.value.entries] == [
        ("amount", "Path"), ("currency", "Scalar")]
    assert isinstance(tags.value, ast.ListLit)


def test_transforms_build_templates_defaults_and_the_whole_event() -> None:
    module, diagnostics = parse_text(
        'route r { on e to t with { ..., s: f"order {id}", d: a.b ?? c ?? "x", o: { ... } } }')
    assert diagnostics == []
    (route,) = module.decls
    assert isinstance(route, ast.RouteDecl) and route.to[0].transform is not None
    transform = route.to[0].transform
    assert transform.spread is not None
    template, default, nested = (e.value for e in transform.entries)
    assert isinstance(template, ast.Template) and template.parts[0] == "order "
    assert isinstance(template.parts[1], ast.Path) and template.parts[1].parts == ("id",)
    assert isinstance(default, ast.Default) and default.path.parts == ("a", "b")
    assert isinstance(default.fallback, ast.Default) and isinstance(default.fallback.fallback, ast.Scalar)
    assert isinstance(nested, ast.Transform) and nested.spread is not None and nested.entries == ()


def test_expect_with_and_then_emits() -> None:
    module, diagnostics = parse_text(
        'test t {\n'
        '  send order.created { id: "o1" }\n'
        '  expect billing with { id: "o1" }, audit, ledger with exactly { total: { amount: 5 } }\n'
        '  then billing emits invoice.issued { id: "i1" }\n'
        '  expect ledger\n'
        '  then ledger emits ledger.booked\n'
        '  expect nothing\n'
        '}')
    assert diagnostics == []
    (test,) = module.decls
    assert isinstance(test, ast.TestDecl)
    first, second, third = test.steps
    assert first.send.emitted_by is None
    assert [t.text for t in first.expect.targets] == ["billing", "audit", "ledger"]
    assert [(p.target.text, p.exact, ast.to_python(p.data)) for p in first.expect.payloads] == [
        ("billing", False, {"id": "o1"}), ("ledger", True, {"total": {"amount": 5}})]
    assert second.send.emitted_by is not None and second.send.emitted_by.text == "billing"
    assert second.send.event_type.text == "invoice.issued" and second.send.data is not None
    assert (second.send.span.line, second.send.span.column) == (4, 3)  # from `then`
    assert third.send.data is None and third.expect.targets == ()


def test_then_exactly_and_with_are_names_where_a_name_fits() -> None:
    module, diagnostics = parse_text(
        'test t { send x.y { } expect then, exactly with exactly { }, with with { }, emits\n'
        '  then then emits x.z expect with }')
    assert diagnostics == []
    (test,) = module.decls
    assert isinstance(test, ast.TestDecl)
    assert [t.text for t in test.steps[0].expect.targets] == ["then", "exactly", "with", "emits"]
    assert [(p.target.text, p.exact) for p in test.steps[0].expect.payloads] == [("exactly", True), ("with", False)]
    emitter = test.steps[1].send.emitted_by
    assert emitter is not None and emitter.text == "then"
