"""Source helpers that need no network: session names and argument checks."""

from __future__ import annotations

import os
import re
import socket

import boto3
import pytest

import botocreds
from botocreds import _sts


def test_the_default_session_name_names_the_host_and_process() -> None:
    name = _sts.default_session_name()
    assert name == _sts.default_session_name(), "stable, not a timestamp"
    assert name.startswith("botocreds-") and name.endswith(f"-{os.getpid()}")
    assert re.fullmatch(r"[\w+=,.@-]{2,64}", name)


def test_a_long_or_odd_host_name_is_trimmed_to_a_valid_session_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "ip 10/0/0/1 " + "x" * 100)
    name = _sts.default_session_name()
    assert len(name) <= 64 and name.endswith(f"-{os.getpid()}")
    assert re.fullmatch(r"[\w+=,.@-]{2,64}", name)


def test_the_fetcher_cache_never_holds_an_answer() -> None:
    cache = _sts._NoCache()
    cache["key"] = {"Credentials": {}}
    assert "key" not in cache and len(cache) == 0


PARENT = boto3.Session(
    aws_access_key_id="AKIAEXAMPLE00000001", aws_secret_access_key="s", region_name="us-east-1"
)
ROLE = "arn:aws:iam::123456789012:role/app"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"role_arn": "role/app"}, ValueError, "role_arn must look like"),
        ({"role_arn": 42}, TypeError, "role_arn must be a string"),
        ({"duration": 899}, ValueError, "between 900 and 43200"),
        ({"duration": 43201}, ValueError, "between 900 and 43200"),
        ({"duration": "3600"}, TypeError, "duration must be a number"),
        ({"session_name": "a b"}, ValueError, "session_name must be 2 to 64"),
        ({"mfa_serial": "arn:aws:iam::123456789012:mfa/u"}, ValueError, "go together"),
        ({"mfa_token": lambda: "123456"}, ValueError, "go together"),
        ({"mfa_serial": "arn:aws:iam::1:mfa/u", "mfa_token": "123456"}, TypeError, "callable"),
        ({"policy_arns": "arn:aws:iam::aws:policy/X"}, TypeError, "policy_arns must be a list"),
        ({"tags": {"team": 1}}, TypeError, "tags must be a mapping"),
        ({"policy": 5}, TypeError, "RefreshPolicy"),
        ({"external_id": ""}, TypeError, "external_id must be a non-empty string"),
    ],
)
def test_assume_role_checks_every_argument_before_any_call(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    arguments: dict[str, object] = {"role_arn": ROLE, **kwargs}
    role_arn = arguments.pop("role_arn")
    with pytest.raises(error, match=message):
        botocreds.assume_role(PARENT, role_arn, **arguments)  # type: ignore[arg-type]


def test_assume_role_needs_a_boto3_session_with_credentials_and_a_region() -> None:
    with pytest.raises(TypeError, match=r"boto3\.Session parent"):
        botocreds.assume_role("default", ROLE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a region"):
        botocreds.assume_role(boto3.Session(aws_access_key_id="A", aws_secret_access_key="B"), ROLE)
    with pytest.raises(ValueError, match="no credentials"):
        botocreds.assume_role(boto3.Session(region_name="us-east-1"), ROLE)


def test_web_identity_needs_a_role_and_an_existing_token_file(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(ValueError, match="AWS_ROLE_ARN"):
        botocreds.web_identity()
    with pytest.raises(ValueError, match="AWS_WEB_IDENTITY_TOKEN_FILE"):
        botocreds.web_identity(ROLE)
    with pytest.raises(ValueError, match="token file not found"):
        botocreds.web_identity(ROLE, os.path.join(tmp_path, "missing"), region="us-east-1")


def test_from_fetcher_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        botocreds.from_fetcher({"access_key": "A"})  # type: ignore[arg-type]


def test_an_mfa_code_that_is_not_a_string_is_never_echoed() -> None:
    code = 987654  # an int: botocore's parameter validation would print it
    with pytest.raises(botocreds.CredentialsUnavailable) as raised:
        botocreds.assume_role(
            PARENT,
            ROLE,
            mfa_serial="arn:aws:iam::123456789012:mfa/user",
            mfa_token=lambda: code,  # type: ignore[arg-type,return-value]
        )
    chain: list[BaseException] = []
    error: BaseException | None = raised.value
    while error is not None and len(chain) < 10:
        chain.append(error)
        error = error.__cause__ or error.__context__
    texts = [str(e) for e in chain] + [repr(e) for e in chain]
    assert "must return a string, got int" in str(raised.value)
    assert not any(str(code) in text for text in texts), texts
