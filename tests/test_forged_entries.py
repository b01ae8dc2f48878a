"""Bounds on the entries a shared cache tier adopts: forged ones are refused and reported.

Anyone who can write to the store can plant an entry. These tests plant
entries whose times no botocreds process writes (an expiry 40 hours away, in
year 9999 or past it, an issue time in the future, times that are not
numbers) and check that each is refused, reported, and replaced by the
source's answer, and that decoding never raises whatever the entry holds.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest
from botocore.credentials import ReadOnlyCredentials, RefreshableCredentials
from hypothesis import given
from hypothesis import strategies as st

from botocreds import RefreshPolicy
from botocreds._cache import (
    ENTRY_VERSION,
    MAX_ENTRY_LIFETIME,
    MAX_ISSUE_SKEW,
    CachedSource,
    cache_key,
    decode_entry,
    encode_entry,
    read_entry,
    storable,
)
from botocreds._events import RefreshEvent, SharedCacheFailed
from botocreds._filecache import FileCache
from botocreds._refresher import Refresher
from botocreds._scheduler import Scheduler
from botocreds._snapshot import Snapshot, make_snapshot
from botocreds._sources import Clock

from ._fakes import EPOCH, FakeClock, ScriptedFetcher

FLOOR = 60.0
HOUR = 3600.0
SECRET = "wJalrXUtnFEMI/K7MDENG/PLANTEDSECRET"
TOKEN = "IQoJb3JpZ2luX2VjPLANTEDTOKEN"
YEAR_9999 = datetime(9999, 6, 1, tzinfo=timezone.utc).timestamp()
YEAR_33658 = 1e12  # 1e12 epoch seconds falls in year 33658


def planted(**times: object) -> bytes:
    """An entry in the current format with the attacker's keys and the given times."""
    fields: dict[str, object] = {
        "v": ENTRY_VERSION,
        "access_key": "ASIAPLANTED00001",
        "secret_key": SECRET,
        "token": TOKEN,
        "account_id": None,
        "issued_at": EPOCH,
        "expires_at": EPOCH + HOUR,
    }
    fields.update(times)
    return json.dumps(fields).encode()


def snapshot(*, now: float = EPOCH, lifetime: float | None = HOUR) -> Snapshot:
    frozen = ReadOnlyCredentials("ASIAREAL00000001", "real-secret", "real-token")
    expires_at = None if lifetime is None else now + lifetime
    return make_snapshot(frozen, now=now, expires_at=expires_at, floor=FLOOR)


# -- the verdict on one entry -----------------------------------------------------


def test_an_entry_records_its_issue_time_and_round_trips() -> None:
    original = snapshot(now=EPOCH - 10.0)
    entry = encode_entry(original)
    assert json.loads(entry)["issued_at"] == EPOCH - 10.0
    decoded = read_entry(entry, now=EPOCH, floor=FLOOR)
    assert decoded.forged is None
    assert decoded.snapshot is not None
    assert decoded.snapshot.frozen == original.frozen
    assert decoded.snapshot.valid_until == original.valid_until


def test_an_entry_of_the_previous_format_is_a_plain_miss() -> None:
    fields = json.loads(planted())
    fields["v"] = 1
    del fields["issued_at"]
    assert read_entry(json.dumps(fields).encode(), now=EPOCH, floor=FLOOR) == read_entry(
        b"garbage", now=EPOCH, floor=FLOOR
    )
    assert read_entry(json.dumps(fields).encode(), now=EPOCH, floor=FLOOR).forged is None


