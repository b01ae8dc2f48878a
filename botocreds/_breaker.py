"""The circuit breaker around a credential source, as pure state transitions.

A failing source must not be hammered: after ``failure_threshold`` consecutive
failed mints the breaker opens and refuses mints for ``cooldown`` seconds. Then
it lets exactly one probe through (half-open). A successful probe closes it; a
failed one opens it again for another cooldown.

Each transition takes the current time and returns a new :class:`Breaker`; the
runtime stores it under its own lock. Nothing here reads a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from ._policy import RefreshPolicy


class BreakerState(str, enum.Enum):
    """Where a source's circuit breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True)
class Breaker:
    """An immutable circuit breaker for one credential source.

    ``failures`` counts consecutive failed mints. ``opened_at`` is when the
    breaker last opened. In the half-open state ``probing`` says whether the one
    allowed probe is under way.
    """

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def reopens_at(self, policy: RefreshPolicy) -> float | None:
        """When an open breaker will admit its probe; ``None`` if it is not open."""
        if self.state is BreakerState.OPEN:
            return self.opened_at + policy.cooldown
        return None

    def admit(self, now: float, policy: RefreshPolicy) -> tuple[bool, Breaker]:
        """Decide whether a mint may start now, and the breaker to keep after.

        Closed admits. Open refuses until the cooldown has passed, then turns
        half-open and admits one probe. Half-open refuses while its probe is
        under way.
        """
        if self.state is BreakerState.CLOSED:
            return True, self
        if self.state is BreakerState.OPEN:
            if now < self.opened_at + policy.cooldown:
                return False, self
            return True, replace(self, state=BreakerState.HALF_OPEN, probing=True)
        if self.probing:
            return False, self
        return True, replace(self, probing=True)

    def record_success(self) -> Breaker:
        """A mint succeeded: close the breaker and forget past failures."""
        return Breaker()

    def record_failure(self, now: float, policy: RefreshPolicy) -> Breaker:
        """A mint failed: count it, and open the breaker at the threshold.

        A failed half-open probe opens the breaker again at once.
        """
        failures = self.failures + 1
        if self.state is BreakerState.HALF_OPEN or failures >= policy.failure_threshold:
            return Breaker(BreakerState.OPEN, failures, opened_at=now, probing=False)
        return replace(self, failures=failures)
