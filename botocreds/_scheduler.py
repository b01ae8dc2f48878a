"""One scheduler thread for every refresher in the process, and a small mint pool.

The scheduler keeps a heap of "refresher X is due at time T" entries and sleeps
until the earliest. When one is due it calls the refresher's ``_on_due``, which
decides (breaker, backoff) and hands the slow fetch to the mint pool, so one
slow or hung source never delays another.

Times are wall-clock epoch seconds, because credential expiry is wall-clock
time. The thread re-reads the clock at least every ``max_sleep`` seconds, so a
suspended process (a Lambda freeze, a laptop sleep) or a clock jump never
leaves it asleep past a refresh.

The scheduler holds its refreshers weakly: a refresher lives as long as a
client, session, attachment or user holds it, and one that nobody can reach any
more simply drops out. The thread starts with the first scheduled refresher
and exits when the last one closes or is collected. After ``fork()`` the child
gets fresh locks, an empty pool and a new thread on first need; the parent is
unaffected.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger("botocreds")

Job = Callable[[], None]

#: The longest the scheduler sleeps without re-reading the wall clock.
MAX_SLEEP = 60.0
#: The most mints that run at the same time in one process.
MAX_MINT_WORKERS = 8


class Schedulable(Protocol):
    """What the scheduler drives: a refresher."""

    def _on_due(self, now: float) -> None: ...

    def _after_fork_in_child(self) -> None: ...


class MintPool:
    """A bounded pool of mint threads that exist only while there is work.

    A worker exits as soon as the queue is empty, so an idle process has no
    mint threads at all, and the thread count returns to its baseline after
    every burst of mints.
    """

    def __init__(self, max_workers: int = MAX_MINT_WORKERS) -> None:
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._queue: deque[Job] = deque()
        self._workers = 0  # threads counted against max_workers
        self._disowned: set[threading.Thread] = set()  # stuck in a hung job, not counted
        self._names = itertools.count(1)

    def submit(self, job: Job) -> None:
        """Run ``job`` on a mint thread, starting one if fewer than the maximum run."""
        with self._lock:
            self._queue.append(job)
            if self._workers >= self._max_workers:
                return
            self._workers += 1
            name = f"botocreds-mint-{next(self._names)}"
        try:
            threading.Thread(target=self._work, name=name, daemon=True).start()
        except BaseException:
            with self._lock:
                self._workers -= 1
                if job in self._queue:
                    self._queue.remove(job)
            raise

    def disown(self, thread: threading.Thread) -> None:
        """Stop counting ``thread``, stuck in a hung job, against the maximum.

        Its slot goes to a new worker if work is waiting; the stuck thread
        exits as soon as its job returns.
        """
        with self._lock:
            if thread in self._disowned or not thread.is_alive():
                return
            self._disowned.add(thread)
            self._workers -= 1
            if not self._queue or self._workers >= self._max_workers:
                return
            self._workers += 1
            name = f"botocreds-mint-{next(self._names)}"
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                if me in self._disowned:
                    self._disowned.discard(me)
                    return
                if not self._queue:
                    self._workers -= 1
                    return
                job = self._queue.popleft()
            try:
                job()
            except BaseException:  # a job records its own failures; this is a backstop
                logger.exception("botocreds: a mint job raised")

    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()

    def _after_fork_in_child(self) -> None:
        # The workers did not survive the fork; their queued jobs belong to the
        # parent. Refreshers reset their own single-flight state.
        self._lock = threading.Lock()
        self._queue.clear()
        self._workers = 0
        self._disowned.clear()


class Scheduler:
    """Runs refreshers when they are due, on one daemon thread for the whole process.

    ``clock`` returns wall-clock epoch seconds. ``dispatch`` runs a mint job off
    the scheduler thread (the mint pool by default). With ``autostart=False``
    no thread is started and a test drives the scheduler with
    :meth:`run_pending`, under a fake clock.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        dispatch: Callable[[Job], None] | None = None,
        *,
        autostart: bool = True,
        max_sleep: float = MAX_SLEEP,
    ) -> None:
        self._clock = clock
        self._pool = MintPool()
        self._dispatch = dispatch if dispatch is not None else self._pool.submit
        self._autostart = autostart
        self._max_sleep = max_sleep
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, weakref.ref[Schedulable]]] = []
        self._due: weakref.WeakKeyDictionary[Schedulable, int] = weakref.WeakKeyDictionary()
        self._sequence = itertools.count()
        self._members: weakref.WeakSet[Schedulable] = weakref.WeakSet()
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._handed_off: deque[Job] = deque()  # jobs the thread passes on to the pool
        _schedulers.add(self)

    # -- membership -------------------------------------------------------
    def register(self, target: Schedulable) -> None:
        """Add an open refresher. The thread starts on its first :meth:`schedule`."""
        with self._lock:
            self._members.add(target)

    def unregister(self, target: Schedulable) -> None:
        """Remove a refresher; when none is left, the thread exits promptly."""
        with self._lock:
            self._members.discard(target)
            self._due.pop(target, None)
            self._stop_if_idle()

    def prune(self) -> None:
        """Stop the thread now if no refresher is left (some may have been collected).

        Without this, a thread whose last refresher was garbage-collected exits
        at its next wake-up, within ``max_sleep``.
        """
        with self._lock:
            self._stop_if_idle()

    def _stop_if_idle(self) -> None:
        # Lock held.
        if not self._members:
            self._heap.clear()
            self._generation += 1  # tells a running thread to exit
            self._thread = None
            self._wakeup.notify_all()

    def members(self) -> list[Schedulable]:
        """The refreshers currently registered."""
        with self._lock:
            return list(self._members)

    # -- scheduling -------------------------------------------------------
    def schedule(self, target: Schedulable, when: float) -> None:
        """Make ``target`` due at ``when``, replacing any earlier entry for it."""
        with self._lock:
            if target not in self._members:
                return
            sequence = next(self._sequence)
            self._due[target] = sequence
            heapq.heappush(self._heap, (when, sequence, weakref.ref(target)))
            self._ensure_thread()
            if self._heap[0][1] == sequence:
                self._wakeup.notify_all()

    def cancel(self, target: Schedulable) -> None:
        """Forget ``target``'s pending entry, if any."""
        with self._lock:
            self._due.pop(target, None)

    def due_at(self, target: Schedulable) -> float | None:
        """When ``target`` is next due, or ``None``."""
        with self._lock:
            sequence = self._due.get(target)
            if sequence is None:
                return None
            return next(when for when, seq, _ in self._heap if seq == sequence)

    def dispatch(self, job: Job) -> None:
        """Run a mint job off the scheduler thread."""
        self._dispatch(job)

    def hand_off(self, job: Job) -> None:
        """Like :meth:`dispatch`, but the scheduler thread passes ``job`` to the pool.

        For callers on an event loop. Starting a mint thread waits for that
        thread to take the GIL, milliseconds on a busy machine; here the caller
        only queues the job and notifies a condition. Without a running
        scheduler thread (no open refresher, or a test driving the scheduler by
        hand) the job is dispatched directly.
        """
        with self._lock:
            running = self._autostart and self._thread is not None and self._thread.is_alive()
            if running:
                self._handed_off.append(job)
                self._wakeup.notify_all()
                return
        self._dispatch(job)

    def _pass_on_handed_off(self) -> None:
        # On the scheduler thread, no lock held while dispatching.
        while True:
            with self._lock:
                if not self._handed_off:
                    return
                job = self._handed_off.popleft()
            try:
                self._dispatch(job)
            except Exception:
                logger.exception("botocreds: a handed-off job could not be dispatched")

    def disown(self, thread: threading.Thread) -> None:
        """A mint thread is stuck in a hung fetch: free its pool slot for other sources."""
        self._pool.disown(thread)

    def run_pending(self) -> float | None:
        """Run every entry that is due now; return when the next one is due."""
        now = self._clock()
        ready: list[Schedulable] = []
        with self._lock:
            while True:
                head = self._head()
                if head is None or head[0] > now:
                    break
                heapq.heappop(self._heap)
                target = head[2]()
                if target is not None:
                    del self._due[target]
                    ready.append(target)
            head = self._head()
        for target in ready:
            try:
                target._on_due(now)
            except Exception:
                logger.exception("botocreds: a refresher failed while due")
        return None if head is None else head[0]

    def _head(self) -> tuple[float, int, weakref.ref[Schedulable]] | None:
        # Lock held. Skips entries replaced by a later schedule(), cancelled, or
        # whose refresher has been collected.
        while self._heap:
            entry = self._heap[0]
            target = entry[2]()
            if target is not None and self._due.get(target) == entry[1]:
                return entry
            heapq.heappop(self._heap)
        return None

    # -- the thread -------------------------------------------------------
    def _ensure_thread(self) -> None:
        # Lock held.
        if not self._autostart or not self._members:
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._generation += 1
        self._thread = threading.Thread(
            target=self._supervise,
            args=(self._generation,),
            name="botocreds-scheduler",
            daemon=True,
        )
        self._thread.start()

    def _current(self, generation: int) -> bool:
        return generation == self._generation

    def _supervise(self, generation: int) -> None:
        # If the loop dies from a bug, log it once with its traceback and go on:
        # a refresher must never be silently left without a thread.
        while True:
            try:
                self._loop(generation)
                self._pass_on_handed_off()  # whatever was queued while it stopped
                return
            except Exception:
                logger.exception("botocreds: the scheduler thread failed; restarting it")
                with self._lock:
                    if not self._current(generation):
                        return
                    self._wakeup.wait(1.0)

    def _loop(self, generation: int) -> None:
        while True:
            with self._lock:
                if not self._current(generation):
                    return
            self._pass_on_handed_off()
            self.run_pending()
            self._pass_on_handed_off()
            for chore in list(_housekeeping):
                try:
                    chore()
                except Exception:
                    logger.exception("botocreds: a housekeeping task failed")
            with self._lock:
                if not self._current(generation):
                    return
                if not self._members:  # the last refresher was garbage-collected
                    self._generation += 1
                    self._thread = None
                    return
                head = self._head()
                # Computed under the lock, so a schedule() or hand_off() that
                # lands after run_pending() is seen here rather than missed.
                timeout = self._max_sleep
                if head is not None:
                    timeout = min(timeout, head[0] - self._clock())
                if timeout > 0 and not self._handed_off:
                    self._wakeup.wait(timeout)

    @property
    def thread(self) -> threading.Thread | None:
        """The scheduler thread, while one runs."""
        return self._thread

    # -- fork ---------------------------------------------------------------
    def _before_fork(self) -> None:
        self._lock.acquire()
        self._pool._before_fork()

    def _after_fork_in_parent(self) -> None:
        self._pool._after_fork_in_parent()
        self._lock.release()

    def _after_fork_in_child(self) -> None:
        self._pool._after_fork_in_child()
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._thread = None
        self._generation += 1
        self._heap.clear()
        self._due.clear()
        self._handed_off.clear()  # the parent's jobs
        for member in list(self._members):
            try:
                member._after_fork_in_child()
            except Exception:
                logger.exception("botocreds: a refresher failed to reset after fork")


