"""A refresher's state at a glance, for readiness probes and debugging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._breaker import BreakerState


@dataclass(frozen=True)
class RefresherStatus:
    """A frozen snapshot of one refresher.

    ``access_key`` is masked to its last 4 characters. ``expires_at`` and
    ``next_refresh_at`` are UTC (``None``: never expires / nothing scheduled).
    ``valid`` says whether the credentials served right now have not expired;
    ``closed`` whether background refresh was stopped.
    """

    source: str
    access_key: str
    expires_at: datetime | None
    next_refresh_at: datetime | None
    breaker: BreakerState
    failures: int
    last_error: str | None
    mint_count: int
    closed: bool
    valid: bool
