"""Groups (spec §10): membership from ``group_membership`` notifications, kept in
``state["groups"]`` with the participants that hold the client's current sender key; sender
keys (own and received) live in the persisted :class:`ProtocolStore`. Decrypting sender-key
messages, distributing the own key pairwise, sending one ``skmsg`` for G to fan out, and
per-participant read receipts."""
from __future__ import annotations

import json
import logging

from google.protobuf.message import DecodeError

from reference_impl.signal import sender_keys
from reference_impl.signal.errors import DuplicateMessageError, NoSessionError, SignalError
from reference_impl.wire import content_pb2 as cpb
from reference_impl.wire import stanzas_pb2 as pb

from .. import e2e
from .base import ClientBase
from .context import PROFILE_MAX_SKIPPED_KEYS, now_ms
from .errors import ClientError, StanzaError

__all__ = ["GroupsMixin"]

log = logging.getLogger("reference_impl.provider.client")


class GroupsMixin(ClientBase):
    def on_group_membership(self, gm: pb.GroupMembership) -> None:
        """GRP-005: after a removal our sender key is replaced (the next group message first
        distributes the new one to the remaining participants); added participants lack the
        current key, so they get it before the next message."""
        gid = gm.group_id
        participants = list(dict.fromkeys(gm.participants))
        member = self.login in participants
        group = self.state["groups"].get(gid)
        if group is None:
            self.state["groups"][gid] = {"participants": participants, "member": member,
                                         "key_holders": []}
            return
        removed = (set(gm.removed) | set(group["participants"])) - set(participants)
        if (removed and member and (gid, self.login) not in self.store.sender_keys
                and self.faults.on("group_removal_before_first_send_ignored")):
            return  # the bug: "no sender key yet, nothing to rotate", before the list is updated
        group.update(participants=participants, member=member)
        if not member or (removed and not self.faults.on("group_no_rekey_on_removal")):
            self.store.sender_keys.pop((gid, self.login), None)  # a new key on next use
            group["key_holders"] = []
        else:
            group["key_holders"] = [p for p in group["key_holders"] if p in participants]

    async def on_group_message(self, st: pb.Stanza) -> None:
        """GRP-003 / GRP-004 / GRP-006: decrypt with the sender's key for the group (signature
        first, at most 2000 skipped iterations, state unchanged on failure) and surface the
        message in the group's conversation."""
        m = st.message
        gid, sender, mid = m.group_id, m.sender, st.id
        if m.type != pb.ENC_TYPE_SKMSG or not gid:
            self.event("decryption_failed", peer=gid or sender, message_id=mid, reason="malformed")
            return
        if self.ctx.storage.has_message(self.handle, gid, sender, mid):
            return  # redelivery of something already surfaced
        try:
            plain = e2e.group_decrypt(self.store, gid, sender, m.ciphertext, self.faults,
                                      max_forward_jumps=1000 if self.faults.on("group_skip_window_1000")
                                      else PROFILE_MAX_SKIPPED_KEYS)
            content = cpb.Message.FromString(e2e.unpad(plain, self.faults))
        except DuplicateMessageError:
            return  # a replay is dropped silently
        except NoSessionError as exc:  # GRP-006: no sender key, or not this key id
            self.decryption_failed(sender, mid, exc, group_id=gid)
            return
        except (SignalError, DecodeError, ValueError) as exc:
            # A bad signature is a forgery and a jump past the window is refused (GRP-003,
            # GRP-004): reported, not retried, since the sender's key was usable.
            self.decryption_failed(sender, mid, exc, group_id=gid, retry=False)
            return
        with self.ctx.storage.tx():
            surfaced_media = self.apply_content(sender, mid, m, content, gid)
            self.save()
        if surfaced_media is not None:
            self.spawn(self.download_media(*surfaced_media))
        if not self.faults.on("no_delivery_receipt") and not self.hides_block_from(sender):
            self.spawn(self.send_receipt(sender, [mid], pb.RECEIPT_TYPE_DELIVERY, gid))

    def _group_peers(self, gid: str) -> list[str]:
        return [p for p in self.state["groups"][gid]["participants"] if p != self.login]

    def _sender_key_distribution(self, gid: str) -> bytes:
        """Content carrying our current sender key for ``gid`` (created on first use)."""
        skdm = sender_keys.create_distribution(self.store, gid, self.login)
        return cpb.Message(sender_key_distribution=cpb.SenderKeyDistribution(
            group_id=gid, distribution_message=skdm.serialize())).SerializeToString()

    async def _distribute_sender_key(self, gid: str) -> None:
        """GRP-001 / GRP-005: every current participant without our current sender key gets it
        pairwise, and only they do. A participant we cannot reach now (refused, blocked, bad
        bundle) stays without it: its retry receipt is answered pairwise (GRP-007) and the
        next group message tries again. Re-reads the group after every wait: a membership
        change may arrive meanwhile."""
        group = self.state["groups"][gid]
        skipped: set[str] = set()
        while True:
            pending = [p for p in self._group_peers(gid)
                       if p not in group["key_holders"] and p not in skipped]
            if not pending:
                return
            peer = pending[0]
            content = self._sender_key_distribution(gid)
            self.save()  # the chain exists before anyone can hold it
            try:
                await self.send_content(peer, self.channel.new_id("m"), content, retry_count=0)
            except (StanzaError, ClientError) as exc:
                log.info(json.dumps({"event": "sender_key_not_sent", "user": self.handle,
                                     "group": gid, "peer": peer, "error": str(exc)}))
                skipped.add(peer)
                continue
            group = self.state["groups"][gid]
            if peer in group["participants"] and peer not in group["key_holders"]:
                group["key_holders"].append(peer)
            self.save()

    async def send_group(self, gid: str, mid: str, content: bytes) -> None:
        """GRP-002: the key first where it is missing, then one ``skmsg`` that G fans out."""
        if not self.state["groups"][gid]["member"]:
            raise ClientError(409, "not-a-member", reason="not_a_member")
        await self._distribute_sender_key(gid)
        if self.faults.on("group_fanout_pairwise"):
            for peer in self._group_peers(gid):
                await self.send_content(peer, mid, content, retry_count=0)
            return
        self._sender_key_distribution(gid)  # a chain even for a group of one
        body = sender_keys.group_encrypt(self.store, gid, self.login, e2e.pad(content, self.faults))
        self.save()  # never reuse a chain iteration, even after a crash
        stanza = pb.Stanza(id=mid, message=pb.Message(
            sender=self.login, type=pb.ENC_TYPE_SKMSG, ciphertext=body, group_id=gid,
            timestamp_ms=now_ms()))
        await self.channel.request(stanza)

    async def resend_group(self, gid: str, mid: str, content: bytes, retry_count: int) -> None:
        """Fault ``group_retry_resent_as_skmsg``: a retry answered like a first send, one
        ``skmsg`` to the whole group, with no sender key for the requester first."""
        body = sender_keys.group_encrypt(self.store, gid, self.login, e2e.pad(content, self.faults))
        self.save()
        await self.channel.request(pb.Stanza(id=mid, message=pb.Message(
            sender=self.login, type=pb.ENC_TYPE_SKMSG, ciphertext=body, group_id=gid,
            timestamp_ms=now_ms(), retry_count=retry_count)))

    async def mark_group_read(self, gid: str, message_ids: list[str]) -> None:
        """GRP-008: one read receipt per original sender, with the group id."""
        by_sender: dict[str, list[str]] = {}
        wanted = set(message_ids)
        for item in self.ctx.storage.inbox(self.handle, gid):
            if item["message_id"] in wanted and item["sender"] != self.login:
                by_sender.setdefault(item["sender"], []).append(item["message_id"])
        for sender, ids in by_sender.items():
            if not self.is_blocked(sender):  # CON-007
                await self.send_receipt(sender, ids, pb.RECEIPT_TYPE_READ, group_id=gid)
