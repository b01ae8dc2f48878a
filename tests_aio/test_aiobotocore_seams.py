"""The private aiobotocore attributes botocreds relies on, checked against the installed release.

If aiobotocore moves one of them, these tests fail here, by name. They run
wherever aiobotocore is installed: ``tox -e aio`` and ``tox -e aioboto3``.
"""

from __future__ import annotations

import asyncio
import json
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


# -- where aiobotocore's providers leave the source they refresh from -------------------
EXPIRY = "2099-01-01T00:00:00Z"


class _FinishedProcess:
    """What ``AioProcessProvider`` needs of its ``popen``: a process that printed credentials."""

    returncode = 0

    async def communicate(self) -> tuple[bytes, bytes]:
        payload = {
            "Version": 1,
            "AccessKeyId": "ASIAPROCESS00001",
            "SecretAccessKey": "secret",
            "SessionToken": "token",
            "Expiration": EXPIRY,
        }
        return json.dumps(payload).encode(), b""


async def _finished_process(*_: Any, **__: Any) -> _FinishedProcess:
    return _FinishedProcess()


def test_the_aio_process_provider_refreshes_through_a_closure_over_its_command() -> None:
    from aiobotocore.credentials import AioProcessProvider, AioRefreshableCredentials

    command = "/usr/local/bin/credentials --profile a"
    provider: Any = AioProcessProvider(
        "a", lambda: {"profiles": {"a": {"credential_process": command}}}, popen=_finished_process
    )
    credentials = asyncio.run(provider.load())
    assert isinstance(credentials, AioRefreshableCredentials)
    captured = _botocore._free_variables(credentials._refresh_using)
    assert captured.get("credential_process") == command, (
        f"AioProcessProvider's refresh closure no longer captures `credential_process`: {captured}"
    )
    assert provider._profile_name == "a", "AioProcessProvider._profile_name moved"
    assert captured.get("self") is provider
    assert _botocore.source_identity(credentials) == _botocore.SourceIdentity(
        "custom-process", ("a", command)
    )


class _LocalContainer:
    def full_url(self, relative: str) -> str:
        return f"http://169.254.170.2{relative}"

    async def retrieve_full_uri(self, full_uri: str, headers: Any = None) -> dict[str, str]:
        return {
            "AccessKeyId": "ASIACONTAINER001",
            "SecretAccessKey": "secret",
            "Token": "token",
            "Expiration": EXPIRY,
        }


def test_the_aio_container_provider_refreshes_through_a_closure_over_its_uri() -> None:
    from aiobotocore.credentials import AioContainerProvider

    environ = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:8080/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-token-0042",
    }
    provider: Any = AioContainerProvider(environ=environ, fetcher=_LocalContainer())
    credentials = asyncio.run(provider.load())
    captured = _botocore._free_variables(credentials._refresh_using)
    assert captured.get("full_uri") == "http://127.0.0.1:8080/credentials", (
        f"AioContainerProvider's fetch_creds closure no longer captures `full_uri`: {captured}"
    )
    assert provider._environ is environ, "AioContainerProvider._environ moved"
    assert captured.get("self") is provider
    identity = _botocore.source_identity(credentials)
    assert identity is not None and identity.kind == "container-role"
    assert "container-token-0042" not in " ".join(identity.details)


def test_aio_instance_metadata_refreshes_through_its_fetchers_bound_method() -> None:
    from aiobotocore.credentials import AioInstanceMetadataProvider
    from aiobotocore.utils import AioInstanceMetadataFetcher

    class LocalInstanceMetadata(AioInstanceMetadataFetcher):  # type: ignore[misc]
        async def retrieve_iam_role_credentials(self) -> dict[str, str]:
            return {
                "role_name": "instance-role",
                "access_key": "ASIAINSTANCE0001",
                "secret_key": "secret",
                "token": "token",
                "expiry_time": EXPIRY,
            }

    fetcher = LocalInstanceMetadata(base_url="http://169.254.169.254/")
    credentials = asyncio.run(AioInstanceMetadataProvider(iam_role_fetcher=fetcher).load())
    assert getattr(credentials._refresh_using, "__self__", None) is fetcher
    assert fetcher._base_url == "http://169.254.169.254/", "AioInstanceMetadataFetcher._base_url"
    assert _botocore.source_identity(credentials) == _botocore.SourceIdentity(
        "iam-role", ("http://169.254.169.254/",)
    )


def _no_client(*_: Any, **__: Any) -> Any:
    raise AssertionError("no client is created until the credentials are fetched")


