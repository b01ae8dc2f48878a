"""Refresher and Swapper: keep one botocore credential source fresh in the background.

Each is a thin constructor: it turns what it is given into a source (the
fetch function of botocore's refreshable credentials, a factory, a fixed set)
and runs it on a :class:`~botocreds._runtime.RefresherRuntime`, whose pure core
and effects it shares with ``AioRefresher``. Neither side imports the other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast

from botocore.credentials import Credentials, RefreshableCredentials

from . import _botocore
from ._cache import SharedCache
from ._credentials import BackgroundCredentials
from ._events import Reporter
from ._policy import RefreshPolicy
from ._runtime import Clock, Random, RefresherRuntime
from ._scheduler import Scheduler
from ._snapshot import Snapshot
from ._sources import (
    FactorySource,
    FetchSource,
    Source,
    StaticSource,
    current_set,
    identity_of,
    refuse_own,
    resolved,
)


class Refresher(RefresherRuntime):
    """Keeps existing botocore credentials fresh in the background.

    ``credentials`` may be:

    * a ``RefreshableCredentials`` or ``DeferredRefreshableCredentials``: each
      mint calls that object's own fetch function (STS, IMDS, container,
      process…), on a background thread, ahead of expiry;
    * static ``Credentials``: nothing to refresh, they are served as they are;
    * a boto3 or botocore ``Session``: its resolved credentials.

    The first mint runs eagerly in the constructor; a source that cannot mint
    raises :class:`CredentialsUnavailable` here. Use as a context manager, or
    call :meth:`close`.
    """

    def __init__(
        self,
        credentials: Credentials | Any,
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
        source, method, adopt = _source_for(credentials, name)
        super().__init__(
            source,
            policy=policy,
            clock=clock,
            random=random,
            method=method,
            reporter=reporter,
            cache=cache,
            cache_key=cache_key,
            _scheduler=_scheduler,
            adopt=adopt if _adopt else None,
        )

    @property
    def credentials(self) -> BackgroundCredentials:
        """The botocore ``Credentials`` object this refresher keeps fresh.

        Hand it to anything that takes botocore credentials; every read sees
        the latest published set.
        """
        return cast(BackgroundCredentials, super().credentials)


def _source_for(
    credentials: object, name: str | None
) -> tuple[Source, str, Callable[[Clock, float], Snapshot | None] | None]:
    if credentials is None:
        raise TypeError(
            "Refresher() needs botocore Credentials or a boto3/botocore Session, got None"
        )
    refuse_own(credentials)
    if _botocore.is_aio_credentials(credentials) or _botocore.is_aio_session(credentials):
        raise TypeError(
            "Refresher() needs botocore Credentials or a boto3/botocore Session, got "
            f"aiobotocore's {type(credentials).__name__}: use botocreds.AioRefresher for "
            "aiobotocore credentials and sessions"
        )
    session = _botocore.botocore_session_of(credentials)
    if session is not None:
        credentials = resolved(session.get_credentials(), name)
    if isinstance(credentials, RefreshableCredentials):
        method = credentials.method or "refreshable"
        source = FetchSource(
            _botocore.refresh_function(credentials), name or method, identity_of(credentials)
        )
        return source, method, current_set(credentials)
    if isinstance(credentials, Credentials):
        method = credentials.method or "static"
        return StaticSource(credentials, name or method), method, None
    raise TypeError(
        "Refresher() needs botocore Credentials or a boto3/botocore Session, "
        f"got {type(credentials).__name__}"
    )


class Swapper(RefresherRuntime):
    """Builds a whole new credentials object each cycle and swaps it in.

    ``factory()`` returns a fresh botocore ``Credentials`` object, for example
    ``lambda: boto3.Session(profile_name="app").get_credentials()``. Running it
    again each cycle picks up a rotated profile, credentials file, web-identity
    token or environment. Credentials with no expiry are re-read every
    ``policy.static_ttl`` seconds.
    """

    def __init__(
        self,
        factory: Callable[[], Credentials | None],
        *,
        policy: RefreshPolicy | None = None,
        name: str | None = None,
        clock: Clock | None = None,
        random: Random | None = None,
        reporter: Reporter | None = None,
        cache: SharedCache | None = None,
        cache_key: str | None = None,
        _scheduler: Scheduler | None = None,
    ) -> None:
        if not callable(factory):
            raise TypeError(
                "Swapper() needs a callable that returns botocore Credentials, "
                f"got {type(factory).__name__}"
            )
        if inspect.iscoroutinefunction(factory):
            raise TypeError(
                "Swapper() needs a plain function that returns botocore Credentials, got a "
                "coroutine function: for aiobotocore, use botocreds.AioRefresher over an "
                "AioSession or its credentials"
            )
        label = name or _describe_callable(factory)
        super().__init__(
            FactorySource(factory, label),
            policy=policy,
            clock=clock,
            random=random,
            method="botocreds-swapper",
            reporter=reporter,
            cache=cache,
            cache_key=cache_key,
            _scheduler=_scheduler,
        )

    @property
    def credentials(self) -> BackgroundCredentials:
        """The botocore ``Credentials`` object this refresher keeps fresh."""
        return cast(BackgroundCredentials, super().credentials)


def _describe_callable(value: Callable[..., Any]) -> str:
    return getattr(value, "__qualname__", None) or type(value).__name__
