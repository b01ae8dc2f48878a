"""A second cache tier, shared by processes or hosts, between a refresher and its source.

Each process still has its own refresher and its own jittered schedule. When
one comes due it first looks in the shared store: a set there that is newer
than the one it serves (and not inside the floor) is adopted without calling
the source. Otherwise it takes the store's lock for that key (cross-process
single-flight), looks again, and only then calls the source and writes the
answer back, with a TTL of the expiry minus the floor.

The shared tier can never make things worse than not having it: any store
failure (an unreachable Redis, a full disk, a lock that cannot be had) falls
back to calling the source directly, and is logged once per outage.

Whoever can write to the store can plant an entry, so an adopted entry is
bounded: one that expires more than :data:`MAX_ENTRY_LIFETIME` from now, was
issued in the future, or carries times that are not finite numbers is
*forged*, and so is one whose container gives it away before it is read (a
file of another owner, a Redis value too large to be ours: the store's
``load()`` raises :class:`ForgedEntry`). A forged entry is never adopted; it
is reported (a :class:`SharedCacheFailed` event, and one WARNING per key) and
overwritten by the source's answer. For the same reason a set that never
expires is never written to a shared tier: a planted never-expiring entry
would never be refreshed, so no legitimate entry may look like one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from botocore.credentials import ReadOnlyCredentials

from ._events import RefreshEvent, SharedCacheFailed
from ._forksafe import renew_after_fork
from ._policy import RefreshPolicy
from ._snapshot import Snapshot, make_snapshot
from ._sources import Clock, Source

logger = logging.getLogger("botocreds")

#: Bumped when the entry format changes; an entry of another version is a miss.
#: Version 2 added ``issued_at``.
ENTRY_VERSION = 2

#: The furthest an adopted entry may expire from now: 36 hours, the longest
#: session STS issues (a role's maximum session duration caps at 12 h,
#: ``GetSessionToken`` at 36 h). An entry expiring later was not written by a
#: botocreds process (which never stores such a set) and is forged.
MAX_ENTRY_LIFETIME = 129_600.0

#: How far in the future an entry's issue time may be. Processes on different
#: hosts share a store and their clocks disagree by a little (NTP keeps them
#: within well under a second, a VM resumed from suspend a while longer);
#: five minutes, the skew AWS itself tolerates in a signed request, absorbs
#: that without letting a forged "issued tomorrow" entry through.
MAX_ISSUE_SKEW = 300.0


class CacheUnavailable(Exception):
    """The shared store cannot be used right now (down, full, refused)."""


class ForgedEntry(Exception):
    """The store holds an entry under a key that no trusted writer could have put there.

    Raised by a store's ``load()`` when the entry's container betrays it (a
    file of another owner or readable by others, a symlink, a Redis value of
    the wrong type or size), before its content is read. It is a miss, and
    reported like a forged entry whose times are out of bounds. The message
    says what is wrong with the container, never what it holds.
    """


@runtime_checkable
class SharedCache(Protocol):
    """A store that processes share: one entry per key, a TTL, and a lock per key."""

    #: A label for logs, e.g. ``"FileCache(/run/botocreds)"``; never a secret.
    name: str

    def load(self, key: str) -> bytes | None:
        """The entry stored under ``key``, or ``None``.

        Raises :class:`CacheUnavailable`, or :class:`ForgedEntry` for an entry
        that no trusted writer could have stored.
        """
        ...

    def store(self, key: str, entry: bytes, ttl: float) -> None:
        """Store ``entry`` under ``key`` for ``ttl`` seconds. Raises :class:`CacheUnavailable`."""
        ...

    def lock(self, key: str, *, lease: float, wait: float) -> AbstractContextManager[bool]:
        """Hold the lock for ``key``: yields whether it was acquired within ``wait`` seconds.

        A holder that dies loses the lock after ``lease`` seconds at most.
        Raises :class:`CacheUnavailable` if the store cannot be reached.
        """
        ...


def check_cache(cache: object, cache_key: object = None) -> SharedCache | None:
    """Check ``cache=`` and ``cache_key=`` arguments, before any I/O."""
    if cache is not None and not isinstance(cache, SharedCache):
        raise TypeError(
            "cache must be a botocreds.FileCache or botocreds.RedisCache, "
            f"got {type(cache).__name__}"
        )
    if cache_key is not None:
        if cache is None:
            raise ValueError("cache_key= only makes sense with cache=")
        if not isinstance(cache_key, str) or not cache_key:
            raise TypeError(f"cache_key must be a non-empty string, got {cache_key!r}")
    return cache


def cache_key(*parts: object) -> str:
    """A store key from a source's identity: readable kind, hashed details.

    The details (role ARN, session name, region, a hash of the external ID…)
    are hashed so the key has a bounded length and safe characters; no part
    may be a secret.
    """
    kind = str(parts[0]) if parts else "source"
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:32]
    safe_kind = "".join(c if c.isalnum() or c in "-_" else "-" for c in kind)[:40]
    return f"{safe_kind}-{digest}"


def encode_entry(snapshot: Snapshot) -> bytes:
    """Serialise a snapshot for the store (JSON; the store may encrypt it).

    Only sets that :func:`storable` accepts are written; a never-expiring one
    would encode an expiry of ``Infinity``, which every reader rejects.
    """
    frozen = snapshot.frozen
    return json.dumps(
        {
            "v": ENTRY_VERSION,
            "access_key": frozen.access_key,
            "secret_key": frozen.secret_key,
            "token": frozen.token,
            "account_id": frozen.account_id,
            "issued_at": snapshot.issued_at,
            "expires_at": snapshot.valid_until,
        },
        separators=(",", ":"),
    ).encode()


def storable(snapshot: Snapshot, *, now: float, floor: float) -> bool:
    """Whether ``snapshot`` may be written to a shared tier at ``now``.

    Not if it never expires: every reader would take it for a forged entry (a
    planted never-expiring set would otherwise be served for ever, never
    refreshed, with the real source never called again). Not if it expires
    more than :data:`MAX_ENTRY_LIFETIME` from now, for the same reason. Not
    if it is already inside the floor, when no reader could adopt it.
    """
    if not snapshot.expires:
        return False
    remaining = snapshot.valid_until - now
    return floor < remaining <= MAX_ENTRY_LIFETIME


@dataclass(frozen=True)
class Decoded:
    """What a stored entry turned out to be.

    ``snapshot`` is the set to adopt, or ``None`` for a miss. ``forged`` says
    why an entry is forged (its times are out of bounds or not numbers), or is
    ``None``; it never holds anything taken from the entry's credentials.
    """

    snapshot: Snapshot | None
    forged: str | None = None


_MISS = Decoded(None)


class _Forged(Exception):
    """An entry's times are out of bounds; the message says how, without its credentials."""


