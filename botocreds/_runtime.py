"""The thin runtime under every refresher: one lock, one state, and the effects.

Every change goes through :meth:`RefresherRuntime._step`: under the lock it
swaps in the state a pure transition of ``_core`` returned, publishes a new
snapshot and records the next look with the scheduler (cheap stores that
cannot fail); after releasing the lock it wakes the waiters, starts mints and
hands events to the delivery thread. Every effect runs in its own guard, so no
exception (a reporter, a thread that cannot start, a date out of range, an
error whose ``__str__`` raises) can leave the single-flight claim set, a
waiter asleep or an open refresher with no look scheduled.

A mint's result is folded back in by the ``finally`` of the function that runs
it, the same scope that owns the claim; a mint that cannot even start is
folded in at once as a failure.

The hot path (``_credentials``) takes no lock: it reads the published
snapshot, one reference that is replaced whole.
"""

from __future__ import annotations

import logging
import math
import random as _random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from types import TracebackType
from typing import ClassVar, TypeVar

from botocore.client import BaseClient

from . import _botocore, _core
from ._breaker import Breaker
from ._cache import SharedCache, behind_cache
from ._checks import check_arguments, check_client_kind
from ._credentials import BackgroundCredentials, SnapshotCredentials
from ._errors import CredentialsUnavailable
from ._events import (
    BreakerChanged,
    RefreshEvent,
    RefreshFailed,
    RefreshSucceeded,
    Reporter,
)
from ._forksafe import on_fork_in_child
from ._policy import RefreshPolicy
from ._reactive import install_reactive_retry
from ._redact import describe_error, mask_access_key, safe_cause
from ._requests import RequestPath
from ._scheduler import Scheduler, default_scheduler
from ._snapshot import Snapshot, utc_datetime
from ._sources import Source
from ._status import RefresherStatus

logger = logging.getLogger("botocreds")

Clock = Callable[[], float]
Random = Callable[[], float]
ClientT = TypeVar("ClientT", bound=BaseClient)
RuntimeT = TypeVar("RuntimeT", bound="RefresherRuntime")

#: Every refresher alive in the process, open or closed: for health() and fork.
_runtimes: weakref.WeakSet[RefresherRuntime] = weakref.WeakSet()


