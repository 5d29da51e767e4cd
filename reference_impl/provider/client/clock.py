"""The client's own clock: wall time plus an offset the harness can move forward.

Why: the profile's client-side time windows (CHN-011's back-off growing to 60 s, E2E-021's 7 days
of decrypting on the previous signed pre-key, CON-003's 24 h between reachability pings) cannot
be waited out in a conformance run. Every timer of the client that such a window rests on reads
:class:`ClientClock`; ``POST /users/{user}/clock`` (harness) calls :meth:`advance`, which also
wakes every :meth:`sleep` whose deadline the jump passed. Message timestamps and network
timeouts stay on real time: they are not what the windows judge.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

__all__ = ["ClientClock"]


class ClientClock:
    """Unix seconds from ``wall`` plus an offset that only grows (kept in the user's state)."""

    def __init__(self, offset: float = 0.0, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self.offset = float(offset)
        self._moved = asyncio.Event()

    def time(self) -> float:
        return self._wall() + self.offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (never back) and wake the sleepers it passes;
        returns the new offset."""
        if not seconds >= 0:  # also refuses NaN
            raise ValueError(f"the client clock only moves forward, not by {seconds!r} s")
        self.offset += seconds
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()
        return self.offset

    async def sleep(self, seconds: float) -> None:
        """Wait until this clock shows ``seconds`` later: real time or an advance, whichever
        gets there first."""
        deadline = self.time() + seconds
        while (remaining := deadline - self.time()) > 0:
            moved = self._moved
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(moved.wait(), remaining)
