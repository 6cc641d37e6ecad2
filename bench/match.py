"""How fast `router.match` routes and how fast a project compiles and loads, against the obvious alternatives.

The workloads of issue 15, side by side in one run (this machine is shared: medians of
several rounds, the contenders of a workload interleaved round by round in an order that
rotates, each timing between `gc.collect()` and `gc.disable()`; compile and load times keep
the collector on, as it is in a real load; all of them CPU time, see `clock`):

1. 10 routes, one on each of 10 of the 50 event types, against a hand-written Python
   function for the same rules (an `if`/`elif` per type, direct dict gets, inline
   comparisons, set membership, `startswith`): router time ÷ hand-written time, on events
   of all 50 types (as this script always measured: 4 in 5 have a type with no route) and
   on events of the 10 routed types only (where the predicates are evaluated).
2. 10,000 "dense" routes over 50 types (200 a type: `kind == ... and amount in a..b`,
   `region in [...] and sku startswith ...`, `amount in a..b`), about 8 matching each event,
   each route with a target of its own, against a linear scan of the 10,000 rules (a list of
   (type, small closure, target) evaluated in a loop): how many times faster the router is,
   and the mean number of routes matched per event.
3. Constant output: projects of 100, 1,000 and 10,000 routes over 50 types (equality, set,
   range and prefix tests drawn from pools as large as a type has routes, half with a
   `region` set besides), so that every type has routes and an event matches about 0.85
   routes at every size: router time at each size ÷ at 100.
4. Compile (parse, check, tables, artifact: `interlock.compile`) and load (`Router(artifact)`)
   of 10,000, 20,000 and 40,000 such routes, apart, with the time per route.
5. `route rN { on e when amount > N to t }` for N below 2,000, 4,000 and 8,000: compile and
   load time and the peak memory (the peak resident size over the size before, in MiB), each
   size in a subprocess killed after `--timeout`.
6. Type globs: one `router.match` of a 30-segment type that
   `on **.**.**.**.**.**.**.**.audit` does not match, and of a 16 KB type against
   `on **.x.**.audit`, each in a subprocess killed after `--timeout`.
7. The PyPI package `event-ruler` (AWS EventBridge patterns, in Go) at 100 patterns, one
   `test_event_pattern` call per pattern of the event's type, against `router.match` on the
   same rules (skipped, saying why, when it is not installed).

Then a table of each workload's measured ratio next to the issue's goal. Goals marked `*`
are not numbers from the issue but the project's rule that no input may take more than
linear time.

Run: `.venv/bin/python bench/match.py [--rounds N] [--quick] [--timeout S]` (or `make bench`).
`--quick` runs 3 rounds, fewer sizes and a 20 s timeout (about 2 minutes); the defaults
take about 8.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import interlock

TYPES = [f"shop.e{i}" for i in range(50)]
REGIONS = ["eu", "us", "apac", "latam", "mena", "africa"]
FORMS = ("eq", "set", "range", "prefix")

# Every time is the CPU time of this process (of the child, in a subprocess): on a shared
# machine, the time the processor spent on others between two readings of a wall clock is
# not the router's. What is timed here waits for nothing but the processor.
clock = time.process_time

Data = dict[str, Any]
Sample = list[tuple[str, Data]]
Rule = tuple[str, Data, str]  # event type, the rule as data (see `condition`), target
Match = Callable[[str, Data], Any]


class Row(NamedTuple):
    """A line of the closing table."""
    workload: str
    measured: str
    goal: str
    met: bool | None  # None: no goal, or nothing measured
    derived: bool = False  # the goal follows from "linear time", the issue gives no number


# ---- projects and events ------------------------------------------------------------


def condition(rule: Data) -> str:
    """The `when` of a rule given as data: `kind` (a list of one or more values), `region`
    (a list), `amount` (an inclusive range, low and high) and `sku` (a prefix)."""
    parts = []
    if "kind" in rule:
        kinds = rule["kind"]
        parts.append(f'kind == "{kinds[0]}"' if len(kinds) == 1 else f"kind in {json.dumps(kinds)}")
    if "region" in rule:
        parts.append(f"region in {json.dumps(rule['region'])}")
    if "amount" in rule:
        parts.append(f"amount in {rule['amount'][0]}..{rule['amount'][1]}")
    if "sku" in rule:
        parts.append(f'sku startswith "{rule["sku"]}"')
    return " and ".join(parts)


def holds(rule: Data, data: Data) -> bool:
    """Whether a rule holds for an event of the bench (for counting matches, not timed)."""
    return (("kind" not in rule or data["kind"] in rule["kind"])
            and ("region" not in rule or data["region"] in rule["region"])
            and ("amount" not in rule or rule["amount"][0] <= data["amount"] <= rule["amount"][1])
            and ("sku" not in rule or data["sku"].startswith(rule["sku"])))


def project_text(rules: list[Rule]) -> str:
    lines = ["defaults { on_exhausted drop }"]
    lines += [f"event {t} {{ kind: string, region: string, amount: float, sku: string }}" for t in TYPES]
    lines += [f"target {t} {{ mode async }}" for t in dict.fromkeys(target for _, _, target in rules)]
    lines += [f"route r{i} {{ on {t} when {condition(rule)} to {target} }}"
              for i, (t, rule, target) in enumerate(rules)]
    return "\n".join(lines) + "\n"


def _rule(rng: random.Random, scale: int, forms: tuple[str, ...]) -> Data:
    """One selective test drawn from pools that grow with the project, so that an event
    matches about as many routes in a large project as in a small one; half the rules add
    an unselective `region` set."""
    form = rng.choice(forms)
    rule: Data = {}
    if form == "eq":
        rule["kind"] = [f"k{rng.randrange(scale)}"]
    elif form == "set":
        rule["kind"] = [f"k{rng.randrange(scale)}", f"k{rng.randrange(scale)}"]
    elif form == "range":
        low = rng.randrange(0, 10 * scale)
        rule["amount"] = (low, low + 10)
    else:
        rule["sku"] = f"P{rng.randrange(scale)}-"
    if rng.random() < 0.5:
        rule["region"] = rng.sample(REGIONS, 2)
    return rule


def scale_of(routes: int) -> int:
    """The pools of the small projects (10 routes, event-ruler's 100), as they always were."""
    return max(routes // len(TYPES), 4)


def generate(routes: int, forms: tuple[str, ...] = FORMS, seed: int = 7, scale: int | None = None) -> list[Rule]:
    """Routes spread over the 50 types, targets shared. With `scale` the routes of a type
    (the constant-output projects), the pools are as large as a type has routes, so that an
    event matches about 0.85 routes at every size."""
    rng = random.Random(seed)
    targets = max(10, routes // 20)
    pools = scale or scale_of(routes)
    return [(TYPES[i % len(TYPES)], _rule(rng, pools, forms), f"t{i % targets}") for i in range(routes)]


def events(count: int, scale: int, seed: int = 11) -> Sample:
    rng = random.Random(seed)
    return [(rng.choice(TYPES), {"kind": f"k{rng.randrange(scale)}", "region": rng.choice(REGIONS),
                                 "amount": float(rng.randrange(0, 10 * scale)),
                                 "sku": f"P{rng.randrange(scale)}-{i}"})
            for i in range(count)]


# The dense project: each rule holds for about 1 event in 25, so ~8 of a type's 200 match.
DENSE_KINDS = 4       # kind == k (1 in 4) and a range over 16% of the amounts
DENSE_AMOUNTS = 1000  # amounts 0..999
DENSE_SKUS = 8        # region in [2 of 6] and sku startswith one of 8 prefixes (1 in 24)
DENSE_WIDE, DENSE_NARROW = 160, 40  # range widths: with a kind, alone


def dense(routes: int, seed: int = 5) -> list[Rule]:
    rng = random.Random(seed)
    rules = []
    for i in range(routes):
        form = i // len(TYPES) % 3
        rule: Data
        if form == 0:
            low = rng.randrange(DENSE_AMOUNTS - DENSE_WIDE)
            rule = {"kind": [f"k{rng.randrange(DENSE_KINDS)}"], "amount": (low, low + DENSE_WIDE)}
        elif form == 1:
            rule = {"region": rng.sample(REGIONS, 2), "sku": f"P{rng.randrange(DENSE_SKUS)}-"}
        else:
            low = rng.randrange(DENSE_AMOUNTS - DENSE_NARROW)
            rule = {"amount": (low, low + DENSE_NARROW)}
        rules.append((TYPES[i % len(TYPES)], rule, f"t{i}"))
    return rules


def dense_events(count: int, seed: int = 13) -> Sample:
    rng = random.Random(seed)
    return [(rng.choice(TYPES), {"kind": f"k{rng.randrange(DENSE_KINDS)}", "region": rng.choice(REGIONS),
                                 "amount": float(rng.randrange(DENSE_AMOUNTS)),
                                 "sku": f"P{rng.randrange(DENSE_SKUS)}-{i}"})
            for i in range(count)]


def mean_matched(rules: list[Rule], sample: Sample) -> float:
    """Mean number of routes that match an event of the sample."""
    by_type: dict[str, list[Data]] = {}
    for event_type, rule, _ in rules:
        by_type.setdefault(event_type, []).append(rule)
    return sum(sum(holds(rule, data) for rule in by_type.get(t, ())) for t, data in sample) / len(sample)


# ---- the alternatives -----------------------------------------------------------------


def hand_written(rules: list[Rule]) -> Match:
    """What a person writes for these rules: an `if`/`elif` per event type, then an `if` per
    rule with direct dict gets, inline comparisons, set membership and `startswith`. (The
    bench's events always carry every field; its ranges are non-negative.)"""
    by_type: dict[str, list[str]] = {}
    for event_type, rule, target in rules:
        tests = []
        if "kind" in rule:
            kinds = sorted(set(rule["kind"]))
            tests.append(f"d.get('kind') == {kinds[0]!r}" if len(kinds) == 1 else f"d.get('kind') in {set(kinds)!r}")
        if "region" in rule:
            tests.append(f"d.get('region') in {set(rule['region'])!r}")
        if "amount" in rule:
            tests.append(f"{rule['amount'][0]} <= d.get('amount', -1) <= {rule['amount'][1]}")
        if "sku" in rule:
            tests.append(f"d.get('sku', '').startswith({rule['sku']!r})")
        by_type.setdefault(event_type, []).append(f"        if {' and '.join(tests)}:\n            out.add({target!r})")
    source = ["def match(t, d):", "    out = set()"]
    for number, (event_type, body) in enumerate(by_type.items()):
        source.append(f"    {'elif' if number else 'if'} t == {event_type!r}:")
        source.extend(body)
    source.append("    return out")
    namespace: dict[str, Any] = {}
    exec("\n".join(source), namespace)
    return namespace["match"]  # type: ignore[no-any-return]


def _closure(rule: Data) -> Callable[[Data], bool]:
    """The small function a person writes for one dense rule."""
    if "kind" in rule:
        kind, (low, high) = rule["kind"][0], rule["amount"]
        return lambda d: d.get("kind") == kind and low <= d.get("amount", -1) <= high
    if "sku" in rule:
        regions, prefix = frozenset(rule["region"]), rule["sku"]
        return lambda d: d.get("region") in regions and d.get("sku", "").startswith(prefix)
    low, high = rule["amount"]
    return lambda d: low <= d.get("amount", -1) <= high


def linear_scan(rules: list[Rule]) -> Match:
    """Every rule tested in turn, without an index: its type, then its closure."""
    table = [(event_type, _closure(rule), target) for event_type, rule, target in rules]

    def scan(event_type: str, data: Data) -> set[str]:
        out = set()
        for t, test, target in table:
            if t == event_type and test(data):
                out.add(target)
        return out

    return scan


# ---- timing ---------------------------------------------------------------------------


class Contender(NamedTuple):
    match: Match
    sample: Sample


def race(contenders: dict[str, Contender], rounds: int, least: float = 0.05) -> dict[str, float]:
    """Median µs per event of each contender. A warm-up pass (untimed) sets how many passes
    over its sample a timing makes (at least `least` seconds); then each round times every
    contender once, in an order rotated from round to round."""
    passes = {}
    for name, (match, sample) in contenders.items():
        start = clock()
        for event_type, data in sample:
            match(event_type, data)
        passes[name] = max(1, math.ceil(least / max(clock() - start, 1e-9)))
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            match, sample = contenders[name]
            gc.collect()
            gc.disable()
            try:
                start = clock()
                for _ in range(passes[name]):
                    for event_type, data in sample:
                        match(event_type, data)
                elapsed = clock() - start
            finally:
                gc.enable()
            times[name].append(elapsed / (passes[name] * len(sample)) * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def compile_artifact(text: str, path: Path) -> tuple[dict[str, Any], float]:
    """The artifact of a project (parse, check, tables, artifact: `interlock.compile`, which
    `interlock compile` does too, and raises CompileError on an error) and the seconds it took."""
    path.write_text(text)
    gc.collect()
    start = clock()
    artifact = interlock.compile(str(path))
    return artifact, clock() - start


def load_router(artifact: dict[str, Any]) -> tuple[interlock.Router, float]:
    """`Router(artifact)`, what `interlock.load` does with an artifact, and the seconds it took."""
    gc.collect()
    start = clock()
    router = interlock.Router(artifact)
    return router, clock() - start


def build(rules: list[Rule], folder: Path, name: str) -> interlock.Router:
    artifact, _ = compile_artifact(project_text(rules), folder / f"{name}.route")
    return interlock.Router(artifact)


def agree(one: Match, other: Match, sample: Sample) -> None:
    for event_type, data in sample:
        assert set(one(event_type, data)) == set(other(event_type, data)), (event_type, data)


def _ratio_row(workload: str, value: float, goal: float, at_most: bool, unit: str = "x") -> Row:
    met = value <= goal if at_most else value >= goal
    return Row(workload, f"{value:,.2f}{unit}", f"{'≤' if at_most else '≥'} {goal:g}{unit}", met)


# ---- the workloads --------------------------------------------------------------------


def small_vs_hand_written(rounds: int, folder: Path) -> list[Row]:
    rules = generate(10)
    router = build(rules, folder, "small")
    function = hand_written(rules)
    routed = {event_type for event_type, _, _ in rules}
    samples = {"all 50 types": events(2000, scale_of(10)),  # 4 events in 5 of a type with no route
               "the 10 routed types": [e for e in events(10_000, scale_of(10)) if e[0] in routed][:2000]}
    rows = []
    print("\n1. 10 routes (one on each of 10 of the 50 types) against a hand-written function")
    for label, sample in samples.items():
        agree(function, router.match, sample)
        times = race({"router": Contender(router.match, sample), "hand": Contender(function, sample)}, rounds)
        ratio = times["router"] / times["hand"]
        print(f"   events of {label}: hand-written {times['hand']:.3f} µs/event, router.match "
              f"{times['router']:.3f} µs: router {ratio:.2f}x the hand-written time "
              f"({mean_matched(rules, sample):.2f} routes matched per event)")
        rows.append(_ratio_row(f"10 routes, events of {label}: router ÷ hand", ratio, 1.25, at_most=True))
    return rows


def dense_vs_linear_scan(rounds: int, folder: Path, events_count: int) -> list[Row]:
    rules = dense(10_000)
    router = build(rules, folder, "dense")
    scan = linear_scan(rules)
    sample = dense_events(events_count)
    agree(scan, router.match, sample[:200])
    matched = mean_matched(rules, sample)
    times = race({"router": Contender(router.match, sample), "scan": Contender(scan, sample)}, rounds)
    faster = times["scan"] / times["router"]
    print(f"\n2. 10,000 dense routes over 50 types, {matched:.2f} routes matched per event (mean of "
          f"{len(sample):,} events): linear scan {times['scan']:,.1f} µs/event, router.match "
          f"{times['router']:.2f} µs: router {faster:,.1f}x faster")
    return [_ratio_row("10k dense routes: scan ÷ router", faster, 100, at_most=False),
            Row("10k dense routes: routes matched per event", f"{matched:.2f}", "~8", None)]


def constant_output(rounds: int, folder: Path, sizes: Sequence[int]) -> list[Row]:
    contenders, matched = {}, {}
    for n in sizes:
        rules = generate(n, scale=n // len(TYPES))
        sample = events(2000, n // len(TYPES))
        contenders[n] = Contender(build(rules, folder, f"r{n}").match, sample)
        matched[n] = mean_matched(rules, sample)
    times = race({f"{n}": c for n, c in contenders.items()}, rounds)
    base = times["100"]
    print(f"\n3. Constant output: router.match per event, median of {rounds} rounds of 2,000 events")
    print(f"{'routes':>8} {'routes matched/event':>21} {'µs/event':>9} {'vs 100 routes':>14}")
    for n in sizes:
        print(f"{n:>8,} {matched[n]:>21.2f} {times[str(n)]:>9.3f} {times[str(n)] / base:>13.2f}x")
    return [_ratio_row(f"constant output: {max(sizes):,} ÷ 100 routes", times[str(max(sizes))] / base, 1.5,
                       at_most=True)]


def compile_and_load(rounds: int, folder: Path, sizes: Sequence[int]) -> list[Row]:
    texts = {n: project_text(generate(n, scale=n // len(TYPES))) for n in sizes}
    compiled: dict[int, list[float]] = {n: [] for n in sizes}
    loaded: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(rounds):
        for n in sizes:
            artifact, seconds = compile_artifact(texts[n], folder / f"c{n}.route")
            compiled[n].append(seconds)
            loaded[n].append(load_router(artifact)[1])
            del artifact
    print(f"\n4. Compile (parse, check, tables, artifact) and load (Router(artifact)), median of {rounds} rounds")
    print(f"{'routes':>8} {'compile s':>10} {'load s':>8} {'total s':>8} {'µs/route':>9}")
    totals = {}
    for n in sizes:
        c, lo = statistics.median(compiled[n]), statistics.median(loaded[n])
        totals[n] = c + lo
        print(f"{n:>8,} {c:>10.2f} {lo:>8.2f} {c + lo:>8.2f} {(c + lo) / n * 1e6:>9.0f}")
    rows = [_ratio_row("compile + load of 10k routes", totals[10_000], 1.5, at_most=True, unit=" s")]
    largest = max(sizes)
    if largest > 10_000:
        growth = (totals[largest] / largest) / (totals[10_000] / 10_000)
        rows.append(Row(f"compile + load: per route, {largest // 1000}k ÷ 10k", f"{growth:.2f}x", "≤ 1.5x",
                        growth <= 1.5, derived=True))
    return rows


def range_load(sizes: Sequence[int], timeout: float) -> list[Row]:
    print(f"\n5. `route rN {{ on e when amount > N to t }}` for N below each size, in a subprocess "
          f"(timeout {timeout:g} s)")
    print(f"{'ranges':>8} {'compile s':>10} {'load s':>8} {'total s':>8} {'µs/route':>9} {'peak MiB':>9}")
    results: dict[int, dict[str, Any]] = {}
    for n in sizes:
        lines, timed_out = run_child(["ranges", str(n)], timeout)
        phases = {line["phase"]: line for line in lines}
        if timed_out or "load" not in phases:
            done = f"after compile {phases['compile']['seconds']:.2f} s, " if "compile" in phases else ""
            print(f"{n:>8,} timed out ({done}killed after {timeout:g} s)" if timed_out
                  else f"{n:>8,} failed: {lines}")
            continue
        total = phases["compile"]["seconds"] + phases["load"]["seconds"]
        results[n] = {"seconds": total, "mib": phases["load"]["peak_mib"]}
        print(f"{n:>8,} {phases['compile']['seconds']:>10.2f} {phases['load']['seconds']:>8.2f} {total:>8.2f} "
              f"{total / n * 1e6:>9.0f} {phases['load']['peak_mib']:>9.0f}")
    largest, smallest = max(sizes), min(sizes)
    workload = f"{largest:,} ranges: per route, ÷ {smallest:,}"
    if largest not in results or smallest not in results:
        return [Row(f"{workload} (time)", f"timed out (> {timeout:g} s)", "≤ 1.5x", False, derived=True),
                Row(f"{workload} (memory)", "timed out", "≤ 1.5x", False, derived=True)]
    grow = largest / smallest
    time_growth = results[largest]["seconds"] / results[smallest]["seconds"] / grow
    memory_growth = results[largest]["mib"] / max(results[smallest]["mib"], 1) / grow
    return [Row(f"{workload} (time)", f"{time_growth:.2f}x ({results[largest]['seconds']:.1f} s)", "≤ 1.5x",
                time_growth <= 1.5, derived=True),
            Row(f"{workload} (memory)", f"{memory_growth:.2f}x ({results[largest]['mib']:.0f} MiB)", "≤ 1.5x",
                memory_growth <= 1.5, derived=True)]


GLOBS = {  # name: (the route's `on`, the event type, what the table calls it, goal in ms)
    "deep": ("**.**.**.**.**.**.**.**.audit", ".".join(f"s{i}" for i in range(30)),
             "30-segment type, 8 `**`", 1.0),
    "wide": ("**.x.**.audit", ".".join(["x"] * 8192), "16 KB type, 2 `**`", 50.0),
}


def type_globs(timeout: float) -> list[Row]:
    print(f"\n6. Type globs: one router.match of a type the glob does not match, in a subprocess "
          f"(timeout {timeout:g} s)")
    rows = []
    for name, (pattern, event_type, label, goal) in GLOBS.items():
        lines, timed_out = run_child(["glob", name], timeout)
        what = f"`on {pattern}`, a type of {len(event_type):,} bytes, {event_type.count('.') + 1:,} segments"
        if timed_out or not lines:
            print(f"{what}: timed out (killed after {timeout:g} s)" if timed_out else f"{what}: failed")
            rows.append(Row(label, f"timed out (> {timeout:g} s)" if timed_out else "failed", f"≤ {goal:g} ms", False,
                            derived=True))
            continue
        ms = lines[-1]["seconds"] * 1e3
        took = f"{ms:.3f} ms" if ms < 1000 else f"{ms / 1e3:.1f} s"
        print(f"{what}: {took}")
        rows.append(Row(label, took, f"≤ {goal:g} ms", ms <= goal, derived=True))
    return rows


def event_ruler_comparison(rounds: int, folder: Path) -> list[Row]:
    try:
        from event_ruler import test_event_pattern  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError as exc:
        print(f"\n7. event-ruler: skipped, not importable ({exc}; `pip install event-ruler`, or `make bench`)")
        return [Row("100 patterns: event-ruler ÷ router", "skipped", "—", None)]
    # This event-ruler build knows exact values only (no prefix, no numeric ranges): compare
    # on a 100-route project of equalities and sets.
    rules = generate(100, ("eq", "set"))
    router = build(rules, folder, "ruler")
    sample = events(300, 4)
    patterns = [(event_type, json.dumps(_pattern(event_type, rule)), target) for event_type, rule, target in rules]

    def ruler(event_type: str, data: Data) -> set[str]:
        payload = json.dumps({"detail-type": event_type, "detail": data})
        return {target for t, pattern, target in patterns if t == event_type and test_event_pattern(payload, pattern)}

    agree(ruler, router.match, sample[:200])
    times = race({"router": Contender(router.match, sample), "ruler": Contender(ruler, sample)}, rounds)
    faster = times["ruler"] / times["router"]
    print(f"\n7. 100 patterns (== and in), event-ruler, one test_event_pattern per pattern of the event's type: "
          f"{times['ruler']:.1f} µs/event; router.match {times['router']:.2f} µs: {faster:.0f}x faster")
    return [Row("100 patterns: event-ruler ÷ router", f"{faster:,.0f}x", "—", None)]


def _pattern(event_type: str, rule: Data) -> Data:
    detail: Data = {}
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


# ---- subprocesses ---------------------------------------------------------------------


def run_child(arguments: list[str], timeout: float) -> tuple[list[Data], bool]:
    """Run `match.py --child ...`; its JSON lines, and whether it was killed at the timeout
    (the lines it printed before count: a phase reports as soon as it ends)."""
    with tempfile.TemporaryFile("w+") as output:
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", *arguments],
                                 stdout=output, stderr=subprocess.STDOUT, text=True)
        try:
            child.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            timed_out = True
        output.seek(0)
        text = output.read()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    if not timed_out and child.returncode != 0:
        print(text.rstrip())
    return lines, timed_out


def _report(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _memory(key: str) -> float:
    """`VmRSS` (resident now) or `VmHWM` (its peak) of this process, in MiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(key)


def _reset_peak() -> float:
    """Forget the peak resident size so far (writing 5 to /proc/self/clear_refs: what the
    imports took and gave back must not hide the load's peak); the resident MiB now."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _memory("VmRSS")


def child(kind: str, argument: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.route"
        if kind == "ranges":
            lines = ["defaults { on_exhausted drop }", "target t { mode async }"]
            lines += [f"route r{i} {{ on e when amount > {i} to t }}" for i in range(int(argument))]
            text = "\n".join(lines) + "\n"
            gc.collect()
            before = _reset_peak()
            artifact, seconds = compile_artifact(text, path)
            _report(phase="compile", seconds=seconds, peak_mib=_memory("VmHWM") - before)
            router, seconds = load_router(artifact)
            _report(phase="load", seconds=seconds, peak_mib=_memory("VmHWM") - before)
            assert router.match("e", {"amount": 1.5}) == {"t"}
        else:
            pattern, event_type, _, _ = GLOBS[argument]
            artifact, _ = compile_artifact(f"defaults {{ on_exhausted drop }}\ntarget t {{ mode async }}\n"
                                           f"route r {{ on {pattern} to t }}\n", path)
            router = interlock.Router(artifact)
            start = clock()
            found = router.match(event_type, {})
            _report(seconds=clock() - start, matched=sorted(found))


# ---- main -----------------------------------------------------------------------------


def summary(rows: list[Row]) -> None:
    print("\nSummary: measured against the goals of issue 15")
    width = max(len(row.workload) for row in rows)
    measured = max(len(row.measured) for row in rows)
    print(f"{'workload':<{width}}  {'measured':>{measured}}  {'goal':<9} met?")
    for row in rows:
        met = "—" if row.met is None else "yes" if row.met else "NO"
        goal = row.goal + ("*" if row.derived else "")
        print(f"{row.workload:<{width}}  {row.measured:>{measured}}  {goal:<9} {met}")
    if any(row.derived for row in rows):
        print("* not a number from the issue: the rule that no input takes more than linear time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, help="rounds per median (default 7, 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sizes, a 20 s timeout")
    parser.add_argument("--timeout", type=float, help="seconds before a subprocess is killed (default 120, 20 quick)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    quick = args.quick
    rounds = args.rounds or (3 if quick else 7)
    timeout = args.timeout or (20.0 if quick else 120.0)
    print(f"interlock from {Path(interlock.__file__).parent}; median of {rounds} rounds"
          f"{' (--quick)' if quick else ''}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        rows += small_vs_hand_written(rounds, folder)
        rows += dense_vs_linear_scan(rounds, folder, 300 if quick else 1000)
        rows += constant_output(rounds, folder, (100, 10_000) if quick else (100, 1_000, 10_000))
        rows += compile_and_load(1 if quick else 3, folder, (10_000, 20_000) if quick else (10_000, 20_000, 40_000))
        rows += range_load((2_000, 4_000) if quick else (2_000, 4_000, 8_000), timeout)
        rows += type_globs(timeout)
        rows += event_ruler_comparison(rounds, folder)
    summary(rows)


if __name__ == "__main__":
    main()
