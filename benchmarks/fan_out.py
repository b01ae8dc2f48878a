"""Scenario 4: fan-out, 1 to 1,000 refreshers in one process, each with its own source.

For each N, side by side with N botocore ``RefreshableCredentials`` (which
own no thread and refresh only when a request reads them):

* threads: ``threading.active_count()`` after the objects exist, minus before;
* memory: Python heap allocated by building the objects (``tracemalloc``), which,
  unlike RSS, does not hide growth behind memory the allocator already holds;
* idle CPU: process CPU time (user + system, ``time.process_time``) over a few idle seconds with
  1-hour credentials, so nothing is due, scaled to one minute;
* fetches per lifetime: with short-lived credentials, fetches per source per
  credential lifetime. botocreds refreshes on its own; the botocore objects
  are read by a sweep over all of them every few milliseconds, standing in
  for requests.
"""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from botocore.credentials import RefreshableCredentials

import botocreds

from ._common import (
    Fetcher,
    ScenarioResult,
    botocore_credentials,
    hour_scale,
    markdown_table,
    plot_path,
    ratio,
    scaled_policy,
)

IDLE_LIFETIME = 3600.0
SWEEP_PAUSE = 0.01
PLOT = "fan_out.png"


@dataclass(frozen=True)
class Plan:
    """The sizes to try and how long to measure each."""

    sizes: tuple[int, ...]
    idle_seconds: float
    lifetime: float
    lifetimes: float


@dataclass
class Footprint:
    """What N objects of one kind cost while idle."""

    threads: int
    heap_bytes: int
    cpu_per_minute: float


@dataclass
class Row:
    """Both setups at one N."""

    n: int
    botocore: Footprint
    botocreds: Footprint
    botocore_per_lifetime: float
    botocreds_per_lifetime: float


