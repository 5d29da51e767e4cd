"""XEdDSA as libsignal signs and verifies (research §6): fixed-Z signing and verification
edge cases (sign bit, s + L, s >= 2^253, non-canonical and low-order keys, wrong message)."""
from __future__ import annotations

import hashlib
from typing import Any

from reference_impl.signal import edwards as ed
from reference_impl.signal import xeddsa
from reference_impl.signal.keys import KeyPair, PublicKey
from reference_impl.signal.rng import DeterministicRng

from .._check import Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, h, unh

FILE = "xeddsa_test.json"
TITLE = "XEdDSA"
SEED = "interop-vectors/xeddsa/v1"
P, L = ed.P, ed.L

NOTES = {
    "Ktv": Note("BASIC", "A known-answer signature made with a fixed Z.",
                "A failure means the implementation does not sign or verify XEdDSA as libsignal does; "
                "nothing signed by it will interoperate."),
    "LibsignalKat": Note("BASIC", "The fixed signature of libsignal's own unit test "
                         "(rust/core/src/curve/curve25519.rs test_signature).",
                         "A failure means signed pre-keys published by libsignal clients are rejected."),
    "WrongSignBit": Note("MODIFIED_PARAMETER", "Bit 7 of signature byte 63 carries the Edwards sign "
                         "bit of the public key; here it is flipped.",
                         "Accepting it means the verifier ignores the sign bit: two Edwards keys "
                         "verify for one Montgomery key."),
    "WrongMessage": Note("BASIC", "A valid signature over a different message.",
                         "Accepting it is a complete signature bypass."),
    "ModifiedSignature": Note("MODIFIED_PARAMETER", "R or s is modified.",
                              "Accepting it is a signature bypass."),
    "ScalarNotReduced": Note("SIGNATURE_MALLEABILITY", "s is replaced by s + L (still below 2^253). "
                             "libsignal reduces s mod L and accepts it (research §6); RFC 8032 "
                             "verifiers such as OpenSSL reject it.",
                             "Either behaviour interoperates with honest signers, who never emit it; "
                             "accepting allows re-encoding a signature (malleability)."),
    "ScalarTooLarge": Note("SIGNATURE_MALLEABILITY", "s has one of bits 253/254 set. libsignal rejects "
                           "any s >= 2^253 before reducing.",
                           "Accepting s + k*L >= 2^253 (TweetNaCl-style verifiers, npm libsignal's "
                           "curve25519-js) makes signatures malleable; accepting an s that is not "
                           "congruent is a signature bypass."),
    "WrongLength": Note("BASIC", "The signature is not 64 bytes.", "Accepting it means "
                        "the verifier reads past or short of the signature."),
    "NonCanonicalPublicKey": Note("EDGE_CASE", "The public key has bit 255 set. libsignal (curve25519-dalek) "
                                  "masks bit 255 and verifies; the reference implementation rejects "
                                  "a public key with u >= 2^255 - 19 at parse time.",
                                  "Honest keys never have bit 255 set; either answer is acceptable."),
    "LowOrderPublicKey": Note("EDGE_CASE", "The public key is a point of small order (u = 0, 1, the "
                              "order-8 points, or u = p - 1 which has no Edwards form).",
                              "With a forged signature (h*A = identity) cofactorless verifiers such "
                              "as libsignal accept; stricter ones reject. A random signature must "
                              "always be rejected."),
    "WrongKeyType": Note("MODIFIED_PARAMETER", "The public key's type byte is not 0x05.",
                         "Accepting it means key types are not checked."),
    "LegacyKeyEncoding": Note("LEGACY", "The public key lacks the 0x05 prefix (32 bytes) or carries "
                              "trailing bytes (34 bytes). npm libsignal accepts 32-byte keys with a "
                              "warning; libsignal drops trailing bytes; the reference rejects both.",
                              "Either answer is acceptable; an honest peer sends 33 bytes."),
}

