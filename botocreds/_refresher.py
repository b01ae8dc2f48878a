"""Refresher and Swapper: keep one credential source fresh in the background.

Each refresher owns one :class:`BackgroundCredentials` object, shared by every
client attached to it, and publishes each new snapshot to it atomically.

Concurrency, in one paragraph: all mutable state sits behind ``self._cond``. A
mint is claimed under the lock (the single-flight flag ``_minting`` plus a mint
id), run on a mint-pool thread with no lock held, and folded back in under the
lock, where waiters are woken. A result is applied only if its id is still the
current one, so a mint abandoned by ``fork()`` can never publish. The hot path
takes no lock at all.
"""

from __future__ import annotations

import inspect
import logging
import math
import random as _random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial
from types import TracebackType
from typing import Any, ClassVar, TypeVar, cast

from botocore.client import BaseClient
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials

from . import _botocore
from ._aiocredentials import AioBackgroundCredentials
from ._breaker import Breaker
from ._cache import CachedSource, SharedCache, check_cache
from ._cache import cache_key as cache_key_for
from ._credentials import BackgroundCredentials, SnapshotCredentials
from ._errors import CredentialsUnavailable
from ._events import (
    BreakerChanged,
    ReactiveInvalidation,
    RefreshEvent,
    RefreshFailed,
    RefreshSucceeded,
    Reporter,
    RequestPathMint,
    check_reporter,
    emit,
)
from ._policy import RefreshPolicy
from ._redact import describe_error, mask_access_key
from ._scheduler import Scheduler, default_scheduler
from ._snapshot import Snapshot
from ._sources import FactorySource, FetchSource, Source, StaticSource
from ._status import RefresherStatus

logger = logging.getLogger("botocreds")

#: Every refresher alive in the process, open or closed, for health().
_refreshers: weakref.WeakSet[_RefresherBase] = weakref.WeakSet()

Clock = Callable[[], float]
Random = Callable[[], float]
ClientT = TypeVar("ClientT", bound=BaseClient)
RefresherT = TypeVar("RefresherT", bound="_RefresherBase")
#: Registers a waiter, under the refresher's lock; returns the function that wakes it.
Arm = Callable[[], Callable[[], None]]
#: Decides whether a snapshot, at a time, is the one a waiter wants.
Accept = Callable[[Snapshot, float], bool]


def _still_valid(snapshot: Snapshot, now: float) -> bool:
    return now < snapshot.valid_until


