"""X3DH (protocol version 3) in both roles, with and without a one-time pre-key (research §3.1)."""
from __future__ import annotations

from typing import Any

from reference_impl.signal import xeddsa
from reference_impl.signal.keys import KeyPair
from reference_impl.signal.rng import DeterministicRng
from reference_impl.signal.x3dh import alice_agree, bob_agree

from .._check import Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, h

FILE = "x3dh_test.json"
TITLE = "X3DH"
SEED = "interop-vectors/x3dh/v1"

NOTES = {
    "Ktv": Note("BASIC", "Both sides of an X3DH agreement with fixed keys.",
                "A failure means no session can be established with this implementation."),
    "OneTimePreKey": Note("BASIC", "The bundle carries a one-time pre-key, so a fourth DH "
                          "DH(EK_A, OPK_B) is appended to the master secret.",
                          "Getting the fourth DH wrong breaks every first message that used a "
                          "one-time pre-key."),
    "LibsignalKat": Note("BASIC", "libsignal v0.74.0 test_ratcheting_session_as_bob (also Java "
                         "RatchetingSessionTest): chain key 9797caca…; the root key was derived here.",
                         "A failure means the v3 key agreement differs from libsignal's."),
    "InvalidSignedPreKeySignature": Note(
        "AUTH_BYPASS", "The signed pre-key signature does not verify under the bundle's identity "
        "key (modified, or made over another key). The initiator must verify it before any DH.",
        "Accepting it lets a key directory or man in the middle substitute the signed pre-key. "
        "npm libsignal's initOutgoing skips this check (research §12 item 6); its adapter "
        "verifies explicitly, as a caller of that package must."),
    "LowOrderKey": Note("EDGE_CASE", "A peer key of small order: X25519 gives the all-zero secret, "
                        "which libsignal rejects (InvalidKeyAgreement).",
                        "Accepting it makes the shared secret predictable."),
    "NonCanonicalBaseKey": Note("EDGE_CASE", "The initiator's base key has bit 255 set (u >= 2^255 - 19). "
                                "libsignal's responder rejects a non-canonical base key "
                                "(curve.rs is_canonical, pqxdh_accept).",
                                "Accepting it lets an attacker change the key bytes without changing "
                                "any DH (session ids derived from the base key diverge)."),
    "WrongKeyType": Note("MODIFIED_PARAMETER", "A peer public key whose type byte is not 0x05.",
                         "Accepting it means key types are not checked."),
}

_KEY = {"$ref": "#/$defs/hex"}
_OPT = {"oneOf": [{"$ref": "#/$defs/hex"}, {"type": "null"}]}
TEST_PROPERTIES: dict[str, Any] = {
    "identityPrivate": {"$ref": "#/$defs/hex32"},
    "basePrivate": {"$ref": "#/$defs/hex32"},
    "signedPreKeyPrivate": {"$ref": "#/$defs/hex32"},
    "oneTimePreKeyPrivate": _OPT,
    "theirIdentityKey": _KEY,
    "theirSignedPreKey": _KEY,
    "theirSignedPreKeySignature": _KEY,
    "theirOneTimePreKey": _OPT,
    "theirBaseKey": _KEY,
    "rootKey": {"$ref": "#/$defs/hex32"},
    "chainKey": {"$ref": "#/$defs/hex32"},
}
GROUP_PROPERTIES: dict[str, Any] = {"role": {"enum": ["initiator", "responder"]}}
REQUIRED = {
    "X3DHInitiator": ["identityPrivate", "basePrivate", "theirIdentityKey", "theirSignedPreKey",
                      "theirSignedPreKeySignature", "theirOneTimePreKey"],
    "X3DHResponder": ["identityPrivate", "signedPreKeyPrivate", "oneTimePreKeyPrivate",
                      "theirIdentityKey", "theirBaseKey"],
}

LOW_ORDER = {"u = 0": bytes(32), "u = 1": (1).to_bytes(32, "little"),
             "order-8 point": (325606250916557431795983626356110631294008115727848805560023387167927233504
                               ).to_bytes(32, "little")}


