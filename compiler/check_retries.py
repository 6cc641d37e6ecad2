"""Retry policies and target limits that cannot work.

Checks every retry policy as written (named ones, and the inline ones of targets and
`defaults`, each reported where it is written), and every `timeout` and `concurrency`:

- E0220 `attempts 0`: the event would never be delivered at all;
- E0221 a backoff `max` below its `initial` delay;
- E0222 an exponential `factor` below 1 (delays that shrink);
- E0223 a `deadline` the first retry can never meet, so the policy never retries: shorter than
  the shortest first delay (the delay itself; half of it with `jitter equal`; with `jitter
  full` a delay can be drawn as 0, so only `deadline 0s` is caught), or `deadline 0s`;
- E0224 an error kind in both `retry_on` and `give_up_on`;
- E0226 `timeout 0s`, E0227 `concurrency 0`, E0228 a `concurrency` above MAX_CONCURRENCY (the
  runtime keeps a worker and a connection slot per delivery in flight), on a target or in
  `defaults`;
- W0225 a sync target whose retries cannot fit in its budget. A sync target is called inside
  `publish`, so its budget is the one time limit its policy gives: the `deadline`, after which
  no retry starts. In the worst case every attempt runs to its `timeout` and every delay is
  the longest (`policies.delay`), so retry n (1-based) starts at `n * timeout + the first n
  delays`. When the last retry's start is beyond the deadline, some of the `attempts` can
  never happen. (Without a deadline nothing bounds the retries but `attempts` themselves, and
  they always fit.) Not added on top of an error of the same policy.

Does not check what a policy means for losing events (`check_loss`), nor whether a policy or
dead letter is used at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from interlock.dsl import Diagnostic, Project, Related, ast
from interlock.dsl.diagnostics import error, warning
from interlock.runtime.artifact_format import MAX_CONCURRENCY

from .policies import Backoff, Policy, delay, resolve_policy, resolve_targets

# Delays summed one by one, exactly as `policies.delays` lists them; beyond, in closed form.
_EXACT_TERMS = 1_000


def check_retries(project: Project) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    broken: set[ast.RetryPolicy] = set()
    for policy in _policies(project):
        found = _check_policy(policy)
        if found:
            broken.add(policy)
        diagnostics.extend(found)
    for options in _options(project):
        diagnostics.extend(_check_limits(options))
    for target in resolve_targets(project).values():
        diagnostics.extend(_check_target_kinds(target.decl, target.policy))
        written = _written_policy(project, target.decl)
        if target.mode == "sync" and written is not None and written not in broken:
            diagnostics.extend(_check_budget(target.policy, target.timeout_ms, target.decl, written))
    return diagnostics


def _written_policy(project: Project, target: ast.TargetDecl) -> ast.RetryPolicy | None:
    """The policy in force for `target`, as written: its own, else the `defaults` one."""
    retry = target.options.retry
    if retry is None and project.defaults is not None:
        retry = project.defaults.options.retry
    return project.retries[retry.text] if isinstance(retry, ast.Name) else retry


def _policies(project: Project) -> Iterator[ast.RetryPolicy]:
    yield from project.retries.values()
    for options in _options(project):
        if isinstance(options.retry, ast.RetryPolicy):
            yield options.retry


def _options(project: Project) -> Iterator[ast.TargetOptions]:
    yield from (target.options for target in project.targets.values())
    if project.defaults is not None:
        yield project.defaults.options


def _check_policy(policy: ast.RetryPolicy) -> list[Diagnostic]:
    found = []
    what = f"retry policy `{policy.name.text}`" if policy.name else "this retry policy"
    if policy.attempts is not None and policy.attempts.value == 0:
        found.append(error("E0220", f"{what} makes no attempt at all", policy.attempts.span, "no attempt",
                           "attempts count the first try: `attempts 1` tries once and never retries"))
    backoff = policy.backoff
    if isinstance(backoff, (ast.LinearBackoff, ast.ExponentialBackoff)) and backoff.max is not None \
            and backoff.max.ms < backoff.initial.ms:
        found.append(error(
            "E0221", f"the backoff `max` of {what} is below its `initial` delay", backoff.max.span,
            f"`max {backoff.max.text}` is less than `initial {backoff.initial.text}`",
            f"raise `max` to at least `{backoff.initial.text}`, or lower `initial`",
            [Related(backoff.initial.span, "the first delay")]))
    if isinstance(backoff, ast.ExponentialBackoff) and backoff.factor.value < 1:
        found.append(error(
            "E0222", f"the backoff `factor` of {what} is below 1", backoff.factor.span, "delays would shrink",
            "an exponential backoff grows: use a `factor` of 1 or more (`factor 2` doubles each delay), "
            "or `backoff fixed` for equal delays"))
    found.extend(_check_deadline(policy, what))
    found.extend(_check_error_kinds(policy, what))
    return found


def _check_deadline(policy: ast.RetryPolicy, what: str) -> list[Diagnostic]:
    resolved = resolve_policy(policy)
    if policy.deadline is None or resolved.attempts < 2:
        return []
    first = delay(resolved.backoff, 0)
    shortest = {"none": first, "equal": first / 2, "full": 0}[resolved.jitter]
    deadline = policy.deadline
    if deadline.ms > 0 and deadline.ms >= shortest:
        return []
    if deadline.ms == 0:
        label, wait = "no retry can start", "a retry starts after the first attempt has failed"
    else:
        label = "no retry can start this early"
        wait = f"the first retry waits {_duration(first)}" + (
            " (at least half of that with `jitter equal`)" if resolved.jitter == "equal" else "")
    return [error(
        "E0223", f"{what} can never retry: its `deadline` ends before the first retry", deadline.span, label,
        f"{wait}; make the deadline longer, or the first delay shorter")]


def _check_error_kinds(policy: ast.RetryPolicy, what: str) -> list[Diagnostic]:
    retried = {name.text: name for name in policy.retry_on or ()}
    found = []
    for name in policy.give_up_on or ():
        if name.text in retried:
            found.append(error(
                "E0224", f"`{name.text}` is both retried and given up on in {what}", name.span,
                "also in `retry_on`", f"keep `{name.text}` in one list: `retry_on` to retry it, `give_up_on` not to",
                [Related(retried[name.text].span, "retried here")]))
    return found


def _check_target_kinds(target: ast.TargetDecl, policy: Policy) -> list[Diagnostic]:
    """A target's own `retry_on` / `give_up_on` against the lists in force beside them."""
    own = target.options
    if own.retry_on is None and own.give_up_on is None:
        return []
    written = {n.text: n for n in (*(own.retry_on or ()), *(own.give_up_on or ()))}
    both = set(policy.retry_on or ()) & set(policy.give_up_on)
    return [error("E0224", f"`{kind}` is both retried and given up on for target `{target.name.text}`",
                  written[kind].span, "in `retry_on` and in `give_up_on`",
                  f"keep `{kind}` in one list: `retry_on` to retry it, `give_up_on` not to")
            for kind in sorted(both) if kind in written]


