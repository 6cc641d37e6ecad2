"""Transforms that build payloads: templates, defaults and `...` (docs/language.md, §4.10).

From the source to what a handler receives: the parser's reading of them, the artifact's form
and version, the runtime's `apply_transform` on the cases the docs name, the engine delivering
the built payload to async and sync handlers, and, as a property, the runtime agreeing with the
reference (`compiler/reference_transform.py`) on random transforms and events.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interlock
from interlock.compiler.artifact import build_artifact
from interlock.compiler.pipeline import check
from interlock.compiler.reference_transform import payload
from interlock.dsl import ast, load_project, parse_text
from interlock.runtime import artifact as runtime_artifact
from interlock.runtime.entry import delivery_entry, pack, unpack
from interlock.runtime.event import Event
from interlock.runtime.store import Packed
from interlock.runtime.transform import apply_transform, text_of

ROOT = Path(__file__).resolve().parent.parent


def write(text: str) -> Path:
    folder = Path(tempfile.mkdtemp())
    (folder / "p.route").write_text(text)
    return folder / "p.route"


def transform_of(text: str) -> ast.Transform:
    module, diagnostics = parse_text(f"route r {{ on e.x to t with {text} }}")
    assert diagnostics == []
    (route,) = module.decls
    assert isinstance(route, ast.RouteDecl) and route.to[0].transform is not None
    return route.to[0].transform


def compiled(text: str) -> dict[str, Any]:
    """The artifact's form of a transform written `with TEXT`, through a JSON round trip."""
    project = load_project([str(write(f"target t {{ mode sync }}\nroute r {{ on e.x to t with {text} }}"))])
    assert project.diagnostics == ()
    artifact = json.loads(json.dumps(build_artifact(project)))
    transform: dict[str, Any] = artifact["dispatch"]["routes"][0]["deliveries"][0]["transform"]
    return transform


def built(text: str, data: dict[str, Any]) -> dict[str, Any]:
    """What the runtime builds, checked against the reference on the way."""
    out = apply_transform(compiled(text), data)
    assert out == payload(transform_of(text), data)
    return out


# ---- the parser's reading --------------------------------------------------------------


def test_a_template_is_text_and_paths() -> None:
    written = '{ subject: f"order {id} for { customer.id }: {{{n}}} \\u00e9\\"" }'
    (entry,) = transform_of(written).entries
    template = entry.value
    assert isinstance(template, ast.Template)
    texts = [p if isinstance(p, str) else p.parts for p in template.parts]
    assert texts == ["order ", ("id",), " for ", ("customer", "id"), ": {", ("n",), '} é"']
    # a place's span is its path, so that E0201 points into the template
    customer = template.parts[3]
    column = len("route r { on e.x to t with ") + written.index("customer.id") + 1
    assert isinstance(customer, ast.Path) and (customer.span.column, customer.span.end_column) == (column, column + 11)


def test_a_plain_string_stays_a_constant_and_f_alone_a_field() -> None:
    constant, field = transform_of('{ a: "{id}", b: f }').entries
    assert constant.value == ast.Scalar("{id}", constant.value.span)
    assert isinstance(field.value, ast.Path) and field.value.parts == ("f",)


def test_defaults_chain_to_the_right() -> None:
    (entry,) = transform_of('{ email: contact.email ?? customer.email ?? "unknown" }').entries
    default = entry.value
    assert isinstance(default, ast.Default) and default.path.parts == ("contact", "email")
    assert isinstance(default.fallback, ast.Default) and default.fallback.path.parts == ("customer", "email")
    assert isinstance(default.fallback.fallback, ast.Scalar) and default.fallback.fallback.value == "unknown"


def test_the_spread_comes_first_in_any_object() -> None:
    transform = transform_of('{ ..., original: { ... }, source: "billing" }')
    assert transform.spread is not None
    original, _ = transform.entries
    assert isinstance(original.value, ast.Transform) and original.value.spread is not None
    assert original.value.entries == ()


