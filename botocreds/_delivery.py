"""Events delivered in order, off every thread that does refresh work.

Reporters and log handlers are user code of any speed. The scheduler thread,
a mint thread folding in its result and an event loop must never run them: a
reporter that blocks for seconds would delay other sources' refreshes, or
stall a loop. Events queue here instead, and one delivery thread hands them
on in the order they were queued, which keeps them in order per refresher.
The thread exists only while there is something to deliver.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from functools import partial

from ._events import RefreshEvent, Reporter, emit
from ._forksafe import on_fork_in_child

logger = logging.getLogger("botocreds")
Job = Callable[[], None]


class Delivery:
    """A FIFO of delivery jobs, run on a thread of its own that stops when idle.

    With ``via`` (a scheduler driven by hand, in tests) there is no thread: a
    job runs at once on the calling thread, or, if the caller is an event
    loop (``off_loop``), is handed to ``via``, the scheduler's own dispatch,
    which the test runs when it runs the mints.
    """

    def __init__(self, *, via: Callable[[Job], None] | None = None) -> None:
        self._via = via
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: deque[Job] = deque()
        self._running = False
        _deliveries.add(self)

    def deliver(
        self, event: RefreshEvent, reporter: Reporter | None, *, off_loop: bool = False
    ) -> None:
        """Log ``event`` and hand it to its reporters, later, on the delivery thread."""
        self.submit(lambda: emit(event, reporter), off_loop=off_loop)

    def submit(self, job: Job, *, off_loop: bool = False) -> None:
        """Queue ``job`` behind everything queued before it."""
        if self._via is not None:
            if off_loop:
                self._via(partial(_run, job))
            else:
                _run(job)
            return
        with self._lock:
            if _exiting:
                return  # the interpreter is finalizing: no thread may write now
            self._queue.append(job)
        self._start_if_idle()

    def flush(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until every queued job has run."""
        self._start_if_idle()
        with self._lock:
            return self._idle.wait_for(lambda: not self._queue and not self._running, timeout)

    def _start_if_idle(self) -> None:
        with self._lock:
            if self._running or not self._queue:
                return
            self._running = True
        try:
            threading.Thread(target=self._work, name="botocreds-events", daemon=True).start()
        except BaseException as error:
            # No thread now (a pids limit): the jobs stay queued, and the next
            # submit() or flush() tries again. A KeyboardInterrupt that landed
            # while the thread started is the caller's, and goes on up.
            with self._lock:
                self._running = False
            if not isinstance(error, Exception):
                raise
            logger.warning("botocreds: could not start the event thread; events are queued")

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue or _exiting:
                    self._running = False
                    self._idle.notify_all()
                    return
                job = self._queue.popleft()
            _run(job)

    def _reset_in_child(self) -> None:
        # The parent's queued events are the parent's: the child delivers none of them.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue.clear()
        self._running = False


def _run(job: Job) -> None:
    try:
        job()
    except Exception:  # emit() already guards reporters; this guards logging itself
        logger.exception("botocreds: delivering an event failed")


#: Every delivery queue alive, reset in a forked child.
_deliveries: weakref.WeakSet[Delivery] = weakref.WeakSet()


def flush_all(timeout: float) -> None:
    """Deliver what is queued, waiting at most ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    for delivery in list(_deliveries):
        delivery.flush(max(0.0, deadline - time.monotonic()))


#: Set at interpreter exit, after the last flush: nothing is delivered after it.
_exiting = False


def _flush_at_exit() -> None:
    # A daemon thread still writing to a stream while the interpreter finalizes
    # can hang or abort the process: deliver what is queued, then stop.
    global _exiting
    flush_all(2.0)
    _exiting = True


atexit.register(_flush_at_exit)


def _reset_all_in_child() -> None:
    for delivery in list(_deliveries):
        delivery._reset_in_child()


on_fork_in_child(_reset_all_in_child)
