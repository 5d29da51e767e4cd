"""The evidence log: every observable thing the simulator does or sees, as small dicts.

Each event is ``{"seq", "t", "kind", "login", "detail"}`` with ``t`` in milliseconds since the
log was created (monotonic). Details are redacted when appended, so the log can be attached to
reports as is. Waiting is event-driven: :meth:`EventLog.wait_for` parks a future that
:meth:`EventLog.append` resolves, never a sleep loop.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["REDACTED_KEYS", "Event", "EventLog", "redact"]

Event = dict[str, Any]
Predicate = Callable[[Event], bool]

#: Keys whose values are secrets whatever they look like.
REDACTED_KEYS = frozenset({
    "token", "jwt", "authorization", "media_key", "private", "private_key", "secret",
    "password", "chain_key", "cipher_key", "mac_key", "d",
})
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
# 32-byte values: 64 hex digits, or 43/44 base64(url) characters, standing alone.
_HEX32 = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])")
_B64_32 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{43}=?(?![A-Za-z0-9+/_=-])")


def _fingerprint(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:8]


def _redact_str(s: str) -> str:
    s = _JWT.sub(lambda m: f"<redacted:jwt:{_fingerprint(m.group(0))}>", s)
    s = _HEX32.sub(lambda m: f"<redacted:key:{_fingerprint(m.group(0))}>", s)

    def b64(m: re.Match[str]) -> str:
        text = m.group(0)
        try:
            ok = len(base64.urlsafe_b64decode(text.rstrip("=").replace("+", "-").replace("/", "_")
                                              + "=")) == 32
        except (ValueError, TypeError):
            ok = False
        return f"<redacted:key:{_fingerprint(text)}>" if ok else text

    return _B64_32.sub(b64, s)


def redact(value: Any, _key: str = "") -> Any:
    """A copy of ``value`` safe to publish: JWTs, 32-byte keys in hex or base64 and every value
    under a secret-sounding key become ``<redacted:…>``; bytes become a length and a short hash.
    Keys ending in ``sha256`` are digests, not secrets, and stay."""
    key = _key.lower()
    empty = value is None or (isinstance(value, (str, bytes, bytearray)) and not value)
    if key in REDACTED_KEYS and not empty:
        return f"<redacted:{key}>"
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if key.endswith("sha256"):
            return raw.hex()
        return {"len": len(raw), "sha256": _fingerprint(raw)}
    if isinstance(value, str):
        return value if key.endswith("sha256") else _redact_str(value)
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v, _key) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _redact_str(repr(value))


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

    def append(self, kind: str, login: str | None = None, /, **detail: Any) -> Event:
        event: Event = {
            "seq": self._seq,
            "t": round((time.monotonic() - self._t0) * 1000, 3),
            "kind": kind,
            "login": login,
            "detail": redact(detail),
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

