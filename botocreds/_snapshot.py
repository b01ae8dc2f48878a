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
from datetime import datetime, timezone
from typing import Any

from botocore.credentials import ReadOnlyCredentials
from dateutil.parser import parse as parse_datetime

from ._redact import mask_access_key


class BadAnswer(ValueError):
    """A credential source answered with something that must not be published."""


@dataclass(frozen=True)
class Snapshot:
    """One published set of credentials.

    ``frozen`` is botocore's ``ReadOnlyCredentials``. Times are epoch seconds.
    ``valid_until`` is the expiry (``inf`` for credentials that never expire);
    ``fresh_until`` is ``valid_until - floor``, the point after which the hot
    path leaves its fast lane. ``issued_at`` is when botocreds received the set.
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
        expiry = (
            datetime.fromtimestamp(self.valid_until, timezone.utc).isoformat()
            if self.expires
            else "never"
        )
        return f"Snapshot(access_key={mask_access_key(self.frozen.access_key)!r}, expires={expiry})"


def utc_datetime(epoch: float) -> datetime | None:
    """``epoch`` as an aware UTC datetime; ``None`` for never (``inf``) or out of range."""
    if math.isnan(epoch) or math.isinf(epoch):
        return None
    try:
        return datetime.fromtimestamp(epoch, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def to_epoch(value: object) -> float:
    """Convert an expiry (ISO 8601 string or datetime) to epoch seconds.

    A naive datetime or string without an offset is taken as UTC, as botocore's
    own sources do.
    """
    if isinstance(value, str):
        try:
            when = parse_datetime(value)
        except (ValueError, OverflowError) as error:
            raise BadAnswer(f"expiry_time is not a date: {value!r}") from error
    elif isinstance(value, datetime):
        when = value
    else:
        raise BadAnswer(
            f"expiry_time must be an ISO 8601 string or a datetime, got {type(value).__name__}"
        )
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def make_snapshot(
    frozen: ReadOnlyCredentials,
    *,
    now: float,
    expires_at: float | None,
    floor: float,
) -> Snapshot:
    """Check a new set of credentials and wrap it in a :class:`Snapshot`.

    Raises :class:`BadAnswer` if the access key or secret key is missing, or if
    the credentials expire within ``floor`` seconds of ``now``.
    """
    if not isinstance(frozen.access_key, str) or not frozen.access_key:
        raise BadAnswer("the answer has no access_key")
    if not isinstance(frozen.secret_key, str) or not frozen.secret_key:
        raise BadAnswer("the answer has no secret_key")
    if frozen.token is not None and not isinstance(frozen.token, str):
        raise BadAnswer(f"token must be a string or None, got {type(frozen.token).__name__}")
    if expires_at is None:
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
    empty mapping, a missing field, credentials already expired or inside the
    floor — raises :class:`BadAnswer`.
    """
    if not isinstance(data, Mapping) or not data:
        kind = "nothing" if not data else type(data).__name__
        raise BadAnswer(f"the fetcher returned {kind}, expected a credentials mapping")
    fields: Mapping[str, Any] = data
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
