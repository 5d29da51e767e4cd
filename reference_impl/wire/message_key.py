"""Building and reading the ``MessageKey`` that reactions and revokes name their target with.

Why a module: WhatsApp's key is written from the point of view of the *sender* of the
reaction/revoke (``remote_jid`` = the chat as that sender sees it, ``from_me`` = the target is
the sender's own message, ``participant`` = the target's sender in a group), so the receiver
has to turn it back into "who wrote the target". Baileys does the same in
``cleanMessage``/``normaliseKey`` (lib/Utils/process-message.js) and ``getKeyAuthor``
(lib/Utils/generics.js); every user of the content protobuf (provider, simulator, checks)
goes through these two functions so that they cannot disagree.
"""
from __future__ import annotations

from reference_impl.wire import content_pb2 as cpb

__all__ = ["target_key", "target_author"]


def target_key(*, me: str, chat: str, target_sender: str, target_id: str,
               group: bool = False) -> cpb.MessageKey:
    """The key ``me`` puts in a reaction/revoke to message ``target_id`` by ``target_sender``.

    ``chat`` is the other party of a 1:1 chat, or the group id. ``participant`` is set only in
    a group and only when the target is someone else's, as WhatsApp clients do.
    """
    from_me = target_sender == me
    key = cpb.MessageKey(remote_jid=chat, from_me=from_me, id=target_id)
    if group and not from_me:
        key.participant = target_sender
    return key


def target_author(key: cpb.MessageKey, *, sender: str) -> str:
    """Who sent the message ``key`` names, for a key that ``sender`` wrote.

    ``from_me`` means the target is the sender's own message; otherwise it is the group
    ``participant`` or, in a 1:1 chat, the other party of the sender's chat (``remote_jid``),
    i.e. the receiver. A ``remote_jid`` naming someone else is returned as is, so that a lookup
    in the receiver's chat with ``sender`` finds nothing; "" means the key names nobody.
    """
    if key.from_me:
        return sender
    return key.participant or key.remote_jid
