"""``attach(client)``, ``wrap(session)`` and ``shutdown()``: the two-line integration.

Both share refreshers through a registry keyed by the source the credentials
come from (and the options): twenty sessions over one profile, and every
client made from them, share one refresher, so one fetch per lifetime, not
twenty. Credentials whose source botocreds cannot name share per object.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast, overload

from botocore.client import BaseClient
from botocore.credentials import Credentials

from . import _botocore
from ._cache import SharedCache, check_cache
from ._checks import not_a_client_hint
from ._credentials import BackgroundCredentials, SnapshotCredentials
from ._delivery import flush_all
from ._errors import CredentialsUnavailable
from ._events import Reporter, check_reporter
from ._forksafe import renew_after_fork
from ._policy import RefreshPolicy
from ._reactive import install_reactive_retry
from ._refresher import Refresher
from ._runtime import RefresherRuntime as _RefresherBase
from ._scheduler import add_housekeeping, all_schedulers
from ._sharing import SingleFlight

if TYPE_CHECKING:
    from ._aiorefresher import AioRefresher

SessionT = TypeVar("SessionT")
#: What an attached client signs with: ``BackgroundCredentials`` for a botocore
#: client, ``AioBackgroundCredentials`` for an aiobotocore one.
CredentialsT = TypeVar("CredentialsT", bound=SnapshotCredentials)


# Refreshers are held weakly everywhere here: a refresher lives as long as a
# client, a wrapped session or an attachment uses it, and is collected after.
_registry_lock = threading.RLock()


@dataclass(frozen=True)
class _Options:
    """What makes two refreshers of one credentials object different."""

    policy: RefreshPolicy
    reporter: Reporter | None
    cache: SharedCache | None
    cache_key: str | None


# Keyed by the credentials object, then by its options. An entry whose
# refresher has died is removed by _prune_registry(): the credentials object
# usually outlives its refreshers (it lives in its session), and each entry
# holds its options, a reporter included, strongly.
_registry: weakref.WeakKeyDictionary[
    Credentials, dict[tuple[_Options, bool], weakref.ref[_RefresherBase]]
] = weakref.WeakKeyDictionary()
# The (dead) weak references of registry entries whose refresher has died
# since the last prune. The weakref callback that fills it may run inside a
# collection on any thread, one holding any botocreds lock included, so it
# only appends (atomic, takes no lock); the entries go under the registry lock.
_dead_entries: deque[weakref.ref[_RefresherBase]] = deque()
_wrapped: weakref.WeakKeyDictionary[Any, weakref.ref[_RefresherBase]] = weakref.WeakKeyDictionary()


def _check_policy(policy: object) -> RefreshPolicy:
    if policy is None:
        return RefreshPolicy()
    if not isinstance(policy, RefreshPolicy):
        raise TypeError(f"policy must be a botocreds.RefreshPolicy, got {type(policy).__name__}")
    return policy


def _options(policy: object, reporter: object, cache: object, cache_key: object) -> _Options:
    """Check the keyword arguments shared by attach() and wrap()."""
    checked_cache = check_cache(cache, cache_key)
    key = cache_key if isinstance(cache_key, str) else None
    return _Options(_check_policy(policy), check_reporter(reporter), checked_cache, key)


def _acquire(credentials: Credentials, options: _Options, *, aio: bool) -> _RefresherBase:
    """Take one use of the shared refresher for ``credentials`` under ``options``.

    Credentials whose source botocreds can name (``_botocore.source_identity``:
    the same profile's ``credential_process``, the same role, the same
    container endpoint…) share one refresher per source, whichever session
    resolved them; others share one per credentials object. The refresher is
    created on first use, which may raise (from the eager first mint; the
    registry is then left as it was), and resumed if it was closed. Creation
    runs outside the registry lock, once per key: callers that arrive
    meanwhile wait for it and share it, and its first fetch.
    """
    _drain_releases()
    identity = _botocore.source_identity(credentials)
    key: _Key = (identity, options, aio) if identity is not None else (credentials, options, aio)

    def find() -> _RefresherBase | None:
        with _registry_lock:
            _prune_registry()
            refresher = _registered(key)
            if refresher is not None:
                _retain(refresher)
            return refresher

    def build() -> _RefresherBase:
        kind: type[Refresher | AioRefresher] = Refresher
        if aio:  # the async path loads on first async use
            from ._aiorefresher import AioRefresher

            kind = AioRefresher
        created = kind(
            credentials,
            policy=options.policy,
            reporter=options.reporter,
            cache=options.cache,
            cache_key=options.cache_key,
            _adopt=True,
        )
        with _registry_lock:
            _register(key, created)
            _retain(created)
        return created

    return _builds.run(key, find, build)


# A registry key: a named source (or, failing that, one credentials object),
# the options, and whether the refresher serves aiobotocore clients.
_Key = tuple[object, _Options, bool]
_builds: SingleFlight[_Key, _RefresherBase] = SingleFlight()
# Refreshers of the sources botocreds can name, by source identity and options.
_by_source: dict[_Key, weakref.ref[_RefresherBase]] = {}


def _registered(key: _Key) -> _RefresherBase | None:
    """The live refresher registered under ``key``. Registry lock held."""
    subject, options, aio = key
    if isinstance(subject, _botocore.SourceIdentity):
        known = _by_source.get(key)
    else:
        known = _registry.get(cast(Credentials, subject), {}).get((options, aio))
    return None if known is None else known()


def _register(key: _Key, refresher: _RefresherBase) -> None:
    """Record ``refresher`` under ``key``. Registry lock held."""
    subject, options, aio = key
    reference = weakref.ref(refresher, _dead_entries.append)
    if isinstance(subject, _botocore.SourceIdentity):
        _by_source[key] = reference
    else:
        _registry.setdefault(cast(Credentials, subject), {})[(options, aio)] = reference


def _prune_registry() -> None:
    """Remove the registry entries whose refresher has died. Registry lock held."""
    if not _dead_entries:
        return
    _dead_entries.clear()
    for key, known in list(_by_source.items()):
        if known() is None:
            del _by_source[key]
    for credentials, by_options in list(_registry.items()):
        for options, known in list(by_options.items()):
            if known() is None:
                del by_options[options]
        if not by_options:
            _registry.pop(credentials, None)


def _retain(refresher: _RefresherBase) -> None:
    with _registry_lock:
        refresher._reopen()
        refresher._users += 1


def _release(refresher: _RefresherBase) -> None:
    """Give back one use; the last one closes the refresher."""
    # Under the registry lock, so that no _retain() can slip in between the
    # count reaching zero and the close.
    with _registry_lock:
        refresher._users -= 1
        if refresher._users <= 0:
            refresher.close()


# Uses given back by garbage collection. A finalizer runs on whatever thread
# triggered the collection, possibly one holding a botocreds lock, so it only
# appends here (atomic, takes no lock); the releases happen on the next
# attach()/wrap()/close(), or on the scheduler thread within a minute. The
# queue holds refreshers weakly: one that nothing else uses is freed at once,
# and a dead one has nothing left to release.
_pending_releases: deque[weakref.ref[_RefresherBase]] = deque()


def _release_later(refresher: weakref.ref[_RefresherBase]) -> None:
    _pending_releases.append(refresher)


_drain_lock = threading.Lock()


def _drain_releases() -> None:
    # Serialised, so that a caller returns only once every queued release,
    # including one the scheduler thread is processing, has been applied.
    with _drain_lock:
        while _pending_releases:
            refresher = _pending_releases.popleft()()
            if refresher is not None:
                _release(refresher)
        with _registry_lock:
            _prune_registry()


add_housekeeping(_drain_releases)


# A forked child gets new module locks before anything can take one: the
# parent's may be held by a thread the child lacks.
renew_after_fork(sys.modules[__name__], "_registry_lock", threading.RLock)
renew_after_fork(sys.modules[__name__], "_drain_lock", threading.Lock)


class _Coverage:
    """The open :func:`attach` handles that keep one client covered by one refresher."""

    __slots__ = ("handles", "refresher")

    def __init__(self, refresher: _RefresherBase) -> None:
        self.refresher: weakref.ref[_RefresherBase] = weakref.ref(refresher)
        self.handles = 0


# The clients attach() has swapped onto a refresher, until the last of their
# handles is closed (or they are collected). Changed under the registry lock.
_coverage: weakref.WeakKeyDictionary[BaseClient, _Coverage] = weakref.WeakKeyDictionary()


class Attachment(Generic[CredentialsT]):
    """The handle :func:`attach` returns.

    ``close()`` gives back this handle's use of the shared refresher, which
    stops when nothing else uses it. A client attached more than once stays
    covered until the last of its handles is closed, in any order; then it gets
    back the credentials object it had before. Idempotent; also a context
    manager. Dropping the client without closing is fine too: once the client
    is garbage-collected, its use of the refresher is given back.
    """

    def __init__(
        self, client: BaseClient, refresher: _RefresherBase, *, coverage: _Coverage | None
    ) -> None:
        self._client: weakref.ref[BaseClient] = weakref.ref(client)
        self._refresher = refresher
        # Set while this handle keeps the client covered; None for a client that
        # was covered by something else (a wrapped session, a Refresher.attach()).
        self._coverage = coverage
        if coverage is not None:
            coverage.handles += 1
        # Gives the use back exactly once: on close(), or when the client is collected.
        self._use = weakref.finalize(client, _release_later, weakref.ref(refresher))

    @property
    def refresher(self) -> _RefresherBase:
        """The refresher that keeps the client's credentials fresh."""
        return self._refresher

    @property
    def credentials(self) -> CredentialsT:
        """The credentials object the client now signs with (async for an aiobotocore client)."""
        return cast(CredentialsT, self._refresher.credentials)

    @property
    def closed(self) -> bool:
        """Whether this attachment has been closed (or its client collected)."""
        return not self._use.alive

    def close(self) -> None:
        """Give back this handle's use of the shared refresher. Idempotent.

        The client is detached once no other :func:`attach` handle keeps it covered.
        """
        # Under the registry lock, so that a concurrent attach() of the same
        # client either joins the coverage before it ends or starts a new one.
        with _registry_lock:
            if self._use.alive:
                self._uncover()
                self._use()
        _drain_releases()

    def _uncover(self) -> None:
        """Count this handle out of its client's coverage; the last one detaches. Lock held."""
        coverage, self._coverage = self._coverage, None
        if coverage is None:
            return
        coverage.handles -= 1
        client = self._client()
        if coverage.handles > 0 or client is None:
            return
        if _coverage.get(client) is coverage:
            del _coverage[client]
        self._refresher.detach(client)

    def __enter__(self) -> Attachment[CredentialsT]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<botocreds.Attachment {state} source={self._refresher.name!r}>"


