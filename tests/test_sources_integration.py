"""The one-line credential sources, end to end: assume-role chains, web identity, MFA,
your own fetch function, and container credentials through ``wrap()``.

Every STS call goes to a local moto server through ``AWS_ENDPOINT_URL_STS`` (the
STS clients are made inside botocreds, by botocore, so the service-specific
endpoint variable is the way in). Credentials live LIFETIME seconds and the
policy is scaled to match, so each test sees several refreshes. What was sent is
read in ``before-send`` handlers: moto does not check signatures, so the key
that signed a request is taken from its ``Authorization`` header.

Assertions are structural (which key signed what, which thread minted, how many
fetches ran); the only timing bounds are generous ones.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.config import Config
from botocore.utils import create_nested_client

import botocreds
import botocreds._sts

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
ROLE_A = f"arn:aws:iam::{ACCOUNT}:role/hop-a"
ROLE_B = f"arn:aws:iam::{ACCOUNT}:role/hop-b"
ROLE_WEB = f"arn:aws:iam::{ACCOUNT}:role/web"
ROLE_MFA = f"arn:aws:iam::{ACCOUNT}:role/with-mfa"
MFA_SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/user"
DUMMY_KEY = "AKIAUNUSEDDUMMYKEY00"
DUMMY_SECRET = "dummy-base-secret-never-shown"
#: Seconds the minted credentials live (DurationSeconds), and the policy scaled to it:
#: a refresh every min(0.8 * LIFETIME, LIFETIME - floor) = 3 s.
LIFETIME = 4
POLICY = botocreds.RefreshPolicy(floor=1.0, min_interval=0.2, jitter=0.0)
#: The longest any wait here lasts; reached only when something is broken.
WAIT = 30.0
PACE = 0.2  # between two requests of a polling loop
MINT_THREAD = "botocreds-mint"
NO_VALIDATION = Config(parameter_validation=False)

_CREDENTIAL = re.compile(r"Credential=([^/,]+)/([^/]+)/([^/]+)/")

#: boto3 clients. Typed as Any so that this file checks with or without boto3-stubs.
Client = Any


# -- reading requests -----------------------------------------------------------
def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def signed_with(request: AWSPreparedRequest) -> str | None:
    """The access key in the request's SigV4 ``Authorization`` header; None if unsigned."""
    found = _CREDENTIAL.search(_text(request.headers.get("Authorization")))
    return None if found is None else found.group(1)


def signing_region(request: AWSPreparedRequest) -> str | None:
    """The region of the request's SigV4 credential scope."""
    found = _CREDENTIAL.search(_text(request.headers.get("Authorization")))
    return None if found is None else found.group(3)


def form_of(request: AWSPreparedRequest) -> dict[str, str]:
    """The parameters of a query-protocol (STS) request body."""
    body = request.body
    text = body.decode() if isinstance(body, bytes) else str(body or "")
    return {name: values[0] for name, values in parse_qs(text).items()}


@dataclass(frozen=True)
class StsCall:
    """One STS request as it left botocore."""

    action: str
    form: dict[str, str]
    signed_with: str | None
    authorized: bool  # whether it carried an Authorization header at all
    url: str
    thread: str
    #: For a hop-2 AssumeRole: hop 1's published access key when the request was sent.
    parent_key: str | None = None


class StsLog:
    """Records STS requests (``before-send``) and the keys STS answered (``after-call``)."""

    def __init__(self, parent_key: Callable[[], str] | None = None) -> None:
        self._parent_key = parent_key
        self._lock = threading.Lock()
        self._calls: list[StsCall] = []
        self._minted: list[str] = []

    def before_send(self, request: AWSPreparedRequest, **_: Any) -> None:
        form = form_of(request)
        call = StsCall(
            action=form.get("Action", ""),
            form=form,
            signed_with=signed_with(request),
            authorized="Authorization" in request.headers,
            url=request.url,
            thread=threading.current_thread().name,
            parent_key=None if self._parent_key is None else self._parent_key(),
        )
        with self._lock:
            self._calls.append(call)

    def after_call(self, parsed: dict[str, Any], **_: Any) -> None:
        credentials = parsed.get("Credentials")
        if credentials:
            with self._lock:
                self._minted.append(credentials["AccessKeyId"])

    def watch(self, events: Any, operation: str) -> None:
        events.register(f"before-send.sts.{operation}", self.before_send)
        events.register(f"after-call.sts.{operation}", self.after_call)

    @property
    def calls(self) -> list[StsCall]:
        with self._lock:
            return list(self._calls)

    @property
    def minted(self) -> list[str]:
        """The access keys STS issued, in the order the answers arrived."""
        with self._lock:
            return list(self._minted)


