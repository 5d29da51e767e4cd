"""Typing indicators, aggregated read receipts and account deletion at the simulator (spec §6.5,
E2E-023, CON-014): real provider clients on loopback (WebSocket + Noise) and simulated G users."""
from __future__ import annotations

import asyncio

import pytest

from reference_impl.wire import stanzas_pb2 as pb

pytestmark = pytest.mark.anyio

COMPOSING, PAUSED = pb.CHAT_STATE_TYPE_COMPOSING, pb.CHAT_STATE_TYPE_PAUSED


def _cs(c, to: str, state: int = COMPOSING, sender: str | None = None) -> pb.Stanza:
    return pb.Stanza(chatstate=pb.ChatState(recipient=to, sender=c.login if sender is None else sender,
                                            state=state))


async def test_provider_chatstate_reaches_the_g_user_and_is_acked(gk, make_client):
    c = await make_client()
    bob = await gk.create_user("bob")
    for state in (COMPOSING, PAUSED):
        assert (await c.request(_cs(c, bob.id, state))).WhichOneof("body") == "ack"
    await gk.log.wait_for(kind="user_chatstate_received", user=bob.id, state="paused", timeout=5)
    assert [(r.sender, r.state) for r in bob.chatstates] == [(c.login, "composing"), (c.login, "paused")]
    ev = gk.log.events(kind="stanza_received", login=c.login, type="chatstate")
    assert [e["detail"]["state"] for e in ev] == ["composing", "paused"]


async def test_g_refuses_or_drops_chatstates_by_its_rules(gk, make_client):
    c = await make_client()
    shy = await gk.create_user("shy", consent="not_opted_in")
    blocker = await gk.create_user("blocker")
    blocker.blocked.add(c.login)
    blocked = await gk.create_user("blocked")
    err = await c.request(_cs(c, shy.id))
    assert err.error.code == pb.ERROR_CODE_NOT_OPTED_IN and err.error.user == shy.id
    # The recipient blocked the sender: acknowledged and dropped, the block is not disclosed.
    assert (await c.request(_cs(c, blocker.id))).WhichOneof("body") == "ack"
    # The sender's own user blocked the recipient: dropped, and an E2E-024 violation.
    assert (await c.request(pb.Stanza(blocklist_set=pb.BlocklistSet(add=[blocked.id])))).WhichOneof("body") == "ack"
    assert (await c.request(_cs(c, blocked.id))).WhichOneof("body") == "ack"
    await asyncio.sleep(0)  # relays run after the ack (call_soon)
    assert not shy.chatstates and not blocker.chatstates and not blocked.chatstates
    reasons = [e["detail"]["reason"] for e in gk.log.events(kind="chatstate_dropped", login=c.login)]
    assert reasons == ["recipient blocked the sender", "sender blocked the recipient"]
    assert [e["detail"]["requirement"] for e in gk.log.events(kind="violation", login=c.login)] == ["E2E-024"]


@pytest.mark.parametrize("stanza, requirement", [
    (lambda c, to: _cs(c, to, sender="someone-else@interop"), "ENL-006"),
    (lambda c, to: _cs(c, to, state=pb.CHAT_STATE_TYPE_UNSPECIFIED), "E2E-024"),
])
async def test_malformed_chatstates_are_refused(gk, make_client, stanza, requirement):
    c = await make_client()
    bob = await gk.create_user("bob")
    err = await c.request(stanza(c, bob.id))
    assert err.error.code == pb.ERROR_CODE_MALFORMED
    ev = await gk.log.wait_for(kind="rejected", login=c.login, timeout=5)
    assert ev["detail"]["requirement"] == requirement
    assert not bob.chatstates


