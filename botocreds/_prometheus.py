"""Prometheus metrics for botocreds: a reporter that turns refresh events into series.

Install the ``prometheus`` extra, then::

    reporter = botocreds.prometheus_reporter()        # registers on prometheus_client.REGISTRY
    botocreds.set_reporters([reporter])              # every refresher in the process

Every series carries a ``source`` label (the refresher's name). No label ever
holds a key, a token or an error message, so the series are safe to export and
their number stays bounded by the number of sources.

Series (with the default ``namespace="botocreds"``):

``botocreds_refreshes_total{source, outcome}``
    Counter of finished mints, ``outcome`` is ``"success"`` or ``"failure"``.
``botocreds_mint_duration_seconds{source, outcome}``
    Histogram of how long each mint took (10 ms to 60 s buckets).
``botocreds_credentials_expiry_seconds{source}``
    Gauge: seconds until the served credentials expire, computed when scraped
    (negative once they have expired). Credentials that never expire have no
    sample.
``botocreds_breaker_state{source}``
    Gauge: the circuit breaker, 0 closed, 1 half-open, 2 open.
``botocreds_request_path_mints_total{source, outcome}``
    Counter of requests that found their credentials expired and had to wait.
``botocreds_reactive_invalidations_total{source}``
    Counter of sets AWS rejected although they looked valid.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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

logger = logging.getLogger("botocreds")


class _ExpiryCollector(Collector):
    """Yields the reporter's metrics, computing seconds-to-expiry at scrape time.

    One collector for all of them, so the reporter registers with a single
    ``register`` call: it is on the registry completely or not at all.
    """

    def __init__(self, reporter: PrometheusReporter) -> None:
        self._reporter = reporter

    def describe(self) -> Iterable[Metric]:
        # Lets the registry detect a name clash before anything is registered.
        reporter = self._reporter
        for metric in reporter._metrics:
            yield from metric.describe()
        yield reporter._expiry_family()

    def collect(self) -> Iterable[Metric]:
        reporter = self._reporter
        for metric in reporter._metrics:
            yield from metric.collect()
        family = reporter._expiry_family()
        for source, seconds in reporter._expiries.seconds_left():
            family.add_metric([source], seconds)
        yield family


class PrometheusReporter:
    """A botocreds reporter that records refresh events as Prometheus metrics.

    Pass it to :func:`botocreds.set_reporters` (every refresher) or to a
    refresher's ``reporter=``. One reporter serves any number of sources and
    threads: the Prometheus metrics are thread-safe, and the reporter's own
    state (the last known expiry per source) is guarded by a lock.

    ``registry`` is where the metrics are registered (``prometheus_client.REGISTRY``
    by default); ``namespace`` prefixes every metric name; ``clock`` returns the
    current epoch time and is read at scrape time to compute seconds-to-expiry,
    so that gauge never goes stale between events.

    A second reporter with the same ``namespace`` on the same registry raises
    :class:`ValueError` and registers nothing: two reporters would count every
    event twice. Share one reporter instead, or call :meth:`unregister` first.

    Seconds-to-expiry comes from the expiry of the last set a source published
    (``RefreshSucceeded.expires_at``); until one is seen (a reporter installed
    after its refreshers), it is estimated from the ``remaining`` of any other
    event. Credentials that never expire have no sample. Refreshers that share
    a name share series, so give each refresher a distinct ``name=``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "botocreds",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        self.registry: CollectorRegistry = REGISTRY if registry is None else registry
        self.namespace = namespace
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock", threading.Lock)
        self._expiries = ExpiryBook(clock)
        self._seen: set[str] = set()
        prefix = f"{namespace}_" if namespace else ""
        self._expiry_name = f"{prefix}credentials_expiry_seconds"
        # Created unregistered (registry=None); the collector below exposes them.
        self._refreshes = Counter(
            f"{prefix}refreshes",
            "Finished credential mints, by outcome (success or failure).",
            ["source", "outcome"],
            registry=None,
        )
        self._duration = Histogram(
            f"{prefix}mint_duration_seconds",
            "How long each credential mint took, in seconds.",
            ["source", "outcome"],
            buckets=MINT_DURATION_BUCKETS,
            registry=None,
        )
        self._breaker = Gauge(
            f"{prefix}breaker_state",
            "The source's circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["source"],
            registry=None,
        )
        self._request_path = Counter(
            f"{prefix}request_path_mints",
            "Requests that found their credentials expired and waited for a mint, by outcome.",
            ["source", "outcome"],
            registry=None,
        )
        self._reactive = Counter(
            f"{prefix}reactive_invalidations",
            "Credential sets AWS rejected although they looked valid, so botocreds replaced them.",
            ["source"],
            registry=None,
        )
        self._metrics: tuple[Counter | Histogram | Gauge, ...] = (
            self._refreshes,
            self._duration,
            self._breaker,
            self._request_path,
            self._reactive,
        )
        self._collector = _ExpiryCollector(self)
        try:
            self.registry.register(self._collector)
        except ValueError as error:
            raise ValueError(
                f"botocreds metrics with namespace {namespace!r} are already registered on "
                "this registry (another PrometheusReporter?); share that reporter, call its "
                "unregister(), or pass another namespace or registry"
            ) from error

    def __call__(self, event: RefreshEvent, /) -> None:
        """Record one event. Never raises: a failure is logged and the event dropped.

        Event types it does not know are ignored.
        """
        try:
            self._record(event)
        except Exception:
            logger.exception(
                "botocreds: PrometheusReporter could not record %s", type(event).__name__
            )

    def unregister(self) -> None:
        """Remove this reporter's metrics from its registry. Idempotent.

        Call it before building a replacement reporter on the same registry.
        """
        with contextlib.suppress(KeyError):
            self.registry.unregister(self._collector)

    def __repr__(self) -> str:
        return f"<PrometheusReporter namespace={self.namespace!r}>"

    # -- internals ------------------------------------------------------------
    def _record(self, event: RefreshEvent) -> None:
        if not isinstance(event, RECORDED_EVENTS):
            return
        source = event.source
        self._first_sight(source)
        self._expiries.note(event)
        if isinstance(event, RefreshSucceeded):
            self._refreshes.labels(source, "success").inc()
            self._duration.labels(source, "success").observe(event.duration)
            self._breaker.labels(source).set(0)  # a success always closes the breaker
            return
        if isinstance(event, RefreshFailed):
            self._refreshes.labels(source, "failure").inc()
            self._duration.labels(source, "failure").observe(event.duration)
        elif isinstance(event, BreakerChanged):
            self._breaker.labels(source).set(BREAKER_STATE_VALUES[event.state])
        elif isinstance(event, RequestPathMint):
            self._request_path.labels(source, outcome(event.succeeded)).inc()
        elif isinstance(event, ReactiveInvalidation):
            self._reactive.labels(source).inc()

    def _first_sight(self, source: str) -> None:
        # Create every labelled series of a new source at zero, so rate() and
        # increase() work from its first failure on.
        with self._lock:
            if source in self._seen:
                return
            self._seen.add(source)
        for label in (outcome(True), outcome(False)):
            self._refreshes.labels(source, label)
            self._request_path.labels(source, label)
        self._reactive.labels(source)

    def _expiry_family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            self._expiry_name,
            "Seconds until the credentials a source serves expire, computed at scrape time "
            "(negative once expired; no sample for credentials that never expire).",
            labels=["source"],
        )
