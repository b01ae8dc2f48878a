"""Hot-path benchmark: what a request pays to read credentials, with and without botocreds.

Three setups (four when the optional ``boto3_refresh_session`` package is
importable) are measured side by side, in one process:

* ``static``: plain botocore ``Credentials``, the floor;
* ``botocore``: botocore ``RefreshableCredentials`` holding 1-hour credentials,
  outside botocore's 15-minute refresh window (its best case);
* ``botocreds``: the same kind of ``RefreshableCredentials`` kept fresh by a
  ``botocreds.Refresher`` attached to the client;
* ``boto3-refresh-session``: its ``RefreshableSession`` with a custom fetcher.

Two operations are timed for each: presigning an S3 ``get_object`` URL (a full
signing, no network) and ``credentials.get_frozen_credentials()`` (what botocore
calls once per signing). Every round takes one sample of every (operation,
setup) pair, rotating the setup order, so slow drift in the machine hits all
setups alike; each reported figure is the median over rounds. A sample is a
batch of calls timed with ``time.perf_counter_ns`` with the garbage collector
off. Ratios are computed from these medians; nothing here is hard-coded.

All credentials are fake and no request leaves the process.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import itertools
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, cast

import boto3
import boto3.session
import botocore
import botocore.session
from botocore.client import BaseClient
from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    Credentials,
    RefreshableCredentials,
)
from botocore.exceptions import BotoCoreError

import botocreds

from ._common import ScenarioResult, markdown_table

REGION = "us-east-1"
FROZEN_BATCH = 2_000
PRESIGN_BATCH = 200
MIN_ROUNDS = 5
FULL_SECONDS = 45.0
QUICK_SECONDS = 8.0
SUITE_SECONDS = 30.0  # timed budgets when run as part of ``python -m benchmarks``
SUITE_QUICK_SECONDS = 3.0
FULL_WARMUP_BATCHES = 5
QUICK_WARMUP_BATCHES = 2
LIFETIME_SECONDS = 3600  # 1-hour credentials, like STS's default

# Fake, fixed-length values: every setup signs strings of the same size.
SECRET_KEY = "benchmark/secret/key/not/a/real/one/0000"
SESSION_TOKEN = "benchmark-session-token-" + "0" * 376

Call = Callable[[], object]


# -- credentials and clients -------------------------------------------------------------


def access_key(tag: str, serial: int) -> str:
    """A fake 20-character access key that names its setup and fetch number."""
    letters = "".join(ch for ch in tag.upper() if ch.isalnum())[:10].ljust(10, "X")
    return f"ASIA{letters}{serial:06d}"


class CountingFetcher:
    """A botocore-style fetch function minting fake 1-hour credentials; counts its calls.

    Each call returns a new access key, so a signed URL shows which fetch it used.
    """

    def __init__(self, tag: str) -> None:
        self._tag = tag
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self) -> dict[str, str]:
        """Return botocore's refresh mapping for a new set, valid for an hour (UTC expiry)."""
        with self._lock:
            self.calls += 1
            serial = self.calls
        expiry = time.gmtime(time.time() + LIFETIME_SECONDS)
        return {
            "access_key": access_key(self._tag, serial),
            "secret_key": SECRET_KEY,
            "token": SESSION_TOKEN,
            "expiry_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", expiry),
        }


def refreshable_from(fetcher: CountingFetcher) -> RefreshableCredentials:
    """botocore ``RefreshableCredentials`` seeded with one fetch, refreshed by ``fetcher``."""
    return RefreshableCredentials.create_from_metadata(
        metadata=fetcher(), refresh_using=fetcher, method="benchmark-fetch"
    )


class FixedProvider(CredentialProvider):
    """A credential provider that always answers with one given credentials object."""

    METHOD = "benchmark"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        """The credentials object this provider was built with."""
        return self._credentials


def s3_client_for(credentials: Credentials) -> BaseClient:
    """A boto3 S3 client that signs with exactly ``credentials`` (no env, files or IMDS)."""
    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver([FixedProvider(credentials)]))
    client: BaseClient = boto3.session.Session(botocore_session=core).client(
        "s3", region_name=REGION
    )
    return client


