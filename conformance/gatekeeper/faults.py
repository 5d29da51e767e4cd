"""Pending injected faults: the queues :class:`~.script.Script` fills and the simulator drains.

Why a module of its own: the state core and the protocol edges consume faults at named points
(``take_request_fault``, ``take_connect_fault``, ``take_enlistment_fault``,
``shape_delivery``) without knowing the scripting API that queued them, so the scripting layer
sits above the core instead of in a circle with it. Pure state; the only side effect is an
event in the log when a delivery is dropped, held or reordered.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from reference_impl.wire import stanzas_pb2 as pb

from .directory import StanzaRejected
from .events import EventLog

__all__ = ["Faults"]


class Faults:
    """One-shot (or ``count``-shot) faults per login, consumed at a single named point each."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._request: dict[str, deque[tuple[str | None, StanzaRejected]]] = {}
        self._connect: dict[str, deque[int]] = {}
        self._enlist: deque[str] = deque()
        self._drop: dict[str, int] = {}
        self._reorder: dict[str, tuple[int, list[pb.Stanza]]] = {}

    # -- queued by the script ----------------------------------------------------------------------
    def add_request_fault(self, login: str, kind: str | None, exc: StanzaRejected, count: int) -> None:
        self._request.setdefault(login, deque()).extend([(kind, exc)] * count)

    def add_connect_fault(self, login: str, code: int) -> None:
        self._connect.setdefault(login, deque()).append(code)

    def add_enlistment_fault(self, reason: str, count: int) -> None:
        self._enlist.extend([reason] * count)

    def add_drop(self, login: str, n: int) -> None:
        self._drop[login] = self._drop.get(login, 0) + n

    def add_reorder(self, login: str, n: int) -> None:
        self._reorder[login] = (n, [])

    # -- consumed by the simulator -------------------------------------------------------------------
    def take_request_fault(self, login: str, kind: str) -> StanzaRejected | None:
        """The next queued error for a ``kind`` request (stanza body) from ``login``."""
        q = self._request.get(login)
        if not q:
            return None
        for i, (k, exc) in enumerate(q):
            if k is None or k == kind:
                del q[i]
                return exc
        return None

    def take_connect_fault(self, login: str) -> int | None:
        q = self._connect.get(login)
        return q.popleft() if q else None

    def take_enlistment_fault(self) -> str | None:
        return self._enlist.popleft() if self._enlist else None

    def shape_delivery(self, login: str, stanza: pb.Stanza) -> Iterator[pb.Stanza]:
        """What actually reaches ``login``'s mailbox for one stanza: itself, nothing (dropped,
        held) or a held batch in reverse order. Only messages are shaped."""
        if stanza.WhichOneof("body") != "message":
            yield stanza
            return
        if self._drop.get(login):
            self._drop[login] -= 1
            self._log.append("delivery_dropped", login, id=stanza.id)
            return
        if login in self._reorder:
            n, held = self._reorder[login]
            held.append(stanza)
            if len(held) < n:
                self._log.append("delivery_held", login, id=stanza.id)
                return
            del self._reorder[login]
            self._log.append("delivery_reordered", login, ids=[s.id for s in reversed(held)])
            yield from reversed(held)
            return
        yield stanza
