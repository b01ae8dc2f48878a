"""An AioRefresher's use of botocreds' event loop, and mints that cannot start."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from aiobotocore.credentials import AioRefreshableCredentials

from botocreds import AioRefresher, CredentialsUnavailable, RefreshPolicy
from botocreds._scheduler import Job, Scheduler
from tests._fakes import FakeClock, ScriptedFetcher

LOOP_THREAD = "botocreds-aio"
WAIT = 10.0


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == LOOP_THREAD and t.is_alive()]


def _async_credentials(clock: FakeClock) -> tuple[ScriptedFetcher, AioRefreshableCredentials]:
    fetcher = ScriptedFetcher(clock, 3600.0)

    async def fetch() -> Mapping[str, Any]:
        return fetcher()

    return fetcher, AioRefreshableCredentials.create_from_metadata(
        fetcher.answer(), fetch, "test-async"
    )


def test_the_event_loop_thread_exits_when_the_last_async_refresher_closes() -> None:
    clock = FakeClock()
    refreshers = []
    for _ in range(2):
        _, credentials = _async_credentials(clock)
        scheduler = Scheduler(clock, lambda job: job(), autostart=False)
        refreshers.append(AioRefresher(credentials, clock=clock, _scheduler=scheduler))
    assert _loop_threads(), "the eager mints ran on the loop, which open refreshers keep"
    refreshers[0].close()
    assert _loop_threads(), "one async refresher is still open"
    refreshers[1].close()
    for thread in _loop_threads():
        thread.join(WAIT)
    assert _loop_threads() == [], "the loop thread outlived the last async refresher"
    refreshers[1]._reopen()  # reopening holds the loop again; the next fetch starts it
    refreshers[1].close()


def test_a_mint_handed_off_from_a_loop_whose_thread_cannot_start_fails_at_once() -> None:
    clock = FakeClock()
    _, credentials = _async_credentials(clock)
    failing = True

    def dispatch(job: Job) -> None:
        if failing:
            raise RuntimeError("can't start new thread")
        job()

    scheduler = Scheduler(clock, dispatch, autostart=False)
    policy = RefreshPolicy(wait_timeout=WAIT)
    refresher = AioRefresher(credentials, policy=policy, clock=clock, _scheduler=scheduler)
    try:
        clock.advance(3601.0)
        with pytest.raises(CredentialsUnavailable) as caught:
            asyncio.run(refresher.credentials.get_frozen_credentials())
        assert "no mint thread could be started" in str(caught.value)
        assert refresher._state.claimed is None, "the failed start released the claim"
        failing = False
        clock.advance(1.0)  # past min_interval: the next request may mint
        frozen = asyncio.run(refresher.credentials.get_frozen_credentials())
        assert str(frozen.access_key).startswith("ASIAFAKE")
    finally:
        refresher.close()
