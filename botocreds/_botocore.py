"""Every touch of a private botocore or boto3 attribute, in one place.

botocore offers no public way to swap a client's credentials, so botocreds
reaches into a few private attributes. Each access is a small function here,
and ``tests/test_botocore_seams.py`` checks every one against the installed
botocore, so an upgrade that moves something fails loudly in the test suite
instead of quietly in production.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import botocore.session
from botocore.client import BaseClient
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials

#: The endpoint-rules builtin that botocore binds to the *original* credentials
#: object when it builds a client (``botocore/args.py``).
ACCOUNT_ID_BUILTIN = "AWS::Auth::AccountId"


def is_client(value: object) -> bool:
    """Whether ``value`` is a botocore client (boto3 clients are botocore clients)."""
    return isinstance(value, BaseClient)


def client_credentials(client: BaseClient) -> Credentials | None:
    """The credentials object a client signs with.

    ``RequestSigner.get_auth_instance`` reads ``_credentials`` once per signing,
    presigned URLs and retries included.
    """
    signer: Any = client._request_signer  # type: ignore[attr-defined]
    credentials: Credentials | None = signer._credentials
    return credentials


@dataclass(frozen=True)
class ClientBinding:
    """What a client signed with before a swap, so the swap can be undone."""

    credentials: Credentials | None
    account_id_builtin: Callable[[], Any] | None


def _builtins(client: BaseClient) -> dict[str, Any] | None:
    resolver = getattr(client, "_ruleset_resolver", None)
    builtins: dict[str, Any] | None = getattr(resolver, "_builtins", None)
    return builtins


def bind_client(client: BaseClient, credentials: Credentials) -> ClientBinding:
    """Make ``client`` sign with ``credentials``; return what it used before.

    Two references are swapped: the request signer's credentials, and the
    ``AWS::Auth::AccountId`` endpoint-rules builtin, a closure over the original
    object's ``account_id`` that botocore evaluates on every request. Left
    alone, that closure would run botocore's own refresh on request threads.
    Each is a single reference assignment, so a concurrent request sees either
    the old or the new object, never a mix.
    """
    builtins = _builtins(client)
    previous = ClientBinding(
        credentials=client_credentials(client),
        account_id_builtin=None if builtins is None else builtins.get(ACCOUNT_ID_BUILTIN),
    )
    if builtins is not None and ACCOUNT_ID_BUILTIN in builtins:
        builtins[ACCOUNT_ID_BUILTIN] = credentials.get_deferred_property("account_id")
    signer: Any = client._request_signer  # type: ignore[attr-defined]
    signer._credentials = credentials
    return previous


def restore_client(client: BaseClient, binding: ClientBinding) -> None:
    """Undo :func:`bind_client`."""
    builtins = _builtins(client)
    if builtins is not None and binding.account_id_builtin is not None:
        builtins[ACCOUNT_ID_BUILTIN] = binding.account_id_builtin
    signer: Any = client._request_signer  # type: ignore[attr-defined]
    signer._credentials = binding.credentials


def botocore_session_of(session: object) -> botocore.session.Session | None:
    """The botocore session behind a boto3 or botocore session; ``None`` for anything else."""
    if isinstance(session, botocore.session.Session):
        return session
    try:
        import boto3.session
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(session, boto3.session.Session):
        inner: botocore.session.Session = session._session
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
