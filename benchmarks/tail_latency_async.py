"""Scenario 8: request latency across credential refreshes on one asyncio event loop.

The asyncio twin of scenario 2. Many coroutines on one event loop call STS
``GetCallerIdentity`` through one aiobotocore client on a moto server for
several credential lifetimes, while a ticker coroutine sleeps 5 ms at a time
and records how late it wakes: how long the loop was kept from running it.
The fetch is a coroutine that sleeps 1 s (0.4 s in the quick run) and the
credentials live a few seconds.

aiobotocore's ``AioRefreshableCredentials`` gets its 15/10-minute windows
scaled to the same share of the lifetime: the request coroutine that finds the
credentials in the advisory window awaits the fetch itself, and once the
mandatory window opens every request waits for that fetch. botocreds keeps the
same kind of credentials object fresh with an ``AioRefresher`` (its default
policy with every duration scaled the same way), which mints on a thread with
its own event loop. Both setups start from credentials issued at once (no
fetch) on a client warmed beforehand, and run one after the other in the same
process, each on a fresh event loop, against the same server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import random
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import get_session

import botocreds

from ._common import (
    BOTOCORE_ADVISORY,
    BOTOCORE_MANDATORY,
    LATENCY_HEADER,
    REGION,
    REQUEST_THREAD_PREFIX,
    SECRET_KEY,
    SESSION_TOKEN,
    Request,
    ScenarioResult,
    access_key,
    credentials_mapping,
    draw_latency_panel,
    hour_scale,
    latency_cells,
    markdown_table,
    moto_server,
    percentile,
    plot_path,
    ratio,
    scaled_policy,
    seconds_to_text,
)

SLOW_SECONDS = 0.010
TICK_SECONDS = 0.005  # the ticker's sleep; any later wake-up is loop lag
# Requests per second the coroutines aim for together: each coroutine pauses
# ``coroutines / RATE`` seconds on average between requests, which keeps the
# in-process server, sharing this process and its GIL, well short of saturation.
RATE = 60.0
ACCOUNT_ID_BUILTIN = "AWS::Auth::AccountId"
PLOT = "tail_latency_async.png"


@dataclass(frozen=True)
class Config:
    """How many coroutines, how long a fetch takes, the credential lifetime, and the run.

    ``fetch`` is a fifth of ``lifetime`` or less, as in scenario 2: botocreds'
    default policy refreshes at 80 % of the lifetime, jitter pulling it earlier.
    """

    coroutines: int
    fetch: float
    lifetime: float
    lifetimes: float

    @property
    def pause(self) -> float:
        """Mean seconds between two requests of one coroutine."""
        return self.coroutines / RATE

    @property
    def seconds(self) -> float:
        """How long each setup sends requests."""
        return self.lifetime * self.lifetimes


# -- the async credential source ------------------------------------------------------


@dataclass(frozen=True)
class AsyncFetch:
    """One call of the async fetch: when it ran, and on which thread and task."""

    started: float
    finished: float
    thread: str
    task: str

    @property
    def awaited_by_request(self) -> bool:
        """Whether a request coroutine ran the fetch itself, and so waited for all of it."""
        return self.task.startswith(REQUEST_THREAD_PREFIX)


class AsyncFetcher:
    """An aiobotocore-style fetch coroutine issuing fake credentials; records every call.

    ``lifetime`` is counted from the end of the fetch; ``delay`` is how long
    the fetch sleeps, without blocking its event loop. Calls may come from any
    thread's event loop.
    """

    def __init__(self, tag: str, lifetime: float, delay: float) -> None:
        self.tag = tag
        self.lifetime = lifetime
        self.delay = delay
        self._lock = threading.Lock()
        self._serial = 0
        self.events: list[AsyncFetch] = []

    def _issue(self, expires: float) -> dict[str, str]:
        """The next credentials mapping, expiring at ``expires``."""
        with self._lock:
            self._serial += 1
            serial = self._serial
        return credentials_mapping(access_key(self.tag, serial), expires)

    def seed(self) -> dict[str, str]:
        """Credentials issued at once and not recorded: what a setup starts from."""
        return self._issue(time.time() + self.lifetime)

    async def __call__(self) -> dict[str, str]:
        """Sleep ``delay`` seconds, then return the refresh mapping."""
        started = time.time()
        await asyncio.sleep(self.delay)
        finished = time.time()
        task = asyncio.current_task()
        event = AsyncFetch(
            started,
            finished,
            threading.current_thread().name,
            task.get_name() if task is not None else "-",
        )
        with self._lock:
            self.events.append(event)
        return self._issue(finished + self.lifetime)

    def snapshot(self) -> list[AsyncFetch]:
        """A copy of the recorded calls."""
        with self._lock:
            return list(self.events)


def aio_credentials(fetcher: AsyncFetcher, scale: float) -> Any:
    """``AioRefreshableCredentials`` seeded at once, windows scaled like scenario 2's botocore."""
    return AioRefreshableCredentials.create_from_metadata(
        metadata=fetcher.seed(),
        refresh_using=fetcher,
        method="benchmark-fetch",
        advisory_timeout=BOTOCORE_ADVISORY * scale,
        mandatory_timeout=BOTOCORE_MANDATORY * scale,
    )


