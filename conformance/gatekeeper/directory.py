"""The key directory and account records of provider users.

Holds what enlistment registered (identity key, registration id, signed pre-key), the
one-time pre-keys a client uploads (E2E-020), and hands each one-time pre-key out exactly
once. G users' bundles come from their own :class:`~.users.SimUser`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from reference_impl.signal import InvalidSignatureError, PublicKey, xeddsa
from reference_impl.signal.errors import InvalidKeyError
from reference_impl.wire import stanzas_pb2 as pb

__all__ = ["ProviderAccount", "StanzaRejected", "take_bundle", "upload_pre_keys"]

MAX_KEY_ID = 0xFFFFFF


class StanzaRejected(Exception):
    """A request refused with an ``error`` stanza; the connection stays open."""

    def __init__(self, code: int, detail: str, requirement: str = "", *, user: str = "",
                 retry_after_ms: int = 0) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.requirement = requirement
        self.user = user
        self.retry_after_ms = retry_after_ms


@dataclass
class ProviderAccount:
    """One enlisted provider user (spec §4.2): keys, blocklist, liveness."""

    login: str
    provider_id: str
    sub: str
    authkey: bytes
    registration_id: int
    identity_key: PublicKey
    signed_pre_key_id: int
    signed_pre_key: PublicKey
    signed_pre_key_signature: bytes
    enlisted_at: float
    last_seen: float
    one_time: OrderedDict[int, PublicKey] = field(default_factory=OrderedDict)
    used_pre_key_ids: set[int] = field(default_factory=set)
    used_signed_pre_key_ids: set[int] = field(default_factory=set)
    blocklist: set[str] = field(default_factory=set)
    #: Set once low_pre_keys was sent; cleared when the supply is above the threshold again.
    low_notified: bool = False


def _key33(data: bytes, what: str) -> PublicKey:
    try:
        return PublicKey.from_bytes(data)
    except InvalidKeyError as exc:
        raise StanzaRejected(pb.ERROR_CODE_MALFORMED, f"{what}: {exc}", "E2E-020") from None


def upload_pre_keys(acct: ProviderAccount, up: pb.PreKeyUpload, *, max_held: int,
                    max_batch: int, threshold: int) -> tuple[int, bool]:
    """Apply a ``pre_key_upload`` atomically. Returns (one-time keys added, signed pre-key
    rotated). Rejects malformed keys, reused ids (E2E-020, E2E-021) and bad signatures."""
    if len(up.one_time_pre_keys) > max_batch:
        raise StanzaRejected(pb.ERROR_CODE_TOO_LARGE,
                             f"{len(up.one_time_pre_keys)} pre-keys in one upload; at most {max_batch}")
    if len(acct.one_time) + len(up.one_time_pre_keys) > max_held:
        raise StanzaRejected(pb.ERROR_CODE_TOO_LARGE, f"G holds at most {max_held} one-time pre-keys")
    new: OrderedDict[int, PublicKey] = OrderedDict()
    for opk in up.one_time_pre_keys:
        if not 1 <= opk.id <= MAX_KEY_ID:
            raise StanzaRejected(pb.ERROR_CODE_MALFORMED, f"one-time pre-key id {opk.id} outside 1..{MAX_KEY_ID}", "E2E-020")
        if opk.id in acct.used_pre_key_ids or opk.id in new:
            raise StanzaRejected(pb.ERROR_CODE_MALFORMED, f"one-time pre-key id {opk.id} reused", "E2E-020")
        new[opk.id] = _key33(opk.public_key, f"one-time pre-key {opk.id}")
    rotated = up.HasField("signed_pre_key")
    if rotated:
        spk = up.signed_pre_key
        if not 1 <= spk.id <= MAX_KEY_ID or spk.id in acct.used_signed_pre_key_ids:
            raise StanzaRejected(pb.ERROR_CODE_MALFORMED, f"signed pre-key id {spk.id} is out of range or reused", "E2E-021")
        key = _key33(spk.public_key, "signed pre-key")
        try:
            xeddsa.verify(acct.identity_key, key.serialize(), spk.signature)
        except InvalidSignatureError:
            raise StanzaRejected(pb.ERROR_CODE_MALFORMED,
                                 "signed pre-key signature does not verify with the enlisted identity key",
                                 "E2E-021") from None
        acct.signed_pre_key_id, acct.signed_pre_key, acct.signed_pre_key_signature = (
            spk.id, key, bytes(spk.signature))
        acct.used_signed_pre_key_ids.add(spk.id)
    acct.one_time.update(new)
    acct.used_pre_key_ids.update(new)
    if len(acct.one_time) >= threshold:
        acct.low_notified = False
    return len(new), rotated


def take_bundle(acct: ProviderAccount) -> pb.KeyBundle:
    """The provider user's bundle; the oldest one-time pre-key is removed as it is handed out."""
    bundle = pb.KeyBundle(
        user=acct.login, identity_key=acct.identity_key.serialize(),
        registration_id=acct.registration_id,
        signed_pre_key=pb.SignedPreKey(id=acct.signed_pre_key_id,
                                       public_key=acct.signed_pre_key.serialize(),
                                       signature=acct.signed_pre_key_signature))
    if acct.one_time:
        key_id, key = acct.one_time.popitem(last=False)
        bundle.one_time_pre_key.CopyFrom(pb.OneTimePreKey(id=key_id, public_key=key.serialize()))
    return bundle
