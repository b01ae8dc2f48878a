"""One build per key: the first caller builds, concurrent callers wait and share it.

The registry of refreshers and the resolution of sessions both need the same
thing: when twenty threads ask at once for the refresher of one source (or the
credentials of one profile), one of them does the slow part (a first fetch, a
resolution of botocore's chain) and the others wait for its result rather
than each repeating it. This is cachetools' ``Condition``-based single-flight:
the builder runs with no lock held; the waiters sleep on the condition.

If the builder fails, its error is its own: the next waiter becomes the
builder and tries for itself, so one caller's failure (a bad argument, an
interrupt) never becomes another's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from ._forksafe import on_fork_in_child, renew_after_fork

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """At most one build in flight per key, in this process."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._building: set[K] = set()
        # A forked child has none of the parent's builders: nothing to wait for.
        renew_after_fork(self, "_condition", lambda: threading.Condition(threading.Lock()))
        on_fork_in_child(self._building.clear)

    def run(
        self,
        key: K,
        find: Callable[[], V | None],
        build: Callable[[], V],
    ) -> V:
        """``find()``'s answer if it has one, else ``build()``'s, built once for all callers.

        ``find`` runs under this object's lock, so it must be quick and must not
        call back here; ``build`` runs with no lock held and should make its
        result findable (register it) before returning, so that the callers
        waiting for it find it when they wake.
        """
        with self._condition:
            while True:
                found = find()
                if found is not None:
                    return found
                if key not in self._building:
                    self._building.add(key)
                    break
                self._condition.wait()
        try:
            return build()
        finally:
            with self._condition:
                self._building.discard(key)
                self._condition.notify_all()

    def building(self, key: K) -> bool:
        """Whether a build of ``key`` is in flight (for tests and diagnostics)."""
        with self._condition:
            return key in self._building
