"""Per-check wire evidence: what the kit sent and saw, redacted, with an exchange counter.

Every HTTP request to the provider, every harness call and every stanza the simulator
exchanged with the provider's client during a check is one entry. ``exchanges`` counts the
ones that reached the provider: a check that passes with zero exchanges proved nothing and
is turned into an ERROR of the kit (no vacuous passes).
"""
from __future__ import annotations

import time
from typing import Any

from .redact import redact

__all__ = ["Evidence"]

MAX_ENTRIES = 2000


class Evidence:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.entries: list[dict[str, Any]] = []
        self.exchanges = 0
        self._t0 = time.monotonic()

    def record(self, kind: str, *, exchange: bool = False, **detail: Any) -> None:
        if exchange:
            self.exchanges += 1
        if len(self.entries) < MAX_ENTRIES:
            self.entries.append({"t": round((time.monotonic() - self._t0) * 1000, 1), "kind": kind,
                                 **redact(detail)})

    def extend(self, events: list[dict[str, Any]], *, exchanges: int = 0) -> None:
        self.exchanges += exchanges
        for e in events:
            if len(self.entries) >= MAX_ENTRIES:
                break
            self.entries.append(redact(e))
