"""The credentials object swapped into clients: a snapshot read on the hot path.

botocore asks a client's credentials for ``get_frozen_credentials()`` once per
signing. Here that is one attribute read, one clock read and one comparison:
no lock, no fetch, no I/O while the current set is fresh. Everything slower —
credentials inside the floor, or expired after a freeze or an outage — is
handed to the refresher that owns this object.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn, Protocol, cast

from botocore.credentials import Credentials, ReadOnlyCredentials

from ._redact import mask_access_key
from ._snapshot import Snapshot, utc_datetime


class _Owner(Protocol):
    """The refresher behind a :class:`BackgroundCredentials` (its slow path)."""

    name: str

    def _serve_stale(self, snapshot: Snapshot) -> ReadOnlyCredentials: ...


def read_only(name: str, owner: str = "BackgroundCredentials") -> NoReturn:
    """Refuse an assignment to one of the credential fields."""
    raise AttributeError(f"{owner}.{name} is read-only: its refresher publishes each new set")


class SnapshotCredentials(Credentials):
    """What the sync and the async credentials objects share: the snapshot and its owner.

    The snapshot is replaced whole by the refresher (one reference store, which
    is atomic), so a reader never sees the key of one set with the secret of
    another, and needs no lock.
    """

    _snapshot: Snapshot

    def __init__(
        self, owner: _Owner, snapshot: Snapshot, clock: Callable[[], float], method: str
    ) -> None:
        # Credentials.__init__ is deliberately not called: it would assign the
        # fields that are read-only properties here.
        self._owner = owner
        self._snapshot = snapshot
        self._clock = clock
        self.method = method

    def _frozen_now(self) -> ReadOnlyCredentials:
        """The current set, waiting (bounded, blocking this thread) if it has expired."""
        snapshot = self._snapshot
        if self._clock() < snapshot.fresh_until:
            return snapshot.frozen
        return self._owner._serve_stale(snapshot)

    def _account_id_builtin(self) -> Callable[[], Any]:
        """What a client's ``AWS::Auth::AccountId`` endpoint builtin should call."""
        return self.get_deferred_property("account_id")

    @property
    def expiry_time(self) -> datetime | None:
        """When the current set expires (UTC), or ``None`` if it never does."""
        return utc_datetime(self._snapshot.valid_until)

    def __repr__(self) -> str:
        snapshot = self._snapshot
        expiry = self.expiry_time
        return (
            f"<{type(self).__name__} source={self._owner.name!r} "
            f"access_key={mask_access_key(snapshot.frozen.access_key)!r} "
            f"expires={expiry.isoformat() if expiry else 'never'}>"
        )


class BackgroundCredentials(SnapshotCredentials):
    """botocore ``Credentials`` whose values a botocreds refresher keeps fresh.

    It is a real ``Credentials`` subclass, so anything that accepts botocore
    credentials accepts it. Read ``get_frozen_credentials()`` for a consistent
    set; the ``access_key``/``secret_key``/``token``/``account_id`` properties
    each read the current snapshot too.
    """

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        """The current credentials, as botocore's immutable ``ReadOnlyCredentials``.

        Never returns an expired set: past expiry it waits (at most the policy's
        ``wait_timeout``) for a single-flight mint, or raises
        :class:`~botocreds.CredentialsUnavailable`.
        """
        snapshot = self._snapshot
        if self._clock() < snapshot.fresh_until:
            return snapshot.frozen
        return self._owner._serve_stale(snapshot)

    def get_deferred_property(self, property_name: str) -> Callable[[], Any]:
        """A callable that reads ``property_name`` of the *current* set when called.

        botocore binds the ``AWS::Auth::AccountId`` endpoint builtin this way;
        here the closure reads the snapshot instead of running a refresh.
        """

        def get_property() -> Any:
            return getattr(self.get_frozen_credentials(), property_name, None)

        return get_property

    @property
    def access_key(self) -> str:
        """The current access key."""
        return cast(str, self.get_frozen_credentials().access_key)

    @access_key.setter
    def access_key(self, value: str) -> None:
        read_only("access_key")

    @property
    def secret_key(self) -> str:
        """The current secret key."""
        return cast(str, self.get_frozen_credentials().secret_key)

    @secret_key.setter
    def secret_key(self, value: str) -> None:
        read_only("secret_key")

    @property
    def token(self) -> str | None:
        """The current session token, if any."""
        return self.get_frozen_credentials().token

    @token.setter
    def token(self, value: str | None) -> None:
        read_only("token")

    @property
    def account_id(self) -> str | None:
        """The account ID the current set belongs to, when the source said."""
        return self.get_frozen_credentials().account_id

    @account_id.setter
    def account_id(self, value: str | None) -> None:
        read_only("account_id")
