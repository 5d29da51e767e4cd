"""Content between a provider client and simulated G users: media both ways, replies,
reactions, receipts, retries, identity change, groups, drops and reorders, retention."""
from __future__ import annotations

import hashlib
import os
import time

import httpx
import pytest

from reference_impl.media.crypto import MediaType, decrypt_media, encrypt_media
from reference_impl.signal.errors import InvalidMediaError
from reference_impl.signal.padding import pad
from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb

pytestmark = pytest.mark.anyio


async def _pair(gk, make_client):
    c = await make_client(pre_keys=20)
    bob = await gk.create_user("bob")
    return c, bob


async def test_g_user_starts_the_session(gk, make_client):
    c, bob = await _pair(gk, make_client)
    mid = bob.send_text(c.login, "first contact")
    st = await c.next_inbound("message")
    assert st.message.type == pb.ENC_TYPE_PKMSG and st.message.sender == bob.id
    assert c.decrypt(st).conversation == "first contact"
    assert len(gk.accounts[c.login].one_time) == 19  # one one-time key used
    assert (await c.send_text(bob.id, "answer")).WhichOneof("body") == "ack"
    item = await bob.next_message(timeout=5)
    assert item.type == "msg" and item.content.conversation == "answer"
    await gk.log.wait_for(kind="message_delivered", id=mid, timeout=5)
    assert bob.acked == [mid]


async def test_reply_reaction_receipts_from_g_user(gk, make_client):
    c, bob = await _pair(gk, make_client)
    ack = await c.send_text(bob.id, "quote me")
    item = await bob.next_message(timeout=5)
    bob.send_reply(c.login, "quoted", item.message_id, c.login)
    bob.send_reaction(c.login, item.message_id, c.login, "👍")
    bob.send_receipt(c.login, "read", [item.message_id])
    reply = c.decrypt(await c.next_inbound("message"))
    assert reply.extended_text.context_info.quoted_message_id == item.message_id
    reaction = c.decrypt(await c.next_inbound("message"))
    key = reaction.reaction.key
    assert reaction.reaction.emoji == "👍" and (key.id, key.from_me, key.remote_jid) == (
        item.message_id, False, c.login)
    receipts = [await c.next_inbound("receipt") for _ in range(2)]
    assert {r.receipt.type for r in receipts} == {pb.RECEIPT_TYPE_DELIVERY, pb.RECEIPT_TYPE_READ}
    assert ack.WhichOneof("body") == "ack"


async def test_receipts_from_provider_reach_the_user(gk, make_client):
    c, bob = await _pair(gk, make_client)
    mid = bob.send_text(c.login, "read me")
    await c.next_inbound("message")
    ack = await c.request(pb.Stanza(receipt=pb.Receipt(type=pb.RECEIPT_TYPE_READ, message_ids=[mid],
                                                       recipient=bob.id)))
    assert ack.WhichOneof("body") == "ack"
    ev = await gk.log.wait_for(kind="receipt", login=c.login, direction="from_provider", timeout=5)
    assert ev["detail"]["message_ids"] == [mid]
    assert bob.receipts[-1].type == "read" and bob.receipts[-1].sender == c.login


async def test_undecryptable_message_gets_retry_receipts(gk, make_client):
    c, bob = await _pair(gk, make_client)
    await c.send_text(bob.id, "set up")
    await bob.next_message(timeout=5)
    st = pb.Stanza(id="bad.1", message=pb.Message(recipient=bob.id, sender=c.login, type=pb.ENC_TYPE_MSG,
                                                  ciphertext=b"\x33" + os.urandom(60)))
    assert (await c.request(st)).WhichOneof("body") == "ack"
    r = await c.next_inbound("receipt")
    assert r.receipt.type == pb.RECEIPT_TYPE_DELIVERY  # for "set up"
    r = await c.next_inbound("receipt")
    assert r.receipt.type == pb.RECEIPT_TYPE_RETRY and list(r.receipt.message_ids) == ["bad.1"]
    assert r.receipt.retry_count == 1 and r.receipt.registration_id == bob.party.store.registration_id
    assert bob.failures[-1].message_id == "bad.1"
    # the session still works afterwards
    await c.send_text(bob.id, "still fine")
    assert (await bob.next_message(lambda i: i.content.conversation == "still fine", timeout=5))


async def test_g_user_answers_a_retry_receipt(gk, make_client):
    c, bob = await _pair(gk, make_client)
    await c.send_text(bob.id, "hello")
    await bob.next_message(timeout=5)
    mid = bob.send_text(c.login, "please retry")
    first = await c.next_inbound("message")
    await c.request(pb.Stanza(receipt=pb.Receipt(type=pb.RECEIPT_TYPE_RETRY, message_ids=[mid], recipient=bob.id,
                                                 registration_id=c.party.store.registration_id, retry_count=1)))
    again = await c.next_inbound("message")
    assert again.id == mid and again.message.retry_count == 1
    assert first.id == mid
    # same registration id as bob knows: resent on the existing session (E2E-018)
    assert c.decrypt(again).conversation == "please retry"


