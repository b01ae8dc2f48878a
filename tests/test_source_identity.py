"""Which source a set of botocore credentials refreshes from: ``_botocore.source_identity``.

Two sessions built independently over the same configuration must name the
same source (so they share one refresher and one cache entry); a change to
anything that decides where the credentials come from must name another. No
test here reaches the network: process sources run a local command, role and
SSO sources are deferred (nothing is fetched until a client signs), and the
container and instance-metadata fetchers are replaced by local fakes.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import sys
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.credentials import (
    BaseAssumeRoleCredentialFetcher,
    ContainerProvider,
    Credentials,
    InstanceMetadataProvider,
    RefreshableCredentials,
)
from botocore.utils import ContainerMetadataFetcher, InstanceMetadataFetcher

from botocreds._botocore import SourceIdentity, source_identity

from .conftest import AwsFiles

EXPIRATION = "2099-01-01T00:00:00Z"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


# -- building sessions from configuration ------------------------------------------
def _configure(
    files: AwsFiles, config: dict[str, dict[str, str]], credentials: dict[str, dict[str, str]]
) -> None:
    """Write the whole config and credentials files (profiles by name)."""
    lines: list[str] = []
    for name, values in config.items():
        lines.append("[default]" if name == "default" else f"[profile {name}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    files.config.write_text("\n".join(lines))
    lines = []
    for name, values in credentials.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    files.credentials.write_text("\n".join(lines))


def _resolve(profile: str | None = None) -> Any:
    """What a new, independent botocore session resolves for ``profile``."""
    session = botocore.session.Session(profile=profile)
    credentials = session.get_credentials()
    assert credentials is not None
    return credentials


def _identity_of(
    files: AwsFiles,
    config: dict[str, dict[str, str]],
    credentials: dict[str, dict[str, str]] | None = None,
    profile: str = "default",
) -> SourceIdentity:
    _configure(files, config, credentials or {})
    identity = source_identity(_resolve(profile))
    assert identity is not None
    return identity


def _twice(
    files: AwsFiles,
    config: dict[str, dict[str, str]],
    credentials: dict[str, dict[str, str]] | None = None,
    profile: str = "default",
) -> SourceIdentity:
    """The identity two independent sessions give; asserts they agree."""
    first = _identity_of(files, config, credentials, profile)
    second = _identity_of(files, config, credentials, profile)
    assert first is not second
    assert first == second
    assert first.key() == second.key()
    return first


def _assert_hides(identity: SourceIdentity, secret: str) -> None:
    assert secret not in repr(identity)
    assert secret not in " ".join(identity.details)
    assert secret not in identity.key()


# -- credential_process --------------------------------------------------------------
def _process_command(access_key: str) -> str:
    payload = {
        "Version": 1,
        "AccessKeyId": access_key,
        "SecretAccessKey": SECRET,
        "SessionToken": "token",
        "Expiration": EXPIRATION,
    }
    return shlex.join([sys.executable, "-c", f"print({json.dumps(json.dumps(payload))})"])


def test_process_sources_with_one_profile_and_command_are_one_source(
    hermetic_aws: AwsFiles,
) -> None:
    command = _process_command("AKIAPROCESS00001")
    identity = _twice(hermetic_aws, {"a": {"credential_process": command}}, profile="a")
    assert identity.kind == "custom-process"
    assert identity.details == ("a", command)


def test_a_process_source_differs_by_command_and_by_profile(hermetic_aws: AwsFiles) -> None:
    command = _process_command("AKIAPROCESS00001")
    other_command = _process_command("AKIAPROCESS00002")
    config = {"a": {"credential_process": command}, "b": {"credential_process": command}}
    base = _identity_of(hermetic_aws, config, profile="a")
    same_command_other_profile = _identity_of(hermetic_aws, config, profile="b")
    other = _identity_of(hermetic_aws, {"a": {"credential_process": other_command}}, profile="a")
    assert len({base, same_command_other_profile, other}) == 3
    assert len({base.key(), same_command_other_profile.key(), other.key()}) == 3


# -- assume-role -----------------------------------------------------------------------
@pytest.fixture
def generated_session_names(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every default role session name botocore generates is a new one.

    botocore names a default session after the current second; two sessions
    built a second apart get different names for the same role.
    """
    serial = itertools.count(1)

    def generate(self: Any) -> None:
        self._role_session_name = f"botocore-session-{next(serial)}"
        self._assume_kwargs["RoleSessionName"] = self._role_session_name
        self._using_default_session_name = True

    monkeypatch.setattr(BaseAssumeRoleCredentialFetcher, "_generate_assume_role_name", generate)
    yield


