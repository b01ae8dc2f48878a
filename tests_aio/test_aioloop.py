"""botocreds' own event loop: its thread's life, and fetchers that try to end it.

Each test gets a fresh loop runner in place of the process's, so the thread it
watches is one it started. Threads are real (the behaviour lives in them), and
every wait is bounded; what is asserted is which thread and loop served a
call, never how long something took.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from aiobotocore.credentials import AioDeferredRefreshableCredentials

from botocreds import AioRefresher, CredentialsUnavailable, _aioloop
from botocreds._aioloop import FetchInterrupted, _LoopThread, release, retain, run_on_loop

#: A bound on every wait: generous, so a busy machine never trips it.
JOIN = 30.0
#: The time-out given to calls that are expected to answer.
CALL = 10.0

Where = tuple[asyncio.AbstractEventLoop, threading.Thread]


async def where() -> Where:
    """The loop and thread a fetch ran on."""
    return asyncio.get_running_loop(), threading.current_thread()


def served() -> Where:
    """Where botocreds' loop runs a fetch handed to it from this thread."""
    answer: Where = run_on_loop(where, CALL)
    return answer


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[_LoopThread]:
    fresh = _LoopThread()
    monkeypatch.setattr(_aioloop, "_runner", fresh)
    yield fresh
    fresh._users = 0  # without the lock: a failed test may have left it held
    thread, loop = fresh.thread, fresh._loop
    if thread is not None and loop is not None:
        _aioloop._request_stop(loop)
        thread.join(JOIN)
    if loop is not None and not loop.is_running():
        loop.close()


class InBackground:
    """``run_on_loop`` called on a thread of its own, its answer or error kept."""

    def __init__(self, fetch: Callable[[], Any], timeout: float = CALL) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fetch, timeout), daemon=True)
        self._thread.start()

    def _run(self, fetch: Callable[[], Any], timeout: float) -> None:
        try:
            self.result = run_on_loop(fetch, timeout)
        except BaseException as error:
            self.error = error

    def join(self) -> Any:
        self._thread.join(JOIN)
        assert not self._thread.is_alive(), "run_on_loop did not return"
        if self.error is not None and not isinstance(self.error, Exception):
            # Re-raised here, a KeyboardInterrupt would end the test session.
            raise AssertionError(f"run_on_loop let {type(self.error).__name__} out")
        if self.error is not None:
            raise self.error
        return self.result


