"""Scenario 10: startup: source fetches, and the time to the first signed request.

Four ways of starting a process that makes one signed request (STS
``GetCallerIdentity`` to a moto server on 127.0.0.1, through
``AWS_ENDPOINT_URL``):

* plain boto3: ``boto3.Session().client("sts")``;
* ``botocreds.wrap(boto3.Session())``, then the client;
* the client plugin: plain boto3 code, with
  ``BOTOCORE_EXPERIMENTAL__PLUGINS=botocreds=botocreds.plugin``;
* ``botocreds.install()``, then plain boto3 code.

``install()`` and the plugin change the whole process, so every run starts a
fresh interpreter (``benchmarks/_child.py``). The credentials come from a
``credential_process`` (``tests/_process_creds.py``) that sleeps like a real
source (0.2 s with ``--quick``, 1 s otherwise) and counts its runs, so the
fetches at startup are counted, not inferred. The time is from the child's
first line to the response, imports of boto3 and botocreds included; each
round runs the variants in an order that rotates between rounds, after one
warm-up round, and figures are medians.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from ._common import (
    VARIANT_TITLES,
    VARIANTS,
    CountedProfile,
    ScenarioResult,
    aws_config,
    finish_child,
    fresh_environment,
    markdown_table,
    moto_server,
    start_child,
)

LIFETIME = 3600.0  # nothing refreshes while the process starts


def times(numerator: float, denominator: float) -> str:
    """``numerator / denominator`` to two decimals, as ``"1.05x"``."""
    return f"{numerator / denominator:.2f}x" if denominator > 0 else "n/a"


def run_variant(variant: str, directory: Path, endpoint: str, delay: float) -> dict[str, Any]:
    """One fresh interpreter of ``variant``, with its own counted source; its report."""
    profile = CountedProfile("default", directory, LIFETIME, delay)
    environment = fresh_environment(
        aws_config(directory, [profile]), variant, {"AWS_ENDPOINT_URL": endpoint}
    )
    return finish_child(start_child(["startup", variant, str(directory)], environment))


def measure(rounds: int, delay: float) -> dict[str, list[dict[str, Any]]]:
    """Every variant's reports over ``rounds`` rotating rounds, after one warm-up round."""
    samples: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as scratch:
        for round_number in range(-1, rounds):
            shift = max(round_number, 0) % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                directory = Path(scratch) / f"{variant}-{round_number + 1}"
                report = run_variant(variant, directory, endpoint, delay)
                if round_number >= 0:  # the warm-up round writes the bytecode caches
                    samples[variant].append(report)
    return samples


def fetch_counts(reports: list[dict[str, Any]]) -> str:
    """The fetches at startup over the rounds: ``"1"``, or ``"1-2"`` if they varied."""
    counts = sorted({int(r["fetches"]) for r in reports})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def run(quick: bool) -> ScenarioResult:
    """Start each variant in fresh interpreters; count fetches and time the first request."""
    rounds, delay = (3, 0.2) if quick else (10, 1.0)
    samples = measure(rounds, delay)
    total = {v: statistics.median(r["total"] for r in samples[v]) for v in VARIANTS}
    imports = {v: statistics.median(r["imports"] for r in samples[v]) for v in VARIANTS}
    after = {v: statistics.median(r["after_imports"] for r in samples[v]) for v in VARIANTS}
    fetches = {v: fetch_counts(samples[v]) for v in VARIANTS}
    reference = total["boto3"]
    rows = [
        [
            VARIANT_TITLES[v],
            fetches[v],
            f"{total[v] * 1000:.0f}",
            f"{imports[v] * 1000:.0f}",
            f"{after[v] * 1000:.0f}",
            times(total[v], reference),
            "yes" if all(r["covered"] for r in samples[v]) else "no",
        ]
        for v in VARIANTS
    ]
    header = [
        "variant",
        "fetches at startup",
        "ms to first signed request",
        "of which imports",
        "after imports",
        "vs plain boto3",
        "signs with botocreds",
    ]
    summary = (
        "startup: fetches at startup: "
        + ", ".join(f"{v} {fetches[v]}" for v in VARIANTS)
        + f"; time to first signed request vs plain boto3 ({reference * 1000:.0f} ms): "
        + ", ".join(f"{v} {times(total[v], reference)}" for v in VARIANTS if v != "boto3")
    )
    description = (
        f"One process per variant and round, {rounds} rounds in rotating order after a warm-up "
        f"round; one STS `GetCallerIdentity` to a local moto server, signed with credentials "
        f"from a counted `credential_process` that takes {delay:g} s. Times run from the "
        "child's first line to the response, imports included; medians over the rounds."
    )
    return ScenarioResult(
        number=10,
        title="Startup",
        summary=summary,
        description=description,
        tables=[markdown_table(header, rows)],
        notes=[
            "`fetches at startup` counts the runs of the credential process over the process's "
            "life (the range over the rounds if it varied).",
            "`vs plain boto3` divides the median times measured in this run.",
        ],
    )
