"""FileCache: the shared cache tier for the processes of one host, on the real file system.

Unit tests drive it on a fake clock; the process tests run real interpreters
that share one directory: a pool of refreshers that must call a slow source
about once per lifetime in total, and a lock holder killed with SIGKILL.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import RefreshableCredentials

from botocreds import RefreshPolicy
from botocreds._cache import (
    CacheUnavailable,
    ForgedEntry,
    SharedCache,
    cache_key,
    decode_entry,
)
from botocreds._events import RefreshEvent, SharedCacheFailed
from botocreds._filecache import FileCache
from botocreds._refresher import Refresher
from botocreds._scheduler import Scheduler

from ._fakes import FakeClock, ScriptedFetcher
from ._hostile import IS_ROOT, mode_of, needs_root, plant

REPO = Path(__file__).resolve().parents[1]
KEY = "role-0123abcd"


def fail_temporary_files(
    monkeypatch: pytest.MonkeyPatch, failing: Callable[[], int | None]
) -> None:
    """Make creating the cache's temporary files fail with ``failing()``'s errno, if any.

    What a read-only or full file system answers; root, whom modes do not
    stop, cannot be shown an unwritable directory any other way.
    """
    real_open = os.open

    def refusing(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        code = failing()
        if code is not None and str(path).endswith(".tmp") and flags & os.O_CREAT:
            raise OSError(code, os.strerror(code))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def cache(cache_dir: Path, clock: FakeClock) -> FileCache:
    return FileCache(cache_dir, clock=clock)


# -- the protocol, the name, the optional dependency ---------------------------


def test_is_a_shared_cache_named_after_its_directory(cache: FileCache, cache_dir: Path) -> None:
    assert isinstance(cache, SharedCache)
    assert cache.name == f"FileCache({cache_dir})"
    assert cache.directory == str(cache_dir)


def test_needs_no_third_party_library() -> None:
    code = (
        "import sys, tempfile; sys.modules['filelock'] = None\n"
        "import botocreds\n"
        "cache = botocreds.FileCache(tempfile.mkdtemp() + '/cache')\n"
        "cache.store('key', b'entry', 60.0)\n"
        "with cache.lock('key', lease=1.0, wait=1.0) as held:\n"
        "    assert held and cache.load('key') == b'entry'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=_child_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_rejects_unsafe_keys(cache: FileCache) -> None:
    for bad in ("../escape", "a/b", "", ".hidden", "key.json", "x" * 201):
        with pytest.raises(ValueError, match="keys are"):
            cache.load(bad)
        with pytest.raises(ValueError, match="keys are"):
            cache.store(bad, b"entry", 10.0)


# -- entries and their TTL -------------------------------------------------------


def test_round_trip(cache: FileCache) -> None:
    assert cache.load(KEY) is None
    cache.store(KEY, b"\x00binary\xffentry", 60.0)
    assert cache.load(KEY) == b"\x00binary\xffentry"
    cache.store(KEY, b"newer", 60.0)
    assert cache.load(KEY) == b"newer"
    assert cache.load("another-key") is None


def test_entry_expires_with_its_ttl(cache: FileCache, clock: FakeClock) -> None:
    cache.store(KEY, b"entry", 10.0)
    clock.advance(9.9)
    assert cache.load(KEY) == b"entry"
    clock.advance(0.1)
    assert cache.load(KEY) is None
    clock.advance(1000.0)
    assert cache.load(KEY) is None


def test_deadline_is_shared_through_the_file(cache_dir: Path, clock: FakeClock) -> None:
    writer = FileCache(cache_dir, clock=clock)
    reader = FileCache(cache_dir, clock=clock)
    writer.store(KEY, b"entry", 5.0)
    assert reader.load(KEY) == b"entry"
    clock.advance(5.0)
    assert reader.load(KEY) is None


def test_a_ttl_of_zero_or_less_stores_nothing(cache: FileCache, cache_dir: Path) -> None:
    cache.store(KEY, b"entry", 0.0)
    cache.store(KEY, b"entry", -5.0)
    assert cache.load(KEY) is None
    assert not (cache_dir / f"{KEY}.json").exists()
    for bad in (math.inf, math.nan):
        with pytest.raises(ValueError, match="ttl"):
            cache.store(KEY, b"entry", bad)


# -- atomic writes -------------------------------------------------------------


def test_store_writes_a_temp_file_in_the_directory_then_renames_it(
    cache: FileCache, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replaced: list[tuple[str, str]] = []
    synced: list[int] = []
    real_replace, real_fsync = os.replace, os.fsync

    def spy_replace(src: Any, dst: Any, **dir_fds: int) -> None:
        # Both names are relative to the directory the cache holds open.
        assert dir_fds == {"src_dir_fd": cache._fd, "dst_dir_fd": cache._fd}
        replaced.append((str(cache_dir / src), str(cache_dir / dst)))
        real_replace(src, dst, **dir_fds)

    def spy_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    cache.store(KEY, b"entry", 60.0)
    assert len(replaced) == 1
    source, target = replaced[0]
    assert target == str(cache_dir / f"{KEY}.json")
    assert os.path.dirname(source) == str(cache_dir)
    assert os.path.basename(source).startswith(".") and source.endswith(".tmp")
    assert synced, "the temp file must be synced before it is renamed"
    assert sorted(os.listdir(cache_dir)) == [f"{KEY}.json"]


def test_a_failed_write_never_replaces_the_entry(
    cache: FileCache, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.store(KEY, b"good entry", 60.0)

    def broken_disk(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", broken_disk)  # the temp file is written but not synced
    with pytest.raises(CacheUnavailable, match="Input/output error"):
        cache.store(KEY, b"half-written entry", 60.0)
    monkeypatch.undo()
    assert cache.load(KEY) == b"good entry"
    assert sorted(os.listdir(cache_dir)) == [f"{KEY}.json"], "the temp file is removed"


def test_a_leftover_temp_file_is_never_read(cache: FileCache, cache_dir: Path) -> None:
    # What a writer killed between mkstemp() and os.replace() leaves behind.
    plant(cache_dir / f".{KEY}.crashed.tmp", b'{"v":1,"expi')
    assert cache.load(KEY) is None
    cache.store(KEY, b"entry", 60.0)
    assert cache.load(KEY) == b"entry"


def test_readers_never_see_a_partial_entry(cache_dir: Path) -> None:
    cache = FileCache(cache_dir)
    entries = [bytes([65 + n]) * (20_000 + 997 * n) for n in range(8)]
    seen: set[bytes] = set()
    bad: list[object] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            cache.store(KEY, entries[n % len(entries)], 60.0)
            n += 1

    def read() -> None:
        while not stop.is_set():
            entry = cache.load(KEY)
            if entry is not None:
                if entry in entries:
                    seen.add(entry)
                else:
                    bad.append(len(entry))

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    cache.store(KEY, entries[0], 60.0)
    for thread in threads:
        thread.start()
    time.sleep(0.7)
    stop.set()
    for thread in threads:
        thread.join(timeout=10.0)
    assert not bad, f"partial entries seen: {bad[:5]}"
    assert seen


# -- modes and directory checks ----------------------------------------------------


def test_creates_the_directory_with_mode_0700(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "cache"
    FileCache(directory)
    assert directory.is_dir()
    assert mode_of(directory) == 0o700


def test_entry_and_lock_files_have_mode_0600(cache: FileCache, cache_dir: Path) -> None:
    old_umask = os.umask(0)  # a permissive umask must not widen the files' modes
    try:
        cache.store(KEY, b"entry", 60.0)
        with cache.lock(KEY, lease=10.0, wait=1.0) as held:
            assert held
    finally:
        os.umask(old_umask)
    assert mode_of(cache_dir / f"{KEY}.json") == 0o600
    assert mode_of(cache_dir / f"{KEY}.lock") == 0o600
    assert (cache_dir / f"{KEY}.lock").exists(), "lock files stay in place"


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (0o777, "writable by everyone"),
        (0o1777, "writable by everyone"),  # sticky, like /tmp: still refused
        (0o703, "writable by everyone"),
        (0o770, "writable by its group"),
        (0o720, "writable by its group"),
    ],
)
def test_refuses_a_directory_others_can_write(tmp_path: Path, mode: int, message: str) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(ValueError, match=message):
        FileCache(directory)
    assert os.listdir(directory) == [], "nothing is written to a refused directory"


def test_accepts_an_existing_directory_others_can_only_read(tmp_path: Path) -> None:
    directory = tmp_path / "readable"
    directory.mkdir()
    directory.chmod(0o755)
    cache = FileCache(directory)
    cache.store(KEY, b"entry", 60.0)
    assert mode_of(directory / f"{KEY}.json") == 0o600


def test_refuses_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(ValueError, match="symlink"):
        FileCache(link)


def test_refuses_a_path_that_is_not_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a directory")
    with pytest.raises(ValueError, match="not a directory"):
        FileCache(path)


@needs_root
def test_refuses_a_directory_owned_by_another_user(tmp_path: Path) -> None:
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, -1)  # nobody
    with pytest.raises(ValueError, match="owned by uid 65534"):
        FileCache(directory)


# -- corrupt entries and an unusable file system ---------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[1, 2, 3]",
        b'{"v": 99, "expires": 9e99, "entry": "ZW50cnk="}',
        b'{"v": 1, "expires": "soon", "entry": "ZW50cnk="}',
        b'{"v": 1, "expires": 9e99, "entry": "not base64!"}',
        b'{"v": 1, "expires": 9e99}',
        b'{"v": 1, "expires": 9e99, "entry": "' + b"A" * 100_000 + b'"}',
    ],
    ids=["empty", "text", "list", "version", "expires", "base64", "no-entry", "huge"],
)
def test_a_corrupt_file_is_a_miss_and_is_overwritten(
    cache: FileCache, cache_dir: Path, content: bytes
) -> None:
    plant(cache_dir / f"{KEY}.json", content)
    assert cache.load(KEY) is None
    cache.store(KEY, b"entry", 60.0)
    assert cache.load(KEY) == b"entry"


def test_other_file_system_errors_make_the_cache_unavailable(
    cache: FileCache, cache_dir: Path
) -> None:
    (cache_dir / f"{KEY}.json").mkdir()  # EISDIR when the entry is renamed over it
    with pytest.raises(CacheUnavailable, match=f"cannot write {cache_dir}/{KEY}.json: Is a dir"):
        cache.store(KEY, b"entry", 60.0)
    with pytest.raises(CacheUnavailable, match=f"cannot lock {cache_dir}/{KEY}.lock"):
        (cache_dir / f"{KEY}.lock").mkdir()
        with cache.lock(KEY, lease=10.0, wait=0.0):
            pytest.fail("a directory at the lock's name was locked")


def test_a_vanished_directory_makes_every_operation_unavailable(
    cache: FileCache, cache_dir: Path
) -> None:
    cache.store(KEY, b"entry", 60.0)
    for name in os.listdir(cache_dir):
        os.unlink(cache_dir / name)
    cache_dir.rmdir()
    cache_dir.write_text("a file where the directory was")  # ENOTDIR for everything
    with pytest.raises(CacheUnavailable):
        cache.load(KEY)
    with pytest.raises(CacheUnavailable):
        cache.store(KEY, b"entry", 60.0)
    with pytest.raises(CacheUnavailable), cache.lock(KEY, lease=10.0, wait=0.5):
        pytest.fail("a lock was taken in a directory that is gone")


@pytest.fixture
def make_unwritable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make a directory read-only: ``chmod 500``, or for root (whom modes do not stop)
    an ``open`` of the temporary file that answers EACCES as the kernel would."""
    restored: list[Path] = []

    def make(directory: Path) -> None:
        if IS_ROOT:
            fail_temporary_files(monkeypatch, lambda: errno.EACCES)
        else:
            directory.chmod(0o500)
            restored.append(directory)

    yield make
    for directory in restored:
        directory.chmod(0o700)


