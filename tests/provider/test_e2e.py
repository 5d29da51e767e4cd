"""End to end: the reference provider's client, driven through the harness, against the
gatekeeper simulator on loopback (TLS everywhere). Every harness call is exercised."""
from __future__ import annotations

import base64
import hashlib

import pytest

from conformance.gatekeeper.media import storage_reference_of
from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb

pytestmark = pytest.mark.anyio


async def test_info_and_bad_harness_input(env) -> None:
    r = await env.h.get("/info")
    assert r.status_code == 200
    assert r.json()["profile_version"] == "1.1.0" and set(r.json()["profiles"]) <= {"core", "media", "groups"}
    handle, _ = await env.user(enlist=False, connect=False)
    bad = [
        ("POST", "/reset", {"content": b"{", "headers": {"content-type": "application/json"}}, 400),
        ("POST", "/reset", {"json": {"enlist_url": "x"}}, 400),
        ("POST", "/reset", {"content": b"{}", "headers": {"content-type": "text/plain"}}, 415),
        ("POST", f"/users/{handle}/messages", {"json": {"to": "g:1", "kind": "text"}}, 400),
        ("POST", f"/users/{handle}/messages", {"json": {"to": "g:1", "kind": "poke"}}, 400),
        ("POST", f"/users/{handle}/messages", {"json": {"to": "g:1", "kind": "text", "text": "x"}}, 409),
        ("POST", f"/users/{handle}/read", {"json": {"peer": "g:1", "message_ids": []}}, 400),
        ("POST", f"/users/{handle}/connect", {}, 409),
        ("GET", f"/users/{handle}/events?after=-1", {}, 400),
        ("POST", "/users/nobody/enlist", {}, 404),
        ("GET", "/users/nobody/inbox", {}, 404),
        ("GET", "/nope", {}, 404),
        ("DELETE", "/info", {}, 405),
        ("POST", "/users", {"content": b"x" * 100_000, "headers": {"content-type": "application/json"}}, 413),
    ]
    for method, path, kw, status in bad:
        r = await env.h.request(method, path, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == status
    assert (await env.h.get("/info")).status_code == 200


async def test_text_both_ways_receipts_read_and_events(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": "hi bob"})
    assert r.status_code == 202
    mid = r.json()["message_id"]
    item = await bob.next_message(lambda i: i.message_id == mid)
    assert item.content.conversation == "hi bob" and 1 <= item.padding_length <= 15
    await env.event(handle, "receipt", message_ids=[mid], receipt="delivery")
    bob.send_receipt(login, "read", [mid])
    await env.event(handle, "receipt", message_ids=[mid], receipt="read")

    in_id = bob.send_text(login, "hi alice")
    items = await env.inbox_until(handle, 2)
    got = next(i for i in items if i["message_id"] == in_id)
    assert got["kind"] == "text" and got["text"] == "hi alice" and got["sender"] == bob.id
    assert next(i for i in items if i["message_id"] == mid)["status"] == "read"
    await env.gk.log.wait_for(lambda e: e["detail"].get("receipt") == "delivery", kind="receipt")
    r = await env.h.post(f"/users/{handle}/read", json={"peer": bob.id, "message_ids": [in_id]})
    assert r.status_code == 204
    await _wait_receipt(env, bob, "read", in_id)
    r = await env.h.get(f"/users/{handle}/events", params={"after": 1})
    assert all(e["seq"] > 1 for e in r.json()["events"])


async def _wait_receipt(env, user, kind: str, mid: str) -> bool:
    await env.gk.log.wait_for(lambda e: any(rc.type == kind and mid in rc.message_ids
                                            for rc in user.receipts), 10)
    return True


async def test_reply_reaction_revoke_and_unsupported(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    first = bob.send_text(login, "quote me")
    await env.inbox_until(handle, 1)
    r = await env.h.post(f"/users/{handle}/messages", json={
        "to": bob.id, "kind": "reply", "text": "quoted", "quoted_message_id": first, "quoted_sender": bob.id})
    reply_id = r.json()["message_id"]
    item = await bob.next_message(lambda i: i.message_id == reply_id)
    assert item.content.extended_text.context_info.quoted_message_id == first
    r = await env.h.post(f"/users/{handle}/messages", json={
        "to": bob.id, "kind": "reaction", "target_message_id": first, "target_sender": bob.id, "emoji": "👍"})
    react_id = r.json()["message_id"]
    item = await bob.next_message(lambda i: i.message_id == react_id)
    key = item.content.reaction.key  # WhatsApp's key, from the reactor's side (E2E-013)
    assert item.content.reaction.emoji == "👍" and (key.id, key.from_me, key.remote_jid,
                                                   key.participant) == (first, False, bob.id, "")

    bob.send_reply(login, "re", reply_id, login)
    bob.send_reaction(login, reply_id, login, "❤")
    bob.send_content(login, cpb.Message())  # no content member: unsupported (E2E-011)
    items = await env.inbox_until(handle, 4)
    mine = next(i for i in items if i["message_id"] == reply_id)
    await env.app.wait_until(lambda: any(x.get("reactions") for x in env.client(handle).inbox(None)), 10)
    items = (await env.h.get(f"/users/{handle}/inbox", params={"peer": bob.id})).json()["items"]
    mine = next(i for i in items if i["message_id"] == reply_id)
    assert {"sender": bob.id, "emoji": "❤"} in mine["reactions"]
    assert any(i["kind"] == "reply" and i["quoted_message_id"] == reply_id for i in items)
    assert any(i["kind"] == "unsupported" for i in items)
    bob.send_revoke(login, first)
    await env.app.wait_until(lambda: any(i["message_id"] == first and i["kind"] == "revoked"
                                         for i in env.client(handle).inbox(None)), 10, "revoke")


async def test_media_send_and_receive_and_tampered(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    data = b"\x89PNG" + bytes(range(256)) * 30
    r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "media", "media": {
        "type": "image", "mimetype": "image/png", "data": base64.b64encode(data).decode(),
        "width": 10, "height": 20, "caption": "pic"}})
    assert r.status_code == 202, r.text
    mid = r.json()["message_id"]
    item = await bob.next_message(lambda i: i.message_id == mid)
    await env.gk.log.wait_for(lambda e: e["detail"].get("id") == mid, 15, kind="media_verified")
    assert item.media is not None and item.media.ok and item.media.plaintext == data
    ref = storage_reference_of(item.content.image.direct_path)
    blob = env.app.storage.blob_path(ref).read_bytes()
    assert data[:64] not in blob  # only ciphertext is stored

    good_id, _ = bob.send_media(login, b"document body" * 100, "document", mimetype="application/pdf",
                                file_name="a.pdf")
    # send_media and tamper_media run without yielding: the blob is altered before any fetch.
    bad_id, path = bob.send_media(login, b"tampered" * 100, "audio", mimetype="audio/ogg", seconds=3)
    env.gk.script.tamper_media(path, "flip_mac")
    await env.event(handle, "media_rejected", message_id=bad_id)
    await env.app.wait_until(lambda: any(i["message_id"] == good_id for i in env.client(handle).inbox(None)),
                             15, "good media surfaced")
    items = env.client(handle).inbox(None)
    good = next(i for i in items if i["message_id"] == good_id)
    assert good["media"]["sha256"] == hashlib.sha256(b"document body" * 100).hexdigest()
    assert good["media"]["file_name"] == "a.pdf"
    assert not any(i["message_id"] == bad_id for i in items)


async def test_block_unblock_and_blocklist_sync(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    assert (await env.h.post(f"/users/{handle}/block", json={"peer": bob.id})).status_code == 204
    await env.gk.log.wait_for(lambda e: bob.id in env.gk.accounts[login].blocklist or None, 10)
    r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": "x"})
    assert r.status_code == 409 and r.json()["type"].endswith("/blocked")
    assert (await env.h.post(f"/users/{handle}/unblock", json={"peer": bob.id})).status_code == 204
    await env.gk.log.wait_for(lambda e: bob.id not in env.gk.accounts[login].blocklist or None, 10)
    r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": "ok"})
    assert r.status_code == 202


async def test_reachability_ping_consent_and_not_opted_in(env) -> None:
    handle, login = await env.user()
    carol = await env.gk.create_user("carol", consent="not_opted_in")
    r = await env.h.post(f"/users/{handle}/messages", json={"to": carol.id, "kind": "text", "text": "hey"})
    mid = r.json()["message_id"]
    await env.event(handle, "send_failed", message_id=mid, reason="not_opted_in")
    assert (await env.h.post(f"/users/{handle}/reachability-ping", json={"recipient": carol.id})).status_code == 202
    await env.event(handle, "reachability_result", peer=carol.id, reason="")
    r = await env.h.post(f"/users/{handle}/reachability-ping", json={"recipient": carol.id})
    assert r.status_code == 429
    r = await env.h.post(f"/users/{handle}/messages", json={"to": carol.id, "kind": "text", "text": "x"})
    assert r.status_code == 409 and r.json()["type"].endswith("/not-opted-in")
    env.gk.script.grant_consent(carol)
    await env.event(handle, "consent_changed", peer=carol.id, consent="granted")
    r = await env.h.post(f"/users/{handle}/messages", json={"to": carol.id, "kind": "text", "text": "yay"})
    mid = r.json()["message_id"]
    await carol.next_message(lambda i: i.message_id == mid)
    env.gk.script.revoke_consent(carol)
    await env.event(handle, "consent_changed", peer=carol.id, consent="revoked")
    r = await env.h.post(f"/users/{handle}/messages", json={"to": carol.id, "kind": "text", "text": "no"})
    assert r.status_code == 409


async def test_identity_change_is_surfaced(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    bob.send_text(login, "before")
    await env.inbox_until(handle, 1)
    bob.change_identity()
    await env.event(handle, "identity_changed", peer=bob.id)
    bob.send_text(login, "after")
    items = await env.inbox_until(handle, 2)
    assert items[-1]["text"] == "after"


async def test_decryption_failure_retry_receipt_and_resend(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    bob.send_text(login, "one")
    await env.inbox_until(handle, 1)
    r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": "ack"})
    await bob.next_message(lambda i: i.message_id == r.json()["message_id"])
    # bob now sends SignalMessages, whose last 8 bytes are the MAC
    bad = bob.send_text(login, "tampered", tamper="mac")
    await env.event(handle, "decryption_failed", message_id=bad)
    items = await env.inbox_until(handle, 3)  # bob answers the retry receipt with a resend
    assert items[-1]["message_id"] == bad and items[-1]["text"] == "tampered"
    # and our client answers G's retry receipts (E2E-018)
    assert [i["text"] for i in items if i["sender"] == bob.id] == ["one", "tampered"]
    r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": "again"})
    mid = r.json()["message_id"]
    await bob.next_message(lambda i: i.message_id == mid)
    mark = env.gk.log.mark()
    bob.send_receipt(login, "retry", [mid], retry_count=1)
    item = await bob.next_message(lambda i: i.message_id == mid and i.retry_count == 1, since=mark)
    assert item.content.conversation == "again"


async def test_prekeys_low_notice_and_signed_prekey_rotation(env) -> None:
    handle, login = await env.user()
    acct = env.gk.accounts[login]
    assert len(acct.one_time) >= 50
    env.gk.script.low_pre_keys(login, 3)
    before = len(acct.one_time)
    await env.gk.log.wait_for(lambda e: len(acct.one_time) > before or None, 10)
    old_spk = acct.signed_pre_key_id
    assert (await env.h.post(f"/users/{handle}/rotate-signed-prekey")).status_code == 204
    await env.gk.log.wait_for(lambda e: acct.signed_pre_key_id != old_spk or None, 10)
    bob = await env.gk.create_user("bob")
    bob.send_text(login, "on the new signed pre-key")
    items = await env.inbox_until(handle, 1)
    assert items[0]["text"] == "on the new signed pre-key"


async def test_rate_limited_backoff_and_un_enlisted_reenlistment(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    env.gk.script.rate_limit(login, 300)
    r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": "slow"})
    mid = r.json()["message_id"]
    await bob.next_message(lambda i: i.message_id == mid)
    env.gk.script.fail_next(login, "un_enlisted")
    r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": "after"})
    mid = r.json()["message_id"]
    await bob.next_message(lambda i: i.message_id == mid, timeout=20)
    enlisted = [e for e in env.app.storage.events(handle) if e["type"] == "enlisted"]
    assert len(enlisted) == 2


async def test_disconnect_push_wakes_and_mailbox_is_delivered(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    assert (await env.h.post(f"/users/{handle}/disconnect", json={"wake_on_push": True})).status_code == 204
    await env.gk.log.wait_for(lambda e: not env.gk.is_connected(login) or None, 10)
    ids = [bob.send_text(login, f"offline {i}") for i in range(3)]
    await env.gk.log.wait_for(lambda e: e["detail"].get("status") == 200, 10, kind="push_sent")
    items = await env.inbox_until(handle, 3, timeout=20)
    assert [i["message_id"] for i in items] == ids
    # app closed: no wake-up
    assert (await env.h.post(f"/users/{handle}/disconnect", json={"wake_on_push": False})).status_code == 204
    await env.gk.log.wait_for(lambda e: not env.gk.is_connected(login) or None, 10)
    assert not await env.client(handle).wake()


async def test_opt_out_sends_deletion_and_deletes_media(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "media", "media": {
        "type": "document", "mimetype": "text/plain", "data": base64.b64encode(b"doc").decode()}})
    item = await bob.next_message()
    ref = storage_reference_of(item.content.document.direct_path)
    assert (await env.h.post(f"/users/{handle}/opt-out")).status_code == 204
    await env.gk.log.wait_for(lambda e: True, 10, kind="deleted", login=login)
    assert login not in env.gk.accounts
    assert env.app.storage.media(ref).deleted
    r = await env.h.post(f"/users/{handle}/connect")
    assert r.status_code == 409
    r = await env.h.post(f"/users/{handle}/enlist")  # opting in again: a new enlistment
    assert r.status_code == 200


async def test_enlistment_failure_is_reported(env) -> None:
    handle, _ = await env.user(enlist=False, connect=False)
    env.gk.script.fail_next_enlistment("bad_integrator")
    r = await env.h.post(f"/users/{handle}/enlist")
    assert r.status_code == 422 and r.json()["reason"] == "bad_integrator"
    assert r.json()["type"].endswith("/enlistment-failed")
    await env.event(handle, "enlistment_failed", reason="bad_integrator")
    assert (await env.h.post(f"/users/{handle}/connect")).status_code == 409


async def test_gatekeeper_ping_is_answered(env) -> None:
    handle, login = await env.user()
    rtt = await env.gk.script.ping(login)
    assert rtt >= 0
    sid = env.gk.script.send_stanza(login, pb.Stanza(id="unk1"))  # no body: CHN-013
    await env.gk.script.ping(login)
    assert sid