class MintTimedOut(TimeoutError):
    """A mint ran longer than the policy's ``mint_timeout`` and was abandoned."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the mint did not finish within mint_timeout={timeout:g}s")


def check_arguments(
    policy: object,
    clock: object,
    random: object,
    reporter: object,
    cache: object,
    cache_key: object,
) -> RefreshPolicy:
    """Check the keyword arguments every refresher takes; return the policy to use."""
    if policy is None:
        policy = RefreshPolicy()
    elif not isinstance(policy, RefreshPolicy):
        raise TypeError(f"policy must be a botocreds.RefreshPolicy, got {type(policy).__name__}")
    for label, value in (("clock", clock), ("random", random)):
        if value is not None and not callable(value):
            raise TypeError(f"{label} must be callable, got {type(value).__name__}")
    check_reporter(reporter)
    check_cache(cache, cache_key)
    return policy


class _RefresherBase:
    """The machinery shared by :class:`Refresher`, :class:`Swapper` and ``AioRefresher``."""

    #: The kind of credentials object this refresher hands to clients.
    _view_class: ClassVar[type[SnapshotCredentials]] = BackgroundCredentials
    #: Whether it serves aiobotocore clients (``True``) or botocore clients.
    _serves_aio: ClassVar[bool] = False

    def __init__(
        self,
        source: Source,
        *,
        policy: RefreshPolicy | None,
        clock: Clock | None,
        random: Random | None,
        method: str,
        reporter: Reporter | None,
        cache: SharedCache | None,
        cache_key: str | None,
        _scheduler: Scheduler | None,
    ) -> None:
        policy = check_arguments(policy, clock, random, reporter, cache, cache_key)
        self._reporter = reporter
        if cache is not None:
            source = _behind_cache(
                source, cache, cache_key, policy, self._report, self._served_until
            )
        self.name = source.name
        self._source = source
        self._policy = policy
        self._clock: Clock = clock if clock is not None else time.time
        self._random: Random = random if random is not None else _random.random
        self._scheduler = _scheduler if _scheduler is not None else default_scheduler()
        self._cond = threading.Condition(threading.Lock())
        self._breaker = Breaker()
        self._minting = False
        self._mint_id = 0  # the latest mint claimed
        self._done_id = 0  # the latest mint finished
        self._last_start = -math.inf
        self._not_before = -math.inf  # no background mint before this (interval, backoff)
        self._last_error: str | None = None
        self._mint_count = 0
        self._closed = False
        self._abandoned: int | None = None  # a mint given up on whose fetch still runs
        self._mint_thread: tuple[int, threading.Thread] | None = None
        self._users = 0  # attachments and wrapped sessions sharing this refresher
        self._events: list[RefreshEvent] = []  # built under the lock, emitted after it
        self._outbox: deque[RefreshEvent] = deque()  # raised on a loop, delivered off it
        self._outbox_lock = threading.Lock()
        self._outbox_busy = False
        # Woken when a mint finishes. Added and swapped under the lock, but removed
        # without it: a waiter's cleanup may run in a finalizer (a coroutine
        # abandoned on a closed loop), on a thread that already holds the lock.
        self._waiters: dict[object, Callable[[], None]] = {}
        self._bindings: weakref.WeakKeyDictionary[BaseClient, _botocore.ClientBinding] = (
            weakref.WeakKeyDictionary()
        )
        self._bindings_lock = threading.Lock()

        # The eager first mint runs here, on the constructing thread: a source
        # that cannot mint fails now, loudly, rather than on the first request.
        now = self._clock()
        started = time.monotonic()
        try:
            snapshot = source.mint(self._clock, policy.floor)
        except Exception as error:
            reason = describe_error(error)
            duration = time.monotonic() - started
            emit(RefreshFailed(self.name, duration, None, 1, reason), self._reporter)
            raise CredentialsUnavailable(source=self.name, reason=reason) from error
        self._last_start = now
        self._not_before = now + policy.min_interval
        self._mint_count = 1
        # The refresher owns the current snapshot and copies each new one into its
        # BackgroundCredentials, which it holds only weakly: clients hold that
        # object, and it holds the refresher, so a refresher nobody uses any
        # more is freed by reference counting alone, without waiting for the
        # cycle collector.
        self._snapshot = snapshot
        self._method = method
        self._credentials_ref: weakref.ref[SnapshotCredentials] | None = None
        _refreshers.add(self)
        self._scheduler.register(self)
        due = self._next_due(snapshot)
        if due is not None:
            self._scheduler.schedule(self, due)
        emit(self._succeeded(snapshot, time.monotonic() - started, 1), self._reporter)

    # -- public ---------------------------------------------------------------
    @property
    def credentials(self) -> SnapshotCredentials:
        """The credentials object this refresher keeps fresh; every read sees the latest set."""
        with self._cond:
            credentials = None if self._credentials_ref is None else self._credentials_ref()
            if credentials is None:
                credentials = self._view_class(self, self._snapshot, self._clock, self._method)
                self._credentials_ref = weakref.ref(credentials)
            return credentials

    def _publish(self, snapshot: Snapshot) -> None:
        # Lock held. One reference store each: readers see the old set or the new.
        self._snapshot = snapshot
        credentials = None if self._credentials_ref is None else self._credentials_ref()
        if credentials is not None:
            credentials._snapshot = snapshot

    @property
    def policy(self) -> RefreshPolicy:
        """The policy this refresher follows."""
        return self._policy

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def attach(self, client: ClientT) -> ClientT:
        """Make ``client`` sign with this refresher's credentials; return the client.

        Any number of clients can share one refresher and so one refresh.
        """
        check_client_kind(client, aio=self._serves_aio, owner=type(self).__name__)
        credentials = self.credentials
        with self._bindings_lock:
            previous = _botocore.bind_client(client, credentials, credentials._account_id_builtin())
            if previous.credentials is not credentials:
                self._bindings[client] = previous
        install_reactive_retry(client)
        return client

    def detach(self, client: BaseClient) -> None:
        """Give ``client`` back the credentials it had before :meth:`attach`."""
        with self._bindings_lock:
            previous = self._bindings.pop(client, None)
            current = _botocore.client_credentials(client)
            if previous is not None and getattr(current, "_owner", None) is self:
                _botocore.restore_client(client, previous)

    def close(self) -> None:
        """Stop refreshing in the background. Idempotent, and prompt.

        Attached clients keep working: when their credentials expire, a request
        mints a new set on demand (single-flight) instead.
        """
        # The scheduler is told under the refresher's lock (lock order: refresher,
        # then scheduler; the scheduler never calls back while holding its own),
        # so a concurrent _reopen() cannot interleave with it.
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._scheduler.unregister(self)

    def _reopen(self) -> None:
        """Resume background refresh after :meth:`close`, for attach() or wrap() again."""
        with self._cond:
            if not self._closed:
                return
            self._closed = False
            self._scheduler.register(self)
            due = self._resume_due()
            if due is not None:
                self._scheduler.schedule(self, due)

    def _resume_due(self) -> float | None:
        # Lock held: when to act next after a reopen or a fork.
        if self._minting:
            return self._last_start + self._policy.mint_timeout  # the watchdog
        if self._breaker.failures:
            return self._not_before  # keep the backoff or cooldown
        return self._next_due(self._snapshot)

    def __enter__(self: RefresherT) -> RefresherT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        snapshot = self._snapshot
        return (
            f"<{type(self).__name__} source={self.name!r} "
            f"access_key={mask_access_key(snapshot.frozen.access_key)!r} "
            f"breaker={self._breaker.state.value} closed={self._closed}>"
        )

    # -- timing ---------------------------------------------------------------
    def _next_due(self, snapshot: Snapshot) -> float | None:
        """When to mint again after ``snapshot`` was published."""
        if snapshot.expires:
            offset = self._policy.refresh_offset(snapshot.lifetime, self._random())
            due = snapshot.issued_at + offset
        elif self._source.renews_static:
            due = snapshot.issued_at + self._policy.static_ttl
        else:
            return None
        return max(due, self._last_start + self._policy.min_interval)

    # -- minting --------------------------------------------------------------
    def _claim(self, now: float) -> int | None:
        """Claim the single-flight slot if the breaker admits a mint. Lock held."""
        if self._minting or self._abandoned is not None:
            return None
        previous = self._breaker
        admitted, self._breaker = previous.admit(now, self._policy)
        if not admitted:
            return None
        if self._breaker.state is not previous.state:
            self._events.append(self._breaker_changed(previous, now))
        self._minting = True
        self._mint_id += 1
        self._last_start = now
        return self._mint_id

    def _dispatch(self, mint_id: int, *, on_loop: bool = False) -> None:
        try:
            # The watchdog: if this mint has not finished by then, the scheduler
            # abandons it. A finishing mint replaces this entry with the next due.
            self._scheduler.schedule(self, self._last_start + self._policy.mint_timeout)
            job = partial(self._run_mint, mint_id)
            if on_loop:
                self._scheduler.hand_off(job)
            else:
                self._scheduler.dispatch(job)
        except BaseException as error:  # e.g. "can't start new thread"
            self._finish(mint_id, None, error)
            raise

    def _run_mint(self, mint_id: int) -> None:
        # On a mint-pool thread. BaseException is caught so that even a
        # KeyboardInterrupt raised inside a fetcher releases the single-flight
        # slot and counts as a failed mint.
        with self._cond:
            if mint_id != self._mint_id or not self._minting:
                stale = True  # abandoned while it waited in the queue: do not fetch
            else:
                stale = False
                self._mint_thread = (mint_id, threading.current_thread())
        if stale:
            self._finish(mint_id, None, MintTimedOut(self._policy.mint_timeout))
            return
        started = time.monotonic()
        try:
            snapshot = self._source.mint(self._clock, self._policy.floor)
        except BaseException as error:
            self._finish(mint_id, None, error, time.monotonic() - started)
        else:
            self._finish(mint_id, snapshot, None, time.monotonic() - started)

    def _finish(
        self,
        mint_id: int,
        snapshot: Snapshot | None,
        error: BaseException | None,
        duration: float = 0.0,
    ) -> None:
        now = self._clock()
        hung_thread: threading.Thread | None = None
        with self._cond:
            if mint_id != self._mint_id or not self._minting:
                # A mint given up on (hung, or lost in a fork) has come back: its
                # answer is discarded, and the source may mint again.
                if mint_id == self._abandoned:
                    self._abandoned = None
                    closed = self._closed
                    self._wake_waiters()
                    if not closed:
                        self._scheduler.schedule(self, max(now, self._not_before))
                return
            self._minting = False
            self._done_id = mint_id
            if isinstance(error, MintTimedOut):
                self._abandoned = mint_id
                if self._mint_thread is not None and self._mint_thread[0] == mint_id:
                    hung_thread = self._mint_thread[1]
            previous = self._breaker
            if snapshot is not None:
                self._events.append(self._succeeded(snapshot, duration, previous.failures + 1))
                self._breaker = self._breaker.record_success()
                self._publish(snapshot)
                self._last_error = None
                self._mint_count += 1
                self._not_before = self._last_start + self._policy.min_interval
                due = self._next_due(snapshot)
            else:
                assert error is not None
                self._breaker = self._breaker.record_failure(now, self._policy)
                self._last_error = describe_error(error)
                self._events.append(
                    RefreshFailed(
                        self.name,
                        duration,
                        self._remaining(now),
                        self._breaker.failures,
                        self._last_error,
                    )
                )
                due = self._breaker.reopens_at(self._policy)
                if due is None:
                    current = self._snapshot
                    expires_at = current.valid_until if current.expires else None
                    due = self._policy.retry_at(
                        now, self._breaker.failures, expires_at, self._random()
                    )
                self._not_before = due
            if self._breaker.state is not previous.state:
                self._events.append(self._breaker_changed(previous, now))
            self._wake_waiters()
            closed = self._closed
        if hung_thread is not None:
            # Its pool slot goes to other sources; the thread exits when its fetch returns.
            self._scheduler.disown(hung_thread)
        if not closed and due is not None:
            self._scheduler.schedule(self, due)
        self._flush_events()

    def _on_due(self, now: float) -> None:
        """Called on the scheduler thread when a refresh is due."""
        with self._cond:
            if self._closed:
                return
            hung = self._hung_mint(now)
            if self._minting and hung is None:
                return  # a running mint reschedules when it finishes
        if hung is not None:
            self._abandon(hung, now)
            return
        with self._cond:
            if self._closed or self._minting:
                return
            if now < self._not_before:
                retry: float | None = self._not_before
                mint_id = None
            else:
                mint_id = self._claim(now)
                retry = None if mint_id is not None else self._breaker.reopens_at(self._policy)
                if mint_id is None and self._abandoned is not None:
                    retry = None  # rescheduled when the hung fetch returns
        self._flush_events()
        if mint_id is not None:
            self._dispatch(mint_id)
        elif retry is not None:
            self._scheduler.schedule(self, retry)

    # -- the slow path of the credentials objects -----------------------------------
    def _serve_valid(
        self, snapshot: Snapshot, *, on_loop: bool = False
    ) -> ReadOnlyCredentials | None:
        """The current set if it is still valid, else ``None``; never waits.

        A request whose snapshot is inside the floor lands here: if the
        scheduler is late (a freeze, a jump, a failing source), a background
        mint is started when one may start, and the still-valid set is served.
        ``on_loop``: the caller is an event loop, so events are handed to a
        mint thread instead of running reporters here.
        """
        snapshot = self._snapshot  # may have been replaced meanwhile
        now = self._clock()
        if now < snapshot.fresh_until:
            return snapshot.frozen
        if now < snapshot.valid_until:
            if not (self._closed or self._minting or now < self._not_before):
                with self._cond:
                    mint_id = None if self._closed or now < self._not_before else self._claim(now)
                self._flush_events(later=on_loop)
                if mint_id is not None:
                    self._dispatch(mint_id, on_loop=on_loop)
            return snapshot.frozen
        return None

    def _serve_stale(self, snapshot: Snapshot) -> ReadOnlyCredentials:
        """Serve a request whose snapshot is inside the floor or expired (blocking)."""
        frozen = self._serve_valid(snapshot)
        return frozen if frozen is not None else self._wait_for_fresh()

    def _wait_for_fresh(self) -> ReadOnlyCredentials:
        """Expired: wait (bounded) for one single-flight mint, never sign with the old set."""
        started = time.monotonic()
        succeeded = False
        try:
            snapshot = self._await_mint(_still_valid, "the credentials expired")
            succeeded = True
            return snapshot.frozen
        finally:
            self._report_request_path_mint(started, succeeded)

    def _report_request_path_mint(
        self, started: float, succeeded: bool, *, later: bool = False
    ) -> None:
        waited = time.monotonic() - started
        remaining = self._remaining(self._clock())
        attempt = self._breaker.failures + 1
        event = RequestPathMint(self.name, waited, remaining, attempt, succeeded)
        self._emit(event, later=later)

    def _emit(self, event: RefreshEvent, *, later: bool = False) -> None:
        """Deliver ``event`` now, or (``later``) from a mint thread, off the caller's loop."""
        if not later:
            emit(event, self._reporter)
            return
        # Reporters and log handlers are user code of any speed: an event loop
        # must not run them. Events queue here, in order, and one job on a
        # mint thread delivers every queued event.
        with self._outbox_lock:
            self._outbox.append(event)
            if self._outbox_busy:
                return
            self._outbox_busy = True
        self._scheduler.hand_off(self._deliver_outbox)

    def _deliver_outbox(self) -> None:
        while True:
            with self._outbox_lock:
                if not self._outbox:
                    self._outbox_busy = False
                    return
                event = self._outbox.popleft()
            emit(event, self._reporter)

    def _await_mint(self, accept: Accept, situation: str, *, paced: bool = False) -> Snapshot:
        """Block this thread until :meth:`_mint_steps` has a snapshot (at most ``wait_timeout``)."""
        woken = threading.Event()

        def arm() -> Callable[[], None]:
            woken.clear()
            return woken.set

        steps = self._mint_steps(accept, situation, paced=paced, arm=arm)
        try:
            timeout = next(steps)
            while True:
                woken.wait(timeout)
                timeout = steps.send(None)
        except StopIteration as done:
            snapshot: Snapshot = done.value
            return snapshot
        finally:
            steps.close()

    def _mint_steps(
        self, accept: Accept, situation: str, *, paced: bool, arm: Arm, on_loop: bool = False
    ) -> Generator[float, None, Snapshot]:
        """Wait, at most ``wait_timeout``, for a snapshot that ``accept`` takes.

        Joins the mint under way or claims one (single-flight); the mint itself
        runs on a mint thread. With ``paced``, a new mint also waits for
        ``min_interval`` since the last one. Raises
        :class:`CredentialsUnavailable` when the breaker refuses, the awaited
        mint fails, or time runs out.

        This is the waiting logic without the waiting, shared by threads and
        coroutines: whenever it must wait it calls ``arm()`` under the lock (so
        no wake-up is lost) and yields the longest wait; the driver sleeps on
        its own primitive until woken or timed out, then sends ``None``. With
        ``on_loop``, events are delivered from a mint thread, not here.
        """
        deadline = time.monotonic() + self._policy.wait_timeout
        awaited: int | None = None
        while True:
            claimed: int | None = None
            token: object | None = None
            timeout = 0.0
            with self._cond:
                snapshot = self._snapshot
                now = self._clock()
                if accept(snapshot, now):
                    return snapshot
                hung = self._hung_mint(now)
            if hung is not None:
                self._abandon(hung, now)
            with self._cond:
                snapshot = self._snapshot
                now = self._clock()
                if accept(snapshot, now):
                    return snapshot
                if self._minting:
                    awaited = self._mint_id
                elif awaited is not None and self._done_id >= awaited:
                    raise self._unavailable(
                        f"{situation} and minting new ones failed: {self._last_error}"
                    )
                elif paced and now < self._not_before:
                    timeout = min(self._not_before - now, deadline - time.monotonic())
                    if timeout <= 0:
                        raise self._unavailable(
                            f"{situation} and a new set may not be minted yet (min_interval)"
                        )
                    token = object()
                else:
                    claimed = self._claim(now)
                    if claimed is None:
                        raise self._unavailable(f"{situation} and {self._refusal(now)}")
                    awaited = claimed
                if claimed is None and token is None:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        raise self._unavailable(
                            f"{situation} and no new set arrived within "
                            f"wait_timeout={self._policy.wait_timeout:g}s"
                        )
                    token = object()
                if token is not None:
                    self._waiters[token] = arm()
            if token is not None:
                try:
                    yield timeout
                finally:
                    self._waiters.pop(token, None)  # no lock: see __init__
                continue
            assert claimed is not None
            self._flush_events(later=on_loop)
            self._dispatch(claimed, on_loop=on_loop)

    def _wake_waiters(self) -> None:
        # Lock held. Each wake function only sets a flag or schedules a callback.
        # tuple() copies in one step under the GIL: a waiter's lock-free cleanup
        # may pop from the old dict meanwhile.
        waiters, self._waiters = self._waiters, {}
        for wake in tuple(waiters.values()):
            wake()

    def _invalidate(self, error_code: str, rejected: Snapshot | None) -> bool:
        """AWS rejected a set although it looked valid: make sure a new one is served.

        ``rejected`` is the snapshot the request was signed with. If a set with
        another access key is already published, nothing is minted. Otherwise
        one single-flight mint runs, paced by ``min_interval`` and the breaker,
        and the caller waits for it (bounded). Returns whether a set with
        another access key is now served, i.e. whether one retry is worth making.
        """
        started = time.monotonic()
        accept = self._replacement_for(rejected)
        retried = accept is None
        if accept is not None:
            try:
                self._await_mint(accept, self._rejected_situation(error_code), paced=True)
                retried = True
            except CredentialsUnavailable as error:
                logger.warning("botocreds: %s", error)
        self._report_invalidation(error_code, started, retried)
        return retried

    def _replacement_for(self, rejected: Snapshot | None) -> Accept | None:
        """What a set must be to replace ``rejected``; ``None`` if one is already served."""
        current = self._snapshot
        rejected_key = (current if rejected is None else rejected).frozen.access_key
        if current.frozen.access_key != rejected_key:
            return None
        return lambda snapshot, now: (
            snapshot.frozen.access_key != rejected_key and now < snapshot.valid_until
        )

    @staticmethod
    def _rejected_situation(error_code: str) -> str:
        return f"AWS rejected the credentials ({error_code})"

    def _report_invalidation(
        self, error_code: str, started: float, retried: bool, *, later: bool = False
    ) -> None:
        event = ReactiveInvalidation(
            self.name,
            time.monotonic() - started,
            self._remaining(self._clock()),
            self._breaker.failures + 1,
            error_code,
            retried,
        )
        self._emit(event, later=later)

    def _abandon(self, mint_id: int, now: float) -> None:
        """Give up on a mint that ran past ``mint_timeout``: a failed mint of that length."""
        duration = max(0.0, now - self._last_start)
        self._finish(mint_id, None, MintTimedOut(self._policy.mint_timeout), duration)

    def _hung_mint(self, now: float) -> int | None:
        """The id of a mint running longer than ``mint_timeout``, if any. Lock held."""
        if self._minting and now - self._last_start >= self._policy.mint_timeout:
            return self._mint_id
        return None

    def _refusal(self, now: float) -> str:
        # Lock held: the breaker (or a hung fetch) refused a mint.
        if self._abandoned is not None:
            return (
                "the previous mint hung past mint_timeout and its fetch has not returned "
                f"(last error: {self._last_error})"
            )
        reopens = self._breaker.reopens_at(self._policy)
        wait = "" if reopens is None else f"; next attempt in {max(0.0, reopens - now):.0f}s"
        return (
            f"the circuit breaker is {self._breaker.state.value} "
            f"after {self._breaker.failures} failed mints (last error: {self._last_error}){wait}"
        )

    # -- events -------------------------------------------------------------------
    def _remaining(self, now: float) -> float | None:
        snapshot = self._snapshot
        return snapshot.valid_until - now if snapshot.expires else None

    def _succeeded(self, snapshot: Snapshot, duration: float, attempt: int) -> RefreshSucceeded:
        expires_at = (
            datetime.fromtimestamp(snapshot.valid_until, timezone.utc) if snapshot.expires else None
        )
        remaining = snapshot.lifetime if snapshot.expires else None
        masked = mask_access_key(snapshot.frozen.access_key)
        return RefreshSucceeded(self.name, duration, remaining, attempt, masked, expires_at)

    def _breaker_changed(self, previous: Breaker, now: float) -> BreakerChanged:
        failures = max(previous.failures, self._breaker.failures)
        return BreakerChanged(
            self.name, 0.0, self._remaining(now), failures, previous.state, self._breaker.state
        )

    def _served_until(self) -> float:
        """Expiry of the set served now (``-inf`` before the first mint)."""
        snapshot = getattr(self, "_snapshot", None)
        return -math.inf if snapshot is None else snapshot.valid_until

    def _report(self, event: RefreshEvent) -> None:
        emit(event, self._reporter)

    def _flush_events(self, *, later: bool = False) -> None:
        """Hand the events built under the lock to the reporters, with no lock held."""
        with self._cond:
            if not self._events:
                return
            events, self._events = self._events, []
        for event in events:
            self._emit(event, later=later)

    def status(self) -> RefresherStatus:
        """A frozen snapshot of this refresher's state, for health checks and debugging."""
        with self._cond:
            snapshot = self._snapshot
            breaker = self._breaker
            last_error = self._last_error
            mint_count = self._mint_count
            closed = self._closed
        now = self._clock()
        due = self._scheduler.due_at(self)
        return RefresherStatus(
            source=self.name,
            access_key=mask_access_key(snapshot.frozen.access_key),
            expires_at=(
                datetime.fromtimestamp(snapshot.valid_until, timezone.utc)
                if snapshot.expires
                else None
            ),
            next_refresh_at=(
                None if due is None or closed else datetime.fromtimestamp(due, timezone.utc)
            ),
            breaker=breaker.state,
            failures=breaker.failures,
            last_error=last_error,
            mint_count=mint_count,
            closed=closed,
            valid=now < snapshot.valid_until,
        )

    def _unavailable(self, reason: str) -> CredentialsUnavailable:
        return CredentialsUnavailable(source=self.name, reason=reason)

    # -- fork -------------------------------------------------------------------
    def _after_fork_in_child(self) -> None:
        """Fresh lock and single-flight state in a forked child, and a re-drawn jitter.

        Re-drawing matters: N workers forked from one parent would otherwise all
        refresh at the same instant.
        """
        self._cond = threading.Condition(threading.Lock())
        self._bindings_lock = threading.Lock()
        self._outbox_lock = threading.Lock()
        self._outbox_busy = False
        self._waiters = {}  # threads and loops of the parent: none exist here
        # The parent's mint threads do not exist here: nothing is in flight.
        self._mint_id += 1
        self._minting = False
        self._abandoned = None
        self._mint_thread = None
        if self._breaker.probing:  # a half-open probe lost in the fork
            self._breaker = replace(self._breaker, probing=False)
        if self._closed:
            return
        due = self._resume_due()
        if due is not None:
            self._scheduler.schedule(self, due)

    # -- introspection for tests and status ---------------------------------------
    @property
    def breaker(self) -> Breaker:
        """The circuit breaker's current state."""
        return self._breaker

    @property
    def mint_count(self) -> int:
        """How many mints have succeeded, the eager first one included."""
        return self._mint_count


