"""Content (spec §7): what the user sends (text, replies, reactions; media through
:mod:`.media`), the ordered sender, surfacing decrypted content (revokes, reactions, replies,
unsupported kinds), delivery and read receipts both ways, and the harness' inbox view."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from reference_impl.signal import sender_keys
from reference_impl.signal.errors import SignalError
from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb
from reference_impl.wire.message_key import target_author, target_key

from .base import ClientBase
from .context import now_ms
from .errors import ClientError, ConnectionLost, StanzaError

__all__ = ["ContentMixin"]

log = logging.getLogger("reference_impl.provider.client")

#: Content fields that carry media, by content oneof name.
MEDIA_FIELDS = {"image": "image", "video": "video", "audio": "audio", "document": "document",
                "sticker": "sticker"}


class ContentMixin(ClientBase):
    """The sender: a task that sends the user's messages one by one, in order, each after the
    previous one was acknowledged (or failed)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._sender: asyncio.Task | None = None

    def start_sending(self) -> None:
        """Start the sender and queue again what was being sent when the process stopped."""
        self._sender = self.spawn(self._send_loop())
        for item, _ in self.ctx.storage.messages_with_status(self.handle, "sending"):
            self._outbox.put_nowait((item["peer"], item["message_id"]))

    def apply_content(self, sender: str, mid: str, m: pb.Message,
                       content: cpb.Message, group_id: str = "") -> tuple | None:
        """Surface decrypted content (in ``group_id``'s conversation when set); returns media
        to download, if any."""
        storage = self.ctx.storage
        which = content.WhichOneof("content")
        if content.HasField("sender_key_distribution") and m.type != pb.ENC_TYPE_SKMSG:
            skd = content.sender_key_distribution
            try:  # GRP-003: the sender's key for that group, from a pairwise message only
                sender_keys.process_distribution(self.store, skd.group_id, sender,
                                                 skd.distribution_message)
            except SignalError as exc:
                log.info(json.dumps({"event": "bad_sender_key", "user": self.handle, "peer": sender,
                                     "group": skd.group_id, "error": str(exc)}))
            if which is None:
                return None
        peer = group_id or sender
        blocked = self.is_blocked(sender)
        item: dict[str, Any] = {"message_id": mid, "peer": peer, "sender": sender,
                                "timestamp_ms": int(m.timestamp_ms) or now_ms()}
        if self.faults.on("mailbox_prepended") and 0 < m.timestamp_ms < self.connected_at_ms:
            item["_backlog"] = True
        if which == "reaction":
            if not blocked:
                self._apply_reaction(sender, content.reaction, peer)
            return None
        if which == "protocol":
            p = content.protocol
            # Only the sender of the target may revoke it (E2E-014): the key must name the
            # sender's own message, and the lookup is in the sender's messages only.
            author = target_author(p.key, sender=sender)
            if p.type == cpb.ProtocolMessage.REVOKE and (
                    author == sender or self.faults.on("revoke_by_anyone")):
                found = storage.get_message(self.handle, peer, author, p.key.id)
                if found is not None:
                    target = found[0]
                    for k in ("text", "quoted_message_id", "quoted_sender", "media", "reactions"):
                        target.pop(k, None)
                    target["kind"] = "revoked"
                    target.pop("_hidden", None)
                    storage.update_message(self.handle, target)
            return None
        if blocked:
            return None  # CON-007: not surfaced
        if which == "conversation":
            item.update(kind="text", text=content.conversation)
        elif which == "extended_text":
            et = content.extended_text
            item.update(kind="text", text=et.text)
            if (et.HasField("context_info") and et.context_info.quoted_message_id
                    and not self.faults.on("reply_quote_dropped")):
                item.update(kind="reply", quoted_message_id=et.context_info.quoted_message_id,
                            quoted_sender=et.context_info.quoted_sender)
        elif which in MEDIA_FIELDS:
            media = getattr(content, which)
            item.update(kind="media", _hidden=True)
            meta: dict[str, Any] = {"type": which, "mimetype": media.mimetype}
            for f in ("caption", "file_name", "width", "height", "seconds", "ptt"):
                if f in media.DESCRIPTOR.fields_by_name and getattr(media, f):
                    meta[f] = getattr(media, f)
            if meta.get("ptt") and self.faults.on("voice_note_as_audio"):
                del meta["ptt"]
            if which == "document" and self.faults.on("media_surface_no_document_caption"):
                meta.pop("caption", None)
            item["media"] = meta
            ctx = getattr(media, "context_info", None)
            if ctx is not None and ctx.quoted_message_id:
                item.update(quoted_message_id=ctx.quoted_message_id, quoted_sender=ctx.quoted_sender)
            storage.add_message(self.handle, item, content.SerializeToString())
            return (sender, mid, peer)
        else:
            item.update(kind="unsupported")  # E2E-011
        storage.add_message(self.handle, item)
        self.event("message_received", peer=peer, message_id=mid)
        return None

    def _apply_reaction(self, sender: str, r: cpb.ReactionMessage, peer_hint: str = "") -> None:
        storage = self.ctx.storage
        author = target_author(r.key, sender=sender)
        for peer in dict.fromkeys(p for p in (author, sender, peer_hint) if p):
            found = storage.get_message(self.handle, peer, author, r.key.id)
            if found is not None:
                break
        else:
            return
        target = found[0]
        reactions = {x["sender"]: x for x in target.get("reactions", [])}
        prev = reactions.get(sender)
        ts = int(r.sender_timestamp_ms)
        if prev is not None and prev.get("_ts", 0) > ts and not self.faults.on("reaction_arrival_order"):
            return  # E2E-013: the latest sender_timestamp_ms wins
        if not r.emoji and self.faults.on("reaction_revoke_ignored") and sender != self.login:
            return
        if r.emoji:
            reactions[sender] = {"sender": sender, "emoji": r.emoji, "_ts": ts}
        else:
            reactions.pop(sender, None)
            reactions[f"_removed:{sender}"] = {"sender": f"_removed:{sender}", "emoji": "", "_ts": ts}
        target["reactions"] = list(reactions.values())
        storage.update_message(self.handle, target)

    def on_receipt(self, st: pb.Stanza) -> None:
        r = st.receipt
        peer = r.sender
        if r.type == pb.RECEIPT_TYPE_RETRY:
            if r.group_id and r.message_ids:  # GRP-007
                self.spawn(self.answer_retry(peer, r.message_ids[0], r.registration_id,
                                               r.retry_count, group_id=r.group_id))
            elif not self.faults.on("ignore_retry_receipt") and r.message_ids:
                self.spawn(self.answer_retry(peer, r.message_ids[0], r.registration_id,
                                               r.retry_count))
            return
        if self.is_blocked(peer):
            return  # CON-007
        kind = {pb.RECEIPT_TYPE_DELIVERY: "delivery", pb.RECEIPT_TYPE_READ: "read"}.get(r.type)
        if kind is None or self.faults.on("receipts_not_surfaced"):
            return
        storage = self.ctx.storage
        conv = r.group_id or peer
        rank = {"sending": 0, "sent": 1, "delivered": 2, "read": 3, "failed": -1}
        mids = list(r.message_ids)
        if kind == "read" and self.faults.on("read_receipt_first_id_only"):
            mids = mids[:1]  # the bug: only WhatsApp's `id` attribute, not its <list> of ids
        with storage.tx():
            for mid in mids:
                found = storage.get_message(self.handle, conv, self.login, mid)
                if found is None:
                    continue
                item = found[0]
                status = "read" if kind == "read" else "delivered"
                if r.group_id:
                    # GRP-008: per participant; the message is delivered (read) once every
                    # other participant has delivered (read) it.
                    got = item.setdefault("_receipts", {})
                    if rank[status] > rank.get(got.get(peer, ""), 0):
                        got[peer] = status
                    others = [p for p in self.state["groups"].get(r.group_id, {}).get(
                        "participants", [peer]) if p != self.login] or [peer]
                    status = min((got.get(p, "sent") for p in others), key=rank.__getitem__)
                    storage.update_message(self.handle, item)
                if rank[status] > rank.get(item.get("status", ""), 0):
                    item["status"] = status
                    storage.update_message(self.handle, item)
            self.event("receipt", peer=conv, message_ids=mids, receipt=kind,
                       participant=r.sender if r.group_id else None)

    def _content_for(self, req: dict[str, Any]) -> tuple[cpb.Message, dict[str, Any]]:
        kind = req["kind"]
        item: dict[str, Any] = {}
        if kind == "text":
            msg = cpb.Message(conversation=req["text"])
            if self.faults.on("text_as_extended_text"):  # the reply code path, without a quote
                msg = cpb.Message(extended_text=cpb.ExtendedTextMessage(text=req["text"]))
            item.update(kind="text", text=req["text"])
        elif kind == "reply":
            msg = cpb.Message(extended_text=cpb.ExtendedTextMessage(
                text=req["text"], context_info=cpb.ContextInfo(
                    quoted_message_id=req["quoted_message_id"], quoted_sender=req["quoted_sender"])))
            if self.faults.on("reply_context_legacy_tag"):  # profile 1.0.0: context_info on tag 2
                et = msg.extended_text
                ctx = et.context_info.SerializeToString()
                n, length = len(ctx), bytearray()
                while True:  # the varint length of the field
                    length.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
                    n >>= 7
                    if not n:
                        break
                et.ParseFromString(cpb.ExtendedTextMessage(text=et.text).SerializeToString()
                                   + b"\x12" + bytes(length) + ctx)
            item.update(kind="reply", text=req["text"], quoted_message_id=req["quoted_message_id"],
                        quoted_sender=req["quoted_sender"])
        elif kind == "reaction":
            key = target_key(me=self.login or "", chat=req["to"], target_sender=req["target_sender"],
                             target_id=req["target_message_id"],
                             group=req["to"] in self.state["groups"])
            if self.faults.on("reaction_key_inverted"):
                key.from_me = not key.from_me
            msg = cpb.Message(reaction=cpb.ReactionMessage(
                key=key, emoji=req["emoji"], sender_timestamp_ms=now_ms()))
            if not req["emoji"] and self.faults.on("reaction_revoke_as_protocol_revoke"):
                msg = cpb.Message(protocol=cpb.ProtocolMessage(
                    key=key, type=cpb.ProtocolMessage.REVOKE))
            item.update(kind="text", _hidden=True)
        else:
            raise ClientError(400, "bad-request", f"unknown kind {kind!r}")
        return msg, item

    async def send(self, req: dict[str, Any]) -> str:
        if not self.state["enlisted"] or not self.login:
            raise ClientError(409, "not-enlisted", "enlist the user first")
        peer = req["to"]
        group = self.state["groups"].get(peer)
        if group is not None and not group["member"]:
            raise ClientError(409, "not-a-member", f"the user is not a member of group {peer}")
        if peer in self.state["blocked"] and not self.faults.on("ignore_blocklist"):
            raise ClientError(409, "blocked", f"{peer} is blocked")
        if not self.may_send_to(peer, explicit=True):
            raise ClientError(409, "not-opted-in", f"{peer} has not consented to messages")
        if self.state["consent"].get(peer) == "not_opted_in":
            self.state["consent"].pop(peer)  # CON-002: a new explicit send may try again
        if req["kind"] == "media":
            content, item = await self.media_content(req["media"])
        else:
            content, item = self._content_for(req)
        mid = self.channel.new_id("m")
        item.update(message_id=mid, peer=peer, sender=self.login, status="sending",
                    timestamp_ms=now_ms())
        with self.ctx.storage.tx():
            self.ctx.storage.add_message(self.handle, item, content.SerializeToString())
            if req["kind"] == "reaction":
                self._apply_reaction(self.login, content.reaction, peer)
        self._outbox.put_nowait((peer, mid))
        return mid

    async def _send_loop(self) -> None:
        while True:
            peer, mid = await self._outbox.get()
            while True:
                found = self.ctx.storage.get_message(self.handle, peer, self.login, mid)
                if found is None or found[0].get("status") != "sending":
                    break
                item, content = found
                if self.state["opted_out"]:
                    self._mark(item, "failed", "opted_out")
                    break
                if not self.may_send_to(peer, explicit=False):
                    self._mark(item, "failed", "consent_revoked"
                               if self.state["consent"].get(peer) == "revoked" else "not_opted_in")
                    break
                await self.channel.ready.wait()
                try:
                    if peer in self.state["groups"]:
                        await self.send_group(peer, mid, content or b"")
                    else:
                        await self.send_content(peer, mid, content or b"", retry_count=0)
                except (ConnectionLost, asyncio.TimeoutError):
                    continue  # resent after the next connection
                except StanzaError as exc:
                    if self._on_send_error(item, exc):
                        continue
                    break
                except ClientError as exc:
                    self._mark(item, "failed", exc.reason or exc.kind)
                    break
                self._mark(item, "sent")
                break

    def _mark(self, item: dict, status: str, reason: str = "") -> None:
        found = self.ctx.storage.get_message(self.handle, item["peer"], item["sender"], item["message_id"])
        if found is not None:
            item = found[0]
        item["status"] = status
        self.ctx.storage.update_message(self.handle, item)
        if status == "failed":
            self.event("send_failed", peer=item["peer"], message_id=item["message_id"], reason=reason)

    def _on_send_error(self, item: dict, exc: StanzaError) -> bool:
        """Returns True to resend."""
        peer = item["peer"]
        if exc.code == "not_opted_in":
            self.set_consent(peer, "not_opted_in")
            self.save()
            self._mark(item, "failed", "not_opted_in")  # CON-002: reported, not resent
            if self.faults.on("retry_after_not_opted_in"):
                item = self.ctx.storage.get_message(self.handle, peer, self.login, item["message_id"])[0]
                item["status"] = "sending"
                self.ctx.storage.update_message(self.handle, item)
                self.state["consent"].pop(peer, None)
                self.spawn(self._requeue_later(peer, item["message_id"], 1.0))
            return False
        if exc.code == "un_enlisted" and not self.faults.on("no_reenlistment"):
            return True  # re-enlistment runs; the message is resent afterwards (CON-011)
        if exc.code == "internal":
            return True
        if exc.code == "un_enlisted":
            self._mark(item, "failed", exc.code)
            return False
        self._mark(item, "failed", exc.code)  # rate_limited past retries, blocked, ...
        return False

    async def _requeue_later(self, peer: str, mid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self._outbox.put_nowait((peer, mid))

    async def mark_read(self, peer: str, message_ids: list[str]) -> None:
        if peer in self.state["groups"]:
            await self.mark_group_read(peer, message_ids)
            return
        if peer in self.state["blocked"] and not self.faults.on("ignore_blocklist"):
            return  # CON-007: no read receipts to blocked users
        # E2E-023: one receipt for the sender, naming each of its messages once, in the order
        # they were received (the inbox order), and nothing of another sender or conversation.
        wanted = set(message_ids)
        ids = list(dict.fromkeys(i["message_id"] for i in self.ctx.storage.inbox(self.handle, peer)
                                 if i["sender"] == peer and i["message_id"] in wanted))
        if self.faults.on("read_receipt_per_message"):
            for mid in ids:
                await self.send_receipt(peer, [mid], pb.RECEIPT_TYPE_READ)
            return
        if ids:
            await self.send_receipt(peer, ids, pb.RECEIPT_TYPE_READ)

    async def send_receipt(self, peer: str, ids: list[str], rtype: int, group_id: str = "") -> None:
        if self.faults.on("group_receipt_without_group_id"):
            group_id = ""
        receipt = pb.Receipt(type=rtype, message_ids=ids, recipient=peer, sender=self.login,
                             timestamp_ms=now_ms(), group_id=group_id)
        with contextlib.suppress(ConnectionLost, StanzaError, asyncio.TimeoutError):
            await self.channel.request(pb.Stanza(receipt=receipt), ready=False)

    def inbox(self, peer: str | None) -> list[dict]:
        out = []
        items = self.ctx.storage.inbox(self.handle, peer)
        if self.faults.on("mailbox_prepended"):  # the bug: each one put on top of the list
            items = [i for i in items if i.get("_backlog")][::-1] + [
                i for i in items if not i.get("_backlog")]
        for item in items:
            if item.get("_hidden"):
                continue
            view = {k: v for k, v in item.items() if not k.startswith("_")}
            if "reactions" in view:
                view["reactions"] = [{"sender": r["sender"], "emoji": r["emoji"]}
                                     for r in view["reactions"] if r["emoji"]]
            if item["sender"] != self.login:
                view.pop("status", None)
            out.append(view)
        return out
