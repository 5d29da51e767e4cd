"""Smoke tests of the interop peers against EACH OTHER (npm libsignal 6.0.0 <-> python-axolotl 0.2.3).

Nothing here touches the project's own implementation: these tests prove that the two independent
peers, and the JSON-lines protocol around them, are sound enough to serve as oracles.
"""

from __future__ import annotations

import pytest

from peers_client import Peer, PeerError

pytestmark = pytest.mark.interop

KINDS = ("node", "axolotl")
DIRECTIONS = [
    pytest.param("node", "axolotl", id="node-to-axolotl"),
    pytest.param("axolotl", "node", id="axolotl-to-node"),
]
# Never 0: npm libsignal drops a pre-key id of 0 from the PreKey message but still uses the key.
SIGNED_PRE_KEY_ID = 7
ONE_TIME_PRE_KEY_ID = 31337


@pytest.fixture
def make_peer(request: pytest.FixtureRequest):
    def make(kind: str, name: str, registration_id: int | None = None) -> Peer:
        factory = request.getfixturevalue(f"{kind}_peer_factory")
        return factory(name, registration_id)

    return make


# ------------------------------------------------------------------ wire helpers

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def whisper_fields(body: bytes) -> dict[int, int | bytes]:
    """Parse a v3 SignalMessage (0x33 || protobuf || 8-byte MAC) into {field number: value}."""
    assert body[0] == 0x33, f"version byte {body[0]:#04x}"
    proto, fields, pos = body[1:-8], {}, 0
    while pos < len(proto):
        key, pos = _varint(proto, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields[number], pos = _varint(proto, pos)
        elif wire_type == 2:
            length, pos = _varint(proto, pos)
            fields[number], pos = proto[pos:pos + length], pos + length
        else:  # pragma: no cover
            raise AssertionError(f"unexpected wire type {wire_type}")
    return fields


def ratchet_key(body: bytes) -> bytes:
    return whisper_fields(body)[1]


def establish(initiator: Peer, responder: Peer, *, pre_key_id: int | None = ONE_TIME_PRE_KEY_ID):
    """initiator (alice) fetches responder's (bob's) bundle, sends a pkmsg, gets a reply.

    Returns the first pkmsg body (for replay tests)."""
    bundle = responder.bundle(SIGNED_PRE_KEY_ID, pre_key_id)
    assert bundle["identity_key"] == responder.identity_key.hex()
    initiator.process_bundle(responder.name, bundle)
    kind, first = initiator.encrypt(responder.name, b"hello bob")
    assert kind == "pkmsg" and first[0] == 0x33
    assert responder.decrypt(initiator.name, kind, first) == b"hello bob"
    kind, reply = responder.encrypt(initiator.name, b"hello alice")
    assert kind == "msg" and reply[0] == 0x33
    assert initiator.decrypt(responder.name, kind, reply) == b"hello alice"
    # The reply acknowledges the session: the initiator no longer sends PreKey messages.
    kind, body = initiator.encrypt(responder.name, b"ack")
    assert kind == "msg"
    assert responder.decrypt(initiator.name, kind, body) == b"ack"
    return first


def expect_error(error_class: str, fn, *args) -> PeerError:
    with pytest.raises(PeerError) as info:
        fn(*args)
    assert info.value.error_class == error_class, info.value
    return info.value


# ------------------------------------------------------------------ protocol hygiene

@pytest.mark.parametrize("kind", KINDS)
def test_peer_protocol_basics(kind: str, make_peer) -> None:
    peer = make_peer(kind, "bob", 1234)
    ops = peer.ops()
    assert {"ops", "init", "identity", "bundle", "process_bundle", "encrypt", "decrypt",
            "quit"} <= set(ops)
    assert peer.impl == {"node": "npm-libsignal-6.0.0", "axolotl": "python-axolotl-0.2.3"}[kind]
    ident = peer.call("identity", check=True)
    assert bytes.fromhex(ident["identity_key"]) == peer.identity_key
    assert len(peer.identity_key) == 33 and peer.identity_key[0] == 0x05
    assert ident["registration_id"] == 1234

    bundle = peer.bundle(1, 2)
    assert set(bundle) >= {"registration_id", "identity_key", "signed_pre_key_id", "signed_pre_key",
                           "signed_pre_key_signature", "pre_key_id", "pre_key"}
    assert len(bytes.fromhex(bundle["signed_pre_key_signature"])) == 64
    assert peer.bundle(3, None)["pre_key"] is None

    # Bad requests are answered, never fatal.
    assert peer.call("no-such-op")["error"] == "Unsupported"
    assert peer.call("encrypt", peer="alice", plaintext="zz")["error"] == "BadRequest"
    assert peer.call("decrypt", peer="alice", type="msg", body="")["ok"] is False
    assert peer.call("decrypt", peer="alice", type="msg", body="33" + "00" * 60)["ok"] is False
    assert peer.call("encrypt", peer="nobody", plaintext="00")["error"] == "NoSession"
    assert peer.proc.stdin is not None
    peer.proc.stdin.write("this is not json\n{\"op\": 1}\n[]\n")
    peer.proc.stdin.flush()
    for _ in range(3):
        assert peer._responses.get(timeout=10) is not None
    assert peer.call("identity", check=True)["ok"] is True
    if kind == "node":
        assert peer.call("group_create", group="g", sender="bob")["error"] == "Unsupported"


# ------------------------------------------------------------------ 1:1 sessions

@pytest.mark.parametrize(("initiator_kind", "responder_kind"), DIRECTIONS)
def test_session_from_bundle_with_one_time_pre_key(initiator_kind, responder_kind, make_peer):
    alice = make_peer(initiator_kind, "alice", 1)
    bob = make_peer(responder_kind, "bob", 16383)
    first = establish(alice, bob)
    # A replayed PreKey message must not decrypt again (its message key is used up).
    expect_error("DuplicateMessage", bob.decrypt, "alice", "pkmsg", first)


@pytest.mark.parametrize(("initiator_kind", "responder_kind"), DIRECTIONS)
def test_twenty_messages_each_way_with_ratchet_turns(initiator_kind, responder_kind, make_peer):
    alice = make_peer(initiator_kind, "alice")
    bob = make_peer(responder_kind, "bob")
    establish(alice, bob)
    sent = {"alice": 0, "bob": 0}
    parties = {"alice": (alice, bob), "bob": (bob, alice)}
    batches = [3, 2, 4, 1, 3, 5, 2, 2, 1, 4, 3, 3, 2, 2, 5]  # alternating senders, first alice
    keys_seen: dict[str, list[bytes]] = {"alice": [], "bob": []}
    turn = 0
    while sent["alice"] < 20 or sent["bob"] < 20:
        who = "alice" if turn % 2 == 0 else "bob"
        sender, receiver = parties[who]
        count = min(batches[turn % len(batches)], 20 - sent[who])
        turn += 1
        batch_keys = set()
        for _ in range(count):
            text = f"{who} #{sent[who]}".encode() * (1 + sent[who] % 7)
            kind, body = sender.encrypt(receiver.name, text)
            assert kind == "msg"
            fields = whisper_fields(body)
            batch_keys.add(fields[1])
            assert receiver.decrypt(sender.name, kind, body) == text
            sent[who] += 1
        if count:
            assert len(batch_keys) == 1  # one sending chain per batch ...
            keys_seen[who].append(batch_keys.pop())
    # ... and a fresh ratchet key after every reply received (a DH ratchet turn each batch).
    for who, keys in keys_seen.items():
        assert len(keys) == len(set(keys)) >= 5, who
    assert sent == {"alice": 20, "bob": 20}


@pytest.mark.parametrize(("initiator_kind", "responder_kind"), DIRECTIONS)
def test_out_of_order_delivery_and_replay(initiator_kind, responder_kind, make_peer):
    alice = make_peer(initiator_kind, "alice")
    bob = make_peer(responder_kind, "bob")
    establish(alice, bob)

    # Within one chain: deliver six messages shuffled.
    msgs = [alice.encrypt("bob", f"m{i}".encode()) for i in range(6)]
    counters = [whisper_fields(body)[2] for _, body in msgs]
    assert counters == sorted(counters) and len(set(counters)) == 6
    for i in (2, 0, 5, 1, 4, 3):
        assert bob.decrypt("alice", *msgs[i]) == f"m{i}".encode()
    # A replay, both of a skipped-then-delivered and of an in-order message, is rejected.
    expect_error("DuplicateMessage", bob.decrypt, "alice", *msgs[0])
    expect_error("DuplicateMessage", bob.decrypt, "alice", *msgs[5])

    # Across a DH ratchet turn: m6 is held back while the ratchet moves on.
    late = alice.encrypt("bob", b"late from the old chain")
    on_time = alice.encrypt("bob", b"on time")
    assert bob.decrypt("alice", *on_time) == b"on time"
    kind, reply = bob.encrypt("alice", b"reply turns the ratchet")
    assert alice.decrypt("bob", kind, reply) == b"reply turns the ratchet"
    new_chain = alice.encrypt("bob", b"on the new chain")
    assert ratchet_key(new_chain[1]) != ratchet_key(late[1])
    # previous_counter names the last counter used on the old sending chain.
    assert whisper_fields(new_chain[1])[3] == whisper_fields(on_time[1])[2]
    assert bob.decrypt("alice", *new_chain) == b"on the new chain"
    assert bob.decrypt("alice", *late) == b"late from the old chain"
    expect_error("DuplicateMessage", bob.decrypt, "alice", *late)

    # A forged MAC is rejected and does not damage the session (stores keep records serialised).
    kind, body = alice.encrypt("bob", b"genuine")
    forged = body[:-1] + bytes([body[-1] ^ 0x01])
    expect_error("InvalidMac", bob.decrypt, "alice", kind, forged)
    assert bob.decrypt("alice", kind, body) == b"genuine"
    kind, body = bob.encrypt("alice", b"still fine")
    assert alice.decrypt("bob", kind, body) == b"still fine"


@pytest.mark.parametrize(("initiator_kind", "responder_kind"), DIRECTIONS)
def test_forged_prekey_message_changes_nothing(initiator_kind, responder_kind, make_peer):
    alice = make_peer(initiator_kind, "alice")
    bob = make_peer(responder_kind, "bob")
    mallory_key = make_peer(initiator_kind, "mallory").identity_key
    alice.process_bundle("bob", bob.bundle(SIGNED_PRE_KEY_ID, ONE_TIME_PRE_KEY_ID))
    kind, body = alice.encrypt("bob", b"genuine first message")
    forged = body.replace(alice.identity_key, mallory_key)
    assert forged != body and len(forged) == len(body)
    expect_error("InvalidMac", bob.decrypt, "alice", kind, forged)
    # Neither the one-time pre-key nor the (unpinned) identity of alice was affected.
    assert bob.decrypt("alice", kind, body) == b"genuine first message"
    kind, reply = bob.encrypt("alice", b"reply")
    assert alice.decrypt("bob", kind, reply) == b"reply"


@pytest.mark.parametrize(("initiator_kind", "responder_kind"), DIRECTIONS)
def test_changed_identity_is_untrusted(initiator_kind, responder_kind, make_peer):
    alice = make_peer(initiator_kind, "alice")
    bob = make_peer(responder_kind, "bob")
    establish(alice, bob)
    impostor = make_peer(responder_kind, "bob")  # same name, fresh identity key
    bundle = impostor.bundle(SIGNED_PRE_KEY_ID, ONE_TIME_PRE_KEY_ID)
    expect_error("UntrustedIdentity", alice.process_bundle, "bob", bundle)


def test_quirk_axolotl_responder_needs_a_one_time_pre_key(make_peer):
    """python-axolotl reads an absent pre_key_id as 0 and fails to load pre-key 0."""
    alice = make_peer("node", "alice")
    bob = make_peer("axolotl", "bob")
    alice.process_bundle("bob", bob.bundle(SIGNED_PRE_KEY_ID, None))
    kind, body = alice.encrypt("bob", b"no one-time pre-key")
    assert kind == "pkmsg"
    expect_error("InvalidKeyId", bob.decrypt, "alice", kind, body)


def test_node_responder_accepts_a_bundle_without_one_time_pre_key(make_peer):
    alice = make_peer("axolotl", "alice")
    bob = make_peer("node", "bob")
    establish(alice, bob, pre_key_id=None)


# ------------------------------------------------------------------ groups (legacy sender keys)

def test_axolotl_group_messages_via_sender_keys(make_peer):
    alice = make_peer("axolotl", "alice")
    bob = make_peer("axolotl", "bob")
    carol = make_peer("axolotl", "carol")

    skdm = alice.group_create("g1")
    assert skdm[0] == 0x33
    for member in (bob, carol):
        member.group_process("g1", "alice", skdm)

    bodies = [alice.group_encrypt("g1", f"to the group {i}".encode()) for i in range(8)]
    for i, body in enumerate(bodies):
        assert bob.group_decrypt("g1", "alice", body) == f"to the group {i}".encode()
    for i in (3, 0, 7, 1, 6, 2, 5, 4):  # out of order
        assert carol.group_decrypt("g1", "alice", bodies[i]) == f"to the group {i}".encode()
    expect_error("DuplicateMessage", bob.group_decrypt, "g1", "alice", bodies[2])
    expect_error("DuplicateMessage", carol.group_decrypt, "g1", "alice", bodies[7])

    # A second sender in the same group, with its own chain.
    bob_skdm = bob.group_create("g1")
    alice.group_process("g1", "bob", bob_skdm)
    carol.group_process("g1", "bob", bob_skdm)
    body = bob.group_encrypt("g1", b"from bob")
    assert alice.group_decrypt("g1", "bob", body) == b"from bob"
    assert carol.group_decrypt("g1", "bob", body) == b"from bob"

    # A tampered signature is rejected; a stranger without the SKDM cannot decrypt.
    body = alice.group_encrypt("g1", b"signed")
    tampered = body[:-1] + bytes([body[-1] ^ 0x80])
    expect_error("InvalidSignature", bob.group_decrypt, "g1", "alice", tampered)
    assert bob.group_decrypt("g1", "alice", body) == b"signed"
    dave = make_peer("axolotl", "dave")
    expect_error("NoSession", dave.group_decrypt, "g1", "alice", body)