def test_an_unwritable_directory_makes_store_unavailable(
    cache: FileCache, cache_dir: Path, make_unwritable: Callable[[Path], None]
) -> None:
    cache.store(KEY, b"entry", 60.0)
    make_unwritable(cache_dir)
    with pytest.raises(CacheUnavailable, match="Permission denied"):
        cache.store(KEY, b"newer", 60.0)
    assert cache.load(KEY) == b"entry", "reads still work"


# -- locks in one process ----------------------------------------------------------


def test_lock_excludes_other_threads_until_released(cache: FileCache) -> None:
    results: list[bool] = []

    def contend(wait: float) -> None:
        with cache.lock(KEY, lease=10.0, wait=wait) as held:
            results.append(held)

    with cache.lock(KEY, lease=10.0, wait=1.0) as held:
        assert held
        started = time.monotonic()
        thread = threading.Thread(target=contend, args=(0.3,))
        thread.start()
        thread.join(timeout=10.0)
        assert results == [False]
        assert time.monotonic() - started < 5.0
        with cache.lock("other-key", lease=10.0, wait=0.0) as other:
            assert other, "keys are locked independently"
    thread = threading.Thread(target=contend, args=(1.0,))
    thread.start()
    thread.join(timeout=10.0)
    assert results == [False, True]


