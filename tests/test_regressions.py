"""Regression tests, each named for the behaviour it protects.

Most run on two independent fake clocks, the wall clock (expiry) and the
monotonic clock (pacing, the scheduler), with a scheduler driven by hand, so
they are deterministic. Real threads appear only where the defect lives in
them: the mint pool under a role chain, and a real client's signing and retry
against local endpoints. Every wait there is bounded, and the assertions are
structural.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.auth import HmacV1Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import (
    Credentials,
    DeferredRefreshableCredentials,
    RefreshableCredentials,
)

import botocreds
from botocreds import (
    CredentialsUnavailable,
    Refresher,
    RefreshEvent,
    RefreshFailed,
    RefreshPolicy,
    RefreshSucceeded,
    _core,
)
from botocreds._reactive import signing_key
from botocreds._requests import still_valid
from botocreds._scheduler import MAX_MINT_WORKERS, Job, Scheduler

from ._fakes import FakeClock, JobQueue, ScriptedFetcher, iso, refreshable
from ._rejecting import RejectingEndpoint

#: The longest any test here waits for another thread.
WAIT = 10.0
#: Where the fake monotonic clock starts: far from the wall clock, so a mix-up shows.
MONO_START = 1_000.0
LIFETIME = 3600.0


# -- a refresher on two fake clocks --------------------------------------------------
@dataclass
class Rig:
    """A Refresher whose wall clock and monotonic clock are separate fakes."""

    wall: FakeClock
    mono: FakeClock
    fetcher: ScriptedFetcher
    scheduler: Scheduler
    refresher: Refresher
    queue: JobQueue
    events: list[RefreshEvent] = field(default_factory=list)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on both clocks (time passing, no step)."""
        self.wall.advance(seconds)
        self.mono.advance(seconds)

    def key(self) -> str:
        return self.refresher.credentials.access_key

    def failures(self) -> list[RefreshFailed]:
        return [event for event in self.events if isinstance(event, RefreshFailed)]


def rig(
    policy: RefreshPolicy | None = None,
    *,
    inline: bool = False,
    fetch: Callable[[ScriptedFetcher], Callable[[], Mapping[str, Any]]] | None = None,
    reporter: Callable[[RefreshEvent], None] | None = None,
    random: Callable[[], float] = lambda: 0.0,
    lifetime: float = LIFETIME,
    mono: FakeClock | None = None,
) -> Rig:
    """Build a :class:`Rig`; ``inline`` runs mints at once, else they queue until run.

    ``fetch`` wraps the scripted fetcher, if given.
    """
    wall = FakeClock()
    mono = mono if mono is not None else FakeClock(MONO_START)
    fetcher = ScriptedFetcher(wall, lifetime)
    queue = JobQueue()
    dispatch: Callable[[Job], None] = (lambda job: job()) if inline else queue
    scheduler = Scheduler(mono, dispatch, autostart=False)
    events: list[RefreshEvent] = []

    def report(event: RefreshEvent) -> None:
        events.append(event)
        if reporter is not None:
            reporter(event)

    source = fetcher if fetch is None else fetch(fetcher)
    refresher = Refresher(
        refreshable(source),
        policy=policy or RefreshPolicy(),
        name="test-source",
        clock=wall,
        random=random,
        reporter=report,
        _scheduler=scheduler,
    )
    fetcher.calls = 0  # count the mints from here on, not botocore's and the eager one
    return Rig(wall, mono, fetcher, scheduler, refresher, queue, events)


def run_like_the_pool(queue: JobQueue) -> list[BaseException]:
    """Run the queued mints as a pool worker does: an escaping error is caught, and returned."""
    escaped: list[BaseException] = []
    while queue.jobs:
        try:
            queue.jobs.pop(0)()
        except BaseException as error:
            escaped.append(error)
    return escaped


