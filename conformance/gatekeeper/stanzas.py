"""Stanza framing after the handshake (CHN-005, CHN-006): parse one Noise plaintext into one
``Stanza``, build G's answers, and describe stanzas for the evidence log without secrets.
"""
from __future__ import annotations

import re
import secrets
from typing import Any

from google.protobuf.message import DecodeError

from reference_impl.wire import stanzas_pb2 as pb

__all__ = [
    "CLIENT_ANSWERS",
    "CLIENT_REQUESTS",
    "ERROR_CODES",
    "ID_RE",
    "FrameError",
    "chat_state_name",
    "code_name",
    "describe",
    "error_stanza",
    "fresh_id",
    "parse_stanza",
]

#: CHN-006: 1 to 64 characters from [A-Za-z0-9._-].
ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Stanzas a client may send as requests, and as answers to G's stanzas.
CLIENT_REQUESTS = frozenset({"message", "receipt", "ping", "key_fetch", "pre_key_upload",
                             "blocklist_get", "blocklist_set", "deletion_request",
                             "reachability_ping", "chatstate"})
CLIENT_ANSWERS = frozenset({"ack", "pong", "error"})
#: Short names for ``ErrorCode`` values, as the spec's Appendix A writes them.
ERROR_CODES: dict[str, int] = {
    name.removeprefix("ERROR_CODE_").lower(): value
    for name, value in pb.ErrorCode.items() if value
}


def chat_state_name(state: int) -> str:
    """``composing`` / ``paused`` for a ``ChatStateType`` value (§6.5); the number otherwise."""
    return (pb.ChatStateType.Name(state).removeprefix("CHAT_STATE_TYPE_").lower()
            if state in pb.ChatStateType.values() else str(state))


def code_name(code: int) -> str:
    return pb.ErrorCode.Name(code).removeprefix("ERROR_CODE_").lower() if code in pb.ErrorCode.values() else str(code)


class FrameError(Exception):
    """The frame cannot be processed: G answers ``error`` with ``code`` and closes."""

    def __init__(self, code: int, detail: str, requirement: str, close_code: int = 1002, *,
                 unparseable_size: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.requirement = requirement
        self.close_code = close_code
        #: Set when a plaintext arrived but is no stanza (logged as ``unparseable``, CHN-005).
        self.unparseable_size = unparseable_size


def parse_stanza(plaintext: bytes) -> pb.Stanza:
    """CHN-005: exactly one serialized Stanza with exactly one known ``body`` member."""
    stanza = pb.Stanza()
    try:
        stanza.ParseFromString(plaintext)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise FrameError(pb.ERROR_CODE_MALFORMED, f"not a Stanza protobuf: {exc}"[:200], "CHN-005") from None
    if stanza.WhichOneof("body") is None:
        raise FrameError(pb.ERROR_CODE_MALFORMED, "stanza has no known body member", "CHN-005")
    return stanza


def fresh_id(prefix: str = "g") -> str:
    return f"{prefix}.{secrets.token_hex(8)}"


def error_stanza(stanza_id: str, code: int, detail: str = "", *, user: str = "",
                 retry_after_ms: int = 0) -> pb.Stanza:
    safe_id = stanza_id if ID_RE.fullmatch(stanza_id or "") else ""
    return pb.Stanza(id=safe_id, error=pb.Error(code=code,  # type: ignore[arg-type]  # enum ints
                                                detail=detail[:300], user=user,
                                                retry_after_ms=retry_after_ms))


def describe(stanza: pb.Stanza, size: int | None = None) -> dict[str, Any]:
    """A small, secret-free summary for the evidence log."""
    body = stanza.WhichOneof("body") or "unknown"
    d: dict[str, Any] = {"type": body, "id": stanza.id}
    if size is not None:
        d["size"] = size
    if body == "message":
        m = stanza.message
        d.update(recipient=m.recipient, sender=m.sender, enc=pb.EncType.Name(m.type)
                 if m.type in pb.EncType.values() else m.type,
                 ciphertext_len=len(m.ciphertext), group_id=m.group_id,
                 retry_count=m.retry_count, timestamp_ms=m.timestamp_ms)
    elif body == "receipt":
        r = stanza.receipt
        d.update(receipt=pb.ReceiptType.Name(r.type) if r.type in pb.ReceiptType.values() else r.type,
                 message_ids=list(r.message_ids)[:50], recipient=r.recipient, sender=r.sender,
                 group_id=r.group_id, registration_id=r.registration_id, retry_count=r.retry_count)
    elif body == "error":
        e = stanza.error
        d.update(code=code_name(e.code), detail=e.detail, user=e.user,
                 retry_after_ms=e.retry_after_ms)
    elif body == "key_fetch":
        d["user"] = stanza.key_fetch.user
    elif body == "key_bundle":
        d.update(user=stanza.key_bundle.user,
                 one_time_pre_key=stanza.key_bundle.HasField("one_time_pre_key"))
    elif body == "pre_key_upload":
        u = stanza.pre_key_upload
        d.update(one_time_pre_keys=len(u.one_time_pre_keys),
                 signed_pre_key=u.signed_pre_key.id if u.HasField("signed_pre_key") else None)
    elif body == "notification":
        n = stanza.notification
        kind = n.WhichOneof("kind")
        d["notification"] = kind
        if kind:
            sub = getattr(n, kind)
            d.update({f.name: v for f, v in sub.ListFields()
                      if f.name in ("user", "count", "group_id")})
    elif body == "reachability_ping":
        d["recipient"] = stanza.reachability_ping.recipient
    elif body == "blocklist_set":
        d.update(add=list(stanza.blocklist_set.add)[:50], remove=list(stanza.blocklist_set.remove)[:50])
    elif body == "blocklist":
        d["users"] = list(stanza.blocklist.users)[:50]
    elif body == "deletion_request":
        d["reason"] = stanza.deletion_request.reason
    elif body == "chatstate":
        c = stanza.chatstate
        d.update(recipient=c.recipient, sender=c.sender, state=chat_state_name(c.state))
    return d
