"""The Prometheus and OpenTelemetry reporters, read back through the real libraries."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from botocore.credentials import Credentials
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)
from prometheus_client import CollectorRegistry, generate_latest

import botocreds
from botocreds import (
    BreakerChanged,
    BreakerState,
    CredentialsUnavailable,
    ReactiveInvalidation,
    RefreshEvent,
    RefreshFailed,
    RefreshPolicy,
    RefreshSucceeded,
    RequestPathMint,
)
from botocreds._otel import OpenTelemetryReporter
from botocreds._prometheus import PrometheusReporter
from botocreds._scheduler import Scheduler

from ._fakes import EPOCH, FakeClock, Harness, ScriptedFetcher, refreshable

SOURCE = "test-source"
POLICY = RefreshPolicy(floor=10.0, failure_threshold=2, cooldown=30.0, wait_timeout=5.0)


class Following:
    """A clock that reads the FakeClock it points at: the harness's, once that exists."""

    def __init__(self) -> None:
        self.target = FakeClock()

    def __call__(self) -> float:
        return self.target()


class View:
    """One reporter and a way to read its metrics back, the same for both libraries."""

    reporter: Callable[[RefreshEvent], None]

    def refreshes(self, outcome: str, source: str = SOURCE) -> float | None:
        raise NotImplementedError

    def mints(self, source: str = SOURCE) -> float:
        """Observations in the mint-duration histogram, both outcomes together."""
        raise NotImplementedError

    def breaker(self, source: str = SOURCE) -> float | None:
        raise NotImplementedError

    def expiry(self, source: str = SOURCE) -> float | None:
        raise NotImplementedError

    def request_path(self, outcome: str, source: str = SOURCE) -> float | None:
        raise NotImplementedError

    def reactive(self, source: str = SOURCE) -> float | None:
        raise NotImplementedError

    def text(self) -> str:
        """Everything the library would export, as text."""
        raise NotImplementedError