def test_lock_waits_for_a_holder_that_releases(cache: FileCache) -> None:
    released = threading.Event()
    acquired = threading.Event()

    def hold() -> None:
        with cache.lock(KEY, lease=10.0, wait=1.0):
            acquired.set()
            time.sleep(0.3)
        released.set()

    thread = threading.Thread(target=hold)
    thread.start()
    assert acquired.wait(10.0)
    with cache.lock(KEY, lease=10.0, wait=10.0) as held:
        assert held
        assert released.is_set()
    thread.join(timeout=10.0)


def test_errors_inside_the_lock_pass_through_and_release_it(cache: FileCache) -> None:
    # An OSError of the source (a connection error) is not the cache's failure.
    with pytest.raises(ConnectionError), cache.lock(KEY, lease=10.0, wait=1.0):
        raise ConnectionError("the source is down")
    with cache.lock(KEY, lease=10.0, wait=0.0) as held:
        assert held


# -- behind a refresher ------------------------------------------------------------


class Counting:
    """A fetch function that counts its calls (a ScriptedFetcher on a fake clock)."""

    def __init__(self, clock: FakeClock, lifetime: float) -> None:
        self.fetcher = ScriptedFetcher(clock, lifetime)

    @property
    def calls(self) -> int:
        return self.fetcher.calls

    def credentials(self) -> RefreshableCredentials:
        # Metadata made without calling the fetch function, so only mints count.
        return RefreshableCredentials.create_from_metadata(
            dict(self.fetcher.answer()), self.fetcher, "test-source"
        )


