"""The pure refresher core (``_core``): a stateful model of one source, and properties.

The state machine drives the transitions directly, with no threads, sleeps,
clients or runtime. It keeps what the runtime keeps around the state: two
clocks (monotonic and wall, which move apart when the wall clock steps), the
mints it has started and whether their fetch threads still run, the requests
waiting for a mint, the look last handed to the scheduler and the snapshot
last published. Each rule applies a transition and runs its effects the way
``_runtime`` does: stores under the lock first (publish, wake, schedule), then
the rest (start a mint, fold in a mint that could not start).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

from botocore.credentials import ReadOnlyCredentials
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from botocreds import _core
from botocreds._breaker import Breaker, BreakerState
from botocreds._policy import RefreshPolicy
from botocreds._snapshot import Snapshot, make_snapshot

MONO_EPOCH = 1_000.0
WALL_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z

TIGHT = RefreshPolicy(
    floor=10.0,
    failure_threshold=2,
    cooldown=5.0,
    min_interval=0.0,
    backoff_base=0.0,
    mint_timeout=30.0,
    wait_timeout=5.0,
)
#: Waits outlast the mint budget, so a waiting request finds its mint hung.
PATIENT = RefreshPolicy(
    fraction=0.5,
    floor=30.0,
    jitter=0.5,
    min_interval=5.0,
    failure_threshold=3,
    cooldown=20.0,
    wait_timeout=15.0,
    static_ttl=300.0,
    backoff_base=2.0,
    backoff_max=20.0,
    mint_timeout=10.0,
)
POLICIES = st.sampled_from([RefreshPolicy(), TIGHT, PATIENT])
SAMPLES = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
#: Seconds of life beyond the floor a new set arrives with.
EXTRA_LIFE = st.sampled_from([1.0, 20.0, 300.0, 3600.0])
TIME_STEPS = st.one_of(
    st.floats(min_value=0.0, max_value=2.0),
    st.sampled_from([0.25, 5.0, 30.0, 120.0, 600.0, 3600.0, 7200.0]),
)
WALL_STEPS = st.one_of(
    st.floats(min_value=-4 * 3600.0, max_value=4 * 3600.0),
    st.sampled_from([-3600.0, -60.0, 60.0, 3600.0]),
)
LATE_BY = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=2.0),
    st.floats(min_value=0.0, max_value=200.0),
    st.just(3600.0),
)

Accept = Callable[[Snapshot, float], bool]


def still_valid(snapshot: Snapshot, wall: float) -> bool:
    return wall < snapshot.valid_until


def credentials(serial: int) -> ReadOnlyCredentials:
    return ReadOnlyCredentials(
        access_key=f"ASIACORE{serial:08d}",
        secret_key=f"secret-{serial}",
        token=f"token-{serial}",
        account_id=None,
    )


@dataclass
class StartedMint:
    """A mint the model started: when, and whether its fetch thread still runs (or is queued)."""

    started: float
    running: bool


@dataclass(eq=False)
class Waiter:
    """A request asleep after ``demand`` told it to wait.

    ``limit`` is when its bounded sleep ends on its own (the deadline, or the
    pace it waits for); ``woken`` whether a WakeWaiters reached it since.
    """

    deadline: float
    awaited: int | None
    limit: float
    accept: Accept
    situation: str
    woken: bool = False


class CoreMachine(RuleBasedStateMachine):
    """One source, driven through time, mint results, hangs, forks, clock steps and close."""

    def __init__(self) -> None:
        super().__init__()
        self.mono = MONO_EPOCH
        self.wall = WALL_EPOCH
        self.serial = 0
        self.mints: dict[int, StartedMint] = {}
        self.waiters: list[Waiter] = []
        self.look_at: float | None = None
        self.published: Snapshot | None = None
        self.threads_fail = False
        self.policy = RefreshPolicy()
        self.kind = "expiring"
        self.state: _core.RefresherState

    # -- the runtime, as the model sees it -----------------------------------------
    def fresh(self, extra: float) -> Snapshot:
        self.serial += 1
        expires_at = None if self.kind != "expiring" else self.wall + self.policy.floor + extra
        return make_snapshot(
            credentials(self.serial), now=self.wall, expires_at=expires_at, floor=self.policy.floor
        )

    def commit(
        self, new: _core.RefresherState, effects: _core.Effects, *, forked: bool = False
    ) -> None:
        """What ``_runtime._commit`` does under the lock."""
        old, self.state = self.state, new
        released = (old.claimed is not None and new.claimed != old.claimed) or (
            old.abandoned is not None and new.abandoned is None
        )
        if released and not forked:  # in a child, the parent's waiters do not exist
            assert _core.WakeWaiters() in effects, "a mint ended and no waiter was woken"
        if new.closed and not old.closed:
            self.look_at = None  # unregistered: its pending look is dropped
        for effect in effects:
            if isinstance(effect, _core.StartMint):
                assert old.last_id < effect.mint.id == new.last_id, "mint ids must be new"
                assert new.claimed == effect.mint
            elif isinstance(effect, _core.Publish):
                assert self.wall < effect.snapshot.valid_until, "published an expired set"
                self.published = effect.snapshot
            elif isinstance(effect, _core.WakeWaiters):
                for waiter in self.waiters:
                    waiter.woken = True
            elif isinstance(effect, _core.LookAt):
                if not new.closed:  # the scheduler ignores a refresher that is not a member
                    self.look_at = effect.when
            elif isinstance(effect, _core.Unschedule):
                self.look_at = None
            elif isinstance(effect, _core.Disown):
                assert new.abandoned is not None and new.abandoned.id == effect.mint_id

    def run(self, effects: _core.Effects, sample: float) -> None:
        """What ``_runtime._run`` does after the lock: start mints (or fail them at once)."""
        for effect in effects:
            if isinstance(effect, _core.StartMint):
                mint = effect.mint
                assert mint.id not in self.mints
                self.mints[mint.id] = StartedMint(mint.started, running=not self.threads_fail)
                if self.threads_fail:
                    self.fold(mint.id, _core.Outcome(None, "no mint thread", 0.0), sample)

    def step(self, result: _core.Step, sample: float, *, forked: bool = False) -> None:
        self.commit(*result, forked=forked)
        self.run(result[1], sample)

    def fold(self, mint_id: int, outcome: _core.Outcome, sample: float) -> None:
        self.step(
            _core.on_result(
                self.state,
                self.policy,
                mint_id,
                outcome,
                wall=self.wall,
                mono=self.mono,
                sample=sample,
            ),
            sample,
        )

    def serve(self, snapshot: Snapshot) -> None:
        assert self.wall < snapshot.valid_until, "served an expired set"

    def on_due(self, sample: float) -> None:
        self.step(
            _core.on_due(self.state, self.policy, wall=self.wall, mono=self.mono, sample=sample),
            sample,
        )

    def request(
        self,
        *,
        deadline: float,
        awaited: int | None,
        accept: Accept,
        situation: str,
        sample: float,
    ) -> None:
        """One pass of ``_runtime._mint_steps``: until it is served, gives up or sleeps."""
        for _ in range(8):
            if accept(self.state.snapshot, self.wall):
                self.serve(self.state.snapshot)
                return
            new, effects, verdict = _core.demand(
                self.state,
                self.policy,
                wall=self.wall,
                mono=self.mono,
                sample=sample,
                awaited=awaited,
                situation=situation,
            )
            if self.state.claimed is not None:
                assert not any(isinstance(e, _core.StartMint) for e in effects)
            self.commit(new, effects)
            asleep = False
            if isinstance(verdict, _core.Wait):
                if verdict.mint_id is not None:
                    assert new.claimed is not None and new.claimed.id == verdict.mint_id
                    awaited = verdict.mint_id
                limit = deadline if verdict.until is None else min(deadline, verdict.until)
                if limit - self.mono > 0:
                    self.waiters.append(Waiter(deadline, awaited, limit, accept, situation))
                    asleep = True
            self.run(effects, sample)
            if isinstance(verdict, _core.GiveUp) or asleep:
                return
            if not any(isinstance(e, _core.StartMint) for e in effects):
                return  # out of time: CredentialsUnavailable
        raise AssertionError("a request kept looping without waiting")

    def resume(self, waiter: Waiter, sample: float) -> None:
        self.waiters.remove(waiter)
        self.request(
            deadline=waiter.deadline,
            awaited=waiter.awaited,
            accept=waiter.accept,
            situation=waiter.situation,
            sample=sample,
        )

    def pass_time(self, seconds: float, sample: float) -> None:
        """Both clocks advance; every sleep that has reached its limit ends."""
        self.mono += seconds
        self.wall += seconds
        for _ in range(100):
            due = [w for w in self.waiters if w.woken or w.limit <= self.mono]
            if not due:
                return
            self.resume(due[0], sample)
        raise AssertionError("waiting requests kept waking each other")

    def running(self) -> set[int]:
        return {mint_id for mint_id, mint in self.mints.items() if mint.running}

    # -- rules ------------------------------------------------------------------------
    @initialize(
        policy=POLICIES,
        kind=st.sampled_from(["expiring", "expiring", "static", "renewing"]),
        extra=EXTRA_LIFE,
        sample=SAMPLES,
        adopt=st.booleans(),
    )
    def first_set(
        self, policy: RefreshPolicy, kind: str, extra: float, sample: float, adopt: bool
    ) -> None:
        """The eager first mint, or (``adopt``) a set botocore had just fetched, taken over."""
        self.policy = policy
        self.kind = kind
        snapshot = self.fresh(extra)
        if adopt:
            state, effects = _core.adopted(
                snapshot,
                policy,
                renews_static=kind == "renewing",
                mono=self.mono,
                wall=self.wall,
                sample=sample,
            )
            self.state = state
            self.commit(state, effects)
            return
        state, effects = _core.initial(
            snapshot,
            policy,
            renews_static=kind == "renewing",
            mono=self.mono,
            wall=self.wall,
            sample=sample,
            duration=0.1,
        )
        self.state = state
        self.commit(state, effects)
        self.mints[state.last_id] = StartedMint(self.mono, running=False)

    @rule(sample=SAMPLES, racy=st.booleans())
    def reader_looks(self, sample: float, racy: bool) -> None:
        """``_serve_valid``, and ``_wait_for_fresh`` once the set has expired.

        ``racy``: the lock-free precheck saw an older state, so ``refresh_early``
        runs whatever the state now holds (claimed, abandoned, closed).
        """
        state = self.state
        snapshot = state.snapshot
        if self.wall < snapshot.fresh_until:
            self.serve(snapshot)
            return
        if self.wall >= snapshot.valid_until:
            self.request(
                deadline=self.mono + self.policy.wait_timeout,
                awaited=None,
                accept=still_valid,
                situation="the credentials expired",
                sample=sample,
            )
            return
        idle = state.claimed is None and state.abandoned is None and not state.closed
        if racy or (idle and self.mono >= _core.demand_pace(state, self.policy)):
            new, effects = _core.refresh_early(state, self.policy, wall=self.wall, mono=self.mono)
            assert new.snapshot is snapshot
            self.step((new, effects), sample)
        self.serve(snapshot)

    @precondition(lambda self: self.wall < self.state.snapshot.fresh_until < math.inf)
    @rule(
        into=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
        by_step=st.booleans(),
        sample=SAMPLES,
        racy=st.booleans(),
    )
    def reader_looks_inside_the_floor(
        self, into: float, by_step: bool, sample: float, racy: bool
    ) -> None:
        """The scheduler did not refresh in time (late, or the wall clock stepped)."""
        snapshot = self.state.snapshot
        target = snapshot.fresh_until + into * (snapshot.valid_until - snapshot.fresh_until)
        if by_step:
            self.wall = target
        else:
            self.pass_time(target - self.wall, sample)
        self.reader_looks(sample, racy)

    @rule(sample=SAMPLES)
    def aws_rejects_the_served_set(self, sample: float) -> None:
        """``_invalidate``: wait for a set with another access key."""
        rejected = self.state.snapshot.frozen.access_key

        def replacement(snapshot: Snapshot, wall: float) -> bool:
            return snapshot.frozen.access_key != rejected and wall < snapshot.valid_until

        self.request(
            deadline=self.mono + self.policy.wait_timeout,
            awaited=None,
            accept=replacement,
            situation="AWS rejected the credentials (ExpiredToken)",
            sample=sample,
        )

    @precondition(lambda self: any(w.woken for w in self.waiters))
    @rule(data=st.data(), sample=SAMPLES)
    def woken_request_runs(self, data: st.DataObject, sample: float) -> None:
        woken = [w for w in self.waiters if w.woken]
        self.resume(data.draw(st.sampled_from(woken)), sample)

    @precondition(lambda self: self.look_at is not None)
    @rule(sample=SAMPLES)
    def scheduler_fires(self, sample: float) -> None:
        assert self.look_at is not None
        if self.look_at > self.mono:
            self.pass_time(self.look_at - self.mono, sample)
        if self.look_at is not None and self.look_at <= self.mono:
            self.look_at = None  # popped from the heap
            self.on_due(sample)

    @precondition(lambda self: not self.state.closed)
    @rule(sample=SAMPLES)
    def scheduler_looks_again(self, sample: float) -> None:
        """``Scheduler.look_again``: the scheduler noticed a clock step or a sleep."""
        self.on_due(sample)

    @precondition(lambda self: bool(self.running()))
    @rule(data=st.data(), ok=st.booleans(), late_by=LATE_BY, extra=EXTRA_LIFE, sample=SAMPLES)
    def mint_finishes(
        self, data: st.DataObject, ok: bool, late_by: float, extra: float, sample: float
    ) -> None:
        mint_id = data.draw(st.sampled_from(sorted(self.running())))
        self.pass_time(late_by, sample)
        mint = self.mints[mint_id]
        assert mint.running
        mint.running = False
        duration = self.mono - mint.started
        outcome = (
            _core.Outcome(self.fresh(extra), None, duration)
            if ok
            else _core.Outcome(None, "AccessDenied: not allowed", duration)
        )
        was_claimed = self.state.claimed is not None and self.state.claimed.id == mint_id
        self.fold(mint_id, outcome, sample)
        if ok:  # an abandoned mint's late answer is discarded
            assert (self.state.snapshot is outcome.snapshot) is was_claimed
        assert self.state.claimed is None or self.state.claimed.id != mint_id
        assert self.state.abandoned is None or self.state.abandoned.id != mint_id

    @precondition(lambda self: any(not m.running for m in self.mints.values()))
    @rule(data=st.data(), ok=st.booleans(), extra=EXTRA_LIFE, sample=SAMPLES)
    def stale_result_is_ignored(
        self, data: st.DataObject, ok: bool, extra: float, sample: float
    ) -> None:
        """A result for a mint already folded in, or lost in a fork, changes nothing."""
        done = sorted(i for i, m in self.mints.items() if not m.running)
        mint_id = data.draw(st.sampled_from(done))
        outcome = _core.Outcome(self.fresh(extra) if ok else None, None if ok else "late", 1.0)
        before = self.state
        new, effects = _core.on_result(
            before, self.policy, mint_id, outcome, wall=self.wall, mono=self.mono, sample=sample
        )
        assert new is before
        assert effects == ()

    @precondition(
        lambda self: self.state.claimed is not None and self.state.claimed.id in self.running()
    )
    @rule(beyond=st.floats(min_value=0.0, max_value=60.0), sample=SAMPLES)
    def mint_hangs(self, beyond: float, sample: float) -> None:
        claimed = self.state.claimed
        assert claimed is not None
        timeout_at = claimed.started + self.policy.mint_timeout + beyond
        if timeout_at > self.mono:
            self.pass_time(timeout_at - self.mono, sample)
        still = self.state.claimed == claimed and not self.state.closed
        if self.look_at is not None and self.look_at <= self.mono:
            self.look_at = None
        self.on_due(sample)
        if still:
            assert self.state.claimed is None
            assert self.state.abandoned == claimed
            assert claimed.id in self.running()

    @rule(sample=SAMPLES)
    def fork(self, sample: float) -> None:
        for mint in self.mints.values():
            mint.running = False  # the child has none of the parent's threads
        self.waiters.clear()
        self.look_at = None  # the scheduler's heap is cleared in the child
        new, effects = _core.after_fork(
            self.state, self.policy, wall=self.wall, mono=self.mono, sample=sample
        )
        assert new.claimed is None
        assert new.abandoned is None
        assert not new.breaker.probing
        assert all(isinstance(e, _core.LookAt) for e in effects)
        self.step((new, effects), sample, forked=True)

    @rule(seconds=WALL_STEPS)
    def wall_clock_steps(self, seconds: float) -> None:
        self.wall += seconds

    @rule(seconds=TIME_STEPS, sample=SAMPLES)
    def time_passes(self, seconds: float, sample: float) -> None:
        self.pass_time(seconds, sample)

    @rule(sample=SAMPLES)
    def close(self, sample: float) -> None:
        self.step(_core.on_close(self.state), sample)
        assert self.state.closed

    @rule(sample=SAMPLES)
    def reopen(self, sample: float) -> None:
        self.step(_core.on_reopen(self.state, self.policy, wall=self.wall, mono=self.mono), sample)
        assert not self.state.closed

    @rule(fail=st.booleans())
    def threads_cannot_start(self, fail: bool) -> None:
        """From now on a StartMint's thread cannot (``fail``) or can start."""
        self.threads_fail = fail

    # -- invariants ---------------------------------------------------------------
    @invariant()
    def at_most_one_claimed_and_one_abandoned_fetch(self) -> None:
        running = self.running()
        claimed, abandoned = self.state.claimed, self.state.abandoned
        assert len({m for m in running if claimed is not None and m == claimed.id}) <= 1
        assert len({m for m in running if abandoned is not None and m == abandoned.id}) <= 1
        tracked = {m.id for m in (claimed, abandoned) if m is not None}
        assert running <= tracked, "a fetch thread runs that the state has forgotten"

    @invariant()
    def the_flag_always_clears(self) -> None:
        for mint in (self.state.claimed, self.state.abandoned):
            if mint is not None:
                assert mint.id in self.running(), f"{mint} is held but no thread will finish it"

    @invariant()
    def every_waiter_wakes_by_its_deadline(self) -> None:
        for waiter in self.waiters:
            assert waiter.limit <= waiter.deadline
            if waiter.woken:
                continue
            assert self.mono < waiter.limit
            if waiter.awaited is not None:
                claimed = self.state.claimed
                assert claimed is not None and claimed.id == waiter.awaited, (
                    f"mint {waiter.awaited} finished and its waiter was not woken"
                )

    @invariant()
    def the_published_set_is_the_served_one(self) -> None:
        assert self.published is self.state.snapshot

    @invariant()
    def every_open_refresher_has_a_due_time(self) -> None:
        state = self.state
        if state.closed:
            return
        busy = (
            state.claimed is not None
            or state.abandoned is not None
            or state.last_failed
            or state.snapshot.expires
            or state.renews_static
        )
        if busy:
            assert _core.next_look(state, self.policy, self.wall, self.mono) is not None
            assert self.look_at is not None, "an open refresher has no look scheduled"
        if state.claimed is not None:
            assert self.look_at is not None
            assert self.look_at <= state.claimed.started + self.policy.mint_timeout


CoreMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestCoreMachine = CoreMachine.TestCase


# -- properties over arbitrary states --------------------------------------------------
def _snapshot_at(wall: float, lifetime: float | None, floor: float = 10.0) -> Snapshot:
    expires_at = None if lifetime is None else wall + floor + lifetime
    return make_snapshot(credentials(1), now=wall, expires_at=expires_at, floor=floor)


times = st.floats(min_value=-100.0, max_value=100.0)
policies = st.sampled_from(
    [RefreshPolicy(), TIGHT, PATIENT, RefreshPolicy(min_interval=0, backoff_base=0, cooldown=0)]
)
breakers = st.builds(
    Breaker,
    state=st.sampled_from(list(BreakerState)),
    failures=st.integers(min_value=0, max_value=10),
    opened_at=times,
    probing=st.booleans(),
)


@st.composite
def states(
    draw: st.DrawFn,
    *,
    claimed: bool | None = None,
    last_failed: bool | None = None,
) -> _core.RefresherState:
    """An arbitrary state around monotonic 0 and wall ``WALL_EPOCH``."""
    last_id = draw(st.integers(min_value=1, max_value=50))
    holds = draw(st.booleans()) if claimed is None else claimed
    mint = _core.Mint(last_id, draw(times)) if holds else None
    abandoned = None
    if not holds and draw(st.booleans()):
        abandoned = _core.Mint(draw(st.integers(min_value=1, max_value=last_id)), draw(times))
    snapshot = _snapshot_at(
        WALL_EPOCH + draw(times), draw(st.one_of(st.none(), st.floats(1.0, 3600.0)))
    )
    return _core.RefresherState(
        snapshot,
        renews_static=draw(st.booleans()),
        breaker=draw(breakers),
        last_id=last_id,
        claimed=mint,
        abandoned=abandoned,
        last_start=draw(times),
        last_failed=draw(st.booleans()) if last_failed is None else last_failed,
        not_before=draw(st.one_of(st.just(-math.inf), times)),
        refresh_at=draw(st.one_of(st.just(math.inf), times.map(lambda t: WALL_EPOCH + t))),
        last_error=draw(st.one_of(st.none(), st.just("AccessDenied"))),
        closed=draw(st.booleans()),
    )


