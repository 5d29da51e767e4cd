"""The client's end-to-end layer: Signal sessions plus content padding, with the faults that
alter Signal wire behaviour applied *around* ``reference_impl.signal`` (never inside it).

- :func:`encrypt` is ``session.encrypt`` unless a wire fault is on; then it rebuilds the same
  message from the ratchet helpers with a 0x34 version byte or swapped MAC identities.
- :func:`process_bundle` is ``session.process_prekey_bundle``; with the fault
  ``no_bundle_signature_check`` it skips the signature check.
- :func:`group_decrypt` is ``sender_keys.group_decrypt``; with the fault
  ``group_no_signature_check`` it decrypts a sender-key message without verifying its signature.
"""
from __future__ import annotations

from reference_impl.signal import padding, sender_keys, session, xeddsa
from reference_impl.signal.crypto import aes_cbc_encrypt
from reference_impl.signal.errors import InvalidPaddingError, NoSessionError, UntrustedIdentityError
from reference_impl.signal.keys import KeyPair
from reference_impl.signal.proto import whisper_pb2 as wpb
from reference_impl.signal.ratchet import (
    PendingPreKey,
    SessionState,
    compute_mac,
    derive_message_keys,
    next_chain_key,
)
from reference_impl.signal.rng import Rng, system_rng
from reference_impl.signal.session import CiphertextMessage
from reference_impl.signal.store import ProtocolStore, SessionRecord
from reference_impl.signal.wire import SenderKeyMessage
from reference_impl.signal.x3dh import PreKeyBundle, alice_agree

from .faults import Faults

__all__ = ["encrypt", "process_bundle", "group_decrypt", "pad", "unpad"]


def pad(data: bytes, faults: Faults, rng: Rng = system_rng) -> bytes:
    if faults.on("no_padding"):
        return data
    return padding.pad(data, rng)


def unpad(data: bytes, faults: Faults) -> bytes:
    if faults.on("lenient_unpadding") and data and (data[-1] == 0 or data[-1] > padding.MAX_PAD):
        return data  # the bug: "no valid padding byte, so there is no padding"
    return padding.unpad(data)


def process_bundle(store: ProtocolStore, address: str, bundle: PreKeyBundle, faults: Faults,
                   rng: Rng = system_rng) -> None:
    if not faults.on("no_bundle_signature_check"):
        session.process_prekey_bundle(store, address, bundle, rng)
        return
    # session.process_prekey_bundle minus verify_bundle: the bug this fault names.
    if not store.is_trusted(address, bundle.identity_key):
        raise UntrustedIdentityError(address, bundle.identity_key.serialize())
    base = KeyPair.generate(rng)
    root, chain = alice_agree(store.identity, base, bundle.identity_key, bundle.signed_pre_key,
                              bundle.pre_key)
    state = SessionState.initialize_alice(
        root_key=root, chain_key=chain, local_identity=store.identity.public,
        remote_identity=bundle.identity_key, their_ratchet_key=bundle.signed_pre_key,
        sending_ratchet=KeyPair.generate(rng))
    state.pending_pre_key = PendingPreKey(bundle.pre_key_id if bundle.pre_key else None,
                                          bundle.signed_pre_key_id, base.public)
    state.local_registration_id = store.registration_id
    state.remote_registration_id = bundle.registration_id
    state.base_key = base.public
    store.sessions.setdefault(address, SessionRecord()).promote(state)
    store.trust_identity(address, bundle.identity_key)


def group_decrypt(store: ProtocolStore, group: str, sender: str, data: bytes, faults: Faults, *,
                  max_forward_jumps: int) -> bytes:
    if not faults.on("group_no_signature_check"):
        return sender_keys.group_decrypt(store, group, sender, data,
                                         max_forward_jumps=max_forward_jumps)
    # sender_keys.group_decrypt minus the signature check, the bug this fault names: the
    # message is re-signed with a throwaway key that the sender's state trusts for this call.
    msg = SenderKeyMessage.parse(data)
    rec = store.sender_keys.get((group, sender))
    state = rec.find(msg.key_id) if isinstance(rec, sender_keys.SenderKeyRecord) else None
    if state is None:
        raise NoSessionError(f"no sender key {msg.key_id} from {sender!r} in group {group!r}")
    throwaway = KeyPair.generate()
    signing_public, state.signing_public = state.signing_public, throwaway.public
    try:
        return sender_keys.group_decrypt(store, group, sender,
                                         msg.body + xeddsa.sign(throwaway.private, msg.body),
                                         max_forward_jumps=max_forward_jumps)
    finally:
        state.signing_public = signing_public


def encrypt(store: ProtocolStore, address: str, plaintext: bytes, faults: Faults) -> CiphertextMessage:
    v34 = faults.on("version_byte_0x34")
    swap = faults.on("mac_identity_order_swapped")
    if not (v34 or swap):
        return session.encrypt(store, address, plaintext)
    rec = store.sessions.get(address)
    if rec is None or rec.current is None:
        raise NoSessionError(f"no session with {address!r}")
    state = rec.current
    chain = state.sender_chain
    version = 0x34 if v34 else 0x33
    mk = derive_message_keys(chain.key, chain.index)
    ciphertext = aes_cbc_encrypt(mk.cipher_key, mk.iv, plaintext)
    body = bytes([version]) + wpb.SignalMessage(
        ratchet_key=chain.ratchet_key.serialize(), counter=chain.index,
        previous_counter=state.previous_counter, ciphertext=ciphertext).SerializeToString()
    sender, receiver = state.local_identity, state.remote_identity
    if swap:
        sender, receiver = receiver, sender
    message = body + compute_mac(mk.mac_key, sender, receiver, body)
    chain.key = next_chain_key(chain.key)
    chain.index += 1
    p = state.pending_pre_key
    if p is None:
        return CiphertextMessage("msg", message)
    pkm = wpb.PreKeySignalMessage(
        registration_id=store.registration_id, signed_pre_key_id=p.signed_pre_key_id,
        base_key=p.base_key.serialize(), identity_key=store.identity.public.serialize(),
        message=message)
    if p.pre_key_id is not None:
        pkm.pre_key_id = p.pre_key_id
    return CiphertextMessage("pkmsg", bytes([version]) + pkm.SerializeToString(deterministic=True))


# Re-exported for the client's error handling.
InvalidPadding = InvalidPaddingError
