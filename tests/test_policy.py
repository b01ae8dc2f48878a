"""RefreshPolicy: validation, and properties of refresh_at and retry_at over wide ranges."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from botocreds import RefreshPolicy

UTC = timezone.utc
issued_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
lifetimes = st.floats(min_value=0.0, max_value=7 * 24 * 3600.0, allow_nan=False)
samples = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)
policies = st.builds(
    RefreshPolicy,
    fraction=st.floats(min_value=0.01, max_value=1.0),
    floor=st.floats(min_value=0.0, max_value=3600.0),
    jitter=st.floats(min_value=0.0, max_value=0.99),
)
TOLERANCE = timedelta(milliseconds=1)


def test_defaults_are_the_documented_ones() -> None:
    policy = RefreshPolicy()
    assert (policy.fraction, policy.floor, policy.jitter) == (0.8, 60.0, 0.1)
    assert (policy.min_interval, policy.failure_threshold, policy.cooldown) == (1.0, 5, 60.0)
    assert (policy.wait_timeout, policy.static_ttl, policy.mint_timeout) == (5.0, 900.0, 120.0)
    assert (policy.backoff_base, policy.backoff_max) == (1.0, 60.0)


def test_one_hour_credentials_refresh_at_48_minutes_without_jitter() -> None:
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    due = RefreshPolicy().refresh_at(issued, issued + timedelta(hours=1), 0.0)
    assert due == issued + timedelta(minutes=48)


def test_jitter_pulls_one_hour_credentials_earlier_by_at_most_six_minutes() -> None:
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    due = RefreshPolicy().refresh_at(issued, issued + timedelta(hours=1), 0.999999)
    assert issued + timedelta(minutes=42) <= due < issued + timedelta(minutes=48)


def test_the_policy_is_immutable() -> None:
    policy = RefreshPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.fraction = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"fraction": 0.0}, "fraction must be in (0, 1]"),
        ({"fraction": 1.5}, "fraction must be in (0, 1]"),
        ({"floor": -1.0}, "floor must be >= 0"),
        ({"jitter": 1.0}, "jitter must be in [0, 1)"),
        ({"jitter": -0.1}, "jitter must be in [0, 1)"),
        ({"failure_threshold": 0}, "failure_threshold must be >= 1"),
        ({"cooldown": -5.0}, "cooldown must be >= 0"),
        ({"min_interval": -1.0}, "min_interval must be >= 0"),
        ({"wait_timeout": -0.5}, "wait_timeout must be >= 0"),
        ({"static_ttl": 0.0}, "static_ttl must be > 0"),
        ({"mint_timeout": 0.0}, "mint_timeout must be > 0"),
        ({"backoff_max": -1.0}, "backoff_max must be >= 0"),
        ({"floor": float("nan")}, "floor must be finite"),
    ],
)
def test_invalid_knobs_raise_value_error_naming_the_knob(
    knobs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RefreshPolicy(**knobs)  # type: ignore[arg-type]


@pytest.mark.parametrize("knobs", [{"floor": "60"}, {"failure_threshold": 2.5}, {"jitter": None}])
def test_knobs_of_the_wrong_type_raise_type_error(knobs: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="RefreshPolicy"):
        RefreshPolicy(**knobs)  # type: ignore[arg-type]


def test_refresh_at_rejects_naive_datetimes_and_bad_samples() -> None:
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        RefreshPolicy().refresh_at(naive, naive + timedelta(hours=1), 0.0)
    aware = naive.replace(tzinfo=UTC)
    with pytest.raises(ValueError, match="sample"):
        RefreshPolicy().refresh_at(aware, aware + timedelta(hours=1), 1.0)


@given(policies, issued_times, lifetimes, samples)
def test_refresh_at_stays_within_its_bounds(
    policy: RefreshPolicy, issued: datetime, lifetime: float, sample: float
) -> None:
    expires = issued + timedelta(seconds=lifetime)
    due = policy.refresh_at(issued, expires, sample)
    assert due >= issued
    assert due <= max(issued, expires - timedelta(seconds=policy.floor)) + TOLERANCE
    assert due <= issued + timedelta(seconds=policy.fraction * lifetime) + TOLERANCE


@given(policies, issued_times, lifetimes)
def test_refresh_at_without_jitter_is_the_exact_formula(
    policy: RefreshPolicy, issued: datetime, lifetime: float
) -> None:
    expires = issued + timedelta(seconds=lifetime)
    expected = min(policy.fraction * lifetime, lifetime - policy.floor)
    due = policy.refresh_at(issued, expires, 0.0)
    assert abs((due - issued).total_seconds() - max(0.0, expected)) < 1e-3


@given(policies, issued_times, lifetimes, samples)
def test_jitter_only_pulls_the_refresh_earlier_by_at_most_its_share(
    policy: RefreshPolicy, issued: datetime, lifetime: float, sample: float
) -> None:
    expires = issued + timedelta(seconds=lifetime)
    plain = policy.refresh_at(issued, expires, 0.0)
    jittered = policy.refresh_at(issued, expires, sample)
    assert jittered <= plain + TOLERANCE
    assert plain - jittered <= timedelta(seconds=policy.jitter * lifetime) + TOLERANCE


@given(policies, issued_times, lifetimes, lifetimes, samples)
def test_refresh_at_is_monotone_in_the_lifetime(
    policy: RefreshPolicy, issued: datetime, first: float, second: float, sample: float
) -> None:
    shorter, longer = sorted((first, second))
    early = policy.refresh_at(issued, issued + timedelta(seconds=shorter), sample)
    late = policy.refresh_at(issued, issued + timedelta(seconds=longer), sample)
    assert early <= late + TOLERANCE


@given(
    st.floats(min_value=0.0, max_value=1e9),
    st.integers(min_value=1, max_value=200),
    st.one_of(st.none(), st.floats(min_value=-1e4, max_value=1e5)),
    samples,
    st.floats(min_value=0.0, max_value=100.0),
    st.floats(min_value=0.0, max_value=600.0),
)
def test_retry_at_backs_off_within_bounds_and_before_expiry(
    now: float,
    attempt: int,
    expires_in: float | None,
    sample: float,
    base: float,
    cap: float,
) -> None:
    policy = RefreshPolicy(backoff_base=base, backoff_max=cap, min_interval=1.0)
    expires_at = None if expires_in is None else now + expires_in
    when = policy.retry_at(now, attempt, expires_at, sample)
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    assert when >= now + policy.min_interval - 1e-6
    assert when <= now + max(policy.min_interval, ceiling) + 1e-6
    if expires_at is not None:
        assume(expires_at - policy.min_interval >= now + policy.min_interval)
        assert when <= expires_at - policy.min_interval + 1e-6


def test_retry_at_grows_exponentially_until_the_cap() -> None:
    policy = RefreshPolicy(backoff_base=1.0, backoff_max=30.0, min_interval=0.0)
    top = [policy.retry_at(0.0, attempt, None, 0.999999) for attempt in range(1, 8)]
    assert top == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0], rel=1e-5)