def _check_limits(options: ast.TargetOptions) -> list[Diagnostic]:
    found = []
    if options.timeout is not None and options.timeout.ms == 0:
        found.append(error("E0226", "a `timeout` of zero fails every attempt", options.timeout.span,
                           "no time for an attempt", "give each attempt time to finish, such as `timeout 5s`"))
    if options.concurrency is not None and options.concurrency.value == 0:
        found.append(error("E0227", "`concurrency 0` never delivers anything", options.concurrency.span,
                           "no delivery can run", "allow at least one delivery in flight: `concurrency 1` delivers "
                           "one at a time"))
    if options.concurrency is not None and options.concurrency.value > MAX_CONCURRENCY:
        found.append(error("E0228", f"`concurrency {options.concurrency.value}` is more deliveries in flight than "
                           f"the {MAX_CONCURRENCY:,} a target may have", options.concurrency.span,
                           f"more than {MAX_CONCURRENCY:,}",
                           "a delivery in flight holds a worker and a connection: past a few hundred, run more "
                           f"instances instead (at most `concurrency {MAX_CONCURRENCY}`)"))
    return found


def _check_budget(policy: Policy, timeout_ms: int, target: ast.TargetDecl,
                  written: ast.RetryPolicy) -> list[Diagnostic]:
    retries = policy.attempts - 1
    if policy.deadline_ms is None or retries < 1 or timeout_ms == 0 or written.deadline is None:
        return []
    deadline = policy.deadline_ms
    if _start_of_retry(policy.backoff, timeout_ms, retries) <= deadline:
        return []
    fit = _retries_that_fit(policy.backoff, timeout_ms, retries, deadline)
    needed = _start_of_retry(policy.backoff, timeout_ms, retries)
    related = [Related(written.deadline.span, "no retry starts after this")]
    if target.options.timeout is not None:
        related.append(Related(target.options.timeout.span, "per attempt"))
    return [warning(
        "W0225", f"sync target `{target.name.text}` cannot make all its retries before its deadline",
        target.name.span, f"{fit} of {retries} retries fit in {_duration(deadline)}",
        f"at worst (every attempt times out after {_duration(timeout_ms)}), the last retry starts after "
        f"{_duration(needed)}: make the deadline at least that, or lower `attempts` to {fit + 1}, "
        "or shorten the `timeout` or the delays" if not math.isinf(needed) else
        f"at worst (every attempt times out after {_duration(timeout_ms)}) the last retry would start after "
        f"no bounded time: lower `attempts` to {fit + 1}, or shorten the `timeout` or the delays",
        related)]


