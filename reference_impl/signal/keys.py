"""Curve25519 keys as Signal serialises them.

Public keys travel as ``0x05 || u`` (33 bytes; 0x05 = ``KeyType::Djb``). Private keys are
32 bytes, always clamped, because libsignal clamps on generation and on deserialisation
and the XEdDSA nonce hashes the clamped bytes (research §1, §6).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .errors import InvalidKeyAgreementError, InvalidKeyError
from .rng import Rng, system_rng

__all__ = ["DJB_TYPE", "PublicKey", "PrivateKey", "KeyPair", "clamp"]

DJB_TYPE = 0x05
_P = 2**255 - 19


def clamp(k: bytes) -> bytes:
    b = bytearray(k)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return bytes(b)


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A Curve25519 public key: the 32-byte little-endian u-coordinate."""

    u: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.u, (bytes, bytearray)) or len(self.u) != 32:
            raise InvalidKeyError("Curve25519 public key must be 32 bytes")

    @classmethod
    def from_bytes(cls, data: bytes) -> "PublicKey":
        """Parse the 33-byte ``0x05 || u`` form.

        Unlike libsignal (which logs and drops trailing bytes) we reject any length but 33:
        a conformance reference should not be more lenient than the profile text.
        """
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidKeyError("public key must be bytes")
        if len(data) == 0:
            raise InvalidKeyError("empty public key")
        if data[0] != DJB_TYPE:
            raise InvalidKeyError(f"bad key type byte 0x{data[0]:02x}, expected 0x05")
        if len(data) != 33:
            raise InvalidKeyError(f"public key is {len(data)} bytes, expected 33")
        u = int.from_bytes(data[1:], "little")
        if u >= _P:
            # libsignal rejects a non-canonical base key (u >= p or bit 255 set,
            # ``curve.rs`` ``is_canonical``); X25519 would silently ignore the difference,
            # so accepting it would let an attacker change key bytes without changing any DH.
            raise InvalidKeyError("public key is not canonical (u >= 2^255 - 19 or bit 255 set)")
        return cls(bytes(data[1:]))

    def serialize(self) -> bytes:
        return bytes([DJB_TYPE]) + self.u

    def __repr__(self) -> str:
        return f"PublicKey({self.u.hex()[:16]}…)"


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A clamped Curve25519 private scalar (32 bytes)."""

    k: bytes
    #: The backend key object, built once: constructing it costs as much as an agreement.
    _x: X25519PrivateKey | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.k, (bytes, bytearray)) or len(self.k) != 32:
            raise InvalidKeyError("Curve25519 private key must be 32 bytes")
        k = clamp(bytes(self.k))
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "_x", X25519PrivateKey.from_private_bytes(k))

    @classmethod
    def generate(cls, rng: Rng = system_rng) -> "PrivateKey":
        return cls(rng(32))

    def serialize(self) -> bytes:
        return self.k

    def public_key(self) -> PublicKey:
        assert self._x is not None
        return PublicKey(self._x.public_key().public_bytes_raw())

    def agree(self, their: PublicKey) -> bytes:
        """Raw X25519; the all-zero result (a low-order peer key) is rejected."""
        assert self._x is not None
        try:
            shared = self._x.exchange(X25519PublicKey.from_public_bytes(their.u))
        except ValueError as exc:
            raise InvalidKeyAgreementError("X25519 agreement gave the all-zero secret") from exc
        if shared == bytes(32):  # belt and braces: older backends returned zeros
            raise InvalidKeyAgreementError("X25519 agreement gave the all-zero secret")
        return shared

    def __repr__(self) -> str:
        return "PrivateKey(<redacted>)"


@dataclass(frozen=True, slots=True)
class KeyPair:
    private: PrivateKey
    public: PublicKey

    @classmethod
    def generate(cls, rng: Rng = system_rng) -> "KeyPair":
        return cls.from_private(PrivateKey.generate(rng))

    @classmethod
    def from_private(cls, private: PrivateKey | bytes) -> "KeyPair":
        if not isinstance(private, PrivateKey):
            private = PrivateKey(private)
        return cls(private, private.public_key())
