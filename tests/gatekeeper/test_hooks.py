"""The public hooks checks use instead of patching the simulator (issue 11): each one does
what it says on a real loopback gatekeeper, and undoes it."""
from __future__ import annotations

import httpx
import pytest
from gk_client import ProviderClient

from conformance.gatekeeper import HTTP_500
from reference_impl.channel import ChannelError

pytestmark = pytest.mark.anyio


async def test_recording_keeps_raw_enlistments_handshakes_and_messages(gk, make_client):
    other = gk.script.start_recording()
    with gk.script.recording() as rec:
        c = await make_client()
        g = await gk.create_user("bob")
        ack = await c.send_text(g.id, "hello")
        assert ack.WhichOneof("body") == "ack"
    gk.script.stop_recording(other)
    assert len(rec.enlistments) == 1 and b"authkey=" in rec.enlistments[0].body
    assert rec.enlistments[0].substituted is None
    assert [(h.login, h.token) for h in rec.handshakes] == [(c.login, c.token)]
    assert [(who, m.recipient) for who, m in rec.messages] == [(c.login, g.id)]
    assert len(other.enlistments) == 1  # two recordings each see everything
    assert gk.recordings == []
    await make_client("carol@provider.test")
    assert len(rec.enlistments) == 1  # closed: nothing more kept


async def test_override_substitutes_an_answer_and_keeps_no_enlistment(gk, make_client):
    c = await make_client(enlist=False)
    o = gk.script.override_enlistments(substitute=lambda rec: {"status": "fail", "reason": "x"})
    with gk.script.recording() as rec:
        assert await c.enlist() == {"status": "fail", "reason": "x"}
    gk.script.end_override(o)
    assert rec.enlistments[0].substituted == {"status": "fail", "reason": "x"}
    assert gk.accounts == {}
    ev = await gk.log.wait_for(kind="enlist_failed", timeout=1)
    assert ev["detail"]["reason"] == "x" and ev["detail"]["requirement"] == "scripted"
    assert (await c.enlist())["status"] == "ok"  # ended: G answers again


async def test_override_http_500_and_force_ok(gk, make_client):
    c = await make_client(enlist=False)
    o = gk.script.override_enlistments(substitute=lambda rec: HTTP_500)
    async with httpx.AsyncClient(verify=False) as h:
        r = await h.post(c.config["enlist_url"], data=c.form(), timeout=5)
    assert r.status_code == 500
    gk.script.end_override(o)
    # force_ok only for the requests it picks: a refusal becomes ok with a made-up login.
    o = gk.script.override_enlistments(force_ok=lambda rec: True)
    answer = await c.enlist(token="not-a-jwt")
    assert answer["status"] == "ok" and answer["login"] not in gk.accounts
    gk.script.end_override(o)
    o = gk.script.override_enlistments(force_ok=lambda rec: False)
    assert (await c.enlist(token="not-a-jwt"))["status"] == "fail"
    gk.script.end_override(o)


async def test_wrong_noise_key_is_presented_until_restored(gk, make_client):
    c = await make_client(connect=False)
    key = gk.script.present_wrong_noise_key()
    with pytest.raises(ChannelError, match="differs from the published one"):
        await c.connect()
    await c.close()
    gk.script.restore_noise_key(key)
    assert gk.noise_impostors == []
    c2 = ProviderClient(c.config, c.token, sub=c.sub)
    c2.auth_private, c2.login = c.auth_private, c.login
    try:
        assert await c2.connect() is None
    finally:
        await c2.close()


async def test_published_key_is_served_but_not_used_and_retired(gk):
    first = gk.keys.current
    new = gk.keys.publish(first.alg)
    assert gk.keys.current is first
    assert {k["kid"] for k in gk.keys.jwks()["keys"]} == {first.kid, new.kid}
    gk.keys.retire(new.kid)
    assert [k["kid"] for k in gk.keys.jwks()["keys"]] == [first.kid]
    with pytest.raises(KeyError):
        gk.keys.retire(new.kid)
    with pytest.raises(ValueError):
        gk.keys.retire(first.kid)
    rotated = gk.keys.rotate(first.alg)
    gk.keys.retire(rotated.kid)
    assert gk.keys.current is first


async def test_seeded_blocklist_is_what_the_client_reads(gk, make_client):
    import reference_impl.wire.stanzas_pb2 as pb
    c = await make_client()
    g = await gk.create_user("bob")
    gk.script.seed_blocklist(c.login, g.id)
    answer = await c.request(pb.Stanza(blocklist_get=pb.BlocklistGet()))
    assert list(answer.blocklist.users) == [g.id]


async def test_sim_user_hooks(gk, make_client):
    c = await make_client(pre_keys=5)
    g = await gk.create_user("bob")
    g.set_auto_receipts(delivery=False, retry=False)
    assert (g.auto_delivery_receipts, g.auto_retry_receipts) == (False, False)
    old = g.party.store.registration_id
    assert g.change_registration_id() == g.party.store.registration_id != old
    g.corrupt_next_bundle()
    bundle = g.take_bundle()
    assert not g.tamper_next_bundle and bundle.signed_pre_key.signature
    ct = g.encrypt_for(c.login, b"\x01")
    assert ct.type == "pkmsg" and c.login in g._peers
    key = g.party.identity_key.serialize()
    assert g.change_identity(notify="none") != key
    with pytest.raises(ValueError):
        g.change_identity(notify="nobody")
    g.forget_sender_key("grp.x", g.id)  # nothing to forget is fine
