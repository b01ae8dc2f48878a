"""The async credentials object and AioRefresher, on a fake clock and a held mint queue.

Mints are queued, not run, until a test runs them, so every interleaving here
is forced rather than timed: "200 coroutines are waiting and exactly one mint
is queued" is a fact checked before the mint runs, not a race.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from aiobotocore.credentials import (
    AioCredentials,
    AioDeferredRefreshableCredentials,
    AioRefreshableCredentials,
)
from aiobotocore.session import AioSession
from botocore.credentials import Credentials, ReadOnlyCredentials

import botocreds
from botocreds import (
    AioBackgroundCredentials,
    AioRefresher,
    CredentialsUnavailable,
    RefreshEvent,
    RefreshPolicy,
    RequestPathMint,
    _core,
)
from botocreds._scheduler import Scheduler
from tests._fakes import FakeClock, JobQueue, ScriptedFetcher, Target, refreshable

LIFETIME = 3600.0


class AioHarness:
    """An AioRefresher over an async fetch, on a fake clock, with mints held in a queue."""

    def __init__(
        self, policy: RefreshPolicy | None = None, *, script: list[object] | None = None
    ) -> None:
        self.clock = FakeClock()
        self.queue = JobQueue()
        self.fetcher = ScriptedFetcher(self.clock, LIFETIME)
        self.fetch_threads: list[str] = []
        self.events: list[RefreshEvent] = []

        async def fetch() -> Mapping[str, Any]:
            self.fetch_threads.append(threading.current_thread().name)
            return self.fetcher()

        self.credentials = AioRefreshableCredentials.create_from_metadata(
            self.fetcher.answer(), fetch, "test-async"
        )
        self.scheduler = Scheduler(self.clock, self.queue, autostart=False)
        self.refresher = AioRefresher(
            self.credentials,
            policy=policy or RefreshPolicy(),
            clock=self.clock,
            random=lambda: 0.0,
            reporter=self.events.append,
            _scheduler=self.scheduler,
        )
        self.fetcher.script = list(script or [])  # for the mints after the eager one

    @property
    def view(self) -> AioBackgroundCredentials:
        return self.refresher.credentials

    def expire(self) -> None:
        self.clock.advance(LIFETIME + 1)

    def request_path_mints(self) -> list[RequestPathMint]:
        return [e for e in self.events if isinstance(e, RequestPathMint)]


@pytest.fixture
def harness() -> Iterator[AioHarness]:
    made = AioHarness()
    yield made
    made.refresher.close()


def _complete_without_suspending(coroutine: Any) -> Any:
    """Run a coroutine one step; fail if it suspends (i.e. if it would wait on anything)."""
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    return done.value.value


class TestHotPath:
    def test_get_frozen_credentials_completes_without_suspending(self, harness: AioHarness) -> None:
        frozen = _complete_without_suspending(harness.view.get_frozen_credentials())
        assert isinstance(frozen, ReadOnlyCredentials)
        assert frozen.access_key == harness.fetcher.issued[-1][0]
        assert harness.fetch_threads == ["botocreds-aio"], "only the eager mint, on the aio loop"
        assert harness.queue.jobs == []

    def test_the_account_id_builtin_and_getters_complete_without_suspending(
        self, harness: AioHarness
    ) -> None:
        view = harness.view
        key, secret, token = harness.fetcher.issued[-1]
        assert _complete_without_suspending(view.get_access_key()) == key
        assert _complete_without_suspending(view.get_secret_key()) == secret
        assert _complete_without_suspending(view.get_token()) == token
        assert _complete_without_suspending(view.get_account_id()) is None
        assert view.access_key == key, "the properties read the current set without waiting"

    def test_inside_the_floor_the_set_is_served_and_one_background_mint_queued(
        self, harness: AioHarness
    ) -> None:
        harness.clock.advance(LIFETIME - 30)  # inside the 60 s floor, still valid
        before = harness.fetcher.issued[-1][0]
        for _ in range(5):
            frozen = _complete_without_suspending(harness.view.get_frozen_credentials())
            assert frozen.access_key == before
        assert len(harness.queue.jobs) == 1
        harness.queue.run_all()
        assert harness.view.access_key != before
        assert harness.fetch_threads[-1] == "botocreds-aio"

    def test_the_properties_refuse_an_expired_set_instead_of_waiting(
        self, harness: AioHarness
    ) -> None:
        harness.expire()
        with pytest.raises(CredentialsUnavailable, match="await get_frozen_credentials"):
            _ = harness.view.secret_key

    def test_fields_are_read_only_and_the_repr_masks_the_key(self, harness: AioHarness) -> None:
        with pytest.raises(AttributeError, match="read-only"):
            harness.view.access_key = "AKIAOTHER"
        key, secret, token = harness.fetcher.issued[-1]
        text = repr(harness.view)
        assert key[-4:] in text and key not in text
        assert secret not in text and token not in text


class TestExpired:
    def test_200_coroutines_wait_for_one_mint_and_the_loop_keeps_running(
        self, harness: AioHarness
    ) -> None:
        harness.expire()

        async def scenario() -> set[str]:
            waiting = [
                asyncio.create_task(harness.view.get_frozen_credentials()) for _ in range(200)
            ]
            await asyncio.sleep(0)  # each task runs up to its wait
            assert len(harness.refresher._waiters) == 200
            assert len(harness.queue.jobs) == 1, "single-flight: one mint for 200 waiters"
            # The loop is free while the mint is pending: other work runs.
            ticks = 0
            for _ in range(20):
                await asyncio.sleep(0)
                ticks += 1
            assert ticks == 20 and not any(task.done() for task in waiting)
            await asyncio.to_thread(harness.queue.jobs.pop(0))  # the one mint
            return {str(frozen.access_key) for frozen in await asyncio.gather(*waiting)}

        keys = asyncio.run(scenario())
        assert keys == {harness.fetcher.issued[-1][0]}
        assert harness.fetcher.calls == 2, "the eager mint and one more"
        assert harness.fetch_threads == ["botocreds-aio", "botocreds-aio"]
        assert harness.request_path_mints() == [], "events wait for a mint thread, off the loop"
        harness.queue.run_all()  # the delivery job the waiters queued
        waits = harness.request_path_mints()
        assert len(waits) == 200 and all(event.succeeded for event in waits)
        assert harness.refresher._waiters == {}

    def test_coroutines_on_two_loops_in_two_threads_share_one_mint(
        self, harness: AioHarness
    ) -> None:
        harness.expire()
        results: dict[str, set[str]] = {}
        failures: list[BaseException] = []

        def loop_thread(label: str) -> None:
            async def wait_many() -> set[str]:
                frozen = await asyncio.gather(
                    *(harness.view.get_frozen_credentials() for _ in range(50))
                )
                return {str(item.access_key) for item in frozen}

            try:
                results[label] = asyncio.run(wait_many())
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=loop_thread, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        registered = threading.Event()
        for _ in range(1000):  # until both loops' coroutines are waiting (bounded)
            if len(harness.refresher._waiters) == 100:
                registered.set()
                break
            threading.Event().wait(0.01)
        assert registered.is_set(), f"{len(harness.refresher._waiters)} waiters registered"
        assert len(harness.queue.jobs) == 1
        harness.queue.run_all()
        for thread in threads:
            thread.join(timeout=10)
        assert failures == []
        assert results["a"] == results["b"] == {harness.fetcher.issued[-1][0]}
        assert harness.fetcher.calls == 2

    def test_the_wait_is_bounded_by_wait_timeout(self) -> None:
        harness = AioHarness(RefreshPolicy(wait_timeout=0.05))
        harness.expire()
        with pytest.raises(CredentialsUnavailable, match="wait_timeout"):
            asyncio.run(harness.view.get_frozen_credentials())
        assert len(harness.queue.jobs) == 2, "the mint, claimed but never run; event delivery"
        harness.queue.jobs.pop(0)()  # the mint: a late one
        harness.queue.run_all()
        (event,) = harness.request_path_mints()
        assert not event.succeeded
        harness.refresher.close()

    def test_a_failed_mint_wakes_every_waiter_with_the_error(self) -> None:
        harness = AioHarness(script=[RuntimeError("sts is down")])
        harness.expire()

        async def scenario() -> list[BaseException | ReadOnlyCredentials]:
            waiting = [
                asyncio.create_task(harness.view.get_frozen_credentials()) for _ in range(20)
            ]
            await asyncio.sleep(0)
            await asyncio.to_thread(harness.queue.jobs.pop(0))  # the failing mint
            return await asyncio.gather(*waiting, return_exceptions=True)

        outcomes = asyncio.run(scenario())
        assert all(isinstance(item, CredentialsUnavailable) for item in outcomes)
        assert "sts is down" in str(outcomes[0])
        assert harness.fetcher.calls == 2
        harness.refresher.close()

    def test_a_cancelled_waiter_leaves_nothing_behind(self, harness: AioHarness) -> None:
        harness.expire()

        async def scenario() -> None:
            task = asyncio.create_task(harness.view.get_frozen_credentials())
            await asyncio.sleep(0)
            assert len(harness.refresher._waiters) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())
        assert harness.refresher._waiters == {}
        harness.queue.run_all()  # the mint still lands, for the next request
        frozen = asyncio.run(harness.view.get_frozen_credentials())
        assert frozen.access_key == harness.fetcher.issued[-1][0]

    def test_a_cancellation_in_the_same_turn_as_the_wake_up_is_not_lost(
        self, harness: AioHarness
    ) -> None:
        harness.expire()

        async def scenario() -> None:
            task = asyncio.create_task(harness.view.get_frozen_credentials())
            await asyncio.sleep(0)
            # As a finishing mint does: a transition whose effects wake the waiters.
            harness.refresher._step(lambda state: (state, (_core.WakeWaiters(),)))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())
        assert harness.refresher._waiters == {}

    def test_a_waiter_cleaned_up_by_a_thread_holding_the_lock_does_not_deadlock(
        self, harness: AioHarness
    ) -> None:
        # A coroutine abandoned on a closed loop is finalized by the garbage
        # collector, on whatever thread runs it, possibly one inside the lock.
        harness.expire()
        steps = harness.refresher._mint_steps(
            lambda snapshot, now: now < snapshot.valid_until,
            "test",
            arm=lambda: lambda: None,
        )
        next(steps)
        assert len(harness.refresher._waiters) == 1

        def finalize_inside_the_lock() -> None:
            with harness.refresher._lock:
                steps.close()

        thread = threading.Thread(target=finalize_inside_the_lock, daemon=True)
        thread.start()
        thread.join(5.0)
        assert not thread.is_alive(), "closing a waiter under the lock deadlocked"
        assert harness.refresher._waiters == {}

    def test_reporters_never_run_on_the_event_loop(self, harness: AioHarness) -> None:
        delivered: list[tuple[str, str]] = []
        harness.refresher._reporter = lambda event: delivered.append(
            (threading.current_thread().name, type(event).__name__)
        )
        harness.expire()

        async def scenario() -> str:
            waiting = [
                asyncio.create_task(harness.view.get_frozen_credentials()) for _ in range(10)
            ]
            await asyncio.sleep(0)
            await asyncio.to_thread(harness.queue.jobs.pop(0))  # the mint
            await asyncio.gather(*waiting)
            return threading.current_thread().name

        loop_thread = asyncio.run(scenario())
        assert [kind for _, kind in delivered] == ["RefreshSucceeded"]
        # The queued job delivers what the waiters raised, on a mint thread.
        delivery = threading.Thread(target=harness.queue.run_all, name="botocreds-mint-test")
        delivery.start()
        delivery.join(10)
        waits = [thread for thread, kind in delivered if kind == "RequestPathMint"]
        assert waits == ["botocreds-mint-test"] * 10
        assert loop_thread not in {thread for thread, _ in delivered}


class TestSources:
    def test_static_aio_credentials_are_served_as_they_are(self) -> None:
        static = AioCredentials("AKIASTATICKEY0000001", "static-secret", method="explicit")
        with AioRefresher(static) as refresher:
            frozen = asyncio.run(refresher.credentials.get_frozen_credentials())
            assert frozen.access_key == "AKIASTATICKEY0000001"
            assert refresher.credentials.expiry_time is None

    def test_an_aio_session_is_resolved_on_the_botocreds_loop(self) -> None:
        session = AioSession()
        session.set_credentials("AKIASESSIONKEY000001", "session-secret")
        with AioRefresher(session) as refresher:
            assert refresher.credentials.access_key == "AKIASESSIONKEY000001"

    def test_a_source_that_cannot_mint_fails_at_construction(self) -> None:
        async def broken() -> Mapping[str, Any]:
            raise RuntimeError("no role for you")

        deferred = AioRefreshableCredentials.create_from_metadata(
            ScriptedFetcher(FakeClock(), LIFETIME).answer(), broken, "broken"
        )
        with pytest.raises(CredentialsUnavailable, match="no role for you"):
            AioRefresher(deferred)

    def test_a_fetchs_own_timeout_error_is_reported_as_itself(self) -> None:
        async def slow_imds() -> Mapping[str, Any]:
            raise asyncio.TimeoutError("connect timeout to 169.254.169.254")

        deferred = AioDeferredRefreshableCredentials(slow_imds, "imds")
        with pytest.raises(CredentialsUnavailable, match="connect timeout") as caught:
            AioRefresher(deferred)
        assert "did not finish" not in str(caught.value)

    def test_a_fetch_that_blocks_the_loop_gets_the_next_fetch_a_new_loop(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        from botocreds import _aioloop

        monkeypatch.setattr(_aioloop, "CANCEL_GRACE", 0.05)
        release = threading.Event()

        async def blocking() -> Mapping[str, Any]:
            release.wait(10.0)  # a blocking call inside a coroutine: the loop is stuck
            raise RuntimeError("too late")

        stuck = _aioloop._current_runner().loop()
        deferred = AioDeferredRefreshableCredentials(blocking, "blocking")
        try:
            with pytest.raises(CredentialsUnavailable, match=r"did not finish within 0\.05s"):
                AioRefresher(deferred, policy=RefreshPolicy(mint_timeout=0.05))
            assert "blocked its event loop" in caplog.text
            fresh = _aioloop._current_runner().loop()
            assert fresh is not stuck
            assert _aioloop.run_on_loop(lambda: "answered", 5.0) == "answered"
        finally:
            release.set()

    def test_a_hung_async_fetch_is_cancelled_after_mint_timeout(self) -> None:
        cancelled = threading.Event()

        async def hang() -> Mapping[str, Any]:
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.set()
            raise AssertionError("unreachable")

        hung = AioRefreshableCredentials.create_from_metadata(
            ScriptedFetcher(FakeClock(), LIFETIME).answer(), hang, "hung"
        )
        with pytest.raises(CredentialsUnavailable, match=r"did not finish within 0\.05s"):
            AioRefresher(hung, policy=RefreshPolicy(mint_timeout=0.05))
        assert cancelled.wait(5.0), "the coroutine was cancelled on the botocreds loop"


async def _aio_client(**kwargs: Any) -> Any:
    session = AioSession()
    return await session.create_client(
        "sts",
        region_name="us-east-1",
        aws_access_key_id="AKIAAIOCLIENT0000001",
        aws_secret_access_key="client-secret",
        **kwargs,
    ).__aenter__()


def _sync_client() -> Any:
    return boto3.client(
        "sts",
        region_name="us-east-1",
        aws_access_key_id="AKIASYNCCLIENT000001",
        aws_secret_access_key="client-secret",
    )


class TestBadInput:
    def test_a_sync_client_where_an_async_one_is_required(self, harness: AioHarness) -> None:
        client = _sync_client()
        before = client._request_signer._credentials
        with pytest.raises(TypeError, match=r"serves aiobotocore \(async\) clients"):
            harness.refresher.attach(client)
        assert client._request_signer._credentials is before, "nothing was changed"

    def test_an_async_client_where_a_sync_one_is_required(self) -> None:
        fetcher = ScriptedFetcher(FakeClock(), LIFETIME)

        async def scenario() -> None:
            client = await _aio_client()
            before = client._request_signer._credentials
            with (
                botocreds.Refresher(refreshable(fetcher)) as refresher,
                pytest.raises(TypeError, match=r"serves botocore \(sync\) clients"),
            ):
                refresher.attach(client)
            assert client._request_signer._credentials is before, "nothing was changed"
            await client.close()

        asyncio.run(scenario())

    @pytest.mark.parametrize("make", [AioSession, lambda: AioCredentials("AKIAX", "secret")])
    def test_refresher_refuses_aiobotocore_credentials_and_sessions(self, make: Any) -> None:
        with pytest.raises(TypeError, match=r"use botocreds\.AioRefresher"):
            botocreds.Refresher(make())

    @pytest.mark.parametrize(
        "make",
        [
            lambda: boto3.Session(aws_access_key_id="AKIAX", aws_secret_access_key="secret"),
            lambda: Credentials("AKIAX", "secret"),
        ],
    )
    def test_aio_refresher_refuses_botocore_credentials_and_sessions(self, make: Any) -> None:
        with pytest.raises(TypeError, match=r"use botocreds\.Refresher"):
            AioRefresher(make())

    @pytest.mark.parametrize("bad", [None, "credentials", 42])
    def test_aio_refresher_refuses_anything_else(self, bad: object) -> None:
        with pytest.raises(TypeError, match="AioRefresher\\(\\) needs aiobotocore credentials"):
            AioRefresher(bad)

    def test_an_unentered_create_client_gets_a_hint(self) -> None:
        session = AioSession()
        pending = session.create_client("sts", region_name="us-east-1")
        try:
            with pytest.raises(TypeError, match=r"async with session\.create_client"):
                botocreds.attach(pending)
        finally:
            pending._coro.close()  # never entered: close it without a warning

    def test_an_async_factory_or_fetcher_is_refused_by_the_sync_sources(self) -> None:
        async def factory() -> Credentials:
            raise AssertionError("never called")

        async def fetch() -> Mapping[str, Any]:
            raise AssertionError("never called")

        with pytest.raises(TypeError, match="coroutine function"):
            botocreds.Swapper(factory)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="coroutine function"):
            botocreds.from_fetcher(fetch)  # type: ignore[arg-type]

    def test_botocreds_own_credentials_are_refused_by_both_refreshers(
        self, harness: AioHarness
    ) -> None:
        with pytest.raises(ValueError, match="already kept fresh by botocreds"):
            AioRefresher(harness.view)
        with pytest.raises(ValueError, match="already kept fresh by botocreds"):
            botocreds.Refresher(harness.view)

    def test_aio_refresher_checks_every_argument_before_resolving_a_session(self) -> None:
        session = AioSession()

        async def resolve() -> None:
            raise AssertionError("the session must not be resolved")

        session.get_credentials = resolve
        for bad in ({"clock": 5}, {"random": "x"}, {"reporter": 3}, {"policy": 1}):
            with pytest.raises(TypeError):
                AioRefresher(session, **bad)

    def test_a_swapper_factory_returning_aiobotocore_credentials_is_refused_clearly(
        self,
    ) -> None:
        static = AioCredentials("AKIASTATICKEY0000001", "static-secret")
        with pytest.raises(CredentialsUnavailable, match=r"use botocreds\.AioRefresher"):
            botocreds.Swapper(lambda: static)

    def test_aio_refresher_checks_its_policy_before_any_io(self) -> None:
        async def fetch() -> Mapping[str, Any]:
            raise AssertionError("no fetch may run")

        deferred = AioRefreshableCredentials.create_from_metadata(
            ScriptedFetcher(FakeClock(), LIFETIME).answer(), fetch, "unused"
        )
        with pytest.raises(TypeError, match=r"policy must be a botocreds\.RefreshPolicy"):
            AioRefresher(deferred, policy="fast")  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_mints_on_an_event_loop_of_its_own() -> None:
    from botocreds import _aioloop
    from tests.test_resilience import FORK_POLICY, CountingFetch, in_child

    fetch = CountingFetch("AIOFORK", 2.0)

    async def fetch_async() -> Mapping[str, Any]:
        return fetch()

    deferred = AioDeferredRefreshableCredentials(fetch_async, "aio-fork")
    parent_loop = _aioloop._runner.loop()

    def child() -> dict[str, Any]:
        refresher_before = refresher.mint_count
        deadline = time.monotonic() + 10
        while refresher.mint_count <= refresher_before and time.monotonic() < deadline:
            time.sleep(0.02)
        served = asyncio.run(refresher.credentials.get_frozen_credentials())
        return {
            "before": refresher_before,
            "after": refresher.mint_count,
            "served": served.access_key,
            "new_loop": _aioloop._runner.loop() is not parent_loop,
            "threads": [t.name for t in threading.enumerate()],
        }

    with AioRefresher(deferred, policy=FORK_POLICY) as refresher:
        report = in_child(child)
        assert report["after"] > report["before"], report
        assert report["new_loop"] and "botocreds-aio" in report["threads"], report
        assert str(report["served"]).startswith("ASIAAIOFORK")
        assert _aioloop._runner.loop() is parent_loop, "the parent keeps its loop"


def test_aio_refreshers_share_a_set_through_a_file_cache(tmp_path: Any) -> None:
    clock = FakeClock(time.time())
    first_fetch, second_fetch = ScriptedFetcher(clock), ScriptedFetcher(clock)

    async def fetch_first() -> Mapping[str, Any]:
        return first_fetch()

    async def fetch_second() -> Mapping[str, Any]:
        return second_fetch()

    cache = botocreds.FileCache(tmp_path / "cache")
    first = AioRefresher(
        AioDeferredRefreshableCredentials(fetch_first, "first"), cache=cache, cache_key="role"
    )
    second = AioRefresher(
        AioDeferredRefreshableCredentials(fetch_second, "second"), cache=cache, cache_key="role"
    )
    with first, second:
        assert (first_fetch.calls, second_fetch.calls) == (1, 0), "the second adopted the set"
        frozen = asyncio.run(second.credentials.get_frozen_credentials())
        assert frozen.access_key == first.credentials.access_key


def test_hand_off_queues_for_the_scheduler_thread_instead_of_starting_a_thread() -> None:
    ran_on: list[str] = []
    ran = threading.Event()

    def record(job: Any) -> None:
        ran_on.append(threading.current_thread().name)
        job()

    scheduler = Scheduler(dispatch=record)
    target = Target()
    scheduler.register(target)
    errors: list[BaseException] = []
    scheduler.hand_off(ran.set, errors.append)  # no scheduler thread yet: dispatched right here
    assert ran_on == [threading.current_thread().name] and ran.is_set()
    ran.clear()
    scheduler.schedule(target, time.monotonic() + 3600)  # starts the scheduler thread
    scheduler.hand_off(ran.set, errors.append)
    assert ran.wait(10.0)
    assert errors == []
    assert ran_on[-1] == "botocreds-scheduler"
    scheduler.unregister(target)