class Gate:
    """A fetch that starts, then waits on the loop until the test opens the gate."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self._gate: concurrent.futures.Future[None] = concurrent.futures.Future()

    async def fetch(self) -> Where:
        self.started.set()
        await asyncio.wrap_future(self._gate)
        return await where()

    def open(self) -> None:
        self._gate.set_result(None)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupting_fetcher_fails_its_own_fetch_and_the_loop_serves_the_others(
    runner: _LoopThread, interrupt: type[BaseException]
) -> None:
    retain()
    other_source = Gate()
    in_flight = InBackground(other_source.fetch)
    assert other_source.started.wait(JOIN)
    serving = runner.thread
    assert serving is not None

    async def interrupted() -> Mapping[str, Any]:
        raise interrupt("SessionToken=FwoGZXIvYXdzE-not-for-logs")

    with pytest.raises(FetchInterrupted) as caught:
        InBackground(interrupted).join()
    assert isinstance(caught.value, RuntimeError)
    assert interrupt.__name__ in str(caught.value)
    assert "FwoGZXIvYXdzE" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None

    other_source.open()
    answer: Where = in_flight.join()
    loop, thread = answer
    assert thread is serving and thread.is_alive()
    assert served() == (loop, serving)


def test_an_async_source_whose_fetch_raises_system_exit_fails_its_mint(
    runner: _LoopThread,
) -> None:
    async def exits() -> Mapping[str, Any]:
        raise SystemExit(3)

    with pytest.raises(CredentialsUnavailable, match="SystemExit"):
        AioRefresher(AioDeferredRefreshableCredentials(exits, "exits"))
    loop, thread = served()
    assert thread.name == "botocreds-aio" and loop is runner._loop


def test_an_exception_escaping_the_loop_leaves_its_thread_serving(
    runner: _LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    retain()
    _, serving = served()

    async def interrupts() -> None:
        raise KeyboardInterrupt

    async def spawns() -> None:
        # A task of the fetcher's own: asyncio lets its KeyboardInterrupt out of
        # run_forever(), past the wrapper around the fetch.
        await asyncio.get_running_loop().create_task(interrupts())

    with pytest.raises(FetchInterrupted, match="KeyboardInterrupt"):
        InBackground(spawns).join()
    assert "KeyboardInterrupt escaped its event loop" in caplog.text
    assert served()[1] is serving


def test_the_loop_thread_exits_after_the_last_release_and_the_loop_is_kept(
    runner: _LoopThread,
) -> None:
    retain()
    retain()
    loop, first = served()
    assert first.name == "botocreds-aio" and first.is_alive()
    release()
    assert served() == (loop, first), "one user left: the same thread serves"

    release()
    first.join(JOIN)
    assert not first.is_alive()
    assert runner.thread is None
    assert not loop.is_closed()

    again, second = served()
    assert again is loop, "loop-bound objects of the fetchers meet the same loop"
    assert second is not first
    second.join(JOIN)
    assert not second.is_alive(), "nothing retained: the thread returns after the call"


def test_a_call_in_flight_keeps_the_loop_thread_until_it_completes(runner: _LoopThread) -> None:
    retain()
    slow = Gate()
    in_flight = InBackground(slow.fetch)
    assert slow.started.wait(JOIN)
    serving = runner.thread
    assert serving is not None

    release()
    # The fetch still needs the loop to run once the gate opens.
    slow.open()
    answer: Where = in_flight.join()
    assert answer[1] is serving
    serving.join(JOIN)
    assert not serving.is_alive()


def test_a_loop_thread_that_cannot_start_fails_the_call_at_once_and_the_next_one_starts_it(
    runner: _LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = threading.Thread.start

    def refuse_loop_threads(thread: threading.Thread) -> None:
        if thread.name == "botocreds-aio":
            raise RuntimeError("can't start new thread")
        start(thread)

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse_loop_threads)
        for _ in range(2):
            refused = InBackground(where)
            with pytest.raises(RuntimeError, match="can't start new thread"):
                refused.join()
        assert runner.thread is None
        assert not runner._in_flight

    retain()  # held, so the thread that serves the call is still there to check
    loop, thread = served()
    assert thread.name == "botocreds-aio" and thread.is_alive()
    assert loop is runner._loop


def test_concurrent_first_calls_start_one_loop_thread(runner: _LoopThread) -> None:
    retain()
    barrier = threading.Barrier(8)

    def together() -> Where:
        barrier.wait(JOIN)
        return served()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: together(), range(8), timeout=JOIN))
    assert len({id(loop) for loop, _ in answers}) == 1
    assert len({id(thread) for _, thread in answers}) == 1


def test_release_does_not_wait_for_a_thread_starting_the_loop(runner: _LoopThread) -> None:
    retain()
    finished = threading.Event()

    def release_elsewhere() -> None:
        release()
        finished.set()

    with runner._start_lock:  # as a caller starting the loop's thread holds it
        threading.Thread(target=release_elsewhere, daemon=True).start()
        assert finished.wait(JOIN)
    assert runner.users == 0


def test_release_from_a_finalizer_inside_a_counter_update_returns(runner: _LoopThread) -> None:
    retain()
    retain()

    class Refresher:
        pass

    owners = [Refresher()]
    weakref.finalize(owners[0], release)
    finished = threading.Event()

    def collect_while_counting() -> None:
        with runner._counts:  # a finalizer may fire on a thread inside such a section
            owners.clear()
        finished.set()

    threading.Thread(target=collect_while_counting, daemon=True).start()
    assert finished.wait(JOIN)
    assert runner.users == 1


def test_a_stuck_loops_thread_returns_once_its_fetch_unblocks(
    runner: _LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_aioloop, "CANCEL_GRACE", 0.05)
    retain()
    unblock = threading.Event()
    stuck_on: list[Where] = []

    async def blocking() -> None:
        stuck_on.append(await where())
        unblock.wait(JOIN)  # a blocking call inside a coroutine: the loop is stuck

    try:
        with pytest.raises(TimeoutError):
            run_on_loop(blocking, 0.05)
        stuck_loop, stuck_thread = stuck_on[0]
        fresh_loop, fresh_thread = served()
        assert fresh_loop is not stuck_loop and fresh_thread is not stuck_thread
    finally:
        unblock.set()
    stuck_thread.join(JOIN)
    assert not stuck_thread.is_alive()
    assert fresh_thread.is_alive(), "the new loop's thread still has a user"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_runner_and_starts_its_thread_on_first_use(
    runner: _LoopThread,
) -> None:
    from tests.test_resilience import in_child

    retain()
    parent_loop, parent_thread = served()
    _aioloop._reset_after_fork()
    assert _aioloop._runner is runner, "no fork, no reset"

    def child() -> dict[str, Any]:
        own = _aioloop._runner
        report: dict[str, Any] = {
            "own_runner": own is not runner,
            "started_at_fork": own.thread is not None,
            "users": own.users,
        }
        loop, thread = served()
        report["own_loop"] = loop is not parent_loop
        release()
        thread.join(JOIN)
        report["exited"] = not thread.is_alive()
        return report

    report = in_child(child)
    assert report == {
        "own_runner": True,
        "started_at_fork": False,
        "users": 1,
        "own_loop": True,
        "exited": True,
    }
    assert served() == (parent_loop, parent_thread)
