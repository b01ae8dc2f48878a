"""Credential sources as one-liners: assume-role chains, web identity, any fetch function.

Each function validates its arguments before any network I/O, builds the fetch
with botocore's own STS fetchers (``AssumeRoleCredentialFetcher`` and
``AssumeRoleWithWebIdentityCredentialFetcher``), and returns a new
``boto3.Session`` already wrapped by botocreds: every client made from it signs
with credentials refreshed in the background.

STS calls go to the regional endpoint of the session's region (the default of
the botocore versions botocreds supports); a user's ``sts_regional_endpoints``
setting is respected because the STS client is made by botocore as usual.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import boto3
import botocore.session
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    AssumeRoleWithWebIdentityCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.utils import FileWebIdentityTokenLoader, create_nested_client

from . import _botocore
from ._attach import wrap
from ._cache import SharedCache, check_cache
from ._cache import cache_key as make_cache_key
from ._events import Reporter, check_reporter
from ._policy import RefreshPolicy
from ._redact import describe_value

#: STS accepts role sessions of 15 minutes to 12 hours.
MIN_DURATION = 900
MAX_DURATION = 43200

_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")


class _NoCache(dict[str, Any]):
    """A cache that never holds anything, for botocore's fetchers.

    Their built-in cache returns the previous answer while more than 15 minutes
    are left; botocreds decides itself when to mint, so every mint must reach STS.
    """

    def __contains__(self, key: object) -> bool:
        return False

    def __setitem__(self, key: str, value: Any) -> None:
        pass


class _FixedCredentials(CredentialProvider):
    """A credential chain of one link: the credentials botocreds built."""

    METHOD = "botocreds"
    CANONICAL_NAME = "botocreds"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def _session_serving(
    credentials: Credentials,
    region: str | None,
    policy: RefreshPolicy | None,
    reporter: Reporter | None,
    cache: SharedCache | None,
    cache_key: str | None,
    like: botocore.session.Session | None = None,
) -> boto3.Session:
    """A new wrapped boto3 session whose every client signs with ``credentials``.

    With ``like``, the new session takes its profile (for settings such as
    retries or ``sts_regional_endpoints``) and its default client config.
    """
    inner = botocore.session.Session(profile=None if like is None else like.profile)
    if like is not None:
        inner.set_default_client_config(like.get_default_client_config())
    chain = CredentialResolver([_FixedCredentials(credentials)])
    inner.register_component("credential_provider", chain)
    session = boto3.Session(botocore_session=inner, region_name=region)
    return wrap(
        session,
        policy=policy,
        reporter=reporter,
        cache=cache,
        cache_key=None if cache is None else cache_key,
    )


def _check_policy(policy: object) -> RefreshPolicy | None:
    if policy is not None and not isinstance(policy, RefreshPolicy):
        raise TypeError(f"policy must be a botocreds.RefreshPolicy, got {type(policy).__name__}")
    return policy


def _check_role_arn(role_arn: object) -> str:
    if not isinstance(role_arn, str):
        raise TypeError(f"role_arn must be a string, got {type(role_arn).__name__}")
    if not _ROLE_ARN.match(role_arn):
        raise ValueError(
            f"role_arn must look like arn:aws:iam::123456789012:role/name, got {role_arn!r}"
        )
    return role_arn


def _check_duration(duration: object) -> int | None:
    if duration is None:
        return None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise TypeError(f"duration must be a number of seconds, got {type(duration).__name__}")
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise ValueError(
            f"duration must be between {MIN_DURATION} and {MAX_DURATION} seconds "
            f"(STS's limits), got {duration!r}"
        )
    return int(duration)


def _check_session_name(session_name: object) -> str:
    if session_name is None:
        return default_session_name()
    if not isinstance(session_name, str):
        raise TypeError(f"session_name must be a string, got {type(session_name).__name__}")
    if not _SESSION_NAME.match(session_name):
        raise ValueError(
            "session_name must be 2 to 64 characters of letters, digits and +=,.@_-, "
            f"got {session_name!r}"
        )
    return session_name


def _check_region(region: object, fallback: str | None, what: str) -> str:
    if region is not None and not isinstance(region, str):
        raise TypeError(f"region must be a string, got {type(region).__name__}")
    chosen = region or fallback
    if not chosen:
        raise ValueError(
            f"{what} needs a region for its regional STS endpoint: pass region=, "
            "or configure one (AWS_DEFAULT_REGION, or region in the profile)"
        )
    return chosen


def _check_optional_string(name: str, value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(f"{name} must be a non-empty string, got {value!r}")
    return value


def default_session_name() -> str:
    """A stable, traceable role session name: ``botocreds-<host>-<pid>``.

    CloudTrail shows it for every call made with the role, so it names the
    process rather than a timestamp. Trimmed to STS's 64 characters.
    """
    host = re.sub(r"[^\w+=,.@-]", "-", socket.gethostname()) or "host"
    suffix = f"-{os.getpid()}"
    return ("botocreds-" + host)[: 64 - len(suffix)] + suffix


def assume_role(
    parent: boto3.Session,
    role_arn: str,
    *,
    session_name: str | None = None,
    external_id: str | None = None,
    duration: float | None = None,
    policy_arns: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
    source_identity: str | None = None,
    mfa_serial: str | None = None,
    mfa_token: Callable[[], str] | None = None,
    region: str | None = None,
    policy: RefreshPolicy | None = None,
    reporter: Reporter | None = None,
    cache: SharedCache | None = None,
) -> boto3.Session:
    """A session that assumes ``role_arn`` with ``parent``'s credentials, kept fresh.

    ``parent`` may itself come from :func:`assume_role` or :func:`web_identity`:
    that is role chaining. Every refresh assumes the role again with the
    parent's *current* credentials, so a refreshed parent flows through.

    ``mfa_token`` is a callable returning a current MFA code; it is called on
    the background mint thread for every mint, never through a terminal prompt.
    ``duration`` is in seconds (900 to 43200); ``policy_arns`` are managed
    policy ARNs and ``tags`` session tags. STS is called in ``region`` (default:
    the parent's region). ``policy`` is the :class:`RefreshPolicy`; ``reporter``
    receives the refresher's events; ``cache`` (:class:`FileCache`,
    :class:`RedisCache`) shares the role's credentials with other processes,
    keyed by the role ARN, session name, a hash of the external ID, the
    duration, session policies and tags, and the region.

    Every argument is checked before any network call (``TypeError`` or
    ``ValueError``); the first mint then runs eagerly, so a role that cannot be
    assumed raises :class:`CredentialsUnavailable` here.
    """
    if not isinstance(parent, boto3.Session):
        raise TypeError(f"assume_role() needs a boto3.Session parent, got {type(parent).__name__}")
    arn = _check_role_arn(role_arn)
    name = _check_session_name(session_name)
    seconds = _check_duration(duration)
    checked_policy = _check_policy(policy)
    checked_reporter = check_reporter(reporter)
    check_cache(cache)
    chosen_region = _check_region(region, parent.region_name, "assume_role()")
    for label, text in (
        ("external_id", external_id),
        ("source_identity", source_identity),
        ("mfa_serial", mfa_serial),
    ):
        _check_optional_string(label, text)
    if mfa_token is not None and not callable(mfa_token):
        raise TypeError(
            f"mfa_token must be a callable returning a code, got {type(mfa_token).__name__}"
        )
    if (mfa_serial is None) != (mfa_token is None):
        raise ValueError("mfa_serial and mfa_token go together: pass both or neither")

    extra: dict[str, Any] = {"RoleSessionName": name}
    if seconds is not None:
        extra["DurationSeconds"] = seconds
    if external_id is not None:
        extra["ExternalId"] = external_id
    if source_identity is not None:
        extra["SourceIdentity"] = source_identity
    if mfa_serial is not None:
        extra["SerialNumber"] = mfa_serial
    if policy_arns is not None:
        if isinstance(policy_arns, str) or not all(isinstance(a, str) for a in policy_arns):
            raise TypeError("policy_arns must be a list of policy ARN strings")
        extra["PolicyArns"] = [{"arn": policy_arn} for policy_arn in policy_arns]
    if tags is not None:
        if not isinstance(tags, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            raise TypeError("tags must be a mapping of strings to strings")
        extra["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]

    source = parent.get_credentials()
    if source is None:
        raise ValueError("assume_role() got a parent session with no credentials")
    parent_inner = _botocore.botocore_session_of(parent)
    assert parent_inner is not None  # a boto3.Session always has one

    def create_client(service_name: str, **kwargs: Any) -> Any:
        return create_nested_client(parent_inner, service_name, region_name=chosen_region, **kwargs)

    def prompter(_prompt: str) -> str:
        assert mfa_token is not None
        code = mfa_token()
        if not isinstance(code, str):
            # botocore's parameter validation would echo the code in its message.
            raise TypeError(f"mfa_token() must return a string, got {describe_value(code)}")
        return code

    fetcher = AssumeRoleCredentialFetcher(
        client_creator=create_client,
        source_credentials=source,
        role_arn=arn,
        extra_args=extra,
        mfa_prompter=prompter,
        cache=_NoCache(),
    )
    deferred = DeferredRefreshableCredentials(fetcher.fetch_credentials, f"assume-role:{arn}")
    # A defaulted session name names the process, not the role: it stays out of
    # the key so that every process shares one entry (as botocore's cache does).
    shared = {
        k: v
        for k, v in extra.items()
        if k != "ExternalId" and not (k == "RoleSessionName" and session_name is None)
    }
    key = make_cache_key(
        "assume-role",
        arn,
        json.dumps(shared, sort_keys=True),
        hashlib.sha256((external_id or "").encode()).hexdigest(),
        chosen_region,
    )
    return _session_serving(
        deferred, chosen_region, checked_policy, checked_reporter, cache, key, like=parent_inner
    )


def web_identity(
    role_arn: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    *,
    session_name: str | None = None,
    duration: float | None = None,
    region: str | None = None,
    policy: RefreshPolicy | None = None,
    reporter: Reporter | None = None,
    cache: SharedCache | None = None,
) -> boto3.Session:
    """A session for ``role_arn`` through a web-identity token (EKS IRSA, GitHub OIDC…).

    ``role_arn``, ``token_file`` and ``session_name`` default to ``AWS_ROLE_ARN``,
    ``AWS_WEB_IDENTITY_TOKEN_FILE`` and ``AWS_ROLE_SESSION_NAME``, as EKS and
    botocore use them. The token file is read
    again on every mint, because Kubernetes rotates it. The STS call is
    unsigned: the token is the only credential.

    Arguments are checked before any network call; a missing token file is a
    ``ValueError`` here, not a failure at the first refresh.
    """
    if role_arn is None and not os.environ.get("AWS_ROLE_ARN"):
        raise ValueError("web_identity() needs role_arn= or AWS_ROLE_ARN")
    arn = _check_role_arn(role_arn if role_arn is not None else os.environ["AWS_ROLE_ARN"])
    path = token_file if token_file is not None else os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
    if not path:
        raise ValueError("web_identity() needs token_file= or AWS_WEB_IDENTITY_TOKEN_FILE")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"web_identity() token file not found: {path}")
    chosen_name = (
        session_name if session_name is not None else os.environ.get("AWS_ROLE_SESSION_NAME")
    )
    name = _check_session_name(chosen_name)
    seconds = _check_duration(duration)
    checked_policy = _check_policy(policy)
    checked_reporter = check_reporter(reporter)
    check_cache(cache)
    sts_session = botocore.session.Session()
    chosen_region = _check_region(
        region, sts_session.get_config_variable("region"), "web_identity()"
    )

    extra: dict[str, Any] = {"RoleSessionName": name}
    if seconds is not None:
        extra["DurationSeconds"] = seconds

    def create_client(service_name: str, **kwargs: Any) -> Any:
        return create_nested_client(sts_session, service_name, region_name=chosen_region, **kwargs)

    fetcher = AssumeRoleWithWebIdentityCredentialFetcher(
        client_creator=create_client,
        web_identity_token_loader=FileWebIdentityTokenLoader(path),
        role_arn=arn,
        extra_args=extra,
        cache=_NoCache(),
    )
    deferred = DeferredRefreshableCredentials(
        fetcher.fetch_credentials, f"assume-role-with-web-identity:{arn}"
    )
    key = make_cache_key("web-identity", arn, chosen_name or "", seconds, chosen_region)
    return _session_serving(deferred, chosen_region, checked_policy, checked_reporter, cache, key)


def from_fetcher(
    fetch: Callable[[], Mapping[str, Any]],
    *,
    policy: RefreshPolicy | None = None,
    reporter: Reporter | None = None,
    cache: SharedCache | None = None,
    cache_key: str | None = None,
) -> boto3.Session:
    """A session whose credentials come from your own ``fetch()``, kept fresh.

    ``fetch()`` returns the mapping botocore's refreshable credentials use:
    ``access_key``, ``secret_key``, ``token``, ``expiry_time`` (an ISO 8601
    string or an aware datetime) and optionally ``account_id``. It runs on the
    background mint thread, once eagerly here and then ahead of each expiry.
    With ``cache``, pass ``cache_key``: a name for what ``fetch`` returns, the
    same in every process that should share it.
    """
    if not callable(fetch):
        raise TypeError(
            f"from_fetcher() needs a callable returning a credentials mapping, "
            f"got {type(fetch).__name__}"
        )
    if inspect.iscoroutinefunction(fetch):
        raise TypeError(
            "from_fetcher() needs a plain function returning a credentials mapping, got a "
            "coroutine function: for aiobotocore clients, use botocreds.AioRefresher("
            "AioDeferredRefreshableCredentials(fetch, method))"
        )
    checked_policy = _check_policy(policy)
    checked_reporter = check_reporter(reporter)
    check_cache(cache, cache_key)
    name = getattr(fetch, "__qualname__", None) or type(fetch).__name__
    deferred = DeferredRefreshableCredentials(fetch, f"fetcher:{name}")
    return _session_serving(deferred, None, checked_policy, checked_reporter, cache, cache_key)
