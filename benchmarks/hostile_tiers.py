"""Scenario 12: what a hostile shared tier costs a reader, and what the FileCache checks cost.

Two measurements, side by side in one run:

* a value planted under an entry's name in Redis (256 MiB; 64 MiB in a quick
  run), read in a fresh process by a plain ``GET`` (what a reader without
  bounds transfers) and by ``RedisCache.load()`` (which checks the type and
  size on the server and reports the value as forged): the peak resident
  memory of each reader. Left out, with the reason printed, when there is no
  Redis server binary;
* ``FileCache.load()`` of a real entry (opened relative to the held directory,
  ``fstat``-checked for owner, mode and size) against a plain ``open()``,
  ``read()`` and parse of the same file, which checks nothing; and the
  constructor, which checks every directory from ``/`` down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import botocreds

from ._common import ScenarioResult, markdown_table, ratio
from .shared_cache import redis_server

_REPO = Path(__file__).resolve().parents[1]

#: Run in a fresh interpreter: read the planted value one way, print the peak RSS.
_READER = r"""
import json, resource, sys

how, url, prefix, key = sys.argv[1:5]
import redis
from botocreds._cache import ForgedEntry
from botocreds._rediscache import RedisCache

def peak_mib():
    # VmHWM is this program's own peak; ru_maxrss would keep the peak of the
    # (large) benchmark process that forked it, since Linux carries it across exec.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

client = redis.Redis.from_url(url)
client.ping()
before = peak_mib()
outcome = "read"
if how == "GET":
    value = client.get(prefix + key)
    outcome = f"{len(value)} bytes transferred"
    del value
else:
    cache = RedisCache(client, plaintext=True, prefix=prefix)
    try:
        cache.load(key)
    except ForgedEntry as error:
        outcome = "forged: " + str(error).split(" is ", 1)[1]
print(json.dumps({"before": before, "after": peak_mib(), "outcome": outcome}))
"""


def _reader(how: str, url: str, prefix: str, key: str) -> dict[str, object]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", _READER, how, url, prefix, key],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        env=env,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def _planted_reads(url: str, size: int) -> list[list[object]]:
    import redis

    prefix, key = f"bench-{uuid.uuid4().hex[:8]}:", "role-planted"
    client = redis.Redis.from_url(url)
    try:
        client.setrange(prefix + key, size - 1, b"x")  # a string of `size` bytes, made in Redis
        rows: list[list[object]] = []
        for how in ("GET", "RedisCache.load"):
            measured = _reader(how, url, prefix, key)
            before, after = float(str(measured["before"])), float(str(measured["after"]))
            rows.append([how, f"{before:.0f}", f"{after:.0f}", measured["outcome"]])
        return rows
    finally:
        client.delete(prefix + key)
        client.close()


def _per_call(action: object, rounds: int) -> float:
    assert callable(action)
    started = time.perf_counter()
    for _ in range(rounds):
        action()
    return (time.perf_counter() - started) / rounds


def _file_checks(rounds: int) -> tuple[float, float, float]:
    """Seconds per FileCache.load(), per plain read of the same file, per constructor."""
    with tempfile.TemporaryDirectory() as parent:
        directory = Path(parent) / "a" / "b" / "cache"
        cache = botocreds.FileCache(directory)
        cache.store("role", b"x" * 3000, 3600.0)  # about the size of a real entry
        path = directory / "role.json"

        def plain_read() -> None:  # what load() did before the checks: open by path, parse
            with open(path, "rb") as handle:
                cache._unwrap(handle.read(64 * 1024 + 1))

        loaded = _per_call(lambda: cache.load("role"), rounds)
        plain = _per_call(plain_read, rounds)
        built = _per_call(lambda: botocreds.FileCache(directory), max(1, rounds // 10))
        return loaded, plain, built


def run(quick: bool) -> ScenarioResult:
    """Measure both and summarise."""
    size = (64 if quick else 256) * 1024 * 1024
    rounds = 2_000 if quick else 20_000
    notes: list[str] = []
    tables: list[str] = []
    parts: list[str] = []
    with redis_server() as url:
        if url is None:
            notes.append("The planted Redis value is left out: no Redis server binary here.")
        else:
            rows = _planted_reads(url, size)
            tables.append(
                markdown_table(
                    ["reader", "peak RSS before (MiB)", "peak RSS after (MiB)", "outcome"], rows
                )
            )
            grown = [float(str(row[2])) - float(str(row[1])) for row in rows]
            parts.append(
                f"a {size >> 20} MiB planted Redis value grows a GET reader by {grown[0]:.0f} MiB, "
                f"RedisCache.load by {grown[1]:.0f} MiB"
            )
    loaded, plain, built = _file_checks(rounds)
    tables.append(
        markdown_table(
            ["FileCache operation", "µs per call", "vs a plain open, read and parse"],
            [
                [
                    "load() of a 3 KB entry (openat, fstat checks, read)",
                    f"{loaded * 1e6:.1f}",
                    ratio(loaded, plain),
                ],
                ["plain open() + read() + parse of the same file", f"{plain * 1e6:.1f}", "1.0x"],
                [
                    "FileCache(directory): every directory from / checked",
                    f"{built * 1e6:.1f}",
                    ratio(built, plain),
                ],
            ],
        )
    )
    parts.append(
        f"FileCache.load {loaded * 1e6:.1f} µs ({ratio(loaded, plain)} an unchecked read), "
        f"the constructor's checks {built * 1e6:.0f} µs"
    )
    return ScenarioResult(
        12,
        "A hostile shared tier: planted values and the FileCache checks",
        "hostile tiers: " + "; ".join(parts),
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        tables=tables,
        notes=[
            *notes,
            "A FileCache load happens only when a refresh comes due, never on a request: "
            "its cost is per mint, not per request.",
        ],
    )
