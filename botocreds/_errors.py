"""The one exception botocreds raises on the request path."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError


class CredentialsUnavailable(BotoCoreError):
    """No valid credentials can be served, and a fresh set could not be minted.

    Raised when a request finds its credentials expired and the mint it waited
    for failed, timed out, or was refused by an open circuit breaker; and by a
    constructor whose eager first mint fails. A subclass of botocore's
    ``BotoCoreError``, so code that already handles botocore errors handles it.

    ``source`` names the credential source and ``reason`` says what went wrong.
    Neither ever contains a secret key or session token.
    """

    fmt = "Credentials unavailable from {source}: {reason}"

    def __init__(self, *, source: str, reason: str) -> None:
        super().__init__(source=source, reason=reason)
        self.source = source
        self.reason = reason
