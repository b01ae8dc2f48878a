"""Resilience: a stateful model of the refresher, a supervised scheduler, hung mints, fork.

The state machine runs on a fake clock with a manual scheduler, so it is fully
deterministic. The thread and fork tests use real threads; every wait in them is
bounded by a timeout, and their assertions are structural, not about timing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from botocreds import BreakerState, CredentialsUnavailable, RefreshPolicy
from botocreds._refresher import Refresher
from botocreds._scheduler import Scheduler

from ._fakes import EPOCH, FakeClock, Harness, Return, Target, iso, refreshable

SCHEDULER_THREAD = "botocreds-scheduler"
#: The longest any test here waits for another thread.
WAIT = 10.0


# -- the state machine ----------------------------------------------------------
MACHINE_POLICY = RefreshPolicy(
    floor=10.0, failure_threshold=3, cooldown=30.0, wait_timeout=0.0, min_interval=1.0
)
MACHINE_LIFETIME = 100.0


class RefresherMachine(RuleBasedStateMachine):
    """Drives one refresher through time, failures, bad answers and requests.

    The model keeps, for every access key the fetcher ever issued, the expiry it
    was issued with, and counts consecutive failed mints itself.
    """

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(MACHINE_POLICY, lifetime=MACHINE_LIFETIME)
        self.expiry: dict[str, float] = {}
        # The Harness issued two sets at EPOCH: one for botocore, one in the eager mint.
        for serial in (1, 2):
            self.expiry[f"ASIAFAKE{serial:08d}"] = EPOCH + MACHINE_LIFETIME
        original: Callable[[], dict[str, Any]] = self.h.fetcher.answer

        def recording_answer() -> dict[str, Any]:
            answer = original()
            self.expiry[answer["access_key"]] = self.h.clock() + MACHINE_LIFETIME
            return answer

        self.h.fetcher.answer = recording_answer  # type: ignore[method-assign]
        self.consecutive_failures = 0
        self.bad_serial = 0
        self.served = 0

    @property
    def refresher(self) -> Refresher:
        return self.h.refresher

    # -- rules --------------------------------------------------------------
    def _live_mint(self) -> int | None:
        claimed = self.refresher._state.claimed
        return None if claimed is None else claimed.id

    def _count_abandoned(self, live_before: int | None) -> None:
        # A mint still queued past mint_timeout is abandoned by the watchdog (or
        # by a waiting request): that counts as one failed mint.
        if live_before is not None and self._live_mint() != live_before:
            self.consecutive_failures += 1
            event("a hung mint was abandoned")

    def _is_live(self, job: object) -> bool:
        return bool(
            isinstance(job, partial)
            and self.refresher._state.claimed is not None
            and job.args[0] == self.refresher._state.claimed
        )

    @rule(seconds=st.floats(min_value=0.0, max_value=60.0, allow_nan=False))
    def advance(self, seconds: float) -> None:
        live = self._live_mint()
        self.h.clock.advance(seconds)
        self.h.scheduler.run_pending()
        self._count_abandoned(live)

    @precondition(lambda self: len(self.h.fetcher.script) < 8)
    @rule(count=st.integers(min_value=1, max_value=4))
    def next_fetches_fail(self, count: int) -> None:
        self.h.fetcher.script.extend(RuntimeError("sts is down") for _ in range(count))

    @precondition(lambda self: len(self.h.fetcher.script) < 8)
    @rule()
    def next_fetch_succeeds(self) -> None:
        self.h.fetcher.script.append(None)

    @precondition(lambda self: len(self.h.fetcher.script) < 8)
    @rule(kind=st.sampled_from(["none", "empty", "missing", "inside-floor", "expired"]))
    def next_fetch_returns_a_bad_answer(self, kind: str) -> None:
        self.bad_serial += 1
        key = f"ASIABAD{self.bad_serial:09d}"
        now = self.h.clock()
        full = {"access_key": key, "secret_key": "bad-secret", "token": "bad-token"}
        answers: dict[str, object] = {
            "none": None,
            "empty": {},
            "missing": dict(full),
            # The clock never goes back, so these stay bad until they are fetched.
            "inside-floor": {**full, "expiry_time": iso(now + MACHINE_POLICY.floor / 2)},
            "expired": {**full, "expiry_time": iso(now - 1.0)},
        }
        if kind in ("inside-floor", "expired"):
            # Recorded, so that publishing one would be caught by the served-set check.
            self.expiry[key] = now + (MACHINE_POLICY.floor / 2 if kind == "inside-floor" else -1)
        self.h.fetcher.script.append(Return(answers[kind]))

    @rule()
    def run_queued_mints(self) -> None:
        while self.h.queue.jobs:
            job = self.h.queue.jobs.pop(0)
            live = self._is_live(job)
            before = (self.refresher.mint_count, self.refresher.breaker)
            job()
            if not live:
                after = (self.refresher.mint_count, self.refresher.breaker)
                assert after == before, "an abandoned mint's late answer changed the state"
                continue
            if self.refresher.mint_count > before[0]:
                self.consecutive_failures = 0
            else:
                self.consecutive_failures += 1
            event(f"breaker {self.refresher.breaker.state.value} after a mint")
        assert self.refresher._state.claimed is None, (
            "the single-flight flag is stuck after the mints ran"
        )

    @rule()
    def request(self) -> None:
        now = self.h.clock()
        live = self._live_mint()
        try:
            frozen = self.refresher.credentials.get_frozen_credentials()
        except CredentialsUnavailable as error:
            assert error.source == "test-source"
            return
        finally:
            self._count_abandoned(live)
        key = frozen.access_key
        assert key in self.expiry, f"served a key the fetcher never issued: {key}"
        assert now < self.expiry[key], (
            f"served {key} at {now - EPOCH:.3f}s, expired at {self.expiry[key] - EPOCH:.3f}s"
        )
        self.served += 1

    # -- invariants ----------------------------------------------------------
    @invariant()
    def at_most_one_mint_at_a_time(self) -> None:
        live = sum(1 for job in self.h.queue.jobs if self._is_live(job))
        assert live <= 1, f"{live} live mints queued for one refresher"
        assert (self.refresher._state.claimed is not None) == (live == 1)

    @invariant()
    def the_breaker_opens_only_after_enough_consecutive_failures(self) -> None:
        breaker = self.refresher.breaker
        assert breaker.failures == self.consecutive_failures
        if breaker.state is BreakerState.OPEN:
            assert self.consecutive_failures >= MACHINE_POLICY.failure_threshold

    @invariant()
    def the_refresher_is_never_left_without_a_next_step(self) -> None:
        due = self.h.scheduler.due_at(self.refresher)
        # An abandoned mint whose fetch has not returned reschedules when it does.
        waiting = self.refresher._state.abandoned is not None
        assert due is not None or self.refresher._state.claimed is not None or waiting

    def teardown(self) -> None:
        self.h.queue.run_all()
        assert self.refresher._state.claimed is None
        self.refresher.close()


RefresherMachine.TestCase.settings = settings(
    max_examples=75,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRefresherMachine = RefresherMachine.TestCase


# -- helpers for the threaded tests ------------------------------------------------
class CountingFetch:
    """A real-clock fetch function issuing credentials that live ``lifetime`` s.

    ``calls`` counts every call; ``called`` is notified on each. When ``hang``
    is set, every call after the first ``free_calls`` blocks until ``release``.
    """

    def __init__(self, prefix: str, lifetime: float, free_calls: int | None = None) -> None:
        self.prefix = prefix
        self.lifetime = lifetime
        self.free_calls = free_calls
        self.calls = 0
        self.called = threading.Condition()
        self.hanging = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> Mapping[str, Any]:
        with self.called:
            self.calls += 1
            serial = self.calls
            self.called.notify_all()
        if self.free_calls is not None and serial > self.free_calls:
            self.hanging.set()
            self.release.wait()
        return {
            "access_key": f"ASIA{self.prefix}{serial:08d}",
            "secret_key": f"secret-{self.prefix}-{serial}",
            "token": f"token-{self.prefix}-{serial}",
            "expiry_time": iso(time.time() + self.lifetime),
        }

    def wait_for_calls(self, count: int, timeout: float = WAIT) -> None:
        with self.called:
            if not self.called.wait_for(lambda: self.calls >= count, timeout):
                raise AssertionError(f"{self.prefix}: expected {count} fetches, saw {self.calls}")


def thread_of(scheduler: Scheduler) -> threading.Thread | None:
    """The scheduler's thread, read afresh (no narrowing carried over)."""
    return scheduler.thread