def _hours(seconds: float) -> str:
    """``seconds`` as hours for a message, short even for an absurd value."""
    hours = seconds / 3600
    return f"{hours:.1f} h" if abs(hours) < 1e6 else f"{hours:.2e} h"


def _entry_time(data: dict[str, object], name: str) -> float:
    """The time field ``name`` as finite epoch seconds; :class:`_Forged` if it is not one."""
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Forged(f"its {name} is not a number (a {type(value).__name__})")
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond a float's range
        raise _Forged(f"its {name} is beyond any date") from None
    if not math.isfinite(seconds):
        raise _Forged(f"its {name} is not a finite number")
    return seconds


def _check_times(issued_at: float, expires_at: float, now: float) -> None:
    """Raise :class:`_Forged` unless an entry's times are ones botocreds could have written."""
    if issued_at > expires_at:
        raise _Forged("it was issued after it expires")
    if issued_at - now > MAX_ISSUE_SKEW:
        raise _Forged(
            f"issued {_hours(issued_at - now)} in the future, beyond the "
            f"{MAX_ISSUE_SKEW:.0f} s clocks may disagree by"
        )
    if expires_at - now > MAX_ENTRY_LIFETIME:
        raise _Forged(
            f"expiry {_hours(expires_at - now)} away, beyond the "
            f"{MAX_ENTRY_LIFETIME / 3600:.0f} h an STS session can last"
        )


