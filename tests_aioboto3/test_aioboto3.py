"""aioboto3 sessions, clients and resources, kept fresh by botocreds.

aioboto3 pins its own aiobotocore (and so botocore) release, usually older
than the newest, so these tests run in a separate environment (``tox -e
aioboto3``), together with the aiobotocore tests of ``tests``.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import aioboto3
import pytest
from aiobotocore.credentials import AioDeferredRefreshableCredentials
from aiobotocore.session import AioSession

import botocreds
from botocreds import AioBackgroundCredentials, AioRefresher, RefreshPolicy

pytestmark = pytest.mark.integration

LIFETIME = 3.0
POLICY = RefreshPolicy(floor=1.0, min_interval=0.2, wait_timeout=5.0)


class AsyncFetch:
    """An async fetch of credentials living ``LIFETIME`` s; records the threads it ran on."""

    def __init__(self) -> None:
        self.serial = itertools.count(1)
        self.threads: list[str] = []

    async def __call__(self) -> Mapping[str, Any]:
        self.threads.append(threading.current_thread().name)
        await asyncio.sleep(0.2)
        number = next(self.serial)
        expiry = datetime.now(timezone.utc) + timedelta(seconds=LIFETIME)
        return {
            "access_key": f"ASIAAIOBOTO{number:09d}",
            "secret_key": f"secret-{number}",
            "token": f"token-{number}",
            "expiry_time": expiry.isoformat(),
        }


def _session(fetch: AsyncFetch) -> Any:
    inner = AioSession()
    inner._credentials = AioDeferredRefreshableCredentials(fetch, "aioboto3-test")
    return aioboto3.Session(botocore_session=inner, region_name="us-east-1")


def test_a_wrapped_aioboto3_session_refreshes_its_clients_in_the_background(
    moto_endpoint: str,
) -> None:
    fetch = AsyncFetch()
    session = botocreds.wrap(_session(fetch), policy=POLICY)
    signed: set[str] = set()

    def note(request: Any, **_: Any) -> None:
        header = request.headers["Authorization"]
        text = header.decode() if isinstance(header, bytes) else header
        signed.add(text.split("Credential=")[1].split("/")[0])

    async def scenario() -> None:
        async with session.client("sts", endpoint_url=moto_endpoint) as sts:
            assert isinstance(sts._request_signer._credentials, AioBackgroundCredentials)
            sts.meta.events.register("before-send", note)
            deadline = time.monotonic() + 3 * LIFETIME
            while len(fetch.threads) < 3 and time.monotonic() < deadline:
                await asyncio.gather(*(sts.get_caller_identity() for _ in range(10)))
                await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert len(fetch.threads) >= 3 and set(fetch.threads) == {"botocreds-aio"}
    assert len(signed) >= 2, "requests were signed with more than one set"


def test_aioboto3_resources_sign_with_the_background_credentials(moto_endpoint: str) -> None:
    fetch = AsyncFetch()
    session = botocreds.wrap(_session(fetch), policy=POLICY)

    async def scenario() -> list[str]:
        async with session.resource("dynamodb", endpoint_url=moto_endpoint) as dynamodb:
            client = dynamodb.meta.client
            assert isinstance(client._request_signer._credentials, AioBackgroundCredentials)
            await dynamodb.create_table(
                TableName="botocreds",
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            names: list[str] = (await client.list_tables())["TableNames"]
            return names

    assert "botocreds" in asyncio.run(scenario())
    assert fetch.threads == ["botocreds-aio"]


def test_an_aioboto3_client_can_be_attached_and_a_session_given_to_aio_refresher(
    moto_endpoint: str,
) -> None:
    fetch = AsyncFetch()

    async def scenario() -> None:
        async with _session(fetch).client("sts", endpoint_url=moto_endpoint) as sts:
            attachment = await asyncio.to_thread(botocreds.attach, sts, policy=POLICY)
            assert sts._request_signer._credentials is attachment.credentials
            assert (await sts.get_caller_identity())["Account"] == "123456789012"
            attachment.close()

    asyncio.run(scenario())
    with AioRefresher(_session(AsyncFetch()), policy=POLICY) as refresher:
        assert refresher.credentials.access_key.startswith("ASIAAIOBOTO")


def test_sync_refresher_refuses_an_aioboto3_session() -> None:
    with pytest.raises(TypeError, match=r"use botocreds\.AioRefresher"):
        botocreds.Refresher(aioboto3.Session())
