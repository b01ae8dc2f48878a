"""botocreds' own event loop, on one background thread, for aiobotocore's fetchers.

aiobotocore's credential fetchers (STS, IMDS, container, process, SSO) are
coroutines. They run here, never on a loop that serves requests: a mint thread
hands the coroutine to this loop and waits for its result, so a slow or hung
fetch costs the application's loops nothing.

One loop serves every async source, for the life of the process; some
fetchers keep loop-bound objects (aiohttp sessions, locks) between calls, so
they must always meet the same loop. The thread starts with the first async
source. A forked child starts its own on first need.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._snapshot import Snapshot, snapshot_from_mapping

T = TypeVar("T")
Clock = Callable[[], float]
logger = logging.getLogger("botocreds")


class _LoopThread:
    """A daemon thread running one event loop forever, started on first use."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, starting its thread if needed."""
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name="botocreds-aio", daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread, if it has started."""
        return self._thread

    def replace_stuck(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a new loop next time: ``loop`` is stuck in a fetch that blocks its thread."""
        with self._lock:
            if self._loop is loop:
                _abandoned.append(loop)
                self._loop = None

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()


_runner = _LoopThread()
# Loops that can no longer be used: a parent's, in a forked child (which has no
# copy of its thread), or one stuck in a blocking fetch. They stay referenced
# and unclosed: closing a loop that still looks running fails, and collecting
# it would warn about an unclosed loop.
_inherited: list[_LoopThread] = []
_abandoned: list[asyncio.AbstractEventLoop] = []
#: How long a cancelled fetch may take to stop before its loop counts as stuck.
CANCEL_GRACE = 5.0


def _current_runner() -> _LoopThread:
    """This process's loop thread: a forked child makes its own on first need."""
    global _runner
    runner = _runner
    if runner.pid != os.getpid():
        # Also checked here, not only in the fork handler: another fork handler
        # registered earlier may start a mint before that one has run.
        runner = _LoopThread()
        _inherited.append(_runner)
        _runner = runner
    return runner


os.register_at_fork(after_in_child=_current_runner)


async def _call(function: Callable[[], Any]) -> Any:
    # aiobotocore's fetch functions are mostly coroutine functions, but some
    # (the environment provider's) are plain; they run on the loop either way.
    result = function()
    if inspect.isawaitable(result):
        result = await result
    return result


def run_on_loop(function: Callable[[], Any], timeout: float) -> Any:
    """Call ``function`` on botocreds' loop, await its result there, and return it.

    Blocks the calling thread, at most ``timeout`` seconds; on time-out the
    coroutine is cancelled and ``TimeoutError`` raised.
    """
    runner = _current_runner()
    loop = runner.loop()
    if threading.current_thread() is runner.thread:
        raise RuntimeError(
            "botocreds cannot wait for a fetch from inside its own event loop "
            "(a credential fetcher that creates a botocreds refresher?)"
        )
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
        data: Mapping[str, Any] = run_on_loop(self._fetch, self._timeout)
        return snapshot_from_mapping(data, now=clock(), floor=floor)
