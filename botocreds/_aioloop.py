"""botocreds' own event loop, on one background thread, for aiobotocore's fetchers.

aiobotocore's credential fetchers (STS, IMDS, container, process, SSO) are
coroutines. They run here, never on a loop that serves requests: a mint thread
hands the coroutine to this loop and waits for its result, so a slow or hung
fetch costs the application's loops nothing.

One loop serves every async source; some fetchers keep loop-bound objects
(aiohttp sessions, locks) between calls, so they must always meet the same
loop. Its thread, ``botocreds-aio``, runs only while it is needed: while some
async refresher holds a :func:`retain`, or a :func:`run_on_loop` call is in
flight. When neither is left the thread stops and returns; the loop is kept,
unclosed, and the next call runs it again on a new thread. A forked child gets
a loop and thread of its own on first need.

Users of the loop::

    retain()    # an async refresher opens (or reopens): keep the thread
    ...         # its mints call run_on_loop()
    release()   # it closes or is collected: the thread may stop
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._forksafe import on_fork_in_child
from ._scheduler import waiting_for_another_mint
from ._snapshot import Snapshot, snapshot_from_mapping

T = TypeVar("T")
Clock = Callable[[], float]
logger = logging.getLogger("botocreds")

#: How long a cancelled fetch may take to stop before its loop counts as stuck.
CANCEL_GRACE = 5.0


class FetchInterrupted(RuntimeError):
    """An async fetch raised ``KeyboardInterrupt`` or ``SystemExit`` on botocreds' loop.

    asyncio lets those two out of the loop, which would stop it for every
    source; here they are one failed fetch of the source that raised them. The
    message names the exception's type only: its arguments are the fetcher's.
    """


class _OnLoopThread(threading.local):
    serving = False


# Set on every thread that runs one of botocreds' loops, including an abandoned
# (stuck) one: a fetch there that waits for another fetch would wait forever.
_on_loop_thread = _OnLoopThread()


class _LoopThread:
    """One event loop and the thread that runs it while it has users or calls in flight."""

    def __init__(self, users: int = 0) -> None:
        self.pid = os.getpid()
        # Serialises starting a thread, so at most one runs the loop at a time.
        # Held across Thread.start(); never taken by retain() or release().
        self._start_lock = threading.Lock()
        # Guards the fields below, and is held only to read or write them: no
        # call out, no wait, no allocation that runs user code. So a thread
        # that blocks on it waits for a few bytecodes, never for a thread that
        # is itself waiting on a botocreds lock. Re-entrant because release()
        # may run in a finalizer that fires on a thread already inside one of
        # these sections.
        self._counts = threading.RLock()
        self._users = users
        # Calls in flight per loop: the current one and any abandoned as stuck.
        self._in_flight: dict[asyncio.AbstractEventLoop, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def thread(self) -> threading.Thread | None:
        """The thread running the current loop, if one is."""
        return self._thread

    @property
    def users(self) -> int:
        """How many :meth:`retain` calls are not yet released."""
        return self._users

    def retain(self) -> None:
        """Keep the loop's thread running until a matching :meth:`release`."""
        with self._counts:
            self._users += 1

    def release(self) -> None:
        """Give back one :meth:`retain`; the thread stops once idle.

        Safe in a finalizer, on any thread, under any botocreds lock: it takes
        only the counter lock, and asks the loop to stop without waiting.
        Releases beyond the retains are ignored (a finalizer must not raise).
        """
        with self._counts:
            self._users = max(0, self._users - 1)
            loop = self._loop if self._idle() else None
        if loop is not None:
            _request_stop(loop)

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, its thread started if none runs it, for introspection and tests.

        Nothing is counted: a thread started here runs until a call ends or a
        release comes with the loop idle.
        """
        return self._ensure_running(enter=False)

    def enter(self) -> asyncio.AbstractEventLoop:
        """The running loop, with one more call counted in flight on it until :meth:`leave`."""
        return self._ensure_running(enter=True)

    def leave(self, loop: asyncio.AbstractEventLoop) -> None:
        """One call on ``loop`` is done; its thread stops once idle."""
        with self._counts:
            left = self._in_flight.get(loop, 0) - 1
            if left > 0:
                self._in_flight[loop] = left
            else:
                self._in_flight.pop(loop, None)
            # An abandoned loop stops once its own calls are done; the current
            # one only once its users are gone too.
            stop = left <= 0 and (loop is not self._loop or self._idle())
        if stop:
            _request_stop(loop)

    def replace_stuck(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a new loop next time: ``loop`` is stuck in a fetch that blocks its thread.

        The stuck thread is left to finish the calls in flight on ``loop``
        and then returns.
        """
        with self._counts:
            if self._loop is loop:
                _abandoned.append(loop)
                self._loop = None
                self._thread = None

    def _idle(self) -> bool:
        # Called with self._counts held.
        return (
            self._thread is not None
            and self._users == 0
            and self._loop is not None
            and not self._in_flight.get(self._loop, 0)
        )

    def _ensure_running(self, *, enter: bool) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            with self._counts:
                loop = self._loop
                if loop is not None and self._thread is not None:
                    # Counted under the same lock the thread checks before it
                    # returns: it sees this call, and keeps serving.
                    if enter:
                        self._in_flight[loop] = self._in_flight.get(loop, 0) + 1
                    return loop
            if loop is None:
                loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=self._serve, args=(loop,), name="botocreds-aio", daemon=True
            )
            with self._counts:
                # No thread runs the loop: a returning one decided so under this
                # lock, after its run_forever() had returned.
                self._loop, self._thread = loop, thread
                if enter:
                    self._in_flight[loop] = self._in_flight.get(loop, 0) + 1
            try:
                thread.start()
            except BaseException:
                # e.g. "can't start new thread": nothing was handed to the loop
                # yet, so it is still clean for the next attempt.
                with self._counts:
                    if self._thread is thread:
                        self._thread = None
                    if enter:
                        left = self._in_flight.get(loop, 0) - 1
                        if left > 0:
                            self._in_flight[loop] = left
                        else:
                            self._in_flight.pop(loop, None)
                raise
            return loop

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        me = threading.current_thread()
        _on_loop_thread.serving = True
        asyncio.set_event_loop(loop)
        try:
            while True:
                try:
                    loop.run_forever()
                except BaseException as error:  # one callback must not end every source's loop
                    if loop.is_closed() or loop.is_running():
                        return  # run_forever() itself refused: trying again would spin
                    logger.error(
                        "botocreds: %s escaped its event loop; the loop keeps serving",
                        type(error).__name__,
                    )
                with self._counts:
                    if self._in_flight.get(loop, 0):
                        continue  # a call came in as the loop stopped: serve it
                    if self._thread is me:
                        if self._users:
                            continue  # a stale stop, or an escaped exception
                        self._thread = None
                    return
        finally:
            with self._counts:
                if self._thread is me:
                    self._thread = None
            asyncio.set_event_loop(None)


