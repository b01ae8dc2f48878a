"""Shared pieces of the scenarios: fake credential sources, the moto server, statistics, plots.

Every credential here is fake, every network call goes to a moto server on
127.0.0.1, and every loop is bounded by a deadline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, cast

import boto3
import boto3.session
import botocore.session
import matplotlib
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    Credentials,
    RefreshableCredentials,
)

import botocreds
from tests._process_creds import command_for

matplotlib.use("Agg")

REGION = "us-east-1"
OUT_DIR = Path(__file__).resolve().parent
#: Where plots go; a throwaway directory when the run writes nothing next to the code.
_plot_dir: list[Path] = [OUT_DIR]


def plot_path(name: str) -> Path:
    """Where to save the plot ``name`` in this run."""
    return _plot_dir[0] / name


def send_plots_to(directory: Path) -> None:
    """Save this run's plots in ``directory`` instead of next to RESULTS.md."""
    _plot_dir[0] = directory


SECRET_KEY = "benchmark/secret/key/not/a/real/one/0000"
SESSION_TOKEN = "benchmark-session-token-" + "0" * 376
REQUEST_THREAD_PREFIX = "bench-request"

# botocore's refresh windows for its own credential sources, in seconds.
BOTOCORE_ADVISORY = 900.0
BOTOCORE_MANDATORY = 600.0
REFERENCE_LIFETIME = 3600.0  # the 1-hour credentials the windows were designed for


# -- results --------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    """What one scenario hands to the report: a summary line, markdown, plots."""

    number: int
    title: str
    summary: str
    description: str
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; the first column left-aligned, the others right-aligned."""
    align = [":---", *["---:"] * (len(header) - 1)]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def ratio(numerator: float, denominator: float) -> str:
    """``numerator / denominator`` as ``"12.3x"``, or ``"inf"`` / ``"n/a"`` for a zero."""
    if denominator == 0:
        return "n/a" if numerator == 0 else "inf"
    return f"{numerator / denominator:.1f}x"


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` (0..1) percentile of ``values`` by the nearest-rank method; nan if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# -- fake credential sources ----------------------------------------------------------


def access_key(tag: str, serial: int) -> str:
    """A fake 20-character access key that names its source and fetch number."""
    letters = "".join(ch for ch in tag.upper() if ch.isalnum())[:10].ljust(10, "X")
    return f"ASIA{letters}{serial % 1_000_000:06d}"


@dataclass(frozen=True)
class FetchEvent:
    """One call of a fetch function: when it ran, on which thread, and whether it failed."""

    started: float
    finished: float
    thread: str
    ok: bool
    expires: float = math.nan

    @property
    def on_request_thread(self) -> bool:
        """Whether the fetch ran on one of the benchmark's request threads."""
        return self.thread.startswith(REQUEST_THREAD_PREFIX)


class Fetcher:
    """A botocore-style fetch function issuing fake credentials; records every call.

    ``lifetime`` is counted from the end of the fetch, as a real source would
    stamp its answer. ``delay`` is how long a fetch takes. While ``failing`` is
    set when a fetch starts, that fetch raises at once, as a
    refused connection or a throttling error would.
    """

    def __init__(self, tag: str, lifetime: float, delay: float = 0.0) -> None:
        self.tag = tag
        self.lifetime = lifetime
        self.delay = delay
        self.failing = False
        self._lock = threading.Lock()
        self._serial = 0
        self.events: list[FetchEvent] = []

    def __call__(self) -> dict[str, str]:
        """Return botocore's refresh mapping, or raise while the source is failing."""
        started = time.time()
        failing = self.failing  # the source is asked as the fetch starts
        if self.delay and not failing:
            time.sleep(self.delay)
        finished = time.time()
        thread = threading.current_thread().name
        with self._lock:
            expires = math.nan if failing else finished + self.lifetime
            self.events.append(FetchEvent(started, finished, thread, not failing, expires))
            self._serial += 1
            serial = self._serial
        if failing:
            raise ConnectionError(f"{self.tag}: the credential source is down")
        return credentials_mapping(access_key(self.tag, serial), expires)

    @property
    def calls(self) -> int:
        """How many times the fetch ran, failed calls included."""
        with self._lock:
            return len(self.events)

    def snapshot(self) -> list[FetchEvent]:
        """A copy of the recorded calls."""
        with self._lock:
            return list(self.events)