_schedulers: weakref.WeakSet[Scheduler] = weakref.WeakSet()
#: Light tasks the scheduler thread runs on every wake-up, outside all locks.
_housekeeping: list[Callable[[], None]] = []
#: The schedulers whose locks the forking thread holds (only those are released).
_held_for_fork: list[Scheduler] = []


def add_housekeeping(chore: Callable[[], None]) -> None:
    """Run ``chore`` on the scheduler thread at every wake-up (at least once a minute)."""
    _housekeeping.append(chore)


def _before_fork() -> None:
    _held_for_fork[:] = list(_schedulers)
    for scheduler in _held_for_fork:
        scheduler._before_fork()


def _after_fork_in_parent() -> None:
    for scheduler in _held_for_fork:
        scheduler._after_fork_in_parent()
    _held_for_fork.clear()


def _after_fork_in_child() -> None:
    _held_for_fork.clear()
    for scheduler in list(_schedulers):
        scheduler._after_fork_in_child()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)

_default: Scheduler | None = None
_default_lock = threading.Lock()


def default_scheduler() -> Scheduler:
    """The process-wide scheduler that every refresher shares unless told otherwise."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Scheduler()
        return _default


def all_schedulers() -> list[Scheduler]:
    """Every scheduler alive in the process (normally just the default one)."""
    return list(_schedulers)