def _starts(effects: _core.Effects) -> list[_core.StartMint]:
    return [effect for effect in effects if isinstance(effect, _core.StartMint)]


def _fresh(policy: RefreshPolicy, wall: float) -> _core.RefresherState:
    """The state after an eager first mint at monotonic 0 of a set living 600 s."""
    state, _ = _core.initial(
        _snapshot_at(wall, 600.0),
        policy,
        renews_static=False,
        mono=0.0,
        wall=wall,
        sample=0.0,
        duration=0.0,
    )
    return state


@given(
    state=states(claimed=True),
    policy=policies,
    mono=times,
    wall=times,
    sample=SAMPLES,
    awaited=st.one_of(st.none(), st.integers(min_value=1, max_value=50)),
)
def test_demand_never_claims_while_a_mint_is_claimed(
    state: _core.RefresherState,
    policy: RefreshPolicy,
    mono: float,
    wall: float,
    sample: float,
    awaited: int | None,
) -> None:
    claimed = state.claimed
    assert claimed is not None
    new, effects, verdict = _core.demand(
        state,
        policy,
        wall=WALL_EPOCH + wall,
        mono=mono,
        sample=sample,
        awaited=awaited,
        situation="the credentials expired",
    )
    assert _starts(effects) == []
    assert new.last_id == state.last_id
    if new.claimed is not None:
        assert new.claimed == claimed
        assert verdict == _core.Wait(claimed.id)
    else:  # hung past mint_timeout: abandoned, and the request gives up
        assert new.abandoned == claimed
        assert isinstance(verdict, _core.GiveUp)


