"""Credential values: far-future expiries never crash, and no bad answer echoes a value."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from botocore.credentials import ReadOnlyCredentials, RefreshableCredentials

import botocreds
from botocreds import CredentialsUnavailable, RefreshEvent, RefreshFailed, RefreshSucceeded
from botocreds._credentials import BackgroundCredentials
from botocreds._redact import describe_error, describe_value
from botocreds._scheduler import Scheduler
from botocreds._snapshot import (
    NEVER_EXPIRES,
    BadAnswer,
    Snapshot,
    make_snapshot,
    snapshot_from_mapping,
    to_epoch,
    utc_datetime,
)

from ._fakes import EPOCH, FakeClock, Return, ScriptedFetcher, iso, refreshable

UTC = timezone.utc
FLOOR = 60.0
ACCESS_KEY = "ASIAVALUETEST0001"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYVALUESECRET"
TOKEN = "IQoJb3JpZ2luX2VjEFAKESESSIONTOKENvalue0123456789abcdefZZ"
TOKEN_FRAGMENTS = (TOKEN, TOKEN[:16], TOKEN[16:32], TOKEN[-16:])


def answer(**changes: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "token": TOKEN,
        "expiry_time": iso(EPOCH + 3600.0),
    }
    fields.update(changes)
    return fields


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception reachable through ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def texts_of(error: BaseException) -> list[str]:
    """Everything an exception chain could show: str, repr and args of every link."""
    texts: list[str] = []
    for link in exception_chain(error):
        texts += [str(link), repr(link), *(repr(arg) for arg in link.args)]
    return texts


def assert_nowhere(fragments: tuple[str, ...], error: BaseException) -> None:
    for text in texts_of(error):
        for fragment in fragments:
            assert fragment not in text, f"{fragment!r} leaked in {text!r}"


class _Owner:
    name = "test-owner"

    def _serve_stale(self, snapshot: Snapshot) -> ReadOnlyCredentials:
        raise AssertionError("a fresh or never-expiring set is served without the slow path")


def credentials_over(snapshot: Snapshot) -> BackgroundCredentials:
    return BackgroundCredentials(_Owner(), snapshot, FakeClock(), "test")


def manual_scheduler(clock: FakeClock) -> Scheduler:
    return Scheduler(clock, lambda job: job(), autostart=False)


# -- far-future expiries -------------------------------------------------------------
NEVER_SENTINELS = [
    datetime.max,
    datetime.max.replace(tzinfo=UTC),
    datetime.max.replace(tzinfo=timezone(timedelta(hours=-12))),
    datetime.max.replace(tzinfo=timezone(timedelta(hours=14))),
    NEVER_EXPIRES,
    "9999-12-31T23:59:59Z",
    "9999-12-31T00:00:00+00:00",
    "9999-12-31T23:59:59.999999-05:00",
    datetime.max.isoformat(),
]


@pytest.mark.parametrize("expiry", NEVER_SENTINELS, ids=repr)
def test_an_expiry_at_the_end_of_year_9999_means_the_set_never_expires(expiry: object) -> None:
    snapshot = snapshot_from_mapping(answer(expiry_time=expiry), now=EPOCH, floor=FLOOR)
    assert not snapshot.expires
    assert snapshot.valid_until == math.inf
    assert snapshot.fresh_until == math.inf
    assert repr(snapshot) == "Snapshot(access_key='****0001', expires=never)"
    credentials = credentials_over(snapshot)
    assert credentials.expiry_time is None
    assert "expires=never" in repr(credentials)
    assert credentials.get_frozen_credentials().access_key == ACCESS_KEY


def test_the_last_day_before_the_threshold_is_still_a_real_expiry() -> None:
    last_day = datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)
    snapshot = snapshot_from_mapping(answer(expiry_time=last_day), now=EPOCH, floor=FLOOR)
    assert snapshot.expires
    assert snapshot.valid_until == last_day.timestamp()
    assert "expires=9999-12-30T23:59:59+00:00" in repr(snapshot)
    credentials = credentials_over(snapshot)
    assert credentials.expiry_time == last_day
    assert "expires=9999-12-30T23:59:59+00:00" in repr(credentials)


@pytest.mark.parametrize("expires_at", [math.inf, NEVER_EXPIRES.timestamp(), 1e300])
def test_make_snapshot_takes_an_epoch_past_the_threshold_as_never_expiring(
    expires_at: float,
) -> None:
    frozen = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, TOKEN, None)
    snapshot = make_snapshot(frozen, now=EPOCH, expires_at=expires_at, floor=FLOOR)
    assert not snapshot.expires


def test_a_nan_expiry_is_a_bad_answer() -> None:
    frozen = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, TOKEN, None)
    with pytest.raises(BadAnswer, match="not a number"):
        make_snapshot(frozen, now=EPOCH, expires_at=math.nan, floor=FLOOR)


@pytest.mark.parametrize(
    "valid_until",
    [1e20, -1e20, 253402300800.0, math.nan],
    ids=["huge", "-huge", "year-10000", "nan"],
)
def test_a_snapshot_built_by_hand_with_an_impossible_expiry_still_has_a_repr(
    valid_until: float,
) -> None:
    frozen = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, TOKEN, None)
    snapshot = Snapshot(frozen, issued_at=EPOCH, valid_until=valid_until, fresh_until=valid_until)
    assert repr(snapshot).startswith("Snapshot(access_key='****0001', expires=")
    assert "expires=" in repr(credentials_over(snapshot))


@pytest.mark.parametrize(
    "expiry",
    ["10000-01-01T00:00:00Z", "99999-12-31T23:59:59Z", "99999999999999999999-01-01"],
    ids=["year-10000", "year-99999", "overflowing-year"],
)
def test_a_year_past_9999_is_a_bad_answer_that_does_not_quote_it(expiry: str) -> None:
    with pytest.raises(BadAnswer) as caught:
        snapshot_from_mapping(answer(expiry_time=expiry), now=EPOCH, floor=FLOOR)
    error = caught.value
    assert str(error) == (
        "expiry_time is not an ISO 8601 date between years 1 and 9999, "
        f"got str of length {len(expiry)}"
    )
    assert error.__cause__ is None
    assert error.__context__ is None
    year = expiry.split("-")[0]
    assert_nowhere((expiry, year, expiry[4:]), error)


class _Zone(tzinfo):
    """A minimal tzinfo; subclasses choose what ``utcoffset`` does."""

    def tzname(self, dt: datetime | None) -> str:
        return "test"

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None


class _BrokenZone(_Zone):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise RuntimeError("no offset for you")


class _OutOfRangeZone(_Zone):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=30)


@pytest.mark.parametrize("zone", [_BrokenZone(), _OutOfRangeZone()], ids=type)
def test_a_datetime_whose_time_zone_fails_is_a_bad_answer(zone: tzinfo) -> None:
    with pytest.raises(BadAnswer, match="time zone") as caught:
        to_epoch(datetime(2030, 1, 1, tzinfo=zone))
    assert caught.value.__context__ is None


def test_a_datetime_with_a_tzinfo_that_has_no_offset_is_taken_as_utc() -> None:
    class NoOffset(_Zone):
        def utcoffset(self, dt: datetime | None) -> None:
            return None

    assert to_epoch(datetime.max.replace(tzinfo=NoOffset())) == math.inf
    assert (
        to_epoch(datetime(2030, 1, 1, tzinfo=NoOffset()))
        == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    )


# -- no value in any message -----------------------------------------------------------
def test_a_token_in_the_expiry_field_is_named_by_type_and_length_only() -> None:
    swapped = answer(expiry_time=TOKEN, token=iso(EPOCH + 3600.0))
    with pytest.raises(BadAnswer) as caught:
        snapshot_from_mapping(swapped, now=EPOCH, floor=FLOOR)
    message = str(caught.value)
    assert "expiry_time" in message
    assert f"str of length {len(TOKEN)}" in message
    assert_nowhere(TOKEN_FRAGMENTS, caught.value)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("access_key", SECRET_KEY.encode(), "access_key must be a string, got bytes of length 41"),
        ("secret_key", 1234567890123, "secret_key must be a string, got int"),
        ("secret_key", list(SECRET_KEY), "secret_key must be a string, got list of length 41"),
        ("token", TOKEN.encode(), "token must be a string or None, got bytes of length 56"),
        ("account_id", 123456789012, "account_id must be a string or None, got int"),
        ("expiry_time", 1234567890123, "expiry_time must be an ISO 8601 string or a datetime"),
        ("expiry_time", TOKEN.encode(), "got bytes of length 56"),
    ],
    ids=[
        "access-key-bytes",
        "secret-key-int",
        "secret-key-list",
        "token-bytes",
        "account-id-int",
        "expiry-int",
        "expiry-bytes",
    ],
)
def test_a_field_of_the_wrong_type_is_named_with_its_type_never_its_value(
    field: str, value: object, expected: str
) -> None:
    with pytest.raises(BadAnswer, match=expected) as caught:
        snapshot_from_mapping(answer(**{field: value}), now=EPOCH, floor=FLOOR)
    shown = (repr(value), str(value), SECRET_KEY, SECRET_KEY[:12], TOKEN[:16], "1234567890123")
    assert_nowhere(shown, caught.value)


@pytest.mark.parametrize("field", ["access_key", "secret_key"])
@pytest.mark.parametrize("value", [None, ""], ids=["none", "empty"])
def test_a_missing_key_is_reported_as_missing(field: str, value: object) -> None:
    with pytest.raises(BadAnswer, match=f"the answer has no {field}"):
        snapshot_from_mapping(answer(**{field: value}), now=EPOCH, floor=FLOOR)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "the fetcher returned nothing"),
        ({}, "the fetcher returned an empty mapping"),
        (TOKEN, "the fetcher returned a str"),
        ([ACCESS_KEY, SECRET_KEY, TOKEN], "the fetcher returned a list"),
    ],
    ids=["none", "empty", "str", "list"],
)
def test_an_answer_that_is_not_a_mapping_is_named_by_its_type(data: object, expected: str) -> None:
    with pytest.raises(BadAnswer, match=expected) as caught:
        snapshot_from_mapping(data, now=EPOCH, floor=FLOOR)
    assert_nowhere((*TOKEN_FRAGMENTS, SECRET_KEY), caught.value)


def test_a_swapped_answer_leaves_no_secret_in_the_status_or_the_events() -> None:
    clock = FakeClock()
    fetcher = ScriptedFetcher(clock)
    credentials = refreshable(fetcher)
    fetcher.script = [None, Return(answer(expiry_time=TOKEN, token=iso(EPOCH + 9999.0)))]
    scheduler = manual_scheduler(clock)
    events: list[RefreshEvent] = []
    refresher = botocreds.Refresher(
        credentials, clock=clock, random=lambda: 0.0, reporter=events.append, _scheduler=scheduler
    )
    clock.advance(0.8 * 3600)
    scheduler.run_pending()
    assert refresher.breaker.failures == 1
    status = refresher.status()
    assert status.last_error is not None
    assert status.last_error.startswith("BadAnswer: expiry_time is not an ISO 8601 date")
    failed = [e for e in events if isinstance(e, RefreshFailed)]
    assert len(failed) == 1
    shown = [status.last_error, repr(status), *(repr(e) for e in events)]
    for text in shown:
        for fragment in TOKEN_FRAGMENTS:
            assert fragment not in text


def test_describe_value_gives_type_and_length_only() -> None:
    assert describe_value(TOKEN) == f"str of length {len(TOKEN)}"
    assert describe_value(None) == "None"
    assert describe_value(3.5) == "float"

    class BadLength:
        def __len__(self) -> int:
            raise RuntimeError(TOKEN)

    assert describe_value(BadLength()) == "BadLength"


# -- describe_error --------------------------------------------------------------------
class _StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot show this")


class _StrNotAString(Exception):
    def __str__(self) -> Any:
        return 42


class _BaseStrRaises(BaseException):
    def __str__(self) -> str:
        raise ValueError("cannot show this either")


@pytest.mark.parametrize("error_type", [_StrRaises, _StrNotAString, _BaseStrRaises])
def test_an_exception_that_cannot_be_printed_is_described_by_its_type(
    error_type: type[BaseException],
) -> None:
    assert describe_error(error_type("x")) == f"{error_type.__name__}: (unprintable)"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (SystemExit(3), "SystemExit: 3"),
        (GeneratorExit("closing"), "GeneratorExit: closing"),
        (ValueError("  \n\n  "), "ValueError"),
        (OSError("first line\nsecond line"), "OSError: first line"),
        (RuntimeError("\n  padded first  \nnext"), "RuntimeError: padded first"),
    ],
    ids=["interrupt", "exit", "generator-exit", "blank", "two-lines", "padded"],
)
def test_describe_error_is_one_line_for_any_base_exception(
    error: BaseException, expected: str
) -> None:
    assert describe_error(error) == expected


# -- utc_datetime -----------------------------------------------------------------------
@pytest.mark.parametrize("epoch", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_utc_datetime_has_no_datetime_for_a_non_finite_epoch(epoch: float) -> None:
    assert utc_datetime(epoch) is None


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (1e20, datetime.max.replace(tzinfo=UTC)),
        (253402300800.0, datetime.max.replace(tzinfo=UTC)),
        (10**400, datetime.max.replace(tzinfo=UTC)),
        (-1e20, datetime.min.replace(tzinfo=UTC)),
        (-62135596801.0, datetime.min.replace(tzinfo=UTC)),
        (-(10**400), datetime.min.replace(tzinfo=UTC)),
        (0.0, datetime(1970, 1, 1, tzinfo=UTC)),
        (-86400.0, datetime(1969, 12, 31, tzinfo=UTC)),
    ],
    ids=["huge", "year-10000", "huge-int", "-huge", "year-0", "-huge-int", "zero", "negative"],
)
def test_utc_datetime_clamps_to_what_a_datetime_can_hold(epoch: float, expected: datetime) -> None:
    assert utc_datetime(epoch) == expected


@pytest.mark.parametrize("epoch", [EPOCH, EPOCH + 0.123456, 1.5, NEVER_EXPIRES.timestamp() - 1])
def test_utc_datetime_agrees_with_fromtimestamp_in_range(epoch: float) -> None:
    when = utc_datetime(epoch)
    assert when == datetime.fromtimestamp(epoch, UTC)
    assert when is not None and when.utcoffset() == timedelta(0)


# -- end to end, through the public constructors ------------------------------------------
class NeverExpiring:
    """A fetcher whose credentials carry a "never expires" sentinel."""

    def __init__(self, expiry: object = datetime.max) -> None:
        self.expiry = expiry
        self.calls = 0

    def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        return answer(expiry_time=self.expiry)


def test_from_fetcher_serves_a_datetime_max_set_as_never_expiring() -> None:
    fetch = NeverExpiring()
    events: list[RefreshEvent] = []
    session = botocreds.from_fetcher(fetch, reporter=events.append)
    credentials = session.get_credentials()
    assert isinstance(credentials, botocreds.BackgroundCredentials)
    assert credentials.get_frozen_credentials().access_key == ACCESS_KEY
    assert credentials.expiry_time is None
    assert "expires=never" in repr(credentials)
    succeeded = [e for e in events if isinstance(e, RefreshSucceeded)]
    assert [e.expires_at for e in succeeded] == [None]
    assert [e.remaining for e in succeeded] == [None]
    mine = [s for s in botocreds.health() if s.source == credentials.method]
    assert len(mine) == 1
    assert mine[0].expires_at is None
    assert mine[0].next_refresh_at is None
    assert mine[0].valid
    assert fetch.calls == 1


@pytest.mark.parametrize(
    "expiry", [datetime.max, "9999-12-31T23:59:59Z"], ids=["datetime-max", "iso-9999"]
)
def test_a_refresher_over_botocore_credentials_never_refreshes_a_never_expiring_set(
    expiry: object,
) -> None:
    clock = FakeClock()
    fetch = NeverExpiring(expiry)
    metadata = answer(expiry_time="9999-12-31T23:59:59Z")
    events: list[RefreshEvent] = []
    scheduler = manual_scheduler(clock)
    refresher = botocreds.Refresher(
        RefreshableCredentials.create_from_metadata(metadata, fetch, "never-expiring"),
        clock=clock,
        reporter=events.append,
        _scheduler=scheduler,
    )
    status = refresher.status()
    assert status.expires_at is None
    assert status.next_refresh_at is None
    assert status.valid
    assert [e.expires_at for e in events if isinstance(e, RefreshSucceeded)] == [None]
    assert refresher.credentials.expiry_time is None
    clock.advance(100 * 365 * 86400.0)
    scheduler.run_pending()
    assert refresher.credentials.access_key == ACCESS_KEY
    assert fetch.calls == 1


def test_a_refresher_over_a_set_expiring_late_in_9999_reports_its_real_expiry() -> None:
    clock = FakeClock()
    last_day = datetime(9999, 12, 30, tzinfo=UTC)
    fetch = NeverExpiring(last_day)
    events: list[RefreshEvent] = []
    refresher = botocreds.Refresher(
        RefreshableCredentials.create_from_metadata(answer(), fetch, "late"),
        clock=clock,
        reporter=events.append,
        _scheduler=manual_scheduler(clock),
    )
    status = refresher.status()
    assert status.expires_at == last_day
    assert status.next_refresh_at is not None
    assert [e.expires_at for e in events if isinstance(e, RefreshSucceeded)] == [last_day]
    assert refresher.credentials.expiry_time == last_day


def test_a_year_10000_answer_at_construction_is_credentials_unavailable() -> None:
    clock = FakeClock()
    fetch = NeverExpiring("10000-01-01T00:00:00Z")
    with pytest.raises(CredentialsUnavailable) as caught:
        botocreds.Refresher(
            RefreshableCredentials.create_from_metadata(answer(), fetch, "year-10000"),
            clock=clock,
            _scheduler=manual_scheduler(clock),
        )
    assert "expiry_time is not an ISO 8601 date" in str(caught.value)
    assert_nowhere(("10000-01-01T00:00:00Z",), caught.value)