TEST_PROPERTIES: dict[str, Any] = {
    "privateKey": {"$ref": "#/$defs/hex32"},
    "publicKey": {"$ref": "#/$defs/hex"},
    "message": {"$ref": "#/$defs/hex"},
    "z": {"$ref": "#/$defs/hex64"},
    "signature": {"$ref": "#/$defs/hex"},
}
GROUP_PROPERTIES: dict[str, Any] = {}
REQUIRED = {"XEdDSASign": ["privateKey", "publicKey", "message", "z", "signature"],
            "XEdDSAVerify": ["publicKey", "message", "signature"]}


def _point_from_u(u: int, sign: int) -> tuple[int, int, int, int] | None:
    y = ed.montgomery_to_edwards_y(u)
    if y is None:
        return None
    x = ed._recover_x(y, sign)
    return (x, y, 1, x * y % P)


def _mul(k: int, pt: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    acc = ed._IDENT
    while k:
        if k & 1:
            acc = ed._add(acc, pt)
        pt = ed._add(pt, pt)
        k >>= 1
    return acc


def _is_identity(pt: tuple[int, int, int, int]) -> bool:
    x, y, z, _ = pt
    return x % P == 0 and (y - z) % P == 0


def _forge_low_order(u: int, sign: int, r: int) -> tuple[bytes, bytes]:
    """A (message, signature) that satisfies s*B - h*A == R for a small-order A."""
    a_pt = _point_from_u(u, sign)
    assert a_pt is not None
    a_enc = ((ed.montgomery_to_edwards_y(u) or 0) | (sign << 255)).to_bytes(32, "little")
    r_enc = ed.compress(ed.scalarmult_base(r))
    for i in range(1000):
        msg = b"low-order forgery " + bytes([i])
        hh = int.from_bytes(hashlib.sha512(r_enc + a_enc + msg).digest(), "little") % L
        if _is_identity(_mul(hh, a_pt)):
            sig = bytearray(r_enc + r.to_bytes(32, "little"))
            sig[63] |= sign << 7
            return msg, bytes(sig)
    raise AssertionError("no forgery found")


def _with_s(sig: bytes, s: int) -> bytes:
    out = bytearray(sig[:32] + s.to_bytes(32, "little"))
    out[63] |= sig[63] & 0x80
    return bytes(out)


def _s(sig: bytes) -> int:
    return int.from_bytes(sig[32:], "little") & ((1 << 255) - 1)


def build() -> VectorFile:
    vf = VectorFile(
        TITLE, "xeddsa_test_schema.json",
        ["XEdDSA over Curve25519 keys exactly as libsignal signs and verifies (the sign bit of the "
         "Edwards key travels in bit 7 of signature byte 63; s must be < 2^253 and is reduced "
         "mod L). Keys are Signal-serialised (0x05 || u); private keys are clamped."],
        dict(NOTES),
    )
    rng = DeterministicRng(SEED)
    keys = [KeyPair.generate(rng) for _ in range(4)]
    # Make sure both sign-bit values are exercised.
    signs = {xeddsa.base_mult(int.from_bytes(k.private.k, "little") % L)[31] >> 7 for k in keys}
    assert signs == {0, 1}, signs
    messages = [b"", b"a", keys[1].public.serialize(), bytes(range(256)) * 4]
    sign_tests = vf.group("XEdDSASign", op="xeddsa_sign")
    signed: list[tuple[KeyPair, bytes, bytes]] = []
    for i, (kp, msg) in enumerate(zip(keys, messages)):
        z = rng(64) if i else bytes(64)
        sig = xeddsa.sign(kp.private, msg, z=z)
        signed.append((kp, msg, sig))
        vf.add(sign_tests, f"sign, {len(msg)}-byte message" + (", Z = 0" if not i else ""),
               "valid", ["Ktv"], privateKey=h(kp.private.serialize()),
               publicKey=h(kp.public.serialize()), message=h(msg), z=h(z), signature=h(sig))

    vt = vf.group("XEdDSAVerify", op="xeddsa_verify")

    def add(comment: str, result: str, flags: list[str], pub: bytes, msg: bytes, sig: bytes) -> None:
        vf.add(vt, comment, result, flags, publicKey=h(pub), message=h(msg), signature=h(sig))

    for kp, msg, sig in signed:
        add(f"valid signature, sign bit {sig[63] >> 7}", "valid", ["Ktv"], kp.public.serialize(), msg, sig)
    kat_pub = PublicKey(unh("ab7e717d4a163b7d9a1d8071dfe9dcf8cdcd1cea3339b6356be84d887e322c64"))
    kat_msg = unh("05edce9d9c415ca78cb7252e72c2c4a554d3eb29485a0e1d503118d1a82d99fb4a")
    kat_sig = unh("5de88ca9a89b4a115da79109c67c9c7464a3e4180274f1cb8c63c2984e286dfbede82deb9dcd9fae0b"
                  "fbb821569b3d9001bd8130cd11d486cef047bd60b86e88")
    add("libsignal test_signature", "valid", ["LibsignalKat"], kat_pub.serialize(), kat_msg, kat_sig)
    for i in (0, 31, 63):
        bad = bytearray(kat_sig)
        bad[i] ^= 0x01
        add(f"libsignal test_signature with bit 0 of byte {i} flipped", "invalid",
            ["ModifiedSignature"], kat_pub.serialize(), kat_msg, bytes(bad))

    kp, msg, sig = signed[2]
    pub = kp.public.serialize()
    for kp2, msg2, sig2 in signed[:2]:
        flipped = bytearray(sig2)
        flipped[63] ^= 0x80
        add("sign bit flipped", "invalid", ["WrongSignBit"], kp2.public.serialize(), msg2, bytes(flipped))
    add("message with one byte appended", "invalid", ["WrongMessage"], pub, msg + b"\x00", sig)
    add("message with last bit flipped", "invalid", ["WrongMessage"], pub,
        msg[:-1] + bytes([msg[-1] ^ 1]), sig)
    add("empty message instead of the signed one", "invalid", ["WrongMessage"], pub, b"", sig)
    add("signature of another key's message", "invalid", ["WrongMessage"], pub, signed[1][1], signed[1][2])
    bad = bytearray(sig)
    bad[5] ^= 0x40
    add("R modified", "invalid", ["ModifiedSignature"], pub, msg, bytes(bad))
    add("s modified (+1)", "invalid", ["ModifiedSignature"], pub, msg, _with_s(sig, _s(sig) + 1))
    add("s = 0", "invalid", ["ModifiedSignature"], pub, msg, _with_s(sig, 0))
    add("all-zero signature", "invalid", ["ModifiedSignature"], pub, msg, bytes(64))
    add("s replaced by s + L (< 2^253)", "acceptable", ["ScalarNotReduced"], pub, msg,
        _with_s(sig, _s(sig) + L))
    assert _s(sig) + 2 * L >= 2**253
    add("s replaced by s + 2L (>= 2^253, congruent to s)", "invalid", ["ScalarTooLarge"], pub, msg,
        _with_s(sig, _s(sig) + 2 * L))
    add("s replaced by s + 8L (bit 254 set, congruent to s)", "invalid", ["ScalarTooLarge"], pub,
        msg, _with_s(sig, _s(sig) + 8 * L))
    add("bit 253 of s set (not congruent)", "invalid", ["ScalarTooLarge"], pub, msg,
        _with_s(sig, _s(sig) | (1 << 253)))
    add("bit 254 of s set (not congruent)", "invalid", ["ScalarTooLarge"], pub, msg,
        _with_s(sig, _s(sig) | (1 << 254)))
    add("signature truncated to 63 bytes", "invalid", ["WrongLength"], pub, msg, sig[:63])
    add("signature with a trailing byte", "invalid", ["WrongLength"], pub, msg, sig + b"\x00")
    add("empty signature", "invalid", ["WrongLength"], pub, msg, b"")
    add("public key type byte 0x06", "invalid", ["WrongKeyType"], b"\x06" + pub[1:], msg, sig)
    add("public key type byte 0x00", "invalid", ["WrongKeyType"], b"\x00" + pub[1:], msg, sig)
    add("public key without the 0x05 prefix", "acceptable", ["LegacyKeyEncoding"], pub[1:], msg, sig)
    add("public key with a trailing byte", "acceptable", ["LegacyKeyEncoding"], pub + b"\x00", msg, sig)
    hi = bytearray(pub)
    hi[32] |= 0x80
    add("public key with bit 255 set (non-canonical, same u mod 2^255)", "acceptable",
        ["NonCanonicalPublicKey"], bytes(hi), msg, sig)
    add("public key with bit 255 set, wrong message", "invalid",
        ["NonCanonicalPublicKey", "WrongMessage"], bytes(hi), msg + b"x", sig)

    low_order = [
        ("u = 0 (order 2)", 0, 0),
        ("u = 1 (order 4)", 1, 0),
        ("u = 1 (order 4), sign bit 1", 1, 1),
        ("order-8 point 1", 325606250916557431795983626356110631294008115727848805560023387167927233504, 0),
        ("order-8 point 2", 39382357235489614581723060781553021112529911719440698176882885853963445705823, 1),
    ]
    r = int.from_bytes(hashlib.sha512(SEED.encode()).digest(), "little") % L
    for name, u, sgn in low_order:
        key = b"\x05" + u.to_bytes(32, "little")
        fmsg, fsig = _forge_low_order(u, sgn, r)
        add(f"low-order key {name}, forged signature with h*A = identity", "acceptable",
            ["LowOrderPublicKey"], key, fmsg, fsig)
        add(f"low-order key {name}, another key's signature", "invalid", ["LowOrderPublicKey"],
            key, msg, sig)
    for name, u in (("u = p - 1 (no Edwards form)", P - 1), ("u = p (non-canonical 0)", P),
                    ("u = p + 1 (non-canonical 1)", P + 1)):
        key = b"\x05" + u.to_bytes(32, "little")
        add(f"low-order key {name}, another key's signature", "invalid", ["LowOrderPublicKey"],
            key, msg, sig)
    return vf


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    if group["type"] == "XEdDSASign":
        resp = adapter.call("xeddsa_sign", private_key=test["privateKey"], message=test["message"],
                            z=test["z"])
        unsupported_in(resp)
        mismatch = None
        if resp["ok"]:
            got = resp["signature"]
            if adapter.capability("xeddsa_sign_uses_z", True):
                if got != test["signature"]:
                    mismatch = f"signature {got} != expected {test['signature']}"
            else:
                # The implementation ignores Z (deterministic signing): compare by verification.
                try:
                    xeddsa.verify(PublicKey.from_bytes(unh(test["publicKey"])), unh(test["message"]),
                                  unh(got))
                except Exception as exc:
                    mismatch = f"adapter's signature does not verify: {exc}"
                if mismatch is None and adapter.supports("xeddsa_verify"):
                    v = adapter.call("xeddsa_verify", public_key=test["publicKey"],
                                     message=test["message"], signature=test["signature"])
                    if not (v["ok"] and v.get("valid")):
                        mismatch = "adapter rejects the expected (fixed-Z) signature"
        return verdict(test["result"], resp["ok"], mismatch, resp)
    resp = adapter.call("xeddsa_verify", public_key=test["publicKey"], message=test["message"],
                        signature=test["signature"])
    unsupported_in(resp)
    accepted = bool(resp["ok"] and resp.get("valid"))
    if resp["ok"] and not accepted:
        resp = {"ok": False, "error": "InvalidSignature", "message": "valid: false"}
    return verdict(test["result"], accepted, None, resp)
