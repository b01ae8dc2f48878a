"""The mint pool and the scheduler's membership, without refreshers."""

from __future__ import annotations

import gc
import threading

from botocreds._scheduler import MintPool, Scheduler

from ._fakes import FakeClock, Target


def test_a_disowned_stuck_worker_frees_its_slot_for_other_work() -> None:
    pool = MintPool(max_workers=1)
    stuck, release, other_ran = threading.Event(), threading.Event(), threading.Event()
    workers: list[threading.Thread] = []

    def hang() -> None:
        workers.append(threading.current_thread())
        stuck.set()
        release.wait(10)

    pool.submit(hang)
    assert stuck.wait(10)
    pool.submit(other_ran.set)
    assert not other_ran.wait(0.1), "the only slot is taken"
    pool.disown(workers[0])
    assert other_ran.wait(10), "a new worker took the freed slot"
    release.set()
    workers[0].join(10)
    assert not workers[0].is_alive(), "the stuck worker exits once its job returns"


def test_refreshers_are_held_weakly() -> None:
    scheduler = Scheduler(FakeClock(), lambda job: job(), autostart=False)
    target = Target()
    scheduler.register(target)
    scheduler.schedule(target, 0.0)
    del target
    gc.collect()
    assert scheduler.members() == []
    assert scheduler.run_pending() is None
