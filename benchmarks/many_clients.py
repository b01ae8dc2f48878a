"""Scenario 5: many clients, one source: fetches per credential lifetime.

50 clients per setup (20 with ``--quick``). Three setups, driven by the same
request threads in one loop:

* botocreds: 50 clients from one session wrapped with ``botocreds.wrap``;
* botocore, shared: 50 clients of one session, which share one
  ``RefreshableCredentials`` (windows scaled to the lifetime);
* botocore, one session per client: 50 sessions, each with its own
  ``RefreshableCredentials`` on the same kind of source, for reference.

Every thread signs one request (a presigned S3 URL) on each setup's next
client per step, so every client of every setup is used all the time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from botocore.client import BaseClient

import botocreds

from ._common import (
    REQUEST_THREAD_PREFIX,
    Fetcher,
    FetchEvent,
    ScenarioResult,
    botocore_credentials,
    hour_scale,
    markdown_table,
    ratio,
    run_request_threads,
    s3_client,
    scaled_policy,
    session_for,
    sign_once,
)

CLIENTS = 50
QUICK_CLIENTS = 20
THREADS = 5
PAUSE_SECONDS = 0.005


@dataclass
class Setup:
    """50 clients and the fetch functions behind them."""

    title: str
    clients: list[BaseClient]
    fetchers: list[Fetcher]
    baseline: int = 0

    def events(self, since: float) -> list[FetchEvent]:
        """Fetches that started after ``since``."""
        return [e for f in self.fetchers for e in f.snapshot() if e.started >= since]


def botocreds_setup(lifetime: float, count: int) -> Setup:
    """One wrapped session, 50 clients made from it."""
    fetcher = Fetcher("wrapped", lifetime)
    session = botocreds.wrap(
        session_for(botocore_credentials(fetcher)), policy=scaled_policy(hour_scale(lifetime))
    )
    clients = [s3_client(session) for _ in range(count)]
    return Setup("botocreds: one wrapped session", clients, [fetcher])


def botocore_shared_setup(lifetime: float, count: int) -> Setup:
    """One plain session with scaled windows, 50 clients sharing its credentials."""
    fetcher = Fetcher("shared", lifetime)
    session = session_for(botocore_credentials(fetcher, hour_scale(lifetime)))
    clients = [s3_client(session) for _ in range(count)]
    return Setup("botocore: one session, shared credentials", clients, [fetcher])


def botocore_separate_setup(lifetime: float, count: int) -> Setup:
    """50 plain sessions with scaled windows, one client each."""
    fetchers = [Fetcher(f"separate{i}", lifetime) for i in range(count)]
    clients = [
        s3_client(session_for(botocore_credentials(f, hour_scale(lifetime)))) for f in fetchers
    ]
    return Setup("botocore: one session per client", clients, fetchers)


def drive(setups: Sequence[Setup], seconds: float) -> None:
    """THREADS threads; each step signs with the next client of every setup."""
    counters = [0] * THREADS

    def step(index: int) -> None:
        slot = (counters[index] * THREADS + index) % len(setups[0].clients)
        counters[index] += 1
        for setup in setups:
            sign_once(setup.clients[slot])

    run_request_threads(step, THREADS, time.time() + seconds, pause=PAUSE_SECONDS)


def run(quick: bool) -> ScenarioResult:
    """Drive the three setups together for a few lifetimes and count fetches."""
    lifetime, lifetimes = (2.0, 1.5) if quick else (3.0, 4.0)
    count = QUICK_CLIENTS if quick else CLIENTS
    setups = [
        botocreds_setup(lifetime, count),
        botocore_shared_setup(lifetime, count),
        botocore_separate_setup(lifetime, count),
    ]
    started = time.time()
    drive(setups, lifetime * lifetimes)
    elapsed = (time.time() - started) / lifetime
    counts = [setup.events(started) for setup in setups]
    per_lifetime = [len(events) / elapsed for events in counts]
    rows = [
        [
            setup.title,
            count,
            len(events),
            f"{rate:.2f}",
            sum(1 for e in events if e.thread.startswith(REQUEST_THREAD_PREFIX)),
        ]
        for setup, events, rate in zip(setups, counts, per_lifetime, strict=True)
    ]
    botocreds.shutdown()
    header = ["setup", "clients", "fetches", "fetches per lifetime", "on request threads"]
    one_per_set = 1.0 / botocreds.RefreshPolicy().fraction
    summary = (
        f"many clients: fetches per lifetime for {count} clients: botocreds "
        f"{per_lifetime[0]:.2f} (one fetch per credential set is {one_per_set:.2f}: each set "
        f"is replaced after a fraction of its lifetime), botocore shared {per_lifetime[1]:.2f} "
        f"({ratio(per_lifetime[1], per_lifetime[0])}), botocore one session per client "
        f"{per_lifetime[2]:.2f} ({ratio(per_lifetime[2], per_lifetime[0])})"
    )
    description = (
        f"{count} S3 clients per setup, {THREADS} request threads signing on every setup's "
        f"clients in turn, for {lifetimes:g} lifetimes of {lifetime:g}-s credentials; botocore's "
        "windows and botocreds' policy are scaled from an hour."
    )
    return ScenarioResult(
        5, "Many clients, one source", summary, description, tables=[markdown_table(header, rows)]
    )