@given(
    state=states(),
    policy=policies,
    mint_id=st.integers(min_value=0, max_value=60),
    ok=st.booleans(),
    mono=times,
    wall=times,
    sample=SAMPLES,
)
def test_a_result_for_an_unknown_mint_changes_nothing(
    state: _core.RefresherState,
    policy: RefreshPolicy,
    mint_id: int,
    ok: bool,
    mono: float,
    wall: float,
    sample: float,
) -> None:
    known = {m.id for m in (state.claimed, state.abandoned) if m is not None}
    if mint_id in known:
        mint_id = max(known) + 100
    snapshot = _snapshot_at(WALL_EPOCH + wall, 600.0) if ok else None
    outcome = _core.Outcome(snapshot, None if ok else "late", 1.0)
    new, effects = _core.on_result(
        state, policy, mint_id, outcome, wall=WALL_EPOCH + wall, mono=mono, sample=sample
    )
    assert new is state
    assert effects == ()


@given(
    state=states(last_failed=True),
    policy=policies,
    early=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    wall=st.floats(min_value=-7200.0, max_value=7200.0),
    sample=SAMPLES,
)
def test_a_failed_source_is_not_tried_again_within_retry_spacing(
    state: _core.RefresherState,
    policy: RefreshPolicy,
    early: float,
    wall: float,
    sample: float,
) -> None:
    mono = state.last_start + early * _core.RETRY_SPACING
    wall += WALL_EPOCH
    _, due_effects = _core.on_due(state, policy, wall=wall, mono=mono, sample=sample)
    _, early_effects = _core.refresh_early(state, policy, wall=wall, mono=mono)
    _, demand_effects, _ = _core.demand(
        state,
        policy,
        wall=wall,
        mono=mono,
        sample=sample,
        awaited=None,
        situation="the credentials expired",
    )
    assert _starts(due_effects) == [], "the scheduler retried a failed source too soon"
    assert _starts(early_effects) == [], "a request retried a failed source too soon"
    assert _starts(demand_effects) == [], "a request retried a failed source too soon"