def scheduler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == SCHEDULER_THREAD and t.is_alive()]


@pytest.fixture
def real_scheduler() -> Iterator[Scheduler]:
    scheduler = Scheduler()
    yield scheduler
    for member in scheduler.members():
        scheduler.unregister(member)
    thread = scheduler.thread
    if thread is not None:
        thread.join(WAIT)


# -- supervision -----------------------------------------------------------------
def test_a_failing_scheduler_loop_is_logged_once_and_scheduling_goes_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="botocreds")
    scheduler = Scheduler()
    original = scheduler.run_pending
    failed = threading.Event()

    def run_pending_failing_once() -> float | None:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("a bug in the scheduler loop")
        return original()

    monkeypatch.setattr(scheduler, "run_pending", run_pending_failing_once)
    first, later = Target(), Target()
    scheduler.register(first)
    scheduler.register(later)
    try:
        scheduler.schedule(first, time.monotonic())
        assert failed.wait(WAIT), "the scheduler thread never ran"
        assert first.due.wait(WAIT), "the scheduler did not recover from the failure"
        scheduler.schedule(later, time.monotonic() + 0.05)
        assert later.due.wait(WAIT), "the scheduler stopped scheduling after the failure"

        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError
        assert "scheduler thread failed" in errors[0].getMessage()

        thread = scheduler.thread
        assert thread is not None and thread.is_alive() and thread.daemon
        assert thread.name == SCHEDULER_THREAD
        assert thread in scheduler_threads()
    finally:
        scheduler.unregister(first)
        scheduler.unregister(later)
    if thread is not None:
        thread.join(WAIT)
        assert not thread.is_alive(), "the scheduler thread outlived its last member"


