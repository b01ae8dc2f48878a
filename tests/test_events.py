"""Reporters, events, logging, status and health."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import botocreds
from botocreds import (
    BreakerChanged,
    BreakerState,
    CredentialsUnavailable,
    ReactiveInvalidation,
    RefreshEvent,
    RefreshFailed,
    RefreshPolicy,
    RefreshSucceeded,
    RequestPathMint,
)
from botocreds._scheduler import Scheduler

from ._fakes import FakeClock, Harness, ScriptedFetcher, refreshable

POLICY = RefreshPolicy(floor=10.0, failure_threshold=2, cooldown=30.0, wait_timeout=0.0)


@pytest.fixture(autouse=True)
def _no_process_reporters() -> Iterator[None]:
    yield
    botocreds.set_reporters(None)


def _harness(events: list[RefreshEvent], script: list[object]) -> Harness:
    botocreds.set_reporters([events.append])
    return Harness(POLICY, lifetime=100.0, inline=True, script=script)


def test_a_scripted_outage_reports_each_step_in_order() -> None:
    events: list[RefreshEvent] = []
    h = _harness(events, [None, OSError("down"), OSError("down"), OSError("down")])
    h.tick(80.0)  # the due refresh fails
    h.tick(2.0)  # the retry fails too: the breaker opens
    h.tick(30.0)  # cooldown over: the probe fails, the breaker reopens
    h.fetcher.script = []
    h.tick(30.0)  # the next probe succeeds
    kinds = [(type(e).__name__, getattr(e, "state", None), e.attempt) for e in events]
    assert kinds == [
        ("RefreshSucceeded", None, 1),  # the eager first mint
        ("RefreshFailed", None, 1),
        ("RefreshFailed", None, 2),
        ("BreakerChanged", BreakerState.OPEN, 2),
        ("BreakerChanged", BreakerState.HALF_OPEN, 2),
        ("RefreshFailed", None, 3),
        ("BreakerChanged", BreakerState.OPEN, 3),
        ("BreakerChanged", BreakerState.HALF_OPEN, 3),
        ("RefreshSucceeded", None, 4),
        ("BreakerChanged", BreakerState.CLOSED, 3),
    ]
    assert all(e.source == "test-source" for e in events)
    failed = [e for e in events if isinstance(e, RefreshFailed)]
    assert failed[0].error == "OSError: down"
    assert failed[0].remaining == pytest.approx(20.0)
    recovered = events[-2]
    assert isinstance(recovered, RefreshSucceeded)
    assert recovered.remaining == pytest.approx(100.0)
    assert recovered.access_key.startswith("****") and len(recovered.access_key) == 8


def test_a_request_that_finds_the_credentials_expired_is_reported() -> None:
    events: list[RefreshEvent] = []
    h = _harness(events, [])
    h.clock.advance(150.0)
    h.key()
    waits = [e for e in events if isinstance(e, RequestPathMint)]
    assert len(waits) == 1 and waits[0].succeeded
    assert waits[0].remaining == pytest.approx(100.0)


def test_a_failed_request_path_mint_is_reported_as_such() -> None:
    events: list[RefreshEvent] = []
    h = _harness(events, [None, OSError("down")])
    h.clock.advance(150.0)
    with pytest.raises(CredentialsUnavailable):
        h.key()
    waits = [e for e in events if isinstance(e, RequestPathMint)]
    assert len(waits) == 1 and not waits[0].succeeded


def test_reactive_invalidation_is_reported() -> None:
    events: list[RefreshEvent] = []
    h = _harness(events, [])
    h.clock.advance(5.0)
    assert h.refresher._invalidate("ExpiredToken", h.refresher._snapshot.frozen.access_key)
    reactive = [e for e in events if isinstance(e, ReactiveInvalidation)]
    assert len(reactive) == 1 and reactive[0].retried
    assert reactive[0].error_code == "ExpiredToken"


def test_a_reporter_that_raises_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[RefreshEvent] = []

    def broken(event: RefreshEvent) -> None:
        raise RuntimeError("reporter bug")

    botocreds.set_reporters([broken, seen.append])
    with caplog.at_level(logging.ERROR, logger="botocreds"):
        h = Harness(POLICY, lifetime=100.0, inline=True)
        h.tick(80.0)
    assert h.refresher.mint_count == 2, "the refresh went on"
    assert len(seen) == 2, "later reporters still ran"
    assert any("reporter bug" in (r.exc_text or "") for r in caplog.records)


def test_a_per_refresher_reporter_and_the_process_reporters_both_receive_events() -> None:
    mine: list[RefreshEvent] = []
    everyone: list[RefreshEvent] = []
    botocreds.set_reporters([everyone.append])
    clock = FakeClock()
    botocreds.Refresher(
        refreshable(ScriptedFetcher(clock)),
        reporter=mine.append,
        clock=clock,
        _scheduler=Scheduler(clock, lambda job: job(), autostart=False),
    )
    assert len(mine) == 1 and mine == everyone


@pytest.mark.parametrize("bad", [42, "print"])
def test_a_reporter_must_be_callable(bad: object) -> None:
    with pytest.raises(TypeError, match="reporter must be callable"):
        botocreds.Refresher(refreshable(ScriptedFetcher(FakeClock())), reporter=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a reporter must be callable"):
        botocreds.set_reporters([bad])  # type: ignore[list-item]


def test_events_are_logged_with_their_fields_as_extra(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="botocreds"):
        h = Harness(POLICY, lifetime=100.0, inline=True, script=[None, OSError("down")])
        h.tick(80.0)
    failed = [r for r in caplog.records if getattr(r, "event", None) == "RefreshFailed"]
    assert len(failed) == 1
    record = failed[0]
    assert record.levelno == logging.WARNING
    assert record.source == "test-source"  # type: ignore[attr-defined]
    assert record.attempt == 1  # type: ignore[attr-defined]
    assert record.error == "OSError: down"  # type: ignore[attr-defined]


def test_status_and_health_describe_every_refresher() -> None:
    h = Harness(POLICY, lifetime=100.0, inline=True, script=[None, OSError("down")])
    h.tick(80.0)
    status = h.refresher.status()
    assert status.source == "test-source"
    assert status.valid and not status.closed
    assert status.breaker is BreakerState.CLOSED and status.failures == 1
    assert status.last_error == "OSError: down"
    assert status.mint_count == 1
    assert status.expires_at is not None and status.next_refresh_at is not None
    assert status.next_refresh_at < status.expires_at
    assert status.access_key.startswith("****")
    assert status in botocreds.health()
    h.refresher.close()
    closed = h.refresher.status()
    assert closed.closed and closed.next_refresh_at is None


def test_events_are_immutable() -> None:
    event = RefreshFailed("s", 0.1, 10.0, 1, "OSError: down")
    with pytest.raises(AttributeError):
        event.attempt = 2  # type: ignore[misc]
    assert isinstance(
        BreakerChanged("s", 0.0, None, 1, BreakerState.CLOSED, BreakerState.OPEN), RefreshEvent
    )


def test_an_abandoned_mint_reports_how_long_it_ran() -> None:
    events: list[RefreshEvent] = []
    botocreds.set_reporters([events.append])
    h = Harness(RefreshPolicy(floor=10.0, mint_timeout=30.0), lifetime=100.0)
    h.clock.advance(80.0)
    h.scheduler.run_pending()  # claimed, never run
    h.clock.advance(30.0)
    h.scheduler.run_pending()  # the watchdog gives up on it
    failed = [e for e in events if isinstance(e, RefreshFailed)]
    assert len(failed) == 1 and failed[0].duration == pytest.approx(30.0)
    assert "MintTimedOut" in failed[0].error
