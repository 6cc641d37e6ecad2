"""How long `load_project` (read, parse, resolve) takes on a realistic project, and how it scales.

Generates, in a temporary folder, a project shaped like a large real one: about 50 event
types with schemas, a few retry policies and dead letters, a few hundred targets, and
routes (equality, set, range, prefix, exists and glob predicates, joined by `and`, `or`,
`not`; some `choose` blocks and `with` transforms) split over files that import the
targets, which import the common declarations. It then times, at three sizes (a
hundredth, a tenth and all of `--routes`), `load_project`, and the parse of all the
project's files (`parse_source`) with the fast path and with Lark's parser alone
(`fast=False`), side by side. On the largest file it compares `parse_text` with Lark's
parser alone and with Lark's own contextual lexer and LALR parser on the same grammar.

Every number is the median of `--runs` runs measured in this one process, and the table
prints ratios side by side, because this machine is shared and noisy: compare ratios
between runs, not seconds. What is compared side by side is timed in turns, round by
round. The garbage collector is collected before, and disabled during, each timed run
(as `load_project` pauses it), so that a collection triggered by an earlier run does not
land in a later one.

    .venv/bin/python bench/parse.py                    # 100, 1,000 and 10,000 routes, 5 runs each
    .venv/bin/python bench/parse.py --routes 20000 --runs 7
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lark

from interlock.dsl import load_project, parse_source, parse_text
from interlock.dsl.builder import Builder
from interlock.dsl.parser import grammar_text, parser
from interlock.dsl.source import SourceFile
from interlock.dsl.transform import CURRENT, BuildContext

TARGET_SECONDS = 2.0  # the product's budget for loading a 10,000-route project
ROUTES_PER_FILE = 550  # 10,000 routes make 19 route files, 21 files in all

DOMAINS = ["order", "payment", "shipment", "customer", "invoice", "refund", "inventory", "cart", "subscription",
           "account"]
ACTIONS = ["created", "updated", "cancelled", "completed", "failed"]
TIERS = ["free", "silver", "gold", "platinum"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "SEK", "PLN", "CAD"]
CHANNELS = ["web", "app", "pos", "marketplace"]
REGIONS = ["EU", "US", "APAC", "LATAM"]
ERRORS = ["TimeoutError", "ConnectionError", "ValidationError", "RateLimited", "Unavailable"]
SCHEMA = """\
  id: string
  placed_at: timestamp
  channel: string
  amount: float
  currency: string
  quantity: int
  sku: string
  customer: { id: string, tier: string, region: string, first_order: bool }
  items: list<{ sku: string, quantity: int, unit_price: float }>
  tags: list<string>
  coupon: string?
  source_ip: string?
