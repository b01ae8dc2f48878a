"""Real boto3 clients against a local moto server, with a slow, short-lived credential_process.

The source takes DELAY seconds per fetch and issues credentials that live a few
seconds, and the policy is scaled down to match, so several refreshes happen
within one test. moto does not check signatures: the key that signed each
request is read from its ``Authorization`` header in a ``before-send`` handler.

The assertions are structural wherever possible (which thread fetched, which
key signed, how many fetches ran). The only timing bounds are generous ones.
"""

from __future__ import annotations

import math
import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.credentials import Credentials, DeferredRefreshableCredentials

import botocreds

from ._process_creds import MakeProcessProfile, ProcessProfile

pytestmark = pytest.mark.integration

#: Credentials live this long, and the source takes DELAY (plus interpreter start-up) to answer.
LIFETIME = 4.0
DELAY = 0.6
#: Refresh at 40-50 % of the lifetime: a mint lands more than a second before expiry,
#: even on a slow machine, and before the 1 s floor, so the hot path never leaves its lane.
POLICY = botocreds.RefreshPolicy(fraction=0.5, floor=1.0, jitter=0.1, min_interval=0.2)
REQUEST_THREADS = 8
PACE = 0.05  # between two requests of one thread
MINT_THREAD = "botocreds-mint-"
SCHEDULER_THREAD = "botocreds-scheduler"
REQUEST_THREAD = "request_"  # ThreadPoolExecutor names them request_0, request_1, ...
DUMMY_KEY = "AKIAUNUSEDDUMMYKEY00"

#: A boto3 S3 client. Typed as Any so that this file checks with or without boto3-stubs[s3].
S3Client = Any

_in_request = threading.local()
_CREDENTIAL = re.compile(r"Credential=([^/]+)/")


# -- recording ----------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """One request as it left the client."""

    key: str
    thread: str
    at: float  # epoch seconds, taken after signing