def cached_refresher(
    counting: Counting,
    cache: FileCache,
    clock: FakeClock,
    scheduler: Scheduler,
    *,
    reporter: Callable[[RefreshEvent], None] | None = None,
) -> Refresher:
    return Refresher(
        counting.credentials(),
        policy=RefreshPolicy(floor=60.0, jitter=0.0, min_interval=1.0),
        clock=clock,
        random=lambda: 0.0,
        reporter=reporter,
        cache=cache,
        cache_key="shared-role",
        _scheduler=scheduler,
    )


@pytest.fixture
def scheduler(clock: FakeClock) -> Scheduler:
    return Scheduler(clock, lambda job: job(), autostart=False)


def test_two_refreshers_share_one_source_call(
    cache: FileCache, clock: FakeClock, scheduler: Scheduler
) -> None:
    counting = Counting(clock, lifetime=900.0)
    first = cached_refresher(counting, cache, clock, scheduler)
    assert counting.calls == 1
    clock.advance(10.0)
    second = cached_refresher(counting, cache, clock, scheduler)
    assert counting.calls == 1, "the second refresher adopts the first one's entry"
    assert second.credentials.access_key == first.credentials.access_key
    # The first comes due at 0.8 * 900 = 720 s and calls the source; the second,
    # due at 10 + 0.8 * 890 = 722 s, finds that newer entry and adopts it.
    clock.advance(711.0)
    scheduler.run_pending()
    assert counting.calls == 2
    assert second.credentials.access_key != first.credentials.access_key
    clock.advance(2.0)
    scheduler.run_pending()
    assert counting.calls == 2
    assert second.credentials.access_key == first.credentials.access_key
    assert second.mint_count == 2


def test_a_corrupt_entry_is_overwritten_by_the_next_store(
    cache: FileCache, cache_dir: Path, clock: FakeClock, scheduler: Scheduler
) -> None:
    key = cache_key("shared-role")
    path = cache_dir / f"{key}.json"
    plant(path, b"\x00garbage\xff")
    counting = Counting(clock, lifetime=900.0)
    refresher = cached_refresher(counting, cache, clock, scheduler)
    assert counting.calls == 1
    entry = cache.load(key)
    assert entry is not None
    snapshot = decode_entry(entry, now=clock(), floor=60.0)
    assert snapshot is not None
    assert snapshot.frozen.access_key == refresher.credentials.access_key
    # A wrapper that is fine around an entry that is not: also a miss, also overwritten.
    cache.store(key, b"not an entry", 300.0)
    other = cached_refresher(counting, cache, clock, scheduler)
    assert counting.calls == 2
    reloaded = cache.load(key)
    assert reloaded is not None and decode_entry(reloaded, now=clock(), floor=60.0) is not None
    assert other.credentials.access_key != refresher.credentials.access_key


def _refresh_cycles(
    refresher: Refresher, clock: FakeClock, scheduler: Scheduler, cycles: int
) -> list[str]:
    keys = [refresher.credentials.access_key]
    for _ in range(cycles):
        clock.advance(0.8 * 900.0 + 1.0)
        scheduler.run_pending()
        keys.append(refresher.credentials.access_key)
    return keys


