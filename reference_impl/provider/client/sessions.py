"""Signal sessions (spec §6): pairwise decryption and its failures (retry receipts, E2E-016/
017), answering a peer's retry receipt (E2E-018), identity changes (E2E-019), sessions from
fetched key bundles (E2E-002), pairwise encryption, and pre-keys (upload, replenishment,
signed pre-key rotation)."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets

from google.protobuf.message import DecodeError

from reference_impl.signal import PublicKey, session
from reference_impl.signal.errors import (
    DuplicateMessageError,
    InvalidMacError,
    InvalidSignatureError,
    SignalError,
    UntrustedIdentityError,
)
from reference_impl.signal.x3dh import PreKeyBundle
from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb

from .. import e2e
from .base import ClientBase
from .context import MAX_PRE_KEY_ID, PROFILE_MAX_SKIPPED_KEYS, now_ms
from .errors import ClientError, ConnectionLost, StanzaError

__all__ = ["SessionsMixin"]

log = logging.getLogger("reference_impl.provider.client")


class SessionsMixin(ClientBase):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._late_notices: set[str] = set()  # fault identity_notice_after_message only

    def identity_changed(self, peer: str, key: bytes) -> None:
        known = self.state["identity_notified"].get(peer)
        if known == key.hex():
            return
        self.state["identity_notified"][peer] = key.hex()
        if self.faults.on("silent_identity_change"):
            return
        if self.faults.on("identity_notice_after_message"):
            self._late_notices.add(peer)  # the bug: shown after the next message from the peer
            return
        self.event("identity_changed", peer=peer)

    def on_identity_change(self, user: str, key: bytes) -> None:
        """An ``identity_change`` notification: trust the new key, start a new session."""
        self.identity_changed(user, key)
        with contextlib.suppress(Exception):
            self.store.trust_identity(user, PublicKey.from_bytes(key))
        self.store.sessions.pop(user, None)  # the next message starts a new session
        self.save()

    async def on_message(self, st: pb.Stanza) -> None:
        m = st.message
        sender, mid = m.sender, st.id
        if m.type == pb.ENC_TYPE_SKMSG or m.group_id:
            await self.on_group_message(st)
            return
        # A pairwise resend of a group message we asked for (GRP-006/007) belongs in the group.
        group_id = self.state["retry_groups"].get(f"{sender}\n{mid}", "")
        if group_id and self.ctx.storage.has_message(self.handle, group_id, sender, mid):
            return
        replay_fault = self.faults.on("accept_replayed_message")
        if not replay_fault and self.ctx.storage.has_message(self.handle, sender, sender, mid):
            return  # redelivery of something already surfaced (e.g. after a restart)
        msg_type = {pb.ENC_TYPE_PKMSG: "pkmsg", pb.ENC_TYPE_MSG: "msg"}.get(m.type, "?")
        if msg_type == "pkmsg":
            self.prune_signed_pre_keys()  # E2E-021: expired previous signed pre-keys go first
        digest = hashlib.sha256(m.ciphertext).hexdigest()
        window = 1000 if self.faults.on("skip_window_1000") else PROFILE_MAX_SKIPPED_KEYS
        kept = dict(self.store.pre_keys) if self.faults.on("one_time_prekey_kept") else None
        try:
            try:
                plain = session.decrypt(self.store, sender, msg_type, m.ciphertext,
                                        max_forward_jumps=window)
            except UntrustedIdentityError as exc:
                # E2E-019: surface the change before any message under the new identity.
                self.identity_changed(sender, exc.identity_key)
                self.store.trust_identity(sender, PublicKey.from_bytes(exc.identity_key))
                plain = session.decrypt(self.store, sender, msg_type, m.ciphertext,
                                        max_forward_jumps=window)
            if kept is not None:  # the bug: the used one-time pre-key is put back
                self.store.pre_keys.update(kept)
            content_bytes = e2e.unpad(plain, self.faults)
            content = cpb.Message.FromString(content_bytes)
        except DuplicateMessageError:
            cached = self.ctx.storage.recall_decrypted(self.handle, digest) if replay_fault else None
            if cached is None:
                return  # E2E-006: a replay is dropped silently
            content = cpb.Message.FromString(e2e.unpad(cached, self.faults))
            plain = cached
        except (SignalError, DecodeError, ValueError) as exc:
            if (isinstance(exc, InvalidMacError) and msg_type == "msg"
                    and self.faults.on("bad_mac_drops_session")):
                self.store.sessions.pop(sender, None)  # the bug: "Bad MAC" read as a broken session
                self.save()
            self.decryption_failed(sender, mid, exc)
            return
        if replay_fault:
            self.ctx.storage.remember_decrypted(self.handle, digest, plain)
        with self.ctx.storage.tx():
            surfaced_media = self.apply_content(sender, mid, m, content, group_id)
            self.state["retry_groups"].pop(f"{sender}\n{mid}", None)
            self.save()
        if (self.faults.on("unsupported_content_drops_session") and not group_id
                and content.WhichOneof("content") is None and content.ByteSize() > 0
                and not content.HasField("sender_key_distribution")):
            # the bug: a content member from a newer version is taken for a corrupt session
            self.store.sessions.pop(sender, None)
            self.save()
        if sender in self._late_notices:
            self._late_notices.discard(sender)
            self.event("identity_changed", peer=sender)
        if surfaced_media is not None:
            self.spawn(self.download_media(*surfaced_media))
        if not self.faults.on("no_delivery_receipt") and not self.hides_block_from(sender):
            self.spawn(self.send_receipt(sender, [mid], pb.RECEIPT_TYPE_DELIVERY, group_id))

    def decryption_failed(self, sender: str, mid: str, exc: Exception, *, group_id: str = "",
                           retry: bool = True) -> None:
        log.info(json.dumps({"event": "decryption_failed", "user": self.handle, "peer": sender,
                             "group": group_id or None, "message_id": mid,
                             "error": type(exc).__name__}))
        self.event("decryption_failed", peer=group_id or sender, message_id=mid,
                   reason=type(exc).__name__, participant=sender if group_id else None)
        if not retry or self.faults.on("no_retry_receipt" if not group_id else "group_no_retry_receipt"):
            return
        key = f"{sender}\n{mid}"
        count = self.state["retry_sent"].get(key, 0) + 1
        if count > 5:  # E2E-017: at most 5 retry receipts per message id
            return
        self.state["retry_sent"][key] = count
        if group_id:
            self.state["retry_groups"][key] = group_id
        self.save()
        receipt = pb.Receipt(type=pb.RECEIPT_TYPE_RETRY, message_ids=[mid], recipient=sender,
                             sender=self.login, timestamp_ms=now_ms(), group_id=group_id,
                             registration_id=self.store.registration_id, retry_count=count)
        self.spawn(self._request_quietly(pb.Stanza(receipt=receipt)))

    async def _request_quietly(self, stanza: pb.Stanza) -> None:
        with contextlib.suppress(ConnectionLost, StanzaError, asyncio.TimeoutError):
            await self.channel.request(stanza, ready=False)

    async def answer_retry(self, peer: str, mid: str, registration_id: int, retry_count: int,
                            group_id: str = "") -> None:
        """E2E-018: resend the same content under the same id with the receipt's retry_count.
        GRP-007: for a group message, the content goes to the requester pairwise (only to a
        current participant), still under the original id."""
        found = self.ctx.storage.get_message(self.handle, group_id or peer, self.login, mid)
        if found is None or found[1] is None:
            return
        if group_id and peer not in self.state["groups"].get(group_id, {}).get("participants", []):
            return
        item, content = found
        if group_id and self.faults.on("group_retry_resent_as_skmsg"):
            with contextlib.suppress(ConnectionLost, StanzaError, asyncio.TimeoutError, ClientError):
                await self.resend_group(group_id, mid, content, retry_count)
            return
        if not self.may_send_to(peer, explicit=False):
            return
        rec = self.store.sessions.get(peer)
        known = rec.current.remote_registration_id if rec and rec.current else None
        if known is None or known != registration_id:
            self.store.sessions.pop(peer, None)  # a new session from a fresh key_fetch
        with contextlib.suppress(ConnectionLost, StanzaError, asyncio.TimeoutError, ClientError):
            await self.send_content(peer, mid, content, retry_count=retry_count)

    async def _ensure_session(self, peer: str) -> None:
        if session.has_session(self.store, peer):
            return
        answer = await self.channel.request(pb.Stanza(key_fetch=pb.KeyFetchRequest(user=peer)))
        kb = answer.key_bundle
        try:
            bundle = PreKeyBundle(
                registration_id=kb.registration_id,
                identity_key=PublicKey.from_bytes(kb.identity_key),
                signed_pre_key_id=kb.signed_pre_key.id,
                signed_pre_key=PublicKey.from_bytes(kb.signed_pre_key.public_key),
                signed_pre_key_signature=bytes(kb.signed_pre_key.signature),
                pre_key_id=kb.one_time_pre_key.id if kb.HasField("one_time_pre_key") else None,
                pre_key=PublicKey.from_bytes(kb.one_time_pre_key.public_key)
                if kb.HasField("one_time_pre_key") else None)
        except SignalError as exc:
            raise ClientError(502, "bad-bundle", str(exc), reason="bad_bundle") from None
        try:
            try:
                e2e.process_bundle(self.store, peer, bundle, self.faults)
            except UntrustedIdentityError as exc:
                self.identity_changed(peer, exc.identity_key)
                self.store.trust_identity(peer, bundle.identity_key)
                e2e.process_bundle(self.store, peer, bundle, self.faults)
        except InvalidSignatureError:
            # E2E-002: no content to a user whose signed pre-key does not verify.
            raise ClientError(502, "bad-bundle", "signed pre-key signature does not verify",
                              reason="bad_signature") from None
        self.save()

    async def send_content(self, peer: str, mid: str, content: bytes, *, retry_count: int) -> None:
        await self._ensure_session(peer)

        def allowed() -> bool:
            return self.may_send_to(peer, explicit=True) and not (
                peer in self.state["blocked"] and not self.faults.on("ignore_blocklist"))

        if not allowed():
            raise ClientError(409, "refused", reason="consent_revoked")
        ct = e2e.encrypt(self.store, peer, e2e.pad(content, self.faults), self.faults)
        self.save()  # never reuse a message key, even after a crash
        enc_type = pb.ENC_TYPE_PKMSG if ct.type == "pkmsg" else pb.ENC_TYPE_MSG
        stanza = pb.Stanza(id=mid, message=pb.Message(
            recipient=peer, sender=self.login, type=enc_type, ciphertext=ct.body,
            timestamp_ms=now_ms(), retry_count=retry_count))
        await self.channel.request(stanza, still_allowed=allowed)

    async def replenish(self, count: int) -> None:
        with contextlib.suppress(ConnectionLost, StanzaError, asyncio.TimeoutError):
            await self.upload_pre_keys(count, ready=False)

    async def upload_pre_keys(self, count: int, *, ready: bool) -> None:
        if self.faults.on("reuse_one_time_prekeys"):
            start = 1
        else:
            start = self.state["next_pre_key_id"]
            if start + count > MAX_PRE_KEY_ID:
                start = 1  # 16.7 million ids used: wrap (ids of deleted keys only)
        keys = self.store.generate_pre_keys(start, count)
        self.state["next_pre_key_id"] = max(self.state["next_pre_key_id"], start + count)
        self.save()  # persist the private keys before G can hand them out
        up = pb.PreKeyUpload(one_time_pre_keys=[
            pb.OneTimePreKey(id=i, public_key=k.serialize()) for i, k in keys])
        await self.channel.request(pb.Stanza(pre_key_upload=up), ready=ready)

    async def rotate_signed_pre_key(self) -> None:
        self.new_signed_pre_key()
        if self.faults.on("regid_regenerated_on_rotation"):
            old = self.store.registration_id
            while self.store.registration_id == old:
                self.store.registration_id = secrets.randbelow(16380) + 1
        self.state["spk_upload_pending"] = True
        self.save()
        if self.connected:
            with contextlib.suppress(ConnectionLost, StanzaError, asyncio.TimeoutError):
                await self.upload_signed_pre_key()

    async def upload_signed_pre_key(self) -> None:
        spk = self.store.signed_pre_keys[self.state["spk_id"]]
        up = pb.PreKeyUpload(signed_pre_key=pb.SignedPreKey(
            id=spk.key_id, public_key=spk.key_pair.public.serialize(), signature=spk.signature))
        await self.channel.request(pb.Stanza(pre_key_upload=up), ready=False)
        self.state["spk_upload_pending"] = False
        self.save()