# -- a hung mint ---------------------------------------------------------------------
def test_a_hung_mint_does_not_wedge_other_refreshers(real_scheduler: Scheduler) -> None:
    lifetime = 2.0
    policy = RefreshPolicy(floor=0.5, min_interval=0.1, jitter=0.0, wait_timeout=0.2)
    # Two free calls: one for create_from_metadata, one for the eager mint.
    hung = CountingFetch("HUNG", lifetime, free_calls=2)
    healthy = CountingFetch("GOOD", lifetime)
    a = Refresher(refreshable(hung), policy=policy, name="hung", _scheduler=real_scheduler)
    b = Refresher(refreshable(healthy), policy=policy, name="healthy", _scheduler=real_scheduler)
    try:
        assert hung.hanging.wait(WAIT), "the hung source was never asked to refresh"
        # While A's mint hangs, B keeps refreshing: two more mints, and by then
        # (a full refresh period later) A's set has expired.
        seen = b.mint_count
        expires = a.credentials._snapshot.valid_until
        deadline = time.monotonic() + WAIT
        while b.mint_count < seen + 2 or time.time() < expires:
            assert time.monotonic() < deadline, f"B stopped refreshing at {b.mint_count}"
            healthy.wait_for_calls(healthy.calls + 1)
        assert str(b.credentials.get_frozen_credentials().access_key).startswith("ASIAGOOD")
        assert a.credentials._snapshot.valid_until == expires, "A published nothing"
        outcomes: list[BaseException | str] = []
        lock = threading.Lock()
        start = threading.Barrier(4)

        def request() -> None:
            start.wait(WAIT)
            try:
                result: BaseException | str = str(a.credentials.get_frozen_credentials())
            except BaseException as error:
                result = error
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=request) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
            assert not thread.is_alive(), "a request thread is wedged on the hung mint"
        assert len(outcomes) == 4
        for outcome in outcomes:
            assert isinstance(outcome, CredentialsUnavailable), outcome
            assert outcome.source == "hung"
            assert "wait_timeout=0.2s" in str(outcome)
        assert hung.calls == 3, "single-flight: only the one hung fetch"
        assert a._state.claimed is not None
    finally:
        hung.release.set()
        a.close()
        b.close()


