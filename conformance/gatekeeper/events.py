"""The evidence log: every observable thing the simulator does or sees, as small dicts.

Each event is ``{"seq", "t", "kind", "login", "detail"}`` with ``t`` in milliseconds since the
log was created (monotonic). Details are redacted when appended
(:func:`conformance.redact.redact_event`), so the log can be attached to reports as is. Waiting is event-driven: :meth:`EventLog.wait_for` parks a future that
:meth:`EventLog.append` resolves, never a sleep loop.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from conformance.redact import redact_event

__all__ = ["Event", "EventLog"]

Event = dict[str, Any]
Predicate = Callable[[Event], bool]

class EventLog:
    """Append-only, bounded (oldest events fall off), awaitable."""

    def __init__(self, max_events: int = 200_000) -> None:
        self._t0 = time.monotonic()
        self._events: deque[Event] = deque(maxlen=max_events)
        self._seq = 0
        self._waiters: list[tuple[Predicate, asyncio.Future[Event], int]] = []

    def __len__(self) -> int:
        return self._seq

    def mark(self) -> int:
        """The ``seq`` the next event will get: pass it as ``since`` to wait for new events only."""
        return self._seq

    def now_ms(self) -> float:
        """The log's clock now, in the unit and origin of the events' ``t``: lets a check place
        its own actions (a clock advance, say) on the same time line as the events."""
        return round((time.monotonic() - self._t0) * 1000, 3)

    def append(self, kind: str, login: str | None = None, /, **detail: Any) -> Event:
        event: Event = {
            "seq": self._seq,
            "t": round((time.monotonic() - self._t0) * 1000, 3),
            "kind": kind,
            "login": login,
            "detail": redact_event(detail),
        }
        self._seq += 1
        self._events.append(event)
        if self._waiters:
            keep = []
            for pred, fut, since in self._waiters:
                if fut.done():
                    continue
                if event["seq"] >= since and _safe(pred, event):
                    fut.set_result(event)
                else:
                    keep.append((pred, fut, since))
            self._waiters = keep
        return event

    def events(self, predicate: Predicate | None = None, *, since: int = 0,
               **match: Any) -> list[Event]:
        """Events matching ``predicate`` and every ``key=value`` in ``match`` (``kind``,
        ``login``, or a detail key such as ``conn``)."""
        pred = _matcher(predicate, match)
        return [e for e in self._events if e["seq"] >= since and _safe(pred, e)]

    def kinds(self, **match: Any) -> list[str]:
        return [e["kind"] for e in self.events(**match)]

    async def wait_for(self, predicate: Predicate | None = None, timeout: float = 10.0, *,
                       since: int = 0, what: str | None = None, **match: Any) -> Event:
        """The first event (from ``since`` on) that matches; waits up to ``timeout`` seconds.

        Raises ``TimeoutError`` naming what was awaited and the last events seen.
        """
        pred = _matcher(predicate, match)
        for e in self._events:
            if e["seq"] >= since and _safe(pred, e):
                return e
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((pred, fut, since))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            desc = what or _describe(predicate, match)
            recent = [f"{e['kind']}({e['login']})" for e in list(self._events)[-8:]]
            raise TimeoutError(f"no event {desc} within {timeout} s; last events: {recent}") from None
        finally:
            if not fut.done():
                fut.cancel()

    def dump(self, **match: Any) -> list[Event]:
        """A JSON-ready copy (already redacted) for reports."""
        return [dict(e) for e in self.events(**match)]


def _safe(pred: Predicate, event: Event) -> bool:
    try:
        return bool(pred(event))
    except (KeyError, TypeError, AttributeError, ValueError):
        return False


def _matcher(predicate: Predicate | None, match: Mapping[str, Any]) -> Predicate:
    def pred(e: Event) -> bool:
        for k, v in match.items():
            actual = e[k] if k in ("kind", "login", "seq") else e["detail"].get(k)
            if isinstance(v, (set, frozenset, tuple, list)) and not isinstance(actual, list):
                if actual not in v:
                    return False
            elif actual != v:
                return False
        return predicate(e) if predicate is not None else True
    return pred


def _describe(predicate: Predicate | None, match: Mapping[str, Any]) -> str:
    parts = [f"{k}={v!r}" for k, v in match.items()]
    if predicate is not None:
        parts.append(getattr(predicate, "__name__", "predicate"))
    return "matching " + (", ".join(parts) or "anything")

