"""Real aiobotocore clients against a local moto server, kept fresh by botocreds.

The credentials come from an async fetch (as aiobotocore's own STS, IMDS and
container fetchers are coroutines) or from a ``credential_process`` profile
resolved by an ``AioSession``; the requests are STS ``GetCallerIdentity``
calls signed by aiobotocore.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession

import botocreds
from botocreds import (
    AioBackgroundCredentials,
    AioRefresher,
    RefreshEvent,
    RefreshPolicy,
    RequestPathMint,
)
from tests._fakes import FakeClock
from tests._process_creds import MakeProcessProfile
from tests._rejecting import RejectingEndpoint

pytestmark = pytest.mark.integration

FETCH_SECONDS = 0.5
LIFETIME = 3.0
#: Refresh 1 s before expiry at the latest; the slow fetch takes half of that.
POLICY = RefreshPolicy(floor=1.0, min_interval=0.2, jitter=0.1, wait_timeout=5.0)


@dataclass
class SlowAsyncFetch:
    """An async fetch that takes ``delay`` seconds and records where and when it ran."""

    clock: Any = time.time
    lifetime: float = LIFETIME
    delay: float = FETCH_SECONDS
    windows: list[tuple[float, float]] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def __call__(self) -> Mapping[str, Any]:
        started = time.perf_counter()
        self.threads.append(threading.current_thread().name)
        await asyncio.sleep(self.delay)
        self.windows.append((started, time.perf_counter()))
        number = next(self.serial)
        expiry = datetime.fromtimestamp(self.clock(), timezone.utc) + timedelta(
            seconds=self.lifetime
        )
        return {
            "access_key": f"ASIAASYNC{number:011d}",
            "secret_key": f"async-secret-{number}",
            "token": f"async-token-{number}",
            "expiry_time": expiry.isoformat(),
        }

    def credentials(self) -> AioRefreshableCredentials:
        """aiobotocore credentials that have not fetched yet (the first fetch is botocreds')."""
        from aiobotocore.credentials import AioDeferredRefreshableCredentials

        deferred: AioRefreshableCredentials = AioDeferredRefreshableCredentials(self, "slow-async")
        return deferred


def _sts(session: AioSession, endpoint: str, *, explicit_keys: bool = True) -> Any:
    """An STS client; with ``explicit_keys`` it does not use the session's credentials."""
    keys: dict[str, str] = {}
    if explicit_keys:
        keys = {"aws_access_key_id": "AKIAUNUSED0000000000", "aws_secret_access_key": "unused"}
    return session.create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url=endpoint,
        config=AioConfig(max_pool_connections=20),
        **keys,
    )


def record_signing_key(into: list[str]) -> Any:
    """A ``before-send`` handler that appends the access key each request is signed with."""

    def record(request: Any, **_: Any) -> None:
        header = request.headers["Authorization"]
        value = header.decode() if isinstance(header, bytes) else header
        into.append(value.split("Credential=")[1].split("/")[0])

    return record


def test_200_coroutines_never_wait_for_a_slow_fetch_and_the_loop_stays_responsive(
    moto_endpoint: str,
) -> None:
    fetch = SlowAsyncFetch()
    events: list[RefreshEvent] = []
    lags: list[tuple[float, float]] = []  # (when, how late the ticker woke)
    keys: list[str] = []
    requests = 0

    async def scenario() -> None:
        nonlocal requests
        refresher = await asyncio.to_thread(
            AioRefresher, fetch.credentials(), policy=POLICY, reporter=events.append
        )
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                lags.append((now, now - before - 0.005))

        async def worker(client: Any) -> None:
            nonlocal requests
            while not stop.is_set():
                answer = await client.get_caller_identity()
                assert answer["Account"] == "123456789012"
                requests += 1
                await asyncio.sleep(0.1)

        async with _sts(AioSession(), moto_endpoint) as client:
            refresher.attach(client)
            client.meta.events.register("before-send", record_signing_key(keys))
            ticking = asyncio.create_task(ticker())
            workers = [asyncio.create_task(worker(client)) for _ in range(200)]
            deadline = time.monotonic() + 4 * LIFETIME
            while len(fetch.windows) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(ticking, *workers)
        refresher.close()

    asyncio.run(scenario())
    assert len(fetch.windows) >= 4, "the eager mint and at least three background refreshes"
    assert set(fetch.threads) == {"botocreds-aio"}, "every fetch ran on botocreds' own loop"
    assert [e for e in events if isinstance(e, RequestPathMint)] == [], "no request waited"
    assert len(set(keys)) >= 3, "requests were signed with each new set"
    assert requests > 200
    # A fetch run on the application's loop would stall the ticker for the whole
    # fetch (0.5 s). The bound leaves room for a busy 2-core machine.
    during = [lag for when, lag in lags for start, end in fetch.windows[1:] if start <= when <= end]
    assert during, "the ticker ran while fetches were in flight"
    assert max(during) < FETCH_SECONDS / 2, f"loop lag during a mint: {max(during):.3f}s"


