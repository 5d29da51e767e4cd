"""Key directory (E2E-020, E2E-021, E2E-002): uploads, one-time keys handed out once, low supply."""
from __future__ import annotations

import pytest

from conformance.gatekeeper import Settings
from reference_impl.signal import InvalidSignatureError, PublicKey, xeddsa
from reference_impl.wire import stanzas_pb2 as pb

pytestmark = pytest.mark.anyio


def _opk(i, key=None):
    return pb.OneTimePreKey(id=i, public_key=key or PublicKey(bytes([i % 250 + 1]) * 32).serialize())


@pytest.mark.parametrize("up,requirement", [
    (pb.PreKeyUpload(one_time_pre_keys=[_opk(0)]), "E2E-020"),
    (pb.PreKeyUpload(one_time_pre_keys=[_opk(1 << 24)]), "E2E-020"),
    (pb.PreKeyUpload(one_time_pre_keys=[pb.OneTimePreKey(id=5, public_key=b"\x05" + b"\x01" * 31)]), "E2E-020"),
    (pb.PreKeyUpload(one_time_pre_keys=[pb.OneTimePreKey(id=5, public_key=b"\x06" + b"\x01" * 32)]), "E2E-020"),
    (pb.PreKeyUpload(one_time_pre_keys=[_opk(7), _opk(7)]), "E2E-020"),
    (pb.PreKeyUpload(signed_pre_key=pb.SignedPreKey(id=9, public_key=PublicKey(b"\x02" * 32).serialize(),
                                                    signature=b"\x00" * 64)), "E2E-021"),
])
async def test_bad_uploads_are_refused_atomically(gk, make_client, up, requirement):
    c = await make_client()
    answer = await c.request(pb.Stanza(pre_key_upload=up))
    assert answer.WhichOneof("body") == "error" and answer.error.code == pb.ERROR_CODE_MALFORMED
    assert (await gk.log.wait_for(kind="rejected", timeout=1))["detail"]["requirement"] == requirement
    assert len(gk.accounts[c.login].one_time) == 0


async def test_reused_pre_key_id_is_refused(gk, make_client):
    c = await make_client(pre_keys=5)
    answer = await c.request(pb.Stanza(pre_key_upload=pb.PreKeyUpload(one_time_pre_keys=[_opk(3)])))
    assert answer.error.code == pb.ERROR_CODE_MALFORMED


async def test_signed_pre_key_rotation(gk, make_client):
    c = await make_client()
    spk = c.party.store.generate_signed_pre_key(2, c.party.rng)
    up = pb.PreKeyUpload(signed_pre_key=pb.SignedPreKey(id=2, public_key=spk.key_pair.public.serialize(),
                                                        signature=spk.signature))
    assert (await c.request(pb.Stanza(pre_key_upload=up))).WhichOneof("body") == "ack"
    assert gk.accounts[c.login].signed_pre_key_id == 2
    # the old id cannot come back (E2E-021)
    up.signed_pre_key.id = 1
    assert (await c.request(pb.Stanza(pre_key_upload=up))).error.code == pb.ERROR_CODE_MALFORMED


@pytest.fixture
def settings():
    return Settings(low_pre_keys_threshold=3)


async def test_one_time_keys_once_each_and_low_notification(gk, make_client):
    c = await make_client(pre_keys=4)
    fetcher = await make_client("bob@provider.test")
    seen = []
    for _ in range(4):
        kb = (await fetcher.fetch_bundle(c.login)).key_bundle
        assert kb.HasField("one_time_pre_key")
        seen.append(kb.one_time_pre_key.id)
        xeddsa.verify(PublicKey.from_bytes(kb.identity_key), kb.signed_pre_key.public_key,
                      kb.signed_pre_key.signature)
    assert sorted(seen) == [1, 2, 3, 4]
    kb = (await fetcher.fetch_bundle(c.login)).key_bundle
    assert not kb.HasField("one_time_pre_key")  # exhausted: X3DH without a one-time key
    note = await c.next_inbound("notification")
    assert note.notification.low_pre_keys.count == 2  # sent once, when it went below 3
    await c.upload_pre_keys(10)
    assert len(gk.accounts[c.login].one_time) == 10
    assert not gk.accounts[c.login].low_notified


async def test_g_user_bundles(gk, make_client):
    c = await make_client()
    bob = await gk.create_user("bob")
    ids = set()
    for _ in range(3):
        kb = (await c.fetch_bundle(bob.id)).key_bundle
        assert kb.user == bob.id and kb.registration_id == bob.party.store.registration_id
        xeddsa.verify(PublicKey.from_bytes(kb.identity_key), kb.signed_pre_key.public_key,
                      kb.signed_pre_key.signature)
        ids.add(kb.one_time_pre_key.id)
    assert len(ids) == 3
    bob.one_time_pre_keys = 0
    assert not (await c.fetch_bundle(bob.id)).key_bundle.HasField("one_time_pre_key")
    bob.tamper_next_bundle = True
    kb = (await c.fetch_bundle(bob.id)).key_bundle
    with pytest.raises(InvalidSignatureError):
        xeddsa.verify(PublicKey.from_bytes(kb.identity_key), kb.signed_pre_key.public_key,
                      kb.signed_pre_key.signature)


async def test_scripted_low_pre_keys(gk, make_client):
    c = await make_client(pre_keys=20)
    gk.script.low_pre_keys(c.login)
    note = await c.next_inbound("notification")
    assert note.notification.low_pre_keys.count == 20
    await gk.log.wait_for(kind="acked", id=note.id, timeout=5)


async def test_unknown_user_bundle(make_client):
    c = await make_client()
    answer = await c.fetch_bundle("g:nobody")
    assert answer.error.code == pb.ERROR_CODE_UNKNOWN_USER