async def test_identity_change(gk, make_client):
    c, bob = await _pair(gk, make_client)
    await c.send_text(bob.id, "hi")
    await bob.next_message(timeout=5)
    old = bob.party.identity_key.serialize()
    new = bob.change_identity()
    assert new != old
    note = await c.next_inbound("notification")
    assert note.notification.identity_change.user == bob.id
    assert note.notification.identity_change.identity_key == new
    bob.send_text(c.login, "new me")
    st = await c.next_inbound("message")
    assert st.message.type == pb.ENC_TYPE_PKMSG
    c.party.store.identities.pop(bob.id)  # the client accepts the new identity (E2E-019 allows it)
    assert c.decrypt(st).conversation == "new me"


async def test_media_from_g_user(gk, make_client):
    c, bob = await _pair(gk, make_client)
    data = os.urandom(5000)
    _, path = bob.send_media(c.login, data, MediaType.IMAGE, mimetype="image/jpeg", width=10, height=20)
    img = c.decrypt(await c.next_inbound("message")).image
    assert img.direct_path == path and img.width == 10
    url = gk.config_for_provider()["media_host"] + img.direct_path
    async with httpx.AsyncClient(http2=True) as h:
        r = await h.get(url, timeout=5)
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        assert decrypt_media(r.content, img.media_key, MediaType.IMAGE, img.file_sha256, img.file_enc_sha256) == data
        gk.script.tamper_media(path, "flip_mac")
        r = await h.get(url, timeout=5)
        with pytest.raises(InvalidMediaError) as exc:
            decrypt_media(r.content, img.media_key, MediaType.IMAGE, img.file_sha256, img.file_enc_sha256)
        assert exc.value.check == "file_enc_sha256"
        gk.script.media_quirks(path, content_type=None, send_length=False)
        r = await h.get(url, timeout=5)
        assert "content-type" not in r.headers and "content-length" not in r.headers
        assert (await h.get(gk.config_for_provider()["media_host"] + "/v/t62.7118-24/unknown", timeout=5)).status_code == 404
    ev = await gk.log.wait_for(kind="media_served", found=True, timeout=1)
    assert ev["detail"]["direct_path"] == path


async def _send_provider_media(c, provider, bob, blob_mutation=None):
    data = os.urandom(3000)
    enc = encrypt_media(data, MediaType.DOCUMENT)
    blob = enc.blob if blob_mutation is None else blob_mutation(enc.blob)
    ref = provider.upload(blob)
    msg = cpb.Message(document=cpb.DocumentMessage(
        mimetype="application/pdf", file_name="a.pdf", file_sha256=enc.file_sha256,
        file_length=enc.file_length, media_key=enc.media_key, file_enc_sha256=enc.file_enc_sha256,
        direct_path=f"/interop/whatsapp/download/1/{ref}/"))
    assert (await c.send_content(bob.id, msg)).WhichOneof("body") == "ack"
    return data, ref


async def test_media_from_provider_is_fetched_and_verified(gk, make_client, provider):
    c, bob = await _pair(gk, make_client)
    data, ref = await _send_provider_media(c, provider, bob)
    ev = await gk.log.wait_for(kind="media_verified", login=c.login, timeout=5)
    assert ev["detail"]["ok"] is True
    assert ev["detail"]["plaintext_sha256"] == hashlib.sha256(data).hexdigest()
    item = next(i for i in bob.inbox if i.kind == "document")
    assert item.media.plaintext == data and item.media.fetch["http_version"] == "HTTP/1.1"
    req = provider.media_requests[-1]
    assert req["ref"] == ref and not req["authorization"]  # no credentials: S2 §5.1.1, MED-018
    # the suite's own fetcher, over HTTP/2 where the server offers it, and HEAD
    res = await gk.fetch_provider_media(ref, hashlib.sha256(provider.media[ref]).digest())
    assert res.ok and res.length == len(provider.media[ref])
    assert (await gk.fetch_provider_media("../../etc/passwd")).error is not None


async def test_tampered_provider_media_fails_verification(gk, make_client, provider):
    c, bob = await _pair(gk, make_client)
    await _send_provider_media(c, provider, bob, lambda b: b[:-1] + bytes([b[-1] ^ 1]))
    ev = await gk.log.wait_for(kind="media_verified", login=c.login, timeout=5)
    assert ev["detail"]["ok"] is False and ev["detail"]["failed_check"] == "file_enc_sha256"


