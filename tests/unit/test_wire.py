"""Wire codecs: byte layout, malformed input, and single-bit tampering (hypothesis)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_impl.signal import Party, sender_keys, session
from reference_impl.signal.errors import InvalidMessageError, InvalidVersionError, SignalError
from reference_impl.signal.keys import KeyPair
from reference_impl.signal.rng import DeterministicRng
from reference_impl.signal.store import ProtocolStore
from reference_impl.signal.wire import (
    PreKeySignalMessage,
    SenderKeyDistributionMessage,
    SenderKeyMessage,
    SignalMessage,
)

KEY = KeyPair.generate(DeterministicRng("wire")).public


def test_signal_message_layout_writes_zero_counters_in_tag_order():
    body = SignalMessage.encode_body(KEY, 0, 0, b"\x00" * 16)
    assert body[0] == 0x33
    assert body[1:4] == b"\x0a\x21\x05"  # field 1, 33 bytes, 0x05 type byte
    rest = body[4 + 32:]
    assert rest[:4] == b"\x10\x00\x18\x00"  # counter=0 and previous_counter=0 are written
    assert rest[4:6] == b"\x22\x10"


def test_prekey_message_fields_in_ascending_tag_order():
    m = SignalMessage(KEY, 1, 0, b"c" * 16, SignalMessage.encode_body(KEY, 1, 0, b"c" * 16), b"m" * 8)
    pkm = PreKeySignalMessage.build(registration_id=7, pre_key_id=5, signed_pre_key_id=9,
                                    base_key=KEY, identity_key=KEY, message=m)
    tags = []
    data = pkm.serialize()[1:]
    i = 0
    while i < len(data):
        tag = data[i]
        tags.append(tag >> 3)
        i += 1
        if tag & 7 == 0:
            while data[i] & 0x80:
                i += 1
            i += 1
        else:
            ln = data[i]
            i += 1 + ln
    assert tags == [1, 2, 3, 4, 5, 6]
    assert PreKeySignalMessage.parse(pkm.serialize()) == pkm


def test_prekey_message_without_one_time_key_omits_field_1():
    m = SignalMessage(KEY, 0, 0, b"c" * 16, SignalMessage.encode_body(KEY, 0, 0, b"c" * 16), b"m" * 8)
    pkm = PreKeySignalMessage.build(registration_id=0, pre_key_id=None, signed_pre_key_id=1,
                                    base_key=KEY, identity_key=KEY, message=m)
    assert pkm.serialize()[1] == 0x12
    assert PreKeySignalMessage.parse(pkm.serialize()).pre_key_id is None


@pytest.mark.parametrize("version", [0x23, 0x34, 0x43, 0x44, 0x32, 0x00, 0xFF])
@pytest.mark.parametrize("cls", [SignalMessage, PreKeySignalMessage, SenderKeyMessage,
                                 SenderKeyDistributionMessage])
def test_other_version_bytes_are_rejected(cls, version):
    with pytest.raises(InvalidVersionError):
        cls.parse(bytes([version]) + b"\x00" * 80)


@pytest.mark.parametrize("cls", [SignalMessage, PreKeySignalMessage, SenderKeyMessage,
                                 SenderKeyDistributionMessage])
@given(data=st.binary(max_size=300))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_arbitrary_bytes_raise_only_typed_errors(cls, data):
    try:
        cls.parse(data)
    except InvalidMessageError:
        pass


def test_missing_required_fields():
    from reference_impl.signal.proto import whisper_pb2 as pb
    body = b"\x33" + pb.SignalMessage(ratchet_key=KEY.serialize(), counter=0).SerializeToString()
    with pytest.raises(InvalidMessageError, match="ciphertext"):
        SignalMessage.parse(body + b"\x00" * 8)


def test_unknown_fields_and_trailing_garbage_are_rejected():
    skdm = SenderKeyDistributionMessage(1, 0, b"k" * 32, KEY).serialize()
    with pytest.raises(InvalidMessageError):
        SenderKeyDistributionMessage.parse(skdm + b"\x38\x01")  # field 7
    with pytest.raises(InvalidMessageError):
        SenderKeyDistributionMessage.parse(skdm + b"\xff")


# --- single-bit tampering, end to end -------------------------------------------------

def _established():
    a = Party("alice", rng=DeterministicRng("a"))
    b = Party("bob", rng=DeterministicRng("b"))
    a.process_bundle("bob", b.bundle())
    return a, b


A0, B0 = _established()
PKMSG = A0.encrypt("bob", b"first message")
B_FRESH = B0.store.to_json()
B0.decrypt("alice", PKMSG.type, PKMSG.body)
_R = B0.encrypt("alice", b"reply")
A0.decrypt("bob", _R.type, _R.body)
MSG = A0.encrypt("bob", b"a normal message")
B_ESTABLISHED = B0.store.to_json()
A_REG = A0.store.registration_id

G_SENDER = Party("gs", rng=DeterministicRng("gs"))
G_SKDM = G_SENDER.group_distribution("g")
G_MSG = G_SENDER.group_encrypt("g", b"group message")
G_RECEIVER = ProtocolStore.generate(rng=DeterministicRng("gr"))
sender_keys.process_distribution(G_RECEIVER, "g", "gs", G_SKDM)
G_RECEIVER_JSON = G_RECEIVER.to_json()


def _flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_bit_flip_in_signal_message_is_rejected(data):
    bit = data.draw(st.integers(0, len(MSG.body) * 8 - 1))
    store = ProtocolStore.from_json(B_ESTABLISHED)
    with pytest.raises(SignalError):
        session.decrypt(store, "alice", "msg", _flip(MSG.body, bit))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_bit_flip_in_prekey_message_is_rejected(data):
    bit = data.draw(st.integers(0, len(PKMSG.body) * 8 - 1))
    store = ProtocolStore.from_json(B_FRESH)
    with pytest.raises(SignalError):
        session.decrypt_prekey_message(store, "alice", _flip(PKMSG.body, bit),
                                       expected_registration_id=A_REG)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_bit_flip_in_sender_key_message_is_rejected(data):
    bit = data.draw(st.integers(0, len(G_MSG) * 8 - 1))
    store = ProtocolStore.from_json(G_RECEIVER_JSON)
    with pytest.raises(SignalError):
        sender_keys.group_decrypt(store, "g", "gs", _flip(G_MSG, bit))


def test_untampered_messages_decrypt():
    assert session.decrypt(ProtocolStore.from_json(B_ESTABLISHED), "alice", "msg", MSG.body) == b"a normal message"
    assert session.decrypt_prekey_message(ProtocolStore.from_json(B_FRESH), "alice", PKMSG.body,
                                          expected_registration_id=A_REG) == b"first message"
    assert sender_keys.group_decrypt(ProtocolStore.from_json(G_RECEIVER_JSON), "g", "gs", G_MSG) == b"group message"
