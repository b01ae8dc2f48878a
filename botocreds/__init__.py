"""botocreds: boto3/botocore credentials refreshed in the background.

Two lines at startup::

    session = botocreds.wrap(boto3.Session())   # every client made from it
    botocreds.attach(client)                    # or one existing client

From then on, signing a request reads an immutable snapshot of the current
credentials, and a single background scheduler mints the next set ahead of
expiry. No request waits for STS while valid credentials exist.
"""

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
from ._version import __version__

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
