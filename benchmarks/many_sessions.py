"""Scenario 11: many sessions, one source: fetches at startup, refreshers, fetches per lifetime.

20 ``boto3.Session()`` objects over one profile, one STS client each, in four
variants: plain boto3, ``botocreds.wrap`` on every session, the client plugin
(``BOTOCORE_EXPERIMENTAL__PLUGINS``) and ``botocreds.install()``. Each
variant runs in fresh interpreters (``benchmarks/_child.py``), all at once, on
a counted ``credential_process`` (``tests/_process_creds.py``) that sleeps
like a real source; plain boto3's steady state runs alone, apart from the
others':

* startup: the 20 sessions and clients are made from 20 threads at once, and
  (in another interpreter) one after another, on long-lived credentials so
  that nothing refreshes meanwhile; the fetches are counted, and the
  refreshers are the distinct objects the clients' credentials are kept by
  (a botocreds refresher, or each botocore ``RefreshableCredentials``);
* steady state: 20 more sessions and clients on a second profile whose
  credentials are short-lived (4 s with ``--quick``) are driven for a few
  lifetimes, each client signing a request (a presigned URL: no network)
  every half second, and the fetches are counted per lifetime. botocore
  refreshes its own credentials on a request thread once they are within 15
  minutes of expiry, which short-lived credentials always are; botocreds'
  policy comes from ``BOTOCREDS_FLOOR`` (``install()``, the plugin) or the
  same ``RefreshPolicy`` passed to ``wrap``.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import botocreds
from tests._process_creds import read_state

from ._common import (
    VARIANT_TITLES,
    VARIANTS,
    CountedProfile,
    ScenarioResult,
    aws_config,
    finish_child,
    fresh_environment,
    markdown_table,
    start_child,
)

SESSIONS = 20
STARTUP_LIFETIME = 3600.0
PAUSE_SECONDS = 0.5


def start_variant(
    variant: str,
    mode: str,
    directory: Path,
    *,
    lifetime: float,
    delay: float,
    floor: float,
    seconds: float,
) -> subprocess.Popen[str]:
    """Start one fresh interpreter of ``variant``; with ``seconds``, also a steady state."""
    startup = CountedProfile("default", directory / "startup", STARTUP_LIFETIME, delay)
    profiles = [startup]
    steady_dir = "-"
    if seconds > 0:
        steady = CountedProfile("steady", directory / "steady", lifetime, delay)
        profiles.append(steady)
        steady_dir = str(steady.state_dir)
    environment = fresh_environment(
        aws_config(directory, profiles), variant, {"BOTOCREDS_FLOOR": f"{floor:g}"}
    )
    arguments = [
        "sessions",
        variant,
        mode,
        str(SESSIONS),
        str(startup.state_dir),
        steady_dir,
        f"{seconds:g}",
        f"{PAUSE_SECONDS:g}",
        f"{floor:g}",
    ]
    return start_child(arguments, environment)


def measure(
    lifetime: float, lifetimes: float, delay: float, floor: float
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(threads-at-once reports, one-after-another reports) for every variant.

    The one-after-another interpreters run all at once (they only start up);
    of the threads-at-once ones, which also drive the steady state, plain
    boto3's (a fetch on nearly every request) runs alone, so that its load
    does not starve botocreds' refreshes.
    """

    def start(variant: str, mode: str, scratch: Path) -> subprocess.Popen[str]:
        return start_variant(
            variant,
            mode,
            scratch / f"{variant}-{mode}",
            lifetime=lifetime,
            delay=delay,
            floor=floor,
            seconds=lifetime * lifetimes if mode == "threads" else 0.0,
        )

    with tempfile.TemporaryDirectory() as scratch:
        started = {(v, "sequential"): start(v, "sequential", Path(scratch)) for v in VARIANTS}
        reports = {key: finish_child(child) for key, child in started.items()}
        # Plain boto3 runs a fetch on nearly every request: it runs alone.
        light = [v for v in VARIANTS if v != "boto3"]
        for group in (["boto3"], light):
            running = {v: start(v, "threads", Path(scratch)) for v in group}
            for variant, child in running.items():
                reports[variant, "threads"] = finish_child(child)
        for variant in VARIANTS:
            steady = Path(scratch) / f"{variant}-threads" / "steady"
            issued = read_state(steady)[1].values()
            reports[variant, "threads"]["issued"] = sorted(e - lifetime for e in issued)
    threads = {variant: reports[variant, "threads"] for variant in VARIANTS}
    sequential = {variant: reports[variant, "sequential"] for variant in VARIANTS}
    return threads, sequential


