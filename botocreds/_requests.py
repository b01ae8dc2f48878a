"""What a request does when the set it holds is not fresh: the slow path.

The hot path (``_credentials``) reads the published snapshot and compares
the clock with its freshness deadline, with no lock. Past that deadline it
lands here, on the refresher: inside the floor the still-valid set is served
and a background mint is started if one may start; past expiry, or after AWS
rejected the set, the request joins or claims one single-flight mint
(``_core.demand``) and waits for it, at most ``wait_timeout``. The waiting
logic is written once, as a generator, and driven by a thread here or by a
coroutine in ``_aiocredentials``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from botocore.credentials import ReadOnlyCredentials

from . import _core
from ._errors import CredentialsUnavailable
from ._events import ReactiveInvalidation, RefreshEvent, RequestPathMint
from ._policy import RefreshPolicy
from ._scheduler import Scheduler, waiting_for_another_mint
from ._snapshot import Snapshot

logger = logging.getLogger("botocreds")

#: Registers a waiter, under the refresher's lock; returns the function that wakes it.
Arm = Callable[[], Callable[[], None]]
#: Decides whether a snapshot, at a wall-clock time, is the one a waiter wants.
Accept = Callable[[Snapshot, float], bool]


def still_valid(snapshot: Snapshot, wall: float) -> bool:
    """Whether ``snapshot`` has not expired at ``wall``."""
    return wall < snapshot.valid_until


class RequestPath:
    """The slow path of a refresher's credentials objects; part of ``RefresherRuntime``."""

    name: str
    _state: _core.RefresherState
    _policy: RefreshPolicy
    _lock: threading.Lock
    _waiters: dict[object, Callable[[], None]]
    _scheduler: Scheduler
    _clock: Callable[[], float]
    _monotonic: Callable[[], float]
    _forked: bool

    if TYPE_CHECKING:
        # Provided by the runtime.
        def _step(
            self,
            transition: Callable[[_core.RefresherState], _core.Step],
            *,
            on_loop: bool = False,
        ) -> _core.RefresherState: ...

        def _commit(
            self, old: _core.RefresherState, new: _core.RefresherState, effects: _core.Effects
        ) -> list[Callable[[], None]]: ...

        def _run(
            self,
            effects: _core.Effects,
            wakes: list[Callable[[], None]],
            *,
            on_loop: bool = False,
        ) -> None: ...

        def _sample(self) -> float: ...

        def _times(self) -> tuple[float, float]: ...

        def _deliver(self, event: RefreshEvent, *, on_loop: bool = False) -> None: ...

        def _unavailable(self, reason: str) -> CredentialsUnavailable: ...

        def _wake_after_fork(self) -> None: ...

    def _serve_valid(self, *, on_loop: bool = False) -> ReadOnlyCredentials | None:
        """The current set if it is still valid, else ``None``; never waits.

        A request whose snapshot is inside the floor lands here: if the
        scheduler is late (a freeze, a clock step, a failing source), a
        background mint is started when one may start, and the still-valid
        set is served.
        """
        if self._forked:
            self._wake_after_fork()
        state = self._state
        snapshot = state.snapshot
        wall = self._clock()
        if wall < snapshot.fresh_until:
            return snapshot.frozen
        if wall >= snapshot.valid_until:
            return None
        # Checked without the lock first: every request inside the floor comes
        # here while the mint it started runs.
        if state.claimed is None and state.abandoned is None and not state.closed:
            mono = self._monotonic()
            if mono >= _core.demand_pace(state, self._policy):
                self._step(
                    lambda s: _core.refresh_early(s, self._policy, wall=wall, mono=mono),
                    on_loop=on_loop,
                )
        return snapshot.frozen

    def _serve_stale(self, snapshot: Snapshot) -> ReadOnlyCredentials:
        """Serve a request whose snapshot is inside the floor or expired (blocking)."""
        frozen = self._serve_valid()
        return frozen if frozen is not None else self._wait_for_fresh()

    def _wait_for_fresh(self) -> ReadOnlyCredentials:
        """Expired: wait (bounded) for one single-flight mint, never sign with the old set."""
        started = time.monotonic()
        succeeded = False
        try:
            snapshot = self._await_mint(still_valid, "the credentials expired")
            succeeded = True
            return snapshot.frozen
        finally:
            self._report_request_path_mint(started, succeeded)

    def _await_mint(self, accept: Accept, situation: str) -> Snapshot:
        """Block this thread until :meth:`_mint_steps` has a snapshot (at most ``wait_timeout``)."""
        woken = threading.Event()

        def arm() -> Callable[[], None]:
            woken.clear()
            return woken.set

        # A mint thread waiting here (a role chain) frees its pool slot meanwhile.
        with waiting_for_another_mint():
            steps = self._mint_steps(accept, situation, arm=arm)
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
        self, accept: Accept, situation: str, *, arm: Arm, on_loop: bool = False
    ) -> Generator[float, None, Snapshot]:
        """Wait, at most ``wait_timeout``, for a snapshot that ``accept`` takes.

        Joins the mint under way or claims one (``_core.demand``); the mint
        itself runs on a mint thread. Raises :class:`CredentialsUnavailable`
        when the breaker refuses, the awaited mint fails, or time runs out.

        This is the waiting logic without the waiting, shared by threads and
        coroutines: whenever it must wait it calls ``arm()`` under the lock (so
        no wake-up is lost) and yields the longest wait; the driver sleeps on
        its own primitive until woken or timed out, then sends ``None``.
        """
        # The wait itself is bounded in real time, whatever clocks are injected.
        deadline = time.monotonic() + self._policy.wait_timeout
        awaited: int | None = None
        while True:
            wall, mono = self._times()
            sample = self._sample()
            token: object | None = None
            timeout = 0.0
            with self._lock:
                old = self._state
                if accept(old.snapshot, wall):
                    return old.snapshot
                new, effects, verdict = _core.demand(
                    old,
                    self._policy,
                    wall=wall,
                    mono=mono,
                    sample=sample,
                    awaited=awaited,
                    situation=situation,
                )
                wakes = self._commit(old, new, effects)
                if isinstance(verdict, _core.Wait):
                    if verdict.mint_id is not None:
                        awaited = verdict.mint_id
                    timeout = deadline - time.monotonic()
                    if verdict.until is not None:
                        timeout = min(timeout, verdict.until - mono)
                    if timeout > 0:
                        token = object()
                        self._waiters[token] = arm()
            self._run(effects, wakes, on_loop=on_loop)
            if isinstance(verdict, _core.GiveUp):
                raise self._unavailable(verdict.reason)
            if token is None:
                if any(isinstance(effect, _core.StartMint) for effect in effects):
                    continue  # the mint just claimed may have finished already: look again
                if verdict.mint_id is None and verdict.until is not None:
                    raise self._unavailable(
                        f"{situation} and a new set may not be minted yet (min_interval)"
                    )
                raise self._unavailable(
                    f"{situation} and no new set arrived within "
                    f"wait_timeout={self._policy.wait_timeout:g}s"
                )
            try:
                yield timeout
            finally:
                self._waiters.pop(token, None)  # no lock: see __init__

    def _invalidate(self, error_code: str, rejected_key: str | None) -> bool:
        """AWS rejected a set although it looked valid: make sure a new one is served.

        ``rejected_key`` is the access key that signed the rejected request. If
        a set with another access key is already published, nothing is
        minted. Otherwise one single-flight mint runs, paced like every
        request-path mint, and the caller waits for it (bounded). Returns
        whether a set with another access key is now served, i.e. whether one
        retry is worth making.
        """
        started = time.monotonic()
        accept = self._replacement_for(rejected_key)
        retried = accept is None
        if accept is not None:
            try:
                self._await_mint(accept, self._rejected_situation(error_code))
                retried = True
            except CredentialsUnavailable as error:
                reason = str(error)
                self._scheduler.delivery.submit(lambda: logger.warning("botocreds: %s", reason))
        self._report_invalidation(error_code, started, retried)
        return retried

    def _replacement_for(self, rejected_key: str | None) -> Accept | None:
        """What a set must be to replace the rejected one; ``None`` if one is already served."""
        current = self._state.snapshot.frozen.access_key
        rejected = current if rejected_key is None else rejected_key
        if current != rejected:
            return None
        return lambda snapshot, wall: (
            snapshot.frozen.access_key != rejected and wall < snapshot.valid_until
        )

    @staticmethod
    def _rejected_situation(error_code: str) -> str:
        return f"AWS rejected the credentials ({error_code})"

    # -- events of the request path ---------------------------------------------
    def _report_request_path_mint(
        self, started: float, succeeded: bool, *, on_loop: bool = False
    ) -> None:
        state = self._state
        event = RequestPathMint(
            self.name,
            time.monotonic() - started,
            _core.remaining(state, self._clock()),
            state.breaker.failures + 1,
            succeeded,
        )
        self._deliver(event, on_loop=on_loop)

    def _report_invalidation(
        self, error_code: str, started: float, retried: bool, *, on_loop: bool = False
    ) -> None:
        state = self._state
        event = ReactiveInvalidation(
            self.name,
            time.monotonic() - started,
            _core.remaining(state, self._clock()),
            state.breaker.failures + 1,
            error_code,
            retried,
        )
        self._deliver(event, on_loop=on_loop)
