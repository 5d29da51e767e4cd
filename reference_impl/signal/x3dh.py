"""X3DH key agreement (protocol version 3), both roles.

``IKM = 0xFF*32 || DH(IK_A, SPK_B) || DH(EK_A, IK_B) || DH(EK_A, SPK_B) [|| DH(EK_A, OPK_B)]``,
``RK || CK = HKDF(salt=none, IKM, info="WhisperText", 64)`` (research §3.1). The 32 0xFF
"discontinuity bytes" keep the IKM from ever colliding with an XEdDSA input.

Version 4 (PQXDH) would append the Kyber shared secret to the IKM, use the
"WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024" label and take 96 bytes; ``X3DH_INFO`` and
``PreKeyBundle`` are keyed/shaped so that is an addition.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import xeddsa
from .crypto import hkdf_sha256
from .keys import KeyPair, PublicKey

__all__ = ["PreKeyBundle", "X3DH_INFO", "DISCONTINUITY", "alice_agree", "bob_agree", "verify_bundle"]

X3DH_INFO: dict[int, bytes] = {3: b"WhisperText"}
DISCONTINUITY = b"\xff" * 32


@dataclass(frozen=True, slots=True)
class PreKeyBundle:
    """What a key directory hands an initiator. ``pre_key`` is absent when the responder ran
    out of one-time pre-keys. Never publish a one-time pre-key with id 0: npm ``libsignal``
    drops id 0 from the PreKey message but still mixes the key in (research §12 item 3)."""

    registration_id: int
    identity_key: PublicKey
    signed_pre_key_id: int
    signed_pre_key: PublicKey
    signed_pre_key_signature: bytes
    pre_key_id: int | None = None
    pre_key: PublicKey | None = None
    device_id: int = 1

    def to_dict(self) -> dict[str, object]:
        return {
            "registration_id": self.registration_id,
            "device_id": self.device_id,
            "identity_key": self.identity_key.serialize().hex(),
            "signed_pre_key_id": self.signed_pre_key_id,
            "signed_pre_key": self.signed_pre_key.serialize().hex(),
            "signed_pre_key_signature": self.signed_pre_key_signature.hex(),
            "pre_key_id": self.pre_key_id,
            "pre_key": self.pre_key.serialize().hex() if self.pre_key else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PreKeyBundle":
        return cls(
            registration_id=int(d["registration_id"]),
            device_id=int(d.get("device_id", 1)),
            identity_key=PublicKey.from_bytes(bytes.fromhex(d["identity_key"])),
            signed_pre_key_id=int(d["signed_pre_key_id"]),
            signed_pre_key=PublicKey.from_bytes(bytes.fromhex(d["signed_pre_key"])),
            signed_pre_key_signature=bytes.fromhex(d["signed_pre_key_signature"]),
            pre_key_id=d.get("pre_key_id"),
            pre_key=PublicKey.from_bytes(bytes.fromhex(d["pre_key"])) if d.get("pre_key") else None,
        )


def verify_bundle(bundle: PreKeyBundle) -> None:
    """The signed pre-key signature is XEdDSA by the identity key over the 33-byte serialised
    signed pre-key. Raises :class:`InvalidSignatureError`."""
    xeddsa.verify(bundle.identity_key, bundle.signed_pre_key.serialize(),
                  bundle.signed_pre_key_signature)


def _derive(ikm: bytes, version: int) -> tuple[bytes, bytes]:
    okm = hkdf_sha256(ikm, X3DH_INFO[version], 64)
    return okm[:32], okm[32:64]


def alice_agree(
    our_identity: KeyPair,
    our_base: KeyPair,
    their_identity: PublicKey,
    their_signed_pre_key: PublicKey,
    their_one_time_pre_key: PublicKey | None,
    version: int = 3,
) -> tuple[bytes, bytes]:
    """Initiator side; returns ``(root_key, chain_key)``."""
    ikm = (
        DISCONTINUITY
        + our_identity.private.agree(their_signed_pre_key)
        + our_base.private.agree(their_identity)
        + our_base.private.agree(their_signed_pre_key)
    )
    if their_one_time_pre_key is not None:
        ikm += our_base.private.agree(their_one_time_pre_key)
    return _derive(ikm, version)


def bob_agree(
    our_identity: KeyPair,
    our_signed_pre_key: KeyPair,
    our_one_time_pre_key: KeyPair | None,
    their_identity: PublicKey,
    their_base: PublicKey,
    version: int = 3,
) -> tuple[bytes, bytes]:
    """Responder side: the same four DHs from the other end, in the same order."""
    ikm = (
        DISCONTINUITY
        + our_signed_pre_key.private.agree(their_identity)
        + our_identity.private.agree(their_base)
        + our_signed_pre_key.private.agree(their_base)
    )
    if our_one_time_pre_key is not None:
        ikm += our_one_time_pre_key.private.agree(their_base)
    return _derive(ikm, version)