def test_an_unwritable_directory_falls_back_to_the_source(
    cache: FileCache,
    cache_dir: Path,
    clock: FakeClock,
    scheduler: Scheduler,
    make_unwritable: Callable[[Path], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_unwritable(cache_dir)
    events: list[RefreshEvent] = []
    counting = Counting(clock, lifetime=900.0)
    with caplog.at_level(logging.DEBUG, logger="botocreds"):
        refresher = cached_refresher(counting, cache, clock, scheduler, reporter=events.append)
        keys = _refresh_cycles(refresher, clock, scheduler, 3)
    assert len(set(keys)) == 4, "every cycle refreshed from the source"
    assert refresher.mint_count == 4
    assert refresher.status().valid
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "shared cache" in warnings[0].getMessage()
    assert cache.name in warnings[0].getMessage()
    failed = [e for e in events if isinstance(e, SharedCacheFailed)]
    assert len(failed) >= 1
    assert failed[0].cache == cache.name
    assert "Permission denied" in failed[0].error


def test_a_failing_store_costs_one_source_call_per_refresh(
    cache: FileCache,
    cache_dir: Path,
    clock: FakeClock,
    scheduler: Scheduler,
    make_unwritable: Callable[[Path], None],
) -> None:
    # The lock file exists (from an earlier healthy run), so the lock still
    # works and only the store fails: the answer the source just gave must be
    # served, not thrown away for a second call to the source.
    with cache.lock(cache_key("shared-role"), lease=10.0, wait=1.0) as held:
        assert held
    make_unwritable(cache_dir)
    counting = Counting(clock, lifetime=900.0)
    refresher = cached_refresher(counting, cache, clock, scheduler)
    _refresh_cycles(refresher, clock, scheduler, 2)
    assert refresher.mint_count == 3
    assert counting.calls == refresher.mint_count, (
        f"BUG in botocreds/_cache.py (CachedSource.mint): {counting.calls} source calls for "
        f"{refresher.mint_count} refreshes; when store() raises CacheUnavailable after the "
        "source answered, mint() calls the source a second time instead of serving the answer"
    )


def test_an_unwritable_directory_is_logged_again_after_it_recovers(
    cache: FileCache,
    cache_dir: Path,
    clock: FakeClock,
    scheduler: Scheduler,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    counting = Counting(clock, lifetime=900.0)
    state = {"full": True}
    fail_temporary_files(monkeypatch, lambda: errno.ENOSPC if state["full"] else None)
    with caplog.at_level(logging.INFO, logger="botocreds"):
        refresher = cached_refresher(counting, cache, clock, scheduler)
        _refresh_cycles(refresher, clock, scheduler, 1)
        state["full"] = False
        _refresh_cycles(refresher, clock, scheduler, 1)
        state["full"] = True
        _refresh_cycles(refresher, clock, scheduler, 2)
    messages = [r.getMessage() for r in caplog.records if "shared cache" in r.getMessage()]
    outages = [m for m in messages if "No space left on device" in m]
    assert len(outages) == 2, messages  # one per outage, not one per failed store
    assert any(m.endswith("is back") for m in messages), messages


# -- real processes ------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


POOL_WORKER = r"""
import json, os, sys, time
from datetime import datetime, timezone

from botocore.credentials import RefreshableCredentials

import botocreds
from botocreds._filecache import FileCache

cache_dir, counter, ready, go = sys.argv[1:5]
run, lifetime, fetch_time = (float(v) for v in sys.argv[5:8])
policy = botocreds.RefreshPolicy(floor=0.5, min_interval=0.1, jitter=0.2)


def answer(expires, access_key):
    return {
        "access_key": access_key,
        "secret_key": "secret-" + access_key,
        "token": repr(expires),  # lets every reader check the expiry of what it got
        "expiry_time": datetime.fromtimestamp(expires, timezone.utc).isoformat(),
    }


def fetch():
    time.sleep(fetch_time)  # a slow STS
    fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{os.getpid()} {time.time():.3f}\n".encode())
    finally:
        os.close(fd)
    expires = time.time() + lifetime
    return answer(expires, f"ASIA{os.getpid()}N{int(expires * 1000)}")


with open(ready, "w"):
    pass
deadline = time.monotonic() + 60.0
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.01)

bootstrap = answer(time.time() + lifetime, "ASIABOOTSTRAP")  # never served: the first mint is eager
credentials = RefreshableCredentials.create_from_metadata(bootstrap, fetch, "pool")
refresher = botocreds.Refresher(
    credentials, policy=policy, cache=FileCache(cache_dir), cache_key="shared-role"
)
served = refresher.credentials
seen, expired, reads = [], 0, 0
end = time.time() + run
while time.time() < end:
    frozen = served.get_frozen_credentials()
    if float(frozen.token) <= time.time():
        expired += 1
    if not seen or seen[-1] != frozen.access_key:
        seen.append(frozen.access_key)
    reads += 1
    time.sleep(0.02)
refresher.close()
print(json.dumps({"pid": os.getpid(), "seen": seen, "expired": expired, "reads": reads}))
"""


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def _kill_all(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10.0)


def test_a_pool_of_processes_calls_the_source_about_once_per_lifetime(tmp_path: Path) -> None:
    workers, run, lifetime, fetch_time = 8, 10.0, 3.0, 0.3
    script = tmp_path / "worker.py"
    script.write_text(POOL_WORKER)
    cache_dir, counter, go = tmp_path / "cache", tmp_path / "calls.log", tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(workers)]
    processes: list[subprocess.Popen[str]] = []
    try:
        for flag in ready:
            argv = [str(cache_dir), str(counter), str(flag), str(go)]
            argv += [str(run), str(lifetime), str(fetch_time)]
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(script), *argv],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=_child_env(),
                )
            )
        _wait_for(lambda: all(flag.exists() for flag in ready), 60.0, "the workers to start")
        go.touch()  # all eight build their refresher at once
        outputs = [process.communicate(timeout=run + 60.0) for process in processes]
    finally:
        _kill_all(processes)
    reports: list[dict[str, Any]] = []
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        reports.append(json.loads(stdout.strip().splitlines()[-1]))

    calls = counter.read_text().splitlines()
    # Each process refreshes after 60-80% of a lifetime, so a pool with one
    # source call per refresh makes about run / (0.6 * lifetime) + 1 calls
    # (under 7 here); without the shared tier it would be 8 times that.
    lifetimes = math.ceil(run / lifetime)
    refreshes = math.ceil(run / (0.6 * lifetime)) + 1
    assert 2 <= len(calls) <= max(lifetimes, refreshes) + 3, calls
    assert len(calls) < workers * lifetimes / 2
    minted = {f"ASIA{line.split()[0]}" for line in calls}
    for report in reports:
        assert report["expired"] == 0, report
        assert report["reads"] > 100, report
        assert len(report["seen"]) >= lifetimes - 1, report  # it kept refreshing
        assert "ASIABOOTSTRAP" not in report["seen"]
        assert all(key.split("N")[0] in minted for key in report["seen"]), report
    adopted = [
        key for report in reports for key in report["seen"] if f"ASIA{report['pid']}N" not in key
    ]
    assert adopted, "processes served sets that other processes fetched"
    everything_served = {key for report in reports for key in report["seen"]}
    assert len(everything_served) <= len(calls)