class _AioClient(Protocol):
    """An aiobotocore client, for type checkers (aiobotocore ships no type hints)."""

    @property
    def meta(self) -> Any: ...

    async def close(self) -> None: ...


@overload
def attach(
    client: BaseClient,
    *,
    policy: RefreshPolicy | None = None,
    reporter: Reporter | None = None,
    cache: SharedCache | None = None,
    cache_key: str | None = None,
) -> Attachment[BackgroundCredentials]: ...


@overload
def attach(
    client: _AioClient,
    *,
    policy: RefreshPolicy | None = None,
    reporter: Reporter | None = None,
    cache: SharedCache | None = None,
    cache_key: str | None = None,
) -> Attachment[Any]: ...


def attach(
    client: Any,
    *,
    policy: RefreshPolicy | None = None,
    reporter: Reporter | None = None,
    cache: SharedCache | None = None,
    cache_key: str | None = None,
) -> Attachment[Any]:
    """Refresh ``client``'s credentials in the background from now on.

    The client's own credentials object (usually its session's) is kept fresh
    by a refresher shared with every other client whose credentials come from
    the same source (the same profile's ``credential_process``, the same role,
    the same container endpoint…; the same credentials object when botocreds
    cannot name the source). A set botocore has just fetched, with more than
    the policy's floor left, is served as it is rather than fetched again. The
    client keeps working as before; it just never waits for a fetch while valid
    credentials exist. Returns an :class:`Attachment`; ``close()`` undoes it.

    An aiobotocore or aioboto3 client is kept fresh by an :class:`AioRefresher`
    instead: its requests await a snapshot read, and its fetches run on
    botocreds' own event loop. The first mint blocks the calling thread, so in
    a running loop call ``await asyncio.to_thread(botocreds.attach, client)``.

    Raises ``TypeError`` if ``client`` is not a botocore/boto3/aiobotocore
    client, ``ValueError`` if it has no credentials (an unsigned client), and
    :class:`CredentialsUnavailable` if the first mint fails. On any error the
    client is left exactly as it was. ``reporter`` receives the refresher's
    events (see :class:`RefreshEvent`); ``cache`` adds a shared tier
    (:class:`FileCache`, :class:`RedisCache`) under the key ``cache_key``,
    derived from the source when botocreds can name it. A client already covered
    keeps the refresher, reporter and cache it has; attaching a client again
    returns another handle, and the client stays covered until the last
    handle attach() returned for it is closed.
    """
    if not _botocore.is_client(client):
        raise TypeError(
            "attach() expected a botocore/boto3 client, "
            f"got {type(client).__name__}{not_a_client_hint(client)}"
        )
    options = _options(policy, reporter, cache, cache_key)
    _drain_releases()
    with _registry_lock:
        # Read under the lock: a concurrent close() of the client's last handle
        # may be giving it back its own credentials.
        current = _botocore.client_credentials(client)
        if isinstance(current, SnapshotCredentials):
            return _share(client, current)
    if current is None:
        raise ValueError("attach() got a client with no credentials (an unsigned client?)")
    aio = _botocore.is_aio_client(client)
    if aio != _botocore.is_aio_credentials(current):
        raise TypeError(
            f"attach() got {'an aiobotocore' if aio else 'a botocore'} client that signs with "
            f"{type(current).__name__}: botocreds keeps a client's credentials fresh with the "
            "same stack as the client"
        )
    refresher = _acquire(current, options, aio=aio)
    with _registry_lock:
        now = _botocore.client_credentials(client)
        if isinstance(now, SnapshotCredentials):
            # Another thread covered the client during the first mint: join it.
            _release(refresher)
            return _share(client, now)
        refresher.attach(client)
        coverage = _coverage.get(client)
        if coverage is None or coverage.refresher() is not refresher:
            coverage = _coverage[client] = _Coverage(refresher)
        return Attachment(client, refresher, coverage=coverage)


