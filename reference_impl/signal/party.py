"""A convenience facade: one Signal party (store + rng) with the calls tests and simulators make.

It adds no protocol logic; everything delegates to ``session`` and ``sender_keys``.
"""
from __future__ import annotations

from . import sender_keys, session
from .rng import Rng, system_rng
from .session import CiphertextMessage
from .store import ProtocolStore
from .x3dh import PreKeyBundle

__all__ = ["Party"]


class Party:
    def __init__(self, name: str, store: ProtocolStore | None = None, *,
                 registration_id: int | None = None, rng: Rng = system_rng) -> None:
        self.name = name
        self.rng = rng
        self.store = store or ProtocolStore.generate(registration_id, rng)
        self._next_pre_key = max(self.store.pre_keys, default=0) + 1

    @property
    def identity_key(self):
        return self.store.identity.public

    def bundle(self, signed_pre_key_id: int = 1, with_one_time: bool = True) -> PreKeyBundle:
        spk = self.store.signed_pre_keys.get(signed_pre_key_id)
        if spk is None:
            spk = self.store.generate_signed_pre_key(signed_pre_key_id, self.rng)
        opk_id = opk = None
        if with_one_time:
            (opk_id, opk), = self.store.generate_pre_keys(self._next_pre_key, 1, self.rng)
            self._next_pre_key += 1
        return PreKeyBundle(self.store.registration_id, self.identity_key, spk.key_id,
                            spk.key_pair.public, spk.signature, opk_id, opk)

    def process_bundle(self, address: str, bundle: PreKeyBundle) -> None:
        session.process_prekey_bundle(self.store, address, bundle, self.rng)

    def encrypt(self, address: str, plaintext: bytes) -> CiphertextMessage:
        return session.encrypt(self.store, address, plaintext)

    def decrypt(self, address: str, msg_type: str, body: bytes) -> bytes:
        return session.decrypt(self.store, address, msg_type, body, self.rng)

    def group_distribution(self, group: str) -> bytes:
        return sender_keys.create_distribution(self.store, group, self.name, self.rng).serialize()

    def process_group_distribution(self, group: str, sender: str, skdm: bytes) -> None:
        sender_keys.process_distribution(self.store, group, sender, skdm)

    def group_encrypt(self, group: str, plaintext: bytes) -> bytes:
        return sender_keys.group_encrypt(self.store, group, self.name, plaintext, self.rng)

    def group_decrypt(self, group: str, sender: str, body: bytes) -> bytes:
        return sender_keys.group_decrypt(self.store, group, sender, body)
