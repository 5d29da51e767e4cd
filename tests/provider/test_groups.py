"""Groups end to end (spec §10): the reference provider's client, driven through the harness,
in a group with gatekeeper-simulator users; membership changes, retries, receipts and the
group state surviving a reload from SQLite."""
from __future__ import annotations

import pytest

from reference_impl.signal.wire import SenderKeyDistributionMessage, SenderKeyMessage

pytestmark = pytest.mark.anyio


def _key_id(item) -> int:
    return SenderKeyDistributionMessage.parse(
        item.content.sender_key_distribution.distribution_message).key_id


async def _membership_acked(env, login: str, since: int) -> None:
    """The client acknowledged (so processed) the group_membership notification."""
    queued = await env.gk.log.wait_for(lambda e: e["detail"].get("type") == "notification", 10,
                                       since=since, kind="queued", login=login)
    await env.gk.log.wait_for(None, 10, since=since, kind="acked", login=login,
                              id=queued["detail"]["id"])


async def _send(env, handle: str, to: str, text: str) -> str:
    r = await env.h.post(f"/users/{handle}/messages", json={"to": to, "kind": "text", "text": text})
    assert r.status_code == 202, r.text
    return r.json()["message_id"]


async def test_group_send_receive_membership_retry_and_receipts(env) -> None:
    handle, login = await env.user()
    client = env.client(handle)
    bob = await env.gk.create_user("bob")
    carol = await env.gk.create_user("carol")
    mark = env.gk.log.mark()
    group = env.gk.create_group(bob, [login, carol.id])
    gid = group.group_id
    await _membership_acked(env, login, mark)
    assert (await env.h.get("/info")).json()["profiles"] == ["core", "media", "groups"]

    # GRP-001/002: the sender key pairwise first, then one skmsg that both decrypt.
    mark = env.gk.log.mark()
    mid = await _send(env, handle, gid, "hello group")
    skds = {}
    for member in (bob, carol):
        skd = await member.next_message(lambda i: i.kind == "sender_key_distribution", since=mark)
        assert skd.type in ("pkmsg", "msg") and skd.content.sender_key_distribution.group_id == gid
        skds[member.id] = _key_id(skd)
        msg = await member.next_message(lambda i: i.message_id == mid, since=mark)
        assert msg.type == "skmsg" and msg.group_id == gid and msg.content.conversation == "hello group"
        assert SenderKeyMessage.parse(msg.ciphertext).key_id == skds[member.id]
    # GRP-008: per-participant delivery receipts, surfaced with the participant.
    for member in (bob, carol):
        await env.event(handle, "receipt", message_ids=[mid], receipt="delivery", peer=gid,
                        participant=member.id)

    # GRP-003: a member's group message lands in the group conversation; read receipt (GRP-008).
    in_id = bob.send_group_text(group, "hi all")
    items = await env.inbox_until(handle, 2)
    got = next(i for i in items if i["message_id"] == in_id)
    assert (got["peer"], got["sender"], got["text"]) == (gid, bob.id, "hi all")
    r = await env.h.post(f"/users/{handle}/read", json={"peer": gid, "message_ids": [in_id]})
    assert r.status_code == 204
    await env.gk.log.wait_for(lambda e: any(rc.type == "read" and in_id in rc.message_ids
                                            and rc.group_id == gid for rc in bob.receipts), 10)

    # GRP-005: a removal rotates the key; only the remaining member gets the new one.
    mark = env.gk.log.mark()
    env.gk.change_group(group, remove=[carol.id])
    await _membership_acked(env, login, mark)
    mid2 = await _send(env, handle, gid, "without carol")
    skd = await bob.next_message(lambda i: i.kind == "sender_key_distribution", since=mark)
    assert _key_id(skd) != skds[bob.id]
    msg = await bob.next_message(lambda i: i.message_id == mid2, since=mark)
    assert msg.content.conversation == "without carol"
    assert not [e for e in env.gk.log.events(since=mark, kind="user_message", user=carol.id)]

    # GRP-007: bob lost our key and asks again: the content comes pairwise, same id.
    mark = env.gk.log.mark()
    bob.party.store.sender_keys.pop((gid, login), None)
    bob.send_receipt(login, "retry", [mid2], group_id=gid, retry_count=1)
    resend = await bob.next_message(lambda i: i.message_id == mid2 and i.retry_count == 1, since=mark)
    assert resend.type in ("pkmsg", "msg") and resend.content.conversation == "without carol"

    # GRP-006: a group message under a key the client never got: a retry receipt with the
    # group id; bob's pairwise resend is surfaced in the group.
    bob.party.store.sender_keys.pop((gid, bob.id), None)
    bob.party.group_distribution(gid)  # a new chain; bob believes we already hold his key
    lost = bob.send_group_text(group, "undistributed")
    await env.event(handle, "decryption_failed", message_id=lost, peer=gid, participant=bob.id)
    await env.gk.log.wait_for(lambda e: e["detail"].get("receipt") == "RECEIPT_TYPE_RETRY"
                              and e["detail"].get("group_id") == gid, 10, kind="receipt")
    await env.app.wait_until(
        lambda: any(i["message_id"] == lost and i["peer"] == gid and i["text"] == "undistributed"
                    for i in client.inbox(gid)), 10, "resend surfaced in the group")

    # Everything above is in SQLite: a reloaded client knows the group and its key holders.
    saved = {h: s for h, _, s, _ in env.app.storage.load_users()}[handle]
    assert saved["groups"][gid]["participants"] == [bob.id, login]
    assert saved["groups"][gid]["key_holders"] == [bob.id]
