"""Where new credentials come from: a fetch function, a factory, or a fixed set.

A source's ``mint`` does the slow part (an STS, IMDS, container or process
call) and returns a checked :class:`Snapshot`. It runs on a mint worker thread,
never on a request thread, and never under a lock that a request could need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from botocore.credentials import Credentials, RefreshableCredentials

from . import _botocore
from ._credentials import SnapshotCredentials
from ._errors import CredentialsUnavailable
from ._snapshot import BadAnswer, Snapshot, make_snapshot, snapshot_from_mapping, to_epoch

Clock = Callable[[], float]


class Source(Protocol):
    """Something that can mint a new set of credentials."""

    #: A label for logs and errors; never a secret.
    name: str
    #: Whether credentials without expiry are minted again every ``static_ttl``.
    renews_static: bool
    #: A stable identity for a shared cache key (never a secret), if one is known.
    identity: str | None

    def mint(self, clock: Clock, floor: float) -> Snapshot:
        """Fetch new credentials; raise on any failure, including a bad answer."""
        ...


class FetchSource:
    """Mints by calling a botocore-style fetch function that returns a mapping."""

    renews_static = False

    def __init__(
        self, fetch: Callable[[], Mapping[str, Any]], name: str, identity: str | None = None
    ) -> None:
        self._fetch = fetch
        self.name = name
        self.identity = identity

    def mint(self, clock: Clock, floor: float) -> Snapshot:
        data = self._fetch()
        return snapshot_from_mapping(data, now=clock(), floor=floor)


class StaticSource:
    """A fixed set of credentials that never expires: nothing to refresh."""

    renews_static = False
    identity: str | None = None

    def __init__(self, credentials: Credentials, name: str) -> None:
        self._credentials = credentials
        self.name = name

    def mint(self, clock: Clock, floor: float) -> Snapshot:
        frozen = self._credentials.get_frozen_credentials()
        return make_snapshot(frozen, now=clock(), expires_at=None, floor=floor)


class FactorySource:
    """Mints by calling a factory that builds a whole new botocore credentials object.

    A fresh ``RefreshableCredentials`` from the factory is read without running
    its own refresh (which a short-lived set would trigger at once, costing a
    second fetch); a deferred one is fetched exactly once through its own fetch
    function.
    """

    renews_static = True
    identity: str | None = None

    def __init__(self, factory: Callable[[], Credentials | None], name: str) -> None:
        self._factory = factory
        self.name = name

    def mint(self, clock: Clock, floor: float) -> Snapshot:
        credentials = self._factory()
        if _botocore.is_aio_credentials(credentials):
            raise BadAnswer(
                "the factory returned aiobotocore credentials, whose reads are coroutines: "
                "for aiobotocore, use botocreds.AioRefresher"
            )
        if not isinstance(credentials, Credentials):
            kind = "None" if credentials is None else type(credentials).__name__
            raise BadAnswer(f"the factory returned {kind}, expected botocore Credentials")
        if isinstance(credentials, SnapshotCredentials):
            # Another refresher's object: take its current set with its real expiry.
            expiry = credentials.expiry_time
            return make_snapshot(
                credentials._frozen_now(),
                now=clock(),
                expires_at=None if expiry is None else expiry.timestamp(),
                floor=floor,
            )
        if isinstance(credentials, RefreshableCredentials):
            current = _botocore.peek(credentials)
            if current is not None:
                frozen, expiry = current
                now = clock()
                expires_at = to_epoch(expiry)
                if expires_at - now > floor:
                    return make_snapshot(frozen, now=now, expires_at=expires_at, floor=floor)
            data = _botocore.refresh_function(credentials)()
            return snapshot_from_mapping(data, now=clock(), floor=floor)
        return make_snapshot(
            credentials.get_frozen_credentials(), now=clock(), expires_at=None, floor=floor
        )


def refuse_own(credentials: object) -> None:
    """Refuse credentials that a botocreds refresher already keeps fresh."""
    if isinstance(credentials, SnapshotCredentials):
        raise ValueError(
            "these credentials are already kept fresh by botocreds; "
            "attach clients to their refresher instead"
        )


def resolved(credentials: Credentials | None, name: str | None) -> Credentials:
    """The credentials a session resolved: refuses none at all, and botocreds' own."""
    if credentials is None:
        raise CredentialsUnavailable(
            source=name or "session", reason="the session found no credentials"
        )
    refuse_own(credentials)
    return credentials


def identity_of(credentials: RefreshableCredentials) -> str | None:
    """A shared-cache identity for botocore or aiobotocore refreshable credentials, if known."""
    identity = _botocore.source_identity(credentials)
    return None if identity is None else identity.key()


def current_set(credentials: RefreshableCredentials) -> Callable[[Clock, float], Snapshot | None]:
    """What a refresher taking over ``credentials`` may serve without fetching.

    The set botocore already holds, if it has more than the floor left: botocore
    has just fetched it (a process, container or instance-metadata source
    fetches while resolving), so fetching again would double every start-up's
    calls. ``None`` for a deferred object that has fetched nothing yet, or a set
    too close to expiry.
    """

    def adopt(clock: Clock, floor: float) -> Snapshot | None:
        current = _botocore.peek(credentials)
        if current is None:
            return None
        frozen, expiry = current
        now = clock()
        try:
            expires_at = to_epoch(expiry)
            if expires_at - now <= floor:
                return None
            return make_snapshot(frozen, now=now, expires_at=expires_at, floor=floor)
        except (BadAnswer, OverflowError, ValueError, TypeError):
            return None  # not servable as it is: the first mint decides

    return adopt
