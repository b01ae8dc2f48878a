"""Sessions and clients that need no network: credentials from a provider, replies from a stub."""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.session
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.credentials import CredentialProvider, CredentialResolver, Credentials


class _Provides(CredentialProvider):
    METHOD = "test-provider"
    CANONICAL_NAME = "TestProvider"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def session_with(credentials: Credentials) -> boto3.Session:
    """A boto3 session whose credential chain yields exactly ``credentials``."""
    inner = botocore.session.Session()
    inner.register_component("credential_provider", CredentialResolver([_Provides(credentials)]))
    return boto3.Session(botocore_session=inner, region_name="us-east-1")


class _Body:
    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **_: Any) -> Any:
        yield self._payload

    def read(self, *_: Any) -> bytes:
        payload, self._payload = self._payload, b""
        return payload


def answer_locally(
    client: Any,
    body: dict[str, Any],
    signed_with: list[str],
    errors: list[tuple[int, dict[str, Any]]] | None = None,
) -> None:
    """Reply to every request of ``client`` with ``body``, recording the signing key.

    While ``errors`` is not empty, its first (status, body) is popped and sent
    instead: a scripted AWS error reply.
    """

    def reply(request: Any, **_: Any) -> AWSResponse:
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        signed_with.append(authorization.split("Credential=")[1].split("/")[0])
        status, payload = errors.pop(0) if errors else (200, body)
        headers = HTTPHeaders()
        headers["content-type"] = "application/x-amz-json-1.0"
        return AWSResponse(request.url, status, headers, _Body(json.dumps(payload).encode()))

    client.meta.events.register("before-send", reply)
