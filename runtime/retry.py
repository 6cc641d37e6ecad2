"""Retry decisions, exactly as a target's policy says: a pure function of (policy, attempt, random source).

The policy is the artifact's form (`targets[NAME]["retry"]`): attempts, backoff (kind,
initial_ms, step_ms, factor, max_ms), jitter, retry_on, give_up_on, deadline_ms.

- `base_delay(policy, n)`: the delay before retry `n` (0 for the first retry) without
  jitter: `fixed` initial; `linear` initial + n * step; `exponential` initial * factor ** n;
  capped at `max_ms` when set; whole milliseconds. The compiler's `policies.delay` is the
  same function (the runtime may not import it); `tests/test_retry.py` checks they agree.
- `delay(policy, n, random)`: with jitter: `none` the base; `full` uniform in [0, base];
  `equal` base / 2 + uniform in [0, base / 2]. `random` returns a float in [0, 1).
- `decide(policy, attempt, kinds, elapsed_ms, random, at_least_ms)`: after attempt `attempt`
  (1 for the first try) failed with an error of `kinds` (a handler's exception: its class
  name; an HTTP target's failure: its kinds, the most specific first, as `("http.503",
  "http.5xx")`), `elapsed_ms` after the first attempt started: retry after how long, or give
  up and why. The most specific kind that either list names decides (`retry_on [http.429]`
  with `give_up_on [http.4xx]` retries a 429). `at_least_ms` (a server's `Retry-After`)
  lengthens the delay, up to the backoff's `max_ms` when it has one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs

Policy = dict[str, Any]
LONGEST_DELAY_MS = 2**53  # beyond any deadline; what an overflowing exponential becomes


def base_delay(policy: Policy, retry: int) -> int:
    backoff = policy["backoff"]
    kind, initial = backoff["kind"], backoff["initial_ms"]
    if kind == "fixed":
        raw: float = initial
    elif kind == "linear":
        raw = initial + retry * backoff["step_ms"]
    else:
        try:
            raw = initial * backoff["factor"] ** retry
        except OverflowError:
            negative = backoff["factor"] < 0 and retry % 2 == 1
            raw = 0.0 if initial == 0 else -math.inf if negative else math.inf
    raw = max(raw, 0)
    if backoff.get("max_ms") is not None:
        raw = min(raw, backoff["max_ms"])
    return LONGEST_DELAY_MS if math.isinf(raw) else min(math.floor(raw), LONGEST_DELAY_MS)


def delay(policy: Policy, retry: int, random: Callable[[], float]) -> int:
    base = base_delay(policy, retry)
    jitter = policy.get("jitter", "none")
    if jitter == "full":
        return math.floor(base * random())
    if jitter == "equal":
        half = base / 2
        return math.floor(half + half * random())
    return base


@attrs.frozen
class Decision:
    retry: bool
    delay_ms: int = 0
    reason: str = ""  # why not, when retry is False


def decide(policy: Policy, attempt: int, kinds: str | Sequence[str], elapsed_ms: int,
           random: Callable[[], float], at_least_ms: int = 0) -> Decision:
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    give_up_on = policy.get("give_up_on") or ()
    retry_on = policy.get("retry_on")
    for kind in kinds:
        if kind in give_up_on:
            return Decision(False, reason=f"`{kind}` is in give_up_on")
        if retry_on is not None and kind in retry_on:
            break
    else:
        if retry_on is not None:
            return Decision(False, reason=f"`{kinds[0]}` is not in retry_on")
    if attempt >= policy["attempts"]:
        return Decision(False, reason=f"all {policy['attempts']} attempts failed")
    wait = delay(policy, attempt - 1, random)
    if at_least_ms > wait:
        ceiling = policy["backoff"].get("max_ms")
        wait = at_least_ms if ceiling is None else max(wait, min(at_least_ms, ceiling))
    deadline = policy.get("deadline_ms")
    if deadline is not None and elapsed_ms + wait > deadline:
        return Decision(False, reason=f"the next retry would start after the {deadline} ms deadline")
    return Decision(True, wait)
