"""The refresh timing policy: when to mint, and how long to back off.

Everything here is pure. Nothing reads a clock or draws a random number: the
runtime passes in the current time and a uniform sample in [0, 1). That keeps
the policy testable by property tests over wide ranges, and keeps the rules in
one place that reads like the documentation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


def _check_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"RefreshPolicy.{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"RefreshPolicy.{name} must be finite, got {value!r}")
    return number


@dataclass(frozen=True)
class RefreshPolicy:
    """When to refresh credentials, and how to behave when refreshing fails.

    An immutable value: share one policy between any number of refreshers, and
    derive variants with :func:`dataclasses.replace`. All times are seconds.

    Timing:
        fraction: refresh once this share of the lifetime has passed (0.8 means
            1-hour credentials are refreshed at 48 minutes).
        floor: never schedule a refresh later than this long before expiry.
            Credentials that arrive with less than ``floor`` left count as a
            failed mint.
        jitter: pull each refresh earlier by up to this share of the lifetime,
            so that many processes do not refresh at the same instant.
        static_ttl: how often a :class:`Swapper` re-runs its factory when the
            credentials it returns never expire.

    Pacing and failure:
        min_interval: the least time between two mints of one source. Whatever
            the policy, a source whose last mint failed is not tried again
            sooner than 0.25 s, on any path, so no policy makes a hot loop.
        backoff_base, backoff_max: retries after a failed mint wait a random
            time in ``[0, min(backoff_max, backoff_base * 2**(n-1))]`` ("full
            jitter"), but never less than ``min_interval``.
        failure_threshold: consecutive failed mints that open the circuit
            breaker.
        cooldown: how long an open breaker refuses to mint before it lets one
            probe through.
        wait_timeout: the longest a request thread waits for a mint when the
            credentials it holds have expired.
        mint_timeout: a mint still running after this long is abandoned and
            counted as failed, so a hung source cannot hold its single-flight
            slot forever; its late answer, if any, is discarded.
    """

    fraction: float = 0.8
    floor: float = 60.0
    jitter: float = 0.1
    min_interval: float = 1.0
    failure_threshold: int = 5
    cooldown: float = 60.0
    wait_timeout: float = 5.0
    static_ttl: float = 900.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    mint_timeout: float = 120.0

    def __post_init__(self) -> None:
        fraction = _check_number("fraction", self.fraction)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"RefreshPolicy.fraction must be in (0, 1], got {self.fraction!r}")
        jitter = _check_number("jitter", self.jitter)
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"RefreshPolicy.jitter must be in [0, 1), got {self.jitter!r}")
        for name in (
            "floor",
            "min_interval",
            "cooldown",
            "wait_timeout",
            "backoff_base",
            "backoff_max",
        ):
            if _check_number(name, getattr(self, name)) < 0:
                raise ValueError(
                    f"RefreshPolicy.{name} must be >= 0 seconds, got {getattr(self, name)!r}"
                )
        for name in ("static_ttl", "mint_timeout"):
            if _check_number(name, getattr(self, name)) <= 0:
                raise ValueError(
                    f"RefreshPolicy.{name} must be > 0 seconds, got {getattr(self, name)!r}"
                )
        threshold = self.failure_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise TypeError(
                f"RefreshPolicy.failure_threshold must be an int, got {type(threshold).__name__}"
            )
        if threshold < 1:
            raise ValueError(f"RefreshPolicy.failure_threshold must be >= 1, got {threshold!r}")

    def refresh_at(self, issued_at: datetime, expires_at: datetime, sample: float) -> datetime:
        """Return when credentials issued at ``issued_at`` should be refreshed.

        With lifetime ``L = expires_at - issued_at`` the answer is
        ``issued_at + fraction*L - sample*jitter*L``, capped at
        ``expires_at - floor`` and never earlier than ``issued_at``.

        ``issued_at`` and ``expires_at`` must be timezone-aware; ``sample`` is a
        uniform draw in [0, 1) supplied by the caller, so this stays pure.
        """
        if issued_at.tzinfo is None or expires_at.tzinfo is None:
            raise ValueError("refresh_at needs timezone-aware datetimes")
        lifetime = (expires_at - issued_at).total_seconds()
        offset = self.refresh_offset(lifetime, sample)
        return issued_at + timedelta(seconds=offset)

    def refresh_offset(self, lifetime: float, sample: float) -> float:
        """Seconds after issue at which to refresh credentials living ``lifetime`` s.

        The float form of :meth:`refresh_at`, used by the runtime, which keeps
        time as epoch seconds.
        """
        if not 0.0 <= sample < 1.0:
            raise ValueError(f"sample must be in [0, 1), got {sample!r}")
        if lifetime <= 0:
            return 0.0
        offset = self.fraction * lifetime - sample * self.jitter * lifetime
        return max(0.0, min(offset, lifetime - self.floor))

    def retry_at(self, now: float, attempt: int, expires_at: float | None, sample: float) -> float:
        """When to try again after ``attempt`` consecutive failed mints.

        Exponential backoff with full jitter, never sooner than ``min_interval``.
        While the served credentials still have time left, a retry is never
        pushed past ``expires_at - min_interval``, the last moment a mint still
        has a chance to land before they expire.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt!r}")
        if not 0.0 <= sample < 1.0:
            raise ValueError(f"sample must be in [0, 1), got {sample!r}")
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(attempt - 1, 64))
        earliest = now + self.min_interval
        when = max(earliest, now + sample * ceiling)
        if expires_at is not None:
            last_chance = expires_at - self.min_interval
            when = max(earliest, min(when, last_chance))
        return when
