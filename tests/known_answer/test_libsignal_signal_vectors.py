"""libsignal's own fixed vectors, through our XEdDSA, X3DH and ratchet modules.

Data: ``data/libsignal_fixed.json`` (sources and licence notes inside).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference_impl.signal import xeddsa
from reference_impl.signal.errors import InvalidSignatureError
from reference_impl.signal.keys import KeyPair, PrivateKey, PublicKey
from reference_impl.signal.ratchet import SessionState, derive_message_keys, next_chain_key
from reference_impl.signal.x3dh import bob_agree

V = json.loads((Path(__file__).parent / "data" / "libsignal_fixed.json").read_text())


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def test_xeddsa_verifies_libsignal_signature():
    v = V["xeddsa_verify"]
    xeddsa.verify(PublicKey(h(v["identity_public"])), h(v["message"]), h(v["signature"]))


@pytest.mark.parametrize("byte", range(64))
def test_xeddsa_rejects_every_single_byte_flip_of_libsignal_signature(byte):
    # libsignal's test_signature flips bit 0 of each byte and expects failure.
    v = V["xeddsa_verify"]
    sig = bytearray(h(v["signature"]))
    sig[byte] ^= 0x01
    with pytest.raises(InvalidSignatureError):
        xeddsa.verify(PublicKey(h(v["identity_public"])), h(v["message"]), bytes(sig))


def test_xeddsa_our_signature_with_libsignal_key_verifies_and_keeps_sign_bit():
    v = V["xeddsa_verify"]
    priv = PrivateKey(h(v["identity_private"]))
    assert priv.public_key().u == h(v["identity_public"])
    sig = xeddsa.sign(priv, h(v["message"]), z=bytes(64))
    # libsignal's key has Edwards sign bit 1 (top bit of its signature's last byte).
    assert sig[63] & 0x80 == h(v["signature"])[63] & 0x80
    xeddsa.verify(priv.public_key(), h(v["message"]), sig)


def test_chain_key_derivation_through_ratchet():
    v = V["chain_key_derivation"]
    mk = derive_message_keys(h(v["chain_key"]), v["index"])
    assert mk.cipher_key == h(v["cipher_key"])
    assert mk.mac_key == h(v["mac_key"])
    assert next_chain_key(h(v["chain_key"])) == h(v["next_chain_key"])


def test_x3dh_as_bob_sender_chain_key():
    v = V["x3dh_as_bob"]
    identity = KeyPair.from_private(h(v["bob_identity_private"]))
    assert identity.public.serialize() == h(v["bob_identity_public"])
    spk = KeyPair.from_private(h(v["bob_signed_prekey_private"]))
    assert spk.public.serialize() == h(v["bob_signed_prekey_public"])
    root, chain = bob_agree(
        identity, spk, None,
        PublicKey.from_bytes(h(v["alice_identity_public"])),
        PublicKey.from_bytes(h(v["alice_base_public"])),
    )
    state = SessionState.initialize_bob(
        root_key=root, chain_key=chain, local_identity=identity.public,
        remote_identity=PublicKey.from_bytes(h(v["alice_identity_public"])), our_ratchet=spk,
    )
    assert state.sender_chain.key == h(v["expected_sender_chain_key"])
    assert state.sender_chain.index == 0