# -- close ------------------------------------------------------------------------------
def test_close_is_prompt_idempotent_and_the_last_close_stops_the_daemon_thread(
    real_scheduler: Scheduler,
) -> None:
    policy = RefreshPolicy(floor=0.5, min_interval=0.1, jitter=0.0, wait_timeout=0.2)
    hung = CountingFetch("HUNG", 2.0, free_calls=2)
    idle = CountingFetch("IDLE", 3600.0)
    a = Refresher(refreshable(hung), policy=policy, name="hung", _scheduler=real_scheduler)
    b = Refresher(refreshable(idle), policy=policy, name="idle", _scheduler=real_scheduler)
    try:
        thread = real_scheduler.thread
        assert thread is not None and thread.is_alive()
        assert thread.daemon and thread.name == SCHEDULER_THREAD
        assert hung.hanging.wait(WAIT)

        started = time.monotonic()
        a.close()  # while its mint hangs
        a.close()
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"close() took {elapsed:.2f}s while a mint hung"
        assert a.closed
        assert thread_of(real_scheduler) is thread and thread.is_alive(), "b is still open"

        b.close()
        b.close()
        thread.join(WAIT)
        assert not thread.is_alive(), "the scheduler thread outlived the last close()"
        assert thread_of(real_scheduler) is None
        assert real_scheduler.members() == []
    finally:
        hung.release.set()
        a.close()
        b.close()