# -- setups ---------------------------------------------------------------------------


@dataclass
class Setup:
    """One way of giving a client credentials, and what to measure on it."""

    key: str
    title: str
    client: BaseClient
    credentials: Credentials
    fetcher: CountingFetcher | None = None
    fetches_at_setup: int = 0

    def fetches_since_setup(self) -> int | None:
        """Fetch calls made after setup finished (``None`` when nothing can fetch)."""
        if self.fetcher is None:
            return None
        return self.fetcher.calls - self.fetches_at_setup


def static_setup() -> Setup:
    """(a) plain ``Credentials``: the floor."""
    credentials = Credentials(access_key("static", 1), SECRET_KEY, SESSION_TOKEN)
    return Setup("static", "static Credentials", s3_client_for(credentials), credentials)


def botocore_setup() -> Setup:
    """(b) botocore ``RefreshableCredentials`` with 1-hour credentials."""
    fetcher = CountingFetcher("botocore")
    credentials = refreshable_from(fetcher)
    return Setup(
        "botocore",
        "botocore RefreshableCredentials",
        s3_client_for(credentials),
        credentials,
        fetcher,
        fetcher.calls,
    )


def botocreds_setup(stack: ExitStack) -> Setup:
    """(c) the same kind of ``RefreshableCredentials``, kept fresh by a botocreds Refresher.

    The refresher is closed when ``stack`` unwinds.
    """
    fetcher = CountingFetcher("botocreds")
    source = refreshable_from(fetcher)
    client = s3_client_for(source)
    refresher = botocreds.Refresher(source, policy=botocreds.RefreshPolicy())
    stack.callback(refresher.close)
    refresher.attach(client)
    return Setup(
        "botocreds",
        "botocreds Refresher (attached)",
        client,
        refresher.credentials,
        fetcher,
        fetcher.calls,
    )


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``, or ``"unknown"``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def session_errors() -> tuple[type[Exception], ...]:
    """What building a boto3-refresh-session session can raise, across its versions.

    Bad or unknown arguments (its API changed between releases), botocore
    errors, and the package's own ``BRSError`` when it has one.
    """
    errors: list[type[Exception]] = [TypeError, ValueError, KeyError, BotoCoreError]
    try:
        module = importlib.import_module("boto3_refresh_session.exceptions")
    except ImportError:
        return tuple(errors)
    own = getattr(module, "BRSError", None)
    if isinstance(own, type) and issubclass(own, Exception):
        errors.append(own)
    return tuple(errors)


def refresh_session_setup() -> Setup | str:
    """(d) ``boto3_refresh_session.RefreshableSession``, or why it was skipped."""
    try:
        module = importlib.import_module("boto3_refresh_session")
    except ImportError as error:
        return f"not importable ({error}); it is an optional extra and is not installed here"
    version = package_version("boto3-refresh-session")
    fetcher = CountingFetcher("refreshses")
    try:
        session = module.RefreshableSession(
            method="custom",
            custom_credentials_method=fetcher,
            defer_refresh=False,
            region_name=REGION,
        )
        client: object = session.client("s3", region_name=REGION)
        credentials: object = session.get_credentials()
    except session_errors() as error:
        return f"version {version} could not build a custom-method session: {error!r}"
    if not isinstance(client, BaseClient) or not isinstance(credentials, Credentials):
        return f"version {version} did not return a botocore client and credentials"
    title = "boto3-refresh-session" if version == "unknown" else f"boto3-refresh-session {version}"
    return Setup("boto3-refresh-session", title, client, credentials, fetcher, fetcher.calls)


# -- operations -----------------------------------------------------------------------


class Presigning(Protocol):
    """The part of an S3 client this benchmark calls."""

    def generate_presigned_url(
        self, ClientMethod: str, Params: Mapping[str, Any] | None = None
    ) -> str:
        """Presign a call to ``ClientMethod`` with ``Params``."""
        ...


def presigner(client: BaseClient) -> Callable[[], str]:
    """A no-argument callable presigning ``get_object`` for bucket ``b``, key ``k``."""
    presign = cast(Presigning, client).generate_presigned_url

    def call() -> str:
        return presign("get_object", Params={"Bucket": "b", "Key": "k"})

    return call