LOCK_HOLDER = r"""
import sys, time
from botocreds._filecache import FileCache

with FileCache(sys.argv[1]).lock(sys.argv[2], lease=1.0, wait=10.0) as held:
    print("held" if held else "refused", flush=True)
    time.sleep(120)
"""


def test_a_lock_holder_that_dies_frees_the_lock(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache = FileCache(cache_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(cache_dir), KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    try:
        assert holder.stdout is not None
        readable, _, _ = select.select([holder.stdout], [], [], 60.0)
        assert readable, "the holder never reported"
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with cache.lock(KEY, lease=1.0, wait=0.3) as held:
            assert not held, "the other process holds the lock"
        assert time.monotonic() - started < 10.0
        holder.kill()  # SIGKILL: no cleanup runs in the holder
        assert holder.wait(timeout=10.0) == -9
        started = time.monotonic()
        with cache.lock(KEY, lease=1.0, wait=10.0) as held:
            assert held
        assert time.monotonic() - started < 5.0
    finally:
        _kill_all([holder])


def test_a_fifo_at_the_entry_path_is_forged_not_a_hang(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache")
    os.mkfifo(tmp_path / "cache" / "role.json", 0o600)
    result: list[BaseException | bytes | None] = []

    def load() -> None:
        try:
            result.append(cache.load("role"))
        except ForgedEntry as error:
            result.append(error)

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "load() blocked on a FIFO"
    assert len(result) == 1 and isinstance(result[0], ForgedEntry)
    assert "is not a regular file" in str(result[0])