def test_expired_credentials_cost_one_fetch_however_many_coroutines_wait(
    moto_endpoint: str,
) -> None:
    clock = FakeClock()
    fetch = SlowAsyncFetch(clock=clock, lifetime=3600.0, delay=0.2)
    events: list[RefreshEvent] = []
    signed: list[str] = []

    async def scenario() -> None:
        refresher = await asyncio.to_thread(
            AioRefresher, fetch.credentials(), clock=clock, reporter=events.append
        )
        async with _sts(AioSession(), moto_endpoint) as client:
            refresher.attach(client)
            client.meta.events.register("before-send", record_signing_key(signed))
            await client.get_caller_identity()
            clock.advance(3600 + 1)  # a freeze: the set expired, nothing refreshed it
            await asyncio.gather(*(client.get_caller_identity() for _ in range(50)))
        refresher.close()

    asyncio.run(scenario())
    assert len(fetch.windows) == 2, "the eager mint and one single-flight mint"
    first, *after_expiry = signed
    assert len(after_expiry) == 50 and set(after_expiry) == {"ASIAASYNC00000000002"}
    assert first == "ASIAASYNC00000000001"
    waits = [e for e in events if isinstance(e, RequestPathMint)]
    assert waits and all(event.succeeded for event in waits)


def test_two_event_loops_in_two_threads_share_one_refresher(moto_endpoint: str) -> None:
    clock = FakeClock()
    fetch = SlowAsyncFetch(clock=clock, lifetime=3600.0, delay=0.2)
    refresher = AioRefresher(fetch.credentials(), clock=clock)
    session = AioSession()
    ready = threading.Barrier(3, timeout=30)
    expired = threading.Barrier(3, timeout=30)
    signed: dict[str, set[str]] = {}
    failures: list[BaseException] = []

    def run_loop(label: str) -> None:
        async def requests() -> None:
            keys: list[str] = []
            async with _sts(session, moto_endpoint) as client:
                refresher.attach(client)
                client.meta.events.register("before-send", record_signing_key(keys))
                await client.get_caller_identity()
                await asyncio.to_thread(ready.wait)
                await asyncio.to_thread(expired.wait)
                await asyncio.gather(*(client.get_caller_identity() for _ in range(25)))
            signed[label] = set(keys)

        try:
            asyncio.run(requests())
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run_loop, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    ready.wait()
    clock.advance(3600 + 1)
    expired.wait()
    for thread in threads:
        thread.join(timeout=30)
    refresher.close()
    assert failures == []
    assert signed["a"] == signed["b"] == {"ASIAASYNC00000000001", "ASIAASYNC00000000002"}
    assert len(fetch.windows) == 2, "both loops waited for the same one mint"


def test_a_wrapped_aio_session_covers_its_clients_with_a_credential_process(
    moto_endpoint: str, make_process_profile: MakeProcessProfile
) -> None:
    profile = make_process_profile(lifetime=4.0, delay=0.3)
    session = botocreds.wrap(AioSession(profile=profile.name), policy=POLICY)
    assert botocreds.wrap(session) is session, "wrapping twice is harmless"

    async def scenario() -> tuple[Any, int]:
        credentials = await session.get_credentials()
        served = 0
        async with _sts(session, moto_endpoint, explicit_keys=False) as client:
            assert client._request_signer._credentials is credentials
            deadline = time.monotonic() + 3 * profile.lifetime
            while profile.calls() < 3 and time.monotonic() < deadline:
                await asyncio.gather(*(client.get_caller_identity() for _ in range(10)))
                served += 10
                await asyncio.sleep(0.05)
        return credentials, served

    credentials, served = asyncio.run(scenario())
    assert isinstance(credentials, AioBackgroundCredentials)
    assert profile.calls() >= 3, "the eager mint, then background refreshes"
    assert served > 0
    (status,) = [s for s in botocreds.health() if s.source == "custom-process"]
    assert status.valid and status.failures == 0


def test_attach_covers_a_client_of_an_aio_session(moto_endpoint: str) -> None:
    fetch = SlowAsyncFetch(lifetime=3600.0, delay=0.05)

    async def scenario() -> None:
        session = AioSession()
        session._credentials = fetch.credentials()
        async with _sts(session, moto_endpoint, explicit_keys=False) as client:
            assert client._request_signer._credentials is session._credentials
            attachment = await asyncio.to_thread(lambda: botocreds.attach(client))
            assert isinstance(attachment.credentials, AioBackgroundCredentials)
            assert client._request_signer._credentials is attachment.credentials
            assert (await client.get_caller_identity())["Account"] == "123456789012"
            again = botocreds.attach(client)
            assert again.refresher is attachment.refresher, "one refresher per credentials"
            attachment.close()
            again.close()

    asyncio.run(scenario())
    assert fetch.threads == ["botocreds-aio"], "one eager mint, on botocreds' loop"


@pytest.mark.parametrize("rejecting_endpoint", [1], indirect=True)
def test_an_expired_token_reply_is_retried_once_without_blocking_the_loop(
    rejecting_endpoint: RejectingEndpoint,
) -> None:
    fetch = SlowAsyncFetch(lifetime=3600.0, delay=0.2)
    ticks = 0

    async def scenario() -> None:
        nonlocal ticks
        refresher = await asyncio.to_thread(
            AioRefresher, fetch.credentials(), policy=RefreshPolicy(min_interval=0.0)
        )
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.01)
                ticks += 1

        session = AioSession()
        async with session.create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=rejecting_endpoint.url,
            aws_access_key_id="AKIAUNUSED0000000000",
            aws_secret_access_key="unused",
            config=AioConfig(retries={"mode": "standard", "max_attempts": 3}),
        ) as s3:
            refresher.attach(s3)
            ticking = asyncio.create_task(ticker())
            assert (await s3.list_buckets())["Buckets"] == []
            stop.set()
            await ticking
        refresher.close()

    asyncio.run(scenario())
    first, retried = rejecting_endpoint.signed_with
    assert first != retried, "the retry is signed with a freshly minted set"
    assert len(fetch.windows) == 2 and set(fetch.threads) == {"botocreds-aio"}
    assert ticks >= 5, "the loop kept running while the new set was minted (0.2 s)"
