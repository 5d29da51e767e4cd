"""What a check may watch or substitute at the simulator's edges, through public objects.

Why: the event log is redacted and stops at the first problem, but some checks judge the raw
enlistment form, the handshake payload or the exact message stanza a client sent (ENL-*,
ID-005..ID-008, ENL-008), and ENL-007 / TRN-006 need G to give another answer than its own.
Checks used to wrap simulator methods for that; instead they open a :class:`Recording`
(any number at once: each sees everything sent while it is open) or an
:class:`EnlistmentOverride` (each decides per request, so two never fight over one user)
through :class:`~.script.Script`. Raw tokens stay in memory here; nothing is logged from them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reference_impl.wire import stanzas_pb2 as pb

__all__ = ["HTTP_500", "EnlistmentOverride", "EnlistmentRecord", "HandshakeRecord", "Recording",
           "SimulatedServerError"]


class _Http500:
    def __repr__(self) -> str:
        return "HTTP_500"


#: A substitute answer meaning "G fails with HTTP 500" instead of a JSON body.
HTTP_500: Any = _Http500()


class SimulatedServerError(Exception):
    """Raised by the enlistment edge for an :data:`HTTP_500` substitute: the app answers 500."""


@dataclass
class EnlistmentRecord:
    """One enlistment request exactly as G received it."""

    body: bytes
    content_type: str
    t: float
    #: What G answered instead of its own verdict (an override's answer, "HTTP 500"), or None.
    substituted: Any = None


@dataclass(frozen=True)
class HandshakeRecord:
    """The client's side of one completed Noise handshake: static key and ``ClientHello``."""

    remote_static: bytes
    login: str
    token: str
    version: str
    t: float


@dataclass
class Recording:
    """Raw enlistments, handshakes and client ``message`` stanzas seen while it is open."""

    enlistments: list[EnlistmentRecord] = field(default_factory=list)
    handshakes: list[HandshakeRecord] = field(default_factory=list)
    #: ``(login of the connection, a copy of the message)``.
    messages: list[tuple[str | None, pb.Message]] = field(default_factory=list)

    def note_message(self, login: str | None, message: pb.Message) -> None:
        copy = pb.Message()
        copy.CopyFrom(message)
        self.messages.append((login, copy))


@dataclass(eq=False)
class EnlistmentOverride:
    """G answers some enlistments otherwise than it would.

    ``substitute(record)`` returns the answer G sends instead of its own (G still validates
    and logs the request, as a scripted failure, so no enlistment is kept), :data:`HTTP_500`,
    or None to let G answer. ``force_ok(record)`` true turns a refusal by G into
    ``{"status":"ok"}`` with a made-up login (to reach the chat channel regardless).
    """

    substitute: Callable[[EnlistmentRecord], Any] | None = None
    force_ok: Callable[[EnlistmentRecord], bool] | None = None
