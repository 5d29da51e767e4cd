"""Sans-IO Signal Protocol v3, WhatsApp-compatible: keys, XEdDSA, X3DH, Double Ratchet,
sender keys and byte-exact wire codecs.

No sockets, no clock reads; every function that needs randomness takes an ``rng``.
"""
from __future__ import annotations

from .errors import *  # noqa: F401,F403
from .keys import KeyPair, PrivateKey, PublicKey
from .rng import DeterministicRng, Rng, system_rng
from .session import CiphertextMessage, decrypt, encrypt, has_session, process_prekey_bundle
from .store import ProtocolStore
from .x3dh import PreKeyBundle
from .party import Party

__all__ = [
    "KeyPair", "PrivateKey", "PublicKey", "DeterministicRng", "Rng", "system_rng",
    "CiphertextMessage", "decrypt", "encrypt", "has_session", "process_prekey_bundle",
    "ProtocolStore", "PreKeyBundle", "Party",
]
