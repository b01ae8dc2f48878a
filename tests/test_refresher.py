"""Refresher and Swapper, deterministically: fake clock, fixed jitter, manual scheduler."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import boto3
import pytest
from botocore.credentials import Credentials, DeferredRefreshableCredentials

import botocreds
from botocreds import BreakerState, CredentialsUnavailable, RefreshPolicy
from botocreds._scheduler import Scheduler

from ._fakes import FakeClock, Harness, Return, ScriptedFetcher, iso, refreshable


def test_the_first_mint_is_eager_and_schedules_the_refresh_at_80_percent() -> None:
    h = Harness()
    assert h.fetcher.calls == 1
    assert h.scheduler.due_at(h.refresher) == h.clock() + 0.8 * 3600


def test_the_hot_path_reads_the_snapshot_without_fetching() -> None:
    h = Harness()
    first = h.key()
    for _ in range(1000):
        assert h.key() == first
    h.clock.advance(0.8 * 3600 - 1)
    assert h.key() == first
    assert h.fetcher.calls == 1


def test_a_due_refresh_mints_off_the_scheduler_and_publishes_a_new_set() -> None:
    h = Harness()
    first = h.key()
    h.clock.advance(0.8 * 3600)
    h.scheduler.run_pending()
    assert h.key() == first, "nothing is published before the mint runs"
    assert len(h.queue.jobs) == 1
    h.queue.run_all()
    assert h.key() != first
    assert h.refresher.mint_count == 2
    assert h.scheduler.due_at(h.refresher) == pytest.approx(h.clock() + 0.8 * 3600)


def test_jitter_moves_the_refresh_earlier() -> None:
    h = Harness(sample=0.5)
    assert h.scheduler.due_at(h.refresher) == h.clock() + (0.8 - 0.05) * 3600


def test_credentials_shorter_than_the_window_are_fetched_once_per_lifetime() -> None:
    # botocore refreshes 15-minute credentials on every call; here it is once a lifetime.
    h = Harness(RefreshPolicy(floor=30.0), lifetime=900.0)
    for _ in range(10):
        for _ in range(100):
            h.key()
        h.tick(90.0)
    assert h.fetcher.calls == 2  # the eager mint, and one at 720 s


def test_no_fetch_runs_on_the_thread_that_reads_the_credentials() -> None:
    h = Harness(RefreshPolicy(floor=10.0, wait_timeout=5.0), lifetime=100.0)
    h.clock.advance(200.0)  # expired, say after a laptop sleep
    reader = threading.Thread(target=h.key, name="request-thread")
    reader.start()
    h.queue.wait_for(1)
    worker = threading.Thread(target=h.queue.run_all, name="botocreds-mint-test")
    worker.start()
    reader.join(10)
    worker.join(10)
    assert h.fetcher.threads[-1] == "botocreds-mint-test"
    assert "request-thread" not in h.fetcher.threads


def test_expired_credentials_trigger_exactly_one_mint_for_many_waiting_threads() -> None:
    h = Harness(RefreshPolicy(floor=10.0, wait_timeout=10.0), lifetime=100.0)
    old = h.key()
    h.clock.advance(150.0)
    keys: list[str] = []
    started = threading.Barrier(9)

    def request() -> None:
        started.wait()
        keys.append(h.key())

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.wait()
    h.queue.wait_for(1)
    h.queue.run_all()
    for thread in threads:
        thread.join(10)
    assert h.fetcher.calls == 2
    assert len(keys) == 8 and len(set(keys)) == 1 and keys[0] != old


def test_expired_credentials_are_never_served_when_no_mint_arrives_in_time() -> None:
    h = Harness(RefreshPolicy(floor=10.0, wait_timeout=0.0), lifetime=100.0)
    h.clock.advance(100.0)
    with pytest.raises(CredentialsUnavailable, match="wait_timeout=0s") as caught:
        h.refresher.credentials.get_frozen_credentials()
    assert caught.value.source == "test-source"
    assert len(h.queue.jobs) == 1, "the mint still runs for the next request"


def test_a_failed_mint_keeps_the_current_set_and_backs_off() -> None:
    h = Harness(lifetime=3600.0, script=[None, RuntimeError("sts is down")])
    first = h.key()
    h.tick(0.8 * 3600)
    assert h.key() == first
    assert h.refresher.breaker.failures == 1
    retry = h.scheduler.due_at(h.refresher)
    assert retry is not None and h.clock() + 1.0 <= retry <= h.clock() + 1.0 + 1e-9


def test_a_failing_source_is_bounded_by_the_breaker_not_by_the_request_rate() -> None:
    policy = RefreshPolicy(floor=10.0, failure_threshold=3, cooldown=60.0, wait_timeout=0.0)
    h = Harness(policy, lifetime=100.0, inline=True, script=[None] + [OSError("down")] * 50)
    h.clock.advance(100.0)
    errors = 0
    for _ in range(400):  # 400 requests over 4 s: a retry waits min_interval (1 s)
        try:
            h.key()
        except CredentialsUnavailable:
            errors += 1
        h.clock.advance(0.01)
    assert errors == 400
    assert h.fetcher.calls == 1 + 3
    assert h.refresher.breaker.state is BreakerState.OPEN
    with pytest.raises(CredentialsUnavailable, match="circuit breaker is open") as caught:
        h.key()
    assert "OSError: down" in str(caught.value)
    h.clock.advance(60.0)
    h.fetcher.script = []
    assert h.key().startswith("ASIAFAKE")
    recovered = h.refresher.breaker
    assert recovered.state is BreakerState.CLOSED


@pytest.mark.parametrize(
    "answer",
    [
        {},
        None,
        {"access_key": "A", "secret_key": "S", "token": "T"},
        {"access_key": "", "secret_key": "S", "token": "T", "expiry_time": iso(2e9)},
        {"access_key": "A", "secret_key": "S", "token": "T", "expiry_time": "not a date"},
    ],
    ids=["empty", "none", "no-expiry", "blank-key", "bad-date"],
)
def test_bad_answers_count_as_failed_mints_and_publish_nothing(answer: object) -> None:
    h = Harness(script=[None, Return(answer)])
    first = h.key()
    h.tick(0.8 * 3600)
    assert h.key() == first
    assert h.refresher.breaker.failures == 1


def test_credentials_that_arrive_inside_the_floor_are_refused() -> None:
    clock = FakeClock()
    fetcher = ScriptedFetcher(clock, lifetime=30.0)
    with pytest.raises(CredentialsUnavailable, match="within the 60s floor"):
        botocreds.Refresher(refreshable(fetcher), clock=clock, _scheduler=_manual(clock))


def test_a_keyboard_interrupt_inside_a_fetcher_releases_the_single_flight_slot() -> None:
    h = Harness(script=[None, KeyboardInterrupt()])
    h.tick(0.8 * 3600)
    assert h.refresher.breaker.failures == 1
    h.tick(2.0)
    assert h.refresher.mint_count == 2


def test_inside_the_floor_requests_are_served_and_a_mint_starts_in_the_background() -> None:
    # The scheduler was frozen with the process: the next request notices.
    h = Harness(RefreshPolicy(floor=60.0), lifetime=3600.0)
    first = h.key()
    h.clock.advance(3600 - 30)
    assert h.key() == first
    assert len(h.queue.jobs) == 1
    assert h.key() == first
    assert len(h.queue.jobs) == 1, "single-flight: one mint however many requests"
    h.queue.run_all()
    assert h.key() != first


def test_close_stops_background_refresh_but_clients_mint_on_demand() -> None:
    h = Harness(RefreshPolicy(floor=10.0), lifetime=100.0, inline=True)
    first = h.key()
    h.refresher.close()
    h.refresher.close()
    assert h.refresher.closed
    assert h.scheduler.members() == []
    h.tick(95.0)
    assert h.fetcher.calls == 1, "no background mint after close"
    assert h.key() == first, "still valid: served as it is"
    h.clock.advance(10.0)
    assert h.key() != first
    assert h.fetcher.calls == 2


def test_a_static_source_is_passed_through_and_never_scheduled() -> None:
    clock = FakeClock()
    scheduler = _manual(clock)
    static = Credentials("AKIASTATIC0001", "secret")
    refresher = botocreds.Refresher(static, clock=clock, _scheduler=scheduler)
    assert refresher.credentials.get_frozen_credentials().access_key == "AKIASTATIC0001"
    assert refresher.credentials.expiry_time is None
    assert scheduler.due_at(refresher) is None


def test_a_session_is_accepted_and_its_credentials_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    clock = FakeClock()
    refresher = botocreds.Refresher(boto3.Session(), clock=clock, _scheduler=_manual(clock))
    assert refresher.credentials.access_key == "AKIAFROMENV00001"
    assert refresher.credentials.method == "env"


def test_a_session_without_credentials_fails_loudly() -> None:
    with pytest.raises(CredentialsUnavailable, match="no credentials"):
        botocreds.Refresher(boto3.Session())


def test_deferred_credentials_are_fetched_through_their_own_fetcher() -> None:
    clock = FakeClock()
    fetcher = ScriptedFetcher(clock)
    deferred = DeferredRefreshableCredentials(fetcher, "assume-role")
    refresher = botocreds.Refresher(deferred, clock=clock, _scheduler=_manual(clock))
    assert fetcher.calls == 1
    assert refresher.name == "assume-role"


class TestSwapper:
    def test_the_factory_runs_again_each_cycle(self) -> None:
        clock = FakeClock()
        scheduler = _manual(clock, inline=True)
        fetcher = ScriptedFetcher(clock, lifetime=3600.0)
        made = 0

        def factory() -> Credentials:
            nonlocal made
            made += 1
            return refreshable(fetcher)

        swapper = botocreds.Swapper(factory, clock=clock, random=lambda: 0.0, _scheduler=scheduler)
        first = swapper.credentials.access_key
        clock.advance(0.8 * 3600)
        scheduler.run_pending()
        assert made == 2
        assert swapper.credentials.access_key != first

    def test_a_fresh_short_lived_set_costs_one_fetch_not_two(self) -> None:
        # Reading a new 10-minute RefreshableCredentials through its public API
        # would run botocore's own refresh (it is inside the 15-minute window).
        clock = FakeClock()
        fetcher = ScriptedFetcher(clock, lifetime=600.0)
        swapper = botocreds.Swapper(
            lambda: refreshable(fetcher), clock=clock, _scheduler=_manual(clock)
        )
        assert fetcher.calls == 1
        assert swapper.credentials.access_key == "ASIAFAKE00000001"

    def test_static_credentials_are_re_read_every_static_ttl(self) -> None:
        clock = FakeClock()
        scheduler = _manual(clock, inline=True)
        keys = iter(f"AKIAROTATED{n:05d}" for n in range(100))
        swapper = botocreds.Swapper(
            lambda: Credentials(next(keys), "secret"),
            policy=RefreshPolicy(static_ttl=300.0),
            clock=clock,
            _scheduler=scheduler,
        )
        assert swapper.credentials.access_key == "AKIAROTATED00000"
        clock.advance(300.0)
        scheduler.run_pending()
        assert swapper.credentials.access_key == "AKIAROTATED00001"

    def test_a_factory_that_returns_none_fails_at_construction(self) -> None:
        with pytest.raises(CredentialsUnavailable, match="returned None"):
            botocreds.Swapper(lambda: None)


@pytest.mark.parametrize("bad", [None, 42, "AKIA", object()])
def test_refresher_rejects_what_is_not_credentials_with_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="botocore Credentials or a boto3/botocore Session"):
        botocreds.Refresher(bad)


@pytest.mark.parametrize("bad", [None, 42, Credentials("A", "B")])
def test_swapper_rejects_a_non_callable_with_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        botocreds.Swapper(bad)  # type: ignore[arg-type]


def test_a_policy_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="RefreshPolicy"):
        botocreds.Refresher(Credentials("A", "B"), policy={"floor": 1})  # type: ignore[arg-type]


def test_refresher_is_a_context_manager() -> None:
    clock = FakeClock()
    scheduler = _manual(clock)
    with botocreds.Refresher(refreshable(ScriptedFetcher(clock)), _scheduler=scheduler) as r:
        assert scheduler.members() == [r]
    assert r.closed and scheduler.members() == []


def _manual(clock: FakeClock, *, inline: bool = False) -> Scheduler:
    queue: list[object] = []
    dispatch = (lambda job: job()) if inline else queue.append
    return Scheduler(clock, dispatch, autostart=False)


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    before = {t.name for t in threading.enumerate()}
    yield
    after = {t.name for t in threading.enumerate()}
    assert not {n for n in after - before if n.startswith("botocreds-mint")}


def test_a_hung_mint_is_abandoned_after_mint_timeout_and_its_late_answer_ignored() -> None:
    h = Harness(RefreshPolicy(mint_timeout=30.0))
    first = h.key()
    h.clock.advance(0.8 * 3600)
    h.scheduler.run_pending()
    hung = h.queue.jobs.pop()
    h.clock.advance(30.0)
    h.scheduler.run_pending()
    assert h.refresher._state.claimed is None
    assert h.refresher.breaker.failures == 1
    assert h.scheduler.due_at(h.refresher) is not None, "a retry is scheduled"
    hung()  # the fetch finally returns
    assert h.key() == first, "an abandoned mint never publishes"
    assert h.refresher.breaker.failures == 1
    h.tick(2.0)
    assert h.key() != first


def test_while_an_abandoned_fetch_still_runs_the_source_mints_nothing_more() -> None:
    # One stuck thread per source at most: a hung source cannot eat the pool.
    h = Harness(RefreshPolicy(mint_timeout=30.0, floor=10.0, wait_timeout=0.0), lifetime=100.0)
    h.clock.advance(80.0)
    h.scheduler.run_pending()
    hung = h.queue.jobs.pop()
    h.clock.advance(30.0)
    h.scheduler.run_pending()  # the watchdog abandons it
    with pytest.raises(CredentialsUnavailable, match="hung past mint_timeout"):
        h.key()  # expired, and no second fetch starts beside the hung one
    assert h.queue.jobs == []
    calls = h.fetcher.calls
    hung()  # the job finally runs: it was given up on, so it fetches nothing
    assert h.fetcher.calls == calls
    h.tick(2.0)  # and the source mints again
    assert h.key() == "ASIAFAKE00000003"


def test_a_half_open_probe_lost_in_a_fork_does_not_wedge_the_child() -> None:
    policy = RefreshPolicy(failure_threshold=1, cooldown=10.0, floor=10.0, wait_timeout=0.0)
    h = Harness(policy, lifetime=100.0, script=[None, OSError("down")])
    h.tick(80.0)  # fails: the breaker opens
    h.clock.advance(10.0)
    h.scheduler.run_pending()  # the probe is claimed...
    assert h.refresher.breaker.probing
    h.queue.jobs.clear()  # ...and lost: the process forked while it ran
    h.refresher._reset_in_child()
    assert h.scheduler.due_at(h.refresher) is not None
    h.tick(1.0)
    assert h.refresher.breaker.state is BreakerState.CLOSED


def test_a_refresher_nobody_holds_is_freed_without_the_cycle_collector() -> None:
    clock = FakeClock()
    refresher = botocreds.Refresher(refreshable(ScriptedFetcher(clock)), _scheduler=_manual(clock))
    credentials = refresher.credentials
    freed = weakref.ref(refresher)
    gc.disable()
    try:
        del refresher
        assert freed() is not None, "its credentials object still uses it"
        del credentials
        assert freed() is None
    finally:
        gc.enable()


def test_the_reactive_retry_needs_a_different_key_and_respects_min_interval() -> None:
    h = Harness(RefreshPolicy(min_interval=30.0, wait_timeout=0.0), inline=True)
    rejected = h.refresher._snapshot.frozen.access_key
    h.fetcher.answer = lambda: {  # type: ignore[method-assign]
        "access_key": rejected,
        "secret_key": "same",
        "token": "same",
        "expiry_time": iso(h.clock() + 3600),
    }
    h.clock.advance(60.0)
    assert not h.refresher._invalidate("ExpiredToken", rejected), "same key back: no retry"
    calls = h.fetcher.calls
    assert not h.refresher._invalidate("ExpiredToken", rejected)
    assert h.fetcher.calls == calls, "a second rejection within min_interval mints nothing"


def test_a_swapper_over_another_refreshers_credentials_keeps_their_expiry() -> None:
    h = Harness(lifetime=3600.0)
    swapper = botocreds.Swapper(
        lambda: h.refresher.credentials, clock=h.clock, _scheduler=_manual(h.clock)
    )
    assert swapper.credentials.expiry_time == h.refresher.credentials.expiry_time
