"""The refresher's state and its transitions, as pure functions.

One frozen :class:`RefresherState` holds everything a refresher knows about
its source: the snapshot it serves, the circuit breaker, the single-flight
claim, an abandoned mint whose fetch still runs, the pacing and the closed
flag. Each transition takes a state, what just happened, the two clocks' times
and a random sample, and returns the next state with the effects to run:
start a mint, look again at a time, publish a snapshot, wake the waiters,
report an event. Nothing here reads a clock, draws a random number, takes a
lock or starts a thread; ``_runtime`` does, after swapping the state.

Two time bases, never mixed: ``mono`` (monotonic seconds) paces everything
(``min_interval``, backoff, the breaker's cooldown, hung-mint detection,
waits); ``wall`` (epoch seconds) only judges expiry, because AWS does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ._breaker import Breaker, BreakerState
from ._policy import RefreshPolicy

if TYPE_CHECKING:
    from ._snapshot import Snapshot

#: However the policy is set, a failed source is not tried again sooner than this.
RETRY_SPACING = 0.25


# -- state ------------------------------------------------------------------------
@dataclass(frozen=True)
class Mint:
    """One claimed mint: its id and when (monotonic) it was claimed."""

    id: int
    started: float


@dataclass(frozen=True)
class RefresherState:
    """Everything a refresher knows, replaced whole by every transition.

    ``refresh_at`` is the wall-clock time of the next proactive refresh
    (``inf``: never); ``not_before`` the monotonic time before which no
    background mint starts (``min_interval`` after a success, the backoff
    after a failure). ``claimed`` is the single-flight flag; ``abandoned`` a
    mint given up on past ``mint_timeout`` whose fetch has not returned.
    """

    snapshot: Snapshot
    renews_static: bool = False
    breaker: Breaker = field(default_factory=Breaker)
    last_id: int = 0
    claimed: Mint | None = None
    abandoned: Mint | None = None
    last_start: float = -math.inf
    last_failed: bool = False
    not_before: float = -math.inf
    refresh_at: float = math.inf
    last_error: str | None = None
    mint_count: int = 1
    closed: bool = False


# -- effects ----------------------------------------------------------------------
@dataclass(frozen=True)
class StartMint:
    """Run ``mint`` off the lock, and fold its result back in."""

    mint: Mint


@dataclass(frozen=True)
class LookAt:
    """Have the scheduler call back at monotonic time ``when``."""

    when: float


@dataclass(frozen=True)
class Unschedule:
    """Forget any pending look: the refresher closed."""


@dataclass(frozen=True)
class Publish:
    """Make ``snapshot`` the set every reader sees."""

    snapshot: Snapshot


@dataclass(frozen=True)
class WakeWaiters:
    """Wake every request waiting for a mint: the state they wait on changed."""


@dataclass(frozen=True)
class Disown:
    """The thread running mint ``mint_id`` is stuck: free its pool slot."""

    mint_id: int


@dataclass(frozen=True)
class Succeeded:
    """Report a published set (``attempt``: consecutive attempts, this one included)."""

    snapshot: Snapshot
    duration: float
    attempt: int


@dataclass(frozen=True)
class Failed:
    """Report a failed mint; ``remaining`` is the served set's time left (``None``: never)."""

    duration: float
    remaining: float | None
    attempt: int
    error: str


@dataclass(frozen=True)
class BreakerMoved:
    """Report a circuit-breaker transition."""

    previous: BreakerState
    state: BreakerState
    attempt: int
    remaining: float | None


Effect = (
    StartMint
    | LookAt
    | Unschedule
    | Publish
    | WakeWaiters
    | Disown
    | Succeeded
    | Failed
    | BreakerMoved
)
Effects = tuple[Effect, ...]
Step = tuple[RefresherState, Effects]


@dataclass(frozen=True)
class Outcome:
    """What a mint came back with: a snapshot, or a one-line error (never a secret)."""

    snapshot: Snapshot | None
    error: str | None
    duration: float


# -- what a waiting request is told --------------------------------------------------
@dataclass(frozen=True)
class Wait:
    """Wait for a wake-up, at most until monotonic ``until`` (``None``: the deadline).

    ``mint_id`` is the mint waited for, if any: once it has finished without
    giving an acceptable set, the wait is over.
    """

    mint_id: int | None
    until: float | None = None


@dataclass(frozen=True)
class GiveUp:
    """No acceptable set can come: raise ``CredentialsUnavailable`` with ``reason``."""

    reason: str


