"""Scenario 7: source calls per lifetime for N processes, with and without a shared tier.

N worker processes (forked, as gunicorn or celery prefork start them) each
refresh the same role with their own botocreds refresher, for a few credential
lifetimes, reading their credentials all the while. The source is slow (it
sleeps like an STS call) and appends a line to a counter file for every call,
so the parent counts calls across all processes. Three tiers are compared:
none (each process calls the source), ``FileCache`` (one host) and
``RedisCache`` (a real Redis server on a free loopback port; the tier is
left out, with the reason printed, when there is no server binary).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.credentials import RefreshableCredentials

import botocreds
from tests._redis import redis_server_binary

from ._common import ScenarioResult, credentials_mapping, markdown_table, ratio

LIFETIME = 3.0
FETCH_SECONDS = 0.2
POLICY = botocreds.RefreshPolicy(floor=0.5, min_interval=0.1, jitter=0.1)


@dataclass
class Config:
    """One measured configuration."""

    tier: str
    processes: int
    calls: int = 0
    lifetimes: float = 0.0
    expired_reads: int = 0

    @property
    def per_lifetime(self) -> float:
        """Source calls per credential lifetime, across every process."""
        return self.calls / self.lifetimes if self.lifetimes else 0.0


def counting_fetch(counter: str) -> Callable[[], dict[str, str]]:
    """A slow fetch that records each call as one appended line (atomic with O_APPEND)."""

    def fetch() -> dict[str, str]:
        time.sleep(FETCH_SECONDS)
        fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)
        serial = time.monotonic_ns()
        return credentials_mapping(f"ASIASHARED{serial % 10**10:010d}", time.time() + LIFETIME)

    return fetch


def make_tier(tier: str, directory: str, redis_url: str | None) -> Any:
    """The cache object for a tier name, built inside the worker process."""
    if tier == "FileCache":
        return botocreds.FileCache(directory)
    if tier == "RedisCache":
        # A namespace of this measurement's own (its scratch directory is unique): a
        # worker of the previous one, terminated by its pool while a mint held the
        # lock, leaves that lock taken until its lease ends.
        prefix = f"botocreds-bench:{Path(directory).parent.name}:"
        return botocreds.RedisCache(redis_url or "", plaintext=True, prefix=prefix)
    return None


def worker(tier: str, counter: str, directory: str, redis_url: str | None, seconds: float) -> int:
    """One process: refresh the shared role for ``seconds``; return expired reads (always 0)."""
    fetch = counting_fetch(counter)
    placeholder = RefreshableCredentials.create_from_metadata(
        credentials_mapping("ASIAPLACEHOLDER00000", time.time() + 3600), fetch, "benchmark-role"
    )
    cache = make_tier(tier, directory, redis_url)
    options: dict[str, Any] = {} if cache is None else {"cache": cache, "cache_key": "role"}
    refresher = botocreds.Refresher(placeholder, policy=POLICY, name="shared-role", **options)
    expired = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        refresher.credentials.get_frozen_credentials()
        expires_at = refresher.credentials.expiry_time
        if expires_at is not None and expires_at.timestamp() <= time.time():
            expired += 1
        time.sleep(0.01)
    refresher.close()
    return expired


def _run_worker(args: tuple[str, str, str, str | None, float]) -> int:
    return worker(*args)


def measure(config: Config, seconds: float, redis_url: str | None) -> None:
    """Run ``config.processes`` forked workers and count the source calls they made."""
    with tempfile.TemporaryDirectory() as scratch:
        counter = os.path.join(scratch, "calls")
        directory = os.path.join(scratch, "cache")
        context = multiprocessing.get_context("fork")
        arguments = [(config.tier, counter, directory, redis_url, seconds)] * config.processes
        with context.Pool(config.processes) as pool:
            config.expired_reads = sum(pool.map(_run_worker, arguments))
        config.calls = len(Path(counter).read_text().splitlines()) if os.path.exists(counter) else 0
        config.lifetimes = seconds / LIFETIME


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A throwaway Redis server on loopback, or ``None`` if there is no server binary."""
    binary = redis_server_binary()
    if binary is None:
        yield None
        return
    port = _free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


def run(quick: bool) -> ScenarioResult:
    """Measure every (tier, N) pair and summarise the largest N."""
    botocreds.shutdown()  # forked workers must not inherit a busy parent
    counts = (4,) if quick else (1, 4, 16)
    seconds = LIFETIME * (1.2 if quick else 4.0)
    notes: list[str] = []
    with redis_server() as redis_url:
        tiers = ["none", "FileCache"] + (["RedisCache"] if redis_url else [])
        if redis_url is None:
            notes.append("RedisCache left out: no Redis server binary here.")
        configs = [Config(tier, n) for n in counts for tier in tiers]
        for config in configs:
            measure(config, seconds, redis_url)
    rows = [
        [c.tier, c.processes, c.calls, f"{c.per_lifetime:.2f}", c.expired_reads] for c in configs
    ]
    top = max(counts)
    by_tier = {c.tier: c.per_lifetime for c in configs if c.processes == top}
    parts = [f"no tier {by_tier['none']:.2f}"] + [
        f"{tier} {value:.2f} ({ratio(by_tier['none'], value)} fewer)"
        for tier, value in by_tier.items()
        if tier != "none"
    ]
    summary = f"shared cache: source calls per lifetime with {top} processes: " + ", ".join(parts)
    description = (
        f"N forked processes each refresh one role for {seconds / LIFETIME:g} lifetimes of "
        f"{LIFETIME:g}-s credentials (a {FETCH_SECONDS:g}-s source, the policy scaled down), "
        "reading their credentials every 10 ms; the parent counts the source calls of all of "
        "them. 'expired reads' counts reads that returned an expired set (it must be 0)."
    )
    header = ["tier", "processes", "source calls", "calls per lifetime", "expired reads"]
    return ScenarioResult(
        7,
        "Many processes, one role: the shared cache tier",
        summary,
        description,
        tables=[markdown_table(header, rows)],
        notes=notes,
    )