@dataclass(frozen=True)
class Operation:
    """One timed operation: how to call it on a setup, and how many calls per sample."""

    key: str
    label: str
    code: str
    batch: int
    bind: Callable[[Setup], Call]


def operations() -> list[Operation]:
    """The two hot-path operations, slowest first."""
    return [
        Operation(
            "presign",
            "presigned URL",
            'client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})',
            PRESIGN_BATCH,
            lambda setup: presigner(setup.client),
        ),
        Operation(
            "frozen",
            "get_frozen_credentials",
            "credentials.get_frozen_credentials()",
            FROZEN_BATCH,
            lambda setup: setup.credentials.get_frozen_credentials,
        ),
    ]


def check_signing(setup: Setup) -> str:
    """Fail unless the client signs with the credentials object measured for it.

    For botocreds this proves the attach: the client's original credentials
    hold the key of fetch 1, the refresher's those of its own first mint.
    Returns the presigned URL.
    """
    expected = setup.credentials.get_frozen_credentials().access_key
    url = presigner(setup.client)()
    if f"={expected}" not in url:
        raise RuntimeError(f"{setup.title}: the presigned URL is not signed with {expected}")
    return url


def signing_style(url: str) -> str:
    """Which S3 query-string signature a presigned URL carries."""
    return "SigV4" if "X-Amz-Algorithm=" in url else "SigV2 (botocore's S3 presign default)"


# -- timing ---------------------------------------------------------------------------


def noop() -> None:
    """Do nothing: times the batch loop and one Python call."""


def time_batch(call: Call, batch: int) -> float:
    """Nanoseconds per call over one batch of ``batch`` calls, GC disabled."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in itertools.repeat(None, batch):
            call()
        elapsed = time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()
    return elapsed / batch


@dataclass
class Plan:
    """How long to run: a round budget in seconds, or an exact number of rounds."""

    mode: str
    seconds: float
    rounds: int | None
    warmup_batches: int

    def keep_going(self, done: int, started: float) -> bool:
        """Whether to run another round after ``done`` rounds."""
        if self.rounds is not None:
            return done < self.rounds
        return done < MIN_ROUNDS or time.perf_counter() - started < self.seconds


Samples = dict[str, dict[str, list[float]]]


def warm_up(setups: Sequence[Setup], ops: Sequence[Operation], batches: int) -> None:
    """Run every (operation, setup) pair untimed: caches, lazy loads, branch warm-up."""
    for op in ops:
        for setup in setups:
            call = op.bind(setup)
            for _ in range(batches):
                time_batch(call, op.batch)
    for _ in range(batches):
        time_batch(noop, FROZEN_BATCH)


def rotated(setups: Sequence[Setup], shift: int) -> list[Setup]:
    """``setups`` rotated left by ``shift``: each round starts with a different setup."""
    shift %= len(setups)
    return [*setups[shift:], *setups[:shift]]


def run_rounds(setups: Sequence[Setup], ops: Sequence[Operation], plan: Plan) -> Samples:
    """Interleaved rounds; every round adds one sample per (operation, setup) pair.

    A ``loop`` entry holds the no-op reference, sampled once per round.
    """
    calls = {(op.key, setup.key): op.bind(setup) for op in ops for setup in setups}
    samples: Samples = {op.key: {setup.key: [] for setup in setups} for op in ops}
    samples["loop"] = {"noop": []}
    started = time.perf_counter()
    done = 0
    while plan.keep_going(done, started):
        for op in ops:
            for setup in rotated(setups, done):
                sample = time_batch(calls[op.key, setup.key], op.batch)
                samples[op.key][setup.key].append(sample)
        samples["loop"]["noop"].append(time_batch(noop, FROZEN_BATCH))
        done += 1
    return samples


# -- reporting ------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Median and quartiles of one (operation, setup) pair, in ns per call."""

    median: float
    low: float
    high: float


def summarize(values: Sequence[float]) -> Summary:
    """Median and 25th/75th percentiles of ``values``."""
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return Summary(statistics.median(values), low, high)


