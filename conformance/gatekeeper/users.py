"""Simulated gatekeeper users: real Signal parties (reference implementation) that a provider
client talks to, with consent state, and a record of everything they received.

A ``SimUser`` lives inside the gatekeeper: what it sends is routed like any G stanza (mailbox,
push, scripted drops), and what a provider sends to it is decrypted here. It answers
automatically with delivery receipts and, when it cannot decrypt, retry receipts (settings).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from reference_impl.media.crypto import MediaType, decrypt_media, encrypt_media
from reference_impl.signal import Party, PreKeyBundle, PublicKey, session
from reference_impl.signal.errors import (
    DuplicateMessageError,
    InvalidMediaError,
    SignalError,
    UntrustedIdentityError,
)
from reference_impl.signal.padding import pad, unpad
from reference_impl.signal.wire import PreKeySignalMessage
from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb
from reference_impl.wire.message_key import target_key

from .directory import take_bundle
from .media import MediaFetch
from .stanzas import fresh_id
from .state import GatekeeperState, Group

#: ``(direct_path, expected_enc_sha256, login=...)``: G fetches a provider-hosted blob (I/O the
#: simulator owns; see :meth:`~.core.Gatekeeper.fetch_provider_media`).
FetchMedia = Callable[..., Awaitable[MediaFetch]]

__all__ = ["CONSENT", "ChatStateRecord", "Failure", "Group", "InboxItem", "MediaResult", "ReceiptRecord", "SimUser"]

CONSENT = ("opted_in", "not_opted_in", "excluded")
_ENC = {pb.ENC_TYPE_PKMSG: "pkmsg", pb.ENC_TYPE_MSG: "msg", pb.ENC_TYPE_SKMSG: "skmsg"}
_MEDIA_FIELDS = {"image": MediaType.IMAGE, "video": MediaType.VIDEO, "audio": MediaType.AUDIO,
                 "document": MediaType.DOCUMENT, "sticker": MediaType.STICKER}
_CHAT_STATES = {"composing": pb.CHAT_STATE_TYPE_COMPOSING, "paused": pb.CHAT_STATE_TYPE_PAUSED}
_RECEIPTS = {"delivery": pb.RECEIPT_TYPE_DELIVERY, "read": pb.RECEIPT_TYPE_READ,
             "retry": pb.RECEIPT_TYPE_RETRY}


@dataclass
class MediaResult:
    """Download and verification of provider media, in the MED-006 order."""

    fetch: dict[str, Any]
    ok: bool
    failed_check: str | None = None
    plaintext: bytes | None = None


@dataclass
class InboxItem:
    message_id: str
    sender: str
    type: str                 # pkmsg / msg / skmsg
    content: cpb.Message
    kind: str                 # the content member set, or "sender_key_distribution" / "none"
    padding_length: int
    ciphertext: bytes
    timestamp_ms: int
    group_id: str = ""
    retry_count: int = 0
    media: MediaResult | None = None


@dataclass
class Failure:
    message_id: str
    sender: str
    type: str
    error: str
    detail: str
    retry_receipts: int = 0


@dataclass
class ReceiptRecord:
    type: str
    message_ids: list[str]
    sender: str
    group_id: str
    timestamp_ms: int
    registration_id: int = 0
    retry_count: int = 0


@dataclass
class ChatStateRecord:
    """A typing indicator a provider user sent to this user (§6.5)."""

    sender: str
    state: str                # "composing" / "paused", or the number of an unknown state
    at_ms: int                # G's clock when it arrived


@dataclass
class _Sent:
    to: str
    content: bytes
    group_id: str = ""
    resends: int = 0


def _bundle(kb: pb.KeyBundle) -> PreKeyBundle:
    opk = kb.one_time_pre_key if kb.HasField("one_time_pre_key") else None
    return PreKeyBundle(kb.registration_id, PublicKey.from_bytes(kb.identity_key),
                        kb.signed_pre_key.id, PublicKey.from_bytes(kb.signed_pre_key.public_key),
                        bytes(kb.signed_pre_key.signature), opk.id if opk else None,
                        PublicKey.from_bytes(opk.public_key) if opk else None)


class SimUser:
    def __init__(self, gk: GatekeeperState, name: str, user_id: str, phone: str, consent: str,
                 excluded: set[str], *, fetch_media: FetchMedia) -> None:
        if consent not in CONSENT:
            raise ValueError(f"consent must be one of {CONSENT}")
        self.gk = gk
        self._fetch_media_blob = fetch_media
        self.name, self.id, self.phone = name, user_id, phone
        self.consent = consent
        #: Providers this user excludes (CON-002 "excluded this provider").
        self.excluded = set(excluded)
        self.party = Party(user_id)
        self.blocked: set[str] = set()
        self.inbox: list[InboxItem] = []
        self.failures: list[Failure] = []
        self.receipts: list[ReceiptRecord] = []
        self.notifications: list[pb.Stanza] = []
        self.pings: list[str] = []
        self.chatstates: list[ChatStateRecord] = []
        #: What to do on a reachability ping: "ignore" or "grant" (opt in for that provider).
        self.on_ping = "ignore"
        #: One-time pre-keys left to hand out (None: unlimited); 0 serves bundles without one.
        self.one_time_pre_keys: int | None = None
        #: The next bundle handed out carries a broken signed pre-key signature (E2E-002).
        self.tamper_next_bundle = False
        self.auto_delivery_receipts = gk.settings.auto_delivery_receipts
        self.auto_retry_receipts = gk.settings.auto_retry_receipts
        self.sent: OrderedDict[str, _Sent] = OrderedDict()
        self._retries: dict[str, int] = {}
        self._peers: set[str] = set()
        self._skd_sent: dict[str, set[str]] = {}
        self._next_opk = 1

    def __repr__(self) -> str:
        return f"SimUser({self.name!r}, {self.id}, consent={self.consent})"

    # -- consent and keys ------------------------------------------------------------------------
    def consent_for(self, provider_id: str) -> bool:
        """Opted in to interop and not excluding this provider (§8)."""
        return self.consent != "not_opted_in" and provider_id not in self.excluded

    def take_bundle(self) -> pb.KeyBundle:
        """This user's bundle for a key_fetch; each one-time pre-key is handed out once."""
        with_opk = self.one_time_pre_keys is None or self.one_time_pre_keys > 0
        b = self.party.bundle(with_one_time=with_opk)
        if with_opk and self.one_time_pre_keys is not None:
            self.one_time_pre_keys -= 1
        sig = bytearray(b.signed_pre_key_signature)
        if self.tamper_next_bundle:
            self.tamper_next_bundle = False
            sig[5] ^= 0x01
            self.gk.log.append("bundle_tampered", None, user=self.id)
        kb = pb.KeyBundle(user=self.id, identity_key=b.identity_key.serialize(),
                          registration_id=b.registration_id,
                          signed_pre_key=pb.SignedPreKey(id=b.signed_pre_key_id,
                                                         public_key=b.signed_pre_key.serialize(),
                                                         signature=bytes(sig)))
        if b.pre_key is not None:
            kb.one_time_pre_key.CopyFrom(pb.OneTimePreKey(id=b.pre_key_id, public_key=b.pre_key.serialize()))
        return kb

    def _fetch_bundle(self, peer: str) -> PreKeyBundle:
        other = self.gk.users.get(peer)
        if other is not None:
            return _bundle(other.take_bundle())
        acct = self.gk.accounts.get(peer)
        if acct is None:
            raise LookupError(f"{peer} is neither an enlisted login nor a gatekeeper user")
        kb = take_bundle(acct)
        self.gk.maybe_low_pre_keys(acct)
        self.gk.log.append("key_fetch", peer, by=self.id, one_time_pre_key=kb.HasField("one_time_pre_key"))
        return _bundle(kb)

    def ensure_session(self, peer: str, *, fresh: bool = False) -> None:
        """A session with ``peer`` (from a fresh bundle when there is none, or ``fresh``)."""
        store = self.party.store
        if fresh:
            store.sessions.pop(peer, None)
        if session.has_session(store, peer):
            return
        bundle = self._fetch_bundle(peer)
        try:
            self.party.process_bundle(peer, bundle)
        except UntrustedIdentityError:
            # A re-enlisted peer with a new identity: G users accept it (and WA shows a notice).
            self.gk.log.append("identity_accepted", peer, user=self.id)
            store.identities.pop(peer, None)
            self.party.process_bundle(peer, bundle)

    def process_bundle(self, peer: str, bundle: PreKeyBundle) -> None:
        """Start a session with ``peer`` from a bundle the caller obtained (X3DH)."""
        self.party.process_bundle(peer, bundle)
        self._peers.add(peer)

    def encrypt_for(self, peer: str, plaintext: bytes) -> Any:
        """Encrypt raw (already padded) bytes to ``peer`` without routing or remembering them,
        for crafted messages; returns the ciphertext message (``type``, ``body``)."""
        self.ensure_session(peer)
        ct = self.party.encrypt(peer, plaintext)
        self._peers.add(peer)
        return ct

    def forget_sender_key(self, group_id: str, sender: str) -> None:
        """Lose the sender key of ``sender`` in the group (our own: the next distribution
        starts a new chain)."""
        self.party.store.sender_keys.pop((group_id, sender), None)

    def set_auto_receipts(self, *, delivery: bool | None = None, retry: bool | None = None) -> None:
        """Whether this user answers messages with delivery / retry receipts by itself."""
        if delivery is not None:
            self.auto_delivery_receipts = delivery
        if retry is not None:
            self.auto_retry_receipts = retry
        self.gk.log.append("user_setting", None, user=self.id, auto_delivery_receipts=self.auto_delivery_receipts,
                           auto_retry_receipts=self.auto_retry_receipts)

    def corrupt_next_bundle(self) -> None:
        """The next bundle handed out carries a broken signed pre-key signature (E2E-002)."""
        self.tamper_next_bundle = True

    def change_registration_id(self, registration_id: int | None = None) -> int:
        """A new registration id (a reinstall keeping the identity); returns it."""
        store = self.party.store
        store.registration_id = registration_id or store.registration_id % 0x3FFF + 1
        self.gk.log.append("registration_id_changed", None, user=self.id,
                           registration_id=store.registration_id)
        return store.registration_id

    # -- sending -----------------------------------------------------------------------------------
    def send_content(self, to: str, content: cpb.Message, *, message_id: str | None = None,
                     retry_count: int = 0, tamper: str | None = None, fresh_session: bool = False) -> str:
        """Encrypt ``content`` (padded) to ``to`` and route it; returns the message id.
        ``tamper`` ("mac", "version", "truncate") corrupts the ciphertext for E2E-004 checks."""
        self.ensure_session(to, fresh=fresh_session)
        raw = content.SerializeToString()
        ct = self.party.encrypt(to, pad(raw, self.party.rng))
        body = ct.body
        if tamper == "mac":
            body = body[:-1] + bytes([body[-1] ^ 0x01])
        elif tamper == "version":
            body = b"\x44" + body[1:]
        elif tamper == "truncate":
            body = body[: len(body) // 2]
        elif tamper is not None:
            raise ValueError(f"unknown tamper {tamper!r}")
        mid = message_id or fresh_id("m")
        self._remember(mid, _Sent(to, raw))
        self._peers.add(to)
        stanza = pb.Stanza(id=mid, message=pb.Message(
            recipient=to, sender=self.id,
            type=pb.ENC_TYPE_PKMSG if ct.type == "pkmsg" else pb.ENC_TYPE_MSG,
            ciphertext=body, timestamp_ms=self.gk.now_ms(), retry_count=retry_count))
        self.gk.log.append("user_sent", to if to in self.gk.accounts else None, user=self.id, id=mid,
                           content=content.WhichOneof("content") or "none", enc=ct.type,
                           tamper=tamper, retry_count=retry_count)
        self.gk.route(to, stanza)
        return mid

    def _remember(self, mid: str, sent: _Sent) -> None:
        self.sent[mid] = sent
        self.sent.move_to_end(mid)
        while len(self.sent) > self.gk.settings.sent_history:
            self.sent.popitem(last=False)

    def send_text(self, to: str, text: str, **kw: Any) -> str:
        return self.send_content(to, cpb.Message(conversation=text), **kw)

    def send_reply(self, to: str, text: str, quoted_message_id: str, quoted_sender: str) -> str:
        return self.send_content(to, cpb.Message(extended_text=cpb.ExtendedTextMessage(
            text=text, context_info=cpb.ContextInfo(quoted_message_id=quoted_message_id,
                                                    quoted_sender=quoted_sender))))

    def send_reaction(self, to: str, target_message_id: str, target_sender: str, emoji: str) -> str:
        key = target_key(me=self.id, chat=to, target_sender=target_sender, target_id=target_message_id)
        return self.send_content(to, cpb.Message(reaction=cpb.ReactionMessage(
            key=key, emoji=emoji, sender_timestamp_ms=self.gk.now_ms())))

    def send_revoke(self, to: str, target_message_id: str, *, key: cpb.MessageKey | None = None) -> str:
        """Revoke this user's own message ``target_message_id`` (WhatsApp's key: from_me), or
        send the given ``key`` (checks forge revokes of other people's messages with it)."""
        if key is None:
            key = target_key(me=self.id, chat=to, target_sender=self.id, target_id=target_message_id)
        return self.send_content(to, cpb.Message(protocol=cpb.ProtocolMessage(
            key=key, type=cpb.ProtocolMessage.REVOKE)))

    def send_media(self, to: str, data: bytes, media_type: MediaType | str = MediaType.IMAGE, *,
                   mimetype: str = "application/octet-stream", caption: str = "",
                   file_name: str = "", width: int = 0, height: int = 0,
                   seconds: int = 0, ptt: bool = False) -> tuple[str, str]:
        """Encrypt ``data`` (WhatsApp media scheme), host the blob at G, send the media message.
        Returns ``(message_id, direct_path)``; the blob is at ``{media_host}{direct_path}``."""
        mt = media_type if isinstance(media_type, MediaType) else MediaType(media_type)
        enc = encrypt_media(data, mt)
        path = self.gk.media.put(enc.blob)
        common: dict[str, Any] = {
            "mimetype": mimetype, "file_sha256": enc.file_sha256, "file_length": enc.file_length,
            "media_key": enc.media_key, "file_enc_sha256": enc.file_enc_sha256, "direct_path": path}
        if mt is MediaType.IMAGE:
            msg = cpb.Message(image=cpb.ImageMessage(caption=caption, width=width, height=height, **common))
        elif mt is MediaType.STICKER:
            msg = cpb.Message(sticker=cpb.StickerMessage(width=width, height=height, **common))
        elif mt is MediaType.VIDEO:
            msg = cpb.Message(video=cpb.VideoMessage(caption=caption, width=width, height=height,
                                                     seconds=seconds, **common))
        elif mt is MediaType.AUDIO:
            msg = cpb.Message(audio=cpb.AudioMessage(seconds=seconds, **common))
            if ptt:  # a voice note (MED-016); plain audio leaves ptt out, as WhatsApp clients do
                msg.audio.ptt = True
        else:
            msg = cpb.Message(document=cpb.DocumentMessage(caption=caption, file_name=file_name, **common))
        return self.send_content(to, msg), path

    def send_receipt(self, to: str, kind: str, message_ids: list[str], *, group_id: str = "",
                     retry_count: int = 0) -> str:
        """A delivery / read / retry receipt to the original sender ``to``."""
        r = pb.Receipt(type=_RECEIPTS[kind], message_ids=message_ids, recipient=to, sender=self.id,
                       group_id=group_id, timestamp_ms=self.gk.now_ms())
        if kind == "retry":
            r.registration_id, r.retry_count = self.party.store.registration_id, retry_count
        sid = fresh_id("r")
        self.gk.log.append("receipt", to if to in self.gk.accounts else None, direction="from_user",
                           user=self.id, receipt=kind, message_ids=message_ids, group_id=group_id,
                           retry_count=retry_count)
        self.gk.route(to, pb.Stanza(id=sid, receipt=r))
        return sid

    def send_chatstate(self, to: str, state: str, *, racing_block: bool = False) -> bool:
        """A typing indicator (``composing`` / ``paused``) to provider login ``to`` (§6.5).

        G relays it at once when its rules allow (this user opted in to the provider, neither
        party blocks the other) and ``to`` is connected; otherwise it is dropped, never queued.
        ``racing_block`` relays it although ``to``'s user blocked this user: a chatstate that
        left before G applied the block (E2E-025). Returns whether it went out."""
        if state not in _CHAT_STATES:
            raise ValueError(f"state must be one of {sorted(_CHAT_STATES)}")
        acct = self.gk.accounts.get(to)
        if acct is None:
            raise LookupError(f"{to} is not an enlisted login")
        reason = ""
        if not self.consent_for(acct.provider_id):
            reason = "this user has not opted in to the provider"
        elif to in self.blocked:
            reason = "this user blocked the recipient"
        elif self.id in acct.blocklist and not racing_block:
            reason = "the recipient blocked this user"
        sid = fresh_id("cs")
        stanza = pb.Stanza(id=sid, chatstate=pb.ChatState(recipient=to, sender=self.id,
                                                          state=_CHAT_STATES[state]))
        sent = not reason and self.gk.relay_ephemeral(to, stanza)
        self.gk.log.append("user_chatstate", to, user=self.id, id=sid, state=state, relayed=sent,
                           reason=reason or ("" if sent else "recipient offline"),
                           racing_block=racing_block)
        self._peers.add(to)
        return sent

    def change_identity(self, *, notify: str = "peers") -> bytes:
        """New identity key (re-install): sessions and sender keys are gone, and peers ("peers"),
        every enlisted login ("all") or nobody ("none") get an identity_change notification.
        Returns the key."""
        registration_id = self.party.store.registration_id
        self.party = Party(self.id, registration_id=registration_id)
        self._skd_sent.clear()
        key = self.party.identity_key.serialize()
        if notify not in ("peers", "all", "none"):
            raise ValueError(f"notify must be peers, all or none, not {notify!r}")
        targets = (self._peers if notify == "peers" else set(self.gk.accounts) if notify == "all"
                   else set())
        self.gk.log.append("identity_changed", None, user=self.id, notified=sorted(targets))
        for login in sorted(targets):
            if login in self.gk.accounts:
                self.gk.notify(login, pb.Notification(identity_change=pb.IdentityChange(
                    user=self.id, identity_key=key)))
        return key

    # -- groups -----------------------------------------------------------------------------------
    def distribute_sender_key(self, group: Group, members: list[str] | None = None) -> None:
        """GRP-001 as a G user does it: our distribution message, pairwise, to each member."""
        dm = self.party.group_distribution(group.group_id)
        sent = self._skd_sent.setdefault(group.group_id, set())
        for m in members if members is not None else group.members:
            if m == self.id:
                continue
            self.send_content(m, cpb.Message(sender_key_distribution=cpb.SenderKeyDistribution(
                group_id=group.group_id, distribution_message=dm)))
            sent.add(m)

    def send_group_text(self, group: Group, text: str) -> str:
        missing = [m for m in group.members if m != self.id and m not in self._skd_sent.get(group.group_id, set())]
        if missing:
            self.distribute_sender_key(group, missing)
        raw = cpb.Message(conversation=text).SerializeToString()
        body = self.party.group_encrypt(group.group_id, pad(raw, self.party.rng))
        mid = fresh_id("gm")
        self._remember(mid, _Sent("", raw, group.group_id))
        stanza = pb.Stanza(id=mid, message=pb.Message(sender=self.id, type=pb.ENC_TYPE_SKMSG,
                                                      ciphertext=body, group_id=group.group_id,
                                                      timestamp_ms=self.gk.now_ms()))
        self.gk.log.append("user_sent", None, user=self.id, id=mid, content="conversation", enc="skmsg",
                           group_id=group.group_id)
        self.gk.fan_out(group, stanza)
        return mid

    # -- receiving ----------------------------------------------------------------------------------
    def receive(self, stanza: pb.Stanza) -> None:
        """A stanza G routes to this user (called by the core, after G's ack went out)."""
        body = stanza.WhichOneof("body")
        if body == "message":
            self._on_message(stanza)
        elif body == "receipt":
            self._on_receipt(stanza)
        elif body == "chatstate":
            c = stanza.chatstate
            state = next((k for k, v in _CHAT_STATES.items() if v == c.state), str(c.state))
            self.chatstates.append(ChatStateRecord(c.sender, state, self.gk.now_ms()))
            self.gk.log.append("user_chatstate_received", c.sender if c.sender in self.gk.accounts else None,
                               user=self.id, id=stanza.id, sender=c.sender, state=state)
        else:
            self.notifications.append(stanza)

    def _decrypt(self, m: pb.Message) -> bytes:
        enc = _ENC[m.type]
        if enc == "skmsg":
            return self.party.group_decrypt(m.group_id, m.sender, m.ciphertext)
        acct = self.gk.accounts.get(m.sender)
        if enc == "msg" or acct is None:
            return self.party.decrypt(m.sender, enc, m.ciphertext)
        # ENL-008: a PreKeySignalMessage carries the enlisted registration id and identity key.
        pkm = PreKeySignalMessage.parse(m.ciphertext)
        if pkm.identity_key != acct.identity_key or pkm.registration_id != acct.registration_id:
            self.gk.log.append("violation", m.sender, requirement="ENL-008", user=self.id,
                               detail="PreKeySignalMessage identity or registration id differs from the enlisted one")
        store = self.party.store
        try:
            return session.decrypt_prekey_message(store, m.sender, m.ciphertext, self.party.rng)
        except UntrustedIdentityError:
            self.gk.log.append("identity_accepted", m.sender, user=self.id)
            store.identities.pop(m.sender, None)
            return session.decrypt_prekey_message(store, m.sender, m.ciphertext, self.party.rng)

    def _on_message(self, stanza: pb.Stanza) -> None:
        m = stanza.message
        login = m.sender if m.sender in self.gk.accounts else None
        enc = _ENC.get(m.type, str(m.type))
        try:
            padded = self._decrypt(m)
            n = padded[-1] if padded else 0
            content = cpb.Message.FromString(unpad(padded))
        except (SignalError, DecodeError, KeyError) as exc:
            self._on_failure(stanza, enc, exc)
            return
        self._peers.add(m.sender)
        kind = content.WhichOneof("content") or (
            "sender_key_distribution" if content.HasField("sender_key_distribution") else "none")
        item = InboxItem(stanza.id, m.sender, enc, content, kind, n, bytes(m.ciphertext),
                         m.timestamp_ms, m.group_id, m.retry_count)
        if content.HasField("sender_key_distribution"):
            skd = content.sender_key_distribution
            try:
                self.party.process_group_distribution(skd.group_id, m.sender, skd.distribution_message)
            except SignalError as exc:
                self.gk.log.append("violation", login, requirement="GRP-001", user=self.id,
                                   detail=f"bad sender key distribution: {exc}")
        self.inbox.append(item)
        self.gk.log.append("user_message", login, user=self.id, id=stanza.id, sender=m.sender,
                           enc=enc, content=kind, padding_length=n, group_id=m.group_id,
                           retry_count=m.retry_count, text=_text(content))
        if kind in _MEDIA_FIELDS:
            self.gk.spawn(self._fetch_media(item, getattr(content, kind), _MEDIA_FIELDS[kind]))
        if self.auto_delivery_receipts:
            self.send_receipt(m.sender, "delivery", [stanza.id], group_id=m.group_id)

    def _on_failure(self, stanza: pb.Stanza, enc: str, exc: Exception) -> None:
        m = stanza.message
        login = m.sender if m.sender in self.gk.accounts else None
        replay = isinstance(exc, DuplicateMessageError)
        failure = Failure(stanza.id, m.sender, enc, type(exc).__name__, str(exc)[:300])
        self.failures.append(failure)
        self.gk.log.append("decrypt_failed", login, user=self.id, id=stanza.id, enc=enc,
                           error=failure.error, detail=failure.detail, replay=replay)
        n = self._retries.get(stanza.id, 0)
        if self.auto_retry_receipts and not replay and n < self.gk.settings.max_retry_receipts:
            self._retries[stanza.id] = n + 1
            failure.retry_receipts = n + 1
            self.send_receipt(m.sender, "retry", [stanza.id], group_id=m.group_id, retry_count=n + 1)

    def _on_receipt(self, stanza: pb.Stanza) -> None:
        r = stanza.receipt
        kind = {v: k for k, v in _RECEIPTS.items()}.get(r.type, str(r.type))
        self.receipts.append(ReceiptRecord(kind, list(r.message_ids), r.sender, r.group_id,
                                           r.timestamp_ms, r.registration_id, r.retry_count))
        if kind == "retry":
            self._answer_retry(r)

    def _answer_retry(self, r: pb.Receipt) -> None:
        """E2E-018 as a G user does it: same content, same id, retry_count from the receipt;
        a new session when the registration id changed."""
        mid = r.message_ids[0]
        sent = self.sent.get(mid)
        if sent is None or sent.resends >= self.gk.settings.max_retry_receipts:
            self.gk.log.append("retry_ignored", r.sender, user=self.id, id=mid)
            return
        sent.resends += 1
        rec = self.party.store.sessions.get(r.sender)
        known = rec.current.remote_registration_id if rec is not None and rec.current else None
        fresh = known is None or known != r.registration_id
        self.send_content(r.sender, cpb.Message.FromString(sent.content), message_id=mid,
                          retry_count=r.retry_count, fresh_session=fresh)

    def handle_reachability_ping(self, login: str) -> None:
        """CON-001 from the user's side: note the ping; with ``on_ping == "grant"`` opt in."""
        self.pings.append(login)
        acct = self.gk.accounts.get(login)
        if self.on_ping == "grant" and acct is not None and not self.consent_for(acct.provider_id):
            self.gk.log.append("scripted", None, action="grant_consent", user=self.id,
                               provider=acct.provider_id)
            self.gk.grant_consent(self, acct.provider_id)

    async def _fetch_media(self, item: InboxItem, media: Any, mt: MediaType) -> None:
        """MED-006 from G's side: fetch the provider blob, check hash, MAC, plaintext hash, length."""
        result = await self._fetch_media_blob(media.direct_path, bytes(media.file_enc_sha256),
                                              login=item.sender)
        check = None
        plaintext = None
        if result.status != 200 or result.error:
            check = "fetch"
        else:
            try:
                plaintext = decrypt_media(result.body, bytes(media.media_key), mt,
                                          bytes(media.file_sha256), bytes(media.file_enc_sha256))
                if len(plaintext) != media.file_length:
                    check, plaintext = "file_length", None
            except InvalidMediaError as exc:
                check = exc.check
        item.media = MediaResult(result.summary(), check is None, check, plaintext)
        self.gk.log.append("media_verified", item.sender, user=self.id, id=item.message_id,
                           ok=check is None, failed_check=check,
                           plaintext_sha256=hashlib.sha256(plaintext).hexdigest() if plaintext else None)

    @property
    def acked(self) -> list[str]:
        """Ids of this user's messages the provider client acknowledged (CHN-007)."""
        return [e["detail"]["id"] for e in self.gk.log.events(kind="message_delivered", sender=self.id)]

    # -- waiting --------------------------------------------------------------------------------------
    async def next_message(self, predicate: Callable[[InboxItem], bool] | None = None, *,
                           since: int = 0, timeout: float = 10.0) -> InboxItem:
        """The first inbox item (from event ``since`` on) that matches; event-driven."""
        def match(e: dict[str, Any]) -> bool:
            item = self._item(e["detail"]["id"])
            return item is not None and (predicate is None or predicate(item))
        e = await self.gk.log.wait_for(match, timeout, since=since, kind="user_message", user=self.id,
                                       what=f"message to {self.id}")
        item = self._item(e["detail"]["id"])
        assert item is not None
        return item

    def _item(self, message_id: str) -> InboxItem | None:
        return next((i for i in reversed(self.inbox) if i.message_id == message_id), None)


def _text(content: cpb.Message) -> str | None:
    kind = content.WhichOneof("content")
    if kind == "conversation":
        return content.conversation[:200]
    if kind == "extended_text":
        return content.extended_text.text[:200]
    return None
