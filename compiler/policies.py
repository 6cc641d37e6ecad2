"""Every target's effective options: its own, else `defaults`, else the language's defaults.

Owns the language's default values (documented in docs/language.md, "Defaults"), and the
merge. Does not judge the result: policies that cannot work, loss of events and timeouts
that cannot hold are the checking passes' business (`check_retries`, `check_loss`).

Expects a project without front-end errors: every name it follows resolves.
"""

from __future__ import annotations

import math
import sys

import attrs

from interlock.dsl import Project, Span, ast

DEFAULT_MODE = "async"
DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_CONCURRENCY = 16
# A target with no retry policy anywhere is tried once.
NO_RETRY_ATTEMPTS = 1
# A policy that leaves these out gets them.
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF = ("exponential", 100, 2.0, 10_000)  # kind, initial ms, factor, max ms


@attrs.frozen
class Backoff:
    """`fixed`: every delay `initial_ms`. `linear`: initial + n * step. `exponential`: initial * factor ** n.
    Each capped at `max_ms` when set."""

    kind: str
    initial_ms: int
    step_ms: int = 0
    factor: float = 1.0
    max_ms: int | None = None


@attrs.frozen
class Policy:
    name: str | None  # None: inline, or no policy at all
    attempts: int
    backoff: Backoff
    jitter: str
    retry_on: tuple[str, ...] | None
    give_up_on: tuple[str, ...]
    deadline_ms: int | None
    span: Span | None  # where the policy is written, if anywhere


@attrs.frozen
class Http:
    """An HTTP target's endpoint. A URL or header value is `{"value": TEXT}` or
    `{"env": NAME}` (read when the router starts: the artifact holds no secret)."""

    method: str
    url: dict[str, str]
    headers: tuple[tuple[str, dict[str, str]], ...]
    format: str


def _text(value: ast.Scalar | ast.EnvRef) -> dict[str, str]:
    return {"env": value.name} if isinstance(value, ast.EnvRef) else {"value": str(value.value)}


def _http(own: ast.TargetOptions, defaults: ast.TargetOptions) -> Http | None:
    if own.http is None:
        return None
    headers = {h.name.value.lower(): h for h in defaults.headers or ()}  # type: ignore[union-attr]
    headers.update({h.name.value.lower(): h for h in own.headers or ()})  # type: ignore[union-attr]
    content = own.format or defaults.format
    return Http(own.http.method.value, _text(own.http.url),
                tuple((str(h.name.value), _text(h.value)) for h in headers.values()),
                content.value if content else "binary")


@attrs.frozen
class Target:
    name: str
    mode: str
    policy: Policy
    dead_letter: str | None
    timeout_ms: int
    concurrency: int
    order_by: tuple[str, ...] | None
    emits: tuple[str, ...]
    on_exhausted: str
    span: Span  # the target's name
    decl: ast.TargetDecl
    http: Http | None = None


def _backoff(backoff: ast.Backoff | None) -> Backoff:
    if isinstance(backoff, ast.FixedBackoff):
        return Backoff("fixed", backoff.delay.ms)
    if isinstance(backoff, ast.LinearBackoff):
        return Backoff("linear", backoff.initial.ms, step_ms=backoff.step.ms,
                       max_ms=backoff.max.ms if backoff.max else None)
    if isinstance(backoff, ast.ExponentialBackoff):
        return Backoff("exponential", backoff.initial.ms, factor=backoff.factor.value,
                       max_ms=backoff.max.ms if backoff.max else None)
    kind, initial, factor, maximum = DEFAULT_BACKOFF
    return Backoff(kind, initial, factor=factor, max_ms=maximum)


def resolve_policy(policy: ast.RetryPolicy) -> Policy:
    return Policy(
        name=policy.name.text if policy.name else None,
        attempts=policy.attempts.value if policy.attempts else DEFAULT_ATTEMPTS,
        backoff=_backoff(policy.backoff),
        jitter=policy.jitter.value if policy.jitter else "none",
        retry_on=tuple(n.text for n in policy.retry_on) if policy.retry_on is not None else None,
        give_up_on=tuple(n.text for n in policy.give_up_on or ()),
        deadline_ms=policy.deadline.ms if policy.deadline else None,
        span=policy.span,
    )


