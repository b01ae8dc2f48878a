"""The private botocore attributes botocreds relies on, checked against the installed botocore.

If botocore moves one of them, these tests fail here, by name, rather than
botocreds quietly signing with stale credentials in production.
"""

from __future__ import annotations

import time

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.credentials import (
    Credentials,
    DeferredRefreshableCredentials,
    ReadOnlyCredentials,
)
from botocore.regions import EndpointResolverBuiltins

import botocreds
from botocreds import _botocore

from ._fakes import FakeClock, ScriptedFetcher, refreshable
from ._sessions import answer_locally, session_with


def _client() -> BaseClient:
    client: BaseClient = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="AKIAEXAMPLE00001",
        aws_secret_access_key="secret",
    )
    return client


def test_the_request_signer_holds_the_client_credentials() -> None:
    client = _client()
    credentials = _botocore.client_credentials(client)
    assert isinstance(credentials, Credentials)
    assert client._get_credentials() is credentials  # type: ignore[attr-defined]


def test_the_account_id_builtin_is_where_botocore_binds_it() -> None:
    assert EndpointResolverBuiltins.ACCOUNT_ID.value == _botocore.ACCOUNT_ID_BUILTIN
    builtins = _botocore._builtins(_client())
    assert builtins is not None
    assert callable(builtins[_botocore.ACCOUNT_ID_BUILTIN])


def test_bind_and_restore_swap_both_references() -> None:
    client = _client()
    original = _botocore.client_credentials(client)
    replacement = Credentials("AKIAREPLACEMENT1", "other", account_id="123456789012")
    previous = _botocore.bind_client(
        client, replacement, replacement.get_deferred_property("account_id")
    )
    assert previous.credentials is original
    assert _botocore.client_credentials(client) is replacement
    builtins = _botocore._builtins(client)
    assert builtins is not None
    assert builtins[_botocore.ACCOUNT_ID_BUILTIN]() == "123456789012"
    _botocore.restore_client(client, previous)
    assert _botocore.client_credentials(client) is original
    assert builtins[_botocore.ACCOUNT_ID_BUILTIN] is previous.account_id_builtin


def test_refreshable_credentials_keep_their_fetcher_values_and_expiry() -> None:
    clock = FakeClock()
    fetcher = ScriptedFetcher(clock)
    credentials = refreshable(fetcher)
    assert _botocore.refresh_function(credentials) is fetcher
    peeked = _botocore.peek(credentials)
    assert peeked is not None
    frozen, expiry = peeked
    assert isinstance(frozen, ReadOnlyCredentials)
    assert expiry.timestamp() == clock() + 3600
    assert _botocore.peek(DeferredRefreshableCredentials(fetcher, "x")) is None


def test_peek_does_not_run_botocores_refresh() -> None:
    clock = FakeClock()
    fetcher = ScriptedFetcher(clock, lifetime=600.0)  # inside botocore's 15-minute window
    credentials = refreshable(fetcher)
    calls = fetcher.calls
    _botocore.peek(credentials)
    assert fetcher.calls == calls


def test_read_only_credentials_have_the_four_fields() -> None:
    assert ReadOnlyCredentials._fields == ("access_key", "secret_key", "token", "account_id")


def test_boto3_sessions_wrap_a_botocore_session() -> None:
    session = boto3.Session(region_name="us-east-1")
    assert isinstance(_botocore.botocore_session_of(session), botocore.session.Session)
    assert _botocore.botocore_session_of(object()) is None


def test_with_the_swap_no_request_runs_botocores_refresh() -> None:
    """The AccountId trap: DynamoDB evaluates the builtin on every request."""
    # Real time: these credentials expire in 10 minutes, inside botocore's
    # mandatory window, so botocore would refresh them on every access.
    clock_fetcher = ScriptedFetcher(FakeClock(time.time()), lifetime=600.0)
    original = refreshable(clock_fetcher)
    session = session_with(original)
    client = session.client("dynamodb")
    signed_with: list[str] = []
    answer_locally(client, {"TableNames": []}, signed_with)
    with botocreds.Refresher(original, policy=botocreds.RefreshPolicy(floor=1.0)) as refresher:
        refresher.attach(client)
        calls = clock_fetcher.calls
        for _ in range(20):
            client.list_tables()
        assert clock_fetcher.calls == calls
        assert len(set(signed_with)) == 1
