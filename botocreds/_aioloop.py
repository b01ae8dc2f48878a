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
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._snapshot import Snapshot, snapshot_from_mapping

T = TypeVar("T")
Clock = Callable[[], float]


class _LoopThread:
    """A daemon thread running one event loop forever, started on first use."""

    def __init__(self) -> None:
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

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()


_runner = _LoopThread()
# A forked child has no copy of the loop's thread. Its loop object is kept
# referenced, unclosed: closing it would fail (it still looks running), and
# collecting it would warn about an unclosed loop.
_inherited: list[_LoopThread] = []


def _new_runner_in_child() -> None:
    global _runner
    _inherited.append(_runner)
    _runner = _LoopThread()


os.register_at_fork(after_in_child=_new_runner_in_child)


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
    loop = _runner.loop()
    if threading.current_thread() is _runner.thread:
        raise RuntimeError(
            "botocreds cannot wait for a fetch from inside its own event loop "
            "(a credential fetcher that creates a botocreds refresher?)"
        )
    future = asyncio.run_coroutine_threadsafe(_call(function), loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"the async fetch did not finish within {timeout:g}s") from None


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
