"""An immutable set of credentials with its deadlines, and the checks a new set must pass.

A :class:`Snapshot` is what the hot path reads: one reference, replaced
atomically, so a request can never see the key of one set with the secret of
another. Building a snapshot from a fetcher's answer is where a bad answer
(missing fields, already expired, inside the floor) is turned away, before
anything is published.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.credentials import ReadOnlyCredentials
from dateutil.parser import parse as parse_datetime

from ._redact import describe_value, mask_access_key

#: An expiry at or after this instant means the credentials never expire.
#: "Never expires" sentinels such as ``datetime.max`` sit here, and no real
#: expiry does; treating them as ``inf`` also keeps every finite expiry a
#: datetime can hold, in any time zone.
NEVER_EXPIRES = datetime(9999, 12, 31, tzinfo=timezone.utc)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NEVER_EPOCH = (NEVER_EXPIRES - _EPOCH).total_seconds()
_FIRST = datetime.min.replace(tzinfo=timezone.utc)
_LAST = datetime.max.replace(tzinfo=timezone.utc)


def utc_datetime(epoch: float) -> datetime | None:
    """Epoch seconds as an aware UTC datetime; ``None`` for ``inf``, ``-inf`` and ``nan``.

    Unlike ``datetime.fromtimestamp`` this never raises for a number: an epoch
    before year 1 or after year 9999 is clamped to ``datetime.min`` or
    ``datetime.max`` (in UTC), and the platform's ``time_t`` range does not
    matter.
    """
    try:
        seconds = float(epoch)
    except OverflowError:  # an int beyond a float's range
        return _LAST if epoch > 0 else _FIRST
    if not math.isfinite(seconds):
        return None
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return _LAST if seconds > 0 else _FIRST


class BadAnswer(ValueError):
    """A credential source answered with something that must not be published."""


@dataclass(frozen=True)
class Snapshot:
    """One published set of credentials.

    ``frozen`` is botocore's ``ReadOnlyCredentials``. Times are epoch seconds.
    ``valid_until`` is the expiry (``inf`` for credentials that never expire,
    including any expiry at or after :data:`NEVER_EXPIRES`); ``fresh_until``
    is ``valid_until - floor``, the point after which the hot path leaves its
    fast lane. ``issued_at`` is when botocreds received the set.
    """

    frozen: ReadOnlyCredentials
    issued_at: float
    valid_until: float
    fresh_until: float

    @property
    def expires(self) -> bool:
        """Whether these credentials have an expiry at all."""
        return not math.isinf(self.valid_until)

    @property
    def lifetime(self) -> float:
        """Seconds between receipt and expiry (``inf`` if they never expire)."""
        return self.valid_until - self.issued_at

    def __repr__(self) -> str:
        when = utc_datetime(self.valid_until)
        expiry = when.isoformat() if when is not None else "never" if not self.expires else "?"
        return f"Snapshot(access_key={mask_access_key(self.frozen.access_key)!r}, expires={expiry})"


def _parse(text: str) -> datetime | None:
    """``text`` as a datetime, or ``None`` if it is not one a datetime can hold."""
    try:
        return parse_datetime(text)
    except Exception:  # ParserError, OverflowError…: whatever dateutil makes of bad input
        return None


def _timestamp(when: datetime) -> float | None:
    """Epoch seconds of ``when`` (naive taken as UTC); ``None`` if its tzinfo fails."""
    try:
        if when.utcoffset() is None:
            when = when.replace(tzinfo=timezone.utc)
        return (when - _EPOCH).total_seconds()
    except Exception:  # a tzinfo whose utcoffset() raises or is out of range
        return None


def to_epoch(value: object) -> float:
    """Convert an expiry (ISO 8601 string or datetime) to epoch seconds.

    A naive datetime or string without an offset is taken as UTC, as botocore's
    own sources do. An expiry at or after :data:`NEVER_EXPIRES` (9999-12-31
    UTC), such as ``datetime.max``, means the credentials never expire: the
    result is ``inf``, so the set is served and never refreshed. A string that
    is not a date a datetime can hold (a year after 9999 included) raises
    :class:`BadAnswer`, whose message gives the value's type and length but
    never the value, which may be a secret in the wrong field; nor does it
    chain the parser's error, whose message quotes the input.
    """
    if isinstance(value, str):
        when = _parse(value)
        if when is None:
            raise BadAnswer(
                "expiry_time is not an ISO 8601 date between years 1 and 9999, "
                f"got {describe_value(value)}"
            )
    elif isinstance(value, datetime):
        when = value
    else:
        raise BadAnswer(
            f"expiry_time must be an ISO 8601 string or a datetime, got {describe_value(value)}"
        )
    epoch = _timestamp(when)
    if epoch is None:
        raise BadAnswer("expiry_time is a datetime whose time zone gives no usable UTC offset")
    return math.inf if epoch >= _NEVER_EPOCH else epoch


def _check_field(name: str, value: object, *, required: bool) -> None:
    """Refuse a missing or non-string credential field, naming its type, never its value."""
    if value is None:
        if required:
            raise BadAnswer(f"the answer has no {name}")
        return
    if not isinstance(value, str):
        kind = "a string" if required else "a string or None"
        raise BadAnswer(f"{name} must be {kind}, got {describe_value(value)}")
    if required and not value:
        raise BadAnswer(f"the answer has no {name}")


def check_fields(frozen: ReadOnlyCredentials) -> None:
    """Refuse a set whose access key or secret key is missing, or whose fields are not strings.

    Raises :class:`BadAnswer` naming the field and its type, never its value.
    """
    _check_field("access_key", frozen.access_key, required=True)
    _check_field("secret_key", frozen.secret_key, required=True)
    _check_field("token", frozen.token, required=False)
    _check_field("account_id", frozen.account_id, required=False)


def make_snapshot(
    frozen: ReadOnlyCredentials,
    *,
    now: float,
    expires_at: float | None,
    floor: float,
) -> Snapshot:
    """Check a new set of credentials and wrap it in a :class:`Snapshot`.

    Raises :class:`BadAnswer` if the access key or secret key is missing, if a
    field is not a string (the message names the field and its type, never its
    value), or if the credentials expire within ``floor`` seconds of ``now``.
    ``expires_at`` of ``None``, ``inf`` or at or after :data:`NEVER_EXPIRES`
    means the credentials never expire.
    """
    check_fields(frozen)
    if isinstance(expires_at, float) and math.isnan(expires_at):
        raise BadAnswer("the expiry is not a number")
    if expires_at is None or expires_at >= _NEVER_EPOCH:
        return Snapshot(frozen, issued_at=now, valid_until=math.inf, fresh_until=math.inf)
    remaining = expires_at - now
    if remaining <= 0:
        raise BadAnswer("the credentials are already expired")
    if remaining <= floor:
        raise BadAnswer(f"the credentials expire in {remaining:.1f}s, within the {floor:g}s floor")
    return Snapshot(frozen, issued_at=now, valid_until=expires_at, fresh_until=expires_at - floor)


def snapshot_from_mapping(data: object, *, now: float, floor: float) -> Snapshot:
    """Turn a fetcher's answer (botocore's refresh mapping) into a :class:`Snapshot`.

    The mapping has ``access_key``, ``secret_key``, ``token`` and
    ``expiry_time``, and may have ``account_id``. Anything else — ``None``, an
    empty mapping, a missing field, a field of the wrong type, an expiry that
    is not a date, credentials already expired or inside the floor — raises
    :class:`BadAnswer`, whose message never includes a field's value. An
    ``expiry_time`` at or after :data:`NEVER_EXPIRES` (``datetime.max``, say)
    means the credentials never expire.
    """
    if not isinstance(data, Mapping):
        kind = "nothing" if data is None else f"a {type(data).__name__}"
        raise BadAnswer(f"the fetcher returned {kind}, expected a credentials mapping")
    fields: Mapping[str, Any] = data
    if not fields:
        raise BadAnswer("the fetcher returned an empty mapping, expected a credentials mapping")
    required = ("access_key", "secret_key", "token", "expiry_time")
    missing = [key for key in required if key not in fields]
    if missing:
        raise BadAnswer(f"the answer is missing {', '.join(missing)}")
    frozen = ReadOnlyCredentials(
        access_key=fields["access_key"],
        secret_key=fields["secret_key"],
        token=fields["token"],
        account_id=fields.get("account_id"),
    )
    return make_snapshot(frozen, now=now, expires_at=to_epoch(fields["expiry_time"]), floor=floor)