def test_aio_role_fetchers_keep_their_arguments_and_source_credentials() -> None:
    from aiobotocore.credentials import (
        AioAssumeRoleCredentialFetcher,
        AioAssumeRoleWithWebIdentityCredentialFetcher,
        AioCredentials,
        AioDeferredRefreshableCredentials,
    )
    from botocore.utils import FileWebIdentityTokenLoader

    source = AioCredentials("AKIASOURCE000001", "secret")
    fetcher = AioAssumeRoleCredentialFetcher(_no_client, source, "arn:aws:iam::1:role/reader")
    assert fetcher._assume_kwargs["RoleArn"] == "arn:aws:iam::1:role/reader"
    assert fetcher._using_default_session_name is True
    assert fetcher._source_credentials is source
    role = AioDeferredRefreshableCredentials(fetcher.fetch_credentials, "assume-role")
    identity = _botocore.source_identity(role)
    assert identity is not None and identity.kind == "assume-role"

    loader = FileWebIdentityTokenLoader("/var/run/token")
    web = AioAssumeRoleWithWebIdentityCredentialFetcher(
        _no_client, loader, "arn:aws:iam::1:role/reader"
    )
    assert web._web_identity_token_loader._web_identity_token_path == "/var/run/token"
    web_role = AioDeferredRefreshableCredentials(
        web.fetch_credentials, "assume-role-with-web-identity"
    )
    web_identity = _botocore.source_identity(web_role)
    assert web_identity is not None and "token_file=/var/run/token" in web_identity.details


def test_the_aio_sso_fetcher_keeps_what_names_its_source() -> None:
    from aiobotocore.credentials import AioDeferredRefreshableCredentials, AioSSOCredentialFetcher

    fetcher = AioSSOCredentialFetcher(
        "https://example.awsapps.com/start",
        "us-east-1",
        "Reader",
        "123456789012",
        _no_client,
        token_loader=lambda *_: {},
    )
    found = {name: getattr(fetcher, name, "<missing>") for name in _botocore._SSO_FIELDS}
    assert "<missing>" not in found.values(), f"AioSSOCredentialFetcher's fields moved: {found}"
    credentials = AioDeferredRefreshableCredentials(fetcher.fetch_credentials, "sso")
    identity = _botocore.source_identity(credentials)
    assert identity is not None and identity.kind == "sso"


def test_the_aio_mfa_refresher_is_the_call_method_of_a_refresher_over_the_fetcher() -> None:
    from aiobotocore.credentials import create_mfa_serial_refresher

    async def fetch() -> dict[str, str]:
        raise AssertionError("not called")

    wrapper = create_mfa_serial_refresher(fetch)
    owner: Any = getattr(wrapper, "__self__", None)
    assert type(owner).__name__ == "_Refresher", "aiobotocore's MFA _Refresher renamed"
    assert wrapper.__name__ == "call", "aiobotocore's MFA refresher is no longer _Refresher.call"
    assert owner._refresh is fetch, "aiobotocore's _Refresher._refresh moved"


def test_an_aio_role_with_an_mfa_serial_names_its_source() -> None:
    from aiobotocore.credentials import (
        AioAssumeRoleCredentialFetcher,
        AioCredentials,
        AioDeferredRefreshableCredentials,
        create_mfa_serial_refresher,
    )

    fetcher = AioAssumeRoleCredentialFetcher(
        _no_client,
        AioCredentials("AKIASOURCE000001", "secret"),
        "arn:aws:iam::1:role/reader",
        extra_args={"SerialNumber": "arn:aws:iam::1:mfa/someone"},
    )
    refresh = create_mfa_serial_refresher(fetcher.fetch_credentials)
    credentials = AioDeferredRefreshableCredentials(refresh, "assume-role")
    assert _botocore.source_identity(credentials) is not None


def test_aio_sessions_cache_credentials_and_defer_their_resolver_like_botocore() -> None:
    from aiobotocore.session import AioSession

    session = AioSession()
    assert _botocore.resolved_credentials(session) is None
    deferred = session._components._deferred
    assert isinstance(deferred, dict) and "credential_provider" in deferred
    assert isinstance(session.instance_variables(), dict) and session.profile is None
    assert _botocore.resolution_key(session) is not None
    session.set_credentials("AKIAEXAMPLE00001", "secret")
    assert _botocore.resolved_credentials(session) is session._credentials


def test_aio_session_hooks_name_coroutines_aio_sessions_have() -> None:
    import inspect

    import aiobotocore.session

    hooks = _botocore.aiobotocore_session_hooks(aiobotocore.session)
    assert hooks.owner is aiobotocore.session.AioSession and hooks.is_async
    assert inspect.iscoroutinefunction(getattr(hooks.owner, hooks.get_credentials))
    assert inspect.iscoroutinefunction(getattr(hooks.owner, hooks.create_client))
    assert callable(hooks.owner._register_client_plugins)