def read_entry(entry: bytes, *, now: float, floor: float) -> Decoded:
    """What a stored entry holds: a set to adopt, a miss, or a forged entry (and why).

    A miss is an entry that is corrupt, of another format version, stale or
    inside the floor: overwritten without a word. A forged one has times no
    botocreds process writes (see the module docstring). Never raises, for
    any bytes at all.
    """
    try:
        data = json.loads(entry)
        if not isinstance(data, dict) or data.get("v") != ENTRY_VERSION:
            return _MISS
        issued_at = _entry_time(data, "issued_at")
        expires_at = _entry_time(data, "expires_at")
        _check_times(issued_at, expires_at, now)
        frozen = ReadOnlyCredentials(
            access_key=data["access_key"],
            secret_key=data["secret_key"],
            token=data["token"],
            account_id=data.get("account_id"),
        )
        return Decoded(make_snapshot(frozen, now=now, expires_at=expires_at, floor=floor))
    except _Forged as forged:
        return Decoded(None, f"a forged entry: {forged}")
    except Exception:  # anything unreadable, even a RecursionError from a forged entry
        return _MISS


def decode_entry(entry: bytes, *, now: float, floor: float) -> Snapshot | None:
    """The snapshot in a stored entry, or ``None`` if it is corrupt, foreign, stale or forged.

    Never raises: anything unreadable is a miss, to be overwritten. Use
    :func:`read_entry` to tell a forged entry from a plain miss.
    """
    return read_entry(entry, now=now, floor=floor).snapshot


def fernet_key(key: str | bytes) -> bytes:
    """Check a Fernet key (32 url-safe base64-encoded bytes) and return it as bytes."""
    raw = key.encode() if isinstance(key, str) else key
    try:
        decoded = base64.urlsafe_b64decode(raw)
    except (ValueError, TypeError) as error:
        raise ValueError("key must be a Fernet key: 32 url-safe base64-encoded bytes") from error
    if len(decoded) != 32:
        raise ValueError("key must be a Fernet key: 32 url-safe base64-encoded bytes")
    return raw


_T = TypeVar("_T")


def _guarded(call: Callable[[], _T]) -> _T:
    """Run a store operation; any failure of the store, even a bug, is CacheUnavailable."""
    try:
        return call()
    except (CacheUnavailable, ForgedEntry):
        raise
    except Exception as error:
        raise CacheUnavailable(f"{type(error).__name__}: {error}") from error


