"""FileCache against another local user: unsafe ancestors, planted entries, swapped directories.

The directory is checked like OpenSSH's StrictModes, from ``/`` down, and
then held open; an entry file that this user's botocreds could not have
written is forged: never read, reported, overwritten. The cross-user tests
run as root (see ``tests/_hostile.py``): they give planted files to another
uid, or fork a child that becomes another user and attacks the cache.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from botocreds._cache import CacheUnavailable, ForgedEntry, cache_key, decode_entry
from botocreds._events import RefreshEvent, SharedCacheFailed
from botocreds._filecache import FileCache
from botocreds._scheduler import Scheduler

from ._fakes import FakeClock
from ._hostile import NOBODY, REFUSED, as_another_user, mode_of, needs_root, plant
from .test_filecache import Counting, cached_refresher

KEY = "role-0123abcd"
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def held(tmp_path: Path) -> Iterator[int]:
    """A descriptor of ``tmp_path``, for a child that cannot reach it by name."""
    fd = os.open(tmp_path, DIRECTORY)
    yield fd
    os.close(fd)


# -- ancestors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "who"), [(0o777, "everyone"), (0o773, "everyone"), (0o770, "its group")]
)
def test_refuses_an_ancestor_others_can_write(tmp_path: Path, mode: int, who: str) -> None:
    shared = tmp_path / "app"
    shared.mkdir()
    shared.chmod(mode)
    with pytest.raises(
        ValueError, match=f"{re.escape(str(shared))} is writable by {who}.*not sticky"
    ):
        FileCache(shared / "botocreds")
    assert os.listdir(shared) == [], "nothing is created below an unsafe directory"


def test_accepts_a_sticky_ancestor_when_the_next_directory_is_ours(tmp_path: Path) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    cache = FileCache(shared / "mine" / "botocreds")
    cache.store(KEY, b"entry", 60.0)
    assert cache.load(KEY) == b"entry"
    assert mode_of(shared / "mine") == 0o700


@needs_root
def test_refuses_a_sticky_ancestor_when_the_next_directory_is_someone_elses(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    theirs = shared / "app"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(
        ValueError, match=f"{re.escape(str(theirs))} is owned by uid {NOBODY}, neither root"
    ):
        FileCache(theirs / "botocreds")


@needs_root
def test_refuses_an_ancestor_owned_by_another_user(tmp_path: Path) -> None:
    theirs = tmp_path / "home"
    (theirs / "app").mkdir(parents=True, mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(ValueError, match=f"{re.escape(str(theirs))} is owned by uid {NOBODY}"):
        FileCache(theirs / "app" / "botocreds")


@needs_root
def test_refuses_a_directory_another_user_created_first_in_tmp(tmp_path: Path, held: int) -> None:
    # /tmp/app made first by another user, who made it writable by all.
    tmp_path.chmod(0o1777)

    def squat() -> None:
        os.mkdir("app", 0o777, dir_fd=held)
        os.chmod("app", 0o777, dir_fd=held)

    assert as_another_user(squat) == 0
    with pytest.raises(
        ValueError, match=f"{re.escape(str(tmp_path / 'app'))} is owned by uid {NOBODY}"
    ):
        FileCache(tmp_path / "app" / "botocreds")
    assert os.listdir(tmp_path / "app") == []


def test_resolves_symlinks_among_the_ancestors_and_checks_the_real_directories(
    tmp_path: Path,
) -> None:
    real = tmp_path / "run"
    real.mkdir()
    (tmp_path / "var-run").symlink_to(real)  # like /var/run -> /run
    cache = FileCache(tmp_path / "var-run" / "botocreds")
    cache.store(KEY, b"entry", 60.0)
    assert (real / "botocreds" / f"{KEY}.json").is_file()
    real.chmod(0o777)
    with pytest.raises(ValueError, match=f"{re.escape(str(real))} is writable by everyone"):
        FileCache(tmp_path / "var-run" / "botocreds")


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_creates_missing_directories_0700_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        cache = FileCache(tmp_path / "a" / "b" / "cache")
        cache.store(KEY, b"entry", 60.0)
    finally:
        os.umask(old)
    for created in ("a", "a/b", "a/b/cache"):
        assert mode_of(tmp_path / created) == 0o700, created
    assert mode_of(tmp_path / "a/b/cache" / f"{KEY}.json") == 0o600
    assert cache.load(KEY) == b"entry"


# -- the held directory --------------------------------------------------------------


def test_a_directory_swapped_after_the_check_is_never_used(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    cache = FileCache(path)
    cache.store(KEY, b"ours", 60.0)
    path.rename(tmp_path / "moved")
    path.mkdir(mode=0o700)
    plant(path / f"{KEY}.json", (tmp_path / "moved" / f"{KEY}.json").read_bytes())
    plant(path / "other.json", (tmp_path / "moved" / f"{KEY}.json").read_bytes())
    assert cache.load(KEY) == b"ours"
    assert cache.load("other") is None, "entries are read from the directory that was checked"
    cache.store("other", b"ours too", 60.0)
    assert (tmp_path / "moved" / "other.json").is_file()
    with cache.lock(KEY, lease=10.0, wait=0.0) as taken:
        assert taken
    assert (tmp_path / "moved" / f"{KEY}.lock").is_file()
    assert not (path / f"{KEY}.lock").exists()


def test_a_removed_directory_is_reopened_and_checked_anew(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    cache = FileCache(path)
    cache.store(KEY, b"entry", 60.0)
    for name in os.listdir(path):
        os.unlink(path / name)
    path.rmdir()  # a cleaner such as systemd-tmpfiles
    with pytest.raises(CacheUnavailable, match="was removed; it is open again"):
        cache.load(KEY)
    assert mode_of(path) == 0o700
    cache.store(KEY, b"again", 60.0)
    assert cache.load(KEY) == b"again"
    assert (path / f"{KEY}.json").is_file()
    # A replacement that fails the checks keeps the cache unavailable.
    for name in os.listdir(path):
        os.unlink(path / name)
    path.rmdir()
    path.mkdir()
    path.chmod(0o777)
    with pytest.raises(CacheUnavailable, match=r"was removed, and .* writable by everyone"):
        cache.load(KEY)
    with pytest.raises(CacheUnavailable):
        cache.store(KEY, b"entry", 60.0)


# -- entries this user did not write -------------------------------------------------


def test_an_entry_others_can_read_or_write_is_forged_and_not_read(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache")
    cache.store(KEY, b"entry", 60.0)
    for mode in (0o644, 0o640, 0o602, 0o660):
        (tmp_path / "cache" / f"{KEY}.json").chmod(mode)
        with pytest.raises(ForgedEntry, match=f"{KEY}.json has mode {mode:04o}, not 0600"):
            cache.load(KEY)
    (tmp_path / "cache" / f"{KEY}.json").chmod(0o400)
    assert cache.load(KEY) == b"entry", "fewer bits than 0600 is still ours"


def test_a_symlink_at_an_entry_is_forged_and_never_followed(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache")
    cache.store("real", b"entry", 60.0)
    (tmp_path / "cache" / f"{KEY}.json").symlink_to(tmp_path / "cache" / "real.json")
    with pytest.raises(ForgedEntry, match="is a symlink"):
        cache.load(KEY)
    cache.store(KEY, b"replaced", 60.0)
    assert not (tmp_path / "cache" / f"{KEY}.json").is_symlink()
    assert cache.load("real") == b"entry", "the link's target is untouched"


def test_a_symlink_at_a_lock_is_never_followed(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache")
    victim = tmp_path / "bashrc"
    victim.write_text("precious")
    (tmp_path / "cache" / f"{KEY}.lock").symlink_to(victim)
    with (
        pytest.raises(CacheUnavailable, match="cannot lock"),
        cache.lock(KEY, lease=10.0, wait=0.0),
    ):
        pytest.fail("a lock file that is not this user's own was locked")
    assert victim.read_text() == "precious"


@needs_root
def test_an_entry_owned_by_another_user_is_forged(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache")
    cache.store(KEY, b"entry", 60.0)
    os.chown(tmp_path / "cache" / f"{KEY}.json", NOBODY, NOBODY)
    with pytest.raises(ForgedEntry, match=f"is owned by uid {NOBODY}, not by this user"):
        cache.load(KEY)
    cache.store(KEY, b"ours", 60.0)
    assert os.stat(tmp_path / "cache" / f"{KEY}.json").st_uid == os.geteuid()
    assert cache.load(KEY) == b"ours"


@needs_root
def test_a_lock_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache")
    lock = tmp_path / "cache" / f"{KEY}.lock"
    plant(lock, b"")
    os.chown(lock, NOBODY, NOBODY)
    with (
        pytest.raises(CacheUnavailable, match=f"owned by uid {NOBODY}"),
        cache.lock(KEY, lease=10.0, wait=0.0),
    ):
        pytest.fail("a lock file that is not this user's own was locked")


@needs_root
def test_another_user_can_neither_read_plant_nor_swap_entries(tmp_path: Path, held: int) -> None:
    tmp_path.chmod(0o755)  # the way in is open: only the cache's own modes stand
    cache = FileCache(tmp_path / "cache")
    cache.store(KEY, b"entry", 60.0)
    fd = os.open(tmp_path / "cache", DIRECTORY)
    try:
        read = lambda: os.open(f"{KEY}.json", os.O_RDONLY, dir_fd=fd)  # noqa: E731
        create = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        write = lambda: os.open("planted.json", create, 0o600, dir_fd=fd)  # noqa: E731
        swap = lambda: os.rename("cache", "moved", src_dir_fd=held, dst_dir_fd=held)  # noqa: E731
        assert as_another_user(read) == REFUSED
        assert as_another_user(write) == REFUSED
        assert as_another_user(swap) == REFUSED
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path / "cache")) == [f"{KEY}.json"]
    assert cache.load(KEY) == b"entry"


# -- a forged entry behind a refresher -------------------------------------------------


@pytest.fixture
def scheduler(clock: FakeClock) -> Scheduler:
    return Scheduler(clock, lambda job: job(), autostart=False)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda path: path.chmod(0o644), id="readable-by-others"),
        pytest.param(
            lambda path: os.chown(path, NOBODY, NOBODY), id="another-owner", marks=needs_root
        ),
    ],
)
def test_a_planted_entry_is_a_miss_reported_once_and_overwritten(
    tmp_path: Path,
    clock: FakeClock,
    scheduler: Scheduler,
    caplog: pytest.LogCaptureFixture,
    forge: object,
) -> None:
    cache = FileCache(tmp_path / "cache", clock=clock)
    planter = Counting(clock, lifetime=3600.0)
    cached_refresher(planter, cache, clock, scheduler)  # a valid entry, of another lifetime
    entry = tmp_path / "cache" / f"{cache_key('shared-role')}.json"
    assert callable(forge)
    forge(entry)
    events: list[RefreshEvent] = []
    counting = Counting(clock, lifetime=900.0)
    with caplog.at_level(logging.WARNING, logger="botocreds"):
        victim = cached_refresher(counting, cache, clock, scheduler, reporter=events.append)
    assert counting.calls == 1, "the source is called instead of adopting the planted entry"
    stored = cache.load(cache_key("shared-role"))
    assert stored is not None
    snapshot = decode_entry(stored, now=clock(), floor=60.0)
    assert snapshot is not None and snapshot.valid_until == clock() + 900.0, "the source's set"
    assert victim.credentials.access_key == snapshot.frozen.access_key
    failed = [event for event in events if isinstance(event, SharedCacheFailed)]
    assert failed and failed[0].error.startswith("a forged entry: ")
    assert str(entry) in failed[0].error
    warnings = [r.getMessage() for r in caplog.records if "forged entry" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert os.stat(entry).st_uid == os.geteuid() and mode_of(entry) == 0o600, "overwritten"