@pytest.mark.parametrize(
    ("times", "why"),
    [
        ({"expires_at": EPOCH + 40 * HOUR}, "expiry 40.0 h away, beyond the 36 h"),
        ({"expires_at": EPOCH + MAX_ENTRY_LIFETIME + 1}, "beyond the 36 h"),
        ({"expires_at": YEAR_9999}, "beyond the 36 h"),
        ({"expires_at": YEAR_33658}, "beyond the 36 h"),
        ({"expires_at": 1e300}, "beyond the 36 h"),
        ({"expires_at": 10**400}, "expires_at is beyond any date"),
        ({"expires_at": math.inf}, "expires_at is not a finite number"),
        ({"expires_at": -math.inf}, "expires_at is not a finite number"),
        ({"expires_at": math.nan}, "expires_at is not a finite number"),
        ({"issued_at": math.nan}, "issued_at is not a finite number"),
        ({"expires_at": "9999-12-31T00:00:00Z"}, "expires_at is not a number (a str)"),
        ({"expires_at": None}, "expires_at is not a number (a NoneType)"),
        ({"expires_at": True}, "expires_at is not a number (a bool)"),
        ({"issued_at": [EPOCH]}, "issued_at is not a number (a list)"),
        ({"issued_at": EPOCH + HOUR, "expires_at": EPOCH + 2 * HOUR}, "issued 1.0 h in the future"),
        ({"issued_at": EPOCH + MAX_ISSUE_SKEW + 1}, "in the future, beyond the 300 s"),
        ({"issued_at": EPOCH + 2 * HOUR}, "issued after it expires"),
    ],
    ids=[
        "40h-away",
        "just-past-36h",
        "year-9999",
        "year-33658",
        "1e300",
        "int-past-float",
        "infinity",
        "minus-infinity",
        "nan",
        "nan-issue-time",
        "date-string",
        "null",
        "bool",
        "list",
        "issued-1h-ahead",
        "issued-just-past-skew",
        "issued-after-expiry",
    ],
)
def test_an_entry_with_times_botocreds_never_writes_is_forged(
    times: dict[str, object], why: str
) -> None:
    decoded = read_entry(planted(**times), now=EPOCH, floor=FLOOR)
    assert decoded.snapshot is None
    assert decoded.forged is not None
    assert decoded.forged.startswith("a forged entry: ")
    assert why in decoded.forged
    assert SECRET not in decoded.forged and TOKEN not in decoded.forged
    assert "PLANTED" not in decoded.forged
    assert decode_entry(planted(**times), now=EPOCH, floor=FLOOR) is None


@pytest.mark.parametrize(
    "times",
    [
        {"expires_at": EPOCH + MAX_ENTRY_LIFETIME},
        {"issued_at": EPOCH + MAX_ISSUE_SKEW},
        {"issued_at": EPOCH - 30 * HOUR},
        {"issued_at": EPOCH, "expires_at": int(EPOCH + HOUR)},
    ],
    ids=["expiry-at-36h", "issued-at-the-skew", "issued-long-ago", "int-times"],
)
def test_an_entry_at_the_bounds_is_adopted(times: dict[str, object]) -> None:
    decoded = read_entry(planted(**times), now=EPOCH, floor=FLOOR)
    assert decoded.forged is None
    assert decoded.snapshot is not None
    assert decoded.snapshot.frozen.access_key == "ASIAPLANTED00001"


@pytest.mark.parametrize(
    "entry",
    [
        planted(expires_at=EPOCH - 1.0, issued_at=EPOCH - HOUR),
        planted(expires_at=EPOCH + FLOOR / 2),
        planted(secret_key=None),
        planted(access_key=42),
        b'{"v": 2, "issued_at": 1, "expires_at": 2}',
    ],
    ids=["expired", "inside-the-floor", "no-secret", "non-string-key", "no-credentials"],
)
def test_a_stale_or_incomplete_entry_is_a_miss_not_a_forgery(entry: bytes) -> None:
    decoded = read_entry(entry, now=EPOCH, floor=FLOOR)
    assert decoded.snapshot is None
    assert decoded.forged is None


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
#: A time: anything at all, or (as a float) an offset from now near the bounds.
_TIMES = st.integers() | st.floats(allow_nan=True, allow_infinity=True) | _JSON
_OFFSETS = st.floats(min_value=-2 * MAX_ENTRY_LIFETIME, max_value=2 * MAX_ENTRY_LIFETIME)
_TIME_OR_OFFSET = st.tuples(st.just("absolute"), _TIMES) | st.tuples(st.just("offset"), _OFFSETS)
_FIELD = st.text(min_size=1, max_size=20) | _JSON


def _resolve(time: tuple[str, object], now: float) -> object:
    kind, value = time
    return now + value if kind == "offset" and isinstance(value, float) else value


