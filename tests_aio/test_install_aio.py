"""``install()`` and the plugin over aiobotocore sessions: one resolution, one refresher."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession

import botocreds
from botocreds import _botocore
from botocreds.plugin import initialize_client_plugin
from tests._process_creds import ProcessProfile

# Every test starts and ends with botocreds uninstalled.
pytestmark = pytest.mark.usefixtures("uninstalled")


async def _signing_credentials(session: AioSession) -> Any:
    async with session.create_client("s3", region_name="us-east-1") as client:
        return _botocore.client_credentials(client)


def test_ten_async_sessions_created_at_once_resolve_their_source_once(
    long_lived: ProcessProfile,
) -> None:
    botocreds.install()

    async def main() -> list[Any]:
        sessions = [AioSession(profile=long_lived.name) for _ in range(10)]
        return list(await asyncio.gather(*(_signing_credentials(s) for s in sessions)))

    signing = asyncio.run(main())
    assert all(isinstance(c, botocreds.AioBackgroundCredentials) for c in signing)
    assert len({id(c._owner) for c in signing}) == 1
    assert long_lived.calls() == 1


def test_the_plugin_covers_an_async_client_made_before_it_without_blocking_for_a_fetch(
    long_lived: ProcessProfile,
) -> None:
    async def main() -> tuple[Any, Any]:
        async with AioSession(profile=long_lived.name).create_client(
            "s3", region_name="us-east-1"
        ) as first:
            initialize_client_plugin(first)
            covered = _botocore.client_credentials(first)
        later = await _signing_credentials(AioSession(profile=long_lived.name))
        return covered, later

    covered, later = asyncio.run(main())
    assert isinstance(covered, botocreds.AioBackgroundCredentials)
    assert later is covered, "the later session shares the one refresher"
    assert long_lived.calls() == 2, "one resolution per session made before and after"


def test_uninstall_leaves_new_async_sessions_to_aiobotocore(long_lived: ProcessProfile) -> None:
    botocreds.install()
    botocreds.uninstall()
    signing = asyncio.run(_signing_credentials(AioSession(profile=long_lived.name)))
    assert isinstance(signing, AioRefreshableCredentials)
