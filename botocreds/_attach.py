"""``attach(client)``, ``wrap(session)`` and ``shutdown()``: the two-line integration.

Both share refreshers through a registry keyed by the underlying botocore
credentials object (and the policy): ten clients made from one session share
one refresher, so one fetch per lifetime, not ten.
"""

from __future__ import annotations

import threading
import weakref
from types import TracebackType
from typing import Any, TypeVar

import wrapt
from botocore.client import BaseClient
from botocore.credentials import Credentials

from . import _botocore
from ._credentials import BackgroundCredentials
from ._errors import CredentialsUnavailable
from ._policy import RefreshPolicy
from ._refresher import Refresher, _RefresherBase, install_reactive_retry
from ._scheduler import Scheduler, all_schedulers

SessionT = TypeVar("SessionT")


class _Shared:
    """A registry entry: one refresher and how many attachments use it."""

    def __init__(self, refresher: Refresher) -> None:
        self.refresher = refresher
        self.users = 0


_registry_lock = threading.RLock()
_registry: weakref.WeakKeyDictionary[Credentials, dict[RefreshPolicy, _Shared]] = (
    weakref.WeakKeyDictionary()
)
_wrapped: weakref.WeakKeyDictionary[Any, _RefresherBase] = weakref.WeakKeyDictionary()


def _check_policy(policy: object) -> RefreshPolicy:
    if policy is None:
        return RefreshPolicy()
    if not isinstance(policy, RefreshPolicy):
        raise TypeError(f"policy must be a botocreds.RefreshPolicy, got {type(policy).__name__}")
    return policy


def _acquire(
    credentials: Credentials, policy: RefreshPolicy, scheduler: Scheduler | None
) -> Refresher:
    """The shared refresher for ``credentials`` under ``policy``, created on first use."""
    with _registry_lock:
        by_policy = _registry.setdefault(credentials, {})
        shared = by_policy.get(policy)
        if shared is None or shared.refresher.closed:
            # May raise (the eager first mint); the registry is left as it was.
            shared = _Shared(Refresher(credentials, policy=policy, _scheduler=scheduler))
            by_policy[policy] = shared
        shared.users += 1
        return shared.refresher


def _release(refresher: _RefresherBase) -> None:
    with _registry_lock:
        for by_policy in list(_registry.values()):
            for policy, shared in list(by_policy.items()):
                if shared.refresher is refresher:
                    shared.users -= 1
                    if shared.users <= 0:
                        del by_policy[policy]
                        refresher.close()
                    return


class Attachment:
    """The handle :func:`attach` returns.

    ``close()`` gives the client back the credentials object it had before and,
    when no other attachment or wrapped session uses the shared refresher,
    stops it. Idempotent; also a context manager.
    """

    def __init__(self, client: BaseClient, refresher: _RefresherBase, *, owns: bool) -> None:
        self._client: weakref.ref[BaseClient] = weakref.ref(client)
        self._refresher = refresher
        self._owns = owns
        self._closed = False
        self._lock = threading.Lock()

    @property
    def refresher(self) -> _RefresherBase:
        """The refresher that keeps the client's credentials fresh."""
        return self._refresher

    @property
    def credentials(self) -> BackgroundCredentials:
        """The credentials object the client now signs with."""
        return self._refresher.credentials

    def close(self) -> None:
        """Detach the client and release the shared refresher. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if not self._owns:
            return
        client = self._client()
        if client is not None:
            self._refresher.detach(client)
        _release(self._refresher)

    def __enter__(self) -> Attachment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<botocreds.Attachment {state} source={self._refresher.name!r}>"


def attach(client: BaseClient, *, policy: RefreshPolicy | None = None) -> Attachment:
    """Refresh ``client``'s credentials in the background from now on.

    The client's own credentials object (usually its session's) is kept fresh
    by a refresher shared with every other client that has the same one. The
    client keeps working as before; it just never waits for a fetch while valid
    credentials exist. Returns an :class:`Attachment`; ``close()`` undoes it.

    Raises ``TypeError`` if ``client`` is not a botocore/boto3 client,
    ``ValueError`` if it has no credentials (an unsigned client), and
    :class:`CredentialsUnavailable` if the first mint fails. On any error the
    client is left exactly as it was.
    """
    if not _botocore.is_client(client):
        hint = ""
        if _botocore.is_client(getattr(getattr(client, "meta", None), "client", None)):
            hint = " (for a boto3 resource, pass resource.meta.client)"
        raise TypeError(
            f"attach() expected a botocore/boto3 client, got {type(client).__name__}{hint}"
        )
    checked = _check_policy(policy)
    current = _botocore.client_credentials(client)
    if current is None:
        raise ValueError("attach() got a client with no credentials (an unsigned client?)")
    if isinstance(current, BackgroundCredentials):
        # Already covered, e.g. made from a wrapped session: share what runs.
        return Attachment(client, current._owner, owns=False)  # type: ignore[arg-type]
    refresher = _acquire(current, checked, None)
    refresher.attach(client)
    return Attachment(client, refresher, owns=True)


def wrap(session: SessionT, *, policy: RefreshPolicy | None = None) -> SessionT:
    """Cover every client and resource made from ``session``, now or later.

    Call once at startup, before making clients, with a ``boto3.Session`` or a
    botocore ``Session``; the same object is returned. Its credentials are
    resolved now and minted once eagerly, then kept fresh in the background by
    a refresher shared with any :func:`attach` of the same credentials.
    ``session.get_credentials()`` returns the background-refreshed object too.
    Wrapping twice is harmless.

    Raises ``TypeError`` for anything that is not a session, and
    :class:`CredentialsUnavailable` if the session finds no credentials or the
    first mint fails.
    """
    inner = _botocore.botocore_session_of(session)
    if inner is None:
        raise TypeError(
            f"wrap() expected a boto3.Session or botocore Session, got {type(session).__name__}"
        )
    checked = _check_policy(policy)
    with _registry_lock:
        if inner in _wrapped:
            return session
        original = inner.get_credentials()
        if original is None:
            raise CredentialsUnavailable(
                source="session",
                reason="no credentials were found (environment, config files, SSO, "
                "container or instance metadata)",
            )
        if isinstance(original, BackgroundCredentials):
            _wrapped[inner] = original._owner  # type: ignore[assignment]
            return session
        refresher = _acquire(original, checked, None)
        background = refresher.credentials

        def serve_background(
            wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            resolved = wrapped(*args, **kwargs)
            # If the user later calls set_credentials(), respect that choice.
            return background if resolved is original else resolved

        def cover_new_client(
            wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            client = wrapped(*args, **kwargs)
            if _botocore.client_credentials(client) is background:
                install_reactive_retry(client)
            return client

        wrapt.wrap_function_wrapper(inner, "get_credentials", serve_background)
        wrapt.wrap_function_wrapper(inner, "create_client", cover_new_client)
        _wrapped[inner] = refresher
    return session


def shutdown() -> None:
    """Close every refresher in the process; the scheduler thread then exits.

    Clients stay usable: they mint on demand when their credentials expire.
    """
    for scheduler in all_schedulers():
        for member in scheduler.members():
            close = getattr(member, "close", None)
            if close is not None:
                close()
