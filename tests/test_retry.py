"""Retry delays and decisions: every backoff kind and jitter, and agreement with the compiler."""

from __future__ import annotations

import random as random_module

from hypothesis import given
from hypothesis import strategies as st

from interlock.compiler.policies import Backoff
from interlock.compiler.policies import delay as compiler_delay
from interlock.runtime.retry import LONGEST_DELAY_MS, base_delay, decide, delay


def policy(kind: str = "fixed", initial: int = 100, step: int = 0, factor: float = 1.0, max_ms: int | None = None,
           attempts: int = 5, jitter: str = "none", **more: object) -> dict[str, object]:
    return {"attempts": attempts, "jitter": jitter, "retry_on": None, "give_up_on": [], "deadline_ms": None,
            "backoff": {"kind": kind, "initial_ms": initial, "step_ms": step, "factor": factor, "max_ms": max_ms},
            **more}


def test_fixed_linear_exponential() -> None:
    assert [base_delay(policy("fixed", 50), n) for n in range(3)] == [50, 50, 50]
    assert [base_delay(policy("linear", 100, step=50), n) for n in range(4)] == [100, 150, 200, 250]
    assert [base_delay(policy("linear", 100, step=50, max_ms=180), n) for n in range(4)] == [100, 150, 180, 180]
    assert [base_delay(policy("exponential", 100, factor=2), n) for n in range(5)] == [100, 200, 400, 800, 1600]
    assert [base_delay(policy("exponential", 100, factor=2, max_ms=500), n) for n in range(5)] == [
        100, 200, 400, 500, 500]
    assert base_delay(policy("exponential", 100, factor=1.5), 3) == 337  # 337.5, fractions dropped
    assert base_delay(policy("exponential", 100, factor=10.0), 400) == LONGEST_DELAY_MS


def test_jitter_is_a_pure_function_of_the_random_source() -> None:
    p = policy("fixed", 1000, jitter="full")
    assert [delay(p, 0, lambda r=r: r) for r in (0.0, 0.25, 0.999)] == [0, 250, 999]
    p = policy("fixed", 1000, jitter="equal")
    assert [delay(p, 0, lambda r=r: r) for r in (0.0, 0.5, 0.999)] == [500, 750, 999]
    assert delay(policy("fixed", 1000), 0, lambda: 0.7) == 1000
    draws = random_module.Random(3)
    first = [delay(policy("exponential", 100, factor=2, jitter="full"), n, draws.random) for n in range(6)]
    draws = random_module.Random(3)
    again = [delay(policy("exponential", 100, factor=2, jitter="full"), n, draws.random) for n in range(6)]
    assert first == again and all(0 <= d <= 100 * 2**n for n, d in enumerate(first))


def test_decisions() -> None:
    never = lambda: 0.0  # noqa: E731
    p = policy("fixed", 100, attempts=3, retry_on=["TimeoutError"], give_up_on=["ValidationError"])
    assert decide(p, 1, "TimeoutError", 0, never).delay_ms == 100
    assert decide(p, 2, "TimeoutError", 0, never).retry
    assert decide(p, 3, "TimeoutError", 0, never).reason == "all 3 attempts failed"
    assert decide(p, 1, "ValidationError", 0, never).reason == "`ValidationError` is in give_up_on"
    assert decide(p, 1, "KeyError", 0, never).reason == "`KeyError` is not in retry_on"
    everything = policy("fixed", 100, attempts=3)
    assert decide(everything, 1, "KeyError", 0, never).retry
    timed = policy("fixed", 100, attempts=10, deadline_ms=250)
    assert decide(timed, 2, "E", 150, never).retry  # 150 + 100 = 250: starts at the deadline
    assert not decide(timed, 3, "E", 151, never).retry


@given(st.sampled_from(["fixed", "linear", "exponential"]), st.integers(0, 10_000), st.integers(0, 5_000),
       st.floats(0, 5, allow_nan=False), st.one_of(st.none(), st.integers(0, 100_000)), st.integers(0, 200))
def test_the_runtime_and_the_compiler_agree_on_delays(kind: str, initial: int, step: int, factor: float,
                                                     max_ms: int | None, retry: int) -> None:
    backoff = Backoff(kind, initial, step_ms=step, factor=factor, max_ms=max_ms)
    runtime = base_delay(policy(kind, initial, step=step, factor=factor, max_ms=max_ms), retry)
    compiled = compiler_delay(backoff, retry)
    assert runtime == min(compiled, LONGEST_DELAY_MS)


def test_the_most_specific_kind_a_list_names_decides() -> None:
    never = lambda: 0.0  # noqa: E731
    p = policy("fixed", 100, attempts=3, retry_on=["http.5xx", "http.429"], give_up_on=["http.4xx"])
    assert decide(p, 1, ("http.429", "http.4xx"), 0, never).retry
    assert decide(p, 1, ("http.404", "http.4xx"), 0, never).reason == "`http.4xx` is in give_up_on"
    assert decide(p, 1, ("http.503", "http.5xx"), 0, never).retry
    assert decide(p, 1, ("http.timeout",), 0, never).reason == "`http.timeout` is not in retry_on"
    narrow = policy("fixed", 100, attempts=3, give_up_on=["http.404"])
    assert not decide(narrow, 1, ("http.404", "http.4xx"), 0, never).retry
    assert decide(narrow, 1, ("http.409", "http.4xx"), 0, never).retry


def test_a_servers_wait_lengthens_the_delay_within_the_backoff_max_and_the_deadline() -> None:
    never = lambda: 0.0  # noqa: E731
    assert decide(policy("fixed", 100, attempts=3), 1, "E", 0, never, 5000).delay_ms == 5000
    assert decide(policy("fixed", 100, attempts=3), 1, "E", 0, never, 50).delay_ms == 100  # never shorter
    capped = policy("exponential", 100, factor=2, max_ms=1000, attempts=3)
    assert decide(capped, 1, "E", 0, never, 5000).delay_ms == 1000
    timed = policy("fixed", 100, attempts=3, deadline_ms=2000)
    assert not decide(timed, 1, "E", 0, never, 5000).retry


def test_the_runtime_fails_http_targets_only_with_kinds_the_language_knows() -> None:
    import httpx

    from interlock.dsl.http import HTTP_KINDS, is_http_kind
    from interlock.runtime.http_target import HttpTarget

    target = HttpTarget("t", {"http": {"method": "POST", "url": {"value": "http://127.0.0.1:9/"}, "headers": [],
                                       "format": "binary"}, "timeout_ms": 1000, "concurrency": 1}, {})
    request = httpx.Request("POST", "http://127.0.0.1:9/")
    kinds = set(HTTP_KINDS) - {"http.3xx", "http.4xx", "http.5xx"}
    for status in range(300, 600):
        error = target._status_error(httpx.Response(status, request=request), b"", "POST x")
        assert all(is_http_kind(k) for k in error.kinds), status
        kinds.update(error.kinds)
    for exc in (httpx.ConnectError("refused"), httpx.ReadError("reset"), httpx.RemoteProtocolError("bad"),
                httpx.RemoteProtocolError("Server disconnected without sending a response.")):
        kinds.update(target._transport_error(exc, "POST x").kinds)
    assert all(is_http_kind(k) for k in kinds)
    assert {"http.3xx", "http.4xx", "http.5xx", "http.connect", "http.protocol"} <= kinds