@given(
    issued=_TIME_OR_OFFSET,
    expires=_TIME_OR_OFFSET,
    access_key=_FIELD,
    secret_key=_FIELD,
    token=_FIELD,
    account_id=_FIELD,
    version=st.just(ENTRY_VERSION) | _JSON,
    now=st.floats(min_value=0.0, max_value=4e9),
)
def test_decoding_never_raises_and_adopts_only_entries_within_the_bounds(
    issued: tuple[str, object],
    expires: tuple[str, object],
    access_key: object,
    secret_key: object,
    token: object,
    account_id: object,
    version: object,
    now: float,
) -> None:
    issued_at, expires_at = _resolve(issued, now), _resolve(expires, now)
    entry = json.dumps(
        {
            "v": version,
            "access_key": access_key,
            "secret_key": secret_key,
            "token": token,
            "account_id": account_id,
            "issued_at": issued_at,
            "expires_at": expires_at,
        }
    ).encode()
    decoded = read_entry(entry, now=now, floor=FLOOR)
    if decoded.snapshot is None:
        return
    assert decoded.forged is None
    assert FLOOR < decoded.snapshot.valid_until - now <= MAX_ENTRY_LIFETIME
    assert isinstance(issued_at, (int, float)) and issued_at - now <= MAX_ISSUE_SKEW
    assert issued_at <= decoded.snapshot.valid_until


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_decoding_arbitrary_bytes_never_raises(entry: bytes) -> None:
    decoded = read_entry(entry, now=EPOCH, floor=FLOOR)
    assert decoded.snapshot is None or decoded.snapshot.expires


# -- what is written ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [
        (HOUR, True),
        (MAX_ENTRY_LIFETIME, True),
        (None, False),
        (MAX_ENTRY_LIFETIME + 1, False),
        (FLOOR + 1, True),
    ],
    ids=["an-hour", "36h", "never-expires", "past-36h", "just-past-the-floor"],
)
def test_only_sets_a_reader_would_adopt_are_storable(
    lifetime: float | None, expected: bool
) -> None:
    assert storable(snapshot(lifetime=lifetime), now=EPOCH, floor=FLOOR) is expected
    assert not storable(snapshot(lifetime=HOUR), now=EPOCH + HOUR - FLOOR, floor=FLOOR)


# -- through CachedSource ----------------------------------------------------------


class MemoryCache:
    """A SharedCache in a dict; entries never expire on their own."""

    name = "MemoryCache"

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.stores = 0

    def load(self, key: str) -> bytes | None:
        return self.entries.get(key)

    def store(self, key: str, entry: bytes, ttl: float) -> None:
        self.stores += 1
        self.entries[key] = entry

    @contextmanager
    def lock(self, key: str, *, lease: float, wait: float) -> Iterator[bool]:
        yield True


class Minting:
    """A Source whose sets live ``lifetime`` seconds (``None``: never expire)."""

    name = "minting"
    renews_static = False
    identity: str | None = None

    def __init__(self, lifetime: float | None = HOUR) -> None:
        self.lifetime = lifetime
        self.calls = 0

    def mint(self, clock: Clock, floor: float) -> Snapshot:
        self.calls += 1
        return snapshot(now=clock(), lifetime=self.lifetime)


def cached(source: Minting, cache: MemoryCache, events: list[RefreshEvent]) -> CachedSource:
    return CachedSource(
        source,
        cache,
        "key",
        wait=1.0,
        lease=10.0,
        served_until=lambda: float("-inf"),
        report=events.append,
    )