class KeyLog:
    """The access key of every request a client sends (a ``before-send`` handler)."""

    def __init__(self, client: Client) -> None:
        self._lock = threading.Lock()
        self._keys: list[str | None] = []
        client.meta.events.register("before-send", self._record)

    def _record(self, request: AWSPreparedRequest, **_: Any) -> None:
        with self._lock:
            self._keys.append(signed_with(request))

    @property
    def keys(self) -> list[str | None]:
        with self._lock:
            return list(self._keys)

    def distinct(self) -> list[str | None]:
        """The keys in the order first seen."""
        return list(dict.fromkeys(self.keys))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def poll(
    request: Callable[[], object], done: Callable[[], bool], what: str, timeout: float = WAIT
) -> int:
    """Call ``request`` every PACE seconds until ``done()``; return how many calls ran."""
    deadline = time.monotonic() + timeout
    count = 0
    while True:
        request()
        count += 1
        if done():
            return count
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(PACE)


def expected_session_name() -> str:
    """``botocreds-<host>-<pid>``, computed here independently of botocreds."""
    host = re.sub(r"[^\w+=,.@-]", "-", socket.gethostname()) or "host"
    suffix = f"-{os.getpid()}"
    return ("botocreds-" + host)[: 64 - len(suffix)] + suffix


def base_session(region: str | None = "us-east-1", *, validate: bool = False) -> boto3.Session:
    """A session with dummy static keys; client-side validation off for 4 s durations."""
    session = boto3.Session(
        aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_SECRET, region_name=region
    )
    if not validate:
        session._session.set_default_client_config(NO_VALIDATION)
    return session


def background_of(session: boto3.Session) -> botocreds.BackgroundCredentials:
    credentials = session.get_credentials()
    assert isinstance(credentials, botocreds.BackgroundCredentials), type(credentials)
    return credentials


def published_key(credentials: botocreds.BackgroundCredentials) -> str:
    """The access key a refresher has published, read without any side effect."""
    key = credentials._snapshot.frozen.access_key
    assert key is not None
    return key