def credentials_mapping(key: str, expires_at: float) -> dict[str, str]:
    """botocore's refresh mapping with an ISO 8601 expiry that keeps microseconds."""
    expiry = datetime.fromtimestamp(expires_at, tz=timezone.utc)
    return {
        "access_key": key,
        "secret_key": SECRET_KEY,
        "token": SESSION_TOKEN,
        "expiry_time": expiry.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def botocore_credentials(fetcher: Fetcher, scale: float | None = None) -> RefreshableCredentials:
    """botocore ``RefreshableCredentials`` seeded with one fetch of ``fetcher``.

    With a ``scale``, botocore's 15- and 10-minute windows are multiplied by it
    (``lifetime / 3600`` gives them the share of the lifetime they take of
    1-hour credentials); without one, botocore's own windows apply.
    """
    kwargs: dict[str, Any] = {}
    if scale is not None:
        kwargs["advisory_timeout"] = BOTOCORE_ADVISORY * scale
        kwargs["mandatory_timeout"] = BOTOCORE_MANDATORY * scale
    return RefreshableCredentials.create_from_metadata(
        metadata=fetcher(), refresh_using=fetcher, method="benchmark-fetch", **kwargs
    )


def scaled_policy(scale: float, **overrides: Any) -> botocreds.RefreshPolicy:
    """botocreds' default policy with every duration multiplied by ``scale``.

    The fractions (``fraction``, ``jitter``) stay as they are; ``floor``,
    ``min_interval``, ``cooldown``, ``wait_timeout`` and the backoff times are
    scaled, so that ``scale = lifetime / 3600`` gives them the share of the
    lifetime they take of 1-hour credentials.
    """
    defaults = botocreds.RefreshPolicy()
    values: dict[str, Any] = {
        "floor": defaults.floor * scale,
        "min_interval": defaults.min_interval * scale,
        "cooldown": defaults.cooldown * scale,
        "wait_timeout": defaults.wait_timeout * scale,
        "backoff_base": defaults.backoff_base * scale,
        "backoff_max": defaults.backoff_max * scale,
    }
    values.update(overrides)
    return botocreds.RefreshPolicy(**values)


def hour_scale(lifetime: float) -> float:
    """The time scale that maps 1-hour credentials onto ``lifetime`` seconds."""
    return lifetime / REFERENCE_LIFETIME


# -- clients --------------------------------------------------------------------------


class FixedProvider(CredentialProvider):
    """A credential provider that always answers with one given credentials object."""

    METHOD = "benchmark"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        """The credentials object this provider was built with."""
        return self._credentials


def session_for(credentials: Credentials) -> boto3.Session:
    """A boto3 session resolving exactly ``credentials`` (no env, files or IMDS)."""
    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver([FixedProvider(credentials)]))
    return boto3.session.Session(botocore_session=core, region_name=REGION)


def client_config() -> Config:
    """No retries and short timeouts: a benchmark request fails fast and visibly."""
    return Config(
        retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10
    )


class CallerIdentity(Protocol):
    """The part of an STS client the request threads call."""

    def get_caller_identity(self) -> dict[str, Any]:
        """Who signed the request."""
        ...


def sts_client(session: boto3.Session, endpoint: str | None) -> BaseClient:
    """An STS client of ``session``, aimed at the moto server at ``endpoint``."""
    client: BaseClient = session.client(
        "sts", region_name=REGION, endpoint_url=endpoint, config=client_config()
    )
    return client


def call_sts(client: BaseClient) -> None:
    """One cheap signed request: STS ``GetCallerIdentity``."""
    cast(CallerIdentity, client).get_caller_identity()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 and an OS-chosen port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    with quiet_logs("werkzeug"):
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@contextlib.contextmanager
def quiet_logs(*names: str) -> Iterator[None]:
    """Raise the named loggers to ERROR for a while: failing sources log a warning per try."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# -- request threads ------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One timed request: when it started, how long it took, whether it succeeded."""

    started: float
    seconds: float
    ok: bool
    thread: str


def run_request_threads(
    work: Callable[[int], None],
    threads: int,
    until: float,
    *,
    pause: float = 0.0,
    name: str = REQUEST_THREAD_PREFIX,
) -> list[Request]:
    """Run ``work(index)`` on ``threads`` threads until the wall clock reaches ``until``.

    Each call is timed; an exception counts as a failed request. ``pause`` is a
    sleep between calls of one thread. Returns every request, sorted by start.
    """
    results: list[list[Request]] = [[] for _ in range(threads)]

    def loop(index: int) -> None:
        mine = results[index]
        me = threading.current_thread().name
        while time.time() < until:
            started = time.time()
            tick = time.perf_counter()
            try:
                work(index)
                ok = True
            except Exception:
                ok = False
            mine.append(Request(started, time.perf_counter() - tick, ok, me))
            if pause:
                time.sleep(pause)

    workers = [
        threading.Thread(target=loop, args=(i,), name=f"{name}-{i}", daemon=True)
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=max(0.0, until - time.time()) + 30.0)
    return sorted((r for rs in results for r in rs), key=lambda r: r.started)


def seconds_to_text(seconds: float) -> str:
    """A duration for tables: ``"1.23 ms"`` or ``"2.5 s"``."""
    if math.isnan(seconds):
        return "-"
    if seconds < 1.0:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds:.2f} s"


class Presigning(Protocol):
    """The part of an S3 client that signs without sending anything."""

    def generate_presigned_url(self, ClientMethod: str, Params: dict[str, Any]) -> str:
        """Presign a call to ``ClientMethod`` with ``Params``."""
        ...