def _share(client: BaseClient, current: SnapshotCredentials) -> Attachment[Any]:
    """Another handle on the refresher that already covers ``client``. Registry lock held.

    Shares (and resumes, after a shutdown) that refresher. The handle keeps the
    client covered alongside the others if attach() covered it; if a wrapped
    session or a ``Refresher.attach()`` did, closing it only gives its use back.
    """
    owner: _RefresherBase = current._owner  # type: ignore[assignment]
    _retain(owner)
    coverage = _coverage.get(client)
    if coverage is not None and coverage.refresher() is not owner:
        coverage = None
    return Attachment(client, owner, coverage=coverage)


def wrap(
    session: SessionT,
    *,
    policy: RefreshPolicy | None = None,
    reporter: Reporter | None = None,
    cache: SharedCache | None = None,
    cache_key: str | None = None,
) -> SessionT:
    """Cover every client and resource made from ``session``, now or later.

    Call once at startup, before making clients, with a ``boto3.Session``, a
    botocore ``Session``, an aiobotocore ``AioSession`` or an aioboto3
    ``Session``; the same object is returned. An async session's credentials
    are resolved on botocreds' own event loop, and its clients await a
    snapshot read. Its credentials are resolved now (a set botocore fetched
    while resolving is served as it is; a deferred one, such as an
    assume-role's, is minted once, eagerly), then kept fresh in the background
    by the refresher of their source, shared with every other session and
    :func:`attach` over the same source.
    ``session.get_credentials()`` returns the background-refreshed object too.
    Wrapping twice is harmless.

    Raises ``TypeError`` for anything that is not a session, and
    :class:`CredentialsUnavailable` if the session finds no credentials or the
    first mint fails. ``reporter`` receives the refresher's events; ``cache``
    and ``cache_key`` add a shared tier, as for :func:`attach`.
    """
    aio_inner = _botocore.aio_session_of(session)
    inner = aio_inner if aio_inner is not None else _botocore.botocore_session_of(session)
    if inner is None:
        raise TypeError(
            "wrap() expected a boto3.Session, botocore Session, aiobotocore AioSession or "
            f"aioboto3 Session, got {type(session).__name__}"
        )
    options = _options(policy, reporter, cache, cache_key)
    _drain_releases()
    with _registry_lock:
        wrapped_by = _wrapper_of(inner)
        if wrapped_by is not None:
            wrapped_by._reopen()  # after a shutdown(), wrapping again resumes it
            return session
    # Resolving the chain and the first mint may do I/O: no lock is held.
    if aio_inner is not None:
        from ._aioloop import run_on_loop

        original = run_on_loop(aio_inner.get_credentials, options.policy.mint_timeout)
    else:
        original = inner.get_credentials()
    if original is None:
        raise CredentialsUnavailable(
            source="session",
            reason="no credentials were found (environment, config files, SSO, "
            "container or instance metadata)",
        )
    if isinstance(original, SnapshotCredentials):
        owner: _RefresherBase = original._owner  # type: ignore[assignment]
        with _registry_lock:
            _retain(owner)
            _wrapped[inner] = weakref.ref(owner)
        return session
    # The session's use is never given back: the refresher lives while the
    # session or any of its clients does, and is collected with them.
    refresher = _acquire(original, options, aio=aio_inner is not None)
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

    # aiobotocore's get_credentials() is a coroutine, and its create_client()
    # returns a context manager around the _create_client() coroutine.
    async def serve_background_async(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        resolved = await wrapped(*args, **kwargs)
        return background if resolved is original else resolved

    async def cover_new_client_async(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        client = await wrapped(*args, **kwargs)
        if _botocore.client_credentials(client) is background:
            install_reactive_retry(client)
        return client

    import wrapt  # only wrap() patches sessions; imported before taking the lock

    with _registry_lock:
        if _wrapper_of(inner) is not None:  # another thread wrapped it meanwhile
            _release(refresher)
            return session
        if aio_inner is not None:
            wrapt.wrap_function_wrapper(inner, "get_credentials", serve_background_async)
            wrapt.wrap_function_wrapper(inner, "_create_client", cover_new_client_async)
        else:
            wrapt.wrap_function_wrapper(inner, "get_credentials", serve_background)
            wrapt.wrap_function_wrapper(inner, "create_client", cover_new_client)
        _wrapped[inner] = weakref.ref(refresher)
    return session


def _wrapper_of(inner: Any) -> _RefresherBase | None:
    known = _wrapped.get(inner)
    return None if known is None else known()


#: The longest shutdown() waits for queued events to be delivered.
SHUTDOWN_FLUSH = 2.0


def shutdown() -> None:
    """Close every refresher in the process; the scheduler thread then exits.

    Clients stay usable: they mint on demand when their credentials expire.
    """
    _drain_releases()
    for scheduler in all_schedulers():
        for member in scheduler.members():
            close = getattr(member, "close", None)
            if close is not None:
                close()
        scheduler.prune()
    # Deliver the events already queued (bounded): a reporter that prints should
    # have printed them by the time shutdown() returns.
    flush_all(SHUTDOWN_FLUSH)
