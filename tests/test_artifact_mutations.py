"""Hand-edited artifacts: every one is refused at load with ArtifactError, or works.

A mutation fuzzer. It compiles projects (a small one here that uses every predicate form,
anchor kind, `choose`, transform and HTTP target the artifact can hold; `examples/shop`;
`examples/http`), then changes their artifacts one node at a time, systematically: each
key deleted, each value replaced by every JSON type and by values the runtime cannot
use (numbers out of range or negative, NaN, unknown names, empty lists, lists of the
wrong items, predicates nested far too deep). Each mutated artifact gets its integrity
hash recomputed (what someone who edits one by hand would do) and is loaded as the
runtime loads it (`Router`, which `interlock.load` and `read_artifact` end in).

The one assertion: it raises `ArtifactError` at load, or everything the runtime does with
an artifact works on it without an exception: `match`, `deliveries`, `explain`, each
delivery's transform, the event schemas (`SchemaError` is their answer about data, not a
failure), every target's retry decisions, and the delivery engine's setup.

The mutations are de-duplicated by where they are (the path with list positions and map
keys generalized: `dispatch.rules.*.check.*.op`) and what they do, keeping the first of
each over the three artifacts: every kind of field gets every kind of mutation (about
5,000 mutants), in a run of about ten seconds.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import interlock
from interlock.ops import dead_letter_names
from interlock.runtime.artifact import ArtifactError, canonical_hash, read_artifact, verify_artifact
from interlock.runtime.retry import decide
from interlock.runtime.router import Router
from interlock.runtime.schema import SchemaError
from interlock.runtime.transform import apply_transform

ROOT = Path(__file__).resolve().parent.parent

# Every predicate form, every anchor kind (eq, prefix, range), scans, `not`, `or` that
# becomes several rules, `choose` with `otherwise`, transforms of every kind, timestamps,
# globs, schemas with lists and objects, a policy of each backoff, an HTTP target.
PROJECT = """
event order.created {
  id: string
  amount: float
  count: int
  currency: string
  placed_at: timestamp
  source_ip: string?
  tags: list<string>
  customer: { tier: string, email: string?, vip: bool }
  items: list<{ sku: string, quantity: int }>
  note: any?
}
event order.cancelled
event user.signed_up { email: string }
event audit.logged

retry quick { attempts 3 backoff fixed 10ms jitter none retry_on [TimeoutError] }
retry slow { attempts 4 backoff linear initial 10ms step 20ms max 1s jitter full give_up_on [ValueError] }
retry steep { attempts 5 backoff exponential initial 5ms factor 2 max 2s jitter equal deadline 1m }
dead_letter dlq { retain 7d }
dead_letter other
unrouted to dead_letter other

target audit { mode async, retry quick, dead_letter dlq, emits [audit.logged] }
target billing { mode sync, retry slow, timeout 2s, concurrency 4, dead_letter dlq }
target fraud { mode async, retry steep, on_exhausted drop, order by customer.tier }
target hook {
  mode async, on_exhausted drop
  http POST env("HOOK_URL")
  headers { "Authorization": env("HOOK_TOKEN"), "X-Shop": "north" }
  format structured
}

route everything { on order.* to audit with { id: id, fixed: 3, where: { tier: customer.tier, list: [1, "a"] } } }
route big { on order.created when amount >= 1000 and currency in ["USD", "EUR"] to fraud, billing }
route ranged { on order.created when count in 2..5 or count < 0 to billing }
route local { on order.created when source_ip in cidr "10.0.0.0/8" and not (customer.tier == "free") to fraud }
route skus { on order.created when items.sku startswith "EU-" or items.sku endswith "-X" to hook }
route strings {
  on order.created when customer.email matches "*@example.com" or currency equals_ignore_case "gbp" to audit
}
route present { on order.created when exists note and missing customer.email to fraud }
route lists { on order.created when tags contains "vip" or any tags in ["press", "tv"] to billing }
route others { on order.created when currency not in ["USD"] and count != 3 to hook }
route dated { on order.created when placed_at > "2024-05-02T09:00:00Z" to audit }
route deep { on **.created when ((customer.vip == true or (amount > 1 and (count <= 2 or note == null)))) to fraud }
route newer { on order.created when any items { sku matches regex "EU-[0-9]+" and quantity > 0 } or note is null
  or customer.email startswith_ignore_case "A" or customer.email endswith_ignore_case "@EXAMPLE.com" to hook }