class Waiter:
    """A request waiting for a mint, driven by hand through ``_mint_steps``.

    ``_mint_steps`` is the waiting logic shared by threads and coroutines: it
    registers a wake-up through ``arm`` and yields how long to sleep. Driving
    it here shows whether the waiter was woken, without sleeping at all.
    """

    def __init__(self, refresher: Refresher) -> None:
        self.woken = 0
        self._steps = refresher._mint_steps(still_valid, "the credentials expired", arm=self._arm)

    def _arm(self) -> Callable[[], None]:
        def wake() -> None:
            self.woken += 1

        return wake

    def start(self) -> float:
        """Begin waiting; returns the longest sleep it asks for."""
        return next(self._steps)

    def resume(self) -> str:
        """Wake up and look again: the served access key, or CredentialsUnavailable."""
        try:
            self._steps.send(None)
        except StopIteration as done:
            return str(done.value.frozen.access_key)
        raise AssertionError("the waiter asked to wait again")

    def close(self) -> None:
        self._steps.close()


# -- 1. role chains ------------------------------------------------------------------
CHILDREN = 12


class Gate:
    """Once closed, holds every arrival until ``parties`` have arrived (at most ``WAIT``)."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self._lock = threading.Lock()
        self._arrived = 0
        self._open = threading.Event()
        self._open.set()

    def close(self) -> None:
        with self._lock:
            self._arrived = 0
            self._open.clear()

    def arrive(self) -> None:
        with self._lock:
            self._arrived += 1
            if self._arrived >= self.parties:
                self._open.set()
        if not self._open.wait(WAIT):
            raise TimeoutError(f"fewer than {self.parties} arrived within {WAIT:g}s")


def test_a_role_chain_never_starves_its_parent_when_every_set_expires_at_once() -> None:
    # A freeze (a suspended VM, a stopped container) ends with every set past
    # expiry at once: each child's mint waits, on a pool thread, for the
    # parent's. More children than pool slots must still leave a slot for the
    # parent's own mint, and the parent must be minted once, not per child.
    assert CHILDREN > MAX_MINT_WORKERS, "the point is more chained mints than pool slots"
    lifetime = 60.0
    policy = RefreshPolicy(floor=10.0, min_interval=0.0, wait_timeout=WAIT)
    wall = FakeClock()  # expiry only; the scheduler keeps the real monotonic clock
    scheduler = Scheduler()
    parent_fetcher = ScriptedFetcher(wall, lifetime)
    parent = Refresher(
        refreshable(parent_fetcher), policy=policy, name="parent", clock=wall, _scheduler=scheduler
    )
    parent_used: list[list[str]] = [[] for _ in range(CHILDREN)]
    # The worst case for the pool: every slot holds a child's mint before the
    # first of them asks for the parent. Until the freeze ends, nothing waits.
    pool_full = Gate(MAX_MINT_WORKERS)

    def child_fetch(index: int) -> Callable[[], dict[str, Any]]:
        serial = itertools.count(1)

        def fetch() -> dict[str, Any]:
            pool_full.arrive()
            # What assume-role does: sign the STS call with the parent's set.
            parent_used[index].append(str(parent.credentials.get_frozen_credentials().access_key))
            number = next(serial)
            return {
                "access_key": f"ASIACHILD{index:02d}{number:06d}",
                "secret_key": f"child-secret-{index}-{number}",
                "token": f"child-token-{index}-{number}",
                "expiry_time": iso(wall() + lifetime),
            }

        return fetch

    children = [
        Refresher(
            refreshable(child_fetch(index)),
            policy=policy,
            name=f"child-{index}",
            clock=wall,
            _scheduler=scheduler,
        )
        for index in range(CHILDREN)
    ]
    try:
        before = [child.credentials.access_key for child in children]
        parent_before = parent.credentials.access_key
        for used in parent_used:
            used.clear()
        parent_calls = parent_fetcher.calls
        pool_full.close()
        wall.advance(10 * lifetime)  # the freeze ends: everything has expired

        barrier = threading.Barrier(CHILDREN, timeout=WAIT)
        served: dict[int, str | None] = {}
        errors: dict[int, BaseException] = {}

        def read(index: int) -> None:
            try:
                barrier.wait()
                served[index] = children[index].credentials.get_frozen_credentials().access_key
            except BaseException as error:
                errors[index] = error

        threads = [
            threading.Thread(target=read, args=(index,), name=f"request-{index}", daemon=True)
            for index in range(CHILDREN)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 3 * WAIT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not [t.name for t in threads if t.is_alive()], "a request never returned"

        assert errors == {}, f"requests were refused: {errors}"
        assert sorted(served) == list(range(CHILDREN))
        assert all(served[index] != before[index] for index in range(CHILDREN))
        assert parent_fetcher.calls == parent_calls + 1, "the parent is minted exactly once"
        parent_after = parent.credentials.access_key
        assert parent_after != parent_before
        assert parent_used == [[parent_after]] * CHILDREN, (
            "each child minted once, signing with the parent's new set"
        )
    finally:
        for child in children:
            child.close()
        parent.close()


# -- 2. wall-clock steps ---------------------------------------------------------------
def test_a_rejected_set_is_replaced_at_once_after_the_wall_clock_steps_back() -> None:
    # Pacing is monotonic: a wall clock stepped back 10 minutes (NTP, a VM
    # restored from a snapshot) must not make the last mint look 10 minutes in
    # the future, and so hold a rejected set in service for 10 minutes.
    # wait_timeout=0: a replacement must come without any wait at all.
    policy = RefreshPolicy(min_interval=1.0, wait_timeout=0.0)
    r = rig(policy, inline=True)
    rejected = r.key()
    r.mono.advance(policy.min_interval)  # as long as min_interval asks, monotonically
    r.wall.advance(-600.0)
    calls = r.fetcher.calls

    assert r.refresher._invalidate("ExpiredToken", rejected) is True
    assert r.fetcher.calls == calls + 1
    assert r.key() not in (rejected, None)


def test_a_forward_wall_step_longer_than_mint_timeout_does_not_abandon_a_healthy_mint() -> None:
    # mint_timeout is monotonic: a wall clock stepped forward (or a suspend the
    # monotonic clock does not count) says nothing about how long a mint ran.
    policy = RefreshPolicy()
    r = rig(policy)
    first = r.key()
    r.advance(policy.refresh_offset(LIFETIME, 0.0))
    r.scheduler.run_pending()
    mint = r.refresher._state.claimed
    assert mint is not None and len(r.queue.jobs) == 1, "the refresh is in flight"

    r.wall.advance(2 * policy.mint_timeout)
    r.scheduler.run_pending()
    r.scheduler.look_again()  # what the scheduler thread does when it sees a wall step
    assert r.key() == first  # a request meanwhile is served the current set
    state = r.refresher._state
    assert state.claimed == mint, "the mint is still claimed"
    assert state.abandoned is None
    assert state.breaker.failures == 0
    assert r.failures() == []

    assert run_like_the_pool(r.queue) == []
    assert r.refresher._state.claimed is None
    assert r.key() != first, "the mint's answer was published"
    assert isinstance(r.events[-1], RefreshSucceeded)


# -- 3. no hot loop --------------------------------------------------------------------
class Outage:
    """A fetch that works until ``down``, then fails every time, noting when (monotonic)."""

    def __init__(self, mono: FakeClock) -> None:
        self.mono = mono
        self.down = False
        self.attempts: list[float] = []
        self.fetcher: Callable[[], Mapping[str, Any]] | None = None

    def around(self, fetcher: ScriptedFetcher) -> Outage:
        """Fetch from ``fetcher`` until the outage starts."""
        self.fetcher = fetcher
        return self

    def __call__(self) -> Mapping[str, Any]:
        assert self.fetcher is not None
        if self.down:
            self.attempts.append(self.mono())
            raise ConnectionError("sts is down")
        return self.fetcher()


#: Where the wall clock stands when the outage starts, in the served set's life.
OUTAGE_STARTS = {
    "the refresh is due": 0.9 * LIFETIME,  # the scheduler retries; requests are served
    "the set is inside the floor": LIFETIME - 30.0,  # requests start background mints
    "the set has expired": LIFETIME + 10.0,  # requests wait for, and start, mints
}


@pytest.mark.parametrize("when", list(OUTAGE_STARTS))
def test_a_policy_of_zeros_cannot_make_a_hot_loop_against_a_failing_source(when: str) -> None:
    assert _core.RETRY_SPACING > 0, "without a floor under the spacing, zeros make a hot loop"
    policy = RefreshPolicy(min_interval=0.0, backoff_base=0.0, cooldown=0.0, wait_timeout=0.0)
    mono = FakeClock(MONO_START)
    source = Outage(mono)
    r = rig(policy, inline=True, fetch=source.around, mono=mono)

    r.advance(OUTAGE_STARTS[when])
    source.down = True
    step, duration = 0.001, 2.0
    started = mono()
    for _ in range(round(duration / step)):
        r.advance(step)
        r.scheduler.run_pending()
        with contextlib.suppress(CredentialsUnavailable):  # refused: the source is down
            r.refresher.credentials.get_frozen_credentials()
    attempts = [at - started for at in source.attempts]

    assert len(attempts) >= 2, "the failing source is still retried"
    most = math.floor(duration / _core.RETRY_SPACING) + 1
    assert len(attempts) <= most, (
        f"{len(attempts)} attempts in {duration:g}s, at most {most} allowed; "
        f"the first at {attempts[:5]}"
    )
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert min(gaps) >= _core.RETRY_SPACING - 1e-6, f"attempts too close: {gaps[:5]}"
    assert r.refresher._state.claimed is None


# -- 4. an expiry at the end of time ------------------------------------------------------
FAR_FUTURE: dict[str, object] = {
    "datetime.max": datetime.max,
    "aware datetime.max": datetime.max.replace(tzinfo=timezone.utc),
    "9999-12-31T23:59:59Z": "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999Z": "9999-12-31T23:59:59.999999Z",
}


def _far_future_fetch(expiry: object) -> Callable[[], dict[str, Any]]:
    serial = itertools.count(1)

    def fetch() -> dict[str, Any]:
        number = next(serial)
        return {
            "access_key": f"ASIAFOREVER{number:05d}",
            "secret_key": f"forever-secret-{number}",
            "token": f"forever-token-{number}",
            "expiry_time": expiry,
        }

    return fetch


def _everything_a_user_can_read(
    refresher: Any, **more: Callable[[], object]
) -> dict[str, BaseException]:
    """Read everything public about ``refresher`` (and ``more``); the errors, by what raised."""
    credentials = refresher.credentials
    reads: dict[str, Callable[[], object]] = {
        "get_frozen_credentials()": credentials.get_frozen_credentials,
        "credentials.expiry_time": lambda: credentials.expiry_time,
        "repr(credentials)": lambda: repr(credentials),
        "repr(refresher)": lambda: repr(refresher),
        "repr(state)": lambda: repr(refresher._state),
        "status()": refresher.status,
        "repr(status())": lambda: repr(refresher.status()),
        "health()": botocreds.health,
        **more,
    }
    errors: dict[str, BaseException] = {}
    for label, read in reads.items():
        try:
            read()
        except CredentialsUnavailable:
            pass  # allowed: refusing such a set is a choice, not a crash
        except Exception as error:
            errors[label] = error
    return errors


def _check_far_future_events(events: list[RefreshEvent]) -> None:
    succeeded = [event for event in events if isinstance(event, RefreshSucceeded)]
    assert succeeded, f"no success event: {events}"
    for event in succeeded:
        assert event.expires_at is None or isinstance(event.expires_at, datetime)


@pytest.mark.parametrize("expiry", list(FAR_FUTURE.values()), ids=list(FAR_FUTURE))
def test_an_expiry_at_the_end_of_time_from_from_fetcher_never_raises_value_error(
    expiry: object,
) -> None:
    events: list[RefreshEvent] = []
    try:
        session = botocreds.from_fetcher(_far_future_fetch(expiry), reporter=events.append)
    except CredentialsUnavailable:
        return  # refused at the eager mint: allowed, and nothing else to read
    credentials = session.get_credentials()
    assert isinstance(credentials, botocreds.BackgroundCredentials)
    refresher: Any = credentials._owner

    def sign() -> None:
        s3 = session.client("s3", region_name="us-east-1")
        assert "ASIAFOREVER" in s3.generate_presigned_url("list_buckets")

    assert _everything_a_user_can_read(refresher, sign=sign) == {}
    assert refresher._scheduler.delivery.flush(5.0)
    _check_far_future_events(events)


@pytest.mark.parametrize("expiry", list(FAR_FUTURE.values()), ids=list(FAR_FUTURE))
def test_an_expiry_at_the_end_of_time_from_refreshable_credentials_never_raises_value_error(
    expiry: object,
) -> None:
    # botocore's own parser takes strings only; the fetch function is what
    # botocreds calls, and it may return a datetime.
    fetch = _far_future_fetch(expiry)
    metadata = {**fetch(), "expiry_time": "9999-12-31T23:59:59Z"}
    credentials = RefreshableCredentials.create_from_metadata(metadata, fetch, "far-future")
    events: list[RefreshEvent] = []
    try:
        refresher = Refresher(credentials, reporter=events.append)
    except CredentialsUnavailable:
        return
    with refresher:
        assert _everything_a_user_can_read(refresher) == {}
        assert refresher.status().valid
        assert refresher._scheduler.delivery.flush(5.0)
        _check_far_future_events(events)


# -- 5. the reactive retry and the key that signed -------------------------------------------
def test_the_reactive_retry_replaces_the_key_that_signed_even_if_signing_minted_it(
    moto_endpoint: str, rejecting_endpoint: RejectingEndpoint
) -> None:
    # The set is expired when the request is signed, so signing itself mints a
    # new one (B). AWS rejects B. Compared with the set seen before signing
    # (A), B would look like a replacement already served, and the retry would
    # go out with B again, the key just rejected.
    wall = FakeClock(time.time())
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="base-secret",
        config=Config(parameter_validation=False),
    )
    fetches: list[str] = []

    def assume_role() -> dict[str, Any]:
        fetches.append(threading.current_thread().name)
        answer = sts.assume_role(
            RoleArn="arn:aws:iam::123456789012:role/signed-with",
            RoleSessionName="signed-with",
            DurationSeconds=3600,
        )["Credentials"]
        return {
            "access_key": answer["AccessKeyId"],
            "secret_key": answer["SecretAccessKey"],
            "token": answer["SessionToken"],
            # On the refresher's clock, which the test moves.
            "expiry_time": iso(wall() + 3600),
        }

    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=rejecting_endpoint.url,
        aws_access_key_id="AKIAUNUSED0000000000",
        aws_secret_access_key="unused",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )
    policy = RefreshPolicy(min_interval=0.0, wait_timeout=WAIT)
    credentials = DeferredRefreshableCredentials(assume_role, "assume-role")
    with Refresher(credentials, policy=policy, clock=wall) as refresher:
        refresher.attach(s3)
        before_signing = refresher.credentials.access_key
        wall.advance(2 * 3600)  # expired: signing the request must mint first
        assert s3.list_buckets()["Buckets"] == []
        served = refresher.credentials.access_key

    rejected, retried = rejecting_endpoint.signed_with
    assert rejected != before_signing, "signing minted the set that was rejected"
    assert retried != rejected, "the retry is not sent with the rejected key"
    assert retried not in (before_signing, rejected) and retried == served
    assert len(fetches) == 3, "the eager mint, one at signing, one for the rejection"
    assert all(name.startswith("botocreds-mint") for name in fetches[1:])


def _request(url: str = "https://s3.us-east-1.amazonaws.com/bucket/key") -> AWSRequest:
    return AWSRequest(method="GET", url=url, headers={})


SIGNING = Credentials("AKIAIOSFODNN7EXAMPLE", "signing-secret", "signing-token")


def test_signing_key_reads_a_sigv4_authorization_header() -> None:
    request = _request()
    SigV4Auth(SIGNING, "s3", "us-east-1").add_auth(request)
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert signing_key(request) == SIGNING.access_key


def test_signing_key_reads_a_sigv4_authorization_header_given_as_bytes() -> None:
    request = _request()
    SigV4Auth(SIGNING, "s3", "us-east-1").add_auth(request)
    headers: Any = request.headers  # botocore's own signers write str; a transport may not
    authorization = headers["Authorization"]
    del headers["Authorization"]
    headers["Authorization"] = authorization.encode("ascii")
    assert signing_key(request) == SIGNING.access_key


def test_signing_key_reads_a_sigv2_authorization_header() -> None:
    request = _request()
    HmacV1Auth(SIGNING).add_auth(request)
    assert request.headers["Authorization"].startswith(f"AWS {SIGNING.access_key}:")
    assert signing_key(request) == SIGNING.access_key


def test_signing_key_reads_the_credential_of_a_presigned_url() -> None:
    request = _request()
    SigV4QueryAuth(SIGNING, "s3", "us-east-1").add_auth(request)
    assert request.url is not None and "X-Amz-Credential=" in request.url
    assert "Authorization" not in request.headers
    assert signing_key(request) == SIGNING.access_key


def test_signing_key_is_none_for_an_unsigned_request() -> None:
    assert signing_key(_request()) is None
    assert signing_key(object()) is None


# -- 6. an error that cannot be printed ----------------------------------------------------
class Unprintable(Exception):
    """An exception whose message cannot be read."""

    def __str__(self) -> str:
        raise RuntimeError("this error cannot be printed")


def _expired_rig(*, script: list[object], inline: bool = False) -> Rig:
    r = rig(RefreshPolicy(wait_timeout=WAIT), inline=inline)
    r.fetcher.script = list(script)
    r.advance(LIFETIME + 10.0)  # the served set has expired; the scheduler is not run
    return r


def test_a_fetcher_error_whose_str_raises_counts_as_one_failed_mint() -> None:
    r = _expired_rig(script=[Unprintable()])
    waiter = Waiter(r.refresher)
    try:
        assert waiter.start() > 0, "the request waits for the mint it claimed"
        assert r.refresher._state.claimed is not None and len(r.queue.jobs) == 1
        run_like_the_pool(r.queue)

        state = r.refresher._state
        assert state.claimed is None, "the single-flight flag is cleared"
        assert state.breaker.failures == 1
        assert len(r.failures()) == 1
        assert waiter.woken == 1, "the waiting request is woken"
        with pytest.raises(CredentialsUnavailable, match="minting new ones failed"):
            waiter.resume()
    finally:
        waiter.close()
    assert r.scheduler.due_at(r.refresher) is not None


def test_a_fetcher_error_whose_str_raises_is_recorded_as_that_error() -> None:
    # The mint did run and did fail: the record must say so, by the error's
    # type, and the mint job must not raise out of its own failure handling.
    r = rig(RefreshPolicy(wait_timeout=WAIT))
    r.fetcher.script = [Unprintable()]
    r.advance(policy_due(r))
    r.scheduler.run_pending()
    assert len(r.queue.jobs) == 1
    assert run_like_the_pool(r.queue) == [], "the mint job raised"
    error = r.refresher._state.last_error
    assert error is not None and "Unprintable" in error, error
    assert "Unprintable" in r.failures()[-1].error


def policy_due(r: Rig) -> float:
    """Seconds after issue at which the rig's refresher refreshes (sample 0)."""
    return r.refresher.policy.refresh_offset(LIFETIME, 0.0)