def _request_stop(loop: asyncio.AbstractEventLoop) -> None:
    """Ask ``loop`` to stop once it runs its next callbacks; never waits.

    call_soon_threadsafe() appends to a deque and writes a byte to a
    non-blocking socket: no lock another thread can hold. The loop's thread
    checks again, under the counter lock, whether it is idle before returning,
    so a stop that comes late only costs one turn of run_forever().
    """
    with contextlib.suppress(RuntimeError):  # closed: nothing runs it
        loop.call_soon_threadsafe(loop.stop)


_runner = _LoopThread()
# Loops that can no longer be used: a parent's, in a forked child (which has no
# copy of its thread), or one stuck in a blocking fetch. They stay referenced
# and unclosed: closing a loop that still looks running fails, and collecting
# it would warn about an unclosed loop.
_inherited: list[_LoopThread] = []
_abandoned: list[asyncio.AbstractEventLoop] = []


def _current_runner() -> _LoopThread:
    """This process's loop thread: a forked child makes its own on first need."""
    runner = _runner
    if runner.pid != os.getpid():
        # Also checked here, not only in the fork handler: another fork handler
        # registered earlier may start a mint before that one has run.
        _reset_after_fork()
        runner = _runner
    return runner


def _reset_after_fork() -> None:
    """In a forked child, give this process a loop runner of its own; starts no thread.

    The child has no copy of the parent's thread, and the parent's loop shares
    its selector with the parent, so the child builds a new one on first use.
    The count of :func:`retain` calls carries over: the refreshers that made
    them were copied into the child and release there. Does nothing in the
    process that made the current runner, so calling it twice is harmless.
    """
    global _runner
    old = _runner
    if old.pid == os.getpid():
        return
    # Read without old._counts: a parent thread may have held it at the fork,
    # and no thread in the child will ever let it go.
    _runner = _LoopThread(users=old._users)
    _inherited.append(old)