ROLE = "arn:aws:iam::123456789012:role/reader"
KEYS = {
    "base": {"aws_access_key_id": "AKIASOURCE000001", "aws_secret_access_key": SECRET},
    "other": {"aws_access_key_id": "AKIASOURCE000002", "aws_secret_access_key": SECRET},
}


def _role(**extra: str) -> dict[str, dict[str, str]]:
    return {"default": {"role_arn": ROLE, "source_profile": "base", **extra}}


@pytest.mark.usefixtures("generated_session_names")
def test_roles_with_one_configuration_are_one_source_whatever_default_name_they_get(
    hermetic_aws: AwsFiles,
) -> None:
    first = _identity_of(hermetic_aws, _role(), KEYS)
    second = _identity_of(hermetic_aws, _role(), KEYS)
    assert first.kind == "assume-role"
    assert first == second
    assert "RoleSessionName=<default>" in first.details
    assert SECRET not in " ".join(first.details)


@pytest.mark.usefixtures("generated_session_names")
@pytest.mark.parametrize(
    ("changed", "credentials"),
    [
        pytest.param({"role_arn": "arn:aws:iam::123456789012:role/writer"}, KEYS, id="role_arn"),
        pytest.param({"source_profile": "other"}, KEYS, id="source_profile_keys"),
        pytest.param({"role_session_name": "explicit"}, KEYS, id="role_session_name"),
        pytest.param({"external_id": "extern-1"}, KEYS, id="external_id"),
        pytest.param(
            {"mfa_serial": "arn:aws:iam::123456789012:mfa/someone"}, KEYS, id="mfa_serial"
        ),
        pytest.param({"duration_seconds": "900"}, KEYS, id="duration_seconds"),
    ],
)
def test_a_role_source_differs_by_each_setting_that_decides_its_credentials(
    hermetic_aws: AwsFiles, changed: dict[str, str], credentials: dict[str, dict[str, str]]
) -> None:
    base = _twice(hermetic_aws, _role(), credentials)
    config = _role()
    config["default"].update(changed)
    other = _twice(hermetic_aws, config, credentials)
    assert other.kind == "assume-role"
    assert other != base
    assert other.key() != base.key()


@pytest.mark.usefixtures("generated_session_names")
def test_a_role_source_differs_by_external_id_value(hermetic_aws: AwsFiles) -> None:
    one = _twice(hermetic_aws, _role(external_id="extern-1"), KEYS)
    two = _twice(hermetic_aws, _role(external_id="extern-2"), KEYS)
    assert one != two


@pytest.mark.usefixtures("generated_session_names")
def test_a_role_identity_holds_the_external_id_only_as_a_hash(hermetic_aws: AwsFiles) -> None:
    external_id = "very-private-external-id-4711"
    identity = _twice(hermetic_aws, _role(external_id=external_id), KEYS)
    _assert_hides(identity, external_id)
    _assert_hides(identity, SECRET)
    assert repr(identity) == "SourceIdentity('assume-role')"


@pytest.mark.usefixtures("generated_session_names")
def test_a_role_chained_from_a_process_source_names_that_source(hermetic_aws: AwsFiles) -> None:
    command = _process_command("AKIAPROCESS00001")
    config = {
        "default": {"role_arn": ROLE, "source_profile": "proc"},
        "proc": {"credential_process": command},
    }
    identity = _twice(hermetic_aws, config)
    other_config = {**config, "proc": {"credential_process": _process_command("AKIAPROC2")}}
    assert _twice(hermetic_aws, other_config) != identity


# -- web identity ------------------------------------------------------------------------
def _web(role: str = ROLE, token_file: str = "/var/run/token") -> dict[str, dict[str, str]]:
    return {"default": {"role_arn": role, "web_identity_token_file": token_file}}


@pytest.mark.usefixtures("generated_session_names")
def test_web_identity_sources_differ_by_role_and_token_file(hermetic_aws: AwsFiles) -> None:
    base = _twice(hermetic_aws, _web())
    assert base.kind == "assume-role-with-web-identity"
    assert "token_file=/var/run/token" in base.details
    other_role = _twice(hermetic_aws, _web(role="arn:aws:iam::123456789012:role/writer"))
    other_file = _twice(hermetic_aws, _web(token_file="/var/run/other-token"))
    assert len({base, other_role, other_file}) == 3