def test_an_eager_mint_whose_error_str_raises_is_credentials_unavailable() -> None:
    fetcher = ScriptedFetcher(FakeClock())
    credentials = refreshable(fetcher)
    fetcher.script = [Unprintable()]
    mono = FakeClock(MONO_START)
    scheduler = Scheduler(mono, lambda job: job(), autostart=False)
    with pytest.raises(CredentialsUnavailable, match="Unprintable"):
        Refresher(credentials, clock=fetcher.clock, _scheduler=scheduler)


# -- 7. a reporter or a random source that misbehaves ---------------------------------------
def _raising_reporter(event: RefreshEvent) -> None:
    raise RuntimeError(f"the reporter broke on {type(event).__name__}")


def _raising_random() -> float:
    raise RuntimeError("the random source broke")


MISBEHAVING: dict[str, dict[str, Any]] = {
    "a reporter that raises": {"reporter": _raising_reporter},
    "a random source that raises": {"random": _raising_random},
    "a random source returning 1.5": {"random": lambda: 1.5},
    "a random source returning nan": {"random": lambda: math.nan},
}


@pytest.mark.parametrize("misbehaving", list(MISBEHAVING.values()), ids=list(MISBEHAVING))
def test_a_misbehaving_reporter_or_random_never_leaves_the_claim_set(
    misbehaving: dict[str, Any],
) -> None:
    r = rig(RefreshPolicy(floor=10.0, wait_timeout=WAIT), **misbehaving)
    refresher = r.refresher

    def settled() -> None:
        assert refresher._state.claimed is None, "the single-flight flag is stuck"
        assert r.scheduler.due_at(refresher) is not None, "no next look is scheduled"

    settled()
    first = r.key()
    r.advance(policy_due(r))
    r.scheduler.run_pending()
    assert run_like_the_pool(r.queue) == []
    settled()
    second = r.key()
    assert second != first, "a background refresh succeeded"

    r.fetcher.script = [ConnectionError("sts is down")]
    r.advance(policy_due(r))
    r.scheduler.run_pending()
    assert run_like_the_pool(r.queue) == []
    settled()
    assert refresher.breaker.failures == 1

    r.advance(LIFETIME)  # expired: a request mints, on the request path
    waiter = Waiter(refresher)
    try:
        waiter.start()
        assert run_like_the_pool(r.queue) == []
        assert waiter.resume() not in (first, second)
    finally:
        waiter.close()
    settled()


