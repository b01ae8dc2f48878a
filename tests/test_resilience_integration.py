"""Resilience against a real STS: outages, recovery, an interrupt inside a fetch.

The credential source is a botocore ``RefreshableCredentials`` whose fetch calls
moto's STS ``assume_role`` for credentials that live LIFETIME seconds; the test
can switch it into an outage. Requests are real boto3 S3 calls to the same moto
server. Assertions are structural (counts, which error, what it says); the
timing bounds are generous.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import EndpointConnectionError

from botocreds import BreakerState, CredentialsUnavailable, Refresher, RefreshPolicy

pytestmark = pytest.mark.integration

LIFETIME = 4.0
ROLE_ARN = "arn:aws:iam::123456789012:role/test"
SOURCE = "moto-assume-role"
DUMMY_KEY = "AKIAUNUSEDDUMMYKEY00"
DUMMY_SECRET = "dummy-base-secret-never-shown"
POLICY = RefreshPolicy(
    floor=0.5,
    min_interval=0.1,
    jitter=0.0,
    failure_threshold=3,
    cooldown=2.0,
    wait_timeout=1.0,
    backoff_base=0.1,
    backoff_max=0.5,
)
REQUEST_THREADS = 4
PACE = 0.01  # between two requests of one thread
#: The longest any wait here lasts.
WAIT = 15.0

#: A boto3 S3 client. Typed as Any so that this file checks with or without boto3-stubs[s3].
S3Client = Any


class AssumeRole:
    """A fetch function calling moto's STS, with a switchable outage.

    Records every attempt (with its time), and every secret it ever received.
    ``interrupt_next`` makes the next attempt raise ``KeyboardInterrupt``.
    """

    def __init__(self, endpoint: str) -> None:
        self._sts = boto3.client(
            "sts",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_SECRET,
            config=Config(parameter_validation=False),
        )
        self.lock = threading.Lock()
        self.outage = False
        self.interrupt_next = False
        self.attempts: list[float] = []
        self.secrets: set[str] = {DUMMY_SECRET}
        self.attempted = threading.Condition(self.lock)

    def __call__(self) -> dict[str, Any]:
        with self.lock:
            self.attempts.append(time.monotonic())
            self.attempted.notify_all()
            outage, interrupt = self.outage, self.interrupt_next
            self.interrupt_next = False
        if interrupt:
            raise KeyboardInterrupt
        if outage:
            raise EndpointConnectionError(endpoint_url="https://sts.amazonaws.com/")
        answer = self._sts.assume_role(
            RoleArn=ROLE_ARN, RoleSessionName="botocreds-resilience", DurationSeconds=4
        )["Credentials"]
        with self.lock:
            self.secrets.update({answer["SecretAccessKey"], answer["SessionToken"]})
        return {
            "access_key": answer["AccessKeyId"],
            "secret_key": answer["SecretAccessKey"],
            "token": answer["SessionToken"],
            "expiry_time": answer["Expiration"].isoformat(),
        }

    def count(self) -> int:
        with self.lock:
            return len(self.attempts)

    def attempts_since(self, start: float) -> int:
        with self.lock:
            return sum(1 for when in self.attempts if when >= start)

    def wait_for(self, count: int, timeout: float = WAIT) -> None:
        with self.attempted:
            if not self.attempted.wait_for(lambda: len(self.attempts) >= count, timeout):
                raise AssertionError(f"expected {count} fetch attempts, saw {len(self.attempts)}")


@dataclass
class Setup:
    fetch: AssumeRole
    refresher: Refresher
    s3: S3Client


@pytest.fixture
def setup(moto_endpoint: str) -> Iterator[Setup]:
    fetch = AssumeRole(moto_endpoint)
    credentials = RefreshableCredentials.create_from_metadata(
        fetch(), refresh_using=fetch, method="assume-role"
    )
    refresher = Refresher(credentials, policy=POLICY, name=SOURCE)
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key=DUMMY_SECRET,
    )
    refresher.attach(s3)
    s3.list_buckets()  # warm up the client before any timing matters
    try:
        yield Setup(fetch, refresher, s3)
    finally:
        fetch.outage = False
        refresher.close()


@dataclass(frozen=True)
class Outcome:
    started: float  # wall clock, comparable with the snapshot's expiry
    ended: float
    error: BaseException | None


def hammer(s3: S3Client, stop: threading.Event) -> tuple[list[Outcome], list[threading.Thread]]:
    """Run REQUEST_THREADS threads calling list_buckets until ``stop`` is set."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def requests() -> None:
        while not stop.is_set():
            started = time.time()
            error: BaseException | None = None
            try:
                s3.list_buckets()
            except Exception as caught:
                error = caught
            with lock:
                outcomes.append(Outcome(started, time.time(), error))
            stop.wait(PACE)

    threads = [
        threading.Thread(target=requests, name=f"request-{n}", daemon=True)
        for n in range(REQUEST_THREADS)
    ]
    for thread in threads:
        thread.start()
    return outcomes, threads


def stop_all(stop: threading.Event, threads: list[threading.Thread]) -> None:
    stop.set()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), f"{thread.name} is stuck"


def state_of(refresher: Refresher) -> BreakerState:
    """The breaker's state, read afresh."""
    return refresher.breaker.state


