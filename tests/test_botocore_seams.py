"""The private botocore attributes botocreds relies on, checked against the installed botocore.

If botocore moves one of them, these tests fail here, by name, rather than
botocreds quietly signing with stale credentials in production.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.client import BaseClient
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    AssumeRoleWithWebIdentityCredentialFetcher,
    ContainerProvider,
    Credentials,
    DeferredRefreshableCredentials,
    InstanceMetadataProvider,
    ProcessProvider,
    ReadOnlyCredentials,
    RefreshableCredentials,
    SSOCredentialFetcher,
    create_mfa_serial_refresher,
)
from botocore.regions import EndpointResolverBuiltins
from botocore.utils import (
    FileWebIdentityTokenLoader,
    InstanceMetadataFetcher,
    create_nested_client,
)

import botocreds
from botocreds import _botocore

from ._fakes import FakeClock, ScriptedFetcher, refreshable
from ._sessions import answer_locally, session_with
from .conftest import AwsFiles


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


# -- where each provider leaves the source it refreshes from ----------------------------
# source_identity() reads these; if botocore moves one, sources stop being shared
# (every session gets its own refresher and fetches for itself).
EXPIRY = "2099-01-01T00:00:00Z"


class _FinishedProcess:
    """What ``ProcessProvider`` needs of ``Popen``: a process that printed credentials."""

    returncode = 0

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def communicate(self) -> tuple[bytes, bytes]:
        payload = {
            "Version": 1,
            "AccessKeyId": "ASIAPROCESS00001",
            "SecretAccessKey": "secret",
            "SessionToken": "token",
            "Expiration": EXPIRY,
        }
        return json.dumps(payload).encode(), b""


def test_the_process_provider_refreshes_through_a_closure_over_its_command() -> None:
    command = "/usr/local/bin/credentials --profile a"
    provider = ProcessProvider(
        "a", lambda: {"profiles": {"a": {"credential_process": command}}}, popen=_FinishedProcess
    )
    credentials: Any = provider.load()
    assert isinstance(credentials, RefreshableCredentials)
    captured = _botocore._free_variables(_botocore._refresh_target(credentials))
    assert captured.get("credential_process") == command, (
        f"ProcessProvider's refresh closure no longer captures `credential_process`: {captured}"
    )
    assert captured.get("self") is provider, "the refresh closure no longer captures `self`"
    assert provider._profile_name == "a", "ProcessProvider._profile_name moved"
    assert _botocore.source_identity(credentials) == _botocore.SourceIdentity(
        "custom-process", ("a", command)
    )


class _LocalContainer:
    """What ``ContainerProvider`` needs of its fetcher, answered locally."""

    def full_url(self, relative: str) -> str:
        return f"http://169.254.170.2{relative}"

    def retrieve_full_uri(self, full_uri: str, headers: Any = None) -> dict[str, str]:
        return {
            "AccessKeyId": "ASIACONTAINER001",
            "SecretAccessKey": "secret",
            "Token": "token",
            "Expiration": EXPIRY,
        }


def test_the_container_provider_refreshes_through_a_closure_over_its_uri() -> None:
    environ = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"}
    local: Any = _LocalContainer()
    provider = ContainerProvider(environ=environ, fetcher=local)
    credentials: Any = provider.load()
    assert isinstance(credentials, RefreshableCredentials)
    captured = _botocore._free_variables(_botocore._refresh_target(credentials))
    assert captured.get("full_uri") == "http://169.254.170.2/v2/credentials/abc", (
        f"ContainerProvider's fetch_creds closure no longer captures `full_uri`: {captured}"
    )
    assert captured.get("self") is provider, "fetch_creds no longer captures `self`"
    assert provider._environ is environ, "ContainerProvider._environ moved"
    assert ContainerProvider.ENV_VAR_AUTH_TOKEN == _botocore._CONTAINER_TOKEN
    assert ContainerProvider.ENV_VAR_AUTH_TOKEN_FILE == _botocore._CONTAINER_TOKEN_FILE


class _LocalInstanceMetadata(InstanceMetadataFetcher):
    def retrieve_iam_role_credentials(self) -> dict[str, str]:
        return {
            "role_name": "instance-role",
            "access_key": "ASIAINSTANCE0001",
            "secret_key": "secret",
            "token": "token",
            "expiry_time": EXPIRY,
        }


def test_instance_metadata_refreshes_through_its_fetchers_bound_method() -> None:
    fetcher = _LocalInstanceMetadata(base_url="http://169.254.169.254/")
    credentials: Any = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
    assert isinstance(credentials, RefreshableCredentials)
    refresh = _botocore._refresh_target(credentials)
    assert getattr(refresh, "__self__", None) is fetcher, (
        "InstanceMetadataProvider no longer refreshes with the bound "
        "retrieve_iam_role_credentials of its fetcher"
    )
    assert refresh.__name__ == "retrieve_iam_role_credentials"
    assert fetcher._base_url == "http://169.254.169.254/", "InstanceMetadataFetcher._base_url moved"


def _no_client(*_: Any, **__: Any) -> Any:
    raise AssertionError("no client is created until the credentials are fetched")


def test_role_fetchers_keep_their_arguments_and_source_credentials() -> None:
    source = Credentials("AKIASOURCE000001", "secret")
    fetcher: Any = AssumeRoleCredentialFetcher(
        _no_client, source, "arn:aws:iam::123456789012:role/reader", extra_args={"ExternalId": "x"}
    )
    assert fetcher._assume_kwargs["RoleArn"] == "arn:aws:iam::123456789012:role/reader", (
        "BaseAssumeRoleCredentialFetcher._assume_kwargs moved"
    )
    assert fetcher._assume_kwargs["ExternalId"] == "x"
    assert fetcher._using_default_session_name is True, (
        "BaseAssumeRoleCredentialFetcher._using_default_session_name moved"
    )
    assert fetcher._source_credentials is source, "AssumeRoleCredentialFetcher._source_credentials"
    named: Any = AssumeRoleCredentialFetcher(
        _no_client, source, "arn:aws:iam::1:role/r", extra_args={"RoleSessionName": "mine"}
    )
    assert named._using_default_session_name is False
    assert named._assume_kwargs["RoleSessionName"] == "mine"


def test_the_web_identity_fetcher_keeps_its_token_file() -> None:
    loader = FileWebIdentityTokenLoader("/var/run/token")
    fetcher: Any = AssumeRoleWithWebIdentityCredentialFetcher(
        _no_client, loader, "arn:aws:iam::123456789012:role/reader"
    )
    assert fetcher._web_identity_token_loader is loader, (
        "AssumeRoleWithWebIdentityCredentialFetcher._web_identity_token_loader moved"
    )
    assert loader._web_identity_token_path == "/var/run/token", (
        "FileWebIdentityTokenLoader._web_identity_token_path moved"
    )
    assert fetcher._assume_kwargs["RoleArn"] == "arn:aws:iam::123456789012:role/reader"


def test_the_sso_fetcher_keeps_what_names_its_source() -> None:
    fetcher = SSOCredentialFetcher(
        "https://example.awsapps.com/start",
        "us-east-1",
        "Reader",
        "123456789012",
        _no_client,
        token_loader=lambda *_: {},
        sso_session_name="corp",
    )
    found = {name: getattr(fetcher, name, "<missing>") for name in _botocore._SSO_FIELDS}
    assert found == {
        "_start_url": "https://example.awsapps.com/start",
        "_account_id": "123456789012",
        "_role_name": "Reader",
        "_sso_session_name": "corp",
        "_sso_region": "us-east-1",
    }, f"SSOCredentialFetcher's fields moved: {found}"


def test_the_mfa_refresher_wraps_the_fetcher_as_refresh() -> None:
    def fetch() -> dict[str, str]:
        raise AssertionError("not called")

    wrapper = create_mfa_serial_refresher(fetch)
    assert type(wrapper).__name__ == "_Refresher", "create_mfa_serial_refresher's class renamed"
    assert wrapper._refresh is fetch, "create_mfa_serial_refresher's _Refresher._refresh moved"
    credentials = DeferredRefreshableCredentials(wrapper, "assume-role")
    assert _botocore._refresh_target(credentials) is fetch


# -- sessions ----------------------------------------------------------------------------
def test_a_session_caches_its_credentials_in_credentials() -> None:
    session: Any = botocore.session.Session()
    assert _botocore.resolved_credentials(session) is None
    session.set_credentials("AKIAEXAMPLE00001", "secret")
    assert _botocore.resolved_credentials(session) is session._credentials
    assert session._credentials.access_key == "AKIAEXAMPLE00001", "Session._credentials moved"
    replacement = Credentials("AKIAREPLACEMENT1", "other")
    _botocore.serve_resolved(session, replacement)
    assert session.get_credentials() is replacement


def test_a_new_sessions_credential_resolver_is_a_deferred_component() -> None:
    session: Any = botocore.session.Session()
    deferred = session._components._deferred
    assert isinstance(deferred, dict) and "credential_provider" in deferred, (
        "Session._components._deferred['credential_provider'] moved"
    )
    assert isinstance(session.instance_variables(), dict), "Session.instance_variables() moved"
    assert session.profile is None, "Session.profile moved"
    assert _botocore.resolution_key(session) is not None
    session.get_component("credential_provider")
    assert "credential_provider" not in session._components._deferred
    assert _botocore.resolution_key(session) is None  # built: it can no longer be promised


def test_sessions_over_one_configuration_share_a_resolution_key(
    hermetic_aws: AwsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    hermetic_aws.config.write_text("[profile a]\nregion = us-east-1\n[profile b]\n")
    first = _botocore.resolution_key(botocore.session.Session(profile="a"))
    assert first == _botocore.resolution_key(botocore.session.Session(profile="a"))
    assert first != _botocore.resolution_key(botocore.session.Session(profile="b"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT1")
    changed = _botocore.resolution_key(botocore.session.Session(profile="a"))
    assert changed != first
    assert changed is not None and "AKIAENVIRONMENT1" not in changed


def test_session_hooks_name_methods_botocore_sessions_have() -> None:
    hooks = _botocore.botocore_session_hooks()
    assert hooks.owner is botocore.session.Session and not hooks.is_async
    assert callable(getattr(hooks.owner, hooks.get_credentials))
    assert callable(getattr(hooks.owner, hooks.create_client))


# -- botocore's client plugins ----------------------------------------------------------
PLUGIN_MODULE = "botocreds_seam_probe_plugin"


@pytest.fixture
def probe_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """A client plugin module named in BOTOCORE_EXPERIMENTAL__PLUGINS: the clients it saw."""
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(
        "initialized = []\ndef initialize_client_plugin(client):\n    initialized.append(client)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BOTOCORE_EXPERIMENTAL__PLUGINS", f"probe={PLUGIN_MODULE}")
    module = importlib.import_module(PLUGIN_MODULE)
    yield module.initialized
    sys.modules.pop(PLUGIN_MODULE, None)


def test_botocore_initializes_the_client_plugins_named_in_the_environment(
    probe_plugin: list[Any],
) -> None:
    session = botocore.session.Session()
    client = session.create_client(
        "sts",
        region_name="us-east-1",
        aws_access_key_id="AKIAEXAMPLE00001",
        aws_secret_access_key="secret",
    )
    assert probe_plugin == [client], (
        "Session._register_client_plugins no longer calls initialize_client_plugin "
        "from the modules in BOTOCORE_EXPERIMENTAL__PLUGINS"
    )


def test_nested_clients_are_created_with_plugins_disabled(probe_plugin: list[Any]) -> None:
    session = botocore.session.Session()
    client = create_nested_client(
        session,
        "sts",
        region_name="us-east-1",
        aws_access_key_id="AKIAEXAMPLE00001",
        aws_secret_access_key="secret",
    )
    assert isinstance(client, BaseClient)
    assert probe_plugin == [], "botocore.utils.create_nested_client no longer disables plugins"