# -- 8. a mint thread that cannot start ----------------------------------------------------
def _no_thread() -> None:
    raise RuntimeError("can't start new thread")  # what threading says at a pids limit


def _cannot_start(job: Job) -> None:
    _no_thread()


def test_a_mint_thread_that_cannot_start_fails_that_mint_at_once() -> None:
    r = _expired_rig(script=[], inline=True)
    refresher = r.refresher
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(r.scheduler, "dispatch", _cannot_start)
        waiter = Waiter(refresher)
        try:
            waiter.start()
            assert refresher._state.claimed is None, "the mint that could not start is failed"
            assert waiter.woken == 1, "its waiter is woken at once, not at wait_timeout"
            with pytest.raises(CredentialsUnavailable) as refused:
                waiter.resume()
        finally:
            waiter.close()
        reason = refused.value.reason
        assert "thread" in reason and "wait_timeout" not in reason, reason
        assert refresher.breaker.failures == 1
        assert r.fetcher.calls == 0

        r.advance(1.0)  # past the retry spacing: a blocking request is refused the same way
        with pytest.raises(CredentialsUnavailable) as blocking:
            r.key()
        assert "thread" in blocking.value.reason and "wait_timeout" not in blocking.value.reason
        assert refresher._state.claimed is None

    r.advance(1.0)
    errors = [event.error for event in r.failures()]
    assert len(errors) == 2 and all("thread" in error for error in errors), errors
    key = r.key()  # threads start again: the next mint works
    assert key.startswith("ASIAFAKE") and r.fetcher.calls == 1
    assert refresher._state.claimed is None and refresher.breaker.failures == 0