def _start_of_retry(backoff: Backoff, timeout_ms: int, n: int) -> float:
    """When retry `n` (1-based) starts at the latest: `n` attempts that time out, `n` delays."""
    return n * timeout_ms + _sum_of_delays(backoff, n)


def _retries_that_fit(backoff: Backoff, timeout_ms: int, retries: int, deadline_ms: int) -> int:
    """The number of retries that start within the deadline (the start of each is later than
    the one before, since a timeout is at least 1ms): a binary search."""
    low, high = 0, retries  # retry `low` fits (0: none needed), retry `high + 1` does not
    while low < high:
        middle = (low + high + 1) // 2
        if _start_of_retry(backoff, timeout_ms, middle) <= deadline_ms:
            low = middle
        else:
            high = middle - 1
    return low


def _sum_of_delays(backoff: Backoff, count: int) -> float:
    """`sum(delay(backoff, n) for n in range(count))`, for any `count`, however large.

    Exact for `fixed` and `linear` backoffs, and for the first `_EXACT_TERMS` delays of an
    exponential one; past those, the geometric series in floating point, without dropping
    fractions of a millisecond (an upper bound that is off by less than 1ms a delay).
    """
    initial, cap = backoff.initial_ms, backoff.max_ms
    if backoff.kind == "fixed":
        return count * initial
    if backoff.kind == "linear":
        step = backoff.step_ms
        if cap is None:
            return count * initial + step * count * (count - 1) // 2
        if step == 0 or initial >= cap:
            return count * min(initial, cap)
        below = min(count, -(-(cap - initial) // step))  # the delays under the cap come first
        return below * initial + step * below * (below - 1) // 2 + (count - below) * cap
    exact = min(count, _EXACT_TERMS)
    total = sum(delay(backoff, n) for n in range(exact))
    if count == exact:
        return total
    try:
        return float(total) + _geometric_tail(backoff, exact, count)
    except OverflowError:  # the whole numbers went past what a float holds
        return math.inf


def _geometric_tail(backoff: Backoff, start: int, stop: int) -> float:
    """The sum of `min(initial * factor ** n, max)` for n in [start, stop); a factor below 1
    (an error of its own, E0222) is taken as 1."""
    initial, factor, cap = backoff.initial_ms, max(backoff.factor, 1.0), backoff.max_ms
    count = max(0, stop - start)
    if count == 0 or initial == 0:
        return 0.0
    if factor == 1.0:
        return float(count * min(initial, cap if cap is not None else initial))
    uncapped = count
    if cap is not None:
        # from this index on, the delays are at the cap
        reach = math.ceil(math.log(cap / initial) / math.log(factor)) if cap > initial else 0
        uncapped = max(0, min(stop, reach) - start)
    growing = 0.0
    if uncapped:
        try:
            growing = initial * factor**start * (factor**uncapped - 1) / (factor - 1)
        except OverflowError:
            growing = math.inf
    return growing + (count - uncapped) * (cap or 0)


def _duration(ms: float) -> str:
    """A duration as people write it: `2s`, `1m30s`, `250ms` (a fraction of a ms rounded up)."""
    if math.isinf(ms):
        return "forever"
    whole = math.ceil(ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts) or "0ms"
