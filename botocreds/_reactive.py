"""The reactive retry: when AWS rejects credentials that looked valid, replace them once.

It needs only the credentials object a client signs with, and that object's
owner, so it imports no refresher class. The key that signed a request is
read after signing, from the request itself: signing may have minted a new
set, and comparing against the set seen before signing could resend with the
very key AWS just rejected.
"""

from __future__ import annotations

import re
import weakref
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from botocore.client import BaseClient

from . import _botocore
from ._credentials import SnapshotCredentials

#: Error codes with which AWS says a request's credentials are expired or unknown.
REJECTION_CODES = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId"}
)
_RETRIED = "botocreds_reactive_retry"
_SIGNED_WITH = "botocreds_signed_with"

# SigV4 and SigV4a: "Credential=AKIA.../date/region/service/aws4_request";
# SigV2 (legacy S3): "AWS AKIA...:signature".
_SIGV4_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_SIGV2_CREDENTIAL = re.compile(r"^AWS ([^:\s]+):")


class _Invalidating(Protocol):
    """What the retry needs of a refresher."""

    def _invalidate(self, error_code: str, rejected_key: str | None) -> bool: ...


def signing_key(request: Any) -> str | None:
    """The access key a signed ``AWSRequest`` carries, or ``None`` if it shows none."""
    headers = getattr(request, "headers", None) or {}
    authorization = headers.get("Authorization")
    if isinstance(authorization, bytes):
        authorization = authorization.decode("ascii", "replace")
    if isinstance(authorization, str):
        found = _SIGV4_CREDENTIAL.search(authorization) or _SIGV2_CREDENTIAL.search(authorization)
        if found:
            return found.group(1)
    url = getattr(request, "url", None)
    if isinstance(url, str) and "X-Amz-Credential" in url:
        values = parse_qs(urlsplit(url).query).get("X-Amz-Credential")
        if values:
            return values[0].split("/", 1)[0]
    return None


def install_reactive_retry(client: BaseClient) -> None:
    """Retry a request once, with new credentials, when AWS rejects them as expired.

    Two handlers on the client's own events: one registered last on
    ``request-created`` (signing is botocore's own handler there, so this runs
    after it) notes the access key that signed the request, and
    ``needs-retry`` (botocore's retry hook, so the retry re-signs through the
    normal path) asks the refresher to replace that key when AWS rejects it.
    They act only while the client signs with botocreds credentials, and retry
    at most once per request. Installed once per client. On an aiobotocore
    client the ``needs-retry`` handler is a coroutine, so waiting for the new
    set never blocks the event loop.
    """
    client_ref = weakref.ref(client)

    def background_of_client() -> SnapshotCredentials | None:
        current = client_ref()
        credentials = None if current is None else _botocore.client_credentials(current)
        return credentials if isinstance(credentials, SnapshotCredentials) else None

    def note_signing_key(request: Any = None, **_: Any) -> None:
        credentials = background_of_client()
        context = getattr(request, "context", None)
        if credentials is None or context is None:
            return
        # If the signature shows no key (another auth scheme), the set published
        # right after signing is the one signing used.
        key = signing_key(request)
        context[_SIGNED_WITH] = key if key is not None else credentials._snapshot.frozen.access_key

    def rejection(response: Any, request_dict: Any) -> tuple[Any, str, str | None] | None:
        """The refresher, error code and signing key of a rejection worth one retry."""
        if response is None or request_dict is None:
            return None
        code = (response[1] or {}).get("Error", {}).get("Code")
        if code not in REJECTION_CODES:
            return None
        context = request_dict.setdefault("context", {})
        if context.get(_RETRIED):
            return None  # never loop: one reactive retry per request
        context[_RETRIED] = True
        credentials = background_of_client()
        if credentials is None:
            return None
        return credentials._owner, code, context.get(_SIGNED_WITH)

    def retry_rejected(response: Any = None, request_dict: Any = None, **_: Any) -> float | None:
        found = rejection(response, request_dict)
        if found is None:
            return None
        owner, code, signed_with = found
        invalidating: _Invalidating = owner
        return 0.0 if invalidating._invalidate(code, signed_with) else None

    async def retry_rejected_async(
        response: Any = None, request_dict: Any = None, **_: Any
    ) -> float | None:
        found = rejection(response, request_dict)
        if found is None:
            return None
        from ._aiocredentials import invalidate

        owner, code, signed_with = found
        return 0.0 if await invalidate(owner, code, signed_with) else None

    events = client.meta.events
    events.register_last(
        "request-created", note_signing_key, unique_id="botocreds-note-signing-key"
    )
    events.register(
        "needs-retry",
        retry_rejected_async if _botocore.is_aio_client(client) else retry_rejected,  # type: ignore[arg-type]
        unique_id="botocreds-reactive-retry",
    )
