"""Pairwise sessions on the reference implementation: setup, ratchet, limits, errors, state."""
from __future__ import annotations

import random

import pytest

from reference_impl.signal import Party
from reference_impl.signal.errors import (
    DuplicateMessageError,
    InvalidMacError,
    InvalidMessageError,
    InvalidPreKeyError,
    InvalidSignatureError,
    NoSessionError,
    TooManySkippedKeysError,
    UntrustedIdentityError,
)
from reference_impl.signal.ratchet import MAX_FORWARD_JUMPS, MAX_RECEIVER_CHAINS
from reference_impl.signal.rng import DeterministicRng
from reference_impl.signal.store import MAX_ARCHIVED_SESSIONS, ProtocolStore
from reference_impl.signal.x3dh import PreKeyBundle


def pair(one_time: bool = True) -> tuple[Party, Party]:
    a = Party("alice", rng=DeterministicRng("alice"))
    b = Party("bob", rng=DeterministicRng("bob"))
    a.process_bundle("bob", b.bundle(with_one_time=one_time))
    return a, b


@pytest.mark.parametrize("one_time", [True, False])
def test_first_message_is_prekey_then_plain_after_reply(one_time):
    a, b = pair(one_time)
    m1, m2 = a.encrypt("bob", b"1"), a.encrypt("bob", b"2")
    assert (m1.type, m2.type) == ("pkmsg", "pkmsg")
    assert b.decrypt("alice", m1.type, m1.body) == b"1"
    assert b.decrypt("alice", m2.type, m2.body) == b"2"  # same base key: same session
    r = b.encrypt("bob" if False else "alice", b"r")
    assert r.type == "msg"
    assert a.decrypt("bob", r.type, r.body) == b"r"
    m3 = a.encrypt("bob", b"3")
    assert m3.type == "msg"
    assert b.decrypt("alice", m3.type, m3.body) == b"3"


def test_one_time_pre_key_is_consumed_once():
    a, b = pair()
    m = a.encrypt("bob", b"x")
    used = set(b.store.pre_keys)
    b.decrypt("alice", m.type, m.body)
    assert set(b.store.pre_keys) < used
    # A second initiator naming the same (now used) one-time pre-key is refused.
    c = Party("carol", rng=DeterministicRng("carol"))
    bundle = PreKeyBundle(**{**b.bundle().__dict__} if False else {
        "registration_id": b.store.registration_id, "identity_key": b.identity_key,
        "signed_pre_key_id": 1, "signed_pre_key": b.store.signed_pre_keys[1].key_pair.public,
        "signed_pre_key_signature": b.store.signed_pre_keys[1].signature,
        "pre_key_id": min(used), "pre_key": a.store.identity.public,
    })
    c.process_bundle("bob", bundle)
    mc = c.encrypt("bob", b"y")
    with pytest.raises(InvalidPreKeyError):
        b.decrypt("carol", mc.type, mc.body)


def test_conversation_with_out_of_order_dropped_and_ratchet_turns():
    a, b = pair()
    rnd = random.Random(7)
    first = a.encrypt("bob", b"hello")
    b.decrypt("alice", first.type, first.body)
    for turn in range(10):
        sender, receiver, s_name, r_name = (a, b, "alice", "bob") if turn % 2 else (b, a, "bob", "alice")
        batch = [(i, sender.encrypt(r_name, f"{turn}:{i}".encode())) for i in range(6)]
        dropped = batch.pop(rnd.randrange(len(batch)))  # never delivered
        rnd.shuffle(batch)
        for i, m in batch:
            assert receiver.decrypt(s_name, m.type, m.body) == f"{turn}:{i}".encode()
        del dropped


def test_replay_is_rejected_and_session_still_works():
    a, b = pair()
    m = a.encrypt("bob", b"x")
    b.decrypt("alice", m.type, m.body)
    r = b.encrypt("alice", b"y")
    a.decrypt("bob", r.type, r.body)
    with pytest.raises(DuplicateMessageError):
        a.decrypt("bob", r.type, r.body)
    m2 = a.encrypt("bob", b"z")
    assert b.decrypt("alice", m2.type, m2.body) == b"z"


def test_forged_message_leaves_session_untouched():
    a, b = pair()
    m = a.encrypt("bob", b"x")
    b.decrypt("alice", m.type, m.body)
    r = b.encrypt("alice", b"r")
    a.decrypt("bob", r.type, r.body)
    before = b.store.to_json()
    good = a.encrypt("bob", b"ok")
    assert good.type == "msg"
    bad = bytearray(good.body)
    bad[-1] ^= 1
    with pytest.raises(InvalidMacError):
        b.decrypt("alice", good.type, bytes(bad))
    assert b.store.to_json() == before
    assert b.decrypt("alice", good.type, good.body) == b"ok"


