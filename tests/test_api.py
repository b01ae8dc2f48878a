"""The public surface: exact exports, attach/wrap semantics, bad input, no leaked secrets."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import UNSIGNED
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import (
    Credentials,
    DeferredRefreshableCredentials,
    RefreshableCredentials,
)
from botocore.exceptions import BotoCoreError

import botocreds
from botocreds import (
    BackgroundCredentials,
    CredentialsUnavailable,
    RefreshPolicy,
    _attach,
    _botocore,
)

from ._fakes import FakeClock, ScriptedFetcher, refreshable
from ._sessions import session_with


def test_the_public_api_is_exactly_this() -> None:
    assert sorted(botocreds.__all__) == [
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
    for name in botocreds.__all__:
        assert getattr(botocreds, name) is not None
        if name != "__version__":
            assert getattr(botocreds, name).__doc__, f"{name} has no docstring"


def test_credentials_unavailable_is_a_botocore_error() -> None:
    assert issubclass(CredentialsUnavailable, BotoCoreError)


def _live_credentials(lifetime: float = 3600.0) -> tuple[RefreshableCredentials, ScriptedFetcher]:
    fetcher = ScriptedFetcher(FakeClock(time.time()), lifetime=lifetime)
    return refreshable(fetcher), fetcher


def _deferred_credentials() -> tuple[DeferredRefreshableCredentials, ScriptedFetcher]:
    """Credentials that have fetched nothing yet (an assume-role's): the first mint must run."""
    fetcher = ScriptedFetcher(FakeClock(time.time()), lifetime=3600.0)
    return DeferredRefreshableCredentials(fetcher, "test-source"), fetcher


class TestAttach:
    def test_clients_with_the_same_credentials_share_one_refresher(self) -> None:
        credentials, fetcher = _live_credentials()
        session = session_with(credentials)
        first, second = session.client("s3"), session.client("sqs")
        one, two = botocreds.attach(first), botocreds.attach(second)
        assert one.refresher is two.refresher
        # botocore's load, and nothing more: the set it fetched is adopted, for both.
        assert fetcher.calls == 1
        assert _botocore.client_credentials(first) is one.credentials
        one.close()
        assert _botocore.client_credentials(first) is credentials
        assert not one.refresher.closed, "the second client still uses it"
        two.close()
        two.close()
        assert two.refresher.closed

    def test_attach_is_a_context_manager(self) -> None:
        credentials, _ = _live_credentials()
        client = session_with(credentials).client("s3")
        with botocreds.attach(client) as handle:
            assert isinstance(_botocore.client_credentials(client), BackgroundCredentials)
        assert handle.refresher.closed
        assert _botocore.client_credentials(client) is credentials

    def test_attaching_a_covered_client_again_shares_its_refresher(self) -> None:
        credentials, fetcher = _live_credentials()
        client = session_with(credentials).client("s3")
        first = botocreds.attach(client)
        again = botocreds.attach(client)
        assert again.refresher is first.refresher
        assert fetcher.calls == 1, "no second refresher, no fetch beyond botocore's load"
        again.close()
        assert isinstance(_botocore.client_credentials(client), BackgroundCredentials)
        first.close()
        assert _botocore.client_credentials(client) is credentials

    @pytest.mark.parametrize("bad", [None, "s3", boto3.Session, object()])
    def test_anything_but_a_client_is_a_type_error(self, bad: object) -> None:
        with pytest.raises(TypeError, match="expected a botocore/boto3 client"):
            botocreds.attach(bad)  # type: ignore[call-overload]

    def test_a_resource_gets_a_hint(self) -> None:
        credentials, _ = _live_credentials()
        resource = session_with(credentials).resource("s3")
        with pytest.raises(TypeError, match=r"resource\.meta\.client"):
            botocreds.attach(resource)  # type: ignore[call-overload]

    def test_an_unsigned_client_is_a_value_error(self) -> None:
        config = Config(signature_version=UNSIGNED)
        client = boto3.client("s3", region_name="us-east-1", config=config)
        with pytest.raises(ValueError, match="no credentials"):
            botocreds.attach(client)

    def test_a_bad_policy_is_rejected_before_anything_changes(self) -> None:
        credentials, fetcher = _live_credentials()
        client = session_with(credentials).client("s3")
        calls = fetcher.calls
        with pytest.raises(TypeError, match="RefreshPolicy"):
            botocreds.attach(client, policy=60)  # type: ignore[call-overload]
        assert _botocore.client_credentials(client) is credentials
        assert fetcher.calls == calls

    def test_a_failed_first_mint_leaves_the_client_as_it_was(self) -> None:
        credentials, fetcher = _deferred_credentials()  # nothing to adopt: attach() mints
        client = session_with(credentials).client("s3")
        fetcher.script = [RuntimeError("sts unreachable")]
        with pytest.raises(CredentialsUnavailable, match="sts unreachable"):
            botocreds.attach(client)
        assert _botocore.client_credentials(client) is credentials
        assert botocreds.attach(client).refresher.mint_count == 1, "a retry can succeed"


class TestWrap:
    def test_wrap_returns_the_same_session_and_covers_every_client(self) -> None:
        credentials, fetcher = _live_credentials()
        session = session_with(credentials)
        assert botocreds.wrap(session) is session
        background = session.get_credentials()
        assert isinstance(background, BackgroundCredentials)
        clients = [session.client("s3") for _ in range(10)] + [session.resource("s3").meta.client]
        for client in clients:
            assert _botocore.client_credentials(client) is background
        assert fetcher.calls == 1, "botocore's load only: its set is adopted"

    def test_wrapping_twice_is_harmless(self) -> None:
        credentials, fetcher = _live_credentials()
        session = session_with(credentials)
        botocreds.wrap(session)
        botocreds.wrap(session)
        assert fetcher.calls == 1, "botocore's load only: its set is adopted"

    def test_a_botocore_session_can_be_wrapped(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV00002")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
        session = botocore.session.get_session()
        assert botocreds.wrap(session) is session
        client = session.create_client("s3", region_name="us-east-1")
        assert isinstance(_botocore.client_credentials(client), BackgroundCredentials)

    def test_attach_on_a_client_of_a_wrapped_session_shares_its_refresher(self) -> None:
        credentials, _ = _live_credentials()
        session = botocreds.wrap(session_with(credentials))
        plain = session_with(credentials)  # same credentials object, not wrapped
        handle = botocreds.attach(plain.client("s3"))
        assert handle.credentials is session.get_credentials()

    def test_explicit_set_credentials_after_wrap_is_respected(self) -> None:
        credentials, _ = _live_credentials()
        session = botocreds.wrap(session_with(credentials))
        session._session.set_credentials("AKIAEXPLICIT0001", "secret")
        explicit = session.get_credentials()
        assert explicit is not None and explicit.access_key == "AKIAEXPLICIT0001"

    @pytest.mark.parametrize("bad", [None, "default", boto3.client, object()])
    def test_anything_but_a_session_is_a_type_error(self, bad: object) -> None:
        with pytest.raises(
            TypeError, match=r"expected a boto3\.Session, botocore Session, aiobotocore AioSession"
        ):
            botocreds.wrap(bad)

    def test_a_session_with_no_credentials_fails_loudly(self) -> None:
        with pytest.raises(CredentialsUnavailable, match="no credentials were found"):
            botocreds.wrap(boto3.Session(region_name="us-east-1"))


def test_shutdown_closes_every_refresher() -> None:
    credentials, _ = _live_credentials()
    one = botocreds.attach(session_with(credentials).client("s3"))
    other = botocreds.Refresher(_live_credentials()[0])
    botocreds.shutdown()
    assert one.refresher.closed and other.closed


def test_no_secret_appears_in_reprs_or_errors() -> None:
    credentials, fetcher = _live_credentials()
    refresher = botocreds.Refresher(credentials, policy=RefreshPolicy(wait_timeout=0.0))
    frozen = refresher.credentials.get_frozen_credentials()
    assert frozen.access_key and frozen.secret_key and frozen.token
    texts = [repr(refresher), repr(refresher.credentials), repr(refresher.credentials._snapshot)]
    fetcher.script = [ValueError("boom")]
    with pytest.raises(CredentialsUnavailable) as caught:
        botocreds.Refresher(credentials)
    texts.append(str(caught.value))
    for text in texts:
        assert frozen.secret_key not in text
        assert frozen.token not in text
        assert frozen.access_key not in text
    assert frozen.access_key[-4:] in repr(refresher)


class TestLifetime:
    def test_attach_after_shutdown_resumes_background_refresh(self) -> None:
        credentials, _ = _live_credentials()
        client = session_with(credentials).client("s3")
        first = botocreds.attach(client)
        botocreds.shutdown()
        assert first.refresher.closed
        again = botocreds.attach(client)
        assert again.refresher is first.refresher
        assert not again.refresher.closed
        assert again.refresher in again.refresher._scheduler.members()

    def test_wrap_after_shutdown_resumes_background_refresh(self) -> None:
        credentials, _ = _live_credentials()
        session = botocreds.wrap(session_with(credentials))
        background = session.get_credentials()
        assert isinstance(background, BackgroundCredentials)
        botocreds.shutdown()
        botocreds.wrap(session)
        refresher = background._owner
        assert isinstance(refresher, botocreds.Refresher) and not refresher.closed

    def test_a_refresher_nobody_uses_any_more_is_collected_and_stops(self) -> None:
        credentials, _ = _live_credentials()
        client = session_with(credentials).client("s3")
        botocreds.attach(client)  # the handle is dropped at once
        refresher = weakref.ref(_owner_of(client))
        scheduler = _owner_of(client)._scheduler
        del client
        gc.collect()
        assert refresher() is None
        assert scheduler.members() == []

    def test_a_dropped_wrapped_session_and_its_clients_are_collected(self) -> None:
        credentials, _ = _live_credentials()
        session = botocreds.wrap(session_with(credentials))
        clients = [session.client("s3") for _ in range(3)]
        refresher = weakref.ref(_owner_of(clients[0]))
        del session
        gc.collect()
        assert refresher() is not None, "the clients still use it"
        del clients
        gc.collect()
        assert refresher() is None

    def test_closing_the_handle_of_a_collected_client_is_harmless(self) -> None:
        credentials, _ = _live_credentials()
        client = session_with(credentials).client("s3")
        handle = botocreds.attach(client)
        del client
        gc.collect()
        assert handle.closed
        handle.close()
        assert handle.refresher.closed


def _owner_of(client: BaseClient) -> botocreds.Refresher:
    credentials = _botocore.client_credentials(client)
    assert isinstance(credentials, BackgroundCredentials)
    owner = credentials._owner
    assert isinstance(owner, botocreds.Refresher)
    return owner


class TestLocking:
    def test_a_collected_client_gives_its_use_back_without_taking_a_lock(self) -> None:
        # The finalizer may run inside a collection on a thread that holds
        # botocreds locks; it must only queue the release. Holding the drain
        # lock as well keeps the scheduler thread, whose housekeeping drains the
        # queue at any moment (on Python 3.13 right after attach() starts it),
        # from applying the release before it has been seen queued.
        credentials, _ = _live_credentials()
        client = session_with(credentials).client("s3")
        handle = botocreds.attach(client)
        refresher = handle.refresher
        del handle
        # In the library's order: drain lock, registry lock, then the refresher's.
        with _attach._drain_lock, _attach._registry_lock, refresher._lock:
            done = threading.Event()

            def collect() -> None:
                nonlocal client
                del client
                gc.collect()
                done.set()

            collector = threading.Thread(target=collect)
            collector.start()
            assert done.wait(10), "the finalizer blocked on a lock"
            collector.join(10)
            queued = [entry() for entry in _attach._pending_releases]
            assert queued.count(refresher) == 1, "queued by the finalizer"
            assert not refresher.closed, "released later, outside the collection"
        _attach._drain_releases()
        assert refresher not in [entry() for entry in _attach._pending_releases]
        assert refresher.closed

    def test_a_slow_first_mint_does_not_hold_up_attach_of_another_source(self) -> None:
        entered, release = threading.Event(), threading.Event()
        slow, _ = _deferred_credentials()
        slow_fetch = _botocore.refresh_function(slow)

        def blocking_fetch() -> Any:
            entered.set()
            release.wait(10)
            return slow_fetch()

        slow._refresh_using = blocking_fetch  # type: ignore[attr-defined]
        attaching = threading.Thread(target=botocreds.attach, args=(_client_of(slow),))
        attaching.start()
        try:
            assert entered.wait(10)
            fast, _ = _live_credentials()
            quick = threading.Thread(target=botocreds.attach, args=(_client_of(fast),))
            quick.start()
            quick.join(10)
            assert not quick.is_alive(), "attach() waited for another source's mint"
        finally:
            release.set()
            attaching.join(10)


def _client_of(credentials: Credentials) -> BaseClient:
    client: BaseClient = session_with(credentials).client("s3")
    return client