route shaped { on order.created to billing with { ..., label: f"order {id}", tier: customer.tier ?? "none" } }
choose tiers {
  on order.created
  when customer.tier == "gold" to billing with { tier: customer.tier }
  when amount > 100 to fraud
  otherwise to audit
}
choose signups {
  on user.*
  when email endswith "@example.com" to audit
  otherwise to billing
}
"""

EVENTS: list[tuple[str, Any]] = [
    ("order.created", {"id": "o1", "amount": 1500.0, "count": 3, "currency": "USD", "placed_at": "2024-05-03T10:00:00Z",
                       "source_ip": "10.1.2.3", "tags": ["vip", "press"],
                       "customer": {"tier": "gold", "email": "a@example.com", "vip": True},
                       "items": [{"sku": "EU-1", "quantity": 1}, {"sku": "US-X", "quantity": 2}], "note": None}),
    ("order.created", {"id": "o2", "amount": 50, "count": -1, "currency": "gbp", "placed_at": "2024-05-01",
                       "tags": [["tv"]], "customer": {"tier": "free", "vip": False}, "items": [], "note": {"x": 1}}),
    ("order.created", {"amount": float("nan"), "count": 2.0, "currency": None, "tags": "vip", "customer": []}),
    ("order.created", {"id": "o4", "amount": 120, "count": 4, "currency": "EUR", "placed_at": "2024-05-02T12:00:00Z",
                       "tags": [], "customer": {"tier": "silver", "vip": True},
                       "items": [{"sku": "EU-2", "quantity": 1}]}),
    ("order.cancelled", {"id": "o1", "customer": {"tier": "gold"}}),
    ("user.signed_up", {"email": "b@example.com"}),
    ("user.deleted", {"email": "c@other.org"}),
    ("shop.order.created", {"amount": 5, "customer": {"vip": True}}),
    ("nobody.knows", {}),
    ("order.created", None),
    ("order.created", [1, {"amount": 2000}]),
    ("order.created", "text"),
]


def _shop_events() -> list[tuple[str, Any]]:
    lines = (ROOT / "examples" / "events.jsonl").read_text().splitlines()
    return [(e["type"], e["data"]) for e in map(json.loads, lines[:12])]


def _http_events() -> list[tuple[str, Any]]:
    return [("order.placed", {"id": "p1", "amount": 10.0, "currency": "EUR", "customer": "c1"}),
            ("order.placed", {"id": "p2", "amount": 9000.0, "currency": "USD", "customer": "c2"}),
            ("order.unknown", {})]


# ---- mutations ---------------------------------------------------------------------

Path_ = tuple[str | int, ...]
Mutation = tuple[str, Callable[[Any], Any]]  # (name, value -> replacement); `DELETE` to delete

DELETE = object()


def _nested(depth: int) -> Callable[[Any], Any]:
    def wrap(value: Any) -> Any:
        for _ in range(depth):
            value = {"op": "not", "arg": value, "text": "not", "at": [1, 1]} if isinstance(value, dict) else [value]
        return value
    return wrap


def _mutations(value: Any) -> list[Mutation]:
    """What to put in the place of `value` (a node of the artifact)."""
    out: list[Mutation] = [("delete", lambda v: DELETE), ("null", lambda v: None), ("true", lambda v: True),
                           ("zero", lambda v: 0), ("negative", lambda v: -1), ("float", lambda v: 0.5),
                           ("nan", lambda v: math.nan), ("infinity", lambda v: math.inf),
                           ("huge", lambda v: 10**400), ("string", lambda v: "zz"), ("empty string", lambda v: ""),
                           ("empty list", lambda v: []), ("empty object", lambda v: {}),
                           ("list of object", lambda v: [{}]), ("list of list", lambda v: [[]]),
                           ("nested 300", _nested(300))]
    if type(value) is int:
        out += [("plus 1000", lambda v: v + 1000), ("plus 1", lambda v: v + 1), ("as float", lambda v: float(v)),
                ("negated", lambda v: -v - 1)]
    if type(value) is float:
        out += [("as int", lambda v: int(v) if math.isfinite(v) else 0), ("negated", lambda v: -v)]
    if type(value) is str:
        out += [("suffixed", lambda v: v + "x"), ("dotted", lambda v: v + ".*"), ("upper", lambda v: v.upper())]
    if isinstance(value, list):
        out += [("first twice", lambda v: v[:1] * 2), ("first dropped", lambda v: v[1:]),
                ("null appended", lambda v: [*v, None]), ("list appended", lambda v: [*v, [1, 2]]),
                ("string appended", lambda v: [*v, "zz"]), ("reversed", lambda v: v[::-1])]
    if isinstance(value, dict):
        out += [("extra key", lambda v: {**v, "zz": 1}), ("wrapped in not", _nested(1)),
                ("nested 900", _nested(900))]
    return out


def _walk(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


# The artifact's maps from names to values: the keys of a map under one of these are `*`.
MAPS = frozenset({"targets", "dead_letters", "events", "types", "fields", "transform", "object"})


def _shape(path: Path_) -> str:
    """The path with list positions, and the keys of maps (targets, types...), as `*`."""
    general: list[str] = []
    for part in path:
        general.append("*" if isinstance(part, int) or (general and general[-1] in MAPS) else part)
    return ".".join(general)


def _replaced(root: Any, path: Path_, new: Any) -> Any:
    """`root` with the node at `path` replaced (or deleted): the containers on the way are
    copied, the rest is shared (the runtime does not change an artifact)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(root, dict):
        copy: Any = dict(root)
    else:
        copy = list(root)
    child = _replaced(root[head], rest, new)
    if child is DELETE:
        del copy[head]
    else:
        copy[head] = child
    return copy