class PrometheusView(View):
    def __init__(self, clock: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.prometheus = PrometheusReporter(self.registry, clock=clock)
        self.reporter = self.prometheus

    def _sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def refreshes(self, outcome: str, source: str = SOURCE) -> float | None:
        return self._sample("botocreds_refreshes_total", source=source, outcome=outcome)

    def mints(self, source: str = SOURCE) -> float:
        counts = (
            self._sample("botocreds_mint_duration_seconds_count", source=source, outcome=outcome)
            for outcome in ("success", "failure")
        )
        return sum(count or 0.0 for count in counts)

    def breaker(self, source: str = SOURCE) -> float | None:
        return self._sample("botocreds_breaker_state", source=source)

    def expiry(self, source: str = SOURCE) -> float | None:
        return self._sample("botocreds_credentials_expiry_seconds", source=source)

    def request_path(self, outcome: str, source: str = SOURCE) -> float | None:
        return self._sample("botocreds_request_path_mints_total", source=source, outcome=outcome)

    def reactive(self, source: str = SOURCE) -> float | None:
        return self._sample("botocreds_reactive_invalidations_total", source=source)

    def text(self) -> str:
        return generate_latest(self.registry).decode()


class OpenTelemetryView(View):
    def __init__(self, clock: Callable[[], float]) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.reporter = OpenTelemetryReporter(self.provider, clock=clock)

    def collect(self) -> dict[str, Metric]:
        data = self.reader.get_metrics_data()
        if data is None:
            return {}
        return {
            metric.name: metric
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def _points(self, name: str, **attributes: str) -> list[NumberDataPoint | HistogramDataPoint]:
        metric = self.collect().get(name)
        if metric is None:
            return []
        return [
            point
            for point in metric.data.data_points
            if isinstance(point, (NumberDataPoint, HistogramDataPoint))
            and all(point.attributes.get(k) == v for k, v in attributes.items())  # type: ignore[union-attr]
        ]

    def _value(self, name: str, **attributes: str) -> float | None:
        points = self._points(name, **attributes)
        assert len(points) <= 1, points
        if not points:
            return None
        point = points[0]
        assert isinstance(point, NumberDataPoint)
        return float(point.value)

    def refreshes(self, outcome: str, source: str = SOURCE) -> float | None:
        return self._value("botocreds.refreshes", source=source, outcome=outcome)

    def mints(self, source: str = SOURCE) -> float:
        points = self._points("botocreds.mint.duration", source=source)
        return float(sum(p.count for p in points if isinstance(p, HistogramDataPoint)))

    def breaker(self, source: str = SOURCE) -> float | None:
        return self._value("botocreds.breaker.state", source=source)

    def expiry(self, source: str = SOURCE) -> float | None:
        return self._value("botocreds.credentials.expiry", source=source)

    def request_path(self, outcome: str, source: str = SOURCE) -> float | None:
        return self._value("botocreds.request_path.mints", source=source, outcome=outcome)

    def reactive(self, source: str = SOURCE) -> float | None:
        return self._value("botocreds.reactive.invalidations", source=source)

    def text(self) -> str:
        data = self.reader.get_metrics_data()
        return "" if data is None else data.to_json()


@dataclass
class Setup:
    view: View
    clock: Following


@pytest.fixture(autouse=True)
def _no_process_reporters() -> Iterator[None]:
    yield
    botocreds.set_reporters(None)


@pytest.fixture(params=["prometheus", "opentelemetry"])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    clock = Following()
    if request.param == "prometheus":
        yield Setup(PrometheusView(clock), clock)
        return
    view = OpenTelemetryView(clock)
    yield Setup(view, clock)
    view.provider.shutdown()


def expect(
    view: View,
    *,
    refreshes: tuple[float, float],
    mints: float,
    breaker: float | None,
    expiry: float | None,
    request_path: tuple[float, float] = (0.0, 0.0),
    reactive: float = 0.0,
) -> None:
    """Assert every metric of SOURCE at once, so a failure shows the whole picture."""
    seen = {
        "refreshes": (view.refreshes("success"), view.refreshes("failure")),
        "mints": view.mints(),
        "breaker": view.breaker(),
        "expiry": view.expiry(),
        "request_path": (view.request_path("success"), view.request_path("failure")),
        "reactive": view.reactive(),
    }
    wanted = {
        "refreshes": refreshes,
        "mints": mints,
        "breaker": breaker,
        "expiry": pytest.approx(expiry) if expiry is not None else None,
        "request_path": request_path,
        "reactive": reactive,
    }
    assert seen == wanted


def step(h: Harness, seconds: float) -> None:
    """Advance the clock and run what is due: the scheduler first, then the mints it queued."""
    h.clock.advance(seconds)
    h.scheduler.run_pending()
    h.queue.run_all()


def while_minting(h: Harness, action: Callable[[], object]) -> object:
    """Run ``action`` (which waits for a mint) on a thread, and run its mint here."""
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(action()))
    thread.start()
    h.queue.wait_for(1)
    h.queue.run_all()
    thread.join(10.0)
    assert not thread.is_alive() and len(results) == 1, "the action did not return"
    return results[0]


def test_a_scripted_outage_and_recovery_read_back_exactly(setup: Setup) -> None:
    view = setup.view
    botocreds.set_reporters([view.reporter])
    down = OSError("sts is down")
    h = Harness(POLICY, lifetime=100.0, script=[None, down, down, down])
    setup.clock.target = h.clock

    # The eager first mint: a set that expires in 100 s.
    expect(view, refreshes=(1, 0), mints=1, breaker=0, expiry=100.0)
    # With no event at all, seconds-to-expiry follows the clock between scrapes.
    h.clock.advance(25.0)
    assert view.expiry() == pytest.approx(75.0)
    h.clock.advance(5.0)
    assert view.expiry() == pytest.approx(70.0)

    step(h, 50.0)  # t=80: the due refresh fails; the old set still has 20 s
    expect(view, refreshes=(1, 1), mints=2, breaker=0, expiry=20.0)
    step(h, 2.0)  # t=82: the retry fails too, and the breaker opens
    expect(view, refreshes=(1, 2), mints=3, breaker=2, expiry=18.0)

    h.clock.advance(30.0)  # t=112: the cooldown is over
    h.scheduler.run_pending()  # the probe is claimed: half-open while it runs
    assert view.breaker() == 1
    h.queue.run_all()  # the probe fails: open again; the old set expired 12 s ago
    expect(view, refreshes=(1, 3), mints=4, breaker=2, expiry=-12.0)

    # A request finds the set expired and the breaker open: it gets nothing.
    with pytest.raises(CredentialsUnavailable):
        h.key()
    expect(view, refreshes=(1, 3), mints=4, breaker=2, expiry=-12.0, request_path=(0, 1))

    h.fetcher.script = []
    h.clock.advance(30.0)  # t=142: the next probe succeeds and closes the breaker
    h.scheduler.run_pending()
    assert view.breaker() == 1
    h.queue.run_all()
    expect(view, refreshes=(2, 3), mints=5, breaker=0, expiry=100.0, request_path=(0, 1))

    # t=292: that set has expired too; a request waits for a mint and gets one.
    h.clock.advance(150.0)
    key = while_minting(h, h.key)
    assert key == h.fetcher.issued[-1][0]
    expect(view, refreshes=(3, 3), mints=6, breaker=0, expiry=100.0, request_path=(1, 1))

    # t=297: AWS rejects the current set; botocreds mints a replacement.
    h.clock.advance(5.0)
    rejected = h.refresher._snapshot.frozen.access_key
    assert while_minting(h, lambda: h.refresher._invalidate("ExpiredToken", rejected)) is True
    expect(
        view,
        refreshes=(4, 3),
        mints=7,
        breaker=0,
        expiry=100.0,
        request_path=(1, 1),
        reactive=1,
    )
    h.clock.advance(40.0)
    assert view.expiry() == pytest.approx(60.0)

    # Nothing secret was exported: no key, secret or token, not even masked keys.
    exported = setup.view.text()
    assert SOURCE in exported
    assert h.fetcher.issued
    assert "****" not in exported
    for access_key, secret_key, token in h.fetcher.issued:
        for secret in (access_key, secret_key, token):
            assert secret not in exported


def test_a_reporter_given_to_one_refresher_records_its_events(setup: Setup) -> None:
    clock = FakeClock()
    setup.clock.target = clock
    botocreds.Refresher(
        refreshable(ScriptedFetcher(clock, lifetime=900.0)),
        name="per-refresher",
        reporter=setup.view.reporter,
        clock=clock,
        _scheduler=Scheduler(clock, lambda job: job(), autostart=False),
    )
    assert setup.view.refreshes("success", source="per-refresher") == 1
    assert setup.view.expiry(source="per-refresher") == pytest.approx(900.0)
    assert setup.view.refreshes("success") is None, "no other source was reported"


def test_credentials_that_never_expire_have_no_expiry_sample(setup: Setup) -> None:
    clock = FakeClock()
    setup.clock.target = clock
    botocreds.Refresher(
        Credentials("AKIASTATIC0000000001", "static-secret-value"),
        name="static",
        reporter=setup.view.reporter,
        clock=clock,
        _scheduler=Scheduler(clock, lambda job: job(), autostart=False),
    )
    assert setup.view.refreshes("success", source="static") == 1
    assert setup.view.breaker(source="static") == 0
    assert setup.view.expiry(source="static") is None
    exported = setup.view.text()
    assert "AKIASTATIC" not in exported and "****" not in exported
    assert "static-secret-value" not in exported


def test_a_reporter_installed_late_estimates_the_expiry_from_any_event(setup: Setup) -> None:
    h = Harness(POLICY, lifetime=100.0, script=[None, OSError("down")])
    setup.clock.target = h.clock
    botocreds.set_reporters([setup.view.reporter])  # after the eager first mint
    step(h, 80.0)  # the due refresh fails with 20 s left on the set served
    expect(setup.view, refreshes=(0, 1), mints=1, breaker=None, expiry=20.0)
    h.clock.advance(15.0)
    assert setup.view.expiry() == pytest.approx(5.0)


@dataclass(frozen=True)
class Mystery(RefreshEvent):
    """An event type the reporters have never heard of."""

    detail: str


def test_a_reporter_never_raises_into_the_refresher(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = setup.view.reporter
    reporter(Mystery("mystery", 0.1, 10.0, 1, "unknown"))
    assert setup.view.refreshes("success", source="mystery") is None
    assert setup.view.expiry(source="mystery") is None

    weird = BreakerChanged("weird", 0.0, 10.0, 1, BreakerState.CLOSED, "sideways")  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="botocreds"):
        reporter(weird)
    assert any("could not record BreakerChanged" in r.getMessage() for r in caplog.records)

    # A refresher whose every event goes through this reporter carries on as usual.
    botocreds.set_reporters([reporter])
    h = Harness(POLICY, lifetime=100.0, inline=True)
    setup.clock.target = h.clock
    h.tick(80.0)
    assert h.refresher.mint_count == 2
    assert setup.view.refreshes("success") == 2


def test_events_from_many_threads_are_all_counted(setup: Setup) -> None:
    reporter = setup.view.reporter
    expires_at = datetime.fromtimestamp(EPOCH + 600.0, timezone.utc)
    threads_count, rounds = 8, 300
    start = threading.Barrier(threads_count + 1)

    def report(index: int) -> None:
        source = f"source-{index % 2}"
        start.wait()
        for _ in range(rounds):
            reporter(RefreshSucceeded(source, 0.02, 600.0, 1, "****ABCD", expires_at))
            reporter(RefreshFailed(source, 1.5, 500.0, 1, "OSError: down"))
            reporter(RequestPathMint(source, 0.1, 600.0, 1, True))
            reporter(ReactiveInvalidation(source, 0.1, 600.0, 1, "ExpiredToken", True))

    threads = [threading.Thread(target=report, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    start.wait()
    for _ in range(20):  # scrape while the events arrive
        setup.view.text()
    for thread in threads:
        thread.join(30.0)
    per_source = threads_count // 2 * rounds
    for source in ("source-0", "source-1"):
        assert setup.view.refreshes("success", source=source) == per_source
        assert setup.view.refreshes("failure", source=source) == per_source
        assert setup.view.mints(source=source) == 2 * per_source
        assert setup.view.request_path("success", source=source) == per_source
        assert setup.view.request_path("failure", source=source) == 0
        assert setup.view.reactive(source=source) == per_source
        assert setup.view.expiry(source=source) == pytest.approx(600.0)


# -- Prometheus only -------------------------------------------------------------


def test_prometheus_exposition_names_every_metric() -> None:
    registry = CollectorRegistry()
    reporter = PrometheusReporter(registry, clock=lambda: EPOCH)
    expires_at = datetime.fromtimestamp(EPOCH + 100.0, timezone.utc)
    reporter(RefreshSucceeded(SOURCE, 0.2, 100.0, 1, "****WXYZ", expires_at))
    reporter(BreakerChanged(SOURCE, 0.0, 100.0, 2, BreakerState.CLOSED, BreakerState.OPEN))
    text = generate_latest(registry).decode()
    for line in (
        "# TYPE botocreds_refreshes_total counter",
        "# TYPE botocreds_mint_duration_seconds histogram",
        "# TYPE botocreds_credentials_expiry_seconds gauge",
        "# TYPE botocreds_breaker_state gauge",
        "# TYPE botocreds_request_path_mints_total counter",
        "# TYPE botocreds_reactive_invalidations_total counter",
        'botocreds_credentials_expiry_seconds{source="test-source"} 100.0',
        'botocreds_breaker_state{source="test-source"} 2.0',
        'botocreds_mint_duration_seconds_bucket{le="0.01",outcome="success",source="test-source"}',
        'botocreds_mint_duration_seconds_bucket{le="60.0",outcome="success",source="test-source"}',
    ):
        assert line in text
    assert "WXYZ" not in text and "****" not in text


def test_a_second_prometheus_reporter_on_one_registry_is_refused() -> None:
    registry = CollectorRegistry()
    first = PrometheusReporter(registry, clock=lambda: EPOCH)
    with pytest.raises(ValueError, match="already registered on this registry"):
        PrometheusReporter(registry, clock=lambda: EPOCH)
    # The refused one registered nothing: the first still works alone.
    first(RefreshFailed(SOURCE, 0.5, 10.0, 1, "OSError: down"))
    assert registry.get_sample_value(
        "botocreds_refreshes_total", {"source": SOURCE, "outcome": "failure"}
    ) == pytest.approx(1.0)
    # Another namespace can share the registry; after unregister() a new one fits.
    other = PrometheusReporter(registry, namespace="payments_creds")
    other(RefreshFailed(SOURCE, 0.5, 10.0, 1, "OSError: down"))
    assert registry.get_sample_value(
        "payments_creds_refreshes_total", {"source": SOURCE, "outcome": "failure"}
    ) == pytest.approx(1.0)
    first.unregister()
    first.unregister()  # idempotent
    assert (
        registry.get_sample_value(
            "botocreds_refreshes_total", {"source": SOURCE, "outcome": "failure"}
        )
        is None
    )
    PrometheusReporter(registry)


# -- OpenTelemetry only ----------------------------------------------------------


def test_opentelemetry_instruments_have_their_names_units_and_meter() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    reporter = OpenTelemetryReporter(provider, clock=lambda: EPOCH)
    expires_at = datetime.fromtimestamp(EPOCH + 100.0, timezone.utc)
    reporter(RefreshSucceeded(SOURCE, 0.2, 100.0, 1, "****WXYZ", expires_at))
    data = reader.get_metrics_data()
    assert data is not None
    scopes = [s for r in data.resource_metrics for s in r.scope_metrics]
    assert [(s.scope.name, s.scope.version) for s in scopes] == [
        ("botocreds", botocreds.__version__)
    ]
    units = {m.name: m.unit for m in scopes[0].metrics}
    assert units == {
        "botocreds.refreshes": "{refresh}",
        "botocreds.mint.duration": "s",
        "botocreds.request_path.mints": "{request}",
        "botocreds.reactive.invalidations": "{invalidation}",
        "botocreds.credentials.expiry": "s",
        "botocreds.breaker.state": "1",
    }
    histogram = next(m for m in scopes[0].metrics if m.name == "botocreds.mint.duration")
    point = histogram.data.data_points[0]
    assert isinstance(point, HistogramDataPoint)
    assert point.explicit_bounds[0] == 0.01 and point.explicit_bounds[-1] == 60.0
    assert "WXYZ" not in data.to_json()
    provider.shutdown()


def test_a_second_opentelemetry_reporter_on_one_provider_is_refused() -> None:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    OpenTelemetryReporter(provider)
    with pytest.raises(ValueError, match="already reports to this MeterProvider"):
        OpenTelemetryReporter(provider)
    OpenTelemetryReporter(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    provider.shutdown()


def test_the_public_factories_build_the_reporters() -> None:
    registry = CollectorRegistry()
    reporter = botocreds.prometheus_reporter(registry, namespace="factory")
    reporter(RefreshFailed("s", 0.5, 10.0, 1, "OSError: down"))
    assert (
        registry.get_sample_value("factory_refreshes_total", {"source": "s", "outcome": "failure"})
        == 1.0
    )
    reader = InMemoryMetricReader()
    otel = botocreds.opentelemetry_reporter(MeterProvider(metric_readers=[reader]))
    otel(RefreshFailed("s", 0.5, 10.0, 1, "OSError: down"))
    assert reader.get_metrics_data() is not None
