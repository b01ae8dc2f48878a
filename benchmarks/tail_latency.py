"""Scenario 2: request latency across credential refreshes, against a local moto server.

8 request threads call STS ``GetCallerIdentity`` on a moto server for several
credential lifetimes. The fetch takes 1 s and the credentials live a few
seconds. botocore's ``RefreshableCredentials`` gets its 15/10-minute windows
scaled to the same share of the lifetime; botocreds gets its default policy
with every duration scaled the same way. The two setups run one after the
other in the same process, against the same server.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from botocore.client import BaseClient

import botocreds

from ._common import (
    LATENCY_HEADER,
    Fetcher,
    FetchEvent,
    Request,
    ScenarioResult,
    botocore_credentials,
    call_sts,
    draw_latency_panel,
    hour_scale,
    latency_cells,
    markdown_table,
    moto_server,
    percentile,
    plot_path,
    ratio,
    run_request_threads,
    scaled_policy,
    seconds_to_text,
    session_for,
    sts_client,
)

THREADS = 8
FETCH_SECONDS = 1.0
SLOW_SECONDS = 0.010
PAUSE_SECONDS = 0.05  # between requests of one thread: keeps the in-process server unsaturated
PLOT = "tail_latency.png"


@dataclass(frozen=True)
class Config:
    """Credential lifetime and how many lifetimes each setup runs."""

    lifetime: float
    lifetimes: float


@dataclass
class Run:
    """The requests and fetches of one setup."""

    key: str
    title: str
    started: float
    requests: list[Request]
    fetches: list[FetchEvent]

    def latencies(self) -> list[float]:
        """Seconds per successful request."""
        return [r.seconds for r in self.requests if r.ok]

    def fetches_on_request_threads(self) -> int:
        """Fetches that ran on a request thread during the run."""
        return sum(1 for f in self.fetches if f.on_request_thread)


def warm(client: BaseClient) -> None:
    """A few untimed requests: open connections, load the STS model."""
    for _ in range(THREADS):
        call_sts(client)


def measure(key: str, title: str, fetcher: Fetcher, client: BaseClient, config: Config) -> Run:
    """Drive ``client`` from 8 threads for ``config.lifetimes`` lifetimes."""
    started = time.time()
    until = started + config.lifetime * config.lifetimes
    requests = run_request_threads(lambda _: call_sts(client), THREADS, until, pause=PAUSE_SECONDS)
    fetches = [f for f in fetcher.snapshot() if f.started >= started]
    return Run(key, title, started, requests, fetches)


def run_botocore(endpoint: str, config: Config) -> Run:
    """botocore ``RefreshableCredentials`` with scaled windows, refreshed on request threads."""
    fetcher = Fetcher("botocore", config.lifetime, FETCH_SECONDS)
    client = sts_client(
        session_for(botocore_credentials(fetcher, hour_scale(config.lifetime))), endpoint
    )
    warm(client)
    return measure("botocore", "botocore (scaled windows)", fetcher, client, config)


def run_botocreds(endpoint: str, config: Config) -> Run:
    """The same source kept fresh by a botocreds ``Refresher`` attached to the client."""
    fetcher = Fetcher("botocreds", config.lifetime, FETCH_SECONDS)
    source = botocore_credentials(fetcher, hour_scale(config.lifetime))
    client = sts_client(session_for(source), endpoint)
    with botocreds.Refresher(
        source, policy=scaled_policy(hour_scale(config.lifetime))
    ) as refresher:
        refresher.attach(client)
        warm(client)
        return measure("botocreds", "botocreds (scaled policy)", fetcher, client, config)


def table(runs: Sequence[Run]) -> str:
    """Percentiles, slow requests and fetch placement per setup."""
    rows = [
        [
            run.title,
            *latency_cells(run.requests, SLOW_SECONDS),
            len(run.fetches),
            run.fetches_on_request_threads(),
        ]
        for run in runs
    ]
    header = ["setup", *LATENCY_HEADER, "fetches", "fetches on request threads"]
    return markdown_table(header, rows)


def plot(runs: Sequence[Run], config: Config, path: Path) -> None:
    """Latency against time, one panel per setup, with each fetch shaded."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 3.2 * len(runs)), sharey=True)
    for ax, run in zip(axes, runs, strict=True):
        fetches = [(f.started, f.finished, f.on_request_thread) for f in run.fetches]
        draw_latency_panel(
            ax,
            run.started,
            run.requests,
            fetches,
            slow=SLOW_SECONDS,
            fetch_label="fetch (red: on a request thread)",
        )
        ax.set_title(f"{run.title}: {THREADS} threads, {config.lifetime:g}-s credentials")
        ax.set_ylabel("latency (ms)")
        ax.legend(loc="upper left", fontsize="small")
    axes[-1].set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool) -> ScenarioResult:
    """Run both setups against one moto server and summarize."""
    config = Config(lifetime=5.0, lifetimes=1.2) if quick else Config(lifetime=8.0, lifetimes=4.0)
    with moto_server() as endpoint:
        runs = [run_botocore(endpoint, config), run_botocreds(endpoint, config)]
    plot(runs, config, plot_path(PLOT))
    core, ours = runs
    p999 = (percentile(core.latencies(), 0.999), percentile(ours.latencies(), 0.999))
    summary = (
        f"tail latency: p99.9 botocreds {seconds_to_text(p999[1])} vs botocore "
        f"{seconds_to_text(p999[0])} ({ratio(p999[0], p999[1])}); max "
        f"{seconds_to_text(max(ours.latencies(), default=float('nan')))} vs "
        f"{seconds_to_text(max(core.latencies(), default=float('nan')))}; fetches on request "
        f"threads: botocreds {ours.fetches_on_request_threads()}, botocore "
        f"{core.fetches_on_request_threads()}"
    )
    description = (
        f"{THREADS} threads call STS `GetCallerIdentity` on a local moto server for "
        f"{config.lifetimes:g} lifetimes of {config.lifetime:g}-s credentials; each fetch "
        f"takes {FETCH_SECONDS:g} s. botocore's advisory/mandatory windows are scaled to "
        f"{config.lifetime * 900 / 3600:g} s / {config.lifetime * 600 / 3600:g} s (15 and 10 "
        "minutes of an hour); botocreds runs its default policy with every duration scaled "
        "the same way. The setups run one after the other against the same server."
    )
    return ScenarioResult(
        2,
        "Tail latency across refreshes",
        summary,
        description,
        tables=[table(runs)],
        plots=[plot_path(PLOT)],
    )
