"""One build per key (``_sharing.SingleFlight``) and one refresher per source (``_attach``).

Real threads, because the defect these guard against (twenty callers each
doing the slow first fetch) only exists with them. Every wait is bounded and
every ordering is made structural: a builder is held on an Event until each
other caller has provably gone to sleep waiting for it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.credentials import AssumeRoleCredentialFetcher

import botocreds
from botocreds import _attach, _botocore
from botocreds._botocore import SourceIdentity
from botocreds._sharing import SingleFlight

from ._process_creds import MakeProcessProfile
from .conftest import AwsFiles

BOUND = 10.0  # seconds: every wait here ends well within it unless something is broken


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds, failing with ``what`` after ``BOUND`` seconds."""
    done = threading.Event()
    for _ in range(int(BOUND / 0.005)):
        if condition():
            return
        done.wait(0.005)
    raise AssertionError(f"timed out waiting until {what}")


class _Registry:
    """A find/build pair over a dict, counting each call; builds wait for ``release``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.found: dict[str, object] = {}
        self.finds = 0
        self.builds = 0
        self.release = threading.Event()
        self.fail_first = False

    def find(self, key: str) -> Callable[[], object | None]:
        def find() -> object | None:
            with self.lock:
                self.finds += 1
            return self.found.get(key)

        return find

    def build(self, key: str) -> Callable[[], object]:
        def build() -> object:
            with self.lock:
                self.builds += 1
                failing = self.fail_first and self.builds == 1
            assert self.release.wait(BOUND), "the builder was never released"
            if failing:
                raise RuntimeError("the first builder's own failure")
            result = object()
            self.found[key] = result
            return result

        return build


def _signing_key(client: Any) -> str:
    credentials = _botocore.client_credentials(client)
    assert credentials is not None
    return str(credentials.access_key)


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(BOUND)
        assert not thread.is_alive(), "a caller never returned"


def test_concurrent_callers_of_one_key_build_once_and_share_the_result() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    registry = _Registry()
    threads: list[threading.Thread] = []
    results: list[object] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(flight.run("key", registry.find("key"), registry.build("key")))
        except BaseException as error:
            errors.append(error)

    threads.append(threading.Thread(target=call, daemon=True))
    threads[0].start()
    _wait_until(lambda: flight.building("key") and registry.builds == 1, "the builder started")
    for _ in range(7):
        threads.append(threading.Thread(target=call, daemon=True))
        threads[-1].start()
    _wait_until(lambda: registry.finds == 8, "every waiter looked")
    assert flight.building("key")  # every waiter is asleep now (see above)
    assert registry.builds == 1
    registry.release.set()
    _join(threads)
    assert errors == []
    assert registry.builds == 1
    assert len(results) == 8 and len({id(result) for result in results}) == 1
    assert results[0] is registry.found["key"]
    assert not flight.building("key")


def test_a_found_result_is_returned_without_building() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    known = object()

    def build() -> object:
        raise AssertionError("built although find() had an answer")

    assert flight.run("key", lambda: known, build) is known
    assert not flight.building("key")


def test_a_builders_failure_is_its_own_and_the_next_waiter_builds() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    registry = _Registry()
    registry.fail_first = True
    outcomes: list[object] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            result: object = flight.run("key", registry.find("key"), registry.build("key"))
        except RuntimeError as error:
            result = error
        with lock:
            outcomes.append(result)

    first = threading.Thread(target=call, daemon=True)
    first.start()
    _wait_until(lambda: flight.building("key") and registry.builds == 1, "the builder started")
    second = threading.Thread(target=call, daemon=True)
    second.start()
    _wait_until(lambda: registry.finds == 2, "the waiter looked")
    assert flight.building("key")
    registry.release.set()
    _join([first, second])
    assert registry.builds == 2, "the waiter did not build for itself"
    failures = [o for o in outcomes if isinstance(o, RuntimeError)]
    successes = [o for o in outcomes if not isinstance(o, RuntimeError)]
    assert len(failures) == 1 and str(failures[0]) == "the first builder's own failure"
    assert successes == [registry.found["key"]]
    assert not flight.building("key")


def test_different_keys_build_concurrently() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    started = {"a": threading.Event(), "b": threading.Event()}
    results: dict[str, str] = {}

    def build(mine: str, other: str) -> Callable[[], str]:
        def run() -> str:
            started[mine].set()
            # Each build finishes only once the other has started: they overlap.
            assert started[other].wait(BOUND), f"{other!r} did not build while {mine!r} did"
            return mine

        return run

    def call(mine: str, other: str) -> None:
        results[mine] = flight.run(mine, lambda: None, build(mine, other))

    threads = [
        threading.Thread(target=call, args=("a", "b"), daemon=True),
        threading.Thread(target=call, args=("b", "a"), daemon=True),
    ]
    for thread in threads:
        thread.start()
    _join(threads)
    assert results == {"a": "a", "b": "b"}


def test_a_forked_child_sees_no_build_in_flight() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    release = threading.Event()
    entered = threading.Event()

    def build() -> str:
        entered.set()
        assert release.wait(BOUND)
        return "parent"

    parent = threading.Thread(target=lambda: flight.run("key", lambda: None, build), daemon=True)
    parent.start()
    try:
        assert entered.wait(BOUND)
        assert flight.building("key")
        pid = os.fork()
        if pid == 0:  # the child: no thread of the parent's survives
            code = 1
            try:
                signal.alarm(int(BOUND))  # a child stuck waiting dies instead of hanging
                if not flight.building("key"):
                    code = 2
                    if flight.run("key", lambda: None, lambda: "child") == "child":
                        code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        parent.join(BOUND)
    assert os.WIFEXITED(status), f"the child did not exit on its own: status {status}"
    assert os.WEXITSTATUS(status) == 0, {
        1: "the child saw the parent's build in flight",
        2: "the child could not build",
    }.get(os.WEXITSTATUS(status))


# -- one refresher per source -------------------------------------------------------------
def test_sessions_of_one_process_profile_share_one_refresher_and_fetch_once_each(
    make_process_profile: MakeProcessProfile,
) -> None:
    profile = make_process_profile(lifetime=3600.0, delay=0.0)
    attachments = []
    for _ in range(2):
        session = boto3.Session(profile_name=profile.name)
        client = session.client("sts", region_name="us-east-1")
        attachments.append(botocreds.attach(client))
    try:
        first, second = (attachment.refresher for attachment in attachments)
        assert first is second, "two sessions of one profile got two refreshers"
        # One run per session resolution, and no eager mint: the refresher
        # adopted the set botocore had just fetched (an hour left).
        assert profile.calls() == 2
        assert first.mint_count == 0
        named = [key[0] for key in _attach._by_source if isinstance(key[0], SourceIdentity)]
        assert [identity.kind for identity in named] == ["custom-process"]
    finally:
        for attachment in attachments:
            attachment.close()


@pytest.fixture
def local_sts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """AssumeRole answered locally: one entry per call, made by whichever thread."""
    calls: list[str] = []
    lock = threading.Lock()

    def get_credentials(self: Any) -> dict[str, Any]:
        with lock:
            calls.append(threading.current_thread().name)
            serial = len(calls)
        return {
            "Credentials": {
                "AccessKeyId": f"ASIAROLE{serial:08d}",
                "SecretAccessKey": "role-secret",
                "SessionToken": "role-token",
                "Expiration": "2099-01-01T00:00:00Z",
            },
            "AssumedRoleUser": {"Arn": "arn:aws:sts::123456789012:assumed-role/reader/s"},
        }

    monkeypatch.setattr(AssumeRoleCredentialFetcher, "_get_credentials", get_credentials)
    return calls


def test_deferred_role_credentials_are_minted_once_for_eight_sessions_attached_at_once(
    hermetic_aws: AwsFiles, local_sts: list[str]
) -> None:
    hermetic_aws.config.write_text(
        "[default]\n"
        "role_arn = arn:aws:iam::123456789012:role/reader\n"
        "role_session_name = shared\n"
        "source_profile = base\n"
        "region = us-east-1\n"
    )
    hermetic_aws.credentials.write_text(
        "[base]\naws_access_key_id = AKIASOURCE000001\naws_secret_access_key = source-secret\n"
    )
    clients = [boto3.Session().client("sts") for _ in range(8)]
    start = threading.Barrier(8, timeout=BOUND)
    attachments: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def attach(client: Any) -> None:
        try:
            start.wait()
            attachment = botocreds.attach(client)
            with lock:
                attachments.append(attachment)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=attach, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    _join(threads)
    try:
        assert errors == []
        assert len(local_sts) == 1, f"AssumeRole ran {len(local_sts)} times"
        refreshers = {id(attachment.refresher) for attachment in attachments}
        assert len(attachments) == 8 and len(refreshers) == 1
        keys = {_signing_key(client) for client in clients}
        assert keys == {"ASIAROLE00000001"}
    finally:
        for attachment in attachments:
            attachment.close()
