"""Sender-key state records: one per (group, sender), the newest few chain states.

Kept apart from :mod:`.sender_keys` (the group cipher) so that :mod:`.store` can persist them
without importing the cipher, and the cipher can use the store: the arrow runs one way.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .keys import PrivateKey, PublicKey

__all__ = ["MAX_SENDER_KEY_STATES", "SenderKeyState", "SenderKeyRecord"]

MAX_SENDER_KEY_STATES = 5


@dataclass(slots=True)
class SenderKeyState:
    key_id: int
    iteration: int
    chain_key: bytes
    signing_public: PublicKey
    signing_private: PrivateKey | None = None
    #: iteration -> chain key at that iteration (keys derived on use), oldest first.
    skipped: "OrderedDict[int, bytes]" = field(default_factory=OrderedDict)

    def to_dict(self) -> dict:
        return {
            "id": self.key_id,
            "iteration": self.iteration,
            "chain_key": self.chain_key.hex(),
            "signing_public": self.signing_public.serialize().hex(),
            "signing_private": self.signing_private.serialize().hex() if self.signing_private else None,
            "skipped": [[i, k.hex()] for i, k in self.skipped.items()],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "SenderKeyState":
        return cls(
            d["id"], d["iteration"], bytes.fromhex(d["chain_key"]),
            PublicKey.from_bytes(bytes.fromhex(d["signing_public"])),
            PrivateKey(bytes.fromhex(d["signing_private"])) if d["signing_private"] else None,
            OrderedDict((i, bytes.fromhex(k)) for i, k in d["skipped"]),
        )


@dataclass(slots=True)
class SenderKeyRecord:
    states: list[SenderKeyState] = field(default_factory=list)  # newest first

    def find(self, key_id: int) -> SenderKeyState | None:
        return next((s for s in self.states if s.key_id == key_id), None)

    def add(self, state: SenderKeyState) -> None:
        self.states = [s for s in self.states if s.key_id != state.key_id]
        self.states.insert(0, state)
        del self.states[MAX_SENDER_KEY_STATES:]

    def to_dict(self) -> dict:
        return {"states": [s.to_dict() for s in self.states]}

    @classmethod
    def from_dict(cls, d: dict) -> "SenderKeyRecord":
        return cls([SenderKeyState.from_dict(s) for s in d["states"]])