class CachedSource:
    """A source behind a shared cache tier (see the module docstring)."""

    def __init__(
        self,
        inner: Source,
        cache: SharedCache,
        key: str,
        *,
        wait: float,
        lease: float,
        served_until: Callable[[], float],
        report: Callable[[RefreshEvent], None],
    ) -> None:
        self._inner = inner
        self._cache = cache
        self._key = key
        self._wait = wait
        self._lease = lease
        self._served_until = served_until  # expiry of the set the refresher serves
        self._report = report
        self.name = inner.name
        self.renews_static = inner.renews_static
        self.identity = inner.identity
        self._outage = False
        self._warned_forged = False
        self._state_lock = threading.Lock()
        renew_after_fork(self, "_state_lock", threading.Lock)

    def mint(self, clock: Clock, floor: float) -> Snapshot:
        fetched: list[Snapshot] = []
        try:
            snapshot = self._mint_through_cache(clock, floor, fetched)
        except CacheUnavailable as error:
            self._note_outage(error, clock)
            # If the source already answered (the store failed afterwards), use
            # that answer: the shared tier must never cost a second source call.
            snapshot = fetched[0] if fetched else self._inner.mint(clock, floor)
        else:
            self._note_recovery()
        return snapshot

    def _mint_through_cache(self, clock: Clock, floor: float, fetched: list[Snapshot]) -> Snapshot:
        forged: list[str] = []
        try:
            return self._mint_past_forgeries(clock, floor, fetched, forged)
        finally:
            if forged:  # report once per mint, however often the entry was read
                self._note_forged(forged[0], clock)

    def _mint_past_forgeries(
        self, clock: Clock, floor: float, fetched: list[Snapshot], forged: list[str]
    ) -> Snapshot:
        adopted = self._adoptable(clock, floor, forged)
        if adopted is not None:
            return adopted
        lock = _guarded(lambda: self._cache.lock(self._key, lease=self._lease, wait=self._wait))
        held = _guarded(lock.__enter__)
        try:
            adopted = self._adoptable(clock, floor, forged)
            if adopted is not None:
                return adopted
            if not held:
                logger.info(
                    "botocreds: %s: the %s lock stayed taken for %.0fs; calling the source",
                    self.name,
                    self._cache.name,
                    self._wait,
                )
            snapshot = self._inner.mint(clock, floor)  # the source's own errors pass through
            fetched.append(snapshot)
            now = clock()
            if storable(snapshot, now=now, floor=floor):
                ttl = snapshot.valid_until - floor - now
                entry = encode_entry(snapshot)
                _guarded(lambda: self._cache.store(self._key, entry, ttl))
            return snapshot
        finally:
            try:
                lock.__exit__(None, None, None)
            except Exception:  # the lease or the kernel frees it anyway
                logger.debug("botocreds: releasing the %s lock failed", self._cache.name)

    def _adoptable(self, clock: Clock, floor: float, forged: list[str]) -> Snapshot | None:
        try:
            entry = _guarded(lambda: self._cache.load(self._key))
        except ForgedEntry as error:
            forged.append(f"a forged entry: {error}")
            return None
        if entry is None:
            return None
        decoded = read_entry(entry, now=clock(), floor=floor)
        if decoded.forged is not None:
            forged.append(decoded.forged)
        snapshot = decoded.snapshot
        newer = snapshot is not None and snapshot.valid_until > self._served_until()
        return snapshot if newer else None

    def _note_forged(self, reason: str, clock: Clock) -> None:
        """Report a forged entry: an event every time, a WARNING once for this key."""
        with self._state_lock:
            first = not self._warned_forged
            self._warned_forged = True
        if first:
            logger.warning(
                "botocreds: %s: the shared cache %s holds %s; not adopted, the source "
                "was called instead (logged once)",
                self.name,
                self._cache.name,
                reason,
            )
        served_until = self._served_until()
        remaining = served_until - clock() if served_until > float("-inf") else None
        self._report(SharedCacheFailed(self.name, 0.0, remaining, 1, self._cache.name, reason))

    def _note_outage(self, error: CacheUnavailable, clock: Clock) -> None:
        with self._state_lock:
            first = not self._outage
            self._outage = True
        served_until = self._served_until()
        if first:
            logger.warning(
                "botocreds: %s: the shared cache %s is unavailable (%s); "
                "calling the source directly until it is back",
                self.name,
                self._cache.name,
                error,
            )
        remaining = served_until - clock() if served_until > float("-inf") else None
        self._report(SharedCacheFailed(self.name, 0.0, remaining, 1, self._cache.name, str(error)))

    def _note_recovery(self) -> None:
        with self._state_lock:
            recovered = self._outage
            self._outage = False
        if recovered:
            logger.info("botocreds: %s: the shared cache %s is back", self.name, self._cache.name)


def behind_cache(
    source: Source,
    cache: SharedCache,
    key: str | None,
    policy: RefreshPolicy,
    served_until: Callable[[], float],
    report: Callable[[RefreshEvent], None],
) -> Source:
    """Put ``source`` behind a shared cache tier (arguments already checked).

    ``served_until`` and ``report`` reach the refresher; they should hold it
    only weakly, so that a refresher with a cache is freed by reference
    counting like one without.
    """
    chosen = key or source.identity
    if chosen is None:
        raise ValueError(
            f"botocreds cannot tell which role or identity {source.name!r} stands for, so it "
            "cannot name a shared cache entry: pass cache_key= (the same in every process "
            "that should share these credentials)"
        )
    # Wait for another process's mint for a quarter of the mint budget at most,
    # and lease the lock for the whole budget, so a slow fetch keeps it.
    wait = min(30.0, policy.mint_timeout / 4)
    return CachedSource(
        source,
        cache,
        cache_key(chosen),
        wait=wait,
        lease=max(policy.mint_timeout, 2 * wait),
        served_until=served_until,
        report=report,
    )
