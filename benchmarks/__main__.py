"""``python -m benchmarks``: run every scenario, print one summary line each, write RESULTS.md.

``--quick`` runs a short version of everything (about three minutes); ``--only 2 4``
runs some scenarios. Only a full run writes ``RESULTS.md`` and the plots next to
the code: a quick run writes them only with ``--write``, and ``--no-write``
keeps a full run from writing. ``python -m benchmarks.hot_path`` still runs the
hot-path benchmark alone with its detailed text report.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import botocreds

from . import (
    fan_out,
    hostile_tiers,
    hot_path,
    import_time,
    many_clients,
    many_sessions,
    outage,
    results,
    shared_cache,
    short_lived,
    startup,
    tail_latency,
    tail_latency_async,
)
from ._common import ScenarioResult, send_plots_to

Scenario = Callable[[bool], ScenarioResult]

SCENARIOS: dict[int, Scenario] = {
    1: hot_path.run,
    2: tail_latency.run,
    3: short_lived.run,
    4: fan_out.run,
    5: many_clients.run,
    6: outage.run,
    7: shared_cache.run,
    8: tail_latency_async.run,
    9: import_time.run,
    10: startup.run,
    11: many_sessions.run,
    12: hostile_tiers.run,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "botocreds against botocore's and aiobotocore's own refresh and boto3-refresh-session."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument(
        "--only",
        type=int,
        nargs="+",
        choices=sorted(SCENARIOS),
        help="run only these scenarios",
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "write RESULTS.md and the plots next to the code (the default for a full run); "
            "--no-write keeps them in a temporary directory (the default for --quick)"
        ),
    )
    return parser.parse_args(argv)


def writes_results(args: argparse.Namespace) -> bool:
    """Whether this run replaces the committed RESULTS.md and plots."""
    return bool(args.write) if args.write is not None else not args.quick


def run_one(number: int, quick: bool) -> ScenarioResult:
    """Run one scenario, time it, and close every refresher it left behind."""
    started = time.perf_counter()
    try:
        result = SCENARIOS[number](quick)
    finally:
        botocreds.shutdown()
    result.seconds = time.perf_counter() - started
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios in order and report."""
    args = parse_args(argv)
    write = writes_results(args)
    if not write:
        send_plots_to(Path(tempfile.mkdtemp(prefix="botocreds-bench-")))
    chosen = args.only or sorted(SCENARIOS)
    mode = "quick" if args.quick else "full"
    print(f"botocreds benchmarks ({mode}): scenarios {', '.join(map(str, chosen))}")
    started = time.perf_counter()
    done = []
    for number in chosen:
        result = run_one(number, args.quick)
        done.append(result)
        print(f"[{number}] {result.summary}  ({result.seconds:.1f} s)", flush=True)
    total = time.perf_counter() - started
    if write:
        results.write(done, mode, total)
        print(f"wrote {results.RESULTS}")
    print(f"total {total:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