def test_forward_jump_limit():
    a, b = pair()
    m = a.encrypt("bob", b"x")
    b.decrypt("alice", m.type, m.body)
    chain = a.store.sessions["bob"].current.sender_chain
    chain.index += MAX_FORWARD_JUMPS + 1  # pretend we sent that many
    far = a.encrypt("bob", b"far")
    with pytest.raises(TooManySkippedKeysError):
        b.decrypt("alice", far.type, far.body)


def test_receiver_chains_are_capped():
    a, b = pair()
    m = a.encrypt("bob", b"0")
    b.decrypt("alice", m.type, m.body)
    for i in range(MAX_RECEIVER_CHAINS + 3):
        r = b.encrypt("alice", b"r")
        a.decrypt("bob", r.type, r.body)
        m = a.encrypt("bob", b"a")
        b.decrypt("alice", m.type, m.body)
    assert len(b.store.sessions["alice"].current.receiver_chains) == MAX_RECEIVER_CHAINS


def test_new_prekey_message_from_known_peer_archives_old_session_and_both_work():
    a, b = pair()
    m = a.encrypt("bob", b"old")
    b.decrypt("alice", m.type, m.body)
    late_old = a.encrypt("bob", b"late-old")
    a.process_bundle("bob", b.bundle())  # alice restarts the session
    m_new = a.encrypt("bob", b"new")
    assert b.decrypt("alice", m_new.type, m_new.body) == b"new"
    assert len(b.store.sessions["alice"].previous) == 1
    assert b.decrypt("alice", late_old.type, late_old.body) == b"late-old"


def test_archived_sessions_are_capped():
    rec_party = Party("bob")
    for i in range(MAX_ARCHIVED_SESSIONS + 5):
        a = Party("alice", store=None)
        if i:
            rec_party.store.identities.pop("alice", None)
        a.process_bundle("bob", rec_party.bundle())
        m = a.encrypt("bob", b"x")
        rec_party.decrypt("alice", m.type, m.body)
    assert len(rec_party.store.sessions["alice"].previous) == MAX_ARCHIVED_SESSIONS


def test_identity_change_is_reported_not_accepted():
    a, b = pair()
    m = a.encrypt("bob", b"x")
    b.decrypt("alice", m.type, m.body)
    impostor = Party("alice")
    impostor.process_bundle("bob", b.bundle())
    im = impostor.encrypt("bob", b"evil")
    with pytest.raises(UntrustedIdentityError) as ei:
        b.decrypt("alice", im.type, im.body)
    assert ei.value.identity_key == impostor.identity_key.serialize()
    # The caller decides to trust the new key; then the message decrypts.
    assert b.store.trust_identity("alice", impostor.identity_key) is True
    assert b.decrypt("alice", im.type, im.body) == b"evil"


def test_bundle_with_bad_signature_is_rejected_before_any_state():
    b = Party("bob")
    bundle = b.bundle()
    sig = bytearray(bundle.signed_pre_key_signature)
    sig[0] ^= 1
    forged = PreKeyBundle(bundle.registration_id, bundle.identity_key, bundle.signed_pre_key_id,
                          bundle.signed_pre_key, bytes(sig), bundle.pre_key_id, bundle.pre_key)
    a = Party("alice")
    with pytest.raises(InvalidSignatureError):
        a.process_bundle("bob", forged)
    assert "bob" not in a.store.sessions


def test_signal_message_without_session():
    a, b = pair()
    m = a.encrypt("bob", b"x")
    b.decrypt("alice", m.type, m.body)
    r = b.encrypt("alice", b"y")
    with pytest.raises(NoSessionError):
        Party("stranger").decrypt("bob", r.type, r.body)
    with pytest.raises(InvalidMessageError):
        a.decrypt("bob", "weird", r.body)


def test_state_survives_serialisation_mid_conversation():
    a, b = pair()
    m = a.encrypt("bob", b"1")
    b.decrypt("alice", m.type, m.body)
    pending = [a.encrypt("bob", f"p{i}".encode()) for i in range(3)]
    b2 = Party("bob", ProtocolStore.from_json(b.store.to_json()))
    for i, p in reversed(list(enumerate(pending))):
        assert b2.decrypt("alice", p.type, p.body) == f"p{i}".encode()
    r = b2.encrypt("alice", b"back")
    assert a.decrypt("bob", r.type, r.body) == b"back"
