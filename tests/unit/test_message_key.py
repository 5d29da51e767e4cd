"""``MessageKey`` as WhatsApp writes it (sender's view) and as the receiver reads it back.

The expected keys are the ones Baileys builds (``sendMessage(jid, {react: {key}})`` with the key
of the stored target message) and reads (``cleanMessage``/``normaliseKey`` then ``getKeyAuthor``).
"""
from __future__ import annotations

import pytest

from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire.message_key import target_author, target_key

ME, PEER, OTHER, GROUP = "1-491700000001@interop", "g:7", "g:8", "grp-1"


@pytest.mark.parametrize(
    ("target_sender", "group", "chat", "expected"),
    [
        # 1:1, reacting to the peer's message: the chat is the peer, not from me, no participant.
        (PEER, False, PEER, {"remote_jid": PEER, "from_me": False, "id": "m1"}),
        # 1:1, own message.
        (ME, False, PEER, {"remote_jid": PEER, "from_me": True, "id": "m1"}),
        # group, someone else's message: participant names its sender.
        (OTHER, True, GROUP, {"remote_jid": GROUP, "from_me": False, "id": "m1", "participant": OTHER}),
        # group, own message: no participant.
        (ME, True, GROUP, {"remote_jid": GROUP, "from_me": True, "id": "m1"}),
    ],
)
def test_target_key_is_written_from_the_senders_side(target_sender: str, group: bool, chat: str,
                                                     expected: dict) -> None:
    key = target_key(me=ME, chat=chat, target_sender=target_sender, target_id="m1", group=group)
    assert key == cpb.MessageKey(**expected)
    assert key.HasField("from_me")  # sent explicitly, as WhatsApp clients do
    # Read back by a receiver, with ME as the key's sender.
    assert target_author(key, sender=ME) == target_sender


def test_received_keys_resolve_to_the_target_author() -> None:
    # The peer reacts to my message in our 1:1 chat: its chat is me, not from it.
    assert target_author(cpb.MessageKey(remote_jid=ME, from_me=False, id="x"), sender=PEER) == ME
    # The peer reacts to its own message.
    assert target_author(cpb.MessageKey(remote_jid=ME, from_me=True, id="x"), sender=PEER) == PEER
    # In a group, to a third member's message.
    key = cpb.MessageKey(remote_jid=GROUP, from_me=False, id="x", participant=OTHER)
    assert target_author(key, sender=PEER) == OTHER
    # A key naming nobody: empty, so that no message is found.
    assert target_author(cpb.MessageKey(id="x"), sender=PEER) == ""