def heap() -> int:
    """Bytes currently allocated by Python (tracemalloc), after a full collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def cpu_seconds() -> float:
    """User plus system CPU time of every thread of this process so far (ns resolution)."""
    return time.process_time()


def idle_cpu_per_minute(seconds: float) -> float:
    """CPU seconds this process spends per minute while the main thread sleeps."""
    before = cpu_seconds()
    time.sleep(seconds)
    return (cpu_seconds() - before) * 60.0 / seconds


def footprint(build: Callable[[], object], idle_seconds: float) -> tuple[Footprint, object]:
    """Build the objects and measure threads, heap and idle CPU against the state before."""
    tracemalloc.start()
    try:
        threads, memory = threading.active_count(), heap()
        built = build()
        time.sleep(0.2)  # let any start-up thread settle
        grown = Footprint(threading.active_count() - threads, heap() - memory, 0.0)
    finally:
        tracemalloc.stop()
    grown.cpu_per_minute = idle_cpu_per_minute(idle_seconds)
    return grown, built


def botocore_sources(n: int, lifetime: float, scale: float | None) -> list[RefreshableCredentials]:
    """N botocore credentials objects, each with its own fetch function."""
    return [botocore_credentials(Fetcher(f"core{i}", lifetime), scale) for i in range(n)]


def refreshers(
    sources: Sequence[RefreshableCredentials], policy: botocreds.RefreshPolicy
) -> list[botocreds.Refresher]:
    """One botocreds ``Refresher`` per source."""
    return [botocreds.Refresher(source, policy=policy) for source in sources]


def close_all(items: Sequence[botocreds.Refresher]) -> None:
    """Close every refresher."""
    for item in items:
        item.close()


def idle_footprints(n: int, plan: Plan) -> tuple[Footprint, Footprint]:
    """Threads, memory and idle CPU of N botocore objects, then of N refreshers."""
    core, core_objects = footprint(
        lambda: botocore_sources(n, IDLE_LIFETIME, None), plan.idle_seconds
    )
    del core_objects
    sources = botocore_sources(n, IDLE_LIFETIME, None)
    ours, built = footprint(
        lambda: refreshers(sources, botocreds.RefreshPolicy()), plan.idle_seconds
    )
    assert isinstance(built, list)
    close_all(built)
    return core, ours


def fetch_rates(n: int, plan: Plan) -> tuple[float, float]:
    """Fetches per source per lifetime, botocore (swept) and botocreds, run together."""
    scale = hour_scale(plan.lifetime)
    core_fetchers = [Fetcher(f"core{i}", plan.lifetime) for i in range(n)]
    core = [botocore_credentials(f, scale) for f in core_fetchers]
    our_fetchers = [Fetcher(f"ours{i}", plan.lifetime) for i in range(n)]
    ours = refreshers([botocore_credentials(f) for f in our_fetchers], scaled_policy(scale))
    before_core = sum(f.calls for f in core_fetchers)
    before_ours = sum(f.calls for f in our_fetchers)
    started = time.monotonic()
    deadline = started + plan.lifetime * plan.lifetimes
    while time.monotonic() < deadline:
        for credentials in core:
            credentials.get_frozen_credentials()
        time.sleep(SWEEP_PAUSE)
    lifetimes = (time.monotonic() - started) / plan.lifetime
    close_all(ours)
    core_count = sum(f.calls for f in core_fetchers) - before_core
    our_count = sum(f.calls for f in our_fetchers) - before_ours
    return core_count / n / lifetimes, our_count / n / lifetimes


def measure(n: int, plan: Plan) -> Row:
    """Every figure for one N."""
    core, ours = idle_footprints(n, plan)
    core_rate, our_rate = fetch_rates(n, plan)
    gc.collect()
    return Row(n, core, ours, core_rate, our_rate)


def table(rows: Sequence[Row]) -> str:
    """One line per N, botocore and botocreds side by side."""
    header = [
        "N",
        "threads botocore / botocreds",
        "heap added botocore / botocreds",
        "idle CPU per minute botocore / botocreds",
        "fetches per source per lifetime botocore / botocreds",
    ]
    body = [
        [
            f"{row.n:,}",
            f"{row.botocore.threads} / {row.botocreds.threads}",
            f"{row.botocore.heap_bytes / 2**20:.2f} MiB / "
            f"{row.botocreds.heap_bytes / 2**20:.2f} MiB",
            f"{row.botocore.cpu_per_minute * 1000:.1f} ms / "
            f"{row.botocreds.cpu_per_minute * 1000:.1f} ms",
            f"{row.botocore_per_lifetime:.2f} / {row.botocreds_per_lifetime:.2f}",
        ]
        for row in rows
    ]
    return markdown_table(header, body)


def plot(rows: Sequence[Row], path: Path) -> None:
    """Each figure against N on a log x axis, botocore and botocreds."""
    ns = [row.n for row in rows]
    panels: list[tuple[str, Callable[[Row], tuple[float, float]]]] = [
        ("threads added", lambda r: (r.botocore.threads, r.botocreds.threads)),
        (
            "Python heap added (MiB)",
            lambda r: (r.botocore.heap_bytes / 2**20, r.botocreds.heap_bytes / 2**20),
        ),
        (
            "idle CPU (ms per minute)",
            lambda r: (r.botocore.cpu_per_minute * 1000, r.botocreds.cpu_per_minute * 1000),
        ),
        (
            "fetches per source per lifetime",
            lambda r: (r.botocore_per_lifetime, r.botocreds_per_lifetime),
        ),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (label, pick) in zip(axes.flat, panels, strict=True):
        pairs = [pick(row) for row in rows]
        ax.plot(ns, [p[0] for p in pairs], "o-", label="botocore RefreshableCredentials")
        ax.plot(ns, [p[1] for p in pairs], "s-", label="botocreds Refresher")
        ax.set_xscale("log")
        ax.set_xlabel("N (sources in the process)")
        ax.set_title(label)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool) -> ScenarioResult:
    """Measure every N, plot and summarize."""
    plan = Plan((1, 100), 0.5, 1.5, 1.0) if quick else Plan((1, 10, 100, 1000), 3.0, 2.0, 2.0)
    rows = [measure(n, plan) for n in plan.sizes]
    plot(rows, plot_path(PLOT))
    top = rows[-1]
    summary = (
        f"fan-out at N={top.n:,}: botocreds adds {top.botocreds.threads} thread(s), "
        f"{top.botocreds.heap_bytes / 2**20:.1f} MiB, {top.botocreds.cpu_per_minute * 1000:.0f} ms "
        f"CPU/min idle (botocore {top.botocore.heap_bytes / 2**20:.1f} MiB, "
        f"{top.botocore.cpu_per_minute * 1000:.0f} ms); fetches per source per lifetime "
        f"{top.botocreds_per_lifetime:.2f} vs botocore {top.botocore_per_lifetime:.2f} "
        f"({ratio(top.botocreds_per_lifetime, top.botocore_per_lifetime)})"
    )
    description = (
        f"N sources in one process, N in {', '.join(f'{n:,}' for n in plan.sizes)}. Idle "
        f"figures use 1-hour credentials (nothing due) and {plan.idle_seconds:g} s of idle "
        f"time; fetch rates use {plan.lifetime:g}-s credentials over {plan.lifetimes:g} "
        "lifetimes, botocore's windows and botocreds' policy scaled from an hour, and a sweep "
        f"reading every botocore object every {SWEEP_PAUSE * 1000:g} ms. Memory deltas of "
        "botocreds exclude the botocore source objects it wraps."
    )
    return ScenarioResult(
        4, "Fan-out", summary, description, tables=[table(rows)], plots=[plot_path(PLOT)]
    )