Demand = Wait | GiveUp


# -- helpers ------------------------------------------------------------------------
def remaining(state: RefresherState, wall: float) -> float | None:
    """Seconds of life left in the served set (``None`` if it never expires)."""
    snapshot = state.snapshot
    return snapshot.valid_until - wall if snapshot.expires else None


def demand_pace(state: RefresherState, policy: RefreshPolicy) -> float:
    """The earliest monotonic time a request may start a mint."""
    spacing = policy.min_interval
    if state.last_failed:
        spacing = max(spacing, RETRY_SPACING)
    return state.last_start + spacing


def _earliest(state: RefresherState, policy: RefreshPolicy) -> float:
    """The earliest monotonic time the scheduler may start a mint.

    ``not_before`` alone, except in a child that lost a mint in the fork: its
    ``last_start`` is that mint, later than the pacing ``not_before`` holds.
    """
    return max(state.not_before, demand_pace(state, policy))


def _hung(mint: Mint, policy: RefreshPolicy, mono: float) -> bool:
    """Whether ``mint`` has run past ``mint_timeout``: the same sum the watchdog's look uses."""
    return mono >= mint.started + policy.mint_timeout


def next_look(
    state: RefresherState, policy: RefreshPolicy, wall: float, mono: float
) -> float | None:
    """When (monotonic) the scheduler should look at this state next; ``None``: nothing to do."""
    if state.closed:
        return None
    if state.claimed is not None:
        return state.claimed.started + policy.mint_timeout  # the watchdog
    if state.abandoned is not None:
        return mono + policy.mint_timeout  # a hung fetch: look again, gently
    earliest = _earliest(state, policy)
    reopens = state.breaker.reopens_at(policy)
    if reopens is not None:
        return max(reopens, earliest)
    if math.isinf(state.refresh_at):
        return None if not state.last_failed else earliest
    due = mono + max(0.0, state.refresh_at - wall)
    return max(due, earliest)


def _refresh_at(
    snapshot: Snapshot, renews_static: bool, policy: RefreshPolicy, sample: float
) -> float:
    if snapshot.expires:
        return snapshot.issued_at + policy.refresh_offset(snapshot.lifetime, sample)
    if renews_static:
        return snapshot.issued_at + policy.static_ttl
    return math.inf


def _look(state: RefresherState, policy: RefreshPolicy, wall: float, mono: float) -> Effects:
    when = next_look(state, policy, wall, mono)
    return () if when is None else (LookAt(when),)


def _claim(
    state: RefresherState, policy: RefreshPolicy, wall: float, mono: float
) -> tuple[RefresherState, Effects, Mint | None]:
    """``admitMint``: claim the single-flight slot if nothing runs and the breaker admits."""
    if state.claimed is not None or state.abandoned is not None:
        return state, (), None
    admitted, breaker = state.breaker.admit(mono, policy)
    if not admitted:
        return state, (), None
    mint = Mint(state.last_id + 1, mono)
    effects: list[Effect] = []
    if breaker.state is not state.breaker.state:
        effects.append(
            BreakerMoved(
                state.breaker.state,
                breaker.state,
                state.breaker.failures,
                remaining(state, wall),
            )
        )
    claimed = replace(state, breaker=breaker, last_id=mint.id, claimed=mint, last_start=mono)
    effects += [StartMint(mint), LookAt(mint.started + policy.mint_timeout)]
    return claimed, tuple(effects), mint


# -- transitions ------------------------------------------------------------------------
def initial(
    snapshot: Snapshot,
    policy: RefreshPolicy,
    *,
    renews_static: bool,
    mono: float,
    wall: float,
    sample: float,
    duration: float,
) -> Step:
    """The state after the eager first mint, which ran on the constructing thread."""
    state = RefresherState(
        snapshot,
        renews_static=renews_static,
        last_id=1,
        last_start=mono,
        not_before=mono + policy.min_interval,
        refresh_at=_refresh_at(snapshot, renews_static, policy, sample),
    )
    return state, (
        Publish(snapshot),
        Succeeded(snapshot, duration, 1),
        *_look(state, policy, wall, mono),
    )


