"""Everything a Signal party keeps between messages, in one serialisable object.

A plain in-memory store (no I/O): the reference provider persists it with
:meth:`ProtocolStore.to_json` into SQLite, so a client survives a restart without losing
sessions. Addresses are opaque strings chosen by the caller (e.g. ``"alice.1"``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import xeddsa
from .keys import KeyPair, PrivateKey, PublicKey
from .ratchet import SessionState
from .rng import Rng, system_rng
from .sender_key_record import SenderKeyRecord

__all__ = ["MAX_ARCHIVED_SESSIONS", "SignedPreKeyRecord", "SessionRecord", "ProtocolStore"]

MAX_ARCHIVED_SESSIONS = 40


def _kp_to(kp: KeyPair) -> str:
    return kp.private.serialize().hex()


def _kp_from(h: str) -> KeyPair:
    return KeyPair.from_private(PrivateKey(bytes.fromhex(h)))


@dataclass(frozen=True, slots=True)
class SignedPreKeyRecord:
    key_id: int
    key_pair: KeyPair
    signature: bytes
    #: Caller-supplied creation time (seconds); the core never reads a clock.
    timestamp: int = 0


@dataclass(slots=True)
class SessionRecord:
    """The current session with a peer and up to 40 archived ones (newest first)."""

    current: SessionState | None = None
    previous: list[SessionState] = field(default_factory=list)

    def states(self) -> list[SessionState]:
        return ([self.current] if self.current else []) + self.previous

    def promote(self, state: SessionState) -> None:
        """Make ``state`` current, archiving the old current one."""
        if self.current is not None:
            self.previous.insert(0, self.current)
            del self.previous[MAX_ARCHIVED_SESSIONS:]
        self.current = state

    def to_dict(self) -> dict:
        return {
            "current": self.current.to_dict() if self.current else None,
            "previous": [s.to_dict() for s in self.previous],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "SessionRecord":
        return cls(
            SessionState.from_dict(d["current"]) if d["current"] else None,
            [SessionState.from_dict(s) for s in d["previous"]],
        )


@dataclass(slots=True)
class ProtocolStore:
    identity: KeyPair
    registration_id: int
    pre_keys: dict[int, KeyPair] = field(default_factory=dict)
    signed_pre_keys: dict[int, SignedPreKeyRecord] = field(default_factory=dict)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    #: Identity keys of peers as last trusted (trust on first use; changes need the caller).
    identities: dict[str, PublicKey] = field(default_factory=dict)
    #: Sender-key records keyed by ``(group_id, sender_address)``; see ``sender_keys``.
    sender_keys: dict[tuple[str, str], "object"] = field(default_factory=dict)

    @classmethod
    def generate(cls, registration_id: int | None = None, rng: Rng = system_rng) -> "ProtocolStore":
        if registration_id is None:
            registration_id = int.from_bytes(rng(2), "big") & 0x3FFF or 1
        return cls(KeyPair.generate(rng), registration_id)

    # -- pre-keys -------------------------------------------------------------------------
    def generate_pre_keys(self, start: int, count: int, rng: Rng = system_rng) -> list[tuple[int, PublicKey]]:
        """One-time pre-keys ``start .. start+count-1``; id 0 is never used (see PreKeyBundle)."""
        if start < 1:
            raise ValueError("one-time pre-key ids start at 1")
        out = []
        for key_id in range(start, start + count):
            kp = KeyPair.generate(rng)
            self.pre_keys[key_id] = kp
            out.append((key_id, kp.public))
        return out

    def generate_signed_pre_key(self, key_id: int, rng: Rng = system_rng, timestamp: int = 0) -> SignedPreKeyRecord:
        kp = KeyPair.generate(rng)
        sig = xeddsa.sign(self.identity.private, kp.public.serialize(), rng)
        rec = SignedPreKeyRecord(key_id, kp, sig, timestamp)
        self.signed_pre_keys[key_id] = rec
        return rec

    # -- identities -----------------------------------------------------------------------
    def is_trusted(self, address: str, key: PublicKey) -> bool:
        known = self.identities.get(address)
        return known is None or known == key

    def trust_identity(self, address: str, key: PublicKey) -> bool:
        """Record ``key`` as the peer's identity; returns True if it replaced a different one."""
        old = self.identities.get(address)
        self.identities[address] = key
        return old is not None and old != key

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": 1,
            "identity": _kp_to(self.identity),
            "registration_id": self.registration_id,
            "pre_keys": {str(k): _kp_to(v) for k, v in self.pre_keys.items()},
            "signed_pre_keys": {
                str(k): {"key": _kp_to(v.key_pair), "signature": v.signature.hex(),
                         "timestamp": v.timestamp}
                for k, v in self.signed_pre_keys.items()
            },
            "sessions": {a: r.to_dict() for a, r in self.sessions.items()},
            "identities": {a: k.serialize().hex() for a, k in self.identities.items()},
            "sender_keys": [
                [g, s, r.to_dict()] for (g, s), r in self.sender_keys.items()
                if isinstance(r, SenderKeyRecord)
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ProtocolStore":
        if d.get("format") != 1:
            raise ValueError(f"unsupported store format {d.get('format')!r}")
        return cls(
            identity=_kp_from(d["identity"]),
            registration_id=d["registration_id"],
            pre_keys={int(k): _kp_from(v) for k, v in d["pre_keys"].items()},
            signed_pre_keys={
                int(k): SignedPreKeyRecord(int(k), _kp_from(v["key"]), bytes.fromhex(v["signature"]),
                                           v["timestamp"])
                for k, v in d["signed_pre_keys"].items()
            },
            sessions={a: SessionRecord.from_dict(r) for a, r in d["sessions"].items()},
            identities={a: PublicKey.from_bytes(bytes.fromhex(k)) for a, k in d["identities"].items()},
            sender_keys={(g, s): SenderKeyRecord.from_dict(r) for g, s, r in d["sender_keys"]},
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ProtocolStore":
        return cls.from_dict(json.loads(text))