class RefresherRuntime(RequestPath):
    """The machinery shared by ``Refresher``, ``Swapper`` and ``AioRefresher``."""

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
        adopt: Callable[[Clock, float], Snapshot | None] | None = None,
    ) -> None:
        policy = check_arguments(policy, clock, random, reporter, cache, cache_key)
        self._reporter = reporter
        self._policy = policy
        self._clock: Clock = clock if clock is not None else time.time
        self._random: Random = random if random is not None else _random.random
        self._scheduler = _scheduler if _scheduler is not None else default_scheduler()
        self._monotonic: Clock = self._scheduler.clock
        if cache is not None:
            owner = weakref.ref(self)  # the tier must not keep its refresher alive

            def served_until() -> float:
                runtime = owner()
                return -math.inf if runtime is None else runtime._served_until()

            def report(event: RefreshEvent) -> None:
                runtime = owner()
                if runtime is not None:
                    runtime._deliver(event)

            source = behind_cache(source, cache, cache_key, policy, served_until, report)
        self.name = source.name
        self._source = source
        self._method = method
        self._lock = threading.Lock()
        # Woken when the state a waiter waits on changes. Added and swapped under
        # the lock, but removed without it: a waiter's cleanup may run in a
        # finalizer (a coroutine abandoned on a closed loop), on a thread that
        # already holds the lock.
        self._waiters: dict[object, Callable[[], None]] = {}
        self._mint_threads: dict[int, threading.Thread] = {}
        # Events in the order their transitions committed: appended under the
        # lock, handed to the delivery queue in that order by whichever thread
        # flushes first. Re-entrant: an inline delivery (a test's manual
        # scheduler) may run a reporter that reports again.
        self._outbox: deque[RefreshEvent] = deque()
        self._outbox_lock = threading.RLock()
        self._forked = False
        self._users = 0  # attachments and wrapped sessions sharing this refresher
        self._credentials_ref: weakref.ref[SnapshotCredentials] | None = None
        self._bindings: weakref.WeakKeyDictionary[BaseClient, _botocore.ClientBinding] = (
            weakref.WeakKeyDictionary()
        )
        self._bindings_lock = threading.Lock()

        # A set botocore has just fetched, with more than the floor left, is
        # served as it is. Otherwise the eager first mint runs here, on the
        # constructing thread: a source that cannot mint fails now, loudly,
        # rather than on the first request.
        current = None if adopt is None else adopt(self._clock, policy.floor)
        if current is not None:
            state, effects = _core.adopted(
                current,
                policy,
                renews_static=source.renews_static,
                mono=self._monotonic(),
                wall=self._clock(),
                sample=self._sample(),
            )
        else:
            state, effects = self._first_mint(source, policy)
        self._state = state
        _runtimes.add(self)
        self._scheduler.register(self)
        self._step(lambda _: (state, effects))

    def _first_mint(self, source: Source, policy: RefreshPolicy) -> _core.Step:
        started = self._monotonic()
        began = time.monotonic()  # durations are real elapsed time
        try:
            snapshot = source.mint(self._clock, policy.floor)
        except Exception as error:
            reason = describe_error(error)
            duration = time.monotonic() - began
            self._deliver(RefreshFailed(self.name, duration, None, 1, reason))
            raise CredentialsUnavailable(source=self.name, reason=reason) from safe_cause(error)
        return _core.initial(
            snapshot,
            policy,
            renews_static=source.renews_static,
            mono=started,
            wall=self._clock(),
            sample=self._sample(),
            duration=time.monotonic() - began,
        )

    # -- the state ------------------------------------------------------------------
    def _step(
        self,
        transition: Callable[[_core.RefresherState], _core.Step],
        *,
        on_loop: bool = False,
    ) -> _core.RefresherState:
        """Apply ``transition`` under the lock, then run its effects without it."""
        with self._lock:
            old = self._state
            new, effects = transition(old)
            wakes = self._commit(old, new, effects)
        if old.closed != new.closed:
            self._closed_changed(new.closed)
        self._run(effects, wakes, on_loop=on_loop)
        return new

    def _closed_changed(self, closed: bool) -> None:
        """Called, without the lock, when the refresher closes or reopens."""

    def _commit(
        self,
        old: _core.RefresherState,
        new: _core.RefresherState,
        effects: _core.Effects,
    ) -> list[Callable[[], None]]:
        # Lock held. Only stores that cannot fail: the state, the published
        # snapshot, the scheduler's membership and next look (no thread start).
        self._state = new
        if new.closed and not old.closed:
            self._scheduler.unregister(self)
        elif old.closed and not new.closed:
            self._scheduler.register(self)
        wakes: list[Callable[[], None]] = []
        for effect in effects:
            if isinstance(effect, _core.Publish):
                self._store(effect.snapshot)
            elif isinstance(effect, _core.WakeWaiters):
                # tuple() copies in one step under the GIL: a waiter's lock-free
                # cleanup may pop from the old dict meanwhile.
                waiters, self._waiters = self._waiters, {}
                wakes.extend(tuple(waiters.values()))
            elif isinstance(effect, _core.LookAt):
                self._scheduler.schedule(self, effect.when, start=False)
            elif isinstance(effect, (_core.Succeeded, _core.Failed, _core.BreakerMoved)):
                try:
                    self._outbox.append(self._event(effect))
                except Exception:  # building an event must not undo the transition
                    logger.exception("botocreds: building a %s event failed", type(effect).__name__)
        return wakes

    def _run(
        self,
        effects: _core.Effects,
        wakes: list[Callable[[], None]],
        *,
        on_loop: bool = False,
    ) -> None:
        """Run the effects that must not run under the lock, each in its own guard."""
        self._flush_outbox(on_loop=on_loop)
        for wake in wakes:
            try:
                wake()
            except Exception:
                logger.exception("botocreds: waking a waiter failed")
        for effect in effects:
            try:
                self._run_one(effect, on_loop)
            except Exception:
                logger.exception("botocreds: running %s failed", type(effect).__name__)

    def _run_one(self, effect: _core.Effect, on_loop: bool) -> None:
        if isinstance(effect, _core.StartMint):
            self._start(effect.mint, on_loop=on_loop)
        elif isinstance(effect, _core.LookAt):
            self._scheduler.ensure_running()
        elif isinstance(effect, _core.Disown):
            thread = self._mint_threads.get(effect.mint_id)
            if thread is not None:
                # Its pool slot goes to other sources; it exits when its fetch returns.
                self._scheduler.disown(thread)

    def _store(self, snapshot: Snapshot) -> None:
        # Lock held. One reference store: readers see the old set or the new.
        credentials = None if self._credentials_ref is None else self._credentials_ref()
        if credentials is not None:
            credentials._snapshot = snapshot

    def _sample(self) -> float:
        """A uniform sample in [0, 1) from the injected source, or a fallback that is."""
        try:
            value = float(self._random())
        except Exception:
            return 0.5
        return value if 0.0 <= value < 1.0 else 0.5

    def _times(self) -> tuple[float, float]:
        return self._clock(), self._monotonic()

    @property
    def _snapshot(self) -> Snapshot:
        """The set served now."""
        return self._state.snapshot

    # -- minting ---------------------------------------------------------------------
    def _start(self, mint: _core.Mint, *, on_loop: bool) -> None:
        job = partial(self._run_mint, mint)

        def could_not_start(error: BaseException) -> None:
            reason = f"no mint thread could be started ({describe_error(error)})"
            self._fold(mint, _core.Outcome(None, reason, 0.0))

        if on_loop:
            self._scheduler.hand_off(job, could_not_start)
            return
        try:
            self._scheduler.dispatch(job)
        except BaseException as error:  # e.g. "can't start new thread"
            could_not_start(error)
            if not isinstance(error, Exception):
                raise  # a KeyboardInterrupt on the calling thread is the caller's

    def _run_mint(self, mint: _core.Mint) -> None:
        # On a mint-pool thread. BaseException is caught so that even a
        # KeyboardInterrupt raised inside a fetcher counts as one failed mint;
        # the finally, in the scope that owns the claim, always folds it in.
        outcome: _core.Outcome | None = None
        started = time.monotonic()
        try:
            with self._lock:
                live = self._state.claimed == mint
                if live:
                    self._mint_threads[mint.id] = threading.current_thread()
            if live:
                snapshot = self._source.mint(self._clock, self._policy.floor)
                outcome = _core.Outcome(snapshot, None, time.monotonic() - started)
        except BaseException as error:
            outcome = _core.Outcome(None, describe_error(error), time.monotonic() - started)
        finally:
            self._mint_threads.pop(mint.id, None)
            if outcome is None:
                # Abandoned while it waited in the queue, or lost in a fork: not run.
                outcome = _core.Outcome(None, "the mint was given up on before it ran", 0.0)
            self._fold(mint, outcome)

    def _fold(self, mint: _core.Mint, outcome: _core.Outcome) -> None:
        """Fold a finished mint in; if even that fails, still release the claim."""
        try:
            wall, mono = self._times()
            sample = self._sample()
            self._step(
                lambda state: _core.on_result(
                    state,
                    self._policy,
                    mint.id,
                    outcome,
                    wall=wall,
                    mono=mono,
                    sample=sample,
                )
            )
        except BaseException as error:
            logger.exception("botocreds: folding in a mint failed; releasing its claim")
            with self._lock:
                state = self._state
                if state.claimed == mint:
                    self._state = replace(
                        state, claimed=None, last_failed=True, not_before=-math.inf
                    )
                waiters, self._waiters = self._waiters, {}
            for wake in tuple(waiters.values()):
                wake()
            self._scheduler.schedule(self, self._monotonic() + _core.RETRY_SPACING)
            if not isinstance(error, Exception):
                raise

    def _on_due(self, now: float) -> None:
        """Called on the scheduler thread when a look is due (``now``: monotonic)."""
        wall = self._clock()
        sample = self._sample()
        self._step(
            lambda state: _core.on_due(state, self._policy, wall=wall, mono=now, sample=sample)
        )

    # -- events ----------------------------------------------------------------------
    def _deliver(self, event: RefreshEvent, *, on_loop: bool = False) -> None:
        """Queue ``event`` for the delivery thread, behind this refresher's earlier events."""
        self._outbox.append(event)
        self._flush_outbox(on_loop=on_loop)

    def _flush_outbox(self, *, on_loop: bool = False) -> None:
        # Never runs reporters here (the delivery thread does), and never raises.
        try:
            with self._outbox_lock:
                while self._outbox:
                    event = self._outbox.popleft()
                    self._scheduler.delivery.deliver(event, self._reporter, off_loop=on_loop)
        except Exception:
            logger.exception("botocreds: queueing an event failed")

    def _event(self, effect: _core.Succeeded | _core.Failed | _core.BreakerMoved) -> RefreshEvent:
        if isinstance(effect, _core.Succeeded):
            snapshot = effect.snapshot
            return RefreshSucceeded(
                self.name,
                effect.duration,
                snapshot.lifetime if snapshot.expires else None,
                effect.attempt,
                mask_access_key(snapshot.frozen.access_key),
                utc_datetime(snapshot.valid_until),
            )
        if isinstance(effect, _core.Failed):
            return RefreshFailed(
                self.name,
                effect.duration,
                effect.remaining,
                effect.attempt,
                effect.error,
            )
        return BreakerChanged(
            self.name,
            0.0,
            effect.remaining,
            effect.attempt,
            effect.previous,
            effect.state,
        )

    def _served_until(self) -> float:
        """Expiry of the set served now (``-inf`` before the first mint)."""
        state = getattr(self, "_state", None)
        return -math.inf if state is None else state.snapshot.valid_until

    def _unavailable(self, reason: str) -> CredentialsUnavailable:
        return CredentialsUnavailable(source=self.name, reason=reason)

    # -- public ----------------------------------------------------------------------
    @property
    def credentials(self) -> SnapshotCredentials:
        """The credentials object this refresher keeps fresh; every read sees the latest set."""
        if self._forked:
            self._wake_after_fork()  # first use in a forked child
        with self._lock:
            credentials = None if self._credentials_ref is None else self._credentials_ref()
            if credentials is None:
                credentials = self._view_class(
                    self, self._state.snapshot, self._clock, self._method
                )
                self._credentials_ref = weakref.ref(credentials)
            return credentials

    @property
    def policy(self) -> RefreshPolicy:
        """The policy this refresher follows."""
        return self._policy

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._state.closed

    @property
    def breaker(self) -> Breaker:
        """The circuit breaker's current state."""
        return self._state.breaker

    @property
    def mint_count(self) -> int:
        """How many mints have succeeded, the eager first one included."""
        return self._state.mint_count

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
        self._step(_core.on_close)

    def _reopen(self) -> None:
        """Resume background refresh after :meth:`close`, for attach() or wrap() again."""
        wall, mono = self._times()
        self._step(lambda state: _core.on_reopen(state, self._policy, wall=wall, mono=mono))

    def __enter__(self: RuntimeT) -> RuntimeT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self._state
        return (
            f"<{type(self).__name__} source={self.name!r} "
            f"access_key={mask_access_key(state.snapshot.frozen.access_key)!r} "
            f"breaker={state.breaker.state.value} closed={state.closed}>"
        )

    def status(self) -> RefresherStatus:
        """A frozen snapshot of this refresher's state, for health checks and debugging."""
        state = self._state
        wall, mono = self._times()
        due = None if state.closed else self._scheduler.due_at(self)
        snapshot = state.snapshot
        return RefresherStatus(
            source=self.name,
            access_key=mask_access_key(snapshot.frozen.access_key),
            expires_at=utc_datetime(snapshot.valid_until),
            next_refresh_at=None if due is None else utc_datetime(wall + (due - mono)),
            breaker=state.breaker.state,
            failures=state.breaker.failures,
            last_error=state.last_error,
            mint_count=state.mint_count,
            closed=state.closed,
            valid=wall < snapshot.valid_until,
        )

    # -- fork ------------------------------------------------------------------------
    def _reset_in_child(self) -> None:
        """In a forked child: fresh locks, no mint in flight, a re-drawn jitter.

        Runs inside the at-fork handler, so it starts no thread: the published
        snapshot is swapped for a copy whose ``fresh_until`` has passed, and
        the first read in the child takes the slow path, which starts the
        scheduler thread and publishes the real snapshot back.
        """
        self._lock = threading.Lock()
        self._bindings_lock = threading.Lock()
        self._waiters = {}  # threads and loops of the parent: none exist here
        self._mint_threads = {}
        self._outbox = deque()  # the parent's events
        self._outbox_lock = threading.RLock()
        wall, mono = self._times()
        state, effects = _core.after_fork(
            self._state, self._policy, wall=wall, mono=mono, sample=self._sample()
        )
        self._state = state
        for effect in effects:
            if isinstance(effect, _core.LookAt):
                self._scheduler.schedule(self, effect.when, start=False)
        self._forked = True
        credentials = None if self._credentials_ref is None else self._credentials_ref()
        if credentials is not None:
            credentials._snapshot = replace(state.snapshot, fresh_until=-math.inf)

    def _wake_after_fork(self) -> None:
        with self._lock:
            if not self._forked:
                return
            self._forked = False
            self._store(self._state.snapshot)
        self._scheduler.ensure_running()


def _reset_all_in_child() -> None:
    for runtime in list(_runtimes):
        runtime._reset_in_child()


on_fork_in_child(_reset_all_in_child)


def health() -> list[RefresherStatus]:
    """The :meth:`~Refresher.status` of every refresher in the process.

    For a readiness probe: ``all(s.valid for s in botocreds.health())``.
    """
    return sorted((r.status() for r in list(_runtimes)), key=lambda s: s.source)
