"""botocreds: boto3/botocore credentials refreshed in the background.

Two lines at startup::

    session = botocreds.wrap(boto3.Session())   # every client made from it
    botocreds.attach(client)                    # or one existing client

From then on, signing a request reads an immutable snapshot of the current
credentials, and a single background scheduler mints the next set ahead of
expiry. No request waits for STS while valid credentials exist.

botocreds is imported into every process, so ``import botocreds`` loads
almost nothing: each public name is imported from its private module on first
use (``botocreds.attach`` and ``from botocreds import attach`` alike), and the
shared caches, metrics, STS helpers and async support cost nothing until used.
"""

from __future__ import annotations

from ._version import __version__

# typing.TYPE_CHECKING without importing typing; type checkers treat the name alike.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._aiocredentials import AioBackgroundCredentials
    from ._aiorefresher import AioRefresher
    from ._attach import Attachment, attach, shutdown, wrap
    from ._breaker import BreakerState
    from ._credentials import BackgroundCredentials
    from ._errors import CredentialsUnavailable
    from ._events import (
        BreakerChanged,
        ReactiveInvalidation,
        RefreshEvent,
        RefreshFailed,
        RefreshSucceeded,
        Reporter,
        RequestPathMint,
        SharedCacheFailed,
        get_reporters,
        set_reporters,
    )
    from ._filecache import FileCache
    from ._install import install, uninstall
    from ._metrics import opentelemetry_reporter, prometheus_reporter
    from ._policy import RefreshPolicy
    from ._rediscache import RedisCache
    from ._refresher import Refresher, Swapper
    from ._runtime import health
    from ._status import RefresherStatus
    from ._sts import assume_role, from_fetcher, web_identity

__all__ = [
    "AioBackgroundCredentials",
    "AioRefresher",
    "Attachment",
    "BackgroundCredentials",
    "BreakerChanged",
    "BreakerState",
    "CredentialsUnavailable",
    "FileCache",
    "ReactiveInvalidation",
    "RedisCache",
    "RefreshEvent",
    "RefreshFailed",
    "RefreshPolicy",
    "RefreshSucceeded",
    "Refresher",
    "RefresherStatus",
    "Reporter",
    "RequestPathMint",
    "SharedCacheFailed",
    "Swapper",
    "__version__",
    "assume_role",
    "attach",
    "from_fetcher",
    "get_reporters",
    "health",
    "install",
    "opentelemetry_reporter",
    "prometheus_reporter",
    "set_reporters",
    "shutdown",
    "uninstall",
    "web_identity",
    "wrap",
]

#: Each public name (but ``__version__``) and the private module that defines it.
_LAZY = {
    "AioBackgroundCredentials": "_aiocredentials",
    "AioRefresher": "_aiorefresher",
    "Attachment": "_attach",
    "attach": "_attach",
    "shutdown": "_attach",
    "wrap": "_attach",
    "BreakerState": "_breaker",
    "BackgroundCredentials": "_credentials",
    "CredentialsUnavailable": "_errors",
    "BreakerChanged": "_events",
    "ReactiveInvalidation": "_events",
    "RefreshEvent": "_events",
    "RefreshFailed": "_events",
    "RefreshSucceeded": "_events",
    "Reporter": "_events",
    "RequestPathMint": "_events",
    "SharedCacheFailed": "_events",
    "get_reporters": "_events",
    "set_reporters": "_events",
    "FileCache": "_filecache",
    "install": "_install",
    "uninstall": "_install",
    "opentelemetry_reporter": "_metrics",
    "prometheus_reporter": "_metrics",
    "RefreshPolicy": "_policy",
    "RedisCache": "_rediscache",
    "Refresher": "_refresher",
    "Swapper": "_refresher",
    "health": "_runtime",
    "RefresherStatus": "_status",
    "assume_role": "_sts",
    "from_fetcher": "_sts",
    "web_identity": "_sts",
}


def _load(name: str) -> object:
    """Import the public ``name`` from its module on first use, and keep it here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's own names and every public name, loaded or not."""
    return sorted({*globals(), *__all__})


if not TYPE_CHECKING:
    # Hidden from type checkers: a module __getattr__ would make them accept any
    # botocreds.<name> at all, where the imports above give every real name its type.
    __getattr__ = _load
