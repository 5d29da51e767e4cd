"""What makes a ``receipt`` or ``chatstate`` stanza well-formed beyond protobuf (spec §6.3,
§6.5): one place for the rules that the gatekeeper simulator enforces and the stanza vectors
publish. Sans-IO: a stanza in, the first broken rule out.
"""
from __future__ import annotations

from typing import NamedTuple

from . import stanzas_pb2 as pb

__all__ = ["Broken", "chatstate_problem", "receipt_problem"]


class Broken(NamedTuple):
    """The first rule a stanza breaks: the requirement that states it and why."""

    requirement: str
    detail: str


def receipt_problem(r: pb.Receipt) -> Broken | None:
    if r.type not in (pb.RECEIPT_TYPE_DELIVERY, pb.RECEIPT_TYPE_READ, pb.RECEIPT_TYPE_RETRY):
        return Broken("E2E-015", "unknown receipt type")
    if not r.message_ids or (r.type == pb.RECEIPT_TYPE_RETRY and len(r.message_ids) != 1):
        return Broken("E2E-017", "a receipt names message ids (exactly one for retry)")
    if len(set(r.message_ids)) != len(r.message_ids):
        return Broken("E2E-023", "a receipt names each message id once")
    return None


def chatstate_problem(c: pb.ChatState) -> Broken | None:
    if c.state not in (pb.CHAT_STATE_TYPE_COMPOSING, pb.CHAT_STATE_TYPE_PAUSED):
        return Broken("E2E-024", "chatstate state must be composing or paused")
    if not c.recipient or not c.sender:
        return Broken("E2E-024", "a chatstate names its recipient and its sender")
    return None