#: Error codes with which AWS says a request's credentials are expired or unknown.
REJECTION_CODES = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId"}
)
_RETRIED = "botocreds_reactive_retry"
_SIGNED_WITH = "botocreds_signed_with"


def install_reactive_retry(client: BaseClient) -> None:
    """Retry a request once, with new credentials, when AWS rejects them as expired.

    Two handlers on the client's own events: ``before-sign`` notes which
    snapshot signs the request, and ``needs-retry`` (botocore's retry hook, so
    the retry re-signs through the normal path) asks the refresher to replace
    that snapshot when AWS rejects it. They act only while the client signs
    with botocreds credentials, and retry at most once per request. Installed
    once per client. On an aiobotocore client the ``needs-retry`` handler is a
    coroutine, so waiting for the new set never blocks the event loop.
    """
    client_ref = weakref.ref(client)

    def background_of_client() -> SnapshotCredentials | None:
        current = client_ref()
        credentials = None if current is None else _botocore.client_credentials(current)
        return credentials if isinstance(credentials, SnapshotCredentials) else None

    def note_snapshot(request: Any = None, **_: Any) -> None:
        credentials = background_of_client()
        if credentials is not None and request is not None:
            request.context[_SIGNED_WITH] = credentials._snapshot

    def rejection(
        response: Any, request_dict: Any
    ) -> tuple[_RefresherBase, str, Snapshot | None] | None:
        """The refresher, error code and signing snapshot of a rejection worth one retry."""
        if response is None or request_dict is None:
            return None
        code = (response[1] or {}).get("Error", {}).get("Code")
        if code not in REJECTION_CODES:
            return None
        context = request_dict.setdefault("context", {})
        if context.get(_RETRIED):
            return None  # never loop: one reactive retry per request
        context[_RETRIED] = True
        credentials = background_of_client()
        if credentials is None:
            return None
        owner: _RefresherBase = credentials._owner  # type: ignore[assignment]
        return owner, code, context.get(_SIGNED_WITH)

    def retry_rejected(response: Any = None, request_dict: Any = None, **_: Any) -> float | None:
        found = rejection(response, request_dict)
        if found is None:
            return None
        owner, code, signed_with = found
        return 0.0 if owner._invalidate(code, signed_with) else None

    async def retry_rejected_async(
        response: Any = None, request_dict: Any = None, **_: Any
    ) -> float | None:
        found = rejection(response, request_dict)
        if found is None:
            return None
        from ._aiocredentials import invalidate

        owner, code, signed_with = found
        return 0.0 if await invalidate(owner, code, signed_with) else None

    events = client.meta.events
    events.register("before-sign", note_snapshot, unique_id="botocreds-note-snapshot")
    events.register(
        "needs-retry",
        retry_rejected_async if _botocore.is_aio_client(client) else retry_rejected,  # type: ignore[arg-type]
        unique_id="botocreds-reactive-retry",
    )


