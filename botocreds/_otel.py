"""OpenTelemetry metrics for botocreds: a reporter that turns refresh events into instruments.

Install the ``otel`` extra (``opentelemetry-api`` only; the application brings
its own SDK and exporter), then::

    reporter = botocreds.opentelemetry_reporter()     # the global MeterProvider
    botocreds.set_reporters([reporter])              # every refresher in the process

The meter is ``botocreds`` at the package version. Every measurement carries a
``source`` attribute (the refresher's name); no attribute ever holds a key, a
token or an error message.

Instruments:

``botocreds.refreshes`` (counter, ``{refresh}``; ``source``, ``outcome``)
    Finished mints, ``outcome`` is ``"success"`` or ``"failure"``.
``botocreds.mint.duration`` (histogram, ``s``; ``source``, ``outcome``)
    How long each mint took.
``botocreds.credentials.expiry`` (observable gauge, ``s``; ``source``)
    Seconds until the served credentials expire, computed at collection time
    (negative once they have expired). Credentials that never expire have no
    data point: the SDK drops non-finite values.
``botocreds.breaker.state`` (observable gauge, ``1``; ``source``)
    The circuit breaker, 0 closed, 1 half-open, 2 open.
``botocreds.request_path.mints`` (counter, ``{request}``; ``source``, ``outcome``)
    Requests that found their credentials expired and had to wait.
``botocreds.reactive.invalidations`` (counter, ``{invalidation}``; ``source``)
    Sets AWS rejected although they looked valid.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation

from ._events import (
    BreakerChanged,
    ReactiveInvalidation,
    RefreshEvent,
    RefreshFailed,
    RefreshSucceeded,
    RequestPathMint,
)
from ._forksafe import renew_after_fork
from ._instruments import (
    BREAKER_STATE_VALUES,
    MINT_DURATION_BUCKETS,
    RECORDED_EVENTS,
    ExpiryBook,
    outcome,
)
from ._version import __version__

logger = logging.getLogger("botocreds")

# Meter providers that already have a reporter. The SDK hands back the existing
# instrument for a repeated name, so a second reporter's gauge callbacks would
# be silently ignored and its counters shared: it is refused instead.
_claimed: weakref.WeakSet[MeterProvider] = weakref.WeakSet()
_claimed_lock = threading.Lock()
renew_after_fork(sys.modules[__name__], "_claimed_lock", threading.Lock)


def _create_histogram(meter: Meter) -> Histogram:
    name = "botocreds.mint.duration"
    description = "How long each credential mint took."
    try:
        return meter.create_histogram(
            name,
            unit="s",
            description=description,
            explicit_bucket_boundaries_advisory=MINT_DURATION_BUCKETS,
        )
    except TypeError:  # opentelemetry-api < 1.23 takes no advisory boundaries
        return meter.create_histogram(name, unit="s", description=description)


class OpenTelemetryReporter:
    """A botocreds reporter that records refresh events as OpenTelemetry metrics.

    Pass it to :func:`botocreds.set_reporters` (every refresher) or to a
    refresher's ``reporter=``. Uses only ``opentelemetry-api``: with no SDK
    configured, every instrument is a no-op.

    ``meter_provider`` defaults to the global one; ``clock`` returns the current
    epoch time and is read when the SDK collects, so seconds-to-expiry never
    goes stale between events. One reporter serves any number of sources and
    threads; its own state is guarded by a lock.

    Only one reporter may use a given meter provider: a second one raises
    :class:`ValueError`, because it would share the first one's counters (so
    each event would count twice) while its gauges would never be observed.

    Seconds-to-expiry comes from the expiry of the last set a source published;
    until one is seen (a reporter installed after its refreshers), it is
    estimated from the ``remaining`` of any other event. Refreshers that share
    a name share data points, so give each refresher a distinct ``name=``.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock", threading.Lock)
        self._expiries = ExpiryBook(clock)
        self._breaker: dict[str, int] = {}
        self._seen: set[str] = set()
        self._claim(provider)
        try:
            meter = metrics.get_meter("botocreds", __version__, meter_provider=provider)
            self._refreshes = meter.create_counter(
                "botocreds.refreshes",
                unit="{refresh}",
                description="Finished credential mints, by outcome (success or failure).",
            )
            self._duration = _create_histogram(meter)
            self._request_path = meter.create_counter(
                "botocreds.request_path.mints",
                unit="{request}",
                description="Requests that found their credentials expired and waited for a mint.",
            )
            self._reactive = meter.create_counter(
                "botocreds.reactive.invalidations",
                unit="{invalidation}",
                description="Credential sets AWS rejected although they looked valid.",
            )
            meter.create_observable_gauge(
                "botocreds.credentials.expiry",
                callbacks=[self._observe_expiry],
                unit="s",
                description=(
                    "Seconds until the credentials a source serves expire (negative once expired)."
                ),
            )
            meter.create_observable_gauge(
                "botocreds.breaker.state",
                callbacks=[self._observe_breaker],
                unit="1",
                description="The source's circuit breaker: 0 closed, 1 half-open, 2 open.",
            )
        except BaseException:
            with _claimed_lock:
                _claimed.discard(provider)
            raise

    @staticmethod
    def _claim(provider: MeterProvider) -> None:
        try:
            with _claimed_lock:
                if provider in _claimed:
                    raise ValueError(
                        "an OpenTelemetryReporter already reports to this MeterProvider; "
                        "share that reporter (it handles every source and thread)"
                    )
                _claimed.add(provider)
        except TypeError:  # a provider that cannot be weakly referenced: no guard
            pass

    def __call__(self, event: RefreshEvent, /) -> None:
        """Record one event. Never raises: a failure is logged and the event dropped.

        Event types it does not know are ignored.
        """
        try:
            self._record(event)
        except Exception:
            logger.exception(
                "botocreds: OpenTelemetryReporter could not record %s", type(event).__name__
            )

    def __repr__(self) -> str:
        return "<OpenTelemetryReporter>"

    # -- internals ------------------------------------------------------------
    def _record(self, event: RefreshEvent) -> None:
        if not isinstance(event, RECORDED_EVENTS):
            return
        source = event.source
        self._first_sight(source)
        self._expiries.note(event)
        if isinstance(event, RefreshSucceeded):
            attributes = {"source": source, "outcome": "success"}
            self._refreshes.add(1, attributes)
            self._duration.record(event.duration, attributes)
            with self._lock:
                self._breaker[source] = 0  # a success always closes the breaker
            return
        if isinstance(event, RefreshFailed):
            attributes = {"source": source, "outcome": "failure"}
            self._refreshes.add(1, attributes)
            self._duration.record(event.duration, attributes)
        elif isinstance(event, BreakerChanged):
            value = BREAKER_STATE_VALUES[event.state]
            with self._lock:
                self._breaker[source] = value
        elif isinstance(event, RequestPathMint):
            self._request_path.add(1, {"source": source, "outcome": outcome(event.succeeded)})
        elif isinstance(event, ReactiveInvalidation):
            self._reactive.add(1, {"source": source})

    def _first_sight(self, source: str) -> None:
        # Start every counter of a new source at zero, so rates exist from its
        # first failure on.
        with self._lock:
            if source in self._seen:
                return
            self._seen.add(source)
        for label in (outcome(True), outcome(False)):
            self._refreshes.add(0, {"source": source, "outcome": label})
            self._request_path.add(0, {"source": source, "outcome": label})
        self._reactive.add(0, {"source": source})

    def _observe_expiry(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(seconds, {"source": source})
            for source, seconds in self._expiries.seconds_left()
        ]

    def _observe_breaker(self, options: CallbackOptions) -> Sequence[Observation]:
        with self._lock:
            states = sorted(self._breaker.items())
        return [Observation(value, {"source": source}) for source, value in states]
