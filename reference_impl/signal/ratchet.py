"""The Double Ratchet of Signal v3: chain keys, message keys, session state, encrypt/decrypt.

KDFs (research §3.2–3.5):
- root step:    ``RK' || CK = HKDF(salt=RK, ikm=DH(ours, theirs), "WhisperRatchet", 64)``
- chain step:   message-key seed ``HMAC(CK, 0x01)``, next chain key ``HMAC(CK, 0x02)``
- message keys: ``HKDF(salt=none, ikm=seed, "WhisperMessageKeys", 80)`` → cipher[0:32],
  mac[32:64], iv[64:80]. (v4's SPQR would pass its key as the salt: ``derive_message_keys``
  takes ``salt`` for that reason.)
- MAC: first 8 bytes of ``HMAC(mac_key, sender_identity || receiver_identity || version || pb)``.

Limits are libsignal's (``rust/protocol/src/consts.rs``). ``decrypt`` mutates the state it is
given; callers decrypt on a :meth:`SessionState.clone` and keep it only on success, so a
forged message can never advance a session (research §12 item 9).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .crypto import aes_cbc_decrypt, aes_cbc_encrypt, constant_time_eq, hkdf_sha256, hmac_sha256
from .errors import DuplicateMessageError, InvalidMacError, TooManySkippedKeysError
from .keys import KeyPair, PrivateKey, PublicKey
from .rng import Rng
from .wire import MAC_LENGTH, SignalMessage

__all__ = [
    "MAX_FORWARD_JUMPS",
    "MAX_MESSAGE_KEYS",
    "MAX_RECEIVER_CHAINS",
    "MessageKeys",
    "Chain",
    "PendingPreKey",
    "SessionState",
    "derive_message_keys",
    "next_chain_key",
    "root_step",
    "compute_mac",
]

#: libsignal's limits (``consts.rs``). A profile may be stricter: the interop profile allows
#: 2000 skipped keys (E2E-005), so callers pass ``max_forward_jumps`` to :meth:`decrypt`.
MAX_FORWARD_JUMPS = 25_000
MAX_MESSAGE_KEYS = 2_000
MAX_RECEIVER_CHAINS = 5

_MESSAGE_KEY_SEED = b"\x01"
_CHAIN_KEY_SEED = b"\x02"
_ROOT_INFO = b"WhisperRatchet"
_MESSAGE_KEYS_INFO = b"WhisperMessageKeys"


@dataclass(frozen=True, slots=True)
class MessageKeys:
    cipher_key: bytes
    mac_key: bytes
    iv: bytes
    counter: int


def derive_message_keys(chain_key: bytes, counter: int, salt: bytes | None = None) -> MessageKeys:
    seed = hmac_sha256(chain_key, _MESSAGE_KEY_SEED)
    okm = hkdf_sha256(seed, _MESSAGE_KEYS_INFO, 80, salt=salt)
    return MessageKeys(okm[:32], okm[32:64], okm[64:80], counter)


def next_chain_key(chain_key: bytes) -> bytes:
    return hmac_sha256(chain_key, _CHAIN_KEY_SEED)


def root_step(root_key: bytes, ours: PrivateKey, theirs: PublicKey) -> tuple[bytes, bytes]:
    okm = hkdf_sha256(ours.agree(theirs), _ROOT_INFO, 64, salt=root_key)
    return okm[:32], okm[32:]


def compute_mac(mac_key: bytes, sender_identity: PublicKey, receiver_identity: PublicKey,
                body: bytes) -> bytes:
    data = sender_identity.serialize() + receiver_identity.serialize() + body
    return hmac_sha256(mac_key, data)[:MAC_LENGTH]


@dataclass(slots=True)
class Chain:
    """A sending chain (``private`` set) or a receiving chain (``skipped`` used)."""

    ratchet_key: PublicKey
    key: bytes
    index: int = 0
    private: PrivateKey | None = None
    skipped: "OrderedDict[int, MessageKeys]" = field(default_factory=OrderedDict)

    def clone(self) -> "Chain":
        return Chain(self.ratchet_key, self.key, self.index, self.private, OrderedDict(self.skipped))

    def to_dict(self) -> dict:
        return {
            "ratchet_key": self.ratchet_key.serialize().hex(),
            "key": self.key.hex(),
            "index": self.index,
            "private": self.private.serialize().hex() if self.private else None,
            "skipped": [
                [mk.counter, mk.cipher_key.hex(), mk.mac_key.hex(), mk.iv.hex()]
                for mk in self.skipped.values()
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Chain":
        skipped: OrderedDict[int, MessageKeys] = OrderedDict()
        for c, ck, mk, iv in d["skipped"]:
            skipped[c] = MessageKeys(bytes.fromhex(ck), bytes.fromhex(mk), bytes.fromhex(iv), c)
        return cls(
            PublicKey.from_bytes(bytes.fromhex(d["ratchet_key"])),
            bytes.fromhex(d["key"]),
            d["index"],
            PrivateKey(bytes.fromhex(d["private"])) if d["private"] else None,
            skipped,
        )


@dataclass(frozen=True, slots=True)
class PendingPreKey:
    """What an initiator repeats in every PreKeySignalMessage until the first reply."""

    pre_key_id: int | None
    signed_pre_key_id: int
    base_key: PublicKey


@dataclass(slots=True)
class SessionState:
    version: int
    local_identity: PublicKey
    remote_identity: PublicKey
    root_key: bytes
    sender_chain: Chain
    receiver_chains: list[Chain] = field(default_factory=list)
    previous_counter: int = 0
    pending_pre_key: PendingPreKey | None = None
    local_registration_id: int = 0
    remote_registration_id: int = 0
    #: The initiator's base key: identifies the session a repeated PreKey message belongs to.
    base_key: PublicKey | None = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def initialize_alice(
        cls,
        *,
        root_key: bytes,
        chain_key: bytes,
        local_identity: PublicKey,
        remote_identity: PublicKey,
        their_ratchet_key: PublicKey,
        sending_ratchet: KeyPair,
        version: int = 3,
    ) -> "SessionState":
        """The initiator receives on Bob's signed pre-key (his first "ratchet key") with the
        X3DH chain key, and sends on a fresh ratchet key after one root step."""
        new_root, send_ck = root_step(root_key, sending_ratchet.private, their_ratchet_key)
        return cls(
            version=version,
            local_identity=local_identity,
            remote_identity=remote_identity,
            root_key=new_root,
            sender_chain=Chain(sending_ratchet.public, send_ck, 0, sending_ratchet.private),
            receiver_chains=[Chain(their_ratchet_key, chain_key)],
        )

    @classmethod
    def initialize_bob(
        cls,
        *,
        root_key: bytes,
        chain_key: bytes,
        local_identity: PublicKey,
        remote_identity: PublicKey,
        our_ratchet: KeyPair,
        version: int = 3,
    ) -> "SessionState":
        """The responder's first sending chain is its signed pre-key with the X3DH chain key;
        it never sends on it, because Alice's first message forces a DH step."""
        return cls(
            version=version,
            local_identity=local_identity,
            remote_identity=remote_identity,
            root_key=root_key,
            sender_chain=Chain(our_ratchet.public, chain_key, 0, our_ratchet.private),
        )

    def clone(self) -> "SessionState":
        return SessionState(
            self.version,
            self.local_identity,
            self.remote_identity,
            self.root_key,
            self.sender_chain.clone(),
            [c.clone() for c in self.receiver_chains],
            self.previous_counter,
            self.pending_pre_key,
            self.local_registration_id,
            self.remote_registration_id,
            self.base_key,
        )

    # -- sending ------------------------------------------------------------------------
    def encrypt(self, plaintext: bytes) -> SignalMessage:
        chain = self.sender_chain
        mk = derive_message_keys(chain.key, chain.index)
        ciphertext = aes_cbc_encrypt(mk.cipher_key, mk.iv, plaintext)
        body = SignalMessage.encode_body(chain.ratchet_key, chain.index, self.previous_counter,
                                         ciphertext)
        mac = compute_mac(mk.mac_key, self.local_identity, self.remote_identity, body)
        chain.key = next_chain_key(chain.key)
        chain.index += 1
        return SignalMessage(chain.ratchet_key, mk.counter, self.previous_counter, ciphertext,
                             body, mac)

    # -- receiving ----------------------------------------------------------------------
    def _receiver_chain(self, ratchet_key: PublicKey) -> Chain | None:
        for c in self.receiver_chains:
            if c.ratchet_key == ratchet_key:
                return c
        return None

    def _dh_ratchet(self, their: PublicKey, rng: Rng) -> Chain:
        assert self.sender_chain.private is not None
        root1, recv_ck = root_step(self.root_key, self.sender_chain.private, their)
        ours = KeyPair.generate(rng)
        root2, send_ck = root_step(root1, ours.private, their)
        chain = Chain(their, recv_ck)
        self.receiver_chains.append(chain)
        if len(self.receiver_chains) > MAX_RECEIVER_CHAINS:
            del self.receiver_chains[0]
        self.root_key = root2
        self.previous_counter = max(self.sender_chain.index - 1, 0)
        self.sender_chain = Chain(ours.public, send_ck, 0, ours.private)
        return chain

    def _message_keys(self, chain: Chain, counter: int,
                      max_forward_jumps: int = MAX_FORWARD_JUMPS) -> MessageKeys:
        if counter < chain.index:
            mk = chain.skipped.pop(counter, None)
            if mk is None:
                raise DuplicateMessageError(
                    f"counter {counter} is behind the chain (index {chain.index}) and its key "
                    "was already used: a replay or a duplicate"
                )
            return mk
        if counter - chain.index > max_forward_jumps:
            raise TooManySkippedKeysError(
                f"counter {counter} jumps {counter - chain.index} ahead; limit {max_forward_jumps}"
            )
        key, index = chain.key, chain.index
        while index < counter:
            chain.skipped[index] = derive_message_keys(key, index)
            if len(chain.skipped) > MAX_MESSAGE_KEYS:
                chain.skipped.popitem(last=False)
            key = next_chain_key(key)
            index += 1
        mk = derive_message_keys(key, index)
        chain.key = next_chain_key(key)
        chain.index = index + 1
        return mk

    def decrypt(self, message: SignalMessage, rng: Rng,
                max_forward_jumps: int = MAX_FORWARD_JUMPS) -> bytes:
        """Decrypt in place. Raise a typed error; on error the state may be half-updated, so
        call this on a clone."""
        chain = self._receiver_chain(message.ratchet_key)
        if chain is None:
            chain = self._dh_ratchet(message.ratchet_key, rng)
        mk = self._message_keys(chain, message.counter, max_forward_jumps)
        expected = compute_mac(mk.mac_key, self.remote_identity, self.local_identity, message.body)
        if not constant_time_eq(expected, message.mac):
            raise InvalidMacError("SignalMessage MAC does not verify")
        plaintext = aes_cbc_decrypt(mk.cipher_key, mk.iv, message.ciphertext)
        self.pending_pre_key = None  # the peer answered: stop sending PreKey messages
        return plaintext

    # -- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict:
        p = self.pending_pre_key
        return {
            "version": self.version,
            "local_identity": self.local_identity.serialize().hex(),
            "remote_identity": self.remote_identity.serialize().hex(),
            "root_key": self.root_key.hex(),
            "sender_chain": self.sender_chain.to_dict(),
            "receiver_chains": [c.to_dict() for c in self.receiver_chains],
            "previous_counter": self.previous_counter,
            "pending_pre_key": None if p is None else {
                "pre_key_id": p.pre_key_id,
                "signed_pre_key_id": p.signed_pre_key_id,
                "base_key": p.base_key.serialize().hex(),
            },
            "local_registration_id": self.local_registration_id,
            "remote_registration_id": self.remote_registration_id,
            "base_key": self.base_key.serialize().hex() if self.base_key else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "SessionState":
        pk = lambda h: PublicKey.from_bytes(bytes.fromhex(h))  # noqa: E731
        p = d["pending_pre_key"]
        return cls(
            version=d["version"],
            local_identity=pk(d["local_identity"]),
            remote_identity=pk(d["remote_identity"]),
            root_key=bytes.fromhex(d["root_key"]),
            sender_chain=Chain.from_dict(d["sender_chain"]),
            receiver_chains=[Chain.from_dict(c) for c in d["receiver_chains"]],
            previous_counter=d["previous_counter"],
            pending_pre_key=None if p is None else PendingPreKey(
                p["pre_key_id"], p["signed_pre_key_id"], pk(p["base_key"])
            ),
            local_registration_id=d["local_registration_id"],
            remote_registration_id=d["remote_registration_id"],
            base_key=pk(d["base_key"]) if d["base_key"] else None,
        )