def test_retry_spacing_holds_in_a_child_that_lost_a_request_path_mint() -> None:
    # The shortest reachable path to the state above: a mint fails; a request
    # claims the next one the moment RETRY_SPACING allows (before the backoff
    # would); the process forks with that mint in flight. The child keeps
    # last_start (the lost mint) but not_before is still the failed mint's.
    policy = TIGHT
    wall = WALL_EPOCH
    state = _fresh(policy, wall)
    state, _, _ = _core.demand(
        state, policy, wall=wall, mono=0.0, sample=0.0, awaited=None, situation="expired"
    )
    assert state.claimed is not None
    state, _ = _core.on_result(
        state,
        policy,
        state.claimed.id,
        _core.Outcome(None, "AccessDenied", 0.0),
        wall=wall,
        mono=0.0,
        sample=0.0,
    )
    retry = _core.RETRY_SPACING
    state, effects, _ = _core.demand(
        state, policy, wall=wall, mono=retry, sample=0.0, awaited=None, situation="expired"
    )
    assert len(_starts(effects)) == 1
    assert state.last_start == retry
    child, effects = _core.after_fork(state, policy, wall=wall, mono=retry, sample=0.0)
    assert child.claimed is None
    _, effects = _core.on_due(child, policy, wall=wall, mono=retry, sample=0.0)
    assert _starts(effects) == [], "the child retried within RETRY_SPACING of the last attempt"