def test_a_forged_entry_is_reported_every_time_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    cache = MemoryCache()
    source = Minting()
    events: list[RefreshEvent] = []
    tier = cached(source, cache, events)
    with caplog.at_level(logging.WARNING, logger="botocreds"):
        for _ in range(2):
            cache.entries["key"] = planted(expires_at=clock() + 40 * HOUR)
            minted = tier.mint(clock, FLOOR)
            assert minted.frozen.access_key == "ASIAREAL00000001"
    assert source.calls == 2
    assert [type(e) for e in events] == [SharedCacheFailed, SharedCacheFailed]
    assert all(isinstance(e, SharedCacheFailed) and e.cache == "MemoryCache" for e in events)
    assert all("expiry 40.0 h away" in e.error for e in events if isinstance(e, SharedCacheFailed))
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert "forged entry" in warning.getMessage() and "MemoryCache" in warning.getMessage()
    for text in [warning.getMessage(), *(repr(e) for e in events)]:
        assert SECRET not in text and TOKEN not in text
    assert read_entry(cache.entries["key"], now=clock(), floor=FLOOR).snapshot is not None


def test_a_set_that_never_expires_is_never_written_to_the_shared_tier() -> None:
    clock = FakeClock()
    cache = MemoryCache()
    source = Minting(lifetime=None)
    events: list[RefreshEvent] = []
    minted = cached(source, cache, events).mint(clock, FLOOR)
    assert not minted.expires
    assert cache.stores == 0 and not cache.entries
    assert events == []


def test_a_set_that_outlives_the_bound_is_served_but_not_written() -> None:
    clock = FakeClock()
    cache = MemoryCache()
    source = Minting(lifetime=40 * HOUR)
    minted = cached(source, cache, []).mint(clock, FLOOR)
    assert minted.valid_until == clock() + 40 * HOUR
    assert cache.stores == 0


# -- through a Refresher and a FileCache -------------------------------------------


def uncounted_credentials(fetcher: ScriptedFetcher) -> RefreshableCredentials:
    """botocore credentials over ``fetcher``, built without a call that counts as a mint."""
    return RefreshableCredentials.create_from_metadata(
        dict(fetcher.answer()), fetcher, "test-source"
    )


@pytest.mark.parametrize(
    "times",
    [
        {"expires_at": YEAR_9999},
        {"expires_at": EPOCH + 40 * HOUR},
        {"issued_at": EPOCH + HOUR, "expires_at": EPOCH + 2 * HOUR},
        {"expires_at": YEAR_33658},
    ],
    ids=["year-9999", "40h-away", "issued-1h-ahead", "year-33658"],
)
def test_a_planted_file_entry_is_not_adopted_and_the_source_is_called(
    tmp_path: Path, times: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    cache = FileCache(tmp_path / "cache", clock=clock)
    key = cache_key("shared-role")
    cache.store(key, planted(**times), 10 * 365 * 24 * HOUR)
    fetcher = ScriptedFetcher(clock, lifetime=900.0)
    events: list[RefreshEvent] = []
    with caplog.at_level(logging.WARNING, logger="botocreds"):
        refresher = Refresher(
            uncounted_credentials(fetcher),
            policy=RefreshPolicy(floor=FLOOR, jitter=0.0, min_interval=1.0),
            clock=clock,
            random=lambda: 0.0,
            reporter=events.append,
            cache=cache,
            cache_key="shared-role",
            _scheduler=Scheduler(clock, lambda job: job(), autostart=False),
        )
    assert fetcher.calls == 1, "the source was called instead of adopting the planted set"
    frozen = refresher.credentials.get_frozen_credentials()
    assert frozen.access_key != "ASIAPLANTED00001"
    assert refresher.status().next_refresh_at is not None
    failed = [e for e in events if isinstance(e, SharedCacheFailed)]
    assert len(failed) == 1 and failed[0].error.startswith("a forged entry: ")
    assert [r.levelno for r in caplog.records if "forged" in r.getMessage()] == [logging.WARNING]
    stored = cache.load(key)
    assert stored is not None
    replaced = read_entry(stored, now=clock(), floor=FLOOR).snapshot
    assert replaced is not None and replaced.frozen.access_key == frozen.access_key


def test_a_forged_entry_event_reads_as_one_the_source_replaced() -> None:
    from botocreds._events import describe

    event = SharedCacheFailed(
        "custom-process", 0.0, 100.0, 1, "FileCache(/run/x)", "a forged entry: expiry 40.0 h away"
    )
    assert describe(event) == (
        "custom-process: shared cache FileCache(/run/x) held a forged entry: "
        "expiry 40.0 h away; called the source"
    )