def not_a_client_hint(value: object) -> str:
    """A hint for the usual things passed where a client belongs, or ``""``."""
    if _botocore.is_client_creator(value):
        return (
            " (an aiobotocore create_client() result: attach the client it yields, "
            "inside `async with session.create_client(...) as client:`)"
        )
    if _botocore.is_client(getattr(getattr(value, "meta", None), "client", None)):
        return " (for a boto3 resource, pass resource.meta.client)"
    return ""


def check_client_kind(client: object, *, aio: bool, owner: str) -> None:
    """Raise ``TypeError`` unless ``client`` is a client of the kind (sync or async) wanted."""
    if not _botocore.is_client(client):
        kind = "an aiobotocore/aioboto3" if aio else "a botocore/boto3"
        raise TypeError(
            f"{owner}.attach() expected {kind} client, "
            f"got {type(client).__name__}{not_a_client_hint(client)}"
        )
    if _botocore.is_aio_client(client) and not aio:
        raise TypeError(
            f"{owner} serves botocore (sync) clients, and got an aiobotocore client: "
            "use botocreds.attach(client), or an AioRefresher over the client's "
            "aiobotocore credentials or AioSession"
        )
    if aio and not _botocore.is_aio_client(client):
        raise TypeError(
            f"{owner} serves aiobotocore (async) clients, and got a botocore client "
            f"({type(client).__name__}): use botocreds.attach(client), or a Refresher over "
            "the client's botocore credentials or session"
        )