NO_RETRY = Policy(None, NO_RETRY_ATTEMPTS, _backoff(None), "none", None, (), None, None)


def _policy(project: Project, retry: ast.Name | ast.RetryPolicy | None) -> Policy | None:
    if retry is None:
        return None
    if isinstance(retry, ast.RetryPolicy):
        return resolve_policy(retry)
    return resolve_policy(project.retries[retry.text])


def resolve_targets(project: Project) -> dict[str, Target]:
    """Every target of the project with its effective options, in declaration order."""
    defaults = project.defaults.options if project.defaults else ast.TargetOptions()
    resolved = {}
    for name, decl in project.targets.items():
        own = decl.options
        policy = _policy(project, own.retry) or _policy(project, defaults.retry) or NO_RETRY
        # A target's own `retry_on` / `give_up_on` (or the defaults') replace its policy's.
        retry_on = own.retry_on if own.retry_on is not None else defaults.retry_on
        give_up_on = own.give_up_on if own.give_up_on is not None else defaults.give_up_on
        if retry_on is not None:
            policy = attrs.evolve(policy, retry_on=tuple(n.text for n in retry_on))
        if give_up_on is not None:
            policy = attrs.evolve(policy, give_up_on=tuple(n.text for n in give_up_on))
        mode = own.mode or defaults.mode
        timeout = own.timeout or defaults.timeout
        concurrency = own.concurrency or defaults.concurrency
        dead_letter = own.dead_letter or defaults.dead_letter
        on_exhausted = own.on_exhausted or defaults.on_exhausted
        resolved[name] = Target(
            name=name,
            mode=mode.value if mode else DEFAULT_MODE,
            policy=policy,
            dead_letter=dead_letter.text if dead_letter else None,
            timeout_ms=timeout.ms if timeout else DEFAULT_TIMEOUT_MS,
            concurrency=concurrency.value if concurrency else DEFAULT_CONCURRENCY,
            order_by=own.order_by.parts if own.order_by else None,
            emits=tuple(e.text for e in own.emits or ()),
            on_exhausted=on_exhausted.value if on_exhausted else "dead_letter",
            span=decl.name.span,
            decl=decl,
            http=_http(own, defaults),
        )
    return resolved


# The delay given for one that would not fit in a float (beyond about 1e308 ms): longer than
# any duration a `.route` file can spell, so no comparison with a written duration changes.
LONGEST_DELAY_MS = int(sys.float_info.max)


def delay(backoff: Backoff, retry: int) -> int:
    """The delay before retry number `retry` (0 for the first retry), in whole milliseconds.

    Jitter left out: this is the longest the delay can be (`full` jitter draws from 0 up to
    it, `equal` from half of it up to it). `fixed`: `initial`; `linear`: `initial + retry * step`;
    `exponential`: `initial * factor ** retry`; each capped at `max` when set, never below 0,
    fractions of a millisecond dropped.
    """
    if backoff.kind == "fixed":
        raw: float = backoff.initial_ms
    elif backoff.kind == "linear":
        raw = backoff.initial_ms + retry * backoff.step_ms
    else:
        try:
            raw = backoff.initial_ms * backoff.factor**retry
        except OverflowError:  # only a float power overflows; its sign is the power's
            negative = backoff.factor < 0 and retry % 2 == 1
            raw = 0.0 if backoff.initial_ms == 0 else -math.inf if negative else math.inf
    raw = max(raw, 0)
    if backoff.max_ms is not None:
        raw = min(raw, backoff.max_ms)
    return LONGEST_DELAY_MS if math.isinf(raw) else math.floor(raw)


def delays(policy: Policy) -> list[int]:
    """The delay before each retry of `policy`, in whole milliseconds: `attempts - 1` of them.

    Each is `delay(policy.backoff, n)`: jitter left out, so each is an upper bound. A list, for
    policies as people write them; a check that needs the sum of a huge number of delays
    computes it without listing them.
    """
    return [delay(policy.backoff, n) for n in range(policy.attempts - 1)]