def adopted(
    snapshot: Snapshot,
    policy: RefreshPolicy,
    *,
    renews_static: bool,
    mono: float,
    wall: float,
    sample: float,
) -> Step:
    """The state of a refresher that took over a set botocore had just fetched.

    No mint has run (``mint_count`` 0, nothing to report), and none is held
    back by ``min_interval``: the next one starts when the set comes due.
    """
    state = RefresherState(
        snapshot,
        renews_static=renews_static,
        mint_count=0,
        refresh_at=_refresh_at(snapshot, renews_static, policy, sample),
    )
    return state, (Publish(snapshot), *_look(state, policy, wall, mono))


def on_due(
    state: RefresherState,
    policy: RefreshPolicy,
    *,
    wall: float,
    mono: float,
    sample: float,
) -> Step:
    """``decide``, for the scheduler: mint if a refresh is due, abandon a hung mint, or wait."""
    if state.closed:
        return state, ()
    if state.claimed is not None:
        if _hung(state.claimed, policy, mono):
            return on_abandon(state, policy, state.claimed.id, wall=wall, mono=mono, sample=sample)
        return state, _look(state, policy, wall, mono)
    if state.abandoned is None and mono >= _earliest(state, policy):
        due = wall >= state.refresh_at or state.last_failed
        if due:
            claimed, effects, mint = _claim(state, policy, wall, mono)
            if mint is not None:
                return claimed, effects
    return state, _look(state, policy, wall, mono)


def refresh_early(
    state: RefresherState, policy: RefreshPolicy, *, wall: float, mono: float
) -> Step:
    """A request found the served set inside the floor: start a background mint if one may.

    The scheduler should have refreshed already; it is late after a freeze,
    a clock step or a failing source. The request is served the still-valid
    set either way and never waits.
    """
    if mono < demand_pace(state, policy) or (state.last_failed and mono < state.not_before):
        return state, ()
    claimed, effects, _ = _claim(state, policy, wall, mono)
    return claimed, effects


def demand(
    state: RefresherState,
    policy: RefreshPolicy,
    *,
    wall: float,
    mono: float,
    sample: float,
    awaited: int | None,
    situation: str,
) -> tuple[RefresherState, Effects, Demand]:
    """A request needs a set the served one is not (expired, or rejected by AWS).

    Join the mint under way, or claim one (single-flight, paced, admitted by
    the breaker), or give up with the reason. ``awaited`` is the mint this
    request already waited for: once it has finished, another is not started.
    """
    if state.claimed is not None:
        if _hung(state.claimed, policy, mono):
            abandoned, effects = on_abandon(
                state, policy, state.claimed.id, wall=wall, mono=mono, sample=sample
            )
            return (
                abandoned,
                effects,
                GiveUp(f"{situation} and the mint hung past mint_timeout"),
            )
        return state, (), Wait(state.claimed.id)
    if awaited is not None:
        return (
            state,
            (),
            GiveUp(f"{situation} and minting new ones failed: {state.last_error}"),
        )
    if state.abandoned is not None:
        return (
            state,
            (),
            GiveUp(
                f"{situation} and the previous mint hung past mint_timeout and its fetch has "
                f"not returned (last error: {state.last_error})"
            ),
        )
    pace = demand_pace(state, policy)
    if mono < pace:
        return state, (), Wait(None, until=pace)
    claimed, effects, mint = _claim(state, policy, wall, mono)
    if mint is None:
        return state, (), GiveUp(f"{situation} and {refusal(state, policy, mono)}")
    return claimed, effects, Wait(mint.id)


def refusal(state: RefresherState, policy: RefreshPolicy, mono: float) -> str:
    """Why the breaker refuses a mint, for a message."""
    breaker = state.breaker
    reopens = breaker.reopens_at(policy)
    wait = "" if reopens is None else f"; next attempt in {max(0.0, reopens - mono):.0f}s"
    return (
        f"the circuit breaker is {breaker.state.value} after {breaker.failures} failed mints "
        f"(last error: {state.last_error}){wait}"
    )


def on_result(
    state: RefresherState,
    policy: RefreshPolicy,
    mint_id: int,
    outcome: Outcome,
    *,
    wall: float,
    mono: float,
    sample: float,
) -> Step:
    """``onMintSuccess`` / ``onMintFailure``: fold a finished mint in, and release its claim.

    A result for a mint that is no longer claimed is discarded: it was
    abandoned (its return frees the source to mint again) or lost in a fork.
    """
    if state.claimed is None or state.claimed.id != mint_id:
        if state.abandoned is not None and state.abandoned.id == mint_id:
            freed = replace(state, abandoned=None)
            return freed, (WakeWaiters(), *_look(freed, policy, wall, mono))
        return state, ()
    released = replace(state, claimed=None)
    if outcome.snapshot is not None:
        return _succeed(released, policy, outcome.snapshot, outcome.duration, wall, mono, sample)
    return _fail(
        released,
        policy,
        outcome.error or "the mint failed",
        outcome.duration,
        wall,
        mono,
        sample,
    )


