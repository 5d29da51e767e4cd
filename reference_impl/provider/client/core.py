"""The provider client of one user: the concern mixins put together, and the routing of
stanzas from the channel to them.

Concurrency model (asyncio, one event loop):
- the channel's *reader* task decrypts incoming stanzas in order and hands them to
  :meth:`ProviderClient.on_stanza`, one at a time;
- a *sender* task sends the user's messages one by one, in order, each after the previous one
  was acknowledged (or failed);
- anything that must wait for an answer from G while the reader is busy (retry resends,
  receipts, blocklist updates) runs in its own task.
"""
from __future__ import annotations

from reference_impl.wire import stanzas_pb2 as pb

from .chatstates import ChatStatesMixin
from .connection import ConnectionMixin
from .consent import ConsentMixin
from .content import ContentMixin
from .enlistment import EnlistmentMixin
from .errors import ConnectionLost
from .groups import GroupsMixin
from .media import MediaMixin
from .sessions import SessionsMixin

__all__ = ["ProviderClient"]


class ProviderClient(EnlistmentMixin, ConnectionMixin, SessionsMixin, ContentMixin, MediaMixin,
                     ConsentMixin, GroupsMixin, ChatStatesMixin):
    """One user's client: enlistment, the chat channel, Signal sessions, content, receipts,
    media, consent, blocking, back-off, re-enlistment, groups and typing indicators."""

    def start(self) -> None:
        """Start the sender; resume pending sends and the connection the user left on."""
        self.start_sending()
        self.spawn(self.resume_pending_media())
        if self.state["online"] and self.state["enlisted"] and not self.state["opted_out"]:
            self.schedule_reconnect(initial=0.0)
        elif self.state["deletion_pending"]:
            self.spawn(self.deletion_loop())

    async def stop(self) -> None:
        """Stop all I/O without changing what the user asked for (used on shutdown)."""
        self.stopped = True
        await self.close_channel(deliberate=True)
        await self.cancel_tasks()

    async def on_stanza(self, st: pb.Stanza) -> None:
        """A stanza the channel does not answer itself: route it, then acknowledge it."""
        body = st.WhichOneof("body")
        if body is None and self.faults.on("close_on_unknown_stanza"):
            raise ConnectionLost()  # the reader ends and closes the connection
        if body == "message":
            await self.on_message(st)  # pairwise, or handed on to on_group_message
        elif body == "receipt":
            self.on_receipt(st)
        elif body == "notification":
            self._on_notification(st.notification)
        elif body == "chatstate":
            self.on_chatstate(st)
            return  # ephemeral: not answered (§6.5)
        # CHN-007 / CHN-013: every message, receipt, notification and unknown stanza is acked.
        if body == "receipt" and self.faults.on("no_ack_for_receipts"):
            return
        await self.channel.ack(st.id)

    def _on_notification(self, n: pb.Notification) -> None:
        kind = n.WhichOneof("kind")
        if kind == "identity_change":
            self.on_identity_change(n.identity_change.user, bytes(n.identity_change.identity_key))
        elif kind == "consent_revoked":
            self.on_consent(n.consent_revoked.user, granted=False)
        elif kind == "consent_granted":
            self.on_consent(n.consent_granted.user, granted=True)
        elif kind == "group_membership":
            self.on_group_membership(n.group_membership)
            self.save()
        elif kind == "low_pre_keys":
            if not self.faults.on("no_prekey_replenish"):
                want = max(self.ctx.config.prekey_batch - n.low_pre_keys.count, 50)
                self.spawn(self.replenish(want))
