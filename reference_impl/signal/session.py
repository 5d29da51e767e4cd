"""Pairwise sessions on top of a :class:`ProtocolStore`: build from a bundle, encrypt, decrypt.

The functions take the store and an ``rng`` and return bytes; they never do I/O. Every
decryption works on clones of the stored states and commits only after the MAC and the
padding of AES-CBC check out, so hostile input leaves the store untouched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import (
    DuplicateMessageError,
    InvalidMessageError,
    InvalidPreKeyError,
    NoSessionError,
    SignalError,
    UntrustedIdentityError,
)
from .keys import KeyPair
from .ratchet import MAX_FORWARD_JUMPS, PendingPreKey, SessionState
from .rng import Rng, system_rng
from .store import ProtocolStore, SessionRecord
from .wire import PreKeySignalMessage, SignalMessage
from .x3dh import PreKeyBundle, alice_agree, bob_agree, verify_bundle

__all__ = [
    "CiphertextMessage",
    "process_prekey_bundle",
    "encrypt",
    "decrypt",
    "decrypt_signal_message",
    "decrypt_prekey_message",
    "has_session",
]

MessageType = Literal["pkmsg", "msg"]


@dataclass(frozen=True, slots=True)
class CiphertextMessage:
    """``pkmsg`` (PreKeySignalMessage: type 3 everywhere) or ``msg`` (SignalMessage: type 2
    in libsignal/python-axolotl, 1 in npm ``libsignal``; WhatsApp calls them pkmsg/msg)."""

    type: MessageType
    body: bytes


def has_session(store: ProtocolStore, address: str) -> bool:
    rec = store.sessions.get(address)
    return rec is not None and rec.current is not None


def process_prekey_bundle(store: ProtocolStore, address: str, bundle: PreKeyBundle,
                          rng: Rng = system_rng) -> None:
    """Start a session as initiator. Checks the identity is trusted and the signed pre-key
    signature verifies (:class:`InvalidSignatureError`) before anything is stored."""
    if not store.is_trusted(address, bundle.identity_key):
        raise UntrustedIdentityError(address, bundle.identity_key.serialize())
    verify_bundle(bundle)
    base = KeyPair.generate(rng)
    root, chain = alice_agree(store.identity, base, bundle.identity_key, bundle.signed_pre_key,
                              bundle.pre_key)
    state = SessionState.initialize_alice(
        root_key=root,
        chain_key=chain,
        local_identity=store.identity.public,
        remote_identity=bundle.identity_key,
        their_ratchet_key=bundle.signed_pre_key,
        sending_ratchet=KeyPair.generate(rng),
    )
    state.pending_pre_key = PendingPreKey(bundle.pre_key_id if bundle.pre_key else None,
                                          bundle.signed_pre_key_id, base.public)
    state.local_registration_id = store.registration_id
    state.remote_registration_id = bundle.registration_id
    state.base_key = base.public
    store.sessions.setdefault(address, SessionRecord()).promote(state)
    store.trust_identity(address, bundle.identity_key)


def encrypt(store: ProtocolStore, address: str, plaintext: bytes) -> CiphertextMessage:
    rec = store.sessions.get(address)
    if rec is None or rec.current is None:
        raise NoSessionError(f"no session with {address!r}")
    state = rec.current
    message = state.encrypt(plaintext)
    p = state.pending_pre_key
    if p is None:
        return CiphertextMessage("msg", message.serialize())
    pkm = PreKeySignalMessage.build(
        registration_id=store.registration_id,
        pre_key_id=p.pre_key_id,
        signed_pre_key_id=p.signed_pre_key_id,
        base_key=p.base_key,
        identity_key=store.identity.public,
        message=message,
    )
    return CiphertextMessage("pkmsg", pkm.serialize())


def _decrypt_with_record(rec: SessionRecord, message: SignalMessage, rng: Rng,
                         max_forward_jumps: int = MAX_FORWARD_JUMPS) -> bytes:
    """Try the current state, then the archived ones (newest first); keep the one that works."""
    errors: list[SignalError] = []
    for i, state in enumerate(rec.states()):
        trial = state.clone()
        try:
            plaintext = trial.decrypt(message, rng, max_forward_jumps)
        except DuplicateMessageError:
            raise
        except SignalError as exc:
            errors.append(exc)
            continue
        if i == 0 and rec.current is not None:
            rec.current = trial
        else:
            del rec.previous[i - (1 if rec.current is not None else 0)]
            rec.promote(trial)
        return plaintext
    if not errors:
        raise NoSessionError("no session state to decrypt with")
    # Report the current state's reason: it is the one an engineer should look at.
    raise errors[0]


def decrypt_signal_message(store: ProtocolStore, address: str, data: bytes,
                           rng: Rng = system_rng, *,
                           max_forward_jumps: int = MAX_FORWARD_JUMPS) -> bytes:
    message = SignalMessage.parse(data)
    rec = store.sessions.get(address)
    if rec is None or not rec.states():
        raise NoSessionError(f"SignalMessage from {address!r} but no session exists")
    return _decrypt_with_record(rec, message, rng, max_forward_jumps)


def decrypt_prekey_message(store: ProtocolStore, address: str, data: bytes,
                           rng: Rng = system_rng, *,
                           expected_registration_id: int | None = None,
                           max_forward_jumps: int = MAX_FORWARD_JUMPS) -> bytes:
    """Responder side. A repeated PreKey message (same base key) reuses its session; a new
    base key from a known peer archives the old session. The one-time pre-key is removed
    only after the inner message decrypted.

    ``registration_id`` (and, for a repeated message, ``signed_pre_key_id``) is covered by no
    MAC in v3 (libsignal alike). A caller that knows the sender's registration id from a
    directory (the gatekeeper knows the enlisted ``e_regid``) passes it as
    ``expected_registration_id`` so that a tampered value is rejected too.
    """
    pkm = PreKeySignalMessage.parse(data)
    if expected_registration_id is not None and pkm.registration_id != expected_registration_id:
        raise InvalidMessageError(
            f"PreKeySignalMessage registration_id {pkm.registration_id} differs from the "
            f"directory's {expected_registration_id}"
        )
    if not store.is_trusted(address, pkm.identity_key):
        raise UntrustedIdentityError(address, pkm.identity_key.serialize())
    rec = store.sessions.get(address)
    if rec is not None:
        for state in rec.states():
            if state.base_key == pkm.base_key and state.remote_identity == pkm.identity_key:
                return _decrypt_with_record(rec, pkm.message, rng, max_forward_jumps)

    spk = store.signed_pre_keys.get(pkm.signed_pre_key_id)
    if spk is None:
        raise InvalidPreKeyError(f"unknown signed pre-key id {pkm.signed_pre_key_id}")
    opk = None
    if pkm.pre_key_id is not None:
        opk = store.pre_keys.get(pkm.pre_key_id)
        if opk is None:
            raise InvalidPreKeyError(
                f"one-time pre-key {pkm.pre_key_id} is unknown or was already used"
            )
    root, chain = bob_agree(store.identity, spk.key_pair, opk, pkm.identity_key, pkm.base_key)
    state = SessionState.initialize_bob(
        root_key=root,
        chain_key=chain,
        local_identity=store.identity.public,
        remote_identity=pkm.identity_key,
        our_ratchet=spk.key_pair,
    )
    state.local_registration_id = store.registration_id
    state.remote_registration_id = pkm.registration_id
    state.base_key = pkm.base_key
    plaintext = state.decrypt(pkm.message, rng, max_forward_jumps)  # fresh state: nothing to roll back
    store.sessions.setdefault(address, SessionRecord()).promote(state)
    if pkm.pre_key_id is not None:
        del store.pre_keys[pkm.pre_key_id]
    store.trust_identity(address, pkm.identity_key)
    return plaintext


def decrypt(store: ProtocolStore, address: str, msg_type: str, data: bytes,
            rng: Rng = system_rng, *, max_forward_jumps: int = MAX_FORWARD_JUMPS) -> bytes:
    """``max_forward_jumps``: how far ahead a counter may jump (libsignal: 25 000; the interop
    profile: 2000, E2E-005)."""
    if msg_type == "pkmsg":
        return decrypt_prekey_message(store, address, data, rng, max_forward_jumps=max_forward_jumps)
    if msg_type == "msg":
        return decrypt_signal_message(store, address, data, rng, max_forward_jumps=max_forward_jumps)
    raise InvalidMessageError(f"unknown message type {msg_type!r}; expected 'pkmsg' or 'msg'")
