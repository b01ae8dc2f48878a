"""Regressions with real threads and real forks: what a forked child inherits, and where events run.

Fork: a child has none of its parent's threads, so nothing may be left
claimed, locked, queued or half-started in it. Each fork test runs its checks
in a child made with ``os.fork()``, which reports through a pipe and always
leaves with ``os._exit``.

Events: reporters are user code of any speed, so they run on the delivery
thread only, in the order each refresher produced its events.

Every wait is bounded, and no test waits a fixed time to let something
happen: the threads are ordered with events, and the assertions are about
what happened, not how fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import Any

import pytest
from botocore.credentials import RefreshableCredentials

import botocreds
from botocreds import (
    BreakerChanged,
    BreakerState,
    CredentialsUnavailable,
    ReactiveInvalidation,
    RefreshEvent,
    RefreshFailed,
    RefreshPolicy,
    RequestPathMint,
    _aiocredentials,
    _attach,
    _botocore,
    _events,
    _forksafe,
)
from botocreds import _scheduler as scheduler_module
from botocreds._aiocredentials import AioBackgroundCredentials
from botocreds._credentials import SnapshotCredentials
from botocreds._refresher import Refresher
from botocreds._scheduler import Scheduler, default_scheduler

from ._fakes import EPOCH, FakeClock, iso
from ._sessions import session_with

#: The longest any one wait for another thread lasts.
WAIT = 10.0
#: The longest a test waits for real refreshes (a few seconds each, on a busy machine).
REFRESH_WAIT = 30.0
#: The longest a forked child may take before the parent kills it.
CHILD_WAIT = 60.0
DELIVERY_THREAD = "botocreds-events"
SCHEDULER_THREAD = "botocreds-scheduler"

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


# -- a fetch function -------------------------------------------------------------
class Fetch:
    """A fetch function whose sets live ``lifetime`` seconds on ``clock``.

    Calls are numbered from 1 (the eager first mint). A call in ``fail`` raises.
    Call ``hold`` (if any) first sets ``entered``, then waits (bounded) for
    ``release``, and only in the process that made this fetcher: in a forked
    child the same call runs straight through. It holds no lock while it waits,
    so a child forked meanwhile inherits no lock of it.
    """

    def __init__(
        self,
        prefix: str,
        *,
        lifetime: float = 3600.0,
        clock: Callable[[], float] = time.time,
        fail: AbstractSet[int] = frozenset(),
        fail_from: int | None = None,
        hold: int | None = None,
    ) -> None:
        self.prefix = prefix
        self.lifetime = lifetime
        self.clock = clock
        self.fail = fail
        self.fail_from = fail_from
        self.hold = hold
        self.owner_pid = os.getpid()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []
        self._serials = itertools.count(1)
        self._calls = 0
        self._called = threading.Condition()

    @property
    def calls(self) -> int:
        with self._called:
            return self._calls

    def wait_for_calls(self, count: int, timeout: float) -> bool:
        """Wait until call number ``count`` has begun."""
        with self._called:
            return self._called.wait_for(lambda: self._calls >= count, timeout)

    def answer(self) -> dict[str, Any]:
        serial = next(self._serials)
        return {
            "access_key": f"ASIA{self.prefix}{serial:08d}",
            "secret_key": f"secret-{self.prefix}-{serial}",
            "token": f"token-{self.prefix}-{serial}",
            "expiry_time": iso(self.clock() + self.lifetime),
        }

    def __call__(self) -> Mapping[str, Any]:
        with self._called:
            self._calls += 1
            call = self._calls
            self.threads.append(threading.current_thread().name)
            self._called.notify_all()
        if call == self.hold and os.getpid() == self.owner_pid:
            self.entered.set()
            self.release.wait(WAIT)
        if call in self.fail or (self.fail_from is not None and call >= self.fail_from):
            raise ConnectionError(f"{self.prefix} is down (call {call})")
        return self.answer()


def refreshable(fetch: Fetch) -> RefreshableCredentials:
    """botocore credentials refreshed by ``fetch``; their first set is not one of its calls."""
    return RefreshableCredentials.create_from_metadata(fetch.answer(), fetch, "test-source")


class Recorder:
    """A reporter that keeps every event, and the thread each one was delivered on."""

    def __init__(self) -> None:
        self.events: list[RefreshEvent] = []
        self.threads: list[str] = []
        self.on_loop: list[bool] = []
        self.seen = threading.Condition()

    def __call__(self, event: RefreshEvent) -> None:
        with self.seen:
            self.events.append(event)
            self.threads.append(threading.current_thread().name)
            self.on_loop.append(_loop_running())
            self.seen.notify_all()

    def wait_for(self, predicate: Callable[[list[RefreshEvent]], bool], timeout: float) -> bool:
        with self.seen:
            return self.seen.wait_for(lambda: predicate(self.events), timeout)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def kinds(events: list[RefreshEvent]) -> list[str]:
    return [type(event).__name__ for event in events]


def closed_again(events: list[RefreshEvent]) -> bool:
    return any(
        isinstance(event, BreakerChanged) and event.state is BreakerState.CLOSED for event in events
    )


def flush_events() -> None:
    assert default_scheduler().delivery.flush(WAIT), "the events were not delivered in time"


# -- a forked child ------------------------------------------------------------------
def in_child(
    body: Callable[[], dict[str, Any]], then_in_parent: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    """Run ``body`` in a forked child and return the report it sent through a pipe.

    ``then_in_parent`` runs in the parent right after the fork. The child never
    returns into pytest: it leaves with ``os._exit`` whatever happens.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process may deadlock
        # the child: that is exactly what these tests check it does not.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            try:
                report = body()
            except BaseException as error:
                report = {"error": f"{type(error).__name__}: {error}"}
            data = json.dumps(report).encode()
            while data:
                data = data[os.write(write_end, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        then_in_parent()
    finally:
        report = collect(pid, read_end)
    return report


def collect(pid: int, read_end: int) -> dict[str, Any]:
    """Read the child's report and reap it, killing it if it takes longer than CHILD_WAIT."""
    deadline = time.monotonic() + CHILD_WAIT
    chunks: list[bytes] = []
    try:
        while True:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([read_end], [], [], max(0.0, left))
            if not readable:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"the forked child sent nothing within {CHILD_WAIT:g}s")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child did not exit")
        time.sleep(0.01)  # polling for the exit, bounded by the deadline
    assert os.waitstatus_to_exitcode(status) == 0
    report: dict[str, Any] = json.loads(b"".join(chunks))
    assert "error" not in report, report["error"]
    return report


def bounded(call: Callable[[], Any], timeout: float) -> dict[str, Any]:
    """In a child: run ``call`` on a thread, so a lock that was never renewed shows as a timeout."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:
            outcome["raised"] = f"{type(error).__name__}: {error}"

    thread = threading.Thread(target=run, name="child-request", daemon=True)
    thread.start()
    thread.join(timeout)
    return {"returned": not thread.is_alive(), **outcome}


def botocreds_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("botocreds"))


@contextlib.contextmanager
def held_by_another_thread(*locks: Any) -> Iterator[threading.Event]:
    """Hold ``locks`` on another thread until the returned event is set (or WAIT passes)."""
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with contextlib.ExitStack() as stack:
            for lock in locks:
                stack.enter_context(lock)
            held.set()
            release.wait(WAIT)

    holder = threading.Thread(target=hold, name="lock-holder", daemon=True)
    holder.start()
    try:
        assert held.wait(WAIT), "the other thread did not take the locks"
        yield release
    finally:
        release.set()
        holder.join(WAIT)


def request_on_thread(credentials: SnapshotCredentials) -> tuple[threading.Thread, dict[str, Any]]:
    """Read ``credentials`` on a new thread (it may wait for a mint); the outcome fills the dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["key"] = credentials.get_frozen_credentials().access_key
        except Exception as error:
            outcome["raised"] = f"{type(error).__name__}: {error}"

    thread = threading.Thread(target=run, name="request", daemon=True)
    thread.start()
    return thread, outcome


# -- fork ------------------------------------------------------------------------------
#: A set lives an hour on a fake clock; requests never wait on pacing.
FAKE_CLOCK_POLICY = RefreshPolicy(min_interval=0.0, jitter=0.0, wait_timeout=WAIT)


@needs_fork
def test_a_closed_refresher_forked_while_its_mint_runs_mints_again_in_the_child() -> None:
    clock = FakeClock()
    fetch = Fetch("CLOSED", clock=clock, hold=2)
    refresher = Refresher(refreshable(fetch), policy=FAKE_CLOCK_POLICY, clock=clock, name="closed")
    credentials = refresher.credentials
    refresher.close()
    clock.advance(3600.0)  # expired: a request mints on demand, even when closed
    request, outcome = request_on_thread(credentials)
    try:
        assert fetch.entered.wait(WAIT), "the request's mint did not start"
        assert refresher._state.claimed is not None

        def child() -> dict[str, Any]:
            state = refresher._state
            report: dict[str, Any] = {
                "claimed": state.claimed is not None,
                "abandoned": state.abandoned is not None,
                "closed": state.closed,
                "mints_before": refresher.mint_count,
            }
            clock.advance(1.0)
            report["served"] = bounded(lambda: credentials.access_key, WAIT)
            report["mints_after"] = refresher.mint_count
            return report

        report = in_child(child)
    finally:
        fetch.release.set()
        request.join(WAIT)
    assert report["claimed"] is False and report["abandoned"] is False, report
    assert report["closed"] is True, report
    assert report["served"]["returned"], "the child's request never returned"
    assert str(report["served"].get("value", "")).startswith("ASIACLOSED"), report
    assert report["mints_after"] == report["mints_before"] + 1, report
    # The parent's own mint, released now, served its request.
    assert str(outcome.get("key", "")).startswith("ASIACLOSED"), outcome


@needs_fork
def test_a_mint_in_flight_at_fork_does_not_stop_the_child_from_minting() -> None:
    clock = FakeClock()
    fetch = Fetch("INFLIGHT", clock=clock, hold=2)
    policy = FAKE_CLOCK_POLICY
    refresher = Refresher(refreshable(fetch), policy=policy, clock=clock, name="in-flight")
    credentials = refresher.credentials
    try:
        before = credentials.access_key
        # Inside the floor: the read is served at once and starts a background mint.
        clock.advance(3600.0 - policy.floor / 2)
        assert credentials.access_key == before
        assert fetch.entered.wait(WAIT), "the background mint did not start"

        def child() -> dict[str, Any]:
            report: dict[str, Any] = {"claimed": refresher._state.claimed is not None}
            mints = refresher.mint_count
            clock.advance(policy.floor)  # now expired
            report["served"] = bounded(lambda: credentials.access_key, WAIT)
            report["minted"] = refresher.mint_count - mints
            return report

        report = in_child(child)
    finally:
        fetch.release.set()
        refresher.close()
    assert report["claimed"] is False, report
    assert report["served"]["returned"], "the child's request never returned"
    served = str(report["served"].get("value", ""))
    assert served.startswith("ASIAINFLIGHT") and served != before, report
    assert report["minted"] >= 1, report


@needs_fork
def test_a_lock_held_by_another_thread_at_fork_is_renewed_so_the_childs_request_returns() -> None:
    clock = FakeClock()
    fetch = Fetch("LOCKED", clock=clock)
    refresher = Refresher(refreshable(fetch), policy=FAKE_CLOCK_POLICY, clock=clock, name="locked")
    credentials = refresher.credentials
    try:
        before = credentials.access_key

        def child() -> dict[str, Any]:
            clock.advance(3600.0)  # expired: the request must take the lock and mint
            # Within wait_timeout, or not at all: a lock never renewed never frees.
            return {"served": bounded(lambda: credentials.access_key, WAIT)}

        with held_by_another_thread(refresher._lock) as release:
            report = in_child(child, then_in_parent=release.set)
    finally:
        refresher.close()
    assert report["served"]["returned"], "the child's request is stuck on the parent's lock"
    served = str(report["served"].get("value", ""))
    assert served.startswith("ASIALOCKED") and served != before, report


@needs_fork
def test_the_attach_locks_held_at_fork_are_renewed_so_the_child_can_attach_and_close() -> None:
    fetch = Fetch("ATTACH")
    session_with(refreshable(fetch)).client("sts")  # service model loaded before the fork

    def child() -> dict[str, Any]:
        def attach_and_close() -> dict[str, Any]:
            child_fetch = Fetch("CHILD")
            client = session_with(refreshable(child_fetch)).client("sts")
            original = _botocore.client_credentials(client)
            attachment = botocreds.attach(client)
            attached = _botocore.client_credentials(client) is attachment.credentials
            key = attachment.credentials.access_key
            attachment.close()
            return {
                "attached": attached,
                "key": key,
                "closed": attachment.closed and attachment.refresher.closed,
                "restored": _botocore.client_credentials(client) is original,
            }

        return bounded(attach_and_close, WAIT)

    with held_by_another_thread(_attach._drain_lock, _attach._registry_lock) as release:
        report = in_child(child, then_in_parent=release.set)
    assert report["returned"], "attach() in the child is stuck on a lock held at the fork"
    assert "raised" not in report, report
    value = report["value"]
    assert value["attached"] and value["closed"] and value["restored"], value
    assert str(value["key"]).startswith("ASIACHILD"), value


@needs_fork
def test_module_locks_are_renewed_before_any_reset_runs_in_the_child() -> None:
    """``_forksafe`` renews every module lock first, then runs the resets; none may see an old one.

    A probe registered as the last reset tries each module lock without
    blocking, while another thread of the parent holds them all.
    """
    locks: dict[str, Callable[[], Any]] = {
        "attach._drain_lock": lambda: _attach._drain_lock,
        "attach._registry_lock": lambda: _attach._registry_lock,
        "events._process_lock": lambda: _events._process_lock,
        "scheduler._default_lock": lambda: scheduler_module._default_lock,
    }
    free_in_reset: dict[str, bool] = {}

    def probe() -> None:
        for name, lock in locks.items():
            acquired = lock().acquire(blocking=False)
            free_in_reset[name] = acquired
            if acquired:
                lock().release()

    _forksafe.on_fork_in_child(probe)
    try:
        with held_by_another_thread(*(lock() for lock in locks.values())) as release:
            report = in_child(lambda: dict(free_in_reset), then_in_parent=release.set)
    finally:
        _forksafe._resets.remove(probe)
    assert report == dict.fromkeys(locks, True), f"still the parent's, held: {report}"


@needs_fork
def test_no_thread_starts_in_the_fork_handler_and_the_childs_first_read_starts_the_scheduler() -> (
    None
):
    fetch = Fetch("THREADS")
    refresher = Refresher(refreshable(fetch), policy=RefreshPolicy(jitter=0.0), name="threads")
    credentials = refresher.credentials  # kept alive: the child reads this very object
    try:
        assert SCHEDULER_THREAD in botocreds_threads(), "the parent's scheduler runs at the fork"

        def child() -> dict[str, Any]:
            report: dict[str, Any] = {
                "threads_after_fork": botocreds_threads(),
                "fresh_until_passed": credentials._snapshot.fresh_until == float("-inf"),
            }
            report["key"] = credentials.access_key  # the first use
            thread = refresher._scheduler.thread
            report["threads_after_read"] = botocreds_threads()
            report["scheduler_alive"] = thread is not None and thread.is_alive()
            report["fresh_again"] = credentials._snapshot.fresh_until > time.time()
            return report

        report = in_child(child)
    finally:
        refresher.close()
    assert report["threads_after_fork"] == [], report
    assert report["fresh_until_passed"], "the child's first read would not take the slow path"
    assert str(report["key"]).startswith("ASIATHREADS"), report
    assert SCHEDULER_THREAD in report["threads_after_read"], report
    assert report["scheduler_alive"] and report["fresh_again"], report


@needs_fork
def test_events_queued_in_the_parent_at_fork_are_not_delivered_in_the_child() -> None:
    delivery = default_scheduler().delivery
    running = threading.Event()
    release = threading.Event()
    delivered: list[str] = []

    def record(event: RefreshEvent) -> None:
        delivered.append(event.source)

    def block() -> None:
        running.set()
        release.wait(WAIT)

    def event(source: str) -> RefreshFailed:
        return RefreshFailed(source, 0.0, None, 1, "ConnectionError: down")

    try:
        delivery.submit(block)
        assert running.wait(WAIT), "the delivery thread did not start"
        for n in (1, 2, 3):
            delivery.deliver(event(f"parent-{n}"), record)

        def child() -> dict[str, Any]:
            delivery.deliver(event("child"), record)
            return {"flushed": delivery.flush(WAIT), "delivered": list(delivered)}

        report = in_child(child)
    finally:
        release.set()
    assert delivery.flush(WAIT)
    assert report == {"flushed": True, "delivered": ["child"]}, report
    assert delivered == ["parent-1", "parent-2", "parent-3"], "the parent delivers its own, once"


# -- events ----------------------------------------------------------------------------
#: Sets living 2 s are refreshed every second (at lifetime - floor), retried within a second.
SHORT = RefreshPolicy(
    floor=1.0,
    jitter=0.0,
    min_interval=0.1,
    backoff_base=0.05,
    backoff_max=0.1,
    cooldown=0.2,
)
SHORT_LIFETIME = 2.0


def test_events_are_delivered_only_on_the_delivery_thread_never_a_scheduler_or_mint_thread() -> (
    None
):
    recorder = Recorder()
    # The first background mint fails: the breaker opens on the mint thread,
    # half-opens on the scheduler thread (its probe's claim), and closes again.
    fetch = Fetch("WHERE", lifetime=SHORT_LIFETIME, fail={2})
    policy = replace(SHORT, failure_threshold=1)
    refresher = Refresher(refreshable(fetch), policy=policy, reporter=recorder, name="where")
    try:

        def enough(events: list[RefreshEvent]) -> bool:
            return kinds(events).count("RefreshSucceeded") >= 3 and closed_again(events)

        assert recorder.wait_for(enough, REFRESH_WAIT), kinds(recorder.events)
    finally:
        refresher.close()
    flush_events()
    assert {"RefreshSucceeded", "RefreshFailed", "BreakerChanged"} <= set(kinds(recorder.events))
    assert any(name.startswith("botocreds-mint-") for name in fetch.threads), fetch.threads
    assert set(recorder.threads) == {DELIVERY_THREAD}, recorder.threads


def test_a_reporter_blocked_for_seconds_does_not_delay_another_sources_refresh() -> None:
    blocked = threading.Event()
    release = threading.Event()
    returned = threading.Event()

    def slow_reporter(event: RefreshEvent) -> None:
        if isinstance(event, (RefreshFailed, BreakerChanged)) and not blocked.is_set():
            blocked.set()
            release.wait(2 * REFRESH_WAIT)
            returned.set()

    b_recorder = Recorder()
    a_fetch = Fetch("SLOWA", lifetime=SHORT_LIFETIME, fail_from=2)
    b_fetch = Fetch("FASTB", lifetime=SHORT_LIFETIME)
    a = Refresher(refreshable(a_fetch), policy=SHORT, reporter=slow_reporter, name="a")
    b = Refresher(refreshable(b_fetch), policy=SHORT, reporter=b_recorder, name="b")
    try:
        assert blocked.wait(REFRESH_WAIT), "A's first failure was not reported"
        # Read in this order: every call begun after `calls` began after `mints` was read.
        mints = b.mint_count
        calls = b_fetch.calls
        with b_recorder.seen:
            reported = len(b_recorder.events)
        # Single flight: call calls+2 begins only once call calls+1 has been folded in.
        assert b_fetch.wait_for_calls(calls + 2, REFRESH_WAIT), "B stopped refreshing"
        assert not returned.is_set(), "A's reporter returned before B refreshed"
        assert b.mint_count > mints
        with b_recorder.seen:
            assert len(b_recorder.events) == reported, "B's events wait behind A's reporter"
    finally:
        release.set()
        a.close()
        b.close()
    flush_events()
    assert returned.is_set()
    assert len(b_recorder.events) > reported, "B's events were delivered once A's reporter returned"


def test_events_of_one_refresher_are_delivered_in_the_order_they_were_produced() -> None:
    recorder = Recorder()
    fetch = Fetch("ORDER", lifetime=SHORT_LIFETIME, fail={2, 3, 4})
    policy = replace(SHORT, failure_threshold=3)
    refresher = Refresher(refreshable(fetch), policy=policy, reporter=recorder, name="order")
    try:
        assert recorder.wait_for(closed_again, REFRESH_WAIT), kinds(recorder.events)
    finally:
        refresher.close()
    flush_events()
    assert summary(recorder.events)[:8] == BREAKER_ROUND_TRIP


def summary(events: list[RefreshEvent]) -> list[tuple[str, int, str]]:
    """Each event as (kind, attempt, what it says)."""
    rows: list[tuple[str, int, str]] = []
    for event in events:
        detail = ""
        if isinstance(event, BreakerChanged):
            detail = f"{event.previous.value}->{event.state.value}"
        elif isinstance(event, RequestPathMint):
            detail = "succeeded" if event.succeeded else "failed"
        rows.append((type(event).__name__, event.attempt, detail))
    return rows


#: Three failed mints open the breaker; after the cooldown one probe closes it.
BREAKER_ROUND_TRIP = [
    ("RefreshSucceeded", 1, ""),
    ("RefreshFailed", 1, ""),
    ("RefreshFailed", 2, ""),
    ("RefreshFailed", 3, ""),
    ("BreakerChanged", 3, "closed->open"),
    ("BreakerChanged", 3, "open->half-open"),
    ("RefreshSucceeded", 4, ""),
    ("BreakerChanged", 3, "half-open->closed"),
]


def pause_the_next_wake_up(refresher: Refresher, until: threading.Event) -> None:
    """Make the next mint to finish pause between releasing the lock and queuing its events.

    It stands for a mint thread that loses the CPU right there. The pause is
    a waiter's wake-up, which the runtime runs after the lock, before the
    events; it lasts until ``until`` is set (at most WAIT).
    """

    def pause() -> None:
        until.wait(WAIT)

    with refresher._lock:
        refresher._waiters[object()] = pause


def test_a_transition_on_another_thread_does_not_overtake_the_events_of_an_earlier_one() -> None:
    """The third failure opens the breaker on the mint thread; the scheduler half-opens it.

    Even if the mint thread stalls after its transition, the breaker's
    ``open->half-open`` must not reach reporters before the ``RefreshFailed``
    and ``closed->open`` that came first.
    """
    recorder = Recorder()
    fetch = Fetch("STALL", lifetime=SHORT_LIFETIME, fail={2, 3, 4}, hold=4)
    policy = replace(SHORT, failure_threshold=3)
    refresher = Refresher(refreshable(fetch), policy=policy, reporter=recorder, name="stall")
    half_open = threading.Event()

    def half_open_delivered(events: list[RefreshEvent]) -> bool:
        if "open->half-open" in [detail for _, _, detail in summary(events)]:
            half_open.set()
        return closed_again(events)

    try:
        assert fetch.entered.wait(REFRESH_WAIT), "the third failing mint did not start"
        pause_the_next_wake_up(refresher, half_open)
        fetch.release.set()
        assert recorder.wait_for(half_open_delivered, REFRESH_WAIT), kinds(recorder.events)
    finally:
        half_open.set()
        fetch.release.set()
        refresher.close()
    flush_events()
    assert summary(recorder.events)[:8] == BREAKER_ROUND_TRIP


def test_a_request_path_mint_is_reported_after_the_refresh_that_served_it() -> None:
    """The request's ``RequestPathMint`` follows the ``RefreshSucceeded`` it waited for.

    The mint thread wakes the request first; even if it stalls before queuing
    its own event, the request's report must not be delivered ahead of it.
    """
    clock = FakeClock()
    recorder = Recorder()
    fetch = Fetch("REQUEST", clock=clock, hold=2)
    refresher = Refresher(
        refreshable(fetch),
        policy=FAKE_CLOCK_POLICY,
        clock=clock,
        reporter=recorder,
        name="request",
    )
    reported = threading.Event()

    def request_reported(events: list[RefreshEvent]) -> bool:
        if any(isinstance(event, RequestPathMint) for event in events):
            reported.set()
        return kinds(events).count("RefreshSucceeded") >= 2 and reported.is_set()

    clock.advance(3600.0)
    request, outcome = request_on_thread(refresher.credentials)
    try:
        assert fetch.entered.wait(WAIT), "the request's mint did not start"
        pause_the_next_wake_up(refresher, reported)  # woken after the request
        fetch.release.set()
        request.join(WAIT)
        assert recorder.wait_for(request_reported, WAIT), kinds(recorder.events)
    finally:
        reported.set()
        fetch.release.set()
        request.join(WAIT)
        refresher.close()
    flush_events()
    assert str(outcome.get("key", "")).startswith("ASIAREQUEST"), outcome
    assert summary(recorder.events) == [
        ("RefreshSucceeded", 1, ""),
        ("RefreshSucceeded", 1, ""),
        ("RequestPathMint", 1, "succeeded"),
    ]


class LoopServed(Refresher):
    """A sync source behind the async credentials view: the loop-side paths, no aiobotocore."""

    _view_class = AioBackgroundCredentials


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_events_produced_on_an_event_loop_are_delivered_off_it() -> None:
    """What a coroutine's claim, request-path mint and invalidation report is not run on its loop.

    The breaker's ``open->half-open`` comes from a claim made on the loop,
    ``RequestPathMint`` and ``ReactiveInvalidation`` from the coroutine itself.
    Both clocks are fake, so the scheduler's thread never finds anything due.
    """
    wall = FakeClock()
    mono = FakeMonotonic()
    scheduler = Scheduler(mono, wall=lambda: EPOCH + mono())
    recorder = Recorder()
    fetch = Fetch("LOOP", clock=wall, fail={2})
    policy = RefreshPolicy(
        failure_threshold=1, cooldown=30.0, min_interval=0.0, jitter=0.0, wait_timeout=WAIT
    )
    refresher = LoopServed(
        refreshable(fetch),
        policy=policy,
        clock=wall,
        reporter=recorder,
        name="loop",
        _scheduler=scheduler,
    )
    view: SnapshotCredentials = refresher.credentials
    assert isinstance(view, AioBackgroundCredentials)

    async def requests() -> list[str]:
        loop_thread = threading.current_thread().name
        wall.advance(3600.0)  # expired
        with pytest.raises(CredentialsUnavailable):
            await view.get_frozen_credentials()  # its mint fails: the breaker opens
        mono.now += policy.cooldown + 1.0
        wall.advance(policy.cooldown + 1.0)
        key = (await view.get_frozen_credentials()).access_key  # the probe, claimed here
        retried = await _aiocredentials.invalidate(refresher, "ExpiredToken", key)
        return [loop_thread, str(key), str(retried)]

    try:
        loop_thread, key, retried = asyncio.run(asyncio.wait_for(requests(), 3 * WAIT))
    finally:
        refresher.close()
    assert scheduler.delivery.flush(WAIT)
    assert key.startswith("ASIALOOP") and retried == "True"
    details = [detail for _, _, detail in summary(recorder.events)]
    assert "open->half-open" in details and "failed" in details, summary(recorder.events)
    assert any(isinstance(event, ReactiveInvalidation) for event in recorder.events)
    assert not any(recorder.on_loop), "a reporter ran on an event loop"
    assert loop_thread not in recorder.threads
    assert set(recorder.threads) == {DELIVERY_THREAD}, recorder.threads