# -- fork ----------------------------------------------------------------------------
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def in_child(
    body: Callable[[], dict[str, Any]], then_in_parent: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    """Run ``body`` in a forked child and return what it reported through a pipe.

    ``then_in_parent`` runs in the parent right after the fork.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            try:
                report = body()
            except BaseException as error:
                report = {"error": f"{type(error).__name__}: {error}"}
            os.write(write_end, json.dumps(report).encode())
            os.close(write_end)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    then_in_parent()
    return collect(pid, read_end)


def collect(pid: int, read_end: int) -> dict[str, Any]:
    chunks: list[bytes] = []
    with os.fdopen(read_end, "rb") as pipe:
        chunks.append(pipe.read())
    deadline = time.monotonic() + WAIT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child did not exit")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    data = b"".join(chunks)
    assert data, "the child reported nothing"
    report: dict[str, Any] = json.loads(data)
    assert "error" not in report, report["error"]
    return report


def child_mints_and_serves(refresher: Refresher) -> dict[str, Any]:
    """In the child: serve a request, then wait (bounded) for a background mint.

    No thread starts in the at-fork handler: the first read in the child
    starts the child's scheduler thread.
    """
    refresher.credentials.get_frozen_credentials()
    before = refresher.mint_count
    deadline = time.monotonic() + WAIT
    while refresher.mint_count <= before and time.monotonic() < deadline:
        time.sleep(0.02)
    threads = [t.name for t in threading.enumerate() if t.is_alive()]
    served = refresher.credentials.get_frozen_credentials()
    return {
        "before": before,
        "after": refresher.mint_count,
        "threads": threads,
        "served": served.access_key,
        "thread_is_mine": refresher._scheduler.thread is not None
        and refresher._scheduler.thread.is_alive(),
    }


FORK_POLICY = RefreshPolicy(floor=0.3, min_interval=0.1, jitter=0.0, wait_timeout=2.0)


@needs_fork
def test_a_forked_child_keeps_refreshing_on_its_own_thread(real_scheduler: Scheduler) -> None:
    fetch = CountingFetch("FORK", 2.0)
    refresher = Refresher(
        refreshable(fetch), policy=FORK_POLICY, name="fork", _scheduler=real_scheduler
    )
    try:
        report = in_child(lambda: child_mints_and_serves(refresher))
        assert report["after"] > report["before"], report
        assert SCHEDULER_THREAD in report["threads"], report
        assert report["thread_is_mine"], report
        assert report["served"].startswith("ASIAFORK")
        # The parent is unaffected.
        assert str(refresher.credentials.get_frozen_credentials().access_key).startswith("ASIAFORK")
        thread = real_scheduler.thread
        assert thread is not None and thread.is_alive()
    finally:
        refresher.close()


@needs_fork
def test_a_child_forked_while_another_thread_holds_the_lock_still_works(
    real_scheduler: Scheduler,
) -> None:
    fetch = CountingFetch("HELD", 2.0)
    refresher = Refresher(
        refreshable(fetch), policy=FORK_POLICY, name="held", _scheduler=real_scheduler
    )
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with refresher._lock:
            held.set()
            release.wait(WAIT)

    holder = threading.Thread(target=hold, name="lock-holder", daemon=True)
    holder.start()
    try:
        assert held.wait(WAIT)
        report = in_child(lambda: child_mints_and_serves(refresher), then_in_parent=release.set)
        assert report["after"] > report["before"], report
        assert report["served"].startswith("ASIAHELD")
    finally:
        release.set()
        holder.join(WAIT)
        refresher.close()


@needs_fork
def test_the_jitter_is_drawn_again_in_a_forked_child(real_scheduler: Scheduler) -> None:
    parent = os.getpid()

    def sample() -> float:
        return 0.0 if os.getpid() == parent else 0.9

    policy = RefreshPolicy(floor=60.0, jitter=0.5, min_interval=0.1)
    fetch = CountingFetch("JITTER", 3600.0)
    refresher = Refresher(
        refreshable(fetch), policy=policy, random=sample, name="jitter", _scheduler=real_scheduler
    )
    try:
        issued = refresher.credentials._snapshot.issued_at

        def next_refresh() -> float | None:
            # The scheduler keeps monotonic times; status() gives wall-clock ones.
            due = refresher.status().next_refresh_at
            return None if due is None else due.timestamp()

        parent_due = next_refresh()
        assert parent_due == pytest.approx(issued + 0.8 * 3600, abs=0.05)

        report = in_child(lambda: {"due": next_refresh()})
        assert report["due"] is not None
        assert report["due"] == pytest.approx(issued + (0.8 - 0.9 * 0.5) * 3600, abs=0.05)
        assert abs(report["due"] - parent_due) > 1000.0
        assert next_refresh() == pytest.approx(parent_due, abs=0.05), (
            "the parent keeps its schedule"
        )
    finally:
        refresher.close()


def test_a_wall_clock_jump_does_not_leave_the_scheduler_asleep_past_a_refresh() -> None:
    """The thread re-reads the clock every max_sleep, so a jump (or a thaw) is noticed."""
    clock = FakeClock()
    scheduler = Scheduler(clock, lambda job: job(), max_sleep=0.05)
    target = Target()
    scheduler.register(target)
    scheduler.schedule(target, clock() + 3600.0)
    assert not target.due.wait(0.2), "nothing is due yet"
    clock.advance(3600.0)  # no notify: only a re-read of the clock can notice
    assert target.due.wait(10.0)
    scheduler.unregister(target)


@needs_fork
def test_small_locks_held_at_fork_are_fresh_in_the_child() -> None:
    from botocreds import _events
    from botocreds._forksafe import renew_after_fork

    class Holder:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            renew_after_fork(self, "lock", threading.Lock)

    holder = Holder()
    with holder.lock, _events._process_lock:
        report = in_child(
            lambda: {
                "holder": holder.lock.acquire(timeout=1),
                "events": _events._process_lock.acquire(timeout=1),
            }
        )
    assert report == {"holder": True, "events": True}