def mutants(artifact: dict[str, Any], seen: dict[tuple[str, str], int], per_shape: int
            ) -> Iterator[tuple[str, dict[str, Any]]]:
    """(description, mutated artifact with its integrity recomputed), for the mutations of
    shapes that `seen` (shared by the artifacts of one run) holds fewer than `per_shape` of."""
    body = {k: v for k, v in artifact.items() if k != "integrity"}
    for path, value in _walk(body):
        if not path or path[0] in ("format", "version", "source_hash"):
            continue  # (the first two are checked before anything else; the hash is never read)
        shape = _shape(path)
        for name, make in _mutations(value):
            key = (shape, name)
            if seen.get(key, 0) >= per_shape:
                continue
            seen[key] = seen.get(key, 0) + 1
            mutated = _replaced(body, path, make(value))
            try:
                mutated["integrity"] = canonical_hash(mutated)
            except (RecursionError, ValueError):
                continue  # deeper than JSON can write: tested below, through a file
            shown = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)[1:]
            yield f"{shown}: {name}", mutated


# ---- using an artifact -------------------------------------------------------------


def use(router: Router, events: list[tuple[str, Any]]) -> None:
    """What the runtime does with an artifact, short of delivering over a network."""
    for event_type, data in events:
        router.match(event_type, data)
        router.explain(event_type, data)
        for routes in router.matcher.deliveries(event_type, data).values():
            for _, transform in routes:
                if transform is not None:
                    apply_transform(transform, data)
        with contextlib.suppress(SchemaError, interlock.EventError):  # (the answer about the data)
            router.validate(event_type, data if isinstance(data, dict) else {})
    assert router.engine.unrouted_dead_letter  # the delivery side's setup: targets, streams, handlers
    assert dead_letter_names(router)  # what `interlock dead-letters` lists
    draw = random.Random(1).random
    for target in router.targets.values():
        for attempt in (1, 2, 5):
            decide(target["retry"], attempt, ("TimeoutError", "http.503", "http.5xx"), 10, draw, at_least_ms=5)


def _base(name: str, tmp_path: Path) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    if name == "project":
        (tmp_path / "p.route").write_text(PROJECT)
        return interlock.compile(str(tmp_path / "p.route")), EVENTS
    if name == "shop":
        return interlock.compile(str(ROOT / "examples" / "shop")), _shop_events()
    return interlock.compile(str(ROOT / "examples" / "http")), _http_events()


def _failures(artifact: dict[str, Any], events: list[tuple[str, Any]], seen: dict[tuple[str, str], int]
              ) -> tuple[int, list[str]]:
    tried, failures = 0, []
    for description, mutated in mutants(artifact, seen, PER_SHAPE):
        tried += 1
        stage = "load"
        try:
            router = Router(mutated)
            stage = "use"
            use(router, events)
        except ArtifactError as exc:
            if stage != "load":
                failures.append(f"{description}: ArtifactError after load: {exc}")
        except Exception as exc:  # what the test is after
            failures.append(f"{description}: {type(exc).__name__} at {stage}: {str(exc)[:160]}")
    return tried, failures


PER_SHAPE = 1  # mutations of each (shape, kind of mutation) tried, over all the artifacts


