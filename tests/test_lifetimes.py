"""What attach() and Refresher.attach() keep alive, and how long a client stays covered.

Retention is measured structurally: live refreshers and reporters are counted
through weak references after a collection, and the attach registry's entries
are counted directly. No memory figures.
"""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

from botocore.client import BaseClient
from botocore.credentials import Credentials

import botocreds
from botocreds import BackgroundCredentials, Refresher, RefreshEvent, _attach, _botocore, _forksafe
from botocreds._scheduler import Scheduler

from ._fakes import FakeClock, JobQueue, ScriptedFetcher, refreshable
from ._sessions import session_with

CYCLES = 200


class _Reporter:
    """A reporter that can be referenced weakly, to tell when it is freed."""

    def __call__(self, event: RefreshEvent) -> None:
        pass


def _static() -> Credentials:
    return Credentials("AKIASTATIC000001", "static-secret-key")


def _client_of(credentials: Credentials) -> BaseClient:
    client: BaseClient = session_with(credentials).client("s3")
    return client


def _live(refs: list[weakref.ref[Any]]) -> list[Any]:
    gc.collect()
    return [found for found in (ref() for ref in refs) if found is not None]


def _account_id_builtin(client: BaseClient) -> Any:
    builtins = _botocore._builtins(client)
    assert builtins is not None and _botocore.ACCOUNT_ID_BUILTIN in builtins
    return builtins[_botocore.ACCOUNT_ID_BUILTIN]


