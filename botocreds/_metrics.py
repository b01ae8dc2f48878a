"""Entry points to the optional metrics reporters, importing their libraries only on use.

``import botocreds`` never imports prometheus-client or OpenTelemetry; these
functions do, and say which extra to install when the library is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

    from ._otel import OpenTelemetryReporter
    from ._prometheus import PrometheusReporter


def prometheus_reporter(
    registry: CollectorRegistry | None = None, *, namespace: str = "botocreds"
) -> PrometheusReporter:
    """A reporter that keeps Prometheus series of every refresh (extra ``prometheus``).

    Registers on ``registry`` (default: prometheus-client's global registry)
    counters of refreshes by outcome, a histogram of mint durations, gauges of
    seconds to expiry and breaker state, and counters of request-path mints
    and reactive invalidations, all labelled by ``source``. Pass it as
    ``reporter=`` or to :func:`set_reporters`.
    """
    try:
        from ._prometheus import PrometheusReporter
    except ImportError as error:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "prometheus_reporter() needs prometheus-client: pip install 'botocreds[prometheus]'"
        ) from error
    return PrometheusReporter(registry, namespace=namespace)


def opentelemetry_reporter(meter_provider: MeterProvider | None = None) -> OpenTelemetryReporter:
    """A reporter that records the same instruments through OpenTelemetry (extra ``otel``).

    Uses ``meter_provider`` (default: the global one) and only
    ``opentelemetry-api``; bring your own SDK and exporter.
    """
    try:
        from ._otel import OpenTelemetryReporter
    except ImportError as error:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "opentelemetry_reporter() needs opentelemetry-api: pip install 'botocreds[otel]'"
        ) from error
    return OpenTelemetryReporter(meter_provider)
