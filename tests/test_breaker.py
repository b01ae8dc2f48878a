"""The circuit breaker's pure state transitions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from botocreds import BreakerState, RefreshPolicy
from botocreds._breaker import Breaker

POLICY = RefreshPolicy(failure_threshold=3, cooldown=60.0)


def fail(breaker: Breaker, times: int, now: float = 0.0) -> Breaker:
    for _ in range(times):
        breaker = breaker.record_failure(now, POLICY)
    return breaker


def test_a_closed_breaker_admits_and_counts_failures_below_the_threshold() -> None:
    breaker = fail(Breaker(), 2)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 2
    assert breaker.admit(0.0, POLICY) == (True, breaker)


def test_the_threshold_opens_it_and_it_refuses_until_the_cooldown_ends() -> None:
    breaker = fail(Breaker(), 3, now=100.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.reopens_at(POLICY) == 160.0
    admitted, same = breaker.admit(159.9, POLICY)
    assert not admitted and same == breaker


def test_after_the_cooldown_exactly_one_probe_is_admitted() -> None:
    breaker = fail(Breaker(), 3, now=100.0)
    admitted, probing = breaker.admit(160.0, POLICY)
    assert admitted and probing.state is BreakerState.HALF_OPEN
    again, _ = probing.admit(161.0, POLICY)
    assert not again


def test_a_successful_probe_closes_and_a_failed_one_reopens() -> None:
    _, probing = fail(Breaker(), 3, now=100.0).admit(160.0, POLICY)
    assert probing.record_success() == Breaker()
    reopened = probing.record_failure(170.0, POLICY)
    assert reopened.state is BreakerState.OPEN
    assert reopened.reopens_at(POLICY) == 230.0


@given(st.lists(st.sampled_from(["ok", "fail", "admit"]), max_size=60))
def test_the_breaker_is_open_exactly_when_failures_reached_the_threshold(
    steps: list[str],
) -> None:
    breaker, now = Breaker(), 0.0
    for step in steps:
        now += 7.0
        if step == "ok":
            breaker = breaker.record_success()
        elif step == "fail":
            breaker = breaker.record_failure(now, POLICY)
        else:
            _, breaker = breaker.admit(now, POLICY)
        if breaker.state is BreakerState.CLOSED:
            assert breaker.failures < POLICY.failure_threshold
        else:
            assert breaker.failures >= 1