def _describe_callable(value: Callable[..., Any]) -> str:
    return getattr(value, "__qualname__", None) or type(value).__name__


def _behind_cache(
    source: Source,
    cache: SharedCache,
    key: str | None,
    policy: RefreshPolicy,
    report: Callable[[RefreshEvent], None],
    served_until: Callable[[], float],
) -> Source:
    """Put ``source`` behind a shared cache tier (arguments already checked)."""
    chosen = key or source.identity
    if chosen is None:
        raise ValueError(
            f"botocreds cannot tell which role or identity {source.name!r} stands for, so it "
            "cannot name a shared cache entry: pass cache_key= (the same in every process "
            "that should share these credentials)"
        )
    # Wait for another process's mint for a quarter of the mint budget at most,
    # and lease the lock for the whole budget, so a slow fetch keeps it.
    wait = min(30.0, policy.mint_timeout / 4)
    return CachedSource(
        source,
        cache,
        cache_key_for(chosen),
        wait=wait,
        lease=max(policy.mint_timeout, 2 * wait),
        served_until=served_until,
        report=report,
    )


class Refresher(_RefresherBase):
    """Keeps existing botocore credentials fresh in the background.

    ``credentials`` may be:

    * a ``RefreshableCredentials`` or ``DeferredRefreshableCredentials``: each
      mint calls that object's own fetch function (STS, IMDS, container,
      process…), on a background thread, ahead of expiry;
    * static ``Credentials``: nothing to refresh, they are served as they are;
    * a boto3 or botocore ``Session``: its resolved credentials.

    The first mint runs eagerly in the constructor; a source that cannot mint
    raises :class:`CredentialsUnavailable` here. Use as a context manager, or
    call :meth:`close`.
    """

    def __init__(
        self,
        credentials: Credentials | Any,
        *,
        policy: RefreshPolicy | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        random: Random | None = None,
        reporter: Reporter | None = None,
        cache: SharedCache | None = None,
        cache_key: str | None = None,
        _scheduler: Scheduler | None = None,
    ) -> None:
        source, method = _source_for(credentials, name)
        super().__init__(
            source,
            policy=policy,
            clock=clock,
            random=random,
            method=method,
            reporter=reporter,
            cache=cache,
            cache_key=cache_key,
            _scheduler=_scheduler,
        )

    @property
    def credentials(self) -> BackgroundCredentials:
        """The botocore ``Credentials`` object this refresher keeps fresh.

        Hand it to anything that takes botocore credentials; every read sees
        the latest published set.
        """
        return cast(BackgroundCredentials, super().credentials)


