"""AioRefresher: keeps aiobotocore credentials fresh, for aiobotocore clients.

It is the same runtime as the sync refreshers, serving an
:class:`AioBackgroundCredentials` view; its source runs aiobotocore's
coroutine fetchers on botocreds' own event loop (``_aioloop``), which is
imported only when an async source is first built.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, ClassVar, cast

from botocore.credentials import Credentials, RefreshableCredentials

from . import _botocore
from ._aiocredentials import AioBackgroundCredentials
from ._cache import SharedCache
from ._checks import check_arguments
from ._credentials import SnapshotCredentials
from ._events import Reporter
from ._policy import RefreshPolicy
from ._runtime import Clock, Random, RefresherRuntime
from ._scheduler import Scheduler
from ._snapshot import Snapshot
from ._sources import Source, StaticSource, current_set, identity_of, refuse_own, resolved


class AioRefresher(RefresherRuntime):
    """Keeps aiobotocore credentials fresh in the background, for aiobotocore clients.

    ``credentials`` may be an aiobotocore ``AioRefreshableCredentials`` (or its
    deferred variant), static ``AioCredentials``, an ``AioSession`` or an
    aioboto3 ``Session``. Their fetchers are coroutines; each mint runs them on
    botocreds' own event loop, on a background thread, so no application loop
    ever runs or waits for a fetch. Requests read the current set with an
    ``await`` that does no I/O and takes no loop-bound lock.

    The first mint runs eagerly in the constructor, blocking the calling thread
    for one fetch (at most ``policy.mint_timeout``); a source that cannot mint
    raises :class:`CredentialsUnavailable` here. Construct it at startup, or
    with ``await asyncio.to_thread(AioRefresher, ...)`` inside a running loop.
    """

    _view_class: ClassVar[type[SnapshotCredentials]] = AioBackgroundCredentials
    _serves_aio: ClassVar[bool] = True

    def __init__(
        self,
        credentials: Any,
        *,
        policy: RefreshPolicy | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        random: Random | None = None,
        reporter: Reporter | None = None,
        cache: SharedCache | None = None,
        cache_key: str | None = None,
        _scheduler: Scheduler | None = None,
        _adopt: bool = False,
    ) -> None:
        # Resolving an async session is I/O: every argument is checked first.
        checked = check_arguments(policy, clock, random, reporter, cache, cache_key)
        from . import _aioloop

        # Held from before the session lookup, so the lookup and the first mint
        # do not start and stop the loop thread twice.
        _aioloop.retain()
        try:
            source, method, adopt = _aio_source_for(credentials, name, checked.mint_timeout)
            super().__init__(
                source,
                policy=checked,
                clock=clock,
                random=random,
                method=method,
                reporter=reporter,
                cache=cache,
                cache_key=cache_key,
                _scheduler=_scheduler,
                adopt=adopt if _adopt else None,
            )
        except BaseException:
            _aioloop.release()
            raise
        self._loop_use = self._hold_loop(retained=True)

    def _hold_loop(self, *, retained: bool) -> weakref.finalize[Any, Any]:
        """One use of botocreds' event loop, given back on close or when collected."""
        from . import _aioloop

        if not retained:
            _aioloop.retain()
        use = weakref.finalize(self, _aioloop.release)
        use.atexit = False
        return use

    def _closed_changed(self, closed: bool) -> None:
        # The botocreds-aio thread exits once the last async refresher closes.
        if closed:
            self._loop_use()
        else:
            self._loop_use = self._hold_loop(retained=False)

    @property
    def credentials(self) -> AioBackgroundCredentials:
        """The aiobotocore-style credentials object this refresher keeps fresh.

        ``await credentials.get_frozen_credentials()`` reads the latest set.
        """
        return cast(AioBackgroundCredentials, super().credentials)


def _aio_source_for(
    credentials: object, name: str | None, timeout: float
) -> tuple[Source, str, Callable[[Clock, float], Snapshot | None] | None]:
    """The source behind aiobotocore credentials or an async session (input checked first)."""
    from ._aioloop import AioFetchSource, run_on_loop

    refuse_own(credentials)
    session = _botocore.aio_session_of(credentials)
    if session is None and not _botocore.is_aio_credentials(credentials):
        kind = "None" if credentials is None else type(credentials).__name__
        hint = ""
        if isinstance(credentials, Credentials) or _botocore.botocore_session_of(credentials):
            hint = ": use botocreds.Refresher for botocore credentials and sessions"
        raise TypeError(
            "AioRefresher() needs aiobotocore credentials, an AioSession or an aioboto3 "
            f"Session, got {kind}{hint}"
        )
    if session is not None:
        credentials = resolved(run_on_loop(session.get_credentials, timeout), name)
    if isinstance(credentials, RefreshableCredentials):
        method = credentials.method or "refreshable"
        fetch = _botocore.refresh_function(credentials)
        source = AioFetchSource(fetch, name or method, identity_of(credentials), timeout=timeout)
        return source, method, current_set(credentials)
    assert isinstance(credentials, Credentials)
    method = credentials.method or "static"
    # aiobotocore's static AioCredentials has plain attributes: copy them into a
    # botocore Credentials, whose get_frozen_credentials() is not a coroutine.
    plain = Credentials(
        credentials.access_key,
        credentials.secret_key,
        credentials.token,
        method=method,
        account_id=getattr(credentials, "account_id", None),
    )
    return StaticSource(plain, name or method), method, None
