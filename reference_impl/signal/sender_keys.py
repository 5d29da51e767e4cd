"""Group messaging with sender keys, in the WhatsApp-style (legacy) layout.

Each sender has a chain per group: message seed ``HMAC(CK, 0x01)``, next ``HMAC(CK, 0x02)``;
``HKDF(salt=none, seed, "WhisperGroup", 48)`` → **iv = [0:16], cipher_key = [16:48]** (the
reverse of the 1:1 split). Messages are ``0x33 || pb{id, iteration, ciphertext} || sig[64]``,
XEdDSA-signed by the sender's signing key; the signature is checked before any key is
derived (research §7). Distribution messages go to each member over pairwise sessions.
"""
from __future__ import annotations

from . import xeddsa
from .crypto import aes_cbc_decrypt, aes_cbc_encrypt, hkdf_sha256, hmac_sha256
from .errors import DuplicateMessageError, NoSessionError, TooManySkippedKeysError
from .keys import KeyPair
from .rng import Rng, system_rng
from .sender_key_record import MAX_SENDER_KEY_STATES, SenderKeyRecord, SenderKeyState
from .store import ProtocolStore
from .wire import SenderKeyDistributionMessage, SenderKeyMessage

__all__ = [
    "MAX_SENDER_KEY_STATES",
    "MAX_GROUP_FORWARD_JUMPS",
    "MAX_GROUP_MESSAGE_KEYS",
    "SenderKeyState",
    "SenderKeyRecord",
    "create_distribution",
    "process_distribution",
    "group_encrypt",
    "group_decrypt",
    "group_message_keys",
]

MAX_GROUP_FORWARD_JUMPS = 25_000
MAX_GROUP_MESSAGE_KEYS = 2_000
_INFO = b"WhisperGroup"


def group_message_keys(chain_key: bytes) -> tuple[bytes, bytes]:
    """Return ``(iv, cipher_key)`` for the chain key's current iteration."""
    okm = hkdf_sha256(hmac_sha256(chain_key, b"\x01"), _INFO, 48)
    return okm[:16], okm[16:48]


def _next(chain_key: bytes) -> bytes:
    return hmac_sha256(chain_key, b"\x02")


def _record(store: ProtocolStore, group: str, sender: str) -> SenderKeyRecord:
    rec = store.sender_keys.get((group, sender))
    if not isinstance(rec, SenderKeyRecord):
        rec = SenderKeyRecord()
        store.sender_keys[(group, sender)] = rec
    return rec


def create_distribution(store: ProtocolStore, group: str, own_address: str,
                        rng: Rng = system_rng) -> SenderKeyDistributionMessage:
    """Our own sending chain for ``group`` (created on first use) as a distribution message.
    The id is 31 bits (random u32 >> 1, for Java compatibility)."""
    rec = _record(store, group, own_address)
    state = rec.states[0] if rec.states else None
    if state is None or state.signing_private is None:
        signing = KeyPair.generate(rng)
        state = SenderKeyState(int.from_bytes(rng(4), "big") >> 1, 0, rng(32), signing.public,
                               signing.private)
        rec.add(state)
    return SenderKeyDistributionMessage(state.key_id, state.iteration, state.chain_key,
                                        state.signing_public)


def process_distribution(store: ProtocolStore, group: str, sender: str, data: bytes) -> None:
    skdm = SenderKeyDistributionMessage.parse(data)
    _record(store, group, sender).add(
        SenderKeyState(skdm.key_id, skdm.iteration, skdm.chain_key, skdm.signing_key)
    )


def group_encrypt(store: ProtocolStore, group: str, own_address: str, plaintext: bytes,
                  rng: Rng = system_rng) -> bytes:
    rec = store.sender_keys.get((group, own_address))
    if not isinstance(rec, SenderKeyRecord) or not rec.states or rec.states[0].signing_private is None:
        raise NoSessionError(f"no sending chain for group {group!r}; create a distribution first")
    state = rec.states[0]
    iv, key = group_message_keys(state.chain_key)
    body = SenderKeyMessage.encode_body(state.key_id, state.iteration,
                                        aes_cbc_encrypt(key, iv, plaintext))
    assert state.signing_private is not None
    sig = xeddsa.sign(state.signing_private, body, rng)
    state.chain_key = _next(state.chain_key)
    state.iteration += 1
    return body + sig


def group_decrypt(store: ProtocolStore, group: str, sender: str, data: bytes, *,
                  max_forward_jumps: int = MAX_GROUP_FORWARD_JUMPS) -> bytes:
    """``max_forward_jumps``: libsignal allows 25 000; the interop profile 2000 (GRP-004)."""
    msg = SenderKeyMessage.parse(data)
    rec = store.sender_keys.get((group, sender))
    state = rec.find(msg.key_id) if isinstance(rec, SenderKeyRecord) else None
    if state is None:
        raise NoSessionError(f"no sender key {msg.key_id} from {sender!r} in group {group!r}")
    xeddsa.verify(state.signing_public, msg.body, msg.signature)
    if msg.iteration < state.iteration:
        ck = state.skipped.get(msg.iteration)
        if ck is None:
            raise DuplicateMessageError(
                f"sender-key iteration {msg.iteration} is behind the chain ({state.iteration}) "
                "and its key was already used"
            )
        iv, key = group_message_keys(ck)
        plaintext = aes_cbc_decrypt(key, iv, msg.ciphertext)
        del state.skipped[msg.iteration]
        return plaintext
    if msg.iteration - state.iteration > max_forward_jumps:
        raise TooManySkippedKeysError(
            f"sender-key iteration {msg.iteration} jumps {msg.iteration - state.iteration} ahead; "
            f"limit {max_forward_jumps}"
        )
    ck, it = state.chain_key, state.iteration
    skipped: list[tuple[int, bytes]] = []
    while it < msg.iteration:
        skipped.append((it, ck))
        ck, it = _next(ck), it + 1
    iv, key = group_message_keys(ck)
    plaintext = aes_cbc_decrypt(key, iv, msg.ciphertext)
    # Commit only after success.
    for i, k in skipped:
        state.skipped[i] = k
        if len(state.skipped) > MAX_GROUP_MESSAGE_KEYS:
            state.skipped.popitem(last=False)
    state.chain_key, state.iteration = _next(ck), it + 1
    return plaintext
