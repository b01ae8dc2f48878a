"""One scheduler thread for every refresher in the process, and a small mint pool.

The scheduler keeps a heap of "refresher X wants a look at time T" entries and
sleeps until the earliest. When one is due it calls the refresher's
``_on_due``, which decides (a pure transition) and hands any slow fetch to the
mint pool, so one slow or hung source never delays another. It never runs a
reporter: events go to the delivery thread.

Times are monotonic seconds: a wall-clock step in either direction moves no
deadline. Expiry is wall-clock time, so a refresher converts "refresh at wall
time W" into a monotonic look when it schedules, and the thread notices a
wall-clock step (or a suspend, which the monotonic clock does not count) at
its next wake-up, at most ``max_sleep`` seconds away, and asks every
refresher to look again.

The scheduler holds its refreshers weakly: a refresher lives as long as a
client, session, attachment or user holds it. The thread starts with the first
scheduled refresher and exits when the last one closes or is collected. A
forked child gets fresh locks and an empty pool, and its threads start on
first use, never inside the at-fork handler.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from ._delivery import Delivery
from ._forksafe import on_fork_in_child, renew_after_fork

logger = logging.getLogger("botocreds")

Job = Callable[[], None]
OnError = Callable[[BaseException], None]

#: The longest the scheduler sleeps without re-reading the clocks.
MAX_SLEEP = 60.0
#: The most mints that run at the same time in one process (waiting ones aside).
MAX_MINT_WORKERS = 8
#: A wall-clock step (or a suspend) larger than this makes every refresher look again.
CLOCK_STEP = 1.0


class Schedulable(Protocol):
    """What the scheduler drives: a refresher."""

    def _on_due(self, now: float) -> None: ...


class MintPool:
    """A bounded pool of mint threads that exist only while there is work.

    A worker exits as soon as the queue is empty, so an idle process has no
    mint threads at all. A worker that waits for another refresher's mint (a
    role chain: the child's fetch needs its parent's credentials) gives its
    slot up while it waits, so chained mints can never fill the pool and
    starve the very mint they wait for.
    """

    def __init__(self, max_workers: int = MAX_MINT_WORKERS) -> None:
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._queue: deque[Job] = deque()
        self._workers = 0  # threads counted against max_workers
        self._disowned: set[threading.Thread] = set()  # stuck in a hung job, not counted
        self._names = itertools.count(1)

    def submit(self, job: Job) -> None:
        """Run ``job`` on a mint thread; raises if no thread can be started for it."""
        with self._lock:
            self._queue.append(job)
            if self._workers >= self._max_workers:
                return
            self._workers += 1
        try:
            self._start_worker()
        except BaseException:
            with self._lock:
                self._workers -= 1
                if job in self._queue:
                    self._queue.remove(job)
            raise

    def _start_worker(self) -> None:
        name = f"botocreds-mint-{next(self._names)}"
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def _top_up(self) -> None:
        # One more worker if work waits and a slot is free; a failed start is logged.
        with self._lock:
            if not self._queue or self._workers >= self._max_workers:
                return
            self._workers += 1
        try:
            self._start_worker()
        except BaseException as error:
            with self._lock:
                self._workers -= 1
            if not isinstance(error, Exception):
                raise
            logger.warning("botocreds: could not start a mint thread; queued mints wait")

    @contextlib.contextmanager
    def _waiting(self) -> Iterator[None]:
        # On one of this pool's workers: its slot is free while it waits.
        with self._lock:
            self._workers -= 1
        _worker.pool = None
        self._top_up()
        try:
            yield
        finally:
            with self._lock:
                self._workers += 1  # may briefly exceed the maximum
            _worker.pool = self

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
        self._top_up()

    def _work(self) -> None:
        me = threading.current_thread()
        _worker.pool = self
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

    def _reset_in_child(self) -> None:
        # The workers did not survive the fork; their queued jobs belong to the
        # parent. Refreshers reset their own single-flight state.
        self._lock = threading.Lock()
        self._queue.clear()
        self._workers = 0
        self._disowned.clear()


class _Worker(threading.local):
    pool: MintPool | None = None


#: The pool whose counted worker the current thread is, if any.
_worker = _Worker()


@contextlib.contextmanager
def waiting_for_another_mint() -> Iterator[None]:
    """Around a wait for another refresher's mint: free this mint thread's pool slot.

    A no-op on any thread that is not a counted mint worker (a request thread).
    """
    pool = _worker.pool
    if pool is None:
        yield
        return
    with pool._waiting():
        yield


class Scheduler:
    """Runs refreshers when they are due, on one daemon thread for the whole process.

    ``clock`` returns monotonic seconds, and ``wall`` epoch seconds (used only
    to notice a wall-clock step). ``dispatch`` runs a mint job off the
    scheduler thread (the mint pool by default). With ``autostart=False`` no
    thread is started, events go through ``dispatch`` too, and a test drives the
    scheduler with :meth:`run_pending`, under a fake clock.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        dispatch: Callable[[Job], None] | None = None,
        *,
        autostart: bool = True,
        max_sleep: float = MAX_SLEEP,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self._wall = wall
        self.pool = MintPool()
        self._dispatch = dispatch if dispatch is not None else self.pool.submit
        self._autostart = autostart
        self._max_sleep = max_sleep
        self.delivery = Delivery(via=None if autostart else self._dispatch)
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, weakref.ref[Schedulable]]] = []
        self._due: weakref.WeakKeyDictionary[Schedulable, int] = weakref.WeakKeyDictionary()
        self._sequence = itertools.count()
        self._members: weakref.WeakSet[Schedulable] = weakref.WeakSet()
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._handed_off: deque[tuple[Job, OnError]] = deque()
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
        """Stop the thread now if no refresher is left (some may have been collected)."""
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
    def schedule(self, target: Schedulable, when: float, *, start: bool = True) -> None:
        """Make ``target`` due at monotonic ``when``, replacing any earlier entry for it.

        ``start=False`` (in an at-fork handler) records the entry but starts no
        thread; :meth:`ensure_running` does, on first use.
        """
        with self._lock:
            if target not in self._members:
                return
            sequence = next(self._sequence)
            self._due[target] = sequence
            heapq.heappush(self._heap, (when, sequence, weakref.ref(target)))
            if start:
                self._ensure_thread()
            if self._heap[0][1] == sequence:
                self._wakeup.notify_all()

    def ensure_running(self) -> None:
        """Start the thread if refreshers wait for it (after a fork, or a failed start)."""
        with self._lock:
            if self._heap or self._handed_off:
                self._ensure_thread()

    def cancel(self, target: Schedulable) -> None:
        """Forget ``target``'s pending entry, if any."""
        with self._lock:
            self._due.pop(target, None)

    def due_at(self, target: Schedulable) -> float | None:
        """When (monotonic) ``target`` is next due, or ``None``."""
        with self._lock:
            sequence = self._due.get(target)
            if sequence is None:
                return None
            return next(when for when, seq, _ in self._heap if seq == sequence)

    def dispatch(self, job: Job) -> None:
        """Run a mint job off the scheduler thread; raises if it cannot be started."""
        self._dispatch(job)

    def hand_off(self, job: Job, on_error: OnError) -> None:
        """Like :meth:`dispatch`, but the scheduler thread passes ``job`` to the pool.

        For callers on an event loop: starting a mint thread waits for that
        thread to take the GIL, milliseconds on a busy machine; here the
        caller only queues the job and notifies a condition. If the job cannot
        be started, ``on_error`` is called with the error. Without a running
        scheduler thread the job is dispatched directly.
        """
        with self._lock:
            running = self._autostart and self._thread is not None and self._thread.is_alive()
            if running:
                self._handed_off.append((job, on_error))
                self._wakeup.notify_all()
                return
        try:
            self._dispatch(job)
        except BaseException as error:
            on_error(error)
            if not isinstance(error, Exception):
                raise  # a KeyboardInterrupt on the calling thread is the caller's

    def _pass_on_handed_off(self) -> None:
        # On the scheduler thread, no lock held while dispatching.
        while True:
            with self._lock:
                if not self._handed_off:
                    return
                job, on_error = self._handed_off.popleft()
            try:
                self._dispatch(job)
            except BaseException as error:
                try:
                    on_error(error)
                except Exception:
                    logger.exception("botocreds: a handed-off job could not be failed")

    def disown(self, thread: threading.Thread) -> None:
        """A mint thread is stuck in a hung fetch: free its pool slot for other sources."""
        self.pool.disown(thread)

    def run_pending(self) -> float | None:
        """Run every entry that is due now; return when the next one is due."""
        now = self.clock()
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

    def look_again(self) -> None:
        """Have every refresher look now: the wall clock stepped, or the process slept."""
        now = self.clock()
        for target in self.members():
            try:
                target._on_due(now)
            except Exception:
                logger.exception("botocreds: a refresher failed while due")

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
        # Lock held. A failed start is logged: the entry stays in the heap, and
        # the next schedule() or ensure_running() tries again.
        if not self._autostart or not self._members:
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._generation += 1
        thread = threading.Thread(
            target=self._supervise,
            args=(self._generation,),
            name="botocreds-scheduler",
            daemon=True,
        )
        try:
            thread.start()
        except RuntimeError:
            self._thread = None
            logger.warning("botocreds: could not start the scheduler thread; will retry")
            return
        self._thread = thread

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

    def _offset(self) -> float:
        return self._wall() - self.clock()

    def _loop(self, generation: int) -> None:
        offset = self._offset()
        while True:
            with self._lock:
                if not self._current(generation):
                    return
            self._pass_on_handed_off()
            now_offset = self._offset()
            if abs(now_offset - offset) > CLOCK_STEP:
                self.look_again()
            offset = now_offset
            self.run_pending()
            self._pass_on_handed_off()
            for chore in _housekeeping:
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
                    timeout = min(timeout, head[0] - self.clock())
                if timeout > 0 and not self._handed_off:
                    self._wakeup.wait(timeout)

    @property
    def thread(self) -> threading.Thread | None:
        """The scheduler thread, while one runs."""
        return self._thread

    # -- fork ---------------------------------------------------------------
    def _reset_in_child(self) -> None:
        # No thread here: refreshers re-enter the heap with start=False, and the
        # first use in the child starts the thread.
        self.pool._reset_in_child()
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._thread = None
        self._generation += 1
        self._heap.clear()
        self._due.clear()
        self._handed_off.clear()  # the parent's jobs


_schedulers: weakref.WeakSet[Scheduler] = weakref.WeakSet()
#: Light tasks the scheduler thread runs on every wake-up, outside all locks.
_housekeeping: list[Callable[[], None]] = []


def add_housekeeping(chore: Callable[[], None]) -> None:
    """Run ``chore`` on the scheduler thread at every wake-up (at least once a minute)."""
    _housekeeping.append(chore)


def _reset_all_in_child() -> None:
    for scheduler in list(_schedulers):
        scheduler._reset_in_child()


on_fork_in_child(_reset_all_in_child)

_default: Scheduler | None = None
_default_lock = threading.Lock()
renew_after_fork(sys.modules[__name__], "_default_lock", threading.Lock)


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