def _refuse_own(credentials: object) -> None:
    if isinstance(credentials, SnapshotCredentials):
        raise ValueError(
            "these credentials are already kept fresh by botocreds; "
            "attach clients to their refresher instead"
        )


def _resolved(credentials: Credentials | None, name: str | None) -> Credentials:
    """The credentials a session resolved: refuses none at all, and botocreds' own."""
    if credentials is None:
        raise CredentialsUnavailable(
            source=name or "session", reason="the session found no credentials"
        )
    _refuse_own(credentials)
    return credentials


def _refreshable_source(
    credentials: RefreshableCredentials,
    name: str | None,
    stack: str,
    make: Callable[[Callable[[], Any], str, str | None], Source],
) -> tuple[Source, str]:
    """A source over the fetch function of botocore or aiobotocore refreshable credentials."""
    method = credentials.method or "refreshable"
    botocore_key = _botocore.fetcher_identity(credentials)
    identity = None if botocore_key is None else f"{stack}-{botocore_key}"
    return make(_botocore.refresh_function(credentials), name or method, identity), method


def _source_for(credentials: object, name: str | None) -> tuple[Source, str]:
    if credentials is None:
        raise TypeError(
            "Refresher() needs botocore Credentials or a boto3/botocore Session, got None"
        )
    _refuse_own(credentials)
    if _botocore.is_aio_credentials(credentials) or _botocore.is_aio_session(credentials):
        raise TypeError(
            "Refresher() needs botocore Credentials or a boto3/botocore Session, got "
            f"aiobotocore's {type(credentials).__name__}: use botocreds.AioRefresher for "
            "aiobotocore credentials and sessions"
        )
    session = _botocore.botocore_session_of(credentials)
    if session is not None:
        credentials = _resolved(session.get_credentials(), name)
    if isinstance(credentials, RefreshableCredentials):
        return _refreshable_source(credentials, name, "botocore", FetchSource)
    if isinstance(credentials, Credentials):
        method = credentials.method or "static"
        return StaticSource(credentials, name or method), method
    raise TypeError(
        "Refresher() needs botocore Credentials or a boto3/botocore Session, "
        f"got {type(credentials).__name__}"
    )


