"""The offline mailbox: stanzas G holds for a provider login until the client acks them.

Entries stay until acknowledged (so a connection lost mid-delivery gets them again on the
next one), in enqueue order, for the retention period (CHN-012: 30 days) measured with the
injected clock.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from reference_impl.wire import stanzas_pb2 as pb

from .settings import Clock

__all__ = ["Entry", "Mailbox", "MailboxFull"]


class MailboxFull(Exception):
    pass


@dataclass(slots=True)
class Entry:
    stanza: pb.Stanza
    enqueued_at: float


class Mailbox:
    def __init__(self, clock: Clock, retention_s: float, max_per_login: int) -> None:
        self._clock = clock
        self._retention_s = retention_s
        self._max = max_per_login
        self._boxes: dict[str, OrderedDict[str, Entry]] = {}

    def put(self, login: str, stanza: pb.Stanza) -> None:
        box = self._boxes.setdefault(login, OrderedDict())
        self.expire(login)
        if len(box) >= self._max:
            raise MailboxFull(f"mailbox of {login} holds {len(box)} stanzas")
        box[stanza.id] = Entry(stanza, self._clock())

    def expire(self, login: str) -> list[Entry]:
        """Drop entries older than the retention period; returns them (for the evidence log)."""
        box = self._boxes.get(login)
        if not box:
            return []
        limit = self._clock() - self._retention_s
        gone = [k for k, e in box.items() if e.enqueued_at < limit]
        return [box.pop(k) for k in gone]

    def pending(self, login: str) -> list[Entry]:
        self.expire(login)
        return list(self._boxes.get(login, {}).values())

    def ack(self, login: str, stanza_id: str) -> Entry | None:
        box = self._boxes.get(login)
        return box.pop(stanza_id, None) if box else None

    def age(self, login: str, seconds: float) -> int:
        """Move the login's entries ``seconds`` into the past, with the ``timestamp_ms`` G stamped
        on them, as if they had been queued that much earlier; returns how many. Why: one login's
        time can pass without moving the shared clock (see ``Script.age_offline``)."""
        box = self._boxes.get(login, {})
        for e in box.values():
            e.enqueued_at -= seconds
            body = e.stanza.WhichOneof("body")
            inner = getattr(e.stanza, body) if body else None
            if inner is not None and "timestamp_ms" in inner.DESCRIPTOR.fields_by_name:
                inner.timestamp_ms = max(0, inner.timestamp_ms - int(seconds * 1000))
        return len(box)

    def count(self, login: str) -> int:
        return len(self._boxes.get(login, {}))

    def clear(self, login: str) -> int:
        return len(self._boxes.pop(login, {}))