"""


# ---- the generated project ---------------------------------------------------------


def _predicate(rng: random.Random) -> str:
    kind = rng.randrange(9)
    if kind == 0:
        return f'customer.tier == "{rng.choice(TIERS)}"'
    if kind == 1:
        currencies = ", ".join(f'"{c}"' for c in rng.sample(CURRENCIES, rng.randint(1, 4)))
        return f"currency in [{currencies}]"
    if kind == 2:
        low = rng.randrange(0, 5000, 10)
        return f"amount in {low}..{low + rng.randrange(10, 5000, 10)}"
    if kind == 3:
        return f'sku startswith "{rng.choice(REGIONS)}-{rng.randrange(100)}"'
    if kind == 4:
        return f"amount {rng.choice(['>', '>=', '<', '<='])} {rng.randrange(1, 10_000)}"
    if kind == 5:
        return f'channel != "{rng.choice(CHANNELS)}"'
    if kind == 6:
        return rng.choice(["exists coupon", "missing source_ip", "customer.first_order == true"])
    if kind == 7:
        return f'any tags in ["{rng.choice(["vip", "press", "b2b", "staff"])}", "promo-{rng.randrange(50)}"]'
    return f"quantity in {rng.randrange(1, 5)}..{rng.randrange(5, 100)}"


def _condition(rng: random.Random) -> str:
    parts = [_predicate(rng) for _ in range(rng.choice([1, 1, 2, 2, 3, 4]))]
    if len(parts) >= 3 and rng.random() < 0.3:
        return f"{parts[0]} and ({parts[1]} or {' or '.join(parts[2:])})"
    if len(parts) >= 2 and rng.random() < 0.15:
        return f"{parts[0]} and not ({parts[1]})" + "".join(f" and {p}" for p in parts[2:])
    return " and ".join(parts)


def _on(rng: random.Random, events: list[str]) -> str:
    roll = rng.random()
    if roll < 0.05:
        return f"{rng.choice(DOMAINS)}.*"
    if roll < 0.12:
        return ", ".join(rng.sample(events, 2))
    return rng.choice(events)


def _route(rng: random.Random, number: int, events: list[str], targets: list[str]) -> str:
    name = f"route_{number:05d}"
    roll = rng.random()
    if roll < 0.05:  # a choice: a few branches, then otherwise
        branches = "".join(f"  when {_condition(rng)} to {rng.choice(targets)}\n" for _ in range(rng.randint(2, 4)))
        return (f"choose {name.replace('route', 'choice')} {{\n  on {rng.choice(events)}\n{branches}"
                f"  otherwise to {rng.choice(targets)}\n}}\n")
    deliveries = rng.sample(targets, rng.choice([1, 1, 1, 2, 2, 3]))
    if rng.random() < 0.06:  # a transform on the first delivery
        deliveries[0] += " with { order_id: id, total: amount, tier: customer.tier, source: \"bench\" }"
    when = "" if rng.random() < 0.08 else f"  when {_condition(rng)}\n"
    return f"route {name} {{\n  on {_on(rng, events)}\n{when}  to {', '.join(deliveries)}\n}}\n"


def generate(folder: str, routes: int, seed: int = 1) -> tuple[list[str], int]:
    """Write a project of `routes` routes and choices into `folder`: (file paths, total bytes)."""
    rng = random.Random(seed)
    events = [f"{domain}.{action}" for domain in DOMAINS for action in ACTIONS]
    targets_count = max(10, min(300, routes // 30))
    targets = [f"svc_{i:03d}" for i in range(targets_count)]
    dead_letters = [f"dlq_{i}" for i in range(10)]

    common = ["# events, retry policies, dead letters, defaults\n"]
    for event in events:
        common.append(f"event {event} {{\n{SCHEMA}}}\n")
    common.append(
        "retry standard {\n  attempts 5\n  backoff exponential initial 100ms factor 2 max 10s jitter full\n"
        "  retry_on [TimeoutError, ConnectionError]\n  give_up_on [ValidationError]\n  deadline 2m\n}\n"
        "retry quick { attempts 3 backoff fixed 50ms }\n"
        "retry patient { attempts 10, backoff linear initial 1s step 1s max 1m, jitter equal }\n"
        "retry never { attempts 1 }\n"
    )
    common.extend(f"dead_letter {dl} {{ retain {rng.choice(['1d', '7d', '30d'])} }}\n" for dl in dead_letters)
    common.append("defaults {\n  retry standard\n  dead_letter dlq_0\n  timeout 5s\n}\n"
                  "unrouted to dead_letter unrouted_dlq\n")

    lines = ['import "common.route"\n\n']
    for target in targets:
        if rng.random() < 0.1:
            lines.append(f"target {target} {{\n  mode sync\n  timeout {rng.choice(['100ms', '200ms', '1s'])}\n"
                         f"  retry {rng.choice(['quick', 'never'])}\n}}\n")
        else:
            emits = f"\n  emits [{rng.choice(events)}]" if rng.random() < 0.1 else ""
            lines.append(
                f"target {target} {{\n  mode async\n  retry {rng.choice(['standard', 'patient', 'quick'])}\n"
                f"  dead_letter {rng.choice(dead_letters)}\n  timeout {rng.randint(1, 30)}s\n"
                f"  concurrency {rng.choice([1, 4, 8, 16, 32])}\n  order by customer.id{emits}\n}}\n"
            )

    files = {"common.route": "".join(common), "targets.route": "".join(lines)}
    chunks = max(1, -(-routes // ROUTES_PER_FILE))
    for chunk in range(chunks):
        body = ['import "../targets.route"\n\n']
        for number in range(chunk * routes // chunks, (chunk + 1) * routes // chunks):
            body.append(_route(rng, number, events, targets))
        files[f"routes/routes_{chunk:02d}.route"] = "".join(body)

    paths = []
    for name, text in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        paths.append(path)
    return paths, sum(len(text.encode()) for text in files.values())


# ---- timing ------------------------------------------------------------------------


def median_seconds(run: Callable[[], Any], runs: int) -> float:
    return medians([run], runs)[0]


def medians(contenders: list[Callable[[], Any]], runs: int) -> list[float]:
    """The median time of each, timed in turns round by round (the first first in even rounds,
    last in odd ones), so that a slow spell of the machine falls on all of them."""
    times: list[list[float]] = [[] for _ in contenders]
    for round_ in range(runs):
        order = list(range(len(contenders)))
        for index in order if round_ % 2 == 0 else order[::-1]:
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                contenders[index]()
                times[index].append(time.perf_counter() - start)
            finally:
                gc.enable()
    return [statistics.median(t) for t in times]


def parse_all(sources: list[SourceFile], fast: bool) -> None:
    for source in sources:
        module, diagnostics = parse_source(source, fast=fast)
        assert not diagnostics and module.decls


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--routes", type=int, default=10_000, help="the largest project (default 10000)")
    options.add_argument("--runs", type=int, default=5, help="timed runs per measurement; the median is shown")
    args = options.parse_args(argv)
    if args.runs < 1 or args.routes < 1:
        options.error("--routes and --runs must be at least 1")
    sizes = sorted({max(1, args.routes // 100), max(1, args.routes // 10), args.routes})

    print(f"interlock bench/parse.py: Python {sys.version.split()[0]}, lark {lark.__version__}, "
          f"median of {args.runs} runs, gc disabled while timing")
    parser()  # build the parser once, outside every timing, as a long-running process would

    results: dict[int, float] = {}
    largest: str = ""
    with tempfile.TemporaryDirectory(prefix="interlock-bench-") as root:
        print(f"\n{'':35} {'load_project':>21}   {'parse of the files (median s)':>33}")
        print(f"{'routes':>8} {'files':>6} {'bytes':>11} {'':>7} {'median s':>10} {'µs/route':>9}   "
              f"{'fast path':>10} {'Lark alone':>11} {'ratio':>7}")
        for size in sizes:
            folder = os.path.join(root, f"p{size}")
            paths, size_bytes = generate(folder, size)
            project = load_project([folder])
            if project.errors:
                print(f"the generated project has errors, first: {project.errors[0]}", file=sys.stderr)
                return 1
            found = len(project.routes) + len(project.chooses)
            assert found == size, (found, size)
            seconds = median_seconds(lambda folder=folder: load_project([folder]), args.runs)
            results[size] = seconds
            sources = [SourceFile(path, Path(path).read_text(encoding="utf-8")) for path in paths]
            fast, alone = medians([lambda s=sources: parse_all(s, True), lambda s=sources: parse_all(s, False)],
                                  args.runs)
            print(f"{size:>8,} {len(paths):>6} {size_bytes:>11,} {'':>7} {seconds:>10.3f} "
                  f"{seconds / size * 1e6:>9.1f}   {fast:>10.3f} {alone:>11.3f} {alone / fast:>7.2f}")
            if size == sizes[-1]:
                largest = max(paths, key=os.path.getsize)

        big, small = sizes[-1], sizes[-2] if len(sizes) > 1 else None
        print()
        if small is not None:
            print(f"time({big:,}) / time({small:,}) = {results[big] / results[small]:.2f}"
                  f"   (linear: {big / small:.1f})")
        if 10_000 in results:
            print(f"load_project, 10,000 routes: {results[10_000]:.3f} s"
                  f" = {results[10_000] / TARGET_SECONDS:.0%} of the {TARGET_SECONDS:.0f} s target")
        else:
            print(f"(the {TARGET_SECONDS:.0f} s target is for 10,000 routes: run with --routes 10000 to compare)")

        with open(largest, encoding="utf-8") as handle:
            text = handle.read()
    compare_lexers(text, os.path.basename(largest), args.runs)
    return 0


def compare_lexers(text: str, name: str, runs: int) -> None:
    """Ours, with the fast path and without, against Lark's stock contextual lexer and LALR
    parser, on one file's text."""
    stock = lark.Lark(grammar_text(), parser="lalr", lexer="contextual", strict=True)
    # The same, but building our AST as ours does: isolates the lexer, the one part that differs.
    stock_builder = lark.Lark(grammar_text(), parser="lalr", lexer="contextual", strict=True,
                              keep_all_tokens=True, maybe_placeholders=False, transformer=Builder())

    def with_builder() -> Any:
        token = CURRENT.set(BuildContext(SourceFile(name, text)))
        try:
            return stock_builder.parse(text)
        finally:
            CURRENT.reset(token)

    module, diagnostics = parse_text(text, name)
    assert not diagnostics and len(with_builder()) == len(module.decls)
    assert parse_text(text, name, fast=False) == (module, diagnostics)
    ours, alone, tree, built = medians([lambda: parse_text(text, name), lambda: parse_text(text, name, fast=False),
                                        lambda: stock.parse(text), with_builder], runs)
    print(f"\nlargest file {name}: {len(text.encode()):,} bytes, {len(module.decls)} declarations")
    print(f"{'':52} {'median ms':>10} {'ratio':>7}")
    print(f"{'parse_text (the fast path, Lark for what it declines)':52} {ours * 1e3:>10.1f} {1:>7.2f}")
    print(f"{'parse_text(fast=False) (our lexer, Lark LALR, AST)':52} {alone * 1e3:>10.1f} {alone / ours:>7.2f}")
    print(f"{'Lark contextual lexer, parse tree':52} {tree * 1e3:>10.1f} {tree / ours:>7.2f}")
    print(f"{'Lark contextual lexer, our AST builder':52} {built * 1e3:>10.1f} {built / ours:>7.2f}")


if __name__ == "__main__":
    sys.exit(main())
