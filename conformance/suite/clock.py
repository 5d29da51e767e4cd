"""Moving the provider client's clock through the harness (``POST /users/{user}/clock``).

Why: CHN-011's back-off cap, E2E-021's 7-day window and CON-003's 24 h window run on the
provider client's own timers; G's :class:`~conformance.gatekeeper.clock.SimClock` cannot move
them. The action is optional: a harness without it leaves those clauses NOT_TESTED (with the
reason), never PASS.
"""
from __future__ import annotations

from conformance.harness_client import HarnessClient, HarnessError
from conformance.verdicts import not_tested

from .kit import ProviderUser

__all__ = ["advance_client_clock", "DAY_S"]

DAY_S = 86_400.0


def advance_client_clock(harness: HarnessClient, user: ProviderUser, seconds: float,
                         clause: str) -> float:
    """Let ``seconds`` pass on ``user``'s client clock; NOT_TESTED for ``clause`` when the
    harness has no clock action (404/405/501). Returns the clock's total offset."""
    try:
        return harness.advance_clock(user.handle, seconds)
    except HarnessError as exc:
        if exc.status in (404, 405, 501):
            not_tested(f"{clause} needs time to pass on the provider's client: the harness has no "
                       f"clock action (POST /users/{{user}}/clock answered {exc.status})")
        raise