@pytest.mark.parametrize(("text", "codes"), [
    ('{ a: f"{id" }', ["E0030"]),
    ('{ a: f"a } b" }', ["E0030"]),
    ('{ a: f"{ }" }', ["E0030"]),
    ('{ a: f"{a b}" }', ["E0015"]),
    ('{ a: f"{items.*}" }', ["E0015"]),
    ('{ a: f"\\{x\\}" }', ["E0010", "E0010"]),
    ('{ a: f"\\q {x}" }', ["E0010"]),
    ('{ a: 1, ... }', ["E0031"]),
    ('{ ..., ... }', ["E0031"]),
    ('{ a: items.* ?? 1 }', ["E0015"]),
])
def test_front_end_diagnostics(text: str, codes: list[str]) -> None:
    _, diagnostics = parse_text(f"route r {{ on e.x to t with {text} }}")
    assert [d.code for d in diagnostics] == codes


def test_reading_a_template_takes_linear_time() -> None:
    """Thousands of `{` without their `}`: each is looked for once, not once per `{`."""
    import time

    def seconds(count: int) -> float:
        started = time.perf_counter()
        parse_text('route r { on e.x to t with { a: f"' + "{a" * count + '}" } }')
        return time.perf_counter() - started

    seconds(1000)
    small, large = seconds(20_000), seconds(160_000)
    assert large < 8 * small * 3  # 8 times the text; quadratic would be 64 times


# ---- the artifact ------------------------------------------------------------------------


def test_the_artifact_form() -> None:
    transform = compiled('{ ..., s: f"a{x.y}b", d: x ?? y ?? 1, o: { ... }, c: "{x}" }')
    assert transform == {"": {"spread": []}, "s": {"template": ["a", ["x", "y"], "b"]},
                         "d": {"copy": ["x"], "default": {"copy": ["y"], "default": {"value": 1}}},
                         "o": {"object": {"": {"spread": []}}}, "c": {"value": "{x}"}}


@pytest.mark.parametrize(("transform", "version"), [
    ("", 1), ("with { a: x, b: { c: 1 } }", 1), ('with { a: f"{x}" }', 2), ("with { a: x ?? 1 }", 2),
    ("with { ... }", 2), ("with { a: { b: { ... } } }", 2),
])
def test_an_artifact_is_version_2_only_when_it_builds_payloads(transform: str, version: int) -> None:
    project = load_project([str(write(f"target t {{ mode sync }}\nroute r {{ on e.x to t {transform} }}"))])
    assert build_artifact(project)["version"] == version


def test_a_runtime_that_reads_only_version_1_refuses_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    source = write('target t { mode sync }\nroute r { on e.x to t with { a: f"{x}" } }')
    assert interlock.load(str(source)).match("e.x", {}) == {"t"}  # this runtime reads it
    monkeypatch.setattr(runtime_artifact, "VERSIONS", (1,))  # as the runtime before version 2 was
    with pytest.raises(interlock.ArtifactError, match="format version 2; this runtime reads version 1: recompile"):
        interlock.load(str(source))
    # and a project without them still loads in it
    assert interlock.load(str(write("target t { mode sync }\nroute r { on e.x to t with { a: x } }")))


@pytest.mark.parametrize("version", [3, 0, True, 1.0, "2"])
def test_other_versions_are_refused(version: Any) -> None:
    project = load_project([str(write("target t { mode sync }\nroute r { on e.x to t }"))])
    content = build_artifact(project)
    content["version"] = version
    content.pop("integrity")
    content["integrity"] = runtime_artifact.canonical_hash(content)
    with pytest.raises(interlock.ArtifactError, match="this runtime reads versions 1 and 2"):
        runtime_artifact.verify_artifact(content)


def test_a_stored_delivery_keeps_its_transform() -> None:
    transform = compiled('{ ..., s: f"{id}", d: x ?? 1 }')
    ev = Event("e.x", {"id": "o1"}, id="o1")
    entry = pack(delivery_entry(ev, None, "t", ["r"], transform, None, 0))
    assert isinstance(entry, Packed)
    read = unpack(json.loads(entry), "t")
    assert read["transform"] == transform
    assert apply_transform(read["transform"], read["event"].data) == {"id": "o1", "s": "o1", "d": 1}


