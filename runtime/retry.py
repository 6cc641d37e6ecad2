"""Retry decisions, exactly as a target's policy says: a pure function of (policy, attempt, random source).

The policy is the artifact's form (`targets[NAME]["retry"]`): attempts, backoff (kind,
initial_ms, step_ms, factor, max_ms), jitter, retry_on, give_up_on, deadline_ms.

- `base_delay(policy, n)`: the delay before retry `n` (0 for the first retry) without
  jitter: `fixed` initial; `linear` initial + n * step; `exponential` initial * factor ** n;
  capped at `max_ms` when set; whole milliseconds. The compiler's `policies.delay` is the
  same function (the runtime may not import it); `tests/test_retry.py` checks they agree.
- `delay(policy, n, random)`: with jitter: `none` the base; `full` uniform in [0, base];
  `equal` base / 2 + uniform in [0, base / 2]. `random` returns a float in [0, 1).
- `decide(policy, attempt, error_kind, elapsed_ms, random)`: after attempt `attempt` (1 for
  the first try) failed with an error of kind `error_kind` (the exception's class name),
  `elapsed_ms` after the first attempt started: retry after how long, or give up and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


def decide(policy: Policy, attempt: int, error_kind: str, elapsed_ms: int,
           random: Callable[[], float]) -> Decision:
    if error_kind in (policy.get("give_up_on") or ()):
        return Decision(False, reason=f"`{error_kind}` is in give_up_on")
    retry_on = policy.get("retry_on")
    if retry_on is not None and error_kind not in retry_on:
        return Decision(False, reason=f"`{error_kind}` is not in retry_on")
    if attempt >= policy["attempts"]:
        return Decision(False, reason=f"all {policy['attempts']} attempts failed")
    wait = delay(policy, attempt - 1, random)
    deadline = policy.get("deadline_ms")
    if deadline is not None and elapsed_ms + wait > deadline:
        return Decision(False, reason=f"the next retry would start after the {deadline} ms deadline")
    return Decision(True, wait)