@pytest.fixture
def short_lived(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    """STS calls go to moto, and botocreds accepts durations of a few seconds."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    monkeypatch.setattr(botocreds._sts, "MIN_DURATION", 1)
    return moto_endpoint


# -- 1. a two-hop assume-role chain ---------------------------------------------
def test_a_two_hop_chain_refreshes_through_the_refreshed_parent(short_lived: str) -> None:
    base = base_session()
    hop1_calls = StsLog()  # base -> role A, through clients made from the base session
    hop1_calls.watch(base.events, "AssumeRole")
    hop1 = botocreds.assume_role(base, ROLE_A, duration=LIFETIME, region="us-east-1", policy=POLICY)
    hop1_credentials = background_of(hop1)

    # hop 1 -> role B: made from hop 1's session, so recorded on hop 1's events,
    # each with the key hop 1 had published at the moment of sending.
    hop2_calls = StsLog(parent_key=lambda: published_key(hop1_credentials))
    hop2_calls.watch(hop1.events, "AssumeRole")
    hop2 = botocreds.assume_role(hop1, ROLE_B, duration=LIFETIME, region="us-east-1", policy=POLICY)
    hop2_credentials = background_of(hop2)

    # Each session returned by assume_role copies its parent's default client config,
    # so the chain inherits "no client-side validation" (else DurationSeconds=4 fails).
    for hop in (hop1, hop2):
        config = hop._session.get_default_client_config()
        assert getattr(config, "parameter_validation", None) is False, config

    sts = hop2.client("sts")
    s3 = hop2.client("s3", endpoint_url=short_lived)
    sts_keys, s3_keys = KeyLog(sts), KeyLog(s3)
    arns: list[str] = []

    def request() -> None:
        arns.append(sts.get_caller_identity()["Arn"])
        s3.list_buckets()

    # Four mints of each hop: the eager one and three refreshes, i.e. three lifetimes.
    poll(
        request,
        lambda: (
            len(hop1_calls.minted) >= 4
            and len(hop2_calls.minted) >= 4
            and len(set(sts_keys.keys)) >= 3
        ),
        "three refreshes of both hops",
    )

    name = expected_session_name()
    assert re.fullmatch(rf"botocreds-.+-{os.getpid()}", name)
    # Requests made with hop 2's session are role B, under the stable session name.
    assert set(arns) == {f"arn:aws:sts::{ACCOUNT}:assumed-role/hop-b/{name}"}, set(arns)
    distinct = sts_keys.distinct()
    assert len(distinct) >= 3, distinct
    assert set(distinct) <= set(hop2_calls.minted), "signed only with keys minted for role B"
    assert len(set(s3_keys.keys)) >= 2 and set(s3_keys.keys) <= set(hop2_calls.minted)
    assert published_key(hop2_credentials) in hop2_calls.minted

    hop1_log, hop2_log = hop1_calls.calls, hop2_calls.calls
    hop1_minted = hop1_calls.minted
    for calls, role in ((hop1_log, ROLE_A), (hop2_log, ROLE_B)):
        assert [c.form["RoleArn"] for c in calls] == [role] * len(calls)
        assert {c.form["RoleSessionName"] for c in calls} == {name}, "one stable session name"
        assert {c.form["DurationSeconds"] for c in calls} == {str(LIFETIME)}
        assert calls[0].thread == threading.current_thread().name, "the eager mint"
        assert all(c.thread.startswith(MINT_THREAD) for c in calls[1:]), [c.thread for c in calls]
    assert {c.signed_with for c in hop1_log} == {DUMMY_KEY}, "hop 1 signs with the base keys"

    # Every hop-2 mint signed with hop 1's then-current key: the one published when
    # the request left, or the one just before it (hop 1 may publish while hop 2's
    # STS client is being built, after it read hop 1's credentials).
    for call in hop2_log:
        assert call.parent_key is not None and call.signed_with is not None
        assert call.parent_key in hop1_minted
        current = hop1_minted.index(call.parent_key)
        allowed = set(hop1_minted[max(0, current - 1) : current + 1])
        assert call.signed_with in allowed, (call.signed_with, call.parent_key, hop1_minted)
    hop1_keys_used = {c.signed_with for c in hop2_log}
    assert len(hop1_keys_used) >= 2, "the refreshed parent flowed through to hop 2"


# -- 2. web identity ------------------------------------------------------------
@pytest.fixture
def sts_clients(monkeypatch: pytest.MonkeyPatch) -> StsLog:
    """Record every request of each STS client botocreds creates.

    ``web_identity`` builds its STS client from a botocore session of its own, out
    of reach of the test, so the client factory botocreds calls is wrapped: each
    client gets a ``before-send`` recorder, and client-side validation off (the
    4 s durations are below STS's real minimum).
    """
    log = StsLog()
    assert botocreds._sts.__dict__["create_nested_client"] is create_nested_client

    def creating(session: botocore.session.Session, service_name: str, **kwargs: Any) -> Any:
        config = kwargs.get("config")
        kwargs["config"] = NO_VALIDATION if config is None else config.merge(NO_VALIDATION)
        client = create_nested_client(session, service_name, **kwargs)
        client.meta.events.register("before-send", log.before_send)
        client.meta.events.register("after-call", log.after_call)
        return client

    monkeypatch.setattr("botocreds._sts.create_nested_client", creating)
    return log


def has_calls(log: StsLog, count: int) -> bool:
    return len(log.calls) >= count


def write_token(path: Path, token: str) -> None:
    """Replace the token file atomically, as the kubelet does."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(token)
    os.replace(staged, path)


def test_web_identity_reads_the_rotated_token_on_every_mint_and_never_signs(
    short_lived: str, sts_clients: StsLog, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    write_token(token_file, "token-1")
    session = botocreds.web_identity(
        ROLE_WEB, token_file, duration=LIFETIME, region="us-east-1", policy=POLICY
    )
    sts = session.client("sts")
    assert len(sts_clients.calls) == 1
    assert sts.get_caller_identity()["Arn"].startswith(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/web/botocreds-"
    )

    # Rotate the token after each mint; the next mint must send the new one.
    for serial in (2, 3):
        write_token(token_file, f"token-{serial}")
        wait_until(partial(has_calls, sts_clients, serial), f"mint {serial}")

    calls = sts_clients.calls[:3]
    assert [c.form["WebIdentityToken"] for c in calls] == ["token-1", "token-2", "token-3"]
    assert {c.action for c in calls} == {"AssumeRoleWithWebIdentity"}
    assert {c.form["RoleArn"] for c in calls} == {ROLE_WEB}
    assert {c.form["RoleSessionName"] for c in calls} == {expected_session_name()}
    assert not any(c.authorized for c in calls), "the token is the only credential"
    assert calls[0].thread == threading.current_thread().name
    assert all(c.thread.startswith(MINT_THREAD) for c in calls[1:]), [c.thread for c in calls]
    assert {c.url for c in calls} == {short_lived + "/"}

    keys = KeyLog(sts)
    sts.get_caller_identity()
    assert keys.keys[0] in sts_clients.minted[1:], "signed with a refreshed web-identity set"


def test_web_identity_defaults_to_the_eks_environment_variables(
    short_lived: str, sts_clients: StsLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "eks-token"
    write_token(token_file, "eks-token-1")
    monkeypatch.setenv("AWS_ROLE_ARN", f"arn:aws:iam::{ACCOUNT}:role/from-env")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    session = botocreds.web_identity()

    [call] = sts_clients.calls
    assert call.action == "AssumeRoleWithWebIdentity"
    assert call.form["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/from-env"
    assert call.form["WebIdentityToken"] == "eks-token-1"
    assert "DurationSeconds" not in call.form, "STS's own default duration"
    assert not call.authorized
    assert session.region_name == "us-east-1"
    arn = session.client("sts").get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/from-env/{expected_session_name()}"


# -- 3. MFA -----------------------------------------------------------------------
class MfaCodes:
    """An MFA code source: a new six-digit code per call, recording the calling thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.threads: list[str] = []
        self.codes: list[str] = []

    def __call__(self) -> str:
        with self._lock:
            self.threads.append(threading.current_thread().name)
            code = f"{100000 + len(self.codes):06d}"
            self.codes.append(code)
            return code


def test_mfa_codes_come_from_the_callable_on_mint_threads_never_from_a_terminal(
    short_lived: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompted: list[str] = []

    def no_terminal(prompt: str = "", stream: Any = None) -> str:
        prompted.append(prompt)
        raise AssertionError("getpass.getpass must not be called")

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setattr(getpass, "getpass", no_terminal)
    base = base_session()
    calls = StsLog()
    calls.watch(base.events, "AssumeRole")
    codes = MfaCodes()

    session = botocreds.assume_role(
        base,
        ROLE_MFA,
        mfa_serial=MFA_SERIAL,
        mfa_token=codes,
        duration=LIFETIME,
        region="us-east-1",
        policy=POLICY,
    )
    assert codes.threads == [threading.current_thread().name], "the eager mint, on this thread"
    wait_until(lambda: len(calls.minted) >= 2, "a background refresh")
    session.client("sts").get_caller_identity()

    log = calls.calls
    assert len(codes.codes) == len(log), "one code per mint"
    assert [c.form["TokenCode"] for c in log] == codes.codes[: len(log)]
    assert {c.form["SerialNumber"] for c in log} == {MFA_SERIAL}
    assert all(t.startswith(MINT_THREAD) for t in codes.threads[1:]), codes.threads
    assert prompted == []


# -- 4. regional endpoints, no network -------------------------------------------
class LocalSts:
    """Answers AssumeRole from a ``before-send`` handler: records the URL, sends nothing."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.regions: list[str | None] = []

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        self.urls.append(request.url)
        self.regions.append(signing_region(request))
        expiration = datetime.now(timezone.utc) + timedelta(hours=1)
        body = f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIALOCALSTS{len(self.urls):08d}</AccessKeyId>
      <SecretAccessKey>local-secret</SecretAccessKey>
      <SessionToken>local-token</SessionToken>
      <Expiration>{expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROALOCAL:botocreds</AssumedRoleId>
      <Arn>arn:aws:sts::{ACCOUNT}:assumed-role/hop-a/botocreds</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""
        headers = HTTPHeaders()
        headers["content-type"] = "text/xml"
        return AWSResponse(request.url, 200, headers, _Raw(body.encode()))


class _Raw:
    """The raw stream of a canned response."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._payload

    def read(self, *_: Any) -> bytes:
        payload, self._payload = self._payload, b""
        return payload


@pytest.mark.parametrize(
    ("parent_region", "region", "legacy", "url", "scope"),
    [
        ("us-west-2", None, False, "https://sts.us-west-2.amazonaws.com/", "us-west-2"),
        ("us-west-2", "us-west-2", False, "https://sts.us-west-2.amazonaws.com/", "us-west-2"),
        (
            "us-east-1",
            "eu-central-1",
            False,
            "https://sts.eu-central-1.amazonaws.com/",
            "eu-central-1",
        ),
        (None, "eu-central-1", False, "https://sts.eu-central-1.amazonaws.com/", "eu-central-1"),
        ("us-west-2", None, True, "https://sts.amazonaws.com/", "us-east-1"),
        ("us-east-1", "us-west-2", True, "https://sts.amazonaws.com/", "us-east-1"),
    ],
    ids=[
        "parent-us-west-2",
        "region-us-west-2",
        "region-eu-central-1-over-parent",
        "region-eu-central-1-no-parent-region",
        "legacy-parent-us-west-2",
        "legacy-region-us-west-2",
    ],
)
def test_sts_is_called_at_the_regional_endpoint_unless_the_user_says_legacy(
    monkeypatch: pytest.MonkeyPatch,
    parent_region: str | None,
    region: str | None,
    legacy: bool,
    url: str,
    scope: str,
) -> None:
    assert "AWS_ENDPOINT_URL_STS" not in os.environ
    if legacy:
        monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
    parent = base_session(parent_region, validate=True)
    sts = LocalSts()
    events: Any = parent.events  # the stubs expect handlers that return None
    events.register("before-send.sts.AssumeRole", sts)

    session = botocreds.assume_role(parent, ROLE_A, region=region)

    assert sts.urls == [url]
    assert sts.regions == [scope]
    assert session.region_name == (region or parent_region)
    assert background_of(session).access_key == "ASIALOCALSTS00000001"


def test_processes_with_default_session_names_share_one_cache_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The default session name names the process; it must not split the shared entry."""
    parent = base_session("us-east-1", validate=True)
    sts = LocalSts()
    events: Any = parent.events
    events.register("before-send.sts.AssumeRole", sts)
    cache = botocreds.FileCache(tmp_path / "cache")
    first = botocreds.assume_role(parent, ROLE_A, cache=cache)
    monkeypatch.setattr(os, "getpid", lambda: 424242)  # another worker process
    second = botocreds.assume_role(parent, ROLE_A, cache=cache)
    assert len(sts.urls) == 1, "the second process adopted the first one's entry"
    assert background_of(second).access_key == background_of(first).access_key
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1


def test_cache_arguments_are_checked_before_the_parent_is_asked_for_credentials() -> None:
    parent = base_session("us-east-1", validate=True)
    asked: list[str] = []
    real = parent.get_credentials

    def counting() -> Any:
        asked.append("asked")
        return real()

    parent.get_credentials = counting  # type: ignore[method-assign]
    with pytest.raises(TypeError, match="FileCache or botocreds"):
        botocreds.assume_role(parent, ROLE_A, cache="redis://localhost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only makes sense with cache="):
        botocreds.from_fetcher(lambda: {}, cache_key="x")
    assert asked == []


# -- 5. your own fetch function --------------------------------------------------
class MotoFetch:
    """A fetch function minting LIFETIME-second credentials from moto's STS."""

    def __init__(self, endpoint: str) -> None:
        self._sts = boto3.client(
            "sts",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_SECRET,
            config=NO_VALIDATION,
        )
        self._lock = threading.Lock()
        self.threads: list[str] = []
        self.keys: list[str] = []

    def __call__(self) -> dict[str, Any]:
        answer = self._sts.assume_role(
            RoleArn=ROLE_A, RoleSessionName="from-fetcher", DurationSeconds=LIFETIME
        )["Credentials"]
        with self._lock:
            self.threads.append(threading.current_thread().name)
            self.keys.append(answer["AccessKeyId"])
        return {
            "access_key": answer["AccessKeyId"],
            "secret_key": answer["SecretAccessKey"],
            "token": answer["SessionToken"],
            "expiry_time": answer["Expiration"],  # an aware datetime
        }


def test_from_fetcher_serves_a_fresh_set_every_lifetime(moto_endpoint: str) -> None:
    fetch = MotoFetch(moto_endpoint)
    session = botocreds.from_fetcher(fetch, policy=POLICY)
    assert fetch.threads == [threading.current_thread().name], "one eager fetch, on this thread"
    credentials = background_of(session)
    assert credentials.method.startswith("fetcher:")

    s3 = session.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    keys = KeyLog(s3)
    bucket = f"botocreds-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)

    def request() -> None:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"

    poll(request, lambda: len(set(keys.keys)) >= 3, "three sets across lifetimes")

    assert set(keys.keys) <= set(fetch.keys), "signed only with fetched keys"
    assert len(fetch.keys) <= len(keys.distinct()) + 2, "about one fetch per lifetime"
    assert all(t.startswith(MINT_THREAD) for t in fetch.threads[1:]), fetch.threads


# -- 6. container credentials through wrap() -------------------------------------
CONTAINER_LIFETIME = 3.0
CONTAINER_TOKEN = "container-auth-token"


class ContainerEndpoint(ThreadingHTTPServer):
    """The ECS/EKS-Pod-Identity container credentials endpoint, counting requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ContainerHandler)
        self.lock = threading.Lock()
        self.served: list[tuple[float, str]] = []  # (monotonic time, access key)
        self.authorizations: set[str | None] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/creds"

    def answer(self, authorization: str | None) -> bytes:
        expiration = datetime.now(timezone.utc) + timedelta(seconds=CONTAINER_LIFETIME)
        with self.lock:
            key = f"ASIACONTAINER{len(self.served) + 1:07d}"
            self.served.append((time.monotonic(), key))
            self.authorizations.add(authorization)
        return json.dumps(
            {
                "AccessKeyId": key,
                "SecretAccessKey": f"secret-{key}",
                "Token": f"token-{key}",
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
        ).encode()

    def keys(self) -> list[str]:
        with self.lock:
            return [key for _, key in self.served]

    def served_since(self, start: float) -> int:
        with self.lock:
            return sum(1 for when, _ in self.served if when >= start)


class _ContainerHandler(BaseHTTPRequestHandler):
    server: ContainerEndpoint

    def do_GET(self) -> None:  # the name http.server calls
        if self.path != "/creds":
            self.send_error(404)
            return
        body = self.server.answer(self.headers.get("Authorization"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def container_endpoint() -> Iterator[ContainerEndpoint]:
    server = ContainerEndpoint()
    thread = threading.Thread(target=server.serve_forever, name="container-endpoint", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        # Stop refreshing before the endpoint goes away, and let a mint under way
        # finish, so that no refresh fails against a closed port after the test.
        botocreds.shutdown()
        for mint in threading.enumerate():
            if mint.name.startswith(MINT_THREAD):
                mint.join(5.0)
        server.shutdown()
        server.server_close()
        thread.join(5.0)


def test_container_credentials_through_wrap_are_fetched_once_per_refresh(
    moto_endpoint: str, container_endpoint: ContainerEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", container_endpoint.url)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN)

    session = botocreds.wrap(boto3.Session(region_name="us-east-1"), policy=POLICY)
    credentials = session.get_credentials()
    assert isinstance(credentials, botocreds.BackgroundCredentials)
    assert credentials.method == "container-role"
    # botocore's provider fetches once to resolve, botocreds once for its eager mint.
    at_start = len(container_endpoint.keys())
    assert 1 <= at_start <= 2, container_endpoint.keys()

    s3 = session.client("s3", endpoint_url=moto_endpoint)
    keys = KeyLog(s3)
    start = time.monotonic()
    window = 3 * CONTAINER_LIFETIME
    requests = poll(
        s3.list_buckets,
        lambda: time.monotonic() - start >= window,
        "three lifetimes",
        timeout=window + WAIT,
    )
    elapsed = time.monotonic() - start

    fetched = container_endpoint.served_since(start)
    period = min(POLICY.fraction * CONTAINER_LIFETIME, CONTAINER_LIFETIME - POLICY.floor)
    assert 2 <= fetched <= elapsed / period + 2, (fetched, elapsed)
    assert requests >= 3 * fetched, "requests never fetch: the endpoint is called per refresh"
    distinct = keys.distinct()
    assert len(distinct) >= 3, distinct
    assert set(distinct) <= set(container_endpoint.keys())
    assert container_endpoint.authorizations == {CONTAINER_TOKEN}


# -- 7. bad arguments fail before any network I/O --------------------------------
@dataclass(frozen=True)
class Setting:
    """What each bad-argument case may use."""

    parent: boto3.Session
    token_file: Path
    tmp: Path


@dataclass(frozen=True)
class Bad:
    call: Callable[[Setting], object]
    error: type[Exception]
    message: str


def _not_a_policy() -> Any:
    return {"floor": 1.0}


BAD_ARGUMENTS: dict[str, Bad] = {
    "malformed role arn": Bad(
        lambda s: botocreds.assume_role(s.parent, "arn:aws:iam::1234:role/short-account"),
        ValueError,
        "role_arn must look like arn:aws:iam::123456789012:role/name",
    ),
    "user arn, not a role": Bad(
        lambda s: botocreds.assume_role(s.parent, f"arn:aws:iam::{ACCOUNT}:user/bob"),
        ValueError,
        "role_arn must look like",
    ),
    "role arn not a string": Bad(
        lambda s: botocreds.assume_role(s.parent, 123),  # type: ignore[arg-type]
        TypeError,
        "role_arn must be a string",
    ),
    "duration 899": Bad(
        lambda s: botocreds.assume_role(s.parent, ROLE_A, duration=899),
        ValueError,
        "duration must be between 900 and 43200 seconds",
    ),
    "duration 43201": Bad(
        lambda s: botocreds.assume_role(s.parent, ROLE_A, duration=43201),
        ValueError,
        "duration must be between 900 and 43200 seconds",
    ),
    "duration not a number": Bad(
        lambda s: botocreds.assume_role(s.parent, ROLE_A, duration="3600"),  # type: ignore[arg-type]
        TypeError,
        "duration must be a number of seconds",
    ),
    "web identity duration 899": Bad(
        lambda s: botocreds.web_identity(ROLE_WEB, s.token_file, duration=899),
        ValueError,
        "duration must be between 900 and 43200 seconds",
    ),
    "missing token file": Bad(
        lambda s: botocreds.web_identity(ROLE_WEB, s.tmp / "no-such-token"),
        ValueError,
        "token file not found",
    ),
    "web identity without a role": Bad(
        lambda s: botocreds.web_identity(token_file=s.token_file),
        ValueError,
        "needs role_arn= or AWS_ROLE_ARN",
    ),
    "web identity without a token file": Bad(
        lambda s: botocreds.web_identity(ROLE_WEB),
        ValueError,
        "needs token_file= or AWS_WEB_IDENTITY_TOKEN_FILE",
    ),
    "web identity malformed role arn": Bad(
        lambda s: botocreds.web_identity("role/web", s.token_file),
        ValueError,
        "role_arn must look like",
    ),
    "mfa_serial without mfa_token": Bad(
        lambda s: botocreds.assume_role(s.parent, ROLE_A, mfa_serial=MFA_SERIAL),
        ValueError,
        "mfa_serial and mfa_token go together",
    ),
    "mfa_token without mfa_serial": Bad(
        lambda s: botocreds.assume_role(s.parent, ROLE_A, mfa_token=lambda: "123456"),
        ValueError,
        "mfa_serial and mfa_token go together",
    ),
    "non-callable mfa_token": Bad(
        lambda s: botocreds.assume_role(
            s.parent,
            ROLE_A,
            mfa_serial=MFA_SERIAL,
            mfa_token="123456",  # type: ignore[arg-type]
        ),
        TypeError,
        "mfa_token must be a callable",
    ),
    "botocore session as parent": Bad(
        lambda s: botocreds.assume_role(botocore.session.Session(), ROLE_A),  # type: ignore[arg-type]
        TypeError,
        "assume_role() needs a boto3.Session parent, got Session",
    ),
    "None as parent": Bad(
        lambda s: botocreds.assume_role(None, ROLE_A),  # type: ignore[arg-type]
        TypeError,
        "assume_role() needs a boto3.Session parent, got NoneType",
    ),
    "parent with no credentials": Bad(
        lambda s: botocreds.assume_role(boto3.Session(region_name="us-east-1"), ROLE_A),
        ValueError,
        "assume_role() got a parent session with no credentials",
    ),
    "no region anywhere": Bad(
        lambda s: botocreds.assume_role(base_session(None), ROLE_A),
        ValueError,
        "assume_role() needs a region",
    ),
    "web identity with no region anywhere": Bad(
        lambda s: botocreds.web_identity(ROLE_WEB, s.token_file),
        ValueError,
        "web_identity() needs a region",
    ),
    "bad session name": Bad(
        lambda s: botocreds.assume_role(s.parent, ROLE_A, session_name="has spaces"),
        ValueError,
        "session_name must be 2 to 64 characters",
    ),
    "policy_arns as one string": Bad(
        lambda s: botocreds.assume_role(
            s.parent, ROLE_A, policy_arns="arn:aws:iam::aws:policy/ReadOnlyAccess"
        ),
        TypeError,
        "policy_arns must be a list of policy ARN strings",
    ),
    "tags with a non-string value": Bad(
        lambda s: botocreds.assume_role(s.parent, ROLE_A, tags={"team": 7}),  # type: ignore[dict-item]
        TypeError,
        "tags must be a mapping of strings to strings",
    ),
    "empty external_id": Bad(
        lambda s: botocreds.assume_role(s.parent, ROLE_A, external_id=""),
        TypeError,
        "external_id must be a non-empty string",
    ),
    "from_fetcher with a non-callable": Bad(
        lambda s: botocreds.from_fetcher({"access_key": "AKIA"}),  # type: ignore[arg-type]
        TypeError,
        "from_fetcher() needs a callable returning a credentials mapping, got dict",
    ),
    "assume_role with a non-RefreshPolicy policy": Bad(
        lambda s: botocreds.assume_role(s.parent, ROLE_A, policy=_not_a_policy()),
        TypeError,
        "policy must be a botocreds.RefreshPolicy, got dict",
    ),
    "web_identity with a non-RefreshPolicy policy": Bad(
        lambda s: botocreds.web_identity(
            ROLE_WEB, s.token_file, region="us-east-1", policy=_not_a_policy()
        ),
        TypeError,
        "policy must be a botocreds.RefreshPolicy, got dict",
    ),
    "from_fetcher with a non-RefreshPolicy policy": Bad(
        lambda s: botocreds.from_fetcher(dict, policy=_not_a_policy()),
        TypeError,
        "policy must be a botocreds.RefreshPolicy, got dict",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_fail_clearly_before_any_network_io(
    case: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An STS endpoint nothing listens on: a call reaching the network would fail
    # differently (CredentialsUnavailable wrapping a connection error) and slowly.
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    clients: list[str] = []
    assert botocreds._sts.__dict__["create_nested_client"] is create_nested_client

    def creating(session: botocore.session.Session, service_name: str, **kwargs: Any) -> Any:
        clients.append(service_name)
        return create_nested_client(session, service_name, **kwargs)

    monkeypatch.setattr("botocreds._sts.create_nested_client", creating)
    token_file = tmp_path / "token"
    token_file.write_text("a-token")
    parent = base_session(validate=True)
    sent: list[str] = []
    parent.events.register("before-send", lambda request, **_: sent.append(request.url))
    bad = BAD_ARGUMENTS[case]

    with pytest.raises(bad.error) as raised:
        bad.call(Setting(parent=parent, token_file=token_file, tmp=tmp_path))

    assert bad.message in str(raised.value), str(raised.value)
    assert type(raised.value) is bad.error, type(raised.value)
    assert clients == [] and sent == [], "failed before any STS client was made"


def test_a_role_that_cannot_be_assumed_fails_at_the_call_with_credentials_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Good arguments, unreachable STS: the eager first mint fails loudly, here."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    parent = base_session(validate=True)

    with pytest.raises(botocreds.CredentialsUnavailable) as raised:
        botocreds.assume_role(parent, ROLE_A, region="us-east-1")

    message = str(raised.value)
    assert ROLE_A in raised.value.source, raised.value.source
    assert "EndpointConnectionError" in message or "Could not connect" in message, message
    assert DUMMY_SECRET not in message


def test_the_no_region_advice_names_a_setting_botocore_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Following the "no region" error's advice must work.

    The message tells the user to set AWS_REGION, but botocore 1.43 reads the
    region from AWS_DEFAULT_REGION (or the profile) only: with AWS_REGION set, the
    same error comes back. Either honouring AWS_REGION or naming
    AWS_DEFAULT_REGION would make the advice true.
    """
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    parent = base_session(None, validate=True)
    sts = LocalSts()
    events: Any = parent.events
    events.register("before-send.sts.AssumeRole", sts)

    try:
        session = botocreds.assume_role(parent, ROLE_A)
    except ValueError as error:
        message = str(error)
        assert "AWS_DEFAULT_REGION" in message, (
            f"the advice names no setting botocore reads: {message}"
        )
    else:
        assert sts.urls == ["https://sts.eu-west-1.amazonaws.com/"]
        assert session.region_name == "eu-west-1"
