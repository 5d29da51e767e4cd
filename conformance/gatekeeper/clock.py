"""The simulator's clock: wall time read through one object a check can move forward.

Why: the time windows of the profile (CHN-011's 60 s reconnect cap, E2E-021's 7-day signed
pre-key window, CON-003's 24 h between reachability pings, the 30-day mailbox and inactivity
limits) cannot be waited out in a run. Everything in the simulator that judges or stamps time
(account liveness, mailbox retention, token ``iat``/``exp``, the JWKS cache, the enlistment
rate window) reads :class:`SimClock`; ``gk.clock.advance(seconds)`` shifts it for all of them at
once. Asyncio timeouts (handshake, pong) and the evidence log's elapsed ``t`` stay real: they
bound how long the run waits, not what the profile's rules see.
"""
from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["SimClock"]


class SimClock:
    """Unix seconds from ``wall`` (re-read on every call) plus an offset that only grows."""

    def __init__(self, wall: Callable[[], float] = time.time, *,
                 on_advance: Callable[[float, float], None] | None = None) -> None:
        self._wall = wall
        self._offset = 0.0
        self._on_advance = on_advance

    def __call__(self) -> float:
        return self._wall() + self._offset

    def now_ms(self) -> int:
        return int(self() * 1000)

    @property
    def offset(self) -> float:
        """Seconds this clock runs ahead of its wall source."""
        return self._offset

    def advance(self, seconds: float) -> float:
        """Move the simulator's time forward (never back: logs and tokens stay ordered).
        Returns the new time."""
        if not seconds >= 0:  # also refuses NaN
            raise ValueError(f"the simulator clock only moves forward, not by {seconds!r} s")
        self._offset += seconds
        if self._on_advance is not None:
            self._on_advance(seconds, self._offset)
        return self()
