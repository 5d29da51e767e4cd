"""libsignal's fixed vectors through the primitives: X25519, chain keys, AES-CBC.

Data: data/libsignal_fixed.json (sources, commits and licence note inside; libsignal is
AGPL-3.0 and the values are short test constants used as data). The chain-key test
computes the derivation with the crypto helpers directly (research §3.4); the ratchet
module is tested against the same JSON in test_libsignal_signal_vectors.py, as are
XEdDSA and X3DH. The data-integrity tests here make sure the JSON itself is coherent.
"""
from __future__ import annotations

import pytest

from reference_impl.signal.crypto import aes_cbc_decrypt, aes_cbc_encrypt, hkdf_sha256, hmac_sha256
from reference_impl.signal.errors import InvalidMessageError
from reference_impl.signal.keys import PrivateKey, PublicKey

from ._data import DATA_DIR, load_json

V = load_json(DATA_DIR / "libsignal_fixed.json")
h = bytes.fromhex


def test_every_entry_names_its_source() -> None:
    assert "AGPL-3.0" in V["_meta"]["licence_note"]
    for name in ("x25519_agreement", "xeddsa_verify", "chain_key_derivation", "aes_cbc",
                 "x3dh_as_bob"):
        src = V[name]["source"]
        assert src["repo"].startswith("signalapp/") and src["path"] and src["test"], name
        assert src["licence"] == "AGPL-3.0-only", name


# --- X25519: rust/core/src/curve/curve25519.rs test_agreement ---------------------------


def test_x25519_agreement() -> None:
    v = V["x25519_agreement"]
    alice = PrivateKey(h(v["alice_private"]))
    bob = PrivateKey(h(v["bob_private"]))
    assert alice.public_key().u == h(v["alice_public"])
    assert bob.public_key().u == h(v["bob_public"])
    assert alice.agree(PublicKey(h(v["bob_public"]))) == h(v["shared"])
    assert bob.agree(PublicKey(h(v["alice_public"]))) == h(v["shared"])


# --- Symmetric chain: rust/protocol/src/ratchet/keys.rs test_chain_key_derivation --------


def _message_keys(chain_key: bytes) -> tuple[bytes, bytes, bytes]:
    # research §3.4: seed = HMAC(CK, 0x01); HKDF(seed, no salt, "WhisperMessageKeys", 80)
    # -> cipher_key [0:32], mac_key [32:64], iv [64:80].
    okm = hkdf_sha256(hmac_sha256(chain_key, b"\x01"), b"WhisperMessageKeys", 80)
    return okm[0:32], okm[32:64], okm[64:80]


def test_chain_key_derivation() -> None:
    v = V["chain_key_derivation"]
    ck = h(v["chain_key"])
    cipher_key, mac_key, iv = _message_keys(ck)
    assert cipher_key == h(v["cipher_key"])
    assert mac_key == h(v["mac_key"])
    assert iv == h(v["derived_here_not_upstream"]["iv"])  # regression value, not upstream
    assert hmac_sha256(ck, b"\x02") == h(v["next_chain_key"])  # next CK = HMAC(CK, 0x02)


# --- AES-CBC: rust/crypto/src/aes_cbc.rs aes_cbc_test ------------------------------------


def test_aes_cbc_vector() -> None:
    v = V["aes_cbc"]
    key, iv, pt, ct = h(v["key"]), h(v["iv"]), h(v["plaintext"]), h(v["ciphertext"])
    assert aes_cbc_encrypt(key, iv, pt) == ct
    assert aes_cbc_decrypt(key, iv, ct) == pt
    # A flipped IV bit flips the same plaintext bit and still decrypts (CBC malleability,
    # which is why Signal MACs the ciphertext).
    assert aes_cbc_decrypt(key, h(v["bitflipped_iv"]), ct) == h(v["plaintext_under_bitflipped_iv"])


@pytest.mark.parametrize("which", ["plaintext_as_ciphertext", "ciphertext_as_iv"])
def test_aes_cbc_vector_must_fail(which: str) -> None:
    v = V["aes_cbc"]
    key, iv, pt, ct = h(v["key"]), h(v["iv"]), h(v["plaintext"]), h(v["ciphertext"])
    with pytest.raises(InvalidMessageError):
        if which == "plaintext_as_ciphertext":
            aes_cbc_decrypt(key, iv, pt)  # 10 bytes: not a multiple of 16
        else:
            aes_cbc_decrypt(key, ct, ct)  # padding invalid under this IV


# --- Data integrity of the entries the lead's module tests consume -----------------------


def test_xeddsa_entry_key_pair_is_consistent() -> None:
    v = V["xeddsa_verify"]
    assert PrivateKey(h(v["identity_private"])).public_key().u == h(v["identity_public"])
    assert len(h(v["message"])) == 33 and h(v["message"])[0] == 0x05
    assert len(h(v["signature"])) == 64 and h(v["signature"])[63] & 0x80  # sign bit 1


def test_x3dh_as_bob_entry_is_coherent() -> None:
    """Recompute Bob's chain key from the JSON with primitives only (research §3.1).

    Also pins the two key-pair mismatches in the upstream test data (see JSON notes).
    """
    v = V["x3dh_as_bob"]
    ik_b = PrivateKey(h(v["bob_identity_private"]))
    spk_b = PrivateKey(h(v["bob_signed_prekey_private"]))
    assert ik_b.public_key().serialize() == h(v["bob_identity_public"])
    assert spk_b.public_key().serialize() == h(v["bob_signed_prekey_public"])
    ik_a = PublicKey.from_bytes(h(v["alice_identity_public"]))
    ek_a = PublicKey.from_bytes(h(v["alice_base_public"]))
    master = b"\xff" * 32 + spk_b.agree(ik_a) + ik_b.agree(ek_a) + spk_b.agree(ek_a)
    okm = hkdf_sha256(master, b"WhisperText", 64)
    derived = v["derived_here_not_upstream"]
    assert okm[32:64] == h(v["expected_sender_chain_key"])
    assert okm[0:32] == h(derived["root_key"])
    # Upstream's Bob ephemeral pair does not match (unused for the chain key).
    eph = PrivateKey(h(v["bob_ephemeral_private"])).public_key().serialize()
    assert eph == h(derived["bob_ephemeral_public_from_private"]) != h(v["bob_ephemeral_public"])
    # Upstream's Alice test uses a base private key that is not alice_base_public's: that
    # alone explains its "differs from the Java test" value ab9be50e....
    a = v["alice_side_do_not_use_as_is"]
    base = PrivateKey(h(a["alice_base_private"]))
    assert base.public_key().serialize() == h(a["alice_base_public_from_private"])
    ik_a_priv = PrivateKey(h(a["alice_identity_private"]))
    assert ik_a_priv.public_key() == ik_a
    spk_pub, ik_b_pub = spk_b.public_key(), ik_b.public_key()
    master_a = b"\xff" * 32 + ik_a_priv.agree(spk_pub) + base.agree(ik_b_pub) + base.agree(spk_pub)
    assert hkdf_sha256(master_a, b"WhisperText", 64)[32:64] == h(a["expected_receiver_chain_key"])