class Swapper(_RefresherBase):
    """Builds a whole new credentials object each cycle and swaps it in.

    ``factory()`` returns a fresh botocore ``Credentials`` object, for example
    ``lambda: boto3.Session(profile_name="app").get_credentials()``. Running it
    again each cycle picks up a rotated profile, credentials file, web-identity
    token or environment. Credentials with no expiry are re-read every
    ``policy.static_ttl`` seconds.
    """

    def __init__(
        self,
        factory: Callable[[], Credentials | None],
        *,
        policy: RefreshPolicy | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        random: Random | None = None,
        reporter: Reporter | None = None,
        cache: SharedCache | None = None,
        cache_key: str | None = None,
        _scheduler: Scheduler | None = None,
    ) -> None:
        if not callable(factory):
            raise TypeError(
                "Swapper() needs a callable that returns botocore Credentials, "
                f"got {type(factory).__name__}"
            )
        if inspect.iscoroutinefunction(factory):
            raise TypeError(
                "Swapper() needs a plain function that returns botocore Credentials, got a "
                "coroutine function: for aiobotocore, use botocreds.AioRefresher over an "
                "AioSession or its credentials"
            )
        label = name or _describe_callable(factory)
        super().__init__(
            FactorySource(factory, label),
            policy=policy,
            clock=clock,
            random=random,
            method="botocreds-swapper",
            reporter=reporter,
            cache=cache,
            cache_key=cache_key,
            _scheduler=_scheduler,
        )

    @property
    def credentials(self) -> BackgroundCredentials:
        """The botocore ``Credentials`` object this refresher keeps fresh."""
        return cast(BackgroundCredentials, super().credentials)