async def test_drop_and_reorder(gk, make_client):
    c, bob = await _pair(gk, make_client)
    gk.script.drop_next(c.login, 1)
    lost = bob.send_text(c.login, "lost")
    gk.script.reorder_next(c.login, 2)
    a = bob.send_text(c.login, "a")
    b = bob.send_text(c.login, "b")
    got = [await c.next_inbound("message") for _ in range(2)]
    assert [s.id for s in got] == [b, a]
    assert lost not in [s.id for s in got]
    await gk.log.wait_for(kind="delivery_dropped", id=lost, timeout=1)
    # the client can still decrypt: skipped and out-of-order keys
    assert c.decrypt(got[0]).conversation == "b" and c.decrypt(got[1]).conversation == "a"


async def test_mailbox_retention_uses_the_clock(gk, make_client, provider):
    c, bob = await _pair(gk, make_client)
    now = [time.time()]
    gk.settings.clock = lambda: now[0]
    await c.close()
    await gk.log.wait_for(kind="disconnected", login=c.login, timeout=5)
    bob.send_text(c.login, "old")
    await provider.wait_push(1)
    now[0] += 31 * 86400
    c.token = provider.token(c.sub, gk.config_for_provider()["audience"], iat=int(now[0]), exp=int(now[0]) + 600)
    gk.accounts[c.login].last_seen = now[0]  # connected recently enough to stay enlisted
    assert await c.connect() is None
    await gk.log.wait_for(kind="mailbox_expired", login=c.login, timeout=1)
    assert gk.mailbox.count(c.login) == 0


async def test_force_offline_then_push(gk, make_client, provider):
    c, bob = await _pair(gk, make_client)
    assert gk.script.force_offline(c.login)
    assert await c.wait_closed() == 1001
    await gk.log.wait_for(kind="disconnected", login=c.login, timeout=5)
    bob.send_text(c.login, "wake up")
    push = await provider.wait_push(1)
    assert push["body"] == {"to": c.sub}
    assert push["headers"]["content-type"] == "application/json"
    assert push["verified"]["iss"] == gk.settings.issuer and push["verified"]["aud"] == "prov"


async def test_push_result_records_provider_errors(gk, make_client, provider):
    c = await make_client()
    provider.push_status = 500
    result = await gk.push(c.login)
    assert result.status == 500
    bad = await gk.push(c.login, token="not-a-jwt")
    assert bad.status == 401
    ev = gk.log.events(kind="push_sent", login=c.login)
    assert [e["detail"]["status"] for e in ev] == [500, 401]


async def test_groups(gk, make_client):
    c, bob = await _pair(gk, make_client)
    carol = await gk.create_user("carol")
    group = gk.create_group(bob, [carol.id, c.login])
    note = await c.next_inbound("notification")
    assert set(note.notification.group_membership.participants) == {bob.id, carol.id, c.login}
    mid = bob.send_group_text(group, "hello group")
    skd_st = await c.next_inbound("message")
    skd = c.decrypt(skd_st).sender_key_distribution
    assert skd.group_id == group.group_id
    c.party.process_group_distribution(group.group_id, bob.id, skd.distribution_message)
    gm = await c.next_inbound("message")
    assert gm.id == mid and gm.message.type == pb.ENC_TYPE_SKMSG and gm.message.group_id == group.group_id
    from reference_impl.signal.padding import unpad
    text = cpb.Message.FromString(unpad(c.party.group_decrypt(group.group_id, bob.id, gm.message.ciphertext)))
    assert text.conversation == "hello group"
    item = await carol.next_message(lambda i: i.type == "skmsg", timeout=5)
    assert item.content.conversation == "hello group"

    # the provider's group message: distribution pairwise, then one skmsg fanned out by G
    dm = c.party.group_distribution(group.group_id)
    for member in (bob.id, carol.id):
        await c.send_content(member, cpb.Message(sender_key_distribution=cpb.SenderKeyDistribution(
            group_id=group.group_id, distribution_message=dm)))
    body = c.party.group_encrypt(group.group_id, pad(cpb.Message(conversation="from provider").SerializeToString()))
    ack = await c.request(pb.Stanza(message=pb.Message(sender=c.login, type=pb.ENC_TYPE_SKMSG,
                                                       group_id=group.group_id, ciphertext=body)))
    assert ack.WhichOneof("body") == "ack"
    for user in (bob, carol):
        got = await user.next_message(lambda i: i.type == "skmsg" and i.sender == c.login, timeout=5)
        assert got.content.conversation == "from provider"
    # a recipient on a group message is refused (GRP-002)
    bad = await c.request(pb.Stanza(message=pb.Message(sender=c.login, recipient=bob.id, type=pb.ENC_TYPE_SKMSG,
                                                       group_id=group.group_id, ciphertext=body)))
    assert bad.error.code == pb.ERROR_CODE_MALFORMED
