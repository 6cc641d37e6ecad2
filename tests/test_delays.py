"""The delays of a retry policy (`policies.delay`, `policies.delays`), and the closed forms the
`check_retries` pass uses for huge policies, checked against the plain list."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from interlock.compiler.check_retries import _retries_that_fit, _sum_of_delays
from interlock.compiler.policies import LONGEST_DELAY_MS, Backoff, Policy, delay, delays, resolve_policy
from interlock.dsl import ast, parse_text


def policy(text: str) -> Policy:
    module, diagnostics = parse_text(text)
    assert diagnostics == []
    (decl,) = module.decls
    assert isinstance(decl, ast.RetryPolicy)
    return resolve_policy(decl)


def test_the_brief_standard_policy() -> None:
    standard = policy("retry standard { attempts 5 backoff exponential initial 100ms factor 2 max 10s jitter full }")
    assert delays(standard) == [100, 200, 400, 800]


def test_each_kind() -> None:
    assert delays(policy("retry r { attempts 4 backoff fixed 50ms }")) == [50, 50, 50]
    assert delays(policy("retry r { attempts 5 backoff linear initial 1s step 2s max 4s }")) == [1000, 3000, 4000, 4000]
    assert delays(policy("retry r { attempts 4 backoff linear initial 1m step 2m }")) == [60_000, 180_000, 300_000]
    assert delays(policy("retry r { attempts 6 backoff exponential initial 1s factor 3 max 1m }")) == [
        1000, 3000, 9000, 27_000, 60_000]


def test_the_language_defaults() -> None:
    # a policy without `backoff`: exponential from 100ms, factor 2, at most 10s
    assert delays(policy("retry r { attempts 9 }")) == [100, 200, 400, 800, 1600, 3200, 6400, 10_000]
    assert delays(policy("retry r { }")) == [100, 200]  # attempts 3
    assert delays(policy("retry r { attempts 1 }")) == []
    assert delays(policy("retry r { attempts 0 }")) == []


def test_fractions_of_a_millisecond_are_dropped() -> None:
    assert delays(policy("retry r { attempts 5 backoff exponential initial 100ms factor 1.5 }")) == [100, 150, 225, 337]


def test_no_delay_is_negative_or_too_large_for_a_float() -> None:
    assert delay(Backoff("exponential", 100, factor=-2.0), 1) == 0
    assert delay(Backoff("exponential", 100, factor=10.0), 10**6) == LONGEST_DELAY_MS
    assert delay(Backoff("exponential", 100, factor=10.0, max_ms=5000), 10**6) == 5000
    assert delay(Backoff("exponential", 0, factor=10.0), 10**6) == 0
    assert delay(Backoff("exponential", 100, factor=0.5), 10**6) == 0


backoffs = st.one_of(
    st.builds(lambda d: Backoff("fixed", d), st.integers(0, 10**6)),
    st.builds(lambda d, s, m: Backoff("linear", d, step_ms=s, max_ms=m),
              st.integers(0, 10**6), st.integers(0, 10**5), st.none() | st.integers(0, 10**7)),
    st.builds(lambda d, f, m: Backoff("exponential", d, factor=f, max_ms=m),
              st.integers(0, 10**6), st.floats(1.0, 4.0), st.none() | st.integers(0, 10**9)),
)


@given(backoffs, st.integers(0, 1_500))
def test_the_sum_of_delays_agrees_with_the_list(backoff: Backoff, count: int) -> None:
    listed = sum(delay(backoff, n) for n in range(count))
    computed = _sum_of_delays(backoff, count)
    if backoff.kind == "exponential" and count > 1_000:  # the tail is summed in floating point
        if math.isinf(computed):
            assert listed >= LONGEST_DELAY_MS
        else:
            assert math.isclose(computed, listed, rel_tol=1e-9, abs_tol=count)
    else:
        assert computed == listed


@given(backoffs, st.integers(1, 100), st.integers(1, 60), st.integers(0, 10**7))
def test_the_retries_that_fit_agree_with_counting(backoff: Backoff, timeout: int, retries: int, deadline: int) -> None:
    starts = [n * timeout + sum(delay(backoff, i) for i in range(n)) for n in range(1, retries + 1)]
    assert _retries_that_fit(backoff, timeout, retries, deadline) == sum(1 for s in starts if s <= deadline)


def test_huge_policies_take_no_time() -> None:
    for backoff in (Backoff("linear", 1, step_ms=1), Backoff("exponential", 1, factor=1.0000001),
                    Backoff("exponential", 1, factor=1.0000001, max_ms=10**9), Backoff("fixed", 5)):
        assert _sum_of_delays(backoff, 10**30) > 0
        assert 0 < _retries_that_fit(backoff, 1000, 10**30, 10**16) < 10**30