def fetches_per_lifetime(report: dict[str, Any], lifetime: float) -> float:
    """Steady-state fetches per lifetime, from the times the source issued credentials.

    The fetches issued during the steady state, divided by the time from the
    last fetch before it to the last one in it: a handful of periodic
    refreshes counted over a fixed window would be off by up to one.
    """
    issued: list[float] = report["issued"]
    before = [t for t in issued if t < report["steady_started"]]
    during = [t for t in issued if report["steady_started"] <= t <= report["steady_ended"]]
    if not before or not during:
        return 0.0
    return len(during) / ((during[-1] - before[-1]) / lifetime)


def run(quick: bool) -> ScenarioResult:
    """Make 20 sessions per variant, count fetches and refreshers, then drive a steady state."""
    lifetime, lifetimes, delay, floor = (4.0, 2.0, 0.2, 1.0) if quick else (15.0, 4.0, 0.5, 2.0)
    threads, sequential = measure(lifetime, lifetimes, delay, floor)
    per_lifetime = {v: fetches_per_lifetime(threads[v], lifetime) for v in VARIANTS}
    rows = [
        [
            VARIANT_TITLES[v],
            threads[v]["startup_fetches"],
            sequential[v]["startup_fetches"],
            threads[v]["refreshers"],
            f"{threads[v]['covered']}/{SESSIONS}",
            threads[v]["steady_fetches"],
            f"{per_lifetime[v]:.2f}",
            f"{threads[v]['requests']:,}",
            threads[v]["failed"],
        ]
        for v in VARIANTS
    ]
    header = [
        "variant",
        "fetches at startup, 20 threads at once",
        "fetches at startup, one after another",
        "refreshers",
        "clients signing with botocreds",
        "fetches, steady state",
        "fetches per lifetime",
        "requests",
        "failed",
    ]
    one_per_set = 1.0 / botocreds.RefreshPolicy().fraction
    summary = (
        f"many sessions: fetches at startup for {SESSIONS} sessions from {SESSIONS} threads: "
        + ", ".join(f"{v} {threads[v]['startup_fetches']}" for v in VARIANTS)
        + " (one after another: "
        + ", ".join(f"{v} {sequential[v]['startup_fetches']}" for v in VARIANTS)
        + "); refreshers: "
        + ", ".join(f"{v} {threads[v]['refreshers']}" for v in VARIANTS)
        + "; fetches per lifetime: "
        + ", ".join(f"{v} {per_lifetime[v]:.2f}" for v in VARIANTS)
        + f" (one per set is {one_per_set:.2f})"
    )
    description = (
        f"{SESSIONS} `boto3.Session()` objects over one `credential_process` profile "
        f"({delay:g}-s fetches), one STS client each, per variant; every variant in fresh "
        f"interpreters. Steady state: {SESSIONS} more sessions on "
        f"{lifetime:g}-s credentials, each client signing every {PAUSE_SECONDS:g} s for "
        f"{lifetimes:g} lifetimes, plain boto3's apart from the botocreds variants' (which run "
        f"together); botocreds' floor is {floor:g} s."
    )
    return ScenarioResult(
        number=11,
        title="Many sessions, one source",
        summary=summary,
        description=description,
        tables=[markdown_table(header, rows)],
        notes=[
            "`refreshers` counts the distinct objects the clients' credentials are kept by: a "
            "botocreds refresher, or each session's own botocore `RefreshableCredentials`.",
            "`fetches per lifetime`: the steady-state fetches over the lifetimes from the last "
            "fetch before the steady state to the last one in it; botocore refreshes "
            "short-lived credentials on every request.",
        ],
    )
