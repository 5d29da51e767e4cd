"""Wycheproof (C2SP/wycheproof testvectors_v1) driven through OUR crypto wrappers.

The files in data/wycheproof/ are unmodified upstream copies (see SOURCE.md). Each test
feeds the vectors to the exact function the Signal core uses, so a regression in a
wrapper (not just in the backend) is caught.
"""
from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from reference_impl.signal.crypto import (
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    constant_time_eq,
    hkdf_sha256,
    hmac_sha256,
)
from reference_impl.signal.errors import InvalidKeyAgreementError, InvalidMessageError
from reference_impl.signal.keys import PrivateKey, PublicKey, clamp

from ._data import WYCHEPROOF_DIR, wycheproof_cases

h = bytes.fromhex


def test_copies_are_unmodified() -> None:
    """SOURCE.md pins each vendored file's SHA-256; an edit to a vector file fails here."""
    text = (WYCHEPROOF_DIR / "SOURCE.md").read_text(encoding="utf-8")
    pinned = dict(re.findall(r"\| `([^`]+)` \| `([0-9a-f]{64})` \|", text))
    assert set(pinned) == {
        "x25519_test.json",
        "aes_cbc_pkcs5_test.json",
        "hmac_sha256_test.json",
        "hkdf_sha256_test.json",
        "ed25519_test.json",
        "LICENSE",
    }
    for name, digest in pinned.items():
        assert hashlib.sha256((WYCHEPROOF_DIR / name).read_bytes()).hexdigest() == digest, name


# --- X25519 -> PrivateKey.agree ------------------------------------------------------------
#
# Mapping of Wycheproof results onto the Signal profile:
#  * "valid": agree() must return `shared`.
#  * "acceptable" with an all-zero `shared` (flag ZeroSharedSecret; low-order public keys):
#    libsignal rejects the all-zero secret (research §1, rust/core/src/curve.rs
#    calculate_agreement -> InvalidKeyAgreement; RFC 7748 §6.1 allows this check), so
#    agree() must raise InvalidKeyAgreementError.
#  * "acceptable" otherwise (Twist, NonCanonicalPublic, SpecialPublicKey, ...): x25519-dalek
#    in libsignal computes RFC 7748 X25519 on them without complaint, so must we, and the
#    output must be the RFC value. (Canonicity of Alice's *base key* is a separate X3DH-level
#    check, research §3.1; it is not part of raw agreement.)
#  * "invalid" (none in this file version): must raise.
# Wycheproof private keys are raw, unclamped scalars. X25519 clamps internally (RFC 7748
# §5 decodeScalar25519) and PrivateKey clamps on construction, so the result is the same.


@pytest.mark.parametrize("group,test", wycheproof_cases("x25519_test.json", "XDH"))
def test_x25519(group: dict, test: dict) -> None:
    assert group["curve"] == "curve25519"
    raw_private = h(test["private"])
    private = PrivateKey(raw_private)
    assert private.serialize() == clamp(raw_private)
    public = PublicKey(h(test["public"]))
    expected = h(test["shared"])
    zero = expected == bytes(32)
    assert zero == ("ZeroSharedSecret" in test["flags"])
    if test["result"] == "invalid" or zero:
        with pytest.raises(InvalidKeyAgreementError):
            private.agree(public)
    else:
        assert test["result"] in ("valid", "acceptable")
        assert private.agree(public) == expected


# --- AES-CBC/PKCS#7 -> aes_cbc_encrypt / aes_cbc_decrypt ------------------------------------
# Signal only uses 256-bit keys, but the wrapper accepts what AES accepts (128/192/256), so
# all three groups are run. Invalid cases (bad padding, empty ciphertext) must surface as
# InvalidMessageError, never a backend ValueError.


@pytest.mark.parametrize("group,test", wycheproof_cases("aes_cbc_pkcs5_test.json", "AES-CBC-PKCS5"))
def test_aes_cbc(group: dict, test: dict) -> None:
    assert group["keySize"] in (128, 192, 256) and group["ivSize"] == 128
    key, iv, msg, ct = h(test["key"]), h(test["iv"]), h(test["msg"]), h(test["ct"])
    if test["result"] == "valid":
        assert aes_cbc_encrypt(key, iv, msg) == ct
        assert aes_cbc_decrypt(key, iv, ct) == msg
    else:
        with pytest.raises(InvalidMessageError):
            aes_cbc_decrypt(key, iv, ct)


# --- HMAC-SHA256 -> hmac_sha256 -------------------------------------------------------------
# Groups with tagSize 128 compare the leftmost 16 bytes (Wycheproof MacTest: the tag is
# the truncated MAC). Signal uses 8-byte truncation of this same function for message MACs.


@pytest.mark.parametrize("group,test", wycheproof_cases("hmac_sha256_test.json", "HMACSHA256"))
def test_hmac_sha256(group: dict, test: dict) -> None:
    tag_len = group["tagSize"] // 8
    key, msg, tag = h(test["key"]), h(test["msg"]), h(test["tag"])
    assert len(key) * 8 == group["keySize"]
    computed = hmac_sha256(key, msg)[:tag_len]
    assert constant_time_eq(computed, tag) == (test["result"] == "valid")


# --- HKDF-SHA256 -> hkdf_sha256 --------------------------------------------------------------


@pytest.mark.parametrize("group,test", wycheproof_cases("hkdf_sha256_test.json", "HKDF-SHA-256"))
def test_hkdf_sha256(group: dict, test: dict) -> None:
    ikm, salt, info, size = h(test["ikm"]), h(test["salt"]), h(test["info"]), test["size"]
    if test["result"] == "valid":
        okm = h(test["okm"])
        assert hkdf_sha256(ikm, info, size, salt=salt) == okm
        if not salt:
            # "EmptySalt": an empty salt equals HashLen zero bytes, which is what
            # salt=None means in the wrapper (libsignal's "no salt").
            assert hkdf_sha256(ikm, info, size) == okm
    else:
        # SizeTooLarge: L > 255 * 32 must be refused, not silently truncated.
        assert "SizeTooLarge" in test["flags"]
        with pytest.raises(ValueError):
            hkdf_sha256(ikm, info, size, salt=salt)


# --- Ed25519 verify via `cryptography` (sanity only) -----------------------------------------
# XEdDSA verification converts the Montgomery key to Edwards and then needs a strict
# RFC 8032 verifier; this checks that the backend path it will use accepts exactly the
# valid Wycheproof signatures (non-canonical S, bad R encodings, truncation all rejected).


@pytest.mark.parametrize("group,test", wycheproof_cases("ed25519_test.json", "EDDSA"))
def test_ed25519_backend_verify(group: dict, test: dict) -> None:
    key = Ed25519PublicKey.from_public_bytes(h(group["publicKey"]["pk"]))
    if test["result"] == "valid":
        key.verify(h(test["sig"]), h(test["msg"]))
    else:
        with pytest.raises(InvalidSignature):
            key.verify(h(test["sig"]), h(test["msg"]))