def test_a_mutated_artifact_is_refused_at_load_or_works(tmp_path: Path) -> None:
    seen: dict[tuple[str, str], int] = {}
    tried, failures = 0, []
    for name in ("project", "http", "shop"):  # the shapes of the first are not tried again on the others
        artifact, events = _base(name, tmp_path)
        use(Router(artifact), events)  # the artifact as compiled works
        count, found = _failures(artifact, events, seen)
        tried += count
        failures += [f"{name}: {failure}" for failure in found]
    assert tried > 3000
    kinds: dict[str, int] = {}
    for failure in failures:
        found_kind = re.search(r": (\w+) at (load|use)", failure)
        kind = f"{found_kind.group(1)} at {found_kind.group(2)}" if found_kind else "other"
        kinds[kind] = kinds.get(kind, 0) + 1
    assert not failures, (f"{len(failures)} of {tried} mutated artifacts raised something else than "
                          f"ArtifactError at load ({kinds}):\n" + "\n".join(failures[:40]))


# ---- what the fuzzer cannot reach: files --------------------------------------------


def test_a_file_nested_deeper_than_json_can_read_is_an_artifact_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"format": "interlock-router", "version": 1, "targets": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ArtifactError, match="nested"):
        read_artifact(str(path))


def test_a_document_nested_deeper_than_json_can_write_is_an_artifact_error() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ArtifactError, match="nested"):
        verify_artifact({"format": "interlock-router", "version": 1, "events": deep, "integrity": "sha256:0"})


def _refused(body: dict[str, Any], path: Path_, value: Any) -> str:
    """The message of the ArtifactError that `body` with `value` at `path` gets at load."""
    edited = _replaced(body, path, value)
    edited["integrity"] = canonical_hash(edited)
    with pytest.raises(ArtifactError) as caught:
        Router(edited)
    prefix = "`artifact` is not a valid artifact at "
    suffix = "; recompile it with `interlock compile` instead of editing it"
    message = str(caught.value)
    assert message.startswith(prefix) and message.endswith(suffix), message
    return message[len(prefix):-len(suffix)]


def test_an_error_names_the_field_and_what_was_expected(tmp_path: Path) -> None:
    artifact, _ = _base("project", tmp_path)
    body = {k: v for k, v in artifact.items() if k != "integrity"}
    rules, routes = body["dispatch"]["rules"], body["dispatch"]["routes"]
    rule = next(i for i, r in enumerate(rules) if r["check"])
    assert _refused(body, ("dispatch", "rules", rule, "check", 0, "op"), "like") == (
        f"`dispatch.rules[{rule}].check[0].op`: expected one of 'and', 'or', 'not', 'cmp', 'in', 'range', 'cidr', "
        "'exists', 'missing', 'null', 'str', 'regex', 'contains', 'any', got 'like'")
    assert _refused(body, ("targets", "billing", "concurrency"), 0) == (
        '`targets["billing"].concurrency`: expected `int` >= 1, got 0')
    # (a pool for 10**39 deliveries in flight was a list as long, made when the first one ran)
    assert _refused(body, ("targets", "billing", "concurrency"), 10**39) == (
        f'`targets["billing"].concurrency`: expected `int` <= 10000, got {10**39}')
    assert _refused(body, ("dispatch", "rules", 0, "route"), len(routes)) == (
        f"`dispatch.rules[0].route`: expected the number of a route (0 to {len(routes) - 1}), got {len(routes)}")
    assert _refused(body, ("targets", "audit", "dead_letter"), "nowhere") == (
        '`targets["audit"].dead_letter`: expected the name of a dead letter, got \'nowhere\'')
    assert _refused(body, ("events", "order.created", "fields", "tags", "item", "type"), "str") == (
        '`events["order.created"].fields["tags"].item.type`: expected one of \'string\', \'int\', \'float\', '
        "'bool', 'timestamp', 'any', 'list', 'object', got 'str'")
    local = next(i for i, r in enumerate(routes) if r["name"] == "local")
    assert _refused(body, ("dispatch", "routes", local, "when", "args", 0, "network"), "10.0.0.1/8").startswith(
        f"`dispatch.routes[{local}].when.args[0].network`: expected a CIDR block such as '10.0.0.0/8', got "
        "'10.0.0.1/8'")
    assert _refused(body, ("dispatch", "rules", rule, "check", 0), _nested(300)(rules[rule]["check"][0])) == (
        f"`dispatch.rules[{rule}].check[0]`: expected a condition nested at most 256 levels deep")
    assert _refused(body, ("dispatch", "rules", rule, "check", 0, "path"), []) == (
        f"`dispatch.rules[{rule}].check[0].path`: expected `array` of length >= 1, got []")
    assert _refused(body, ("dispatch", "rules", rule, "check", 0, "text"), DELETE) == (
        f"`dispatch.rules[{rule}].check[0].text`: missing")


def test_what_json_cannot_hold_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="is not JSON"):
        verify_artifact({"format": "interlock-router", "version": 1, "events": {1, 2}, "integrity": "sha256:0"})