# -- container ---------------------------------------------------------------------------
@pytest.fixture
def container_replies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, str]]]:
    """The container endpoint, answered locally: each request's URI and headers."""
    requests: list[tuple[str, dict[str, str]]] = []

    def retrieve_full_uri(self: Any, full_url: str, headers: Any = None) -> dict[str, str]:
        requests.append((full_url, dict(headers or {})))
        return {
            "AccessKeyId": "ASIACONTAINER001",
            "SecretAccessKey": SECRET,
            "Token": "token",
            "Expiration": EXPIRATION,
        }

    monkeypatch.setattr(ContainerMetadataFetcher, "retrieve_full_uri", retrieve_full_uri)
    return requests


def _container_identity(monkeypatch: pytest.MonkeyPatch, **environment: str) -> SourceIdentity:
    names = (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    )
    for name in names:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    credentials = _resolve()
    assert credentials.method == "container-role"
    identity = source_identity(credentials)
    assert identity is not None
    again = source_identity(_resolve())
    assert again == identity
    return identity


FULL = "http://127.0.0.1:8080/credentials"


def test_container_sources_differ_by_uri_and_by_authorization(
    monkeypatch: pytest.MonkeyPatch,
    container_replies: list[tuple[str, dict[str, str]]],
    tmp_path: Any,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token")
    other_file = tmp_path / "other-token"
    other_file.write_text("file-token")
    found = {
        "full": _container_identity(monkeypatch, AWS_CONTAINER_CREDENTIALS_FULL_URI=FULL),
        "other full": _container_identity(
            monkeypatch, AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:9090/credentials"
        ),
        "relative": _container_identity(
            monkeypatch, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/credentials/abc"
        ),
        "other relative": _container_identity(
            monkeypatch, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v2/credentials/def"
        ),
        "token file": _container_identity(
            monkeypatch,
            AWS_CONTAINER_CREDENTIALS_FULL_URI=FULL,
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file),
        ),
        "other token file": _container_identity(
            monkeypatch,
            AWS_CONTAINER_CREDENTIALS_FULL_URI=FULL,
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(other_file),
        ),
        "token": _container_identity(
            monkeypatch,
            AWS_CONTAINER_CREDENTIALS_FULL_URI=FULL,
            AWS_CONTAINER_AUTHORIZATION_TOKEN="token-one",
        ),
        "other token": _container_identity(
            monkeypatch,
            AWS_CONTAINER_CREDENTIALS_FULL_URI=FULL,
            AWS_CONTAINER_AUTHORIZATION_TOKEN="token-two",
        ),
    }
    assert len(set(found.values())) == len(found), found
    assert {identity.kind for identity in found.values()} == {"container-role"}
    assert found["relative"].details[0] == "http://169.254.170.2/v2/credentials/abc"
    # Every fetch was answered locally.
    assert container_replies
    assert all(
        uri.startswith(("http://127.0.0.1", "http://169.254")) for uri, _ in container_replies
    )


def test_a_container_identity_holds_the_token_only_as_a_hash(
    monkeypatch: pytest.MonkeyPatch, container_replies: list[tuple[str, dict[str, str]]]
) -> None:
    token = "container-token-very-private-0042"
    identity = _container_identity(
        monkeypatch,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=FULL,
        AWS_CONTAINER_AUTHORIZATION_TOKEN=token,
    )
    assert ("Authorization", token) in container_replies[-1][1].items()
    _assert_hides(identity, token)
    assert repr(identity) == "SourceIdentity('container-role')"


def test_a_container_provider_built_by_hand_names_its_endpoint(
    container_replies: list[tuple[str, dict[str, str]]],
) -> None:
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": FULL}
    first = ContainerProvider(environ=dict(environ)).load()
    second = ContainerProvider(environ=dict(environ)).load()
    assert (
        source_identity(first)
        == source_identity(second)
        == SourceIdentity("container-role", (FULL, "none"))
    )


# -- instance metadata ---------------------------------------------------------------
class _LocalInstanceMetadata(InstanceMetadataFetcher):
    """Instance metadata answered locally: never opens a connection."""

    def retrieve_iam_role_credentials(self) -> dict[str, str]:
        return {
            "role_name": "instance-role",
            "access_key": "ASIAINSTANCE0001",
            "secret_key": SECRET,
            "token": "token",
            "expiry_time": EXPIRATION,
        }


def _instance_identity(base_url: str | None = None) -> SourceIdentity | None:
    fetcher = (
        _LocalInstanceMetadata() if base_url is None else _LocalInstanceMetadata(base_url=base_url)
    )
    credentials = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
    assert credentials is not None and credentials.method == "iam-role"
    return source_identity(credentials)