class _Manual:
    """Refreshers on a fake clock and a scheduler driven by hand: nothing runs by itself."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.scheduler = Scheduler(self.clock, JobQueue(), autostart=False)
        self.credentials = refreshable(ScriptedFetcher(self.clock))

    def refresher(self, credentials: Any = None) -> Refresher:
        return Refresher(
            self.credentials if credentials is None else credentials,
            clock=self.clock,
            _scheduler=self.scheduler,
        )


class TestRegistry:
    def test_attach_and_close_cycles_with_new_reporters_leave_no_dead_registry_entries(
        self,
    ) -> None:
        credentials = _static()
        client = _client_of(credentials)
        reporters: list[weakref.ref[Any]] = []
        for _ in range(CYCLES):
            reporter = _Reporter()
            reporters.append(weakref.ref(reporter))
            with botocreds.attach(client, reporter=reporter):
                pass
            del reporter
            assert len(_attach._registry.get(credentials, {})) <= 1
        # The last entry goes on the next attach(), close() or scheduler pass.
        assert len(_live(reporters)) <= 1
        _attach._drain_releases()
        assert credentials not in _attach._registry
        assert _live(reporters) == []

    def test_a_refresher_collected_without_another_attach_leaves_the_registry(self) -> None:
        credentials = _static()
        handle = botocreds.attach(_client_of(credentials))
        handle.close()
        refresher = weakref.ref(handle.refresher)
        del handle
        assert _live([refresher]) == []
        _attach._drain_releases()  # what the next close() or the scheduler thread does
        assert credentials not in _attach._registry

    def test_a_live_refresher_keeps_its_registry_entry_and_is_shared(self) -> None:
        credentials = _static()
        first = botocreds.attach(_client_of(credentials))
        gc.collect()
        _attach._drain_releases()
        assert len(_attach._registry[credentials]) == 1
        second = botocreds.attach(_client_of(credentials))
        assert second.refresher is first.refresher


class TestReattaching:
    def test_reattaching_a_client_to_new_refreshers_frees_the_replaced_ones(self) -> None:
        manual = _Manual()
        client = _client_of(manual.credentials)
        refreshers: list[weakref.ref[Any]] = []
        for _ in range(CYCLES):
            refresher = manual.refresher()
            refreshers.append(weakref.ref(refresher))
            refresher.attach(client)
        assert _live(refreshers) == [refresher]
        assert manual.scheduler.members() == [refresher]
        assert _botocore.client_credentials(client) is refresher.credentials

    def test_detaching_goes_back_to_the_replaced_refresher_while_it_lives(self) -> None:
        manual = _Manual()
        client = _client_of(manual.credentials)
        original_builtin = _account_id_builtin(client)
        first, second = manual.refresher(), manual.refresher()
        first.attach(client)
        second.attach(client)
        second.detach(client)
        assert _botocore.client_credentials(client) is first.credentials
        first.detach(client)
        assert _botocore.client_credentials(client) is manual.credentials
        assert _account_id_builtin(client) is original_builtin

    def test_detaching_falls_back_to_the_original_once_the_replaced_refresher_is_gone(
        self,
    ) -> None:
        manual = _Manual()
        client = _client_of(manual.credentials)
        original_builtin = _account_id_builtin(client)
        first = manual.refresher()
        first.attach(client)
        gone = weakref.ref(first)
        second = manual.refresher()
        second.attach(client)
        del first
        assert _live([gone]) == []
        second.detach(client)
        assert _botocore.client_credentials(client) is manual.credentials
        assert _account_id_builtin(client) is original_builtin

    def test_reattaching_a_wrapped_sessions_client_frees_replaced_refreshers_and_detach_returns_to_the_session(  # noqa: E501
        self,
    ) -> None:
        manual = _Manual()
        session = botocreds.wrap(session_with(_static()))
        background = session.get_credentials()
        assert isinstance(background, BackgroundCredentials)
        client = session.client("s3")
        refreshers: list[weakref.ref[Any]] = []
        for _ in range(CYCLES):
            refresher = manual.refresher()
            refreshers.append(weakref.ref(refresher))
            refresher.attach(client)
        assert _live(refreshers) == [refresher]
        refresher.detach(client)
        assert _botocore.client_credentials(client) is background

    def test_attaching_a_client_to_its_own_refresher_again_changes_nothing(self) -> None:
        manual = _Manual()
        client = _client_of(manual.credentials)
        refresher = manual.refresher()
        refresher.attach(client)
        refresher.attach(client)
        refresher.detach(client)
        assert _botocore.client_credentials(client) is manual.credentials


class TestCounting:
    def test_a_client_attached_twice_stays_covered_until_the_second_handle_closes(self) -> None:
        self._close_in_order(close_first_handle_first=True)

    def test_a_client_attached_twice_stays_covered_until_the_first_handle_closes(self) -> None:
        self._close_in_order(close_first_handle_first=False)

    @staticmethod
    def _close_in_order(*, close_first_handle_first: bool) -> None:
        credentials = _static()
        client = _client_of(credentials)
        first = botocreds.attach(client)
        second = botocreds.attach(client)
        assert second.refresher is first.refresher
        earlier, later = (first, second) if close_first_handle_first else (second, first)
        earlier.close()
        assert (earlier.closed, later.closed) == (True, False), "closed is per handle"
        assert _botocore.client_credentials(client) is first.credentials
        assert not first.refresher.closed
        later.close()
        assert (earlier.closed, later.closed) == (True, True)
        assert _botocore.client_credentials(client) is credentials
        assert second.refresher.closed, "the last use of the shared refresher is given back"
        assert client not in _attach._coverage

    def test_closing_a_handle_twice_counts_it_out_once(self) -> None:
        credentials = _static()
        client = _client_of(credentials)
        first, second = botocreds.attach(client), botocreds.attach(client)
        first.close()
        first.close()
        with first:
            pass  # leaving the context closes it a third time
        assert not second.closed
        assert _botocore.client_credentials(client) is second.credentials
        second.close()
        assert _botocore.client_credentials(client) is credentials

    def test_attaching_after_the_last_handle_closed_covers_the_client_anew(self) -> None:
        credentials = _static()
        client = _client_of(credentials)
        botocreds.attach(client).close()
        again = botocreds.attach(client)
        assert isinstance(_botocore.client_credentials(client), BackgroundCredentials)
        again.close()
        assert _botocore.client_credentials(client) is credentials

    def test_a_handle_on_a_wrapped_sessions_client_only_gives_its_use_back(self) -> None:
        session = botocreds.wrap(session_with(_static()))
        client = session.client("s3")
        background = session.get_credentials()
        handle = botocreds.attach(client)
        handle.close()
        assert handle.closed
        assert _botocore.client_credentials(client) is background
        assert not handle.refresher.closed, "the wrapped session still uses it"

    def test_a_handle_on_a_client_a_refresher_covers_does_not_detach_it(self) -> None:
        manual = _Manual()
        client = _client_of(manual.credentials)
        refresher = manual.refresher()
        refresher.attach(client)
        handle = botocreds.attach(client)
        assert handle.refresher is refresher
        handle.close()
        assert _botocore.client_credentials(client) is refresher.credentials

    def test_handles_opened_and_closed_from_many_threads_leave_the_client_as_it_was(
        self,
    ) -> None:
        credentials = _static()
        client = _client_of(credentials)
        anchor = botocreds.attach(client)
        failures: list[BaseException] = []

        def cycle() -> None:
            try:
                for _ in range(50):
                    handle = botocreds.attach(client)
                    assert _botocore.client_credentials(client) is anchor.credentials
                    handle.close()
            except BaseException as error:  # reported to the test thread below
                failures.append(error)

        threads = [threading.Thread(target=cycle) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        assert failures == []
        assert _attach._coverage[client].handles == 1
        anchor.close()
        assert _botocore.client_credentials(client) is credentials
        assert anchor.refresher.closed


def test_renewing_the_module_locks_frees_locks_held_at_fork() -> None:
    # As in a child forked while another thread held both locks: the renewal
    # must leave locks that nobody holds.
    held = (_attach._registry_lock, _attach._drain_lock)
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with held[0], held[1]:
            holding.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        _forksafe._renew_locks()  # what the child's at-fork handler does first
        renewed = (_attach._registry_lock, _attach._drain_lock)
        assert all(new is not old for new, old in zip(renewed, held, strict=True))
        for lock in renewed:
            assert lock.acquire(blocking=False), "a renewed lock is still held"
            lock.release()
    finally:
        done.set()
        holder.join(10)
    assert not holder.is_alive()


def test_a_refresher_with_a_shared_cache_is_freed_by_reference_counting_alone(
    tmp_path: Any,
) -> None:
    # The cache tier reaches its refresher only weakly: no reference cycle
    # keeps a refresher nobody uses calling its source until a full collection.
    clock = FakeClock()
    fetcher = ScriptedFetcher(clock)
    scheduler = Scheduler(clock, JobQueue(), autostart=False)
    cache = botocreds.FileCache(tmp_path / "cache")
    gc.disable()
    try:
        refresher = Refresher(
            refreshable(fetcher),
            clock=clock,
            cache=cache,
            cache_key="lifetimes-role",
            _scheduler=scheduler,
        )
        alive = weakref.ref(refresher)
        del refresher
        assert alive() is None, "a refresher with cache= outlived its last reference"
    finally:
        gc.enable()