on_fork_in_child(_reset_after_fork)


def retain() -> None:
    """Keep botocreds' loop thread running: an async refresher is open.

    Call once when an async refresher opens or reopens, and :func:`release`
    once when it closes or is collected. Starts no thread: the first
    :func:`run_on_loop` does.
    """
    _current_runner().retain()


def release() -> None:
    """Give back one :func:`retain`: once no retain is left and no call is in
    flight, the loop's thread stops (the loop itself is kept for the next use).

    Safe in a weakref finalizer, on any thread, under any botocreds lock.
    """
    _current_runner().release()


async def _call(function: Callable[[], Any]) -> Any:
    # aiobotocore's fetch functions are mostly coroutine functions, but some
    # (the environment provider's) are plain; they run on the loop either way.
    try:
        result = function()
        if inspect.isawaitable(result):
            result = await result
        return result
    except (KeyboardInterrupt, SystemExit) as error:
        # asyncio would re-raise these out of run_forever(), stopping the loop
        # every source shares. Raised outside the handler, so the new error
        # carries no reference to the old one (or to its arguments).
        kind = type(error).__name__
    raise FetchInterrupted(f"the async credential fetch raised {kind}")


def run_on_loop(function: Callable[[], Any], timeout: float) -> Any:
    """Call ``function`` on botocreds' loop, await its result there, and return it.

    Blocks the calling thread, at most ``timeout`` seconds; on time-out the
    coroutine is cancelled and ``TimeoutError`` raised. A fetch that raises
    ``KeyboardInterrupt`` or ``SystemExit`` raises :class:`FetchInterrupted`
    here. If the loop's thread cannot start, that error is raised at once.
    """
    if _on_loop_thread.serving:
        raise RuntimeError(
            "botocreds cannot wait for a fetch from inside its own event loop "
            "(a credential fetcher that creates a botocreds refresher?)"
        )
    runner = _current_runner()
    loop = runner.enter()
    future: concurrent.futures.Future[Any] | None = None
    try:
        future = asyncio.run_coroutine_threadsafe(_call(function), loop)
        done, _ = concurrent.futures.wait([future], timeout)
        if done:
            return future.result()  # the fetch's own answer or error, TimeoutError included
        future.cancel()
        # A coroutine that blocks its thread (a blocking call inside an async
        # fetcher) cannot be cancelled: it holds the loop every async source
        # shares, so the next fetch gets a new one.
        stopped, _ = concurrent.futures.wait([future], CANCEL_GRACE)
        if not stopped:
            logger.warning(
                "botocreds: an async credential fetch blocked its event loop for over %gs; "
                "later fetches run on a new loop",
                timeout + CANCEL_GRACE,
            )
            runner.replace_stuck(loop)
        raise TimeoutError(f"the async fetch did not finish within {timeout:g}s")
    finally:
        if future is not None and not future.done():
            # The caller was interrupted (KeyboardInterrupt in the main thread):
            # nobody waits for the fetch any more.
            future.cancel()
        runner.leave(loop)


class AioFetchSource:
    """Mints by running an aiobotocore fetch function on botocreds' event loop."""

    renews_static = False

    def __init__(
        self,
        fetch: Callable[[], Any],
        name: str,
        identity: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self._fetch = fetch
        self.name = name
        self.identity = identity
        self._timeout = timeout

    def mint(self, clock: Clock, floor: float) -> Snapshot:
        """Fetch on the loop (the calling mint thread waits) and check the answer."""
        # The fetch may await another refresher's mint (a role chain): this
        # thread only waits, so its pool slot is free meanwhile.
        with waiting_for_another_mint():
            data: Mapping[str, Any] = run_on_loop(self._fetch, self._timeout)
        return snapshot_from_mapping(data, now=clock(), floor=floor)