def environment_lines() -> list[str]:
    """Interpreter, platform and library versions."""
    python = (
        f"Python {platform.python_version()} ({platform.python_implementation()}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs)"
    )
    libraries = (
        f"botocore {botocore.__version__}, boto3 {boto3.__version__}, "
        f"botocreds {botocreds.__version__}"
    )
    return [python, libraries]


def operation_table(op: Operation, setups: Sequence[Setup], samples: Samples) -> list[str]:
    """The table of one operation: median, interquartile range and ratio to static."""
    stats = {setup.key: summarize(samples[op.key][setup.key]) for setup in setups}
    floor = stats["static"].median
    width = max(len(setup.title) for setup in setups)
    lines = [
        f"{op.label}: {op.code}  [{op.batch:,} calls per sample]",
        f"  {'setup':<{width}}  {'median ns/op':>13}  {'p25 .. p75 ns/op':>22}  {'/static':>8}",
    ]
    for setup in setups:
        s = stats[setup.key]
        spread = f"{s.low:,.0f} .. {s.high:,.0f}"
        lines.append(
            f"  {setup.title:<{width}}  {s.median:>13,.0f}  {spread:>22}  {s.median / floor:>7.2f}x"
        )
    return lines


def fetch_table(setups: Sequence[Setup]) -> list[str]:
    """Fetch calls per setup: while setting up, and during warm-up plus timed rounds."""
    width = max(len(setup.title) for setup in setups)
    lines = [
        "fetch calls (the fetch function behind each setup's credentials)",
        f"  {'setup':<{width}}  {'at setup':>8}  {'during warm-up + timed rounds':>29}",
    ]
    for setup in setups:
        run = setup.fetches_since_setup()
        at_setup = "-" if setup.fetcher is None else str(setup.fetches_at_setup)
        lines.append(f"  {setup.title:<{width}}  {at_setup:>8}  {'-' if run is None else run:>29}")
    lines.append(
        "  botocreds at setup: 1 seeds the RefreshableCredentials, 1 is the refresher's"
        " eager first mint"
    )
    return lines


def summary_line(op: Operation, setups: Sequence[Setup], samples: Samples) -> str:
    """``hot path: botocreds/static = 0.98x, botocore/static = 1.10x (presigned URL)``."""
    floor = statistics.median(samples[op.key]["static"])
    order = {"botocreds": 0, "botocore": 1}
    others = sorted(
        (setup for setup in setups if setup.key != "static"),
        key=lambda setup: order.get(setup.key, len(order)),
    )
    parts = [
        f"{setup.key}/static = {statistics.median(samples[op.key][setup.key]) / floor:.2f}x"
        for setup in others
    ]
    return f"hot path: {', '.join(parts)} ({op.label})"


def print_report(
    setups: Sequence[Setup],
    ops: Sequence[Operation],
    samples: Samples,
    run_line: str,
) -> None:
    """Print the tables, the fetch counts and one summary line per operation."""
    print(run_line)
    for op in ops:
        print()
        print("\n".join(operation_table(op, setups, samples)))
    loop = statistics.median(samples["loop"]["noop"])
    print(f"  (every ns/op above includes the batch loop: a no-op call costs {loop:,.0f} ns)")
    print()
    print("\n".join(fetch_table(setups)))
    print()
    for op in ops:
        print(summary_line(op, setups, samples))


# -- the scenario runner's entry point -------------------------------------------------


def markdown_operation_table(op: Operation, setups: Sequence[Setup], samples: Samples) -> str:
    """One operation as a markdown table: median, interquartile range, ratio to static."""
    stats = {setup.key: summarize(samples[op.key][setup.key]) for setup in setups}
    floor = stats["static"].median
    rows = [
        [
            setup.title,
            f"{stats[setup.key].median:,.0f}",
            f"{stats[setup.key].low:,.0f} .. {stats[setup.key].high:,.0f}",
            f"{stats[setup.key].median / floor:.2f}x",
            "-" if setup.fetches_since_setup() is None else setup.fetches_since_setup(),
        ]
        for setup in setups
    ]
    header = ["setup", "median ns/op", "p25 .. p75 ns/op", "/static", "fetches while timed"]
    return f"`{op.code}` ({op.batch:,} calls per sample)\n\n" + markdown_table(header, rows)