def build() -> VectorFile:
    vf = VectorFile(
        TITLE, "x3dh_test_schema.json",
        ["X3DH of Signal v3: master = 0xFF*32 || DH(IK_A, SPK_B) || DH(EK_A, IK_B) || DH(EK_A, SPK_B) "
         "[|| DH(EK_A, OPK_B)]; rootKey || chainKey = HKDF-SHA256(master, salt = 32 zero bytes, "
         "info = 'WhisperText', 64). The initiator verifies the signed pre-key signature first."],
        dict(NOTES),
    )
    rng = DeterministicRng(SEED)
    ini = vf.group("X3DHInitiator", op="x3dh", role="initiator")
    res = vf.group("X3DHResponder", op="x3dh", role="responder")
    cases = []
    for with_opk in (False, True, True):
        a_id, a_base = KeyPair.generate(rng), KeyPair.generate(rng)
        b_id, b_spk, b_opk = KeyPair.generate(rng), KeyPair.generate(rng), KeyPair.generate(rng)
        sig = xeddsa.sign(b_id.private, b_spk.public.serialize(), z=rng(64))
        opk = b_opk if with_opk else None
        rk, ck = alice_agree(a_id, a_base, b_id.public, b_spk.public, opk.public if opk else None)
        rk2, ck2 = bob_agree(b_id, b_spk, opk, a_id.public, a_base.public)
        assert (rk, ck) == (rk2, ck2)
        cases.append((a_id, a_base, b_id, b_spk, opk, sig, rk, ck))
        flags = ["Ktv"] + (["OneTimePreKey"] if opk else [])
        what = "with" if opk else "without"
        vf.add(ini, f"initiator {what} a one-time pre-key", "valid", flags,
               identityPrivate=h(a_id.private.k), basePrivate=h(a_base.private.k),
               theirIdentityKey=h(b_id.public.serialize()), theirSignedPreKey=h(b_spk.public.serialize()),
               theirSignedPreKeySignature=h(sig),
               theirOneTimePreKey=h(opk.public.serialize()) if opk else None, rootKey=h(rk), chainKey=h(ck))
        vf.add(res, f"responder {what} a one-time pre-key", "valid", flags,
               identityPrivate=h(b_id.private.k), signedPreKeyPrivate=h(b_spk.private.k),
               oneTimePreKeyPrivate=h(opk.private.k) if opk else None,
               theirIdentityKey=h(a_id.public.serialize()), theirBaseKey=h(a_base.public.serialize()),
               rootKey=h(rk), chainKey=h(ck))

    vf.add(res, "libsignal test_ratcheting_session_as_bob", "valid", ["LibsignalKat"],
           identityPrivate="4875cc69ddf8ea0719ec947d61081135868d5fd801f02c0225e516df2156605e",
           signedPreKeyPrivate="583900131fb727998b7803fe6ac22cc591f342e4e42a8c8d5d78194209b8d253",
           oneTimePreKeyPrivate=None,
           theirIdentityKey="05b4a8455660ada65b401007f615e654041746432e3339c6875149bceefcb42b4a",
           theirBaseKey="05472d1fb1a9862c3af6beaca8920277e2b26f4a79213ec7c906aeb35e03cf8950",
           rootKey="3e6130d0a8c8e5b8ad65eb8b7d95fa3ab84710d48d92f34dcda43f9909261bca",
           chainKey="9797caca53c989bbe229a40ca7727010eb2604fc14945d77958a0aeda088b44d")

    a_id, a_base, b_id, b_spk, opk, sig, rk, ck = cases[1]
    base_i = {"identityPrivate": h(a_id.private.k), "basePrivate": h(a_base.private.k),
                  "theirIdentityKey": h(b_id.public.serialize()),
                  "theirSignedPreKey": h(b_spk.public.serialize()), "theirSignedPreKeySignature": h(sig),
                  "theirOneTimePreKey": h(opk.public.serialize()) if opk else None}
    base_r = {"identityPrivate": h(b_id.private.k), "signedPreKeyPrivate": h(b_spk.private.k),
                  "oneTimePreKeyPrivate": h(opk.private.k) if opk else None,
                  "theirIdentityKey": h(a_id.public.serialize()), "theirBaseKey": h(a_base.public.serialize())}
    bad = bytearray(sig)
    bad[10] ^= 1
    vf.add(ini, "signed pre-key signature with one bit flipped", "invalid",
           ["InvalidSignedPreKeySignature"], **{**base_i, "theirSignedPreKeySignature": h(bad)})
    other_sig = cases[0][5]
    vf.add(ini, "signature from another bundle", "invalid", ["InvalidSignedPreKeySignature"],
           **{**base_i, "theirSignedPreKeySignature": h(other_sig)})
    sig_by_spk = xeddsa.sign(b_spk.private, b_spk.public.serialize(), z=bytes(64))
    vf.add(ini, "signed pre-key signed by itself, not by the identity key", "invalid",
           ["InvalidSignedPreKeySignature"], **{**base_i, "theirSignedPreKeySignature": h(sig_by_spk)})
    raw_sig = xeddsa.sign(b_id.private, b_spk.public.u, z=bytes(64))
    vf.add(ini, "signature over the raw 32-byte key instead of 0x05 || u", "invalid",
           ["InvalidSignedPreKeySignature"], **{**base_i, "theirSignedPreKeySignature": h(raw_sig)})
    vf.add(ini, "all-zero signed pre-key signature", "invalid", ["InvalidSignedPreKeySignature"],
           **{**base_i, "theirSignedPreKeySignature": h(bytes(64))})
    for name, u in LOW_ORDER.items():
        low = b"\x05" + u
        # A correctly signed low-order signed pre-key: only the agreement can catch it.
        low_sig = xeddsa.sign(b_id.private, low, z=bytes(64))
        vf.add(ini, f"signed pre-key is a low-order point ({name}), correctly signed", "invalid",
               ["LowOrderKey"], **{**base_i, "theirSignedPreKey": h(low),
                                   "theirSignedPreKeySignature": h(low_sig)})
        vf.add(res, f"initiator base key is a low-order point ({name})", "invalid", ["LowOrderKey"],
               **{**base_r, "theirBaseKey": h(low)})
    vf.add(ini, "one-time pre-key is the low-order point u = 0", "invalid", ["LowOrderKey"],
           **{**base_i, "theirOneTimePreKey": h(b"\x05" + bytes(32))})
    vf.add(res, "initiator identity key is the low-order point u = 1", "invalid", ["LowOrderKey"],
           **{**base_r, "theirIdentityKey": h(b"\x05" + LOW_ORDER["u = 1"])})
    nc = bytearray(a_base.public.serialize())
    nc[32] |= 0x80
    vf.add(res, "initiator base key with bit 255 set (non-canonical)", "invalid",
           ["NonCanonicalBaseKey"], **{**base_r, "theirBaseKey": h(nc)})
    vf.add(res, "initiator base key with type byte 0x06", "invalid", ["WrongKeyType"],
           **{**base_r, "theirBaseKey": h(b"\x06" + a_base.public.u)})
    vf.add(ini, "responder identity key with type byte 0x08", "invalid", ["WrongKeyType"],
           **{**base_i, "theirIdentityKey": h(b"\x08" + b_id.public.u)})
    return vf


_PARAMS = {
    "identityPrivate": "identity_private", "basePrivate": "base_private",
    "signedPreKeyPrivate": "signed_pre_key_private", "oneTimePreKeyPrivate": "one_time_pre_key_private",
    "theirIdentityKey": "their_identity_key", "theirSignedPreKey": "their_signed_pre_key",
    "theirSignedPreKeySignature": "their_signed_pre_key_signature",
    "theirOneTimePreKey": "their_one_time_pre_key", "theirBaseKey": "their_base_key",
}


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    params = {v: test[k] for k, v in _PARAMS.items() if k in test}
    resp = adapter.call("x3dh", role=group["role"], **params)
    unsupported_in(resp)
    mismatch = None
    if resp["ok"] and "rootKey" in test:
        if (resp.get("root_key"), resp.get("chain_key")) != (test["rootKey"], test["chainKey"]):
            mismatch = (f"root/chain {resp.get('root_key')}/{resp.get('chain_key')} != expected "
                        f"{test['rootKey']}/{test['chainKey']}")
    return verdict(test["result"], resp["ok"], mismatch, resp)