async def test_g_user_chatstate_is_ephemeral(gk, make_client):
    c = await make_client()
    bob = await gk.create_user("bob")
    assert bob.send_chatstate(c.login, "composing") is True
    st = await c.next_inbound("chatstate")
    assert (st.chatstate.sender, st.chatstate.recipient, st.chatstate.state) == (bob.id, c.login, COMPOSING)
    assert gk.mailbox.count(c.login) == 0  # never queued, so nothing waits for an ack
    await c.close()
    await gk.log.wait_for(kind="disconnected", login=c.login, timeout=5)
    assert bob.send_chatstate(c.login, "paused") is False
    assert gk.mailbox.count(c.login) == 0
    assert gk.log.events(kind="ephemeral_dropped", login=c.login)[-1]["detail"]["reason"] == "offline"
    assert not gk.log.events(kind="push_sent", login=c.login)


async def test_g_user_chatstate_follows_consent_and_blocks(gk, make_client):
    c = await make_client()
    shy = await gk.create_user("shy", consent="not_opted_in")
    bob = await gk.create_user("bob")
    assert shy.send_chatstate(c.login, "composing") is False
    assert (await c.request(pb.Stanza(blocklist_set=pb.BlocklistSet(add=[bob.id])))).WhichOneof("body") == "ack"
    assert bob.send_chatstate(c.login, "composing") is False
    # A chatstate that left before G applied the block (the E2E-025 check's case) still goes out.
    assert bob.send_chatstate(c.login, "paused", racing_block=True) is True
    st = await c.next_inbound("chatstate")
    assert st.chatstate.state == PAUSED
    with pytest.raises(ValueError):
        bob.send_chatstate(c.login, "typing")
    with pytest.raises(LookupError):
        bob.send_chatstate("nobody@interop", "composing")


async def test_aggregated_read_receipts_both_ways(gk, make_client):
    c = await make_client(pre_keys=5)
    bob = await gk.create_user("bob")
    mids = [bob.send_text(c.login, f"m{i}") for i in range(3)]
    for _ in mids:
        await c.next_inbound("message")
    ack = await c.request(pb.Stanza(receipt=pb.Receipt(type=pb.RECEIPT_TYPE_READ, message_ids=mids,
                                                       recipient=bob.id)))
    assert ack.WhichOneof("body") == "ack"
    await gk.log.wait_for(kind="receipt", login=c.login, direction="from_provider", timeout=5)
    await asyncio.sleep(0)
    assert bob.receipts[-1].type == "read" and bob.receipts[-1].message_ids == mids
    sent = [(await c.send_text(bob.id, f"s{i}"), i) for i in range(3)]
    assert all(a.WhichOneof("body") == "ack" for a, _ in sent)
    ids = [e["detail"]["id"] for e in gk.log.events(kind="stanza_received", login=c.login, type="message")]
    bob.send_receipt(c.login, "read", ids[::-1])
    while True:
        r = await c.next_inbound("receipt")
        if r.receipt.type == pb.RECEIPT_TYPE_READ:
            break
    assert list(r.receipt.message_ids) == ids[::-1] and r.receipt.sender == bob.id


async def test_receipt_naming_an_id_twice_is_refused(gk, make_client):
    c = await make_client(pre_keys=5)
    bob = await gk.create_user("bob")
    mid = bob.send_text(c.login, "once")
    await c.next_inbound("message")
    err = await c.request(pb.Stanza(receipt=pb.Receipt(type=pb.RECEIPT_TYPE_READ, message_ids=[mid, mid],
                                                       recipient=bob.id)))
    assert err.error.code == pb.ERROR_CODE_MALFORMED
    ev = await gk.log.wait_for(kind="rejected", login=c.login, timeout=5)
    assert ev["detail"]["requirement"] == "E2E-023"
    await asyncio.sleep(0)
    assert not [r for r in bob.receipts if r.type == "read"]


async def test_account_deletion_request_is_logged_with_its_reason(gk, make_client):
    c = await make_client()
    login = c.login
    ack = await c.request(pb.Stanza(deletion_request=pb.DeletionRequest(
        reason=pb.DELETION_REASON_ACCOUNT_DELETED)))
    assert ack.WhichOneof("body") == "ack"
    assert await c.wait_closed() == 1000
    ev = gk.log.events(kind="deletion_requested", login=login)[-1]
    assert ev["detail"]["reason"] == "DELETION_REASON_ACCOUNT_DELETED"
    assert login not in gk.accounts