def run(quick: bool) -> ScenarioResult:
    """Run the hot-path benchmark quietly and hand its tables to the report."""
    seconds = SUITE_QUICK_SECONDS if quick else SUITE_SECONDS
    plan = parse_args([*(["--quick"] if quick else []), "--seconds", str(seconds)])
    ops = operations()
    with ExitStack() as stack:
        setups, skipped = build_setups(stack)
        for setup in setups:
            check_signing(setup)
        warm_up(setups, ops, plan.warmup_batches)
        gc.collect()
        gc.freeze()
        try:
            samples = run_rounds(setups, ops, plan)
        finally:
            gc.unfreeze()
    rounds = len(samples["loop"]["noop"])
    notes = [
        f"{rounds} interleaved rounds; a no-op call in the batch loop costs "
        f"{statistics.median(samples['loop']['noop']):,.0f} ns and is included in every figure."
    ]
    if skipped is not None:
        notes.append(f"boto3-refresh-session skipped: {skipped}")
    return ScenarioResult(
        1,
        "Hot-path cost",
        "; ".join(summary_line(op, setups, samples) for op in ops),
        "Median cost per call of presigning an S3 URL and of `get_frozen_credentials()`, "
        "for static credentials (the floor), botocore `RefreshableCredentials` holding 1-hour "
        "credentials, a client attached to a botocreds `Refresher`, and boto3-refresh-session's "
        "`RefreshableSession`, interleaved round by round in one process.",
        tables=[markdown_operation_table(op, setups, samples) for op in ops],
        notes=notes,
    )


# -- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Plan:
    """Turn the command line into a :class:`Plan`."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.hot_path",
        description="Hot-path cost of botocreds against static and botocore credentials.",
    )
    parser.add_argument("--quick", action="store_true", help="a short run (about 10 s)")
    parser.add_argument(
        "--seconds", type=float, default=None, help="time budget for the timed rounds"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="run exactly this many rounds instead"
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 2:
        parser.error("--rounds must be at least 2")
    default = QUICK_SECONDS if args.quick else FULL_SECONDS
    seconds = float(args.seconds) if args.seconds is not None else default
    warmup = QUICK_WARMUP_BATCHES if args.quick else FULL_WARMUP_BATCHES
    rounds: int | None = args.rounds
    mode = "quick" if args.quick else "full"
    if rounds is not None:
        mode += f", fixed at {rounds} rounds"
    return Plan(mode, seconds, rounds, warmup)


def build_setups(stack: ExitStack) -> tuple[list[Setup], str | None]:
    """All setups, and the reason boto3-refresh-session was skipped (if it was)."""
    setups = [static_setup(), botocore_setup(), botocreds_setup(stack)]
    optional = refresh_session_setup()
    if isinstance(optional, str):
        return setups, optional
    return [*setups, optional], None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; 1 if botocreds fetched on the hot path."""
    plan = parse_args(argv)
    print("botocreds hot-path benchmark")
    print("\n".join(environment_lines()))
    ops = operations()
    with ExitStack() as stack:
        setups, skipped = build_setups(stack)
        if skipped is not None:
            print(f"boto3-refresh-session: skipped: {skipped}")
        urls = [check_signing(setup) for setup in setups]
        print(f"presigned URLs are signed with {signing_style(urls[0])}")
        warm_started = time.perf_counter()
        warm_up(setups, ops, plan.warmup_batches)
        gc.collect()
        gc.freeze()
        started = time.perf_counter()
        try:
            samples = run_rounds(setups, ops, plan)
        finally:
            gc.unfreeze()
        finished = time.perf_counter()
        rounds = len(samples["loop"]["noop"])
        run_line = (
            f"run: {plan.mode}, {rounds} interleaved rounds in {finished - started:.1f} s "
            f"(warm-up {started - warm_started:.1f} s), GC off during samples"
        )
        print_report(setups, ops, samples, run_line)
    botocreds_fetches = next(s for s in setups if s.key == "botocreds").fetches_since_setup()
    if botocreds_fetches:
        print(f"FAIL: botocreds fetched {botocreds_fetches} time(s) on the hot path")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