def s3_client(session: boto3.Session) -> BaseClient:
    """An S3 client of ``session``; used only to presign, so it never connects."""
    client: BaseClient = session.client("s3", region_name=REGION)
    return client


def sign_once(client: BaseClient) -> str:
    """One signing with the client's current credentials: a presigned S3 URL, no network."""
    return cast(Presigning, client).generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "k"}
    )


#: The latency columns the tail-latency scenarios share, after "setup".
LATENCY_HEADER = ["requests", "failed", "p50", "p99", "p99.9", "max", "> 10 ms"]


def latency_cells(requests: Sequence[Request], slow: float) -> list[object]:
    """The :data:`LATENCY_HEADER` cells of one setup: counts and percentiles of its requests."""
    latencies = [r.seconds for r in requests if r.ok]
    return [
        f"{len(requests):,}",
        sum(1 for r in requests if not r.ok),
        seconds_to_text(percentile(latencies, 0.50)),
        seconds_to_text(percentile(latencies, 0.99)),
        seconds_to_text(percentile(latencies, 0.999)),
        seconds_to_text(max(latencies, default=math.nan)),
        sum(1 for s in latencies if s > slow),
    ]


def draw_latency_panel(
    ax: Any,
    started: float,
    requests: Sequence[Request],
    fetches: Sequence[tuple[float, float, bool]],
    *,
    slow: float,
    fetch_label: str,
) -> None:
    """One panel of latency against time: a dot per request, each fetch shaded.

    ``fetches`` are (started, finished, waited on by a request) in the same clock
    as ``started``; a fetch a request waited on is red, any other green.
    """
    xs = [r.started - started for r in requests]
    ys = [max(r.seconds, 1e-5) * 1000 for r in requests]
    ax.scatter(xs, ys, s=2, alpha=0.5, label="request")
    for i, (begin, end, waited_on) in enumerate(fetches):
        ax.axvspan(
            begin - started,
            end - started,
            color="tab:red" if waited_on else "tab:green",
            alpha=0.25,
            label=None if i else fetch_label,
        )
    ax.axhline(slow * 1000, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")


# -- fresh interpreters ---------------------------------------------------------------

ROOT = OUT_DIR.parent
#: The ways of running boto3 that the fresh-interpreter scenarios compare, in report order.
VARIANTS = ("boto3", "wrap", "plugin", "install")
VARIANT_TITLES = {
    "boto3": "plain boto3",
    "wrap": "`botocreds.wrap(boto3.Session())`",
    "plugin": "the client plugin (`BOTOCORE_EXPERIMENTAL__PLUGINS`)",
    "install": "`botocreds.install()`",
}
PLUGIN_VARIABLE = "BOTOCORE_EXPERIMENTAL__PLUGINS"
PLUGIN_VALUE = "botocreds=botocreds.plugin"
#: How long a fresh interpreter may run before the benchmark gives up on it.
CHILD_TIMEOUT = 300.0


@dataclass(frozen=True)
class CountedProfile:
    """A config profile whose ``credential_process`` is slow and counted.

    The process is ``tests/_process_creds.py``: it sleeps ``delay`` seconds,
    counts itself under ``state_dir`` and prints credentials that live
    ``lifetime`` seconds.
    """

    name: str
    state_dir: Path
    lifetime: float
    delay: float

    def section(self) -> str:
        """The profile's section of an AWS config file."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        header = "[default]" if self.name == "default" else f"[profile {self.name}]"
        command = shlex.join(command_for(self.state_dir, self.lifetime, self.delay))
        return f"{header}\ncredential_process = {command}\nregion = {REGION}\n\n"


def aws_config(directory: Path, profiles: Sequence[CountedProfile]) -> Path:
    """Write an AWS config file (and an empty credentials file) holding ``profiles``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config"
    config.write_text("".join(profile.section() for profile in profiles))
    (directory / "credentials").touch()
    return config


def fresh_environment(
    config: Path, variant: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a fresh interpreter that sees only ``config`` for AWS settings.

    Every ``AWS_*`` and ``BOTOCREDS_*`` variable of this process is left out, and
    instance metadata is off; the ``plugin`` variant gets the plugin variable.
    """
    keep = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "BOTOCREDS_")) and name != PLUGIN_VARIABLE
    }
    keep.update(
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(config.parent / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    if variant == "plugin":
        keep[PLUGIN_VARIABLE] = PLUGIN_VALUE
    keep.update(extra or {})
    return keep


def start_child(arguments: Sequence[str], environment: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``python -m benchmarks._child ARGUMENTS`` in the repository root."""
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks._child", *arguments],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_child(child: subprocess.Popen[str], timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
    """Wait (bounded) for a child started by :func:`start_child`; its JSON report."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise RuntimeError(f"a benchmark child ran longer than {timeout:g} s") from None
    if child.returncode != 0:
        raise RuntimeError(f"a benchmark child failed ({child.returncode}): {err[-2000:]}")
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report
