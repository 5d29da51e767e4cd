"""The reference implementation against independent v3 implementations, both directions.

Each side decrypts the other's real output: npm ``libsignal`` 6.0.0 and python-axolotl 0.2.3
run as subprocesses (see ``peers_client``); our side is ``reference_impl.signal.Party``. A
failure names the message index, direction and the wire fields of the message concerned.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

import pytest

from reference_impl.signal import Party, PreKeyBundle
from reference_impl.signal.rng import DeterministicRng
from reference_impl.signal.wire import PreKeySignalMessage, SenderKeyMessage, SignalMessage

pytestmark = pytest.mark.interop


class Endpoint(Protocol):
    name: str

    def encrypt(self, to: str, plaintext: bytes) -> tuple[str, bytes]: ...
    def decrypt(self, frm: str, kind: str, body: bytes) -> bytes: ...


@dataclass
class Ours:
    party: Party

    @property
    def name(self) -> str:
        return self.party.name

    def bundle(self, with_one_time: bool) -> dict:
        return self.party.bundle(with_one_time=with_one_time).to_dict()

    def process_bundle(self, peer: str, bundle: dict) -> None:
        self.party.process_bundle(peer, PreKeyBundle.from_dict(bundle))

    def encrypt(self, to: str, plaintext: bytes) -> tuple[str, bytes]:
        m = self.party.encrypt(to, plaintext)
        return m.type, m.body

    def decrypt(self, frm: str, kind: str, body: bytes) -> bytes:
        return self.party.decrypt(frm, kind, body)


@dataclass
class Theirs:
    peer: object
    name: str
    next_pre_key: int = 11

    def bundle(self, with_one_time: bool) -> dict:
        pk = None
        if with_one_time:
            pk, self.next_pre_key = self.next_pre_key, self.next_pre_key + 1
        return self.peer.bundle(signed_pre_key_id=3, pre_key_id=pk)

    def process_bundle(self, peer: str, bundle: dict) -> None:
        self.peer.process_bundle(peer, bundle)

    def encrypt(self, to: str, plaintext: bytes) -> tuple[str, bytes]:
        return self.peer.encrypt(to, plaintext)

    def decrypt(self, frm: str, kind: str, body: bytes) -> bytes:
        return self.peer.decrypt(frm, kind, body)


def describe(kind: str, body: bytes) -> str:
    """The wire fields of a message, for failure messages (never raises)."""
    try:
        if kind == "pkmsg":
            p = PreKeySignalMessage.parse(body)
            m = p.message
            head = (f"PreKeySignalMessage(registration_id={p.registration_id}, "
                    f"pre_key_id={p.pre_key_id}, signed_pre_key_id={p.signed_pre_key_id}) ")
        else:
            m, head = SignalMessage.parse(body), ""
        return (f"{head}version=0x{body[0]:02x} ratchet_key={m.ratchet_key.serialize().hex()[:16]}… "
                f"counter={m.counter} previous_counter={m.previous_counter} "
                f"ciphertext={len(m.ciphertext)}B mac={m.mac.hex()}")
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        return f"<unparseable by us: {exc}> {body[:16].hex()}…"


def deliver(sender: Endpoint, receiver: Endpoint, index: int, kind: str, body: bytes,
            expected: bytes) -> None:
    try:
        got = receiver.decrypt(sender.name, kind, body)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        pytest.fail(f"message {index} {sender.name}->{receiver.name} not decrypted: "
                    f"{type(exc).__name__}: {exc}\n  {describe(kind, body)}", pytrace=False)
    assert got == expected, (f"message {index} {sender.name}->{receiver.name}: plaintext differs\n"
                             f"  {describe(kind, body)}")


def converse(a, b, *, per_direction: int, seed: int) -> dict[str, int]:
    """``a`` has a session with ``b``. Sender alternates in bursts of 2–5 (a DH ratchet turn
    each time the sender changes); each burst is delivered shuffled, and one message in five
    bursts is dropped and never delivered. Returns counts per direction."""
    rnd = random.Random(seed)
    sent = {a.name: 0, b.name: 0}
    dropped = 0
    index = 0
    turn = 0
    while min(sent.values()) < per_direction:
        sender, receiver = (a, b) if turn % 2 == 0 else (b, a)
        burst = []
        for _ in range(rnd.randint(2, 5)):
            pt = f"{sender.name}#{index}:".encode() + bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 300)))
            kind, body = sender.encrypt(receiver.name, pt)
            burst.append((index, kind, body, pt))
            sent[sender.name] += 1
            index += 1
        if turn % 5 == 4 and len(burst) > 2:
            burst.pop(rnd.randrange(1, len(burst)))  # dropped in transit
            dropped += 1
        rnd.shuffle(burst)
        for i, kind, body, pt in burst:
            deliver(sender, receiver, i, kind, body, pt)
        turn += 1
    return {"dropped": dropped, "turns": turn, **sent}


def _ours(name: str, seed: str) -> Ours:
    return Ours(Party(name, rng=DeterministicRng(seed)))


@pytest.fixture(params=["node", "axolotl"])
def theirs(request, node_peer_factory, axolotl_peer_factory):
    factory = node_peer_factory if request.param == "node" else axolotl_peer_factory
    return lambda name, reg=None: Theirs(factory(name, reg), name)


@pytest.mark.parametrize("one_time", [True, False], ids=["with-opk", "without-opk"])
@pytest.mark.parametrize("ours_initiates", [True, False], ids=["ours-initiates", "theirs-initiates"])
def test_session_setup_first_message_and_reply(theirs, request, one_time, ours_initiates):
    peer_kind = request.node.callspec.params["theirs"]
    ours, peer = _ours("alice", "alice-setup"), theirs("bob", 16383)
    if ours_initiates and not one_time and peer_kind == "axolotl":
        # python-axolotl as responder reads an absent pre_key_id as 0 and fails to load pre-key
        # 0 (research §12 item 2). Our message is right; assert the peer's documented failure so
        # a change in either side shows up here.
        from peers_client import PeerError

        ours.process_bundle("bob", peer.bundle(False))
        kind, body = ours.encrypt("bob", b"first")
        assert PreKeySignalMessage.parse(body).pre_key_id is None
        with pytest.raises(PeerError) as ei:
            peer.decrypt("alice", kind, body)
        assert ei.value.error_class == "InvalidKeyId"
        return
    init, resp = (ours, peer) if ours_initiates else (peer, ours)
    init.process_bundle(resp.name, resp.bundle(one_time))
    kind, body = init.encrypt(resp.name, b"first")
    assert kind == "pkmsg" and body[0] == 0x33
    deliver(init, resp, 0, kind, body, b"first")
    kind2, body2 = init.encrypt(resp.name, b"second, before any reply")
    assert kind2 == "pkmsg"
    deliver(init, resp, 1, kind2, body2, b"second, before any reply")
    kind3, body3 = resp.encrypt(init.name, b"reply")
    assert kind3 == "msg" and body3[0] == 0x33
    deliver(resp, init, 2, kind3, body3, b"reply")
    kind4, body4 = init.encrypt(resp.name, b"after reply")
    assert kind4 == "msg"
    deliver(init, resp, 3, kind4, body4, b"after reply")


@pytest.mark.parametrize("ours_initiates", [True, False], ids=["ours-initiates", "theirs-initiates"])
def test_long_conversation_out_of_order_dropped_and_ratchet_turns(theirs, ours_initiates):
    ours, peer = _ours("alice", "alice-long"), theirs("bob")
    init, resp = (ours, peer) if ours_initiates else (peer, ours)
    init.process_bundle(resp.name, resp.bundle(True))
    kind, body = init.encrypt(resp.name, b"hello")
    deliver(init, resp, -1, kind, body, b"hello")
    stats = converse(resp, init, per_direction=55, seed=1 if ours_initiates else 2)
    assert stats["alice"] >= 50 and stats["bob"] >= 50
    assert stats["dropped"] >= 2 and stats["turns"] >= 20


def test_replay_of_their_message_is_rejected_by_us(theirs):
    ours, peer = _ours("alice", "alice-replay"), theirs("bob")
    peer.process_bundle("alice", ours.bundle(True))
    kind, body = peer.encrypt("alice", b"once")
    assert ours.decrypt("bob", kind, body) == b"once"
    from reference_impl.signal.errors import DuplicateMessageError
    r_kind, r_body = ours.encrypt("bob", b"ack")
    deliver(ours, peer, 1, r_kind, r_body, b"ack")
    kind, body = peer.encrypt("alice", b"twice")
    assert ours.decrypt("bob", kind, body) == b"twice"
    with pytest.raises(DuplicateMessageError):
        ours.decrypt("bob", kind, body)


def test_they_reject_our_replayed_and_tampered_messages(theirs):
    from peers_client import PeerError

    ours, peer = _ours("alice", "alice-tamper"), theirs("bob")
    ours.process_bundle("bob", peer.bundle(True))
    kind, body = ours.encrypt("bob", b"one")
    deliver(ours, peer, 0, kind, body, b"one")
    r_kind, r_body = peer.encrypt("alice", b"r")
    deliver(peer, ours, 1, r_kind, r_body, b"r")
    kind, body = ours.encrypt("bob", b"two")
    bad = bytearray(body)
    bad[-3] ^= 0x10  # inside the MAC
    with pytest.raises(PeerError) as ei:
        peer.decrypt("alice", kind, bytes(bad))
    assert ei.value.error_class in {"InvalidMac", "InvalidMessage"}
    deliver(ours, peer, 2, kind, body, b"two")
    with pytest.raises(PeerError) as ei:
        peer.decrypt("alice", kind, body)
    assert ei.value.error_class == "DuplicateMessage"


@pytest.mark.parametrize("ours_sends", [True, False], ids=["ours-to-axolotl", "axolotl-to-ours"])
def test_group_messages_with_axolotl_sender_keys(axolotl_peer_factory, ours_sends):
    peer = axolotl_peer_factory("bob")
    ours = Party("alice", rng=DeterministicRng("alice-group"))
    rnd = random.Random(5)
    if ours_sends:
        peer.group_process("g1", "alice", ours.group_distribution("g1"))
        msgs = [(i, ours.group_encrypt("g1", f"g{i}".encode())) for i in range(40)]
        del msgs[17]  # dropped
        rnd.shuffle(msgs)
        for i, body in msgs:
            assert body[0] == 0x33
            assert peer.group_decrypt("g1", "alice", body) == f"g{i}".encode(), f"group message {i}"
    else:
        ours.process_group_distribution("g1", "bob", peer.group_create("g1"))
        msgs = [(i, peer.group_encrypt("g1", f"g{i}".encode())) for i in range(40)]
        del msgs[17]
        rnd.shuffle(msgs)
        for i, body in msgs:
            m = SenderKeyMessage.parse(body)
            got = ours.group_decrypt("g1", "bob", body)
            assert got == f"g{i}".encode(), f"group message {i}: iteration={m.iteration} id={m.key_id}"
