"""The shared cache tier's rules, on an in-memory store and a fake clock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import botocreds
from botocreds import RefreshEvent, RefreshPolicy
from botocreds._cache import CacheUnavailable, cache_key, decode_entry, encode_entry
from botocreds._events import SharedCacheFailed
from botocreds._scheduler import Scheduler

from ._fakes import FakeClock, ScriptedFetcher, refreshable

POLICY = RefreshPolicy(floor=10.0, jitter=0.0)


class MemoryCache:
    """A SharedCache in a dict, with a switch to make it fail."""

    name = "MemoryCache"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.entries: dict[str, tuple[bytes, float]] = {}
        self.stores = 0
        self.down = False
        self.lock_taken = threading.Lock()
        self.held = False

    def load(self, key: str) -> bytes | None:
        if self.down:
            raise CacheUnavailable("connection refused")
        entry = self.entries.get(key)
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]

    def store(self, key: str, entry: bytes, ttl: float) -> None:
        if self.down:
            raise CacheUnavailable("connection refused")
        self.stores += 1
        self.entries[key] = (entry, self.clock() + ttl)

    @contextmanager
    def lock(self, key: str, *, lease: float, wait: float) -> Iterator[bool]:
        if self.down:
            raise CacheUnavailable("connection refused")
        acquired = not self.held
        self.held = self.held or acquired
        try:
            yield acquired
        finally:
            if acquired:
                self.held = False


def _refresher(
    clock: FakeClock, cache: MemoryCache, fetcher: ScriptedFetcher, **kwargs: object
) -> botocreds.Refresher:
    """A refresher over ``fetcher``; building its botocore credentials costs no fetch."""
    credentials = refreshable(fetcher)
    fetcher.calls -= 1  # botocore's own first load, not a mint
    scheduler = Scheduler(clock, lambda job: job(), autostart=False)
    return botocreds.Refresher(
        credentials,
        policy=POLICY,
        clock=clock,
        random=lambda: 0.0,
        cache=cache,
        cache_key="role",
        _scheduler=scheduler,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_process_that_comes_due_later_adopts_the_set_another_one_stored() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    fetcher = ScriptedFetcher(clock, lifetime=100.0)
    first = _refresher(clock, cache, fetcher)
    calls = fetcher.calls
    second = _refresher(clock, cache, fetcher)
    assert fetcher.calls == calls, "the second process adopted the stored set"
    assert second.credentials.access_key == first.credentials.access_key
    clock.advance(80.0)
    first._scheduler.run_pending()  # due: mints and stores a newer set
    assert fetcher.calls == calls + 1
    clock.advance(1.0)
    second._scheduler.run_pending()
    assert fetcher.calls == calls + 1
    assert second.credentials.access_key == first.credentials.access_key


def test_an_entry_older_than_what_a_process_serves_is_not_adopted() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    fetcher = ScriptedFetcher(clock, lifetime=100.0)
    refresher = _refresher(clock, cache, fetcher)
    clock.advance(80.0)
    refresher._scheduler.run_pending()
    assert fetcher.calls == 2, "the stored set is the one it serves: mint a new one"


def test_nothing_inside_the_floor_is_stored_and_the_ttl_ends_at_the_floor() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    _refresher(clock, cache, ScriptedFetcher(clock, lifetime=100.0))
    ((entry, deadline),) = cache.entries.values()
    assert deadline == pytest.approx(clock() + 100.0 - POLICY.floor)
    snapshot = decode_entry(entry, now=clock(), floor=POLICY.floor)
    assert snapshot is not None and snapshot.valid_until == pytest.approx(clock() + 100.0)


@pytest.mark.parametrize(
    "entry",
    [
        b"",
        b"not json",
        b"[]",
        b'{"v": 99}',
        b'{"v": 2, "access_key": "A", "issued_at": 0, "expires_at": 1}',
        b'{"v":1,"access_key":"A","secret_key":"S","token":"T","expires_at":1800000100}',
    ],
    ids=["empty", "garbage", "list", "foreign-version", "missing-fields", "previous-version"],
)
def test_a_corrupt_or_foreign_entry_is_a_miss_and_is_overwritten(entry: bytes) -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    cache.entries[cache_key("role")] = (entry, clock() + 1000)
    fetcher = ScriptedFetcher(clock, lifetime=100.0)
    _refresher(clock, cache, fetcher)
    assert fetcher.calls == 1
    stored = cache.entries[cache_key("role")][0]
    assert decode_entry(stored, now=clock(), floor=POLICY.floor) is not None


def test_a_store_that_is_down_never_makes_things_worse(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    cache.down = True
    fetcher = ScriptedFetcher(clock, lifetime=100.0)
    events: list[RefreshEvent] = []
    with caplog.at_level(logging.WARNING, logger="botocreds"):
        refresher = _refresher(clock, cache, fetcher, reporter=events.append)
        for _ in range(3):
            clock.advance(80.0)
            refresher._scheduler.run_pending()
    assert refresher.mint_count == 4, "every mint went to the source"
    outages = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outages) == 1, "logged once per outage"
    assert sum(isinstance(e, SharedCacheFailed) for e in events) == 4
    cache.down = False
    clock.advance(80.0)
    refresher._scheduler.run_pending()
    assert cache.stores == 1, "back in use once the store is back"


def test_the_entry_format_round_trips_without_loss() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    refresher = _refresher(clock, cache, ScriptedFetcher(clock, lifetime=100.0))
    snapshot = refresher._snapshot
    decoded = decode_entry(encode_entry(snapshot), now=clock(), floor=0.0)
    assert decoded is not None and decoded.frozen == snapshot.frozen


def test_cache_keys_are_stable_bounded_and_hide_their_parts() -> None:
    key = cache_key("assume-role", "arn:aws:iam::123456789012:role/app", "external-secretish")
    assert key == cache_key(
        "assume-role", "arn:aws:iam::123456789012:role/app", "external-secretish"
    )
    assert key.startswith("assume-role-") and len(key) <= 80
    assert "external" not in key and "123456789012" not in key
    assert key != cache_key("assume-role", "arn:aws:iam::123456789012:role/other", "x")


def test_a_cache_needs_an_identity_for_its_key() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="pass cache_key="):
        botocreds.Refresher(
            refreshable(ScriptedFetcher(clock)),
            cache=MemoryCache(clock),
        )
    with pytest.raises(ValueError, match="only makes sense with cache="):
        botocreds.Refresher(refreshable(ScriptedFetcher(clock)), cache_key="role")
    with pytest.raises(TypeError, match=r"FileCache or botocreds\.RedisCache"):
        botocreds.Refresher(refreshable(ScriptedFetcher(clock)), cache={}, cache_key="k")  # type: ignore[arg-type]


def test_a_store_that_fails_after_the_source_answered_costs_no_second_call() -> None:
    class RefusesWrites(MemoryCache):
        def store(self, key: str, entry: bytes, ttl: float) -> None:
            raise CacheUnavailable("read-only replica")

    clock = FakeClock()
    fetcher = ScriptedFetcher(clock, lifetime=100.0)
    refresher = _refresher(clock, RefusesWrites(clock), fetcher)
    assert fetcher.calls == 1
    assert refresher.mint_count == 1


@pytest.mark.parametrize(
    ("entry", "reported"),
    [
        (b"[" * 40000, False),
        (
            b'{"v":2,"access_key":"A","secret_key":"S","token":"T",'
            b'"issued_at":0,"expires_at":Infinity}',
            True,
        ),
    ],
    ids=["deeply-nested", "never-expires"],
)
def test_a_forged_entry_is_a_miss_too(entry: bytes, reported: bool) -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    cache.entries[cache_key("role")] = (entry, clock() + 1000)
    fetcher = ScriptedFetcher(clock, lifetime=100.0)
    events: list[RefreshEvent] = []
    refresher = _refresher(clock, cache, fetcher, reporter=events.append)
    assert fetcher.calls == 1 and refresher.status().next_refresh_at is not None
    failed = [e for e in events if isinstance(e, SharedCacheFailed)]
    assert len(failed) == int(reported)
    assert all(e.error.startswith("a forged entry: ") for e in failed)


def test_a_store_that_breaks_in_an_unexpected_way_is_treated_as_down() -> None:
    class Broken(MemoryCache):
        def load(self, key: str) -> bytes | None:
            raise RuntimeError("a bug in the store")

    clock = FakeClock()
    fetcher = ScriptedFetcher(clock, lifetime=100.0)
    refresher = _refresher(clock, Broken(clock), fetcher)
    assert fetcher.calls == 1 and refresher.mint_count == 1


def test_a_set_the_refresher_discarded_is_adopted_from_the_store() -> None:
    # The entry a process stored but never published (its mint was abandoned)
    # is newer than what it serves, so the next mint adopts it.
    clock = FakeClock()
    cache = MemoryCache(clock)
    fetcher = ScriptedFetcher(clock, lifetime=100.0)
    refresher = _refresher(clock, cache, fetcher)
    later = FakeClock(clock() + 5)
    stored = _refresher(later, MemoryCache(later), ScriptedFetcher(later, lifetime=100.0))
    cache.entries[cache_key("role")] = (encode_entry(stored._snapshot), clock() + 1000)
    clock.advance(80.0)
    refresher._scheduler.run_pending()
    assert fetcher.calls == 1, "adopted, no second source call"
    assert refresher._snapshot.valid_until == stored._snapshot.valid_until