def wait_until_expired(refresher: Refresher, timeout: float = WAIT) -> None:
    expires = refresher.credentials._snapshot.valid_until
    deadline = time.monotonic() + timeout
    while time.time() < expires + 0.2:
        assert time.monotonic() < deadline, "the credentials never expired"
        time.sleep(0.05)


def test_an_outage_is_bounded_by_the_breaker_not_by_the_requests(setup: Setup) -> None:
    fetch, refresher = setup.fetch, setup.refresher
    last_good = refresher.credentials._snapshot
    outage_start = time.monotonic()
    fetch.outage = True
    stop = threading.Event()
    outcomes, threads = hammer(setup.s3, stop)
    try:
        # About two and a half lifetimes of outage, most of it past expiry.
        deadline = outage_start + 2.5 * LIFETIME
        while time.monotonic() < deadline:
            stop.wait(0.1)
            assert all(thread.is_alive() for thread in threads)
    finally:
        stop_all(stop, threads)
    elapsed = time.monotonic() - outage_start
    attempts = fetch.attempts_since(outage_start)

    assert refresher.credentials._snapshot is last_good, "nothing was published in the outage"
    # The failures start at the scheduled refresh, shortly before expiry; from
    # then on the breaker admits one probe per cooldown.
    cooldowns = math.ceil(elapsed / POLICY.cooldown)
    assert 1 <= attempts <= POLICY.failure_threshold + cooldowns + 2, attempts
    assert len(outcomes) >= 10 * attempts, (len(outcomes), attempts)

    valid_until = last_good.valid_until
    before = [o for o in outcomes if o.ended < valid_until - 0.5]
    after = [o for o in outcomes if o.started > valid_until]
    assert before and after, (len(before), len(after))
    assert all(o.error is None for o in before), [o.error for o in before if o.error][:3]
    for outcome in after:
        error = outcome.error
        assert isinstance(error, CredentialsUnavailable), repr(error)
        message = str(error)
        assert error.source == SOURCE and SOURCE in message
        assert "EndpointConnectionError" in message, message
        assert "Could not connect to the endpoint URL" in message, message
        for secret in fetch.secrets:
            assert secret not in message
    assert refresher.breaker.state is not BreakerState.CLOSED


def test_requests_succeed_again_soon_after_the_outage_ends(setup: Setup) -> None:
    fetch, refresher = setup.fetch, setup.refresher
    fetch.outage = True
    deadline = time.monotonic() + WAIT
    while refresher.breaker.state is not BreakerState.OPEN:
        assert time.monotonic() < deadline, "the breaker never opened"
        time.sleep(0.05)
    wait_until_expired(refresher)
    with pytest.raises(CredentialsUnavailable):
        setup.s3.list_buckets()

    fetch.outage = False
    ended = time.monotonic()
    bound = POLICY.cooldown + POLICY.wait_timeout + 5.0  # a cooldown, a fetch, and slack
    while True:
        try:
            setup.s3.list_buckets()
        except CredentialsUnavailable:
            assert time.monotonic() - ended < bound, "no recovery after the outage"
            time.sleep(0.05)
        else:
            break
    assert state_of(refresher) is BreakerState.CLOSED
    assert refresher.breaker.failures == 0
    assert time.time() < refresher.credentials._snapshot.valid_until


def test_a_keyboard_interrupt_inside_a_fetch_is_a_failed_mint(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="botocreds")
    fetch, refresher = setup.fetch, setup.refresher
    scheduler_thread = refresher._scheduler.thread
    before = refresher.mint_count
    seen = fetch.count()
    fetch.interrupt_next = True
    fetch.wait_for(seen + 2)  # the interrupted attempt, then the retry
    deadline = time.monotonic() + WAIT
    while refresher.mint_count <= before:
        assert time.monotonic() < deadline, "no mint succeeded after the interrupt"
        time.sleep(0.05)

    failures = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and getattr(r, "event", None) == "RefreshFailed"
    ]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert "KeyboardInterrupt" in failures[0].getMessage()
    assert failures[0].attempt == 1  # type: ignore[attr-defined]
    assert refresher.breaker.failures == 0, "the next mint succeeded and reset the count"
    assert refresher._state.claimed is None
    assert scheduler_thread is not None and scheduler_thread.is_alive()
    assert refresher._scheduler.thread is scheduler_thread
    setup.s3.list_buckets()


def test_a_forked_child_keeps_refreshing_against_sts(setup: Setup) -> None:
    """A worker forked from a parent with an attached client refreshes on its own."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        status = 1
        try:
            signed_with: list[str] = []
            setup.s3.meta.events.register(
                "before-send",
                lambda request, **_: signed_with.append(
                    request.headers["Authorization"].decode().split("Credential=")[1][:20]
                ),
            )
            deadline = time.monotonic() + 3 * LIFETIME
            while time.monotonic() < deadline and len(set(signed_with)) < 3:
                setup.s3.list_buckets()
                time.sleep(0.05)
            threads = {t.name for t in threading.enumerate()}
            report = f"{len(set(signed_with))} {int('botocreds-scheduler' in threads)}"
            os.write(write_end, report.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        distinct, scheduler_alive = (int(part) for part in pipe.read().split())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert distinct >= 3, "the child's requests were signed with keys it refreshed itself"
    assert scheduler_alive == 1, "the child runs its own scheduler thread"
    setup.s3.list_buckets()  # the parent is unaffected
    assert setup.refresher.mint_count >= 1 and not setup.refresher.closed