def test_instance_metadata_sources_differ_by_endpoint() -> None:
    default = _instance_identity()
    assert default is not None and default == _instance_identity()
    assert default.kind == "iam-role"
    assert default.details == ("http://169.254.169.254/",)
    other = _instance_identity("http://[fd00:ec2::254]/")
    assert other is not None and other != default


# -- SSO ---------------------------------------------------------------------------------
def _sso(**changed: str) -> dict[str, dict[str, str]]:
    values = {
        "sso_start_url": "https://example.awsapps.com/start",
        "sso_region": "us-east-1",
        "sso_account_id": "123456789012",
        "sso_role_name": "Reader",
    }
    return {"default": {**values, **changed}}


@pytest.mark.parametrize(
    "changed",
    [
        {"sso_start_url": "https://other.awsapps.com/start"},
        {"sso_account_id": "210987654321"},
        {"sso_role_name": "Writer"},
    ],
    ids=["sso_start_url", "sso_account_id", "sso_role_name"],
)
def test_an_sso_source_differs_by_start_url_account_and_role(
    hermetic_aws: AwsFiles, changed: dict[str, str]
) -> None:
    base = _twice(hermetic_aws, _sso())
    assert base.kind == "sso"
    other = _twice(hermetic_aws, _sso(**changed))
    assert other != base


# -- nothing to name -----------------------------------------------------------------------
def test_static_credentials_name_no_source(hermetic_aws: AwsFiles) -> None:
    _configure(
        hermetic_aws,
        {},
        {"default": {"aws_access_key_id": "AKIASTATIC000001", "aws_secret_access_key": SECRET}},
    )
    credentials = _resolve()
    assert not isinstance(credentials, RefreshableCredentials)
    assert source_identity(credentials) is None
    assert source_identity(Credentials("AKIASTATIC000001", SECRET)) is None


@pytest.mark.parametrize("method", ["custom-process", "container-role", "iam-role", "elsewhere"])
def test_an_unknown_refresh_function_names_no_source(method: str) -> None:
    def fetch() -> dict[str, str]:
        return {
            "access_key": "ASIAUNKNOWN00001",
            "secret_key": SECRET,
            "token": "token",
            "expiry_time": EXPIRATION,
        }

    credentials = RefreshableCredentials.create_from_metadata(
        fetch(), refresh_using=fetch, method=method
    )
    assert source_identity(credentials) is None


def test_a_role_over_credentials_that_name_no_source_names_none(
    hermetic_aws: AwsFiles, generated_session_names: None
) -> None:
    credentials = _resolve_role_over_unknown(hermetic_aws)
    assert source_identity(credentials) is None


def _resolve_role_over_unknown(files: AwsFiles) -> Any:
    _configure(files, _role(), KEYS)
    credentials = _resolve()
    fetcher = credentials._refresh_using.__self__
    fetcher._source_credentials = object()  # something botocreds cannot name
    return credentials


# -- the key ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "identity",
    [
        SourceIdentity("custom-process", ("a", "/bin/echo")),
        SourceIdentity("weird kind/../with spaces:and*" * 10, ("x" * 10_000, "\n\x00/")),
        SourceIdentity("sso"),
    ],
    ids=["plain", "hostile", "no-details"],
)
def test_the_key_is_stable_bounded_and_safe_as_a_file_name(identity: SourceIdentity) -> None:
    key = identity.key()
    assert key == SourceIdentity(identity.kind, identity.details).key()
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", key), key
    assert len(key) <= 73


def test_the_key_does_not_change_between_releases() -> None:
    """Shared caches outlive a process: the same source must keep the same key."""
    key = SourceIdentity("custom-process", ("a", "/bin/echo")).key()
    assert key == "custom-process-e15f60d514fc1263c56447cadadd8fe3"


def test_the_repr_shows_the_kind_only() -> None:
    identity = SourceIdentity("custom-process", ("profile", "my-command --secret-flag"))
    assert repr(identity) == "SourceIdentity('custom-process')"


def test_an_sso_source_names_its_caller_so_two_users_never_share_it(
    hermetic_aws: AwsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = _twice(hermetic_aws, _sso())
    another_user = os.geteuid() + 1
    monkeypatch.setattr(os, "geteuid", lambda: another_user)
    theirs = _twice(hermetic_aws, _sso())
    assert mine != theirs
    assert mine.key() != theirs.key()
