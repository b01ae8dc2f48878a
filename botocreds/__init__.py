"""botocreds: boto3/botocore credentials refreshed in the background.

Two lines at startup::

    session = botocreds.wrap(boto3.Session())   # every client made from it
    botocreds.attach(client)                    # or one existing client

From then on, signing a request reads an immutable snapshot of the current
credentials, and a single background scheduler mints the next set ahead of
expiry. No request waits for STS while valid credentials exist.
"""

from ._attach import Attachment, attach, shutdown, wrap
from ._breaker import BreakerState
from ._credentials import BackgroundCredentials
from ._errors import CredentialsUnavailable
from ._policy import RefreshPolicy
from ._refresher import Refresher, Swapper
from ._sts import assume_role, from_fetcher, web_identity
from ._version import __version__

__all__ = [
    "Attachment",
    "BackgroundCredentials",
    "BreakerState",
    "CredentialsUnavailable",
    "RefreshPolicy",
    "Refresher",
    "Swapper",
    "__version__",
    "assume_role",
    "attach",
    "from_fetcher",
    "shutdown",
    "web_identity",
    "wrap",
]
