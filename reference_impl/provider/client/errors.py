"""What a client action or a chat-channel exchange can fail with.

:class:`ClientError` and its subclasses become harness problem answers; :class:`StanzaError`
and :class:`ConnectionLost` stay inside the client (a request answered with an ``error``
stanza, or a channel that ended while a request waited)."""
from __future__ import annotations

from reference_impl.wire import stanzas_pb2 as pb

__all__ = ["ClientError", "EnlistFailed", "ConnectFailed", "StanzaError", "ConnectionLost",
           "ERROR_NAMES"]

#: ``ErrorCode`` number -> its spec name (``not_opted_in``, ``rate_limited``, ...).
ERROR_NAMES = {v.number: v.name.removeprefix("ERROR_CODE_").lower()
               for v in pb.ErrorCode.DESCRIPTOR.values}


class ClientError(Exception):
    """A harness action the client refuses; ``kind`` is the problem type suffix."""

    def __init__(self, status: int, kind: str, detail: str = "", reason: str = "") -> None:
        super().__init__(detail or kind)
        self.status, self.kind, self.detail, self.reason = status, kind, detail, reason


class EnlistFailed(ClientError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(422, "enlistment-failed", detail or f"enlistment failed: {reason}", reason)


class ConnectFailed(ClientError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(502, "connect-failed", detail or f"connection refused: {reason}", reason)


class StanzaError(Exception):
    """G answered a request with an ``error`` stanza."""

    def __init__(self, err: pb.Error) -> None:
        super().__init__(f"{ERROR_NAMES.get(err.code, err.code)}: {err.detail}")
        self.code = ERROR_NAMES.get(err.code, str(err.code))
        self.retry_after_ms = err.retry_after_ms
        self.user = err.user


class ConnectionLost(Exception):
    """The chat channel ended before the awaited answer came."""
