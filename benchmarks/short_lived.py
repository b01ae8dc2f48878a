"""Scenario 3: 15-minute credentials (the STS minimum), fetches per 100 requests.

botocore's advisory window is 15 minutes, so credentials that live 15 minutes
are inside it from the moment they arrive: botocore refreshes them on every
request (botocore#2189). Four setups are signed in lockstep, one request each
per tick, in one loop:

* botocore and botocreds with 900-s credentials time-scaled to a few seconds,
  botocore's windows and botocreds' policy scaled by the same factor;
* botocore and botocreds with real, unscaled 900-s credentials and their
  default windows and policy.

A request here is one presigned S3 URL: a full signing, no network.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass

from botocore.client import BaseClient

import botocreds

from ._common import (
    Fetcher,
    ScenarioResult,
    botocore_credentials,
    markdown_table,
    ratio,
    s3_client,
    scaled_policy,
    session_for,
    sign_once,
)

STS_MINIMUM = 900.0


@dataclass
class Setup:
    """One client and the fetch function behind its credentials."""

    title: str
    client: BaseClient
    fetcher: Fetcher
    baseline: int = 0
    requests: int = 0
    failed: int = 0

    def fetches(self) -> int:
        """Fetches since the measured loop started."""
        return self.fetcher.calls - self.baseline

    def per_100(self) -> float:
        """Fetches per 100 requests."""
        return 100.0 * self.fetches() / self.requests if self.requests else float("nan")


def botocore_setup(title: str, lifetime: float, scale: float | None) -> Setup:
    """botocore ``RefreshableCredentials``; windows scaled by ``scale`` unless it is None."""
    fetcher = Fetcher(title, lifetime)
    return Setup(title, s3_client(session_for(botocore_credentials(fetcher, scale))), fetcher)


def botocreds_setup(
    title: str, lifetime: float, policy: botocreds.RefreshPolicy, stack: ExitStack
) -> Setup:
    """A botocreds ``Refresher`` over the same kind of source, attached to an S3 client."""
    fetcher = Fetcher(title, lifetime)
    source = botocore_credentials(fetcher)
    client = s3_client(session_for(source))
    refresher = stack.enter_context(botocreds.Refresher(source, policy=policy))
    refresher.attach(client)
    return Setup(title, client, fetcher)


def drive(setups: list[Setup], seconds: float, tick: float) -> None:
    """One request per setup per ``tick`` for ``seconds``; failures are counted."""
    for setup in setups:
        setup.baseline = setup.fetcher.calls
    deadline = time.monotonic() + seconds
    next_tick = time.monotonic()
    while time.monotonic() < deadline:
        for setup in setups:
            setup.requests += 1
            try:
                sign_once(setup.client)
            except Exception:
                setup.failed += 1
        next_tick += tick
        time.sleep(max(0.0, next_tick - time.monotonic()))


def run(quick: bool) -> ScenarioResult:
    """Build the four setups, drive them in lockstep and summarize."""
    lifetime, lifetimes, tick = (2.0, 1.5, 0.02) if quick else (3.0, 3.0, 0.02)
    scale = lifetime / STS_MINIMUM
    with ExitStack() as stack:
        setups = [
            botocore_setup("botocore, scaled", lifetime, scale),
            botocreds_setup("botocreds, scaled", lifetime, scaled_policy(scale), stack),
            botocore_setup("botocore, real 900 s", STS_MINIMUM, None),
            botocreds_setup("botocreds, real 900 s", STS_MINIMUM, botocreds.RefreshPolicy(), stack),
        ]
        drive(setups, lifetime * lifetimes, tick)
    rows = [[s.title, s.requests, s.failed, s.fetches(), f"{s.per_100():.1f}"] for s in setups]
    header = ["setup", "requests", "failed", "fetches", "fetches per 100 requests"]
    core, ours, core_real, ours_real = setups
    summary = (
        f"short-lived: fetches per 100 requests, scaled: botocore {core.per_100():.1f} vs "
        f"botocreds {ours.per_100():.1f} ({ratio(core.per_100(), ours.per_100())}); "
        f"real 900 s: botocore {core_real.per_100():.1f} vs botocreds {ours_real.per_100():.1f}"
    )
    description = (
        f"900-s credentials scaled to {lifetime:g} s (factor {scale:.5f}; botocore's windows "
        f"become {900 * scale:g} s / {600 * scale:g} s and every botocreds duration is scaled "
        f"alike), next to unscaled 900-s credentials with the default windows and policy. "
        f"One presigned S3 URL per setup every {tick * 1000:g} ms for {lifetimes:g} scaled "
        "lifetimes; the fetch is instant."
    )
    return ScenarioResult(
        3,
        "Short-lived credentials",
        summary,
        description,
        tables=[markdown_table(header, rows)],
    )
