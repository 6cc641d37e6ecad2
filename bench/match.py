"""How `router.match` scales with the number of routes, against the obvious alternatives.

Generates projects of 10, 100, 1,000 and 10,000 routes over 50 event types, each route a
conjunction of one or two of: an equality (`kind == "k7"`), a set (`region in [...]`), a
numeric range (`amount in 100..400`) and a prefix (`sku startswith "P12-"`). Then, in one
run, side by side, medians of several rounds:

- `router.match` per event at each size, and the ratio to the 10-route project;
- at 10,000 routes, evaluating the routes one by one (the reference interpreter, which
  is what a hand-rolled router does) against `router.match`;
- at 10 routes, a hand-written Python function for the same rules against `router.match`;
- at 100 patterns, the PyPI package `event-ruler` (AWS EventBridge patterns, in Go),
  one `test_event_pattern` call per pattern, against `router.match` on the same rules;
- compile time (parse, check, tables) at 10,000 routes.

Run: `.venv/bin/python bench/match.py [--rounds N]` (or `make bench`).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import interlock
from interlock.compiler.artifact import build_artifact
from interlock.compiler.pipeline import check
from interlock.compiler.reference import route as reference_route
from interlock.dsl import load_project

TYPES = [f"shop.e{i}" for i in range(50)]
REGIONS = ["eu", "us", "apac", "latam", "mena", "africa"]
FORMS = ("eq", "set", "range", "prefix")


def _rule(rng: random.Random, scale: int, forms: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """A route condition in the language, and the same rule as data (for the other matchers).

    Each rule has one selective test drawn from pools that grow with the project, so that an
    event matches about as many routes in a large project as in a small one (what makes the
    comparison across sizes fair), and half the rules add an unselective `region` set.
    """
    form = rng.choice(forms)
    parts, rule = [], {}
    if form == "eq":
        kind = f"k{rng.randrange(scale)}"
        parts.append(f'kind == "{kind}"')
        rule["kind"] = [kind]
    elif form == "set":
        kinds = [f"k{rng.randrange(scale)}", f"k{rng.randrange(scale)}"]
        parts.append(f'kind in ["{kinds[0]}", "{kinds[1]}"]')
        rule["kind"] = kinds
    elif form == "range":
        low = rng.randrange(0, 10 * scale)
        parts.append(f"amount in {low}..{low + 10}")
        rule["amount"] = (low, low + 10)
    else:
        prefix = f"P{rng.randrange(scale)}-"
        parts.append(f'sku startswith "{prefix}"')
        rule["sku"] = prefix
    if rng.random() < 0.5:
        regions = rng.sample(REGIONS, 2)
        parts.append(f'region in ["{regions[0]}", "{regions[1]}"]')
        rule["region"] = regions
    return " and ".join(parts), rule


def generate(routes: int, forms: tuple[str, ...] = FORMS, seed: int = 7
             ) -> tuple[str, list[tuple[str, dict[str, Any], str]]]:
    rng = random.Random(seed)
    lines = ["defaults { on_exhausted drop }"]
    lines += [f"event {t} {{ kind: string, region: string, amount: float, sku: string }}" for t in TYPES]
    targets = max(10, routes // 20)
    lines += [f"target t{i} {{ mode async }}" for i in range(targets)]
    rules = []
    for i in range(routes):
        event_type = TYPES[i % len(TYPES)]
        condition, rule = _rule(rng, max(routes // len(TYPES), 4), forms)
        target = f"t{i % targets}"
        lines.append(f"route r{i} {{ on {event_type} when {condition} to {target} }}")
        rules.append((event_type, rule, target))
    return "\n".join(lines) + "\n", rules


def events(count: int, scale: int, seed: int = 11) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    return [(rng.choice(TYPES), {"kind": f"k{rng.randrange(scale)}", "region": rng.choice(REGIONS),
                                 "amount": float(rng.randrange(0, 10 * scale)),
                                 "sku": f"P{rng.randrange(scale)}-{i}"})
            for i in range(count)]


def hand_written(rules: list[tuple[str, dict[str, Any], str]]) -> Callable[[str, dict[str, Any]], set[str]]:
    """The Python a person would write for these rules: one `if` per rule, grouped by type."""
    by_type: dict[str, list[str]] = {}
    for event_type, rule, target in rules:
        tests = []
        if "kind" in rule:
            tests.append(f"d.get('kind') in {tuple(rule['kind'])!r}")
        if "region" in rule:
            tests.append(f"d.get('region') in {tuple(rule['region'])!r}")
        if "amount" in rule:
            low, high = rule["amount"]
            tests.append(f"{low} <= (d.get('amount') or -1) <= {high}")
        if "sku" in rule:
            tests.append(f"(d.get('sku') or '').startswith({rule['sku']!r})")
        by_type.setdefault(event_type, []).append(f"        if {' and '.join(tests)}: out.add({target!r})")
    source = ["def match(t, d):", "    out = set()"]
    for event_type, body in by_type.items():
        source.append(f"    if t == {event_type!r}:")
        source.extend(body)
    source.append("    return out")
    namespace: dict[str, Any] = {}
    exec("\n".join(source), namespace)
    return namespace["match"]  # type: ignore[no-any-return]


def per_event(match: Callable[[str, dict[str, Any]], Any], sample: list[tuple[str, dict[str, Any]]],
              rounds: int) -> float:
    """Median over rounds of the mean time per event, in microseconds."""
    times = []
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        start = time.perf_counter()
        for event_type, data in sample:
            match(event_type, data)
        times.append((time.perf_counter() - start) / len(sample) * 1e6)
        gc.enable()
    return statistics.median(times)


def build(routes: int, folder: Path, forms: tuple[str, ...] = FORMS
          ) -> tuple[interlock.Router, Any, list[tuple[str, dict[str, Any], str]], float]:
    text, rules = generate(routes, forms)
    path = folder / f"r{routes}.route"
    path.write_text(text)
    start = time.perf_counter()
    project = load_project([str(path)])
    errors = [d for d in check(project) if d.is_error]
    assert not errors, errors[:3]
    artifact = build_artifact(project)
    compile_seconds = time.perf_counter() - start
    return interlock.Router(artifact), project, rules, compile_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        built = {n: build(n, Path(folder)) for n in (10, 100, 1_000, 10_000)}
        equality_only = build(100, Path(folder), ("eq", "set"))
    samples = {n: events(2000, max(n // len(TYPES), 4)) for n in built}
    for n, (router, _, _, seconds) in built.items():
        rows.append((n, per_event(router.match, samples[n], args.rounds), seconds))
    base = rows[0][1]
    print(f"router.match per event, median of {args.rounds} rounds of 2,000 events")
    print(f"{'routes':>8} {'µs/event':>10} {'vs 10 routes':>13} {'compile s':>10}")
    for n, micros, seconds in rows:
        print(f"{n:>8,} {micros:>10.2f} {micros / base:>12.2f}x {seconds:>10.2f}")

    router, project, _rules, _ = built[10_000]
    routes, chooses = list(project.routes.values()), list(project.chooses.values())
    few = samples[10_000][:100]
    naive = per_event(lambda t, d: reference_route(routes, chooses, t, d), few, 3)
    fast = rows[-1][1]  # router.match at 10,000 routes, from the table above
    print(f"\n10,000 routes, one by one (reference interpreter): {naive:,.0f} µs/event; "
          f"router.match {fast:.2f} µs: {naive / fast:,.0f}x faster")

    router10, _, rules10, _ = built[10]
    function = hand_written(rules10)
    sample = samples[10]
    for event_type, data in sample:
        assert function(event_type, data) == router10.match(event_type, data)
    hand = per_event(function, sample, args.rounds)
    ours = per_event(router10.match, sample, args.rounds)
    print(f"10 routes, hand-written Python function: {hand:.2f} µs/event; router.match {ours:.2f} µs: "
          f"{ours / hand:.2f}x the hand-written time")

    try:
        from event_ruler import test_event_pattern  # type: ignore[import-not-found]
    except ImportError:
        print("event-ruler: not installed (`pip install event-ruler`, or `make bench`)")
        return
    # This event-ruler build knows exact values only (no prefix, no numeric ranges): compare
    # on a 100-route project of equalities and sets.
    router100, _, rules100, _ = equality_only
    sample = events(2000, 4)
    patterns = [(event_type, json.dumps(_pattern(event_type, rule)), target) for event_type, rule, target in rules100]

    def ruler(event_type: str, data: dict[str, Any]) -> set[str]:
        payload = json.dumps({"detail-type": event_type, "detail": data})
        return {target for t, pattern, target in patterns if t == event_type and test_event_pattern(payload, pattern)}

    for event_type, data in sample[:200]:
        assert ruler(event_type, data) == router100.match(event_type, data), (event_type, data)
    theirs = per_event(ruler, sample[:300], 3)
    ours = per_event(router100.match, sample[:300], args.rounds)
    print(f"100 patterns (== and in), event-ruler, one test_event_pattern per pattern of the event's type: "
          f"{theirs:.1f} µs/event; router.match {ours:.2f} µs: {theirs / ours:.0f}x faster")


def _pattern(event_type: str, rule: dict[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if "kind" in rule:
        detail["kind"] = list(rule["kind"])
    if "region" in rule:
        detail["region"] = list(rule["region"])
    if "amount" in rule:
        low, high = rule["amount"]
        detail["amount"] = [{"numeric": [">=", low, "<=", high]}]
    if "sku" in rule:
        detail["sku"] = [{"prefix": rule["sku"]}]
    return {"detail-type": [event_type], "detail": detail}


if __name__ == "__main__":
    main()
