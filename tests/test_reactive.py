"""Reactive invalidation: AWS says the credentials expired although they looked valid."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

import botocreds
from botocreds import RefreshPolicy

from ._fakes import FakeClock, ScriptedFetcher, refreshable
from ._sessions import answer_locally, session_with

POLICY = RefreshPolicy(floor=1.0, min_interval=0.0, wait_timeout=10.0)


def _expired(code: str) -> tuple[int, dict[str, Any]]:
    return 400, {"__type": f"com.amazon.coral.service#{code}", "message": "token expired"}


def _setup(errors: list[tuple[int, dict[str, Any]]]) -> tuple[Any, ScriptedFetcher, list[str]]:
    fetcher = ScriptedFetcher(FakeClock(time.time()))
    session = botocreds.wrap(session_with(refreshable(fetcher)), policy=POLICY)
    client = session.client("dynamodb")
    signed_with: list[str] = []
    answer_locally(client, {"TableNames": []}, signed_with, errors)
    return client, fetcher, signed_with


@pytest.mark.parametrize(
    "code", ["ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId"]
)
def test_a_rejected_set_is_replaced_and_the_request_retried_once(code: str) -> None:
    client, fetcher, signed_with = _setup([_expired(code)])
    calls = fetcher.calls
    assert client.list_tables()["TableNames"] == []
    assert len(signed_with) == 2
    assert signed_with[0] != signed_with[1], "the retry is signed with the new set"
    assert fetcher.calls == calls + 1
    assert all(name.startswith("botocreds-mint") for name in fetcher.threads[calls:])


def test_a_second_rejection_is_returned_to_the_caller_without_looping() -> None:
    client, fetcher, signed_with = _setup([_expired("ExpiredToken")] * 5)
    calls = fetcher.calls
    with pytest.raises(ClientError, match="ExpiredToken"):
        client.list_tables()
    assert len(signed_with) == 2
    assert fetcher.calls == calls + 1


def test_other_errors_are_left_to_botocore() -> None:
    denied = (400, {"__type": "com.amazon.coral.service#AccessDeniedException", "message": "no"})
    client, fetcher, signed_with = _setup([denied])
    calls = fetcher.calls
    with pytest.raises(ClientError, match="AccessDenied"):
        client.list_tables()
    assert len(signed_with) == 1 and fetcher.calls == calls


def test_attached_clients_get_the_reactive_retry_too() -> None:
    fetcher = ScriptedFetcher(FakeClock(time.time()))
    client = session_with(refreshable(fetcher)).client("dynamodb")
    botocreds.attach(client, policy=POLICY)
    signed_with: list[str] = []
    answer_locally(client, {"TableNames": []}, signed_with, [_expired("ExpiredToken")])
    client.list_tables()
    assert len(signed_with) == 2 and signed_with[0] != signed_with[1]