def _succeed(
    state: RefresherState,
    policy: RefreshPolicy,
    snapshot: Snapshot,
    duration: float,
    wall: float,
    mono: float,
    sample: float,
) -> Step:
    previous = state.breaker
    new = replace(
        state,
        snapshot=snapshot,
        breaker=previous.record_success(),
        last_failed=False,
        last_error=None,
        mint_count=state.mint_count + 1,
        not_before=state.last_start + policy.min_interval,
        refresh_at=_refresh_at(snapshot, state.renews_static, policy, sample),
    )
    effects: list[Effect] = [
        Publish(snapshot),
        WakeWaiters(),
        Succeeded(snapshot, duration, previous.failures + 1),
    ]
    if previous.state is not BreakerState.CLOSED:
        effects.append(
            BreakerMoved(
                previous.state,
                BreakerState.CLOSED,
                previous.failures,
                remaining(new, wall),
            )
        )
    return new, (*effects, *_look(new, policy, wall, mono))


def _fail(
    state: RefresherState,
    policy: RefreshPolicy,
    error: str,
    duration: float,
    wall: float,
    mono: float,
    sample: float,
) -> Step:
    previous = state.breaker
    breaker = previous.record_failure(mono, policy)
    left = remaining(state, wall)
    retry = breaker.reopens_at(policy)
    if retry is None:
        expires_mono = None if left is None else mono + left
        retry = policy.retry_at(mono, breaker.failures, expires_mono, sample)
    new = replace(
        state,
        breaker=breaker,
        last_failed=True,
        last_error=error,
        not_before=max(retry, mono + RETRY_SPACING),
    )
    effects: list[Effect] = [
        WakeWaiters(),
        Failed(duration, left, breaker.failures, error),
    ]
    if breaker.state is not previous.state:
        effects.append(BreakerMoved(previous.state, breaker.state, breaker.failures, left))
    return new, (*effects, *_look(new, policy, wall, mono))


def on_abandon(
    state: RefresherState,
    policy: RefreshPolicy,
    mint_id: int,
    *,
    wall: float,
    mono: float,
    sample: float,
) -> Step:
    """A mint ran past ``mint_timeout``: count it failed, and keep its fetch as abandoned.

    While that fetch runs, the source mints nothing more (a hung source must
    not pile up threads); its return, whatever it brings, frees the source.
    """
    claimed = state.claimed
    if claimed is None or claimed.id != mint_id or not _hung(claimed, policy, mono):
        return state, ()
    error = f"MintTimedOut: the mint did not finish within mint_timeout={policy.mint_timeout:g}s"
    failed, effects = _fail(
        replace(state, claimed=None, abandoned=claimed),
        policy,
        error,
        mono - claimed.started,
        wall,
        mono,
        sample,
    )
    return failed, (Disown(mint_id), *effects)


def on_close(state: RefresherState) -> Step:
    """Stop refreshing in the background; requests still mint on demand."""
    if state.closed:
        return state, ()
    return replace(state, closed=True), (Unschedule(),)


def on_reopen(state: RefresherState, policy: RefreshPolicy, *, wall: float, mono: float) -> Step:
    """Resume background refresh after a close."""
    if not state.closed:
        return state, ()
    opened = replace(state, closed=False)
    return opened, _look(opened, policy, wall, mono)


def after_fork(
    state: RefresherState,
    policy: RefreshPolicy,
    *,
    wall: float,
    mono: float,
    sample: float,
) -> Step:
    """The state in a forked child, which has none of the parent's threads.

    No mint is in flight here, claimed or abandoned; a half-open probe lost
    in the fork may run again. The jitter is drawn afresh, so workers forked
    from one parent do not all refresh at the same instant.
    """
    breaker = state.breaker
    if breaker.probing:
        breaker = replace(breaker, probing=False)
    child = replace(
        state,
        claimed=None,
        abandoned=None,
        breaker=breaker,
        refresh_at=(
            state.refresh_at
            if state.last_failed or not state.snapshot.expires
            else _refresh_at(state.snapshot, state.renews_static, policy, sample)
        ),
    )
    return child, _look(child, policy, wall, mono)
