"""Every touch of a private botocore or boto3 attribute, in one place.

botocore offers no public way to swap a client's credentials, so botocreds
reaches into a few private attributes. Each access is a small function here,
and ``tests/test_botocore_seams.py`` (``tests_aio/test_aiobotocore_seams.py``
for aiobotocore) checks every one against the installed release, so an
upgrade that moves something fails loudly in the test suite instead of
quietly in production.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, cast

import botocore.session
from botocore.client import BaseClient
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials

from ._credentials import SnapshotCredentials

#: The endpoint-rules builtin that botocore binds to the *original* credentials
#: object when it builds a client (``botocore/args.py``).
ACCOUNT_ID_BUILTIN = "AWS::Auth::AccountId"


def is_client(value: object) -> bool:
    """Whether ``value`` is a botocore client (boto3 and aiobotocore clients are too)."""
    return isinstance(value, BaseClient)


# aiobotocore is optional. Its classes are looked up in sys.modules rather than
# imported: an object can only be an aiobotocore one if aiobotocore is loaded,
# and a program that never imports it never pays for importing it here.
def _aiobotocore_class(module: str, name: str) -> type | None:
    loaded = sys.modules.get(f"aiobotocore.{module}")
    found = getattr(loaded, name, None)
    return found if isinstance(found, type) else None


def is_aio_client(value: object) -> bool:
    """Whether ``value`` is an aiobotocore client (aioboto3's clients are too)."""
    cls = _aiobotocore_class("client", "AioBaseClient")
    return cls is not None and isinstance(value, cls)


def is_client_creator(value: object) -> bool:
    """Whether ``value`` is what aiobotocore's ``create_client()`` returns before ``async with``."""
    cls = _aiobotocore_class("session", "ClientCreatorContext")
    return cls is not None and isinstance(value, cls)


def is_aio_credentials(value: object) -> bool:
    """Whether ``value`` is an aiobotocore credentials object (static, refreshable or deferred)."""
    static = _aiobotocore_class("credentials", "AioCredentials")
    refreshable = _aiobotocore_class("credentials", "AioRefreshableCredentials")
    return any(cls is not None and isinstance(value, cls) for cls in (static, refreshable))


def aio_session_of(session: object) -> Any | None:
    """The ``AioSession`` behind an aiobotocore or aioboto3 session; ``None`` for anything else.

    aioboto3's ``Session`` is a ``boto3.Session`` subclass holding an
    ``AioSession`` where boto3 holds a botocore one (``_session``).
    """
    cls = _aiobotocore_class("session", "AioSession")
    if cls is None:
        return None
    if isinstance(session, cls):
        return session
    inner = getattr(session, "_session", None) if _is_boto3_session(session) else None
    return inner if isinstance(inner, cls) else None


def is_aio_session(value: object) -> bool:
    """Whether ``value`` is an aiobotocore ``AioSession`` or an aioboto3 ``Session``."""
    return aio_session_of(value) is not None


def _is_boto3_session(value: object) -> bool:
    import boto3.session

    return isinstance(value, boto3.session.Session)


def client_credentials(client: BaseClient) -> Credentials | None:
    """The credentials object a client signs with.

    ``RequestSigner.get_auth_instance`` reads ``_credentials`` once per signing,
    presigned URLs and retries included.
    """
    signer: Any = client._request_signer  # type: ignore[attr-defined]
    credentials: Credentials | None = signer._credentials
    return credentials


class _Refresher(Protocol):
    """A botocreds refresher, as far as undoing a swap needs one."""

    @property
    def credentials(self) -> SnapshotCredentials: ...


@dataclass(frozen=True)
class ClientBinding:
    """What a client signed with before a swap, so the swap can be undone.

    ``credentials`` and ``account_id_builtin`` are what the client signed with
    before botocreds first swapped its credentials: held strongly, as they may
    be the only reference to them. When the swap replaced another botocreds
    refresher's credentials, that refresher is held only weakly, in
    ``replaced``: a client attached to one new refresher after another would
    otherwise keep every earlier refresher alive through a chain of bindings.
    """

    credentials: Credentials | None
    account_id_builtin: Callable[[], Any] | None
    replaced: weakref.ref[_Refresher] | None = None

    def target(self) -> tuple[Credentials | None, Callable[[], Any] | None]:
        """What undoing the swap puts back: credentials and account-id builtin.

        The replaced refresher's current credentials while that refresher lives,
        else what the client signed with before botocreds.
        """
        refresher = None if self.replaced is None else self.replaced()
        if refresher is None:
            return self.credentials, self.account_id_builtin
        credentials = refresher.credentials
        return credentials, credentials._account_id_builtin()


# What each swapped client signed with before botocreds first swapped it, so
# that undoing a later swap can go back there once the refresher it replaced
# is gone. Weak keys: an entry lives as long as its client.
_originals: weakref.WeakKeyDictionary[BaseClient, ClientBinding] = weakref.WeakKeyDictionary()


def _builtins(client: BaseClient) -> dict[str, Any] | None:
    resolver = getattr(client, "_ruleset_resolver", None)
    builtins: dict[str, Any] | None = getattr(resolver, "_builtins", None)
    return builtins


def bind_client(
    client: BaseClient, credentials: Credentials, account_id: Callable[[], Any]
) -> ClientBinding:
    """Make ``client`` sign with ``credentials``; return what it used before.

    Two references are swapped: the request signer's credentials, and the
    ``AWS::Auth::AccountId`` endpoint-rules builtin, a closure over the original
    object's ``account_id`` that botocore evaluates on every request (aiobotocore
    binds the original's ``get_account_id`` coroutine method instead). Left
    alone, either would run the original's own refresh on request paths, so it
    is replaced by ``account_id``. Each is a single reference assignment, so a
    concurrent request sees either the old or the new object, never a mix.

    Binding a client to the credentials it already signs with changes nothing
    and returns a binding whose ``credentials`` are those very credentials.
    """
    builtins = _builtins(client)
    current = client_credentials(client)
    before = ClientBinding(
        credentials=current,
        account_id_builtin=None if builtins is None else builtins.get(ACCOUNT_ID_BUILTIN),
    )
    if current is credentials:
        return before
    previous = before
    if isinstance(current, SnapshotCredentials):
        # Replacing another refresher's credentials: hold that refresher weakly,
        # and what the client had before botocreds strongly. A client made with
        # botocreds credentials (from a wrapped session) had those to begin with.
        replaced = cast(_Refresher, current._owner)
        original = _originals.setdefault(client, before)
        previous = replace(original, replaced=weakref.ref(replaced))
    else:
        _originals[client] = before
    if builtins is not None and ACCOUNT_ID_BUILTIN in builtins:
        builtins[ACCOUNT_ID_BUILTIN] = account_id
    signer: Any = client._request_signer  # type: ignore[attr-defined]
    signer._credentials = credentials
    return previous


def restore_client(client: BaseClient, binding: ClientBinding) -> None:
    """Undo :func:`bind_client`: see :meth:`ClientBinding.target` for what is put back."""
    credentials, account_id_builtin = binding.target()
    builtins = _builtins(client)
    if builtins is not None and account_id_builtin is not None:
        builtins[ACCOUNT_ID_BUILTIN] = account_id_builtin
    signer: Any = client._request_signer  # type: ignore[attr-defined]
    signer._credentials = credentials


def botocore_session_of(session: object) -> botocore.session.Session | None:
    """The botocore session behind a boto3 or botocore session; ``None`` for anything else."""
    if is_aio_session(session):
        return None  # an aiobotocore session: see aio_session_of()
    if isinstance(session, botocore.session.Session):
        return session
    if _is_boto3_session(session):
        inner: botocore.session.Session = session._session  # type: ignore[attr-defined]
        return inner
    return None


def refresh_function(credentials: RefreshableCredentials) -> Callable[[], Mapping[str, Any]]:
    """The fetch function a ``RefreshableCredentials`` refreshes itself with.

    Calling it fetches a new mapping (``access_key``, ``secret_key``, ``token``,
    ``expiry_time``, maybe ``account_id``) without touching the object's own
    state or lock.
    """
    state: Any = credentials
    fetch: Callable[[], Mapping[str, Any]] = state._refresh_using
    return fetch


def peek(credentials: RefreshableCredentials) -> tuple[ReadOnlyCredentials, datetime] | None:
    """A ``RefreshableCredentials``' current values and expiry, without refreshing.

    Its public accessors run botocore's refresh when less than 15 minutes are
    left, which a freshly fetched short-lived set always is. Returns ``None`` for
    a ``DeferredRefreshableCredentials`` that has not fetched yet.
    """
    state: Any = credentials
    frozen: ReadOnlyCredentials | None = state._frozen_credentials
    expiry: datetime | None = state._expiry_time
    if frozen is None or expiry is None:
        return None
    return frozen, expiry


def fetcher_identity(credentials: RefreshableCredentials) -> str | None:
    """botocore's own identity for the role behind an assume-role or web-identity fetch.

    botocore's ``CachedCredentialFetcher`` keys its JSON file cache by a hash
    of the role's arguments (``_cache_key``); botocreds reuses it as the
    identity of a shared cache entry. ``None`` for other sources.
    """
    fetch = refresh_function(credentials)
    owner = getattr(fetch, "__self__", None)
    key = getattr(owner, "_cache_key", None)
    return key if isinstance(key, str) and key else None
