"""What both metrics reporters record, and how, whichever library they record through.

The histogram buckets, the breaker-state gauge values, the event types that
count, the ``outcome`` label, and the book of expiries behind the
seconds-to-expiry gauge. Both reporters import it, so it imports neither of
them nor their libraries.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from ._breaker import BreakerState
from ._events import (
    BreakerChanged,
    ReactiveInvalidation,
    RefreshEvent,
    RefreshFailed,
    RefreshSucceeded,
    RequestPathMint,
)
from ._forksafe import renew_after_fork

#: Mint-duration histogram buckets, in seconds: a fast STS call takes tens of
#: milliseconds, a slow credential_process or a retried call several seconds, a
#: hang up to the policy's ``mint_timeout``.
MINT_DURATION_BUCKETS: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

#: The value of the breaker-state gauge for each breaker state.
BREAKER_STATE_VALUES: dict[BreakerState, int] = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
}

#: The event types the metrics reporters record; they ignore any other.
RECORDED_EVENTS = (
    RefreshSucceeded,
    RefreshFailed,
    BreakerChanged,
    RequestPathMint,
    ReactiveInvalidation,
)


def outcome(succeeded: bool) -> str:
    """The ``outcome`` label of a refresh or request-path mint."""
    return "success" if succeeded else "failure"


class ExpiryBook:
    """The last known expiry of each source, for a seconds-to-expiry gauge.

    The gauge is computed when the metrics are read, so it never goes stale
    between events. A success gives the exact expiry; before the first success
    a reporter installed late estimates it from another event's ``remaining``.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock", threading.Lock)
        self._expiry: dict[str, float] = {}

    def note(self, event: RefreshEvent) -> None:
        """Update the book from one event."""
        if isinstance(event, RefreshSucceeded):
            exact = math.inf if event.expires_at is None else event.expires_at.timestamp()
            with self._lock:
                self._expiry[event.source] = exact
        elif event.remaining is not None:  # None: nothing served yet, wait for a success
            estimate = self._clock() + event.remaining
            with self._lock:
                self._expiry.setdefault(event.source, estimate)

    def seconds_left(self) -> list[tuple[str, float]]:
        """(source, seconds until expiry) now, sorted; sources that never expire are left out."""
        with self._lock:
            expiries = sorted(self._expiry.items())
        now = self._clock()
        return [(source, when - now) for source, when in expiries if math.isfinite(when)]