# -- the client -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sts_client(endpoint: str, config: Config) -> AsyncIterator[Any]:
    """An aiobotocore STS client on the moto server, signing with static credentials.

    No retries and short timeouts, as in the threaded scenarios; one pooled
    connection per ten coroutines (at least ten), far more than the requests
    in flight at once on average.
    """
    client_config = AioConfig(
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=10,
        max_pool_connections=max(10, config.coroutines // 10),
    )
    session = get_session()
    async with session.create_client(
        "sts",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key("static", 0),
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=SESSION_TOKEN,
        config=client_config,
    ) as client:
        yield client


def sign_with(client: Any, credentials: Any) -> None:
    """Make ``client`` sign with ``credentials``, as if it had been created with them."""
    client._request_signer._credentials = credentials
    builtins: dict[str, Any] = client._ruleset_resolver._builtins
    if ACCOUNT_ID_BUILTIN in builtins:
        builtins[ACCOUNT_ID_BUILTIN] = credentials.get_account_id


async def call_sts(client: Any) -> None:
    """One cheap signed request: STS ``GetCallerIdentity``."""
    await client.get_caller_identity()


async def warm(client: Any, config: Config) -> None:
    """A few untimed requests: open connections, load the STS model."""
    await asyncio.gather(*(call_sts(client) for _ in range(max(10, config.coroutines // 10))))


# -- measuring ------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    """One wake-up of the ticker: when it was due (wall clock) and how late it ran."""

    due: float
    lag: float


async def ticker(until: float) -> list[Tick]:
    """Sleep ``TICK_SECONDS`` at a time until ``until``; record how late each wake-up is."""
    ticks: list[Tick] = []
    while time.time() < until:
        due_wall = time.time() + TICK_SECONDS
        due = time.perf_counter() + TICK_SECONDS
        await asyncio.sleep(TICK_SECONDS)
        ticks.append(Tick(due_wall, max(0.0, time.perf_counter() - due)))
    return ticks


async def request_loop(client: Any, index: int, config: Config, until: float) -> list[Request]:
    """One coroutine's requests until ``until``, each timed; an exception counts as failed."""
    name = f"{REQUEST_THREAD_PREFIX}-{index}"
    mine: list[Request] = []
    # Random pauses around the mean (seeded per coroutine): the coroutines do not
    # send in step, and a crowd released at once disperses again.
    jitter = random.Random(index)
    await asyncio.sleep(jitter.uniform(0.0, config.pause))
    while time.time() < until:
        started = time.time()
        tick = time.perf_counter()
        try:
            await call_sts(client)
            ok = True
        except Exception:
            ok = False
        mine.append(Request(started, time.perf_counter() - tick, ok, name))
        pause = jitter.uniform(0.5, 1.5) * config.pause
        if time.time() + pause >= until:
            break
        await asyncio.sleep(pause)
    return mine


@dataclass
class Run:
    """The requests, fetches and ticker wake-ups of one setup."""

    key: str
    title: str
    started: float
    requests: list[Request]
    fetches: list[AsyncFetch]
    ticks: list[Tick]

    def latencies(self) -> list[float]:
        """Seconds per successful request."""
        return [r.seconds for r in self.requests if r.ok]

    def fetches_awaited_by_requests(self) -> int:
        """Fetches that a request coroutine ran, and waited for, during the run."""
        return sum(1 for f in self.fetches if f.awaited_by_request)

    def lag_during_fetches(self) -> list[float]:
        """Ticker lag, in seconds, of the wake-ups due while a fetch was running."""
        return [
            t.lag for t in self.ticks if any(f.started <= t.due <= f.finished for f in self.fetches)
        ]

    def lags(self) -> list[float]:
        """Ticker lag, in seconds, of every wake-up."""
        return [t.lag for t in self.ticks]


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect, then exempt every object alive now from garbage collection, for a while.

    botocore's models and the server's state are many long-lived objects; a
    full collection walking them all would stop the loop for tens of
    milliseconds at a random moment of one setup or the other.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def measure(key: str, title: str, fetcher: AsyncFetcher, client: Any, config: Config) -> Run:
    """Drive ``client`` from ``config.coroutines`` coroutines while the ticker runs."""
    started = time.time()
    until = started + config.seconds
    ticks = asyncio.create_task(ticker(until), name="bench-ticker")
    loops = [
        asyncio.create_task(
            request_loop(client, i, config, until), name=f"{REQUEST_THREAD_PREFIX}-{i}"
        )
        for i in range(config.coroutines)
    ]
    per_loop = await asyncio.gather(*loops)
    requests = sorted((r for rs in per_loop for r in rs), key=lambda r: r.started)
    fetches = [f for f in fetcher.snapshot() if started <= f.started < until]
    return Run(key, title, started, requests, fetches, await ticks)


async def run_botocore(endpoint: str, config: Config) -> Run:
    """aiobotocore ``AioRefreshableCredentials`` with scaled windows, refreshed by requests."""
    fetcher = AsyncFetcher("aiobotocore", config.lifetime, config.fetch)
    async with sts_client(endpoint, config) as client:
        await warm(client, config)
        with frozen_heap():
            sign_with(client, aio_credentials(fetcher, hour_scale(config.lifetime)))
            return await measure(
                "aiobotocore", "aiobotocore (scaled windows)", fetcher, client, config
            )


async def run_botocreds(endpoint: str, config: Config) -> Run:
    """The same kind of credentials kept fresh by a botocreds ``AioRefresher``."""
    fetcher = AsyncFetcher("botocreds", config.lifetime, config.fetch)
    scale = hour_scale(config.lifetime)
    async with sts_client(endpoint, config) as client:
        await warm(client, config)
        with frozen_heap():
            credentials = aio_credentials(fetcher, scale)
            sign_with(client, credentials)
            # The eager first mint blocks its caller for one fetch: keep it off this loop.
            refresher = await asyncio.to_thread(
                botocreds.AioRefresher, credentials, policy=scaled_policy(scale)
            )
            with refresher:
                refresher.attach(client)
                return await measure(
                    "botocreds", "botocreds (scaled policy)", fetcher, client, config
                )


# -- reporting ------------------------------------------------------------------------


def table(runs: Sequence[Run]) -> str:
    """Percentiles, slow requests, fetch placement and loop lag per setup."""
    rows = []
    for run in runs:
        lag = run.lag_during_fetches()
        rows.append(
            [
                run.title,
                *latency_cells(run.requests, SLOW_SECONDS),
                len(run.fetches),
                run.fetches_awaited_by_requests(),
                seconds_to_text(percentile(lag, 0.99)),
                seconds_to_text(max(lag, default=math.nan)),
                seconds_to_text(max(run.lags(), default=math.nan)),
            ]
        )
    header = [
        "setup",
        *LATENCY_HEADER,
        "fetches",
        "fetches awaited by requests",
        "loop lag p99 during fetches",
        "loop lag max during fetches",
        "loop lag max",
    ]
    return markdown_table(header, rows)


def plot(runs: Sequence[Run], config: Config, path: Path) -> None:
    """Latency and loop lag against time, one panel per setup, with each fetch shaded."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 3.2 * len(runs)), sharey=True)
    for ax, run in zip(axes, runs, strict=True):
        fetches = [(f.started, f.finished, f.awaited_by_request) for f in run.fetches]
        draw_latency_panel(
            ax,
            run.started,
            run.requests,
            fetches,
            slow=SLOW_SECONDS,
            fetch_label="fetch (red: awaited by a request)",
        )
        ax.plot(
            [t.due - run.started for t in run.ticks],
            [max(t.lag, 1e-5) * 1000 for t in run.ticks],
            color="tab:purple",
            linewidth=0.6,
            alpha=0.7,
            label="loop lag (ticker)",
        )
        ax.set_title(
            f"{run.title}: {config.coroutines} coroutines on one loop, "
            f"{config.lifetime:g}-s credentials"
        )
        ax.set_ylabel("ms")
        ax.legend(loc="upper left", fontsize="small")
    axes[-1].set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the async hot path --------------------------------------------------------------------

HOT_BATCH = 2_000


async def _time_awaits(credentials: Any, batch: int) -> float:
    """Nanoseconds per ``await credentials.get_frozen_credentials()``, over one batch."""
    read = credentials.get_frozen_credentials
    started = time.perf_counter_ns()
    for _ in range(batch):
        await read()
    return (time.perf_counter_ns() - started) / batch


async def hot_path(rounds: int) -> dict[str, float]:
    """Median cost of the awaited credentials read for static, aiobotocore and botocreds.

    aiobotocore's ``AioRefreshableCredentials`` holds 1-hour credentials, outside its
    refresh windows (its best case); botocreds keeps the same kind of object fresh.
    Every round times one batch of each, rotating the order; garbage collection is off.
    """
    from aiobotocore.credentials import AioCredentials

    async def fetch() -> dict[str, str]:
        expiry = time.time() + 3600
        return {
            "access_key": "ASIAHOTPATH000000001",
            "secret_key": "hot-path-secret",
            "token": "hot-path-token",
            "expiry_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry)),
        }

    refreshable = AioRefreshableCredentials.create_from_metadata(await fetch(), fetch, "hot")
    kept_fresh = AioRefreshableCredentials.create_from_metadata(await fetch(), fetch, "hot")
    setups: dict[str, Any] = {"static": AioCredentials("AKIAHOTPATH000000001", "hot-path-secret")}
    setups["aiobotocore"] = refreshable
    with await asyncio.to_thread(botocreds.AioRefresher, kept_fresh) as refresher:
        setups["botocreds"] = refresher.credentials
        samples: dict[str, list[float]] = {name: [] for name in setups}
        names = list(setups)
        with frozen_heap():
            for turn in range(rounds):
                for name in names[turn % 3 :] + names[: turn % 3]:
                    samples[name].append(await _time_awaits(setups[name], HOT_BATCH))
    return {name: statistics.median(values) for name, values in samples.items()}


def hot_path_table(medians: dict[str, float]) -> str:
    """The awaited credentials read: nanoseconds and the ratio to static credentials."""
    rows = [
        [name, f"{value:.0f}", ratio(value, medians["static"])] for name, value in medians.items()
    ]
    return markdown_table(["await get_frozen_credentials()", "ns per call", "vs static"], rows)


def run(quick: bool) -> ScenarioResult:
    """Run both setups against one moto server, each on its own event loop, and summarize."""
    config = (
        Config(coroutines=50, fetch=0.4, lifetime=2.5, lifetimes=1.0)
        if quick
        else Config(coroutines=200, fetch=1.0, lifetime=8.0, lifetimes=3.0)
    )
    with moto_server() as endpoint:
        runs = [
            asyncio.run(run_botocore(endpoint, config)),
            asyncio.run(run_botocreds(endpoint, config)),
        ]
    plot(runs, config, plot_path(PLOT))
    hot = asyncio.run(hot_path(rounds=7 if quick else 31))
    core, ours = runs
    p999 = (percentile(core.latencies(), 0.999), percentile(ours.latencies(), 0.999))
    lag = (
        max(core.lag_during_fetches(), default=math.nan),
        max(ours.lag_during_fetches(), default=math.nan),
    )
    summary = (
        f"async tail latency: fetches awaited by requests aiobotocore "
        f"{core.fetches_awaited_by_requests()} vs botocreds {ours.fetches_awaited_by_requests()}; "
        f"p99.9 aiobotocore {seconds_to_text(p999[0])} vs botocreds {seconds_to_text(p999[1])} "
        f"({ratio(p999[0], p999[1])}); max "
        f"{seconds_to_text(max(core.latencies(), default=math.nan))} vs "
        f"{seconds_to_text(max(ours.latencies(), default=math.nan))}; loop lag max during "
        f"fetches {seconds_to_text(lag[0])} vs {seconds_to_text(lag[1])}; awaited "
        f"get_frozen_credentials() (static = 1.00x) aiobotocore "
        f"{ratio(hot['aiobotocore'], hot['static'])} vs botocreds "
        f"{ratio(hot['botocreds'], hot['static'])}"
    )
    description = (
        f"{config.coroutines} coroutines on one asyncio event loop call STS "
        f"`GetCallerIdentity` through one aiobotocore client on a local moto server for "
        f"{config.seconds:g} s ({config.lifetimes:g}x the lifetime of {config.lifetime:g}-s "
        f"credentials), about {RATE:g} requests per second together, at random intervals; a "
        f"ticker coroutine sleeping {TICK_SECONDS * 1000:g} ms at a time measures how late "
        f"the loop wakes it. Each fetch is a coroutine that sleeps {config.fetch:g} s. "
        "aiobotocore's "
        "`AioRefreshableCredentials` has its advisory/mandatory windows scaled to "
        f"{config.lifetime * 900 / 3600:.3g} s / {config.lifetime * 600 / 3600:.3g} s (15 and 10 "
        "minutes of an hour); botocreds keeps the same kind of credentials object fresh with "
        "an `AioRefresher` running its default policy with every duration scaled the same "
        "way, minting on its own thread and event loop. A fetch is awaited by requests when "
        "a request coroutine ran it; loop lag during fetches counts the ticker's wake-ups due "
        "while a fetch ran. The objects alive before each setup starts are exempted from "
        "garbage collection, so that a full collection does not land in one setup's figures "
        "by chance. The setups run one after the other, each on a fresh event loop, against "
        "the same server. The hot-path table times `await credentials.get_frozen_credentials()` "
        f"in batches of {HOT_BATCH:,}, rotating the order every round, for static "
        "`AioCredentials`, aiobotocore's `AioRefreshableCredentials` with 1-hour credentials "
        "(outside its refresh windows) and botocreds' `AioBackgroundCredentials`; medians."
    )
    return ScenarioResult(
        8,
        "Tail latency across refreshes, asyncio",
        summary,
        description,
        tables=[table(runs), hot_path_table(hot)],
        plots=[plot_path(PLOT)],
    )
