"""The private aiobotocore attributes botocreds relies on, checked against the installed release.

If aiobotocore moves one of them, these tests fail here, by name. They run
wherever aiobotocore is installed: ``tox -e aio`` and ``tox -e aioboto3``.
"""

from __future__ import annotations

from typing import Any

from botocore.client import BaseClient

from botocreds import _botocore
from tests._fakes import FakeClock, ScriptedFetcher
from tests.test_botocore_seams import _client


def _aio_client() -> BaseClient:
    import asyncio

    from aiobotocore.session import AioSession

    async def make() -> BaseClient:
        client: Any = (
            await AioSession()
            .create_client(
                "dynamodb",
                region_name="us-east-1",
                aws_access_key_id="AKIAEXAMPLE00001",
                aws_secret_access_key="secret",
            )
            .__aenter__()
        )
        await client.close()
        assert isinstance(client, BaseClient)
        return client

    return asyncio.run(make())


def test_aiobotocore_classes_are_where_botocreds_looks_for_them() -> None:
    import aiobotocore.client
    import aiobotocore.credentials
    import aiobotocore.session

    assert _botocore._aiobotocore_class("client", "AioBaseClient") is (
        aiobotocore.client.AioBaseClient
    )
    assert _botocore._aiobotocore_class("session", "AioSession") is aiobotocore.session.AioSession
    assert _botocore._aiobotocore_class("session", "ClientCreatorContext") is (
        aiobotocore.session.ClientCreatorContext
    )
    for name in ("AioCredentials", "AioRefreshableCredentials"):
        assert _botocore._aiobotocore_class("credentials", name) is getattr(
            aiobotocore.credentials, name
        )


def test_aiobotocore_clients_keep_credentials_and_the_account_id_builtin_in_the_same_places() -> (
    None
):
    client = _aio_client()
    assert _botocore.is_client(client) and _botocore.is_aio_client(client)
    assert not _botocore.is_aio_client(_client())
    credentials = _botocore.client_credentials(client)
    assert _botocore.is_aio_credentials(credentials)
    builtins = _botocore._builtins(client)
    assert builtins is not None
    # aiobotocore binds the coroutine method get_account_id, not a deferred property.
    assert builtins[_botocore.ACCOUNT_ID_BUILTIN] == credentials.get_account_id  # type: ignore[union-attr]


def test_aiobotocore_sessions_resolve_credentials_and_create_clients_as_coroutines() -> None:
    import inspect

    from aiobotocore.session import AioSession

    session = AioSession()
    assert inspect.iscoroutinefunction(session.get_credentials)
    assert inspect.iscoroutinefunction(session._create_client)
    assert _botocore.aio_session_of(session) is session
    assert _botocore.botocore_session_of(session) is None, "never treated as a sync session"


def test_aiobotocore_refreshable_credentials_keep_their_fetcher_values_and_expiry() -> None:
    from aiobotocore.credentials import AioRefreshableCredentials

    clock = FakeClock()
    fetcher = ScriptedFetcher(clock)
    credentials = AioRefreshableCredentials.create_from_metadata(fetcher(), fetcher, "aio")
    assert _botocore.refresh_function(credentials) is fetcher
    peeked = _botocore.peek(credentials)
    assert peeked is not None and peeked[1].timestamp() == clock() + 3600
