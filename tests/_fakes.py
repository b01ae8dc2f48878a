"""Deterministic stand-ins for the clock, the random source, a fetcher and the mint pool."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from botocore.credentials import RefreshableCredentials

from botocreds import RefreshPolicy
from botocreds._refresher import Refresher
from botocreds._scheduler import Job, Scheduler

EPOCH = 1_800_000_000.0


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, start: float = EPOCH) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


class Return:
    """A scripted answer returned as it is, however malformed."""

    def __init__(self, value: object) -> None:
        self.value = value


class ScriptedFetcher:
    """A fetch function returning credentials that live ``lifetime`` s, or failing on cue.

    ``script`` is consumed one item per call: ``None`` means succeed, an
    exception instance is raised, and a :class:`Return` is returned as it is.
    When the script is exhausted every call succeeds.
    """

    def __init__(
        self, clock: FakeClock, lifetime: float = 3600.0, script: Iterable[object] = ()
    ) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.script = list(script)
        self.calls = 0
        self.threads: list[str] = []
        self._serial = itertools.count(1)
        self.lock = threading.Lock()
        #: Every (access key, secret key, token) issued, for secret scans.
        self.issued: list[tuple[str, str, str]] = []

    def answer(self) -> dict[str, Any]:
        serial = next(self._serial)
        access_key = f"ASIAFAKE{serial:08d}"
        secret_key = f"wJalrXUtnFEMI/K7MDENG/secret{serial:06d}"
        token = f"IQoJb3JpZ2luX2VjEFAKETOKEN{serial:06d}"
        self.issued.append((access_key, secret_key, token))
        return {
            "access_key": access_key,
            "secret_key": secret_key,
            "token": token,
            "expiry_time": iso(self.clock() + self.lifetime),
        }

    def __call__(self) -> Mapping[str, Any]:
        with self.lock:
            self.calls += 1
            self.threads.append(threading.current_thread().name)
            step = self.script.pop(0) if self.script else None
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Return):
            return step.value  # type: ignore[return-value]
        return self.answer()


class Target:
    """A schedulable that records when it became due."""

    def __init__(self) -> None:
        self.due = threading.Event()

    def _on_due(self, now: float) -> None:
        self.due.set()

    def _after_fork_in_child(self) -> None:
        pass


class JobQueue:
    """A mint pool that runs nothing until the test says so."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.added = threading.Condition()

    def __call__(self, job: Job) -> None:
        with self.added:
            self.jobs.append(job)
            self.added.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self.added:
            if not self.added.wait_for(lambda: len(self.jobs) >= count, timeout):
                raise AssertionError(f"expected {count} queued mint(s), saw {len(self.jobs)}")

    def run_all(self) -> int:
        ran = 0
        while self.jobs:
            self.jobs.pop(0)()
            ran += 1
        return ran


def refreshable(fetch: Callable[[], Mapping[str, Any]]) -> RefreshableCredentials:
    return RefreshableCredentials.create_from_metadata(dict(fetch()), fetch, "test-source")


class Harness:
    """A Refresher on a fake clock, a fixed random sample and a manual scheduler."""

    def __init__(
        self,
        policy: RefreshPolicy | None = None,
        *,
        lifetime: float = 3600.0,
        script: Iterable[object] = (),
        sample: float = 0.0,
        inline: bool = False,
    ) -> None:
        self.clock = FakeClock()
        self.queue = JobQueue()
        self.fetcher = ScriptedFetcher(self.clock, lifetime)
        self.credentials = refreshable(self.fetcher)
        self.fetcher.calls = 0
        self.fetcher.script = list(script)
        self.scheduler = Scheduler(
            self.clock, (lambda job: job()) if inline else self.queue, autostart=False
        )
        self.refresher = Refresher(
            self.credentials,
            policy=policy or RefreshPolicy(),
            clock=self.clock,
            random=lambda: sample,
            _scheduler=self.scheduler,
        )

    def tick(self, seconds: float) -> None:
        """Advance the clock, run what is due, and run the mints it queued."""
        self.clock.advance(seconds)
        self.scheduler.run_pending()
        self.queue.run_all()

    def key(self) -> str:
        return self.refresher.credentials.access_key
