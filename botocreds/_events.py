"""What a refresher reports: typed, frozen events and the reporters that receive them.

The refresh policy never depends on telemetry. A refresher builds an event for
each outcome and hands it to its reporters after every lock is released; a
reporter that raises is logged and ignored. Every event is also logged under
the ``botocreds`` logger, with its fields as ``extra``.

No event carries a secret: access keys appear masked to their last 4
characters, errors as a type and a one-line message.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Protocol, runtime_checkable

from ._breaker import BreakerState
from ._forksafe import renew_after_fork

logger = logging.getLogger("botocreds")


@dataclass(frozen=True)
class RefreshEvent:
    """Fields every event carries.

    ``source`` names the credential source; ``duration`` is how long the
    reported operation took, in seconds; ``remaining`` is the lifetime left,
    in seconds, of the credentials served *after* the event (``None`` if they
    never expire, or if nothing is served yet because the first mint failed);
    ``attempt`` counts consecutive mint attempts, 1 for the first try after a
    success.
    """

    source: str
    duration: float
    remaining: float | None
    attempt: int


@dataclass(frozen=True)
class RefreshSucceeded(RefreshEvent):
    """A mint published a new set. ``access_key`` is masked; ``expires_at`` is UTC."""

    access_key: str
    expires_at: datetime | None


@dataclass(frozen=True)
class RefreshFailed(RefreshEvent):
    """A mint failed (an error, a bad answer, or a hang past ``mint_timeout``).

    The credentials served before it stay in service while they are valid.
    """

    error: str


@dataclass(frozen=True)
class BreakerChanged(RefreshEvent):
    """The circuit breaker moved between closed, open and half-open."""

    previous: BreakerState
    state: BreakerState


@dataclass(frozen=True)
class RequestPathMint(RefreshEvent):
    """A request found its credentials expired and waited for a mint.

    ``succeeded`` says whether it then got valid credentials; ``duration`` is
    how long it waited.
    """

    succeeded: bool


@dataclass(frozen=True)
class ReactiveInvalidation(RefreshEvent):
    """AWS rejected credentials that looked valid (``error_code``), so botocreds
    replaced them; ``retried`` says whether the request was retried."""

    error_code: str
    retried: bool


@dataclass(frozen=True)
class SharedCacheFailed(RefreshEvent):
    """The shared cache tier (``cache``, e.g. a Redis URL without credentials) could
    not be used (``error``), or held a forged entry (``error`` starts "a forged
    entry", and says what was impossible about it, never its contents); the
    source was called directly instead."""

    cache: str
    error: str


@runtime_checkable
class Reporter(Protocol):
    """Anything that can receive events: a function or an object with ``__call__``.

    It is called on botocreds' event-delivery thread (``botocreds-events``),
    never on a request thread, a mint thread, the scheduler thread or an
    event loop, with no botocreds lock held, and in order for each refresher.
    A slow reporter delays later events, never a refresh; if it raises, the
    error is logged and ignored.
    """

    def __call__(self, event: RefreshEvent, /) -> None: ...


_process_reporters: tuple[Reporter, ...] = ()
_process_lock = threading.Lock()
renew_after_fork(sys.modules[__name__], "_process_lock", threading.Lock)


def set_reporters(reporters: Iterable[Reporter] | None) -> None:
    """Set the reporters that receive the events of every refresher in the process.

    They are called in addition to any ``reporter=`` given to a refresher.
    ``None`` or an empty list removes them.
    """
    chosen = tuple(reporters or ())
    for reporter in chosen:
        if not callable(reporter):
            raise TypeError(f"a reporter must be callable, got {type(reporter).__name__}")
    global _process_reporters
    with _process_lock:
        _process_reporters = chosen


def get_reporters() -> tuple[Reporter, ...]:
    """The process-wide reporters set with :func:`set_reporters`."""
    return _process_reporters


def check_reporter(reporter: object) -> Reporter | None:
    """Validate a ``reporter=`` argument: ``None`` or a callable."""
    if reporter is not None and not callable(reporter):
        raise TypeError(f"reporter must be callable, got {type(reporter).__name__}")
    return reporter


_LEVELS: dict[type[RefreshEvent], int] = {
    RefreshSucceeded: logging.INFO,
    RefreshFailed: logging.WARNING,
    BreakerChanged: logging.WARNING,
    RequestPathMint: logging.WARNING,
    ReactiveInvalidation: logging.WARNING,
    SharedCacheFailed: logging.DEBUG,  # logged once per outage by the cache tier itself
}


def describe(event: RefreshEvent) -> str:
    """One line for a log or a terminal, without secrets."""
    remaining = "never expires" if event.remaining is None else f"{event.remaining:.0f}s left"
    if isinstance(event, RefreshSucceeded):
        return (
            f"{event.source}: refreshed in {event.duration:.3f}s, "
            f"key {event.access_key}, {remaining}"
        )
    if isinstance(event, RefreshFailed):
        served = "" if event.remaining is None else f"; the served set has {remaining}"
        return (
            f"{event.source}: refresh attempt {event.attempt} failed after "
            f"{event.duration:.3f}s: {event.error}{served}"
        )
    if isinstance(event, BreakerChanged):
        return (
            f"{event.source}: circuit breaker {event.previous.value} -> {event.state.value} "
            f"after {event.attempt} failed attempt(s)"
        )
    if isinstance(event, RequestPathMint):
        outcome = "got a fresh set" if event.succeeded else "got none"
        return (
            f"{event.source}: a request found the credentials expired, waited "
            f"{event.duration:.3f}s and {outcome}"
        )
    if isinstance(event, ReactiveInvalidation):
        outcome = "retried with a new set" if event.retried else "not retried"
        return f"{event.source}: AWS rejected the credentials ({event.error_code}); {outcome}"
    if isinstance(event, SharedCacheFailed):
        if event.error.startswith("a forged entry"):
            held = f"shared cache {event.cache} held {event.error}"
            return f"{event.source}: {held}; called the source"
        return f"{event.source}: shared cache {event.cache} unavailable ({event.error})"
    return f"{event.source}: {type(event).__name__}"


def emit(event: RefreshEvent, reporter: Reporter | None) -> None:
    """Log ``event`` and hand it to ``reporter`` and the process-wide reporters.

    Call with no lock held. A reporter that raises is logged and ignored.
    """
    level = _LEVELS.get(type(event), logging.INFO)
    if isinstance(event, BreakerChanged) and event.state is BreakerState.CLOSED:
        level = logging.INFO
    if logger.isEnabledFor(level):
        extra = {f.name: getattr(event, f.name) for f in fields(event)}
        extra["event"] = type(event).__name__
        logger.log(level, "botocreds: %s", describe(event), extra=extra)
    targets = _process_reporters if reporter is None else (reporter, *_process_reporters)
    for target in targets:
        try:
            target(event)
        except Exception:
            logger.exception("botocreds: reporter %r failed on %s", target, type(event).__name__)


def as_dict(event: RefreshEvent) -> dict[str, object]:
    """The event as a JSON-friendly dict, with its type under ``"event"``."""
    data: dict[str, object] = {"event": type(event).__name__}
    for key, value in asdict(event).items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, BreakerState):
            value = value.value
        data[key] = value
    return data