# ---- what the runtime builds ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    ("a b", "a b"), (5, "5"), (5.0, "5.0"), (-0.5, "-0.5"), (1e16, "1e+16"), (2**63, "9223372036854775808"),
    (True, "true"), (False, "false"), ([1, "a", None], '[1,"a",null]'), ({"k": "é", "n": [1.5]}, '{"k":"é","n":[1.5]}'),
    ("", ""),
])
def test_how_a_template_writes_a_value(value: Any, text: str) -> None:
    assert text_of(value) == text
    assert built('{ s: f"<{v}>" }', {"v": value}) == {"s": f"<{text}>"}


def test_a_template_writes_nothing_for_a_missing_or_null_field() -> None:
    assert built('{ s: f"order {id} for {customer.id}." }', {"customer": {"id": None}}) == {"s": "order  for ."}
    assert built('{ s: f"{{{id}}}" }', {"id": 7}) == {"s": "{7}"}


def test_a_template_writes_what_a_copy_would_hold() -> None:
    data = {"items": [{"sku": "a"}, {"sku": None}, {"sku": "b"}], "tags": ["x"], "one": [{"sku": "c"}]}
    assert built('{ s: f"{items.sku}|{tags}|{one.sku}", c: items.sku, o: one.sku }', data) == {
        "s": '["a","b"]|["x"]|["c"]', "c": ["a", "b"], "o": ["c"]}


def test_a_default_stands_for_a_missing_or_null_field_only() -> None:
    text = '{ email: customer.email ?? "unknown@example.com", n: n ?? 0, z: z ?? 1 }'
    assert built(text, {"customer": {"email": "a@b.c"}, "n": 0, "z": False}) == {
        "email": "a@b.c", "n": 0, "z": False}  # 0 and false are values
    assert built(text, {"customer": {"email": None}}) == {"email": "unknown@example.com", "n": 0, "z": 1}
    assert built(text, {}) == {"email": "unknown@example.com", "n": 0, "z": 1}


def test_defaults_chain_and_may_be_any_value() -> None:
    text = ('{ a: x ?? y ?? "c", b: x ?? f"no x in {id}", c: x ?? { id: id, tags: ["t"] }, d: x ?? null, '
            'e: items.sku ?? [] }')
    assert built(text, {"y": 2, "id": "o1", "items": [{}]}) == {
        "a": 2, "b": "no x in o1", "c": {"id": "o1", "tags": ["t"]}, "d": None, "e": []}
    assert built(text, {"x": "here"}) == {"a": "here", "b": "here", "c": "here", "d": "here", "e": []}


def test_the_spread_keeps_the_event_and_the_keys_replace_its_fields() -> None:
    data = {"id": "o1", "source": "shop", "amount": 5, "nested": {"a": 1}}
    assert built('{ ..., source: "billing", routed_by: "interlock" }', data) == {
        "id": "o1", "source": "billing", "amount": 5, "nested": {"a": 1}, "routed_by": "interlock"}
    # a copy that reaches nothing replaces nothing
    assert built("{ ..., amount: total }", data) == data
    # `null` is a value to set
    assert built("{ ..., amount: null }", data) == {**data, "amount": None}
    # the whole event under a key, and in a nested object too
    assert built('{ id: id, original: { ... }, copy: { ..., note: "x" } }', data) == {
        "id": "o1", "original": data, "copy": {**data, "note": "x"}}


def test_with_empty_braces_delivers_an_empty_object() -> None:
    assert built("{ }", {"id": "o1"}) == {}


# ---- through the engine --------------------------------------------------------------------

PROJECT = """
event order.created { id: string, amount: float, customer: { id: string, email: string? }, tags: list<string> }
dead_letter dlq
target notify { mode async, dead_letter dlq, retry { attempts 2 backoff fixed 5ms } }
target score { mode sync, timeout 1s }
target blank { mode async, dead_letter dlq }
route confirm {
  on order.created
  to notify with {
    ...
    subject: f"order {id} for {customer.id}: {amount} ({tags})"
    recipient: customer.email ?? "unknown@example.com"
    routed_by: "interlock"
  },
  score with { order: id, original: { ... } },
  blank with { }
}
"""