def test_a_pool_that_cannot_start_a_worker_fails_the_mint_and_keeps_no_slot() -> None:
    wall = FakeClock()
    mono = FakeClock(MONO_START)
    scheduler = Scheduler(mono, autostart=False)  # the real mint pool
    fetcher = ScriptedFetcher(wall)
    refresher = Refresher(
        refreshable(fetcher),
        policy=RefreshPolicy(wait_timeout=WAIT),
        clock=wall,
        _scheduler=scheduler,
    )
    pool = scheduler.pool
    wall.advance(LIFETIME + 10.0)
    mono.advance(LIFETIME + 10.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pool, "_start_worker", _no_thread)
        waiter = Waiter(refresher)
        try:
            waiter.start()
            assert waiter.woken == 1
            with pytest.raises(CredentialsUnavailable, match="thread"):
                waiter.resume()
        finally:
            waiter.close()
    assert refresher._state.claimed is None
    assert pool._workers == 0 and not pool._queue, "the pool kept no slot and no job"

    started: list[str] = []
    wall.advance(1.0)
    mono.advance(1.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pool, "_start_worker", lambda: started.append("worker"))
        waiter = Waiter(refresher)
        try:
            waiter.start()
            assert started == ["worker"], "the next mint asks for a worker again"
            job = pool._queue.popleft()
            job()
            assert waiter.woken == 1
            assert waiter.resume().startswith("ASIAFAKE")
        finally:
            waiter.close()
    refresher.close()