def test_the_watchdog_abandons_a_hung_mint_when_it_fires_at_its_look() -> None:
    # The watchdog's look is started + mint_timeout; firing at exactly that time
    # must abandon the mint. (4.3 + 30) - 4.3 < 30 in floating point: checking
    # the difference instead of the sum leaves the mint claimed, and the same
    # look is scheduled again, due at once: a busy loop on a frozen clock.
    policy = TIGHT
    wall = WALL_EPOCH
    state = _fresh(policy, wall)
    state, effects, _ = _core.demand(
        state, policy, wall=wall, mono=4.3, sample=0.0, awaited=None, situation="expired"
    )
    hung = state.claimed
    assert hung is not None
    (look,) = [effect.when for effect in effects if isinstance(effect, _core.LookAt)]
    assert look == hung.started + policy.mint_timeout

    due, effects = _core.on_due(state, policy, wall=wall, mono=look, sample=0.0)
    assert due.claimed is None, "the watchdog fired at its look and left the mint claimed"
    assert due.abandoned == hung
    assert _core.Disown(hung.id) in effects

    _, _, verdict = _core.demand(
        state, policy, wall=wall, mono=look, sample=0.0, awaited=hung.id, situation="expired"
    )
    assert isinstance(verdict, _core.GiveUp)
    assert "hung past mint_timeout" in verdict.reason