def test_handlers_receive_the_built_payload() -> None:
    router = interlock.load(str(write(PROJECT)))
    received: dict[str, list[Any]] = {"notify": [], "blank": [], "score": []}
    failed = []

    @router.handler("notify")
    async def notify(event: Event) -> None:
        if not failed:  # a retry builds the same payload
            failed.append(event.data)
            raise ConnectionError("down")
        received["notify"].append(event.data)

    @router.handler("blank")
    async def blank(event: Event) -> None:
        received["blank"].append(event.data)

    @router.handler("score")
    def score(event: Event) -> dict[str, Any]:
        received["score"].append(event.data)
        return {"ok": True}

    data = {"id": "o1", "amount": 5.0, "customer": {"id": "c1"}, "tags": ["vip"]}

    async def main() -> None:
        async with router:
            receipt = await router.publish("order.created", data)
            assert receipt.replies == {"score": {"ok": True}}
            await router.drain(5)

    asyncio.run(main())
    expected = {**data, "subject": 'order o1 for c1: 5.0 (["vip"])', "recipient": "unknown@example.com",
                "routed_by": "interlock"}
    assert failed == [expected] and received["notify"] == [expected]
    assert received["score"] == [{"order": "o1", "original": data}]
    assert received["blank"] == [{}]


def test_interlock_check_types_the_payload() -> None:
    """`interlock check` points at the field of a template and at a default of the wrong type."""
    source = write(PROJECT.replace("{customer.id}", "{customer.idd}").replace('"unknown@example.com"', "5"))
    found = sorted((d.code, d.span.line, d.span.column) for d in check(load_project([str(source)])))
    lines = source.read_text().splitlines()
    template_line = next(n for n, line in enumerate(lines, 1) if "subject:" in line)
    default_line = next(n for n, line in enumerate(lines, 1) if "recipient:" in line)
    assert found == [("E0201", template_line, lines[template_line - 1].index("idd") + 1),
                     ("E0202", default_line, lines[default_line - 1].index("5") + 1)]


# ---- the runtime agrees with the reference ----------------------------------------------------

PATHS = ["a", "b", "n.x", "n.y", "items.sku", "items.tags", "l"]
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**63), st.sampled_from([5.0, -0.5, 1e16, 1e-7]),
                    st.sampled_from(["", "a", "é", '"q"', "{x}"]))
_json = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(["x", "y", "sku"]), inner,
                                                                       max_size=2)), max_leaves=6)
_item = st.fixed_dictionaries({}, optional={"sku": _json, "tags": _json})
_data = st.fixed_dictionaries({}, optional={
    "a": _json, "b": _json, "l": _json,
    "n": st.one_of(_scalar, st.fixed_dictionaries({}, optional={"x": _json, "y": _json})),
    "items": st.one_of(_scalar, st.lists(st.one_of(_item, st.lists(_item, max_size=2), _scalar), max_size=3)),
})
_constant = st.sampled_from(['"c"', "1", "2.5", "true", "null", '[1, "x"]', "[]"])


@st.composite
def _value(draw: st.DrawFn, depth: int = 0) -> str:
    form = draw(st.integers(0, 5 if depth < 2 else 3))
    if form == 0:
        return draw(st.sampled_from(PATHS))
    if form == 1:
        places = draw(st.lists(st.sampled_from(PATHS), max_size=3))
        texts = draw(st.lists(st.sampled_from(["", "x ", "{{", "}}", "\\u00e9"]), min_size=len(places) + 1,
                              max_size=len(places) + 1))
        return 'f"' + "".join(t + "{" + p + "}" for t, p in zip(texts, places, strict=False)) + texts[-1] + '"'
    if form == 2:
        chain = draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3))
        return " ?? ".join(chain) + " ?? " + draw(st.one_of(_constant, _value(depth + 1)))
    if form == 3:
        return draw(_constant)
    return draw(_object(depth + 1))


@st.composite
def _object(draw: st.DrawFn, depth: int = 0) -> str:
    keys = draw(st.lists(st.sampled_from(["a", "k", "n", "items", "z"]), unique=True, max_size=4))
    spread = "..., " if draw(st.booleans()) else ""
    return "{ " + spread + ", ".join(f"{k}: {draw(_value(depth))}" for k in keys) + " }"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_object(), st.lists(_data, min_size=1, max_size=5))
def test_the_runtime_builds_what_the_reference_builds(text: str, events: list[dict[str, Any]]) -> None:
    transform, reference = compiled(text), transform_of(text)
    for data in events:
        assert apply_transform(transform, data) == payload(reference, data), (text, data)