class Wire:
    """Records the access key that signed each request of the clients it watches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[Signed] = []

    def watch(self, client: S3Client) -> S3Client:
        client.meta.events.register("before-send", self._before_send)
        return client

    def _before_send(self, request: AWSPreparedRequest, **_: Any) -> None:
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode()
        match = _CREDENTIAL.search(authorization)
        assert match is not None, f"unsigned request: {request.url}"
        signed = Signed(match.group(1), threading.current_thread().name, time.time())
        with self._lock:
            self.requests.append(signed)

    def signing_keys(self) -> set[str]:
        with self._lock:
            return {signed.key for signed in self.requests}

    def since(self, moment: float) -> list[Signed]:
        with self._lock:
            return [signed for signed in self.requests if signed.at >= moment]


@dataclass(frozen=True)
class Fetch:
    """One run of the credential source."""

    thread: str
    in_request: bool  # a request was in flight on the fetching thread


class RecordingFetcher:
    """A botocore fetch function that runs the credential process and notes its thread."""

    def __init__(self, profile: ProcessProfile) -> None:
        self._profile = profile
        self._lock = threading.Lock()
        self.fetches: list[Fetch] = []

    def __call__(self) -> dict[str, Any]:
        fetch = Fetch(threading.current_thread().name, getattr(_in_request, "active", False))
        with self._lock:
            self.fetches.append(fetch)
        return self._profile.fetch()


def signed_key(url: str) -> str:
    """The access key a presigned URL carries (SigV2 or SigV4 query auth)."""
    query = parse_qs(urlsplit(url).query)
    if "AWSAccessKeyId" in query:
        return query["AWSAccessKeyId"][0]
    return query["X-Amz-Credential"][0].split("/")[0]


# -- helpers --------------------------------------------------------------------


def s3_client(endpoint: str, session: boto3.Session | None = None) -> S3Client:
    """An S3 client for the moto endpoint; with no session, it starts on a dummy key."""
    if session is not None:
        return session.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key="unused-dummy-secret",
    )


def new_bucket(client: S3Client) -> str:
    bucket = f"botocreds-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello")
    return bucket


@contextmanager
def in_request() -> Iterator[None]:
    """Mark the current thread as having a request in flight."""
    _in_request.active = True
    try:
        yield
    finally:
        _in_request.active = False


@dataclass(frozen=True)
class Load:
    """What a run of :func:`drive` measured."""

    latencies: list[float]
    elapsed: float


def drive(clients: list[S3Client], bucket: str, seconds: float) -> Load:
    """Send paced ListObjectsV2 requests, one thread per client, for ``seconds``.

    A request that fails fails the test, with its own traceback.
    """
    stop = threading.Event()

    def work(client: S3Client) -> list[float]:
        latencies: list[float] = []
        while not stop.is_set():
            started = time.monotonic()
            with in_request():
                client.list_objects_v2(Bucket=bucket, MaxKeys=1)
            latencies.append(time.monotonic() - started)
            stop.wait(PACE)
        return latencies

    started = time.monotonic()
    with ThreadPoolExecutor(len(clients), thread_name_prefix=REQUEST_THREAD[:-1]) as pool:
        futures = [pool.submit(work, client) for client in clients]
        wait(futures, timeout=seconds, return_when=FIRST_EXCEPTION)
        stop.set()
        latencies = [latency for future in futures for latency in future.result(timeout=60)]
    return Load(latencies, time.monotonic() - started)


def at_once(count: int, request: Callable[[], object]) -> None:
    """Run ``request`` on ``count`` threads released together; re-raise any failure."""
    barrier = threading.Barrier(count)

    def go() -> None:
        barrier.wait(timeout=10)
        request()

    with ThreadPoolExecutor(count, thread_name_prefix=REQUEST_THREAD[:-1]) as pool:
        for future in [pool.submit(go) for _ in range(count)]:
            future.result(timeout=60)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for ``condition``, checking every 20 ms, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        tick.wait(min(0.02, remaining))


def scheduler_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == SCHEDULER_THREAD]


def assert_scheduler_stops(timeout: float = 5.0) -> None:
    for thread in scheduler_threads():
        thread.join(timeout)
    assert not scheduler_threads(), "the botocreds-scheduler thread is still running"


def assert_never_expired(requests: list[Signed], issued: dict[str, float]) -> None:
    """Every request was signed by a key the source issued, before that key expired."""
    assert requests
    for signed in requests:
        assert signed.key in issued, f"{signed.key} was never issued by the source"
        assert signed.at < issued[signed.key], (
            f"{signed.key} signed a request {signed.at - issued[signed.key]:.3f}s after it expired"
        )


# -- tests --------------------------------------------------------------------------


def test_eight_request_threads_never_wait_for_a_slow_short_lived_source(
    moto_endpoint: str, make_process_profile: MakeProcessProfile
) -> None:
    profile = make_process_profile(lifetime=LIFETIME, delay=DELAY)
    fetcher = RecordingFetcher(profile)
    source = DeferredRefreshableCredentials(refresh_using=fetcher, method="test-process")
    wire = Wire()

    events: list[botocreds.RefreshEvent] = []
    refresher = botocreds.Refresher(
        source, policy=POLICY, name="slow-process", reporter=events.append
    )
    # The one fetch allowed on this thread: the eager first mint, in the constructor.
    assert fetcher.fetches == [Fetch(threading.current_thread().name, in_request=False)]
    with refresher:
        client = wire.watch(refresher.attach(s3_client(moto_endpoint)))
        bucket = new_bucket(client)  # also warms the client up: models, connections
        measured_from = time.time()
        load = drive([client] * REQUEST_THREADS, bucket, seconds=3 * LIFETIME)

    requests = wire.since(measured_from)
    threads = {signed.thread for signed in requests}
    assert len(threads) == REQUEST_THREADS
    assert all(name.startswith(REQUEST_THREAD) for name in threads)

    # Structure: every fetch after the eager one ran on a mint thread, and none
    # ran while a request was in flight on the fetching thread.
    background = fetcher.fetches[1:]
    assert len(background) >= 2
    assert all(fetch.thread.startswith(MINT_THREAD) for fetch in background), background
    assert not any(fetch.in_request for fetch in fetcher.fetches)
    # A mint may still have been running at close(): let it land, then count.
    wait_until(lambda: refresher.mint_count == len(fetcher.fetches), 10.0, "the last mint")
    assert profile.calls() == refresher.mint_count

    # The key on the wire changed across lifetimes, and never outlived its expiry.
    issued = profile.issued()
    assert DUMMY_KEY not in wire.signing_keys()
    assert len({signed.key for signed in requests}) >= 3
    assert_never_expired(wire.since(0.0), issued)

    # No request waited for a fetch. A request waits only when it finds its
    # credentials expired, and every such wait is reported as RequestPathMint.
    # (How long requests take is the benchmark's to show, not a bound to assert
    # on a busy machine.)
    assert len(load.latencies) >= REQUEST_THREADS * 10
    assert not [event for event in events if isinstance(event, botocreds.RequestPathMint)]
    # ...and the reporter was listening: it saw every background mint succeed.
    wait_until(
        lambda: (
            sum(isinstance(event, botocreds.RefreshSucceeded) for event in events)
            >= len(background)
        ),
        10.0,
        "the reporter's RefreshSucceeded events",
    )


def test_ten_clients_of_a_wrapped_session_share_about_one_fetch_per_lifetime(
    moto_endpoint: str, make_process_profile: MakeProcessProfile
) -> None:
    lifetime, delay = 5.0, 0.4
    # Closer to the defaults: one refresh at 65-75 % of each lifetime.
    policy = replace(POLICY, fraction=0.75)
    profile = make_process_profile(lifetime=lifetime, delay=delay)
    plain = boto3.Session(profile_name=profile.name)

    session = botocreds.wrap(plain, policy=policy)
    assert session is plain
    # One run to resolve the profile; botocreds adopts that set rather than fetch again.
    assert profile.calls() == 1
    background = session.get_credentials()
    assert isinstance(background, botocreds.BackgroundCredentials)
    assert session.get_credentials() is background

    wire = Wire()
    clients = [wire.watch(s3_client(moto_endpoint, session)) for _ in range(10)]
    # Every client signs with the one background object (attach() shares, owns nothing).
    assert all(botocreds.attach(client).credentials is background for client in clients)
    bucket = new_bucket(clients[0])
    load = drive(clients, bucket, seconds=2 * lifetime)

    runs = profile.calls()
    # Mints are at least (fraction - jitter) of a lifetime apart. Ten clients
    # refreshing on their own would need ten fetches before anything else.
    shortest_cycle = (policy.fraction - policy.jitter) * (lifetime - 0.5)
    assert 2 <= runs <= 1 + math.ceil(load.elapsed / shortest_cycle)
    assert runs < len(clients)

    issued = profile.issued()
    first_key = min(issued)  # the one that resolved the profile: served until its refresh
    assert first_key in wire.signing_keys()
    assert len(wire.signing_keys()) >= 2
    assert_never_expired(wire.since(0.0), issued)


def test_attach_shares_one_refresher_between_clients_of_one_session(
    moto_endpoint: str, make_process_profile: MakeProcessProfile
) -> None:
    # Long enough that no refresh happens during the test.
    profile = make_process_profile(lifetime=30.0, delay=0.3)
    session = boto3.Session(profile_name=profile.name)
    wire = Wire()
    first = wire.watch(s3_client(moto_endpoint, session))
    second = wire.watch(s3_client(moto_endpoint, session))

    with botocreds.attach(first, policy=POLICY) as handle:
        other = botocreds.attach(second, policy=POLICY)
        assert handle.refresher is other.refresher
        assert handle.credentials is other.credentials
        assert profile.calls() == 1  # resolving the profile; its set is adopted

        bucket = new_bucket(first)
        second.list_objects_v2(Bucket=bucket)
        assert wire.signing_keys() == {handle.credentials.access_key}

        other.close()
        assert not other.refresher.closed, "the first attachment still uses it"
        assert scheduler_threads()
    assert handle.refresher.closed
    assert_scheduler_stops()

    # Detached, the client is back on botocore's own refresh, which fetches on the
    # request thread whenever less than 15 minutes are left.
    before = profile.calls()
    first.list_objects_v2(Bucket=bucket)
    assert profile.calls() > before


def test_presigned_urls_use_the_current_key(
    moto_endpoint: str, process_profile: ProcessProfile
) -> None:
    profile = process_profile
    factory_threads: list[str] = []

    def factory() -> Credentials | None:
        factory_threads.append(threading.current_thread().name)
        return boto3.Session(profile_name=profile.name).get_credentials()

    client = s3_client(moto_endpoint)
    bucket = new_bucket(client)  # signed with the dummy key: moto does not mind
    params = {"Bucket": bucket, "Key": "hello.txt"}

    with botocreds.Swapper(factory, policy=POLICY) as swapper:
        swapper.attach(client)
        url = client.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
        first = signed_key(url)
        assert first == swapper.credentials.access_key
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"hello"

        wait_until(lambda: swapper.mint_count >= 2, 3 * profile.lifetime, "a refresh")
        url = client.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
        second = signed_key(url)
        assert second != first
        assert second == swapper.credentials.access_key
        assert time.time() < profile.issued()[second]

    assert factory_threads[0] == threading.current_thread().name  # the eager first mint
    assert all(name.startswith(MINT_THREAD) for name in factory_threads[1:])


def test_after_shutdown_the_scheduler_is_gone_and_clients_mint_on_demand(
    moto_endpoint: str, make_process_profile: MakeProcessProfile
) -> None:
    profile = make_process_profile(lifetime=3.0, delay=0.3)
    session = boto3.Session(profile_name=profile.name)
    wire = Wire()
    client = wire.watch(s3_client(moto_endpoint, session))
    bucket = new_bucket(client)  # before attach(), so no background mint can start meanwhile

    handle = botocreds.attach(client, policy=POLICY)
    assert scheduler_threads()
    botocreds.shutdown()
    assert handle.refresher.closed
    assert_scheduler_stops()

    before = profile.calls()
    old_key = handle.credentials.access_key
    threading.Event().wait(max(0.0, profile.issued()[old_key] - time.time()) + 0.1)
    assert time.time() > profile.issued()[old_key]

    # Eight threads find the credentials expired at once: one mint serves them all.
    after_expiry = time.time()
    at_once(REQUEST_THREADS, lambda: client.list_objects_v2(Bucket=bucket))

    assert profile.calls() == before + 1
    requests = wire.since(after_expiry)
    assert len(requests) == REQUEST_THREADS
    (new_key,) = {signed.key for signed in requests}
    assert new_key != old_key
    assert_never_expired(wire.since(0.0), profile.issued())
    assert not scheduler_threads(), "a closed refresher does not restart the scheduler"
    handle.close()