class AioRefresher(_RefresherBase):
    """Keeps aiobotocore credentials fresh in the background, for aiobotocore clients.

    ``credentials`` may be an aiobotocore ``AioRefreshableCredentials`` (or its
    deferred variant), static ``AioCredentials``, an ``AioSession`` or an
    aioboto3 ``Session``. Their fetchers are coroutines; each mint runs them on
    botocreds' own event loop, on a background thread, so no application loop
    ever runs or waits for a fetch. Requests read the current set with an
    ``await`` that does no I/O and takes no loop-bound lock.

    The first mint runs eagerly in the constructor, blocking the calling thread
    for one fetch (at most ``policy.mint_timeout``); a source that cannot mint
    raises :class:`CredentialsUnavailable` here. Construct it at startup, or
    with ``await asyncio.to_thread(AioRefresher, ...)`` inside a running loop.
    """

    _view_class: ClassVar[type[SnapshotCredentials]] = AioBackgroundCredentials
    _serves_aio: ClassVar[bool] = True

    def __init__(
        self,
        credentials: Any,
        *,
        policy: RefreshPolicy | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        random: Random | None = None,
        reporter: Reporter | None = None,
        cache: SharedCache | None = None,
        cache_key: str | None = None,
        _scheduler: Scheduler | None = None,
    ) -> None:
        # Resolving an async session is I/O: every argument is checked first.
        checked = check_arguments(policy, clock, random, reporter, cache, cache_key)
        source, method = _aio_source_for(credentials, name, checked.mint_timeout)
        super().__init__(
            source,
            policy=checked,
            clock=clock,
            random=random,
            method=method,
            reporter=reporter,
            cache=cache,
            cache_key=cache_key,
            _scheduler=_scheduler,
        )

    @property
    def credentials(self) -> AioBackgroundCredentials:
        """The aiobotocore-style credentials object this refresher keeps fresh.

        ``await credentials.get_frozen_credentials()`` reads the latest set.
        """
        return cast(AioBackgroundCredentials, super().credentials)


def _aio_source_for(credentials: object, name: str | None, timeout: float) -> tuple[Source, str]:
    """The source behind aiobotocore credentials or an async session (input checked first)."""
    from ._aioloop import AioFetchSource, run_on_loop

    _refuse_own(credentials)
    session = _botocore.aio_session_of(credentials)
    if session is None and not _botocore.is_aio_credentials(credentials):
        kind = "None" if credentials is None else type(credentials).__name__
        hint = ""
        if isinstance(credentials, Credentials) or _botocore.botocore_session_of(credentials):
            hint = ": use botocreds.Refresher for botocore credentials and sessions"
        raise TypeError(
            "AioRefresher() needs aiobotocore credentials, an AioSession or an aioboto3 "
            f"Session, got {kind}{hint}"
        )
    if session is not None:
        credentials = _resolved(run_on_loop(session.get_credentials, timeout), name)
    if isinstance(credentials, RefreshableCredentials):
        return _refreshable_source(
            credentials, name, "aiobotocore", partial(AioFetchSource, timeout=timeout)
        )
    assert isinstance(credentials, Credentials)
    method = credentials.method or "static"
    # aiobotocore's static AioCredentials has plain attributes: copy them into a
    # botocore Credentials, whose get_frozen_credentials() is not a coroutine.
    plain = Credentials(
        credentials.access_key,
        credentials.secret_key,
        credentials.token,
        method=method,
        account_id=getattr(credentials, "account_id", None),
    )
    return StaticSource(plain, name or method), method


def health() -> list[RefresherStatus]:
    """The :meth:`~Refresher.status` of every refresher in the process.

    For a readiness probe: ``all(s.valid for s in botocreds.health())``.
    """
    return sorted((r.status() for r in list(_refreshers)), key=lambda s: s.source)
