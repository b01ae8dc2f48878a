"""Scenario 6: the credential source fails for 5 lifetimes, then comes back.

botocore (windows scaled to the lifetime) and botocreds (its default policy,
breaker included, with every duration scaled the same way) run at the same
time against one moto server, each with its own request threads and its own
source. Half a lifetime in, both sources start failing; 5 lifetimes later they
recover. Reported: fetch attempts per minute during the outage, the share of
requests served while the last good credentials were still valid, and the time
from recovery to the first request served with new credentials.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from botocore.client import BaseClient

import botocreds

from ._common import (
    Fetcher,
    Request,
    ScenarioResult,
    botocore_credentials,
    call_sts,
    hour_scale,
    markdown_table,
    moto_server,
    quiet_logs,
    ratio,
    run_request_threads,
    scaled_policy,
    seconds_to_text,
    session_for,
    sts_client,
)

THREADS_EACH = 4
FETCH_SECONDS = 0.1
PAUSE_SECONDS = 0.01
OUTAGE_LIFETIMES = 5.0


@dataclass(frozen=True)
class Timeline:
    """When the outage starts and ends, and when the run stops (epoch seconds)."""

    started: float
    down: float
    up: float
    until: float


@dataclass
class Outcome:
    """What one setup did during the run."""

    title: str
    fetcher: Fetcher
    requests: list[Request]

    def attempts_during(self, timeline: Timeline) -> int:
        """Fetch calls that started while the source was down."""
        return sum(1 for e in self.fetcher.snapshot() if timeline.down <= e.started < timeline.up)

    def last_valid_until(self, timeline: Timeline) -> float:
        """When the last credentials fetched before the outage expired."""
        good = [e.expires for e in self.fetcher.snapshot() if e.ok and e.finished < timeline.down]
        return max(good, default=timeline.down)

    def served_while_valid(self, timeline: Timeline) -> tuple[int, int]:
        """(served, total) requests started in the outage while the last set was valid."""
        until = min(self.last_valid_until(timeline), timeline.up)
        window = [r for r in self.requests if timeline.down <= r.started < until]
        return sum(1 for r in window if r.ok), len(window)

    def recovery(self, timeline: Timeline) -> float:
        """Seconds from recovery to the first request served after a new fetch succeeded."""
        fetched = [
            e.finished for e in self.fetcher.snapshot() if e.ok and e.finished >= timeline.up
        ]
        if not fetched:
            return math.nan
        first = min(fetched)
        ends = [r.started + r.seconds for r in self.requests if r.ok]
        served = [end for end in ends if end >= first]
        return min(served) - timeline.up if served else math.nan


def set_failing(fetchers: Sequence[Fetcher], failing: bool) -> None:
    """Take every source down, or bring it back."""
    for fetcher in fetchers:
        fetcher.failing = failing


def drive(clients: Sequence[BaseClient], timeline: Timeline) -> list[list[Request]]:
    """THREADS_EACH request threads per client, all at once, until the timeline ends."""
    results: list[list[Request]] = [[] for _ in clients]

    def one(index: int) -> None:
        client = clients[index]
        results[index] = run_request_threads(
            lambda _: call_sts(client),
            THREADS_EACH,
            timeline.until,
            pause=PAUSE_SECONDS,
            name=f"bench-request-{index}",
        )

    drivers = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(clients))]
    for driver in drivers:
        driver.start()
    for driver in drivers:
        driver.join(timeout=timeline.until - time.time() + 60.0)
    return results


def run_both(endpoint: str, lifetime: float) -> tuple[list[Outcome], Timeline]:
    """Run botocore and botocreds through one outage, side by side."""
    scale = hour_scale(lifetime)
    core_fetcher = Fetcher("botocore", lifetime, FETCH_SECONDS)
    core_client = sts_client(session_for(botocore_credentials(core_fetcher, scale)), endpoint)
    our_fetcher = Fetcher("botocreds", lifetime, FETCH_SECONDS)
    source = botocore_credentials(our_fetcher)
    our_client = sts_client(session_for(source), endpoint)
    fetchers = [core_fetcher, our_fetcher]
    with botocreds.Refresher(source, policy=scaled_policy(scale)) as refresher:
        refresher.attach(our_client)
        for client in (core_client, our_client):
            call_sts(client)
        now = time.time()
        timeline = Timeline(
            now,
            now + 0.5 * lifetime,
            now + (0.5 + OUTAGE_LIFETIMES) * lifetime,
            now + (2.0 + OUTAGE_LIFETIMES) * lifetime,
        )
        timers = [
            threading.Timer(timeline.down - now, set_failing, (fetchers, True)),
            threading.Timer(timeline.up - now, set_failing, (fetchers, False)),
        ]
        for timer in timers:
            timer.daemon = True
            timer.start()
        results = drive([core_client, our_client], timeline)
        for timer in timers:
            timer.cancel()
    outcomes = [
        Outcome("botocore (scaled windows)", core_fetcher, results[0]),
        Outcome("botocreds (scaled policy, breaker)", our_fetcher, results[1]),
    ]
    return outcomes, timeline


def share(served: int, total: int) -> float:
    """``served / total`` as a percentage; nan when there was nothing to serve."""
    return 100.0 * served / total if total else math.nan


def run(quick: bool) -> ScenarioResult:
    """Run the outage and summarize."""
    lifetime = 1.2 if quick else 4.0
    with moto_server() as endpoint, quiet_logs("botocore.credentials", "botocreds"):
        outcomes, timeline = run_both(endpoint, lifetime)
    minutes = (timeline.up - timeline.down) / 60.0
    rows = []
    figures = []
    for outcome in outcomes:
        attempts = outcome.attempts_during(timeline)
        served, total = outcome.served_while_valid(timeline)
        recovery = outcome.recovery(timeline)
        failed = sum(1 for r in outcome.requests if not r.ok)
        figures.append((attempts / minutes, share(served, total), recovery))
        rows.append(
            [
                outcome.title,
                f"{len(outcome.requests):,}",
                f"{failed:,}",
                f"{attempts:,}",
                f"{attempts / minutes:,.0f}",
                f"{attempts / OUTAGE_LIFETIMES:,.1f}",
                f"{served:,} / {total:,} ({share(served, total):.1f}%)",
                seconds_to_text(recovery),
            ]
        )
    header = [
        "setup",
        "requests",
        "failed",
        "fetch attempts in outage",
        "attempts per minute",
        "attempts per lifetime",
        "served while last set valid",
        "recovery",
    ]
    core, ours = figures
    summary = (
        f"outage: fetch attempts per minute botocore {core[0]:,.0f} vs botocreds {ours[0]:,.0f} "
        f"({ratio(core[0], ours[0])}); served while valid {core[1]:.1f}% vs {ours[1]:.1f}%; "
        f"recovery {seconds_to_text(core[2])} vs {seconds_to_text(ours[2])}"
    )
    description = (
        f"{lifetime:g}-s credentials; both sources fail for {OUTAGE_LIFETIMES:g} lifetimes "
        f"starting half a lifetime in, then recover; the run ends 1.5 lifetimes later. Each "
        f"setup has {THREADS_EACH} request threads (STS `GetCallerIdentity` on a local moto "
        f"server, {PAUSE_SECONDS * 1000:g} ms pause between requests); a fetch takes "
        f"{FETCH_SECONDS * 1000:g} ms and a failing one fails at once. botocreds' cooldown is "
        f"{60 * hour_scale(lifetime) * 1000:.0f} ms (60 s of an hour, scaled). Attempts per "
        "minute are per minute of benchmark time."
    )
    return ScenarioResult(6, "Outage", summary, description, tables=[markdown_table(header, rows)])