# ---- the docs ---------------------------------------------------------------------------------


def _section_4_10() -> str:
    text = (ROOT / "docs" / "language.md").read_text()
    return text[text.index("### 4.10 Transforms"):text.index("### 4.11")]


def test_the_examples_of_section_4_10_check_clean() -> None:
    blocks = re.findall(r"```route\n(.*?)```", _section_4_10(), re.DOTALL)
    assert len(blocks) >= 3
    for block in blocks:
        project = load_project([str(write(block))])
        assert [d for d in project.diagnostics if d.code.startswith("E")] == [], block


def _deliveries(block: str) -> dict[str, dict[str, Any] | None]:
    """Per target, the transform of its delivery in a docs example (one route each)."""
    artifact = json.loads(json.dumps(build_artifact(load_project([str(write(block))]))))
    return {d["target"]: d["transform"] for route in artifact["dispatch"]["routes"] for d in route["deliveries"]}


def test_section_4_10_says_what_its_examples_deliver() -> None:
    _, example, eventbridge = re.findall(r"```route\n(.*?)```", _section_4_10(), re.DOTALL)
    transforms = _deliveries(example)
    order = {"id": "o1", "amount": 5.0, "currency": "USD", "customer": {"id": "c1"}, "items": []}
    got = {target: apply_transform(t, order) for target, t in transforms.items() if t is not None}
    assert got == {
        "mailer": {"subject": "order o1 for c1: 5.0 USD", "recipient": "orders@example.com",
                   "greeting": "customer c1", "skus": []},
        "audit": {**order, "currency": "EUR", "routed_by": "interlock"},
        "archive": {"kind": "order", "original": order},
    }
    (ops,) = _deliveries(eventbridge).values()
    assert ops is not None and apply_transform(ops, {"instance": "i-1", "status": "running"}) == {
        "id": "i-1", "message": "i-1 is in state running"}


def test_section_4_10_says_which_defaults_are_wrong() -> None:
    _, example, _ = re.findall(r"```route\n(.*?)```", _section_4_10(), re.DOTALL)
    for wrong in ('skus: items.sku ?? "none"', 'skus: amount ?? "0"', 'skus: customer ?? "c1"'):
        found = check(load_project([str(write(example.replace("skus: items.sku ?? []", wrong)))]))
        assert [d.code for d in found if d.is_error] == ["E0202"], wrong
    found = check(load_project([str(write(example.replace("{customer.id}:", "{customer.idd}:")))]))
    assert [d.code for d in found if d.is_error] == ["E0201"]


def test_a_template_builds_at_most_a_bounded_text() -> None:
    """A template of many places over a large field built the field's text once per place
    (100,000 places of a 1 KB field: 100 MB at delivery; found by review). Past
    MAX_TEMPLATE_TEXT characters it is a TransformError, which fails the delivery with its
    message, as a handler's failure does."""
    from interlock.runtime import transform

    spec = {"s": {"template": ["x: ", *[["f"]] * 2000]}}
    assert transform.apply_transform(spec, {"f": "a" * 100}) == {"s": "x: " + "a" * 200_000}
    with pytest.raises(transform.TransformError, match="more than 1048576 characters"):
        transform.apply_transform(spec, {"f": "a" * 1000})


def test_the_templates_of_a_transform_share_one_bound() -> None:
    """Many templates of a few places each built a field's text once per place, each within
    the bound of one template: 1,000 keys of 1,000 places over a 1 KB field built 1 GB
    (found by review). The bound holds for all the templates of one transform together,
    nested objects and defaults included."""
    from interlock.runtime import transform

    one = {"template": [["f"]] * 100}
    spec = {f"k{i}": one for i in range(6)} | {"o": {"object": {"d": {"copy": ["missing"], "default": one}}}}
    built = transform.apply_transform(spec, {"f": "a" * 1400})  # 7 templates of 140,000 characters
    assert len(built["k5"]) == 140_000 and len(built["o"]["d"]) == 140_000
    with pytest.raises(transform.TransformError, match="templates of this `with"):
        transform.apply_transform(spec, {"f": "a" * 1600})  # 7 of 160,000: more than 1,048,576 together
    assert transform.apply_transform(spec, {"f": "a" * 1400}) == built  # (each delivery has its own bound)