@given(
    jitters=st.lists(st.floats(min_value=0.0, max_value=0.3), min_size=1, max_size=50),
    samples=st.lists(SAMPLES, min_size=1, max_size=10),
)
def test_an_unpaced_policy_still_makes_at_most_four_attempts_a_second(
    jitters: list[float], samples: list[float]
) -> None:
    # No min_interval, no backoff, no cooldown: only RETRY_SPACING paces a source
    # that fails at once, while the scheduler fires on time and requests demand.
    policy = RefreshPolicy(min_interval=0, backoff_base=0, cooldown=0)
    wall = WALL_EPOCH
    mono = 0.0
    state, effects = _core.initial(
        _snapshot_at(wall, 600.0, floor=policy.floor),
        policy,
        renews_static=False,
        mono=mono,
        wall=wall,
        sample=0.0,
        duration=0.0,
    )
    attempts: list[float] = []
    look: float | None = None
    turn = 0

    def apply(effects: _core.Effects) -> None:
        nonlocal look
        for effect in effects:
            if isinstance(effect, _core.StartMint):
                attempts.append(mono)
            elif isinstance(effect, _core.LookAt):
                look = effect.when

    apply(effects)
    while mono < 10.0:
        sample = samples[turn % len(samples)]
        mono += jitters[turn % len(jitters)]
        wall = WALL_EPOCH + 700.0 + mono  # expired: every request demands
        turn += 1
        if state.claimed is not None:  # the mint fails at once
            state, effects = _core.on_result(
                state,
                policy,
                state.claimed.id,
                _core.Outcome(None, "Throttling", 0.0),
                wall=wall,
                mono=mono,
                sample=sample,
            )
            apply(effects)
        if look is not None:  # the scheduler fires at its look
            mono = max(mono, look)
            look = None
            state, effects = _core.on_due(state, policy, wall=wall, mono=mono, sample=sample)
            apply(effects)
        if state.claimed is not None:
            state, effects = _core.on_result(
                state,
                policy,
                state.claimed.id,
                _core.Outcome(None, "Throttling", 0.0),
                wall=wall,
                mono=mono,
                sample=sample,
            )
            apply(effects)
        state, effects, _ = _core.demand(
            state, policy, wall=wall, mono=mono, sample=sample, awaited=None, situation="expired"
        )
        apply(effects)
    assert attempts, "the loop made no attempt at all"
    for earlier, later in itertools.pairwise(attempts):
        assert later >= earlier + _core.RETRY_SPACING
    for start in attempts:
        assert sum(start <= t < start + 1.0 for t in attempts) <= 4
    assert len(attempts) <= 4 * 10 + 1


