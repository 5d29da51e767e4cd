"""XEdDSA signatures over Curve25519 keys, exactly as libsignal makes and checks them.

libsignal deviates from the XEdDSA specification (signal.org/docs/specifications/xeddsa):
it does not negate the private scalar to force a zero sign bit; it carries the sign bit of
the Edwards public key in the top bit of the signature's last byte (research §6,
``rust/core/src/curve/curve25519.rs``). python-axolotl and npm ``libsignal`` do the same.
"""
from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .edwards import L, compress, montgomery_to_edwards_y, scalarmult_base
from .errors import InvalidSignatureError
from .keys import PrivateKey, PublicKey
from .rng import Rng, system_rng

__all__ = ["sign", "verify", "SIGNATURE_LENGTH", "base_mult"]

try:  # libsodium (through pyca's PyNaCl) does the scalar multiplication ~20x faster.
    from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp as _sodium_base_mult
    from nacl.exceptions import RuntimeError as _SodiumError
except ImportError:  # pragma: no cover - PyNaCl is a declared dependency
    _sodium_base_mult = None

SIGNATURE_LENGTH = 64
_HASH1_PREFIX = b"\xfe" + b"\xff" * 31  # XEdDSA hash_1: 2^256 - 2 - 1 in little-endian


def base_mult(scalar: int) -> bytes:
    """``compress(scalar · B)`` for a scalar already reduced mod L.

    libsodium when available; the pure-Python comb in ``edwards`` otherwise (and for the
    scalar 0, which libsodium refuses). Tests check that both give the same bytes.
    """
    if _sodium_base_mult is not None and scalar:
        try:
            return _sodium_base_mult(scalar.to_bytes(32, "little"))
        except _SodiumError:  # pragma: no cover - only for scalars libsodium refuses
            pass
    return compress(scalarmult_base(scalar))


def sign(private: PrivateKey, message: bytes, rng: Rng = system_rng, *, z: bytes | None = None) -> bytes:
    """Sign ``message`` with a Curve25519 private key. ``z`` (64 bytes) fixes the nonce input
    for known-answer tests; otherwise 64 bytes are drawn from ``rng``."""
    if z is None:
        z = rng(64)
    if len(z) != 64:
        raise ValueError("XEdDSA Z must be 64 bytes")
    k = private.serialize()  # already clamped; the nonce hash uses the clamped bytes
    a = int.from_bytes(k, "little") % L
    a_enc = base_mult(a)
    sign_bit = a_enc[31] & 0x80
    r = int.from_bytes(hashlib.sha512(_HASH1_PREFIX + k + message + z).digest(), "little") % L
    r_enc = base_mult(r)
    h = int.from_bytes(hashlib.sha512(r_enc + a_enc + message).digest(), "little") % L
    s = (h * a + r) % L
    sig = bytearray(r_enc + s.to_bytes(32, "little"))
    sig[63] = (sig[63] & 0x7F) | sign_bit
    return bytes(sig)


def verify(public: PublicKey, message: bytes, signature: bytes) -> None:
    """Return if ``signature`` is valid, raise :class:`InvalidSignatureError` otherwise.

    Steps follow libsignal: take the sign bit from ``sig[63]``; map u (bit 255 masked,
    reduced mod p, as curve25519-dalek does) to Edwards y; reject s >= 2^253; reduce s mod L
    (libsignal accepts s + L, OpenSSL would not); then an ordinary Ed25519 verification.
    """
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_LENGTH:
        raise InvalidSignatureError(f"signature must be {SIGNATURE_LENGTH} bytes")
    sign_bit = signature[63] >> 7
    u = int.from_bytes(public.u, "little") & ((1 << 255) - 1)
    y = montgomery_to_edwards_y(u)
    if y is None:
        raise InvalidSignatureError("public key u = -1 has no Edwards form")
    s = int.from_bytes(signature[32:64], "little") & ((1 << 255) - 1)
    if s >> 253:
        raise InvalidSignatureError("signature scalar s >= 2^253")
    s %= L
    ed_pub = (y | (sign_bit << 255)).to_bytes(32, "little")
    try:
        key = Ed25519PublicKey.from_public_bytes(ed_pub)
        key.verify(bytes(signature[:32]) + s.to_bytes(32, "little"), message)
    except (InvalidSignature, ValueError) as exc:
        raise InvalidSignatureError("XEdDSA signature does not verify") from exc

