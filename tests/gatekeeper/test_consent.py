"""Consent, blocking, rate limits, un-enlistment and deletion (spec §8)."""
from __future__ import annotations

import pytest

from reference_impl.wire import stanzas_pb2 as pb

pytestmark = pytest.mark.anyio


async def test_not_opted_in_user_gets_no_content_but_a_ping(gk, make_client):
    c = await make_client()
    carol = await gk.create_user("carol", consent="not_opted_in")
    answer = await c.fetch_bundle(carol.id)
    assert answer.error.code == pb.ERROR_CODE_NOT_OPTED_IN and answer.error.user == carol.id
    st = pb.Stanza(message=pb.Message(recipient=carol.id, sender=c.login, type=pb.ENC_TYPE_MSG,
                                      ciphertext=b"\x33" + b"x" * 40))
    assert (await c.request(st)).error.code == pb.ERROR_CODE_NOT_OPTED_IN
    assert carol.inbox == []
    # CON-001: the reachability ping is allowed, by id or phone number
    carol.on_ping = "grant"
    ack = await c.request(pb.Stanza(reachability_ping=pb.ReachabilityPing(recipient=carol.phone)))
    assert ack.WhichOneof("body") == "ack" and carol.pings == [c.login]
    note = await c.next_inbound("notification")
    assert note.notification.consent_granted.user == carol.id
    assert (await c.send_text(carol.id, "thanks")).WhichOneof("body") == "ack"
    assert (await carol.next_message(timeout=5)).content.conversation == "thanks"


async def test_excluded_provider(gk, make_client):
    c = await make_client()
    dave = await gk.create_user("dave", consent="excluded", exclude={"prov"})
    assert (await c.fetch_bundle(dave.id)).error.code == pb.ERROR_CODE_NOT_OPTED_IN
    assert dave.consent_for("other-provider")


async def test_consent_revocation(gk, make_client):
    c = await make_client()
    bob = await gk.create_user("bob")
    assert (await c.send_text(bob.id, "one")).WhichOneof("body") == "ack"
    assert gk.script.revoke_consent(bob) == [c.login]
    note = await c.next_inbound("notification")
    assert note.notification.consent_revoked.user == bob.id
    assert (await c.send_text(bob.id, "two")).error.code == pb.ERROR_CODE_NOT_OPTED_IN


async def test_blocked_by_g_user_is_not_disclosed(gk, make_client):
    """CON-013: G acks a message to a user who blocked the sender, as if delivered, and
    withholds it; no error names the block."""
    c = await make_client()
    bob = await gk.create_user("bob")
    gk.script.block(bob, c.login)
    first = await c.send_text(bob.id, "hi")
    assert first.WhichOneof("body") == "ack"
    assert gk.log.events(kind="withheld", login=c.login)
    gk.script.unblock(bob, c.login)
    again = await c.send_text(bob.id, "hi again")
    assert again.WhichOneof("body") == "ack"
    ev = await gk.log.wait_for(kind="user_message", user=bob.id, timeout=5)
    assert len(bob.inbox) == 1 and bob.inbox[0].message_id == ev["detail"]["id"]  # first withheld
    assert bob.inbox[0].content.conversation == "hi again"


async def test_blocklist_get_and_set(gk, make_client):
    c = await make_client()
    bob = await gk.create_user("bob")
    assert list((await c.request(pb.Stanza(blocklist_get=pb.BlocklistGet()))).blocklist.users) == []
    ack = await c.request(pb.Stanza(blocklist_set=pb.BlocklistSet(add=[bob.id])))
    assert ack.WhichOneof("body") == "ack"
    assert list((await c.request(pb.Stanza(blocklist_get=pb.BlocklistGet()))).blocklist.users) == [bob.id]
    assert (await c.send_text(bob.id, "hi")).error.code == pb.ERROR_CODE_MALFORMED  # CON-007
    await c.request(pb.Stanza(blocklist_set=pb.BlocklistSet(remove=[bob.id])))
    assert (await c.send_text(bob.id, "hi")).WhichOneof("body") == "ack"


async def test_scripted_rate_limit_and_not_opted_in(gk, make_client):
    c = await make_client()
    bob = await gk.create_user("bob")
    gk.script.rate_limit(c.login, 1500)
    err = (await c.send_text(bob.id, "a")).error
    assert err.code == pb.ERROR_CODE_RATE_LIMITED and err.retry_after_ms == 1500
    gk.script.fail_next(c.login, "not_opted_in", user=bob.id)
    err = (await c.send_text(bob.id, "b")).error
    assert err.code == pb.ERROR_CODE_NOT_OPTED_IN and err.user == bob.id
    # other kinds are not affected by a message fault
    gk.script.fail_next(c.login, "internal", kind="key_fetch")
    assert (await c.request(pb.Stanza(ping=pb.Ping()))).WhichOneof("body") == "pong"
    assert (await c.fetch_bundle(bob.id)).error.code == pb.ERROR_CODE_INTERNAL


async def test_scripted_un_enlisted_on_a_stanza(gk, make_client):
    c = await make_client()
    gk.script.fail_next(c.login, "un_enlisted", kind=None)
    answer = await c.request(pb.Stanza(ping=pb.Ping()))
    assert answer.error.code == pb.ERROR_CODE_UN_ENLISTED
    assert await c.wait_closed() == 1008
    assert (await c.connect()).error.code == pb.ERROR_CODE_UN_ENLISTED
    # re-enlistment (CON-011) brings the same user back
    assert (await c.enlist())["status"] == "ok"
    assert await c.connect() is None


async def test_un_enlist_now(gk, make_client):
    c = await make_client()
    gk.script.un_enlist(c.login)
    err = await c.next_inbound("error")
    assert err.error.code == pb.ERROR_CODE_UN_ENLISTED
    assert await c.wait_closed() == 1008


async def test_deletion_request(gk, make_client):
    c = await make_client(pre_keys=5)
    bob = await gk.create_user("bob")
    login = c.login
    await gk.log.wait_for(kind="pre_keys_uploaded", login=login, timeout=1)
    c.auto_ack = False
    bob.send_text(login, "pending")
    await c.next_inbound("message")  # unacked: stays in the mailbox until deletion
    ack = await c.request(pb.Stanza(deletion_request=pb.DeletionRequest(reason=pb.DELETION_REASON_OPT_OUT)))
    assert ack.WhichOneof("body") == "ack"
    assert await c.wait_closed() == 1000
    assert login not in gk.accounts and gk.mailbox.count(login) == 0
    assert (await c.connect()).error.code == pb.ERROR_CODE_UN_ENLISTED
    # a new enlistment gets a new login
    assert (await c.enlist())["login"] != login