def test_the_model_sees_a_request_wake_when_its_mint_fails_to_start() -> None:
    # The "effect fails" rule, spelled out once: the mint that cannot start is
    # folded in at once, its claim released and the waiter woken.
    machine = CoreMachine()
    machine.first_set(TIGHT, "expiring", 20.0, 0.0, False)
    machine.threads_fail = True
    machine.wall += 1_000.0
    machine.reader_looks(0.0, racy=False)
    assert machine.state.claimed is None
    assert machine.state.last_error == "no mint thread"
    assert [w.woken for w in machine.waiters] == [True]
    machine.the_flag_always_clears()
    machine.every_open_refresher_has_a_due_time()


# -- adopting a set botocore fetched ----------------------------------------------------
@given(
    policy=policies,
    lifetime=st.one_of(st.none(), st.floats(1.0, 3600.0)),
    renews_static=st.booleans(),
    mono=times,
    ago=st.floats(min_value=0.0, max_value=1.0),
    sample=SAMPLES,
)
def test_an_adopted_set_is_published_as_is_with_no_mint_and_a_look_at_its_refresh_time(
    policy: RefreshPolicy,
    lifetime: float | None,
    renews_static: bool,
    mono: float,
    ago: float,
    sample: float,
) -> None:
    snapshot = _snapshot_at(WALL_EPOCH - ago, lifetime, floor=policy.floor)
    state, effects = _core.adopted(
        snapshot, policy, renews_static=renews_static, mono=mono, wall=WALL_EPOCH, sample=sample
    )
    assert state.snapshot is snapshot
    assert state.mint_count == 0
    assert state.claimed is None and state.abandoned is None and state.last_id == 0
    assert not state.last_failed and not state.closed
    assert not any(isinstance(e, (_core.Succeeded, _core.StartMint)) for e in effects)
    publishes = [e for e in effects if isinstance(e, _core.Publish)]
    assert publishes == [_core.Publish(snapshot)]
    looks = [e for e in effects if isinstance(e, _core.LookAt)]
    if snapshot.expires or renews_static:
        refresh_at = snapshot.issued_at + (
            policy.refresh_offset(snapshot.lifetime, sample)
            if snapshot.expires
            else policy.static_ttl
        )
        assert state.refresh_at == refresh_at
        # Not held back by min_interval: the look is when the set comes due.
        assert looks == [_core.LookAt(mono + max(0.0, refresh_at - WALL_EPOCH))]
    else:
        assert math.isinf(state.refresh_at)
        assert looks == []


def test_an_adopted_set_refreshes_when_due_even_with_a_long_min_interval() -> None:
    policy = RefreshPolicy(min_interval=3600.0, floor=10.0)
    snapshot = _snapshot_at(WALL_EPOCH, 600.0, floor=policy.floor)
    state, _ = _core.adopted(
        snapshot, policy, renews_static=False, mono=0.0, wall=WALL_EPOCH, sample=0.0
    )
    due = state.refresh_at - WALL_EPOCH
    assert 0.0 < due < 3600.0
    _, early = _core.on_due(state, policy, wall=WALL_EPOCH + due / 2, mono=due / 2, sample=0.0)
    assert _starts(early) == []
    claimed, effects = _core.on_due(state, policy, wall=WALL_EPOCH + due, mono=due, sample=0.0)
    assert [start.mint.id for start in _starts(effects)] == [1]
    assert claimed.claimed == _core.Mint(1, due)
