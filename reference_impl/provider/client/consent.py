"""Consent, blocking, opt-out and account deletion (spec §8): who may be sent content
(CON-001/002/004), the reachability ping (CON-003), consent notifications, the blocklist
(CON-006/007; CON-013: a block is not disclosed), opt-out with its deletion request (CON-008),
and account deletion (CON-014)."""
from __future__ import annotations

import asyncio
import contextlib

from reference_impl.signal import ProtocolStore
from reference_impl.wire import stanzas_pb2 as pb

from .base import ClientBase
from .errors import ClientError, ConnectionLost, StanzaError

__all__ = ["ConsentMixin"]


class ConsentMixin(ClientBase):
    def may_send_to(self, peer: str, explicit: bool) -> bool:
        consent = self.state["consent"].get(peer)
        if consent == "pinged" and not self.faults.on("send_without_consent"):
            return False
        if consent == "revoked" and not self.faults.on("ignore_consent_revocation"):
            return False
        if consent == "not_opted_in" and not explicit:
            return False
        return True

    def on_consent(self, user: str, granted: bool) -> None:
        """A ``consent_revoked`` or ``consent_granted`` notification."""
        if granted:
            self.set_consent(user, "granted")
        elif not self.faults.on("ignore_consent_revocation"):
            self.set_consent(user, "revoked")
            self.fail_queued(user, "consent_revoked")
        self.save()
        self.event("consent_changed", peer=user, consent="granted" if granted else "revoked")

    def set_consent(self, user: str, value: str) -> None:
        self.state["consent"][user] = value
        for alias, target in list(self.state.get("aliases", {}).items()):
            if target == user:
                self.state["consent"][alias] = value

    def fail_queued(self, peer: str, reason: str) -> None:
        storage = self.ctx.storage
        for item, _ in storage.messages_with_status(self.handle, "sending"):
            if item["peer"] == peer:
                item["status"] = "failed"
                storage.update_message(self.handle, item)
                self.event("send_failed", peer=peer, message_id=item["message_id"], reason=reason)

    def fail_queued_all(self, reason: str) -> None:
        for item, _ in self.ctx.storage.messages_with_status(self.handle, "sending"):
            self.fail_queued(item["peer"], reason)

    async def reachability_ping(self, recipient: str) -> None:
        now = self.clock.time()
        last = self.state["pings"].get(recipient, 0)
        # CON-003: one ping per G user per 24 h (the fault slips a unit: 24 minutes).
        window = 24 * 60 if self.faults.on("ping_window_minutes") else 86400
        if now - last < window:
            raise ClientError(429, "rate-limited", "a ping to this user was sent within 24 h")
        if not self.connected:
            raise ClientError(409, "not-connected", "the client is offline")
        self.state["pings"][recipient] = now
        if self.state["consent"].get(recipient) != "granted":
            self.state["consent"][recipient] = "pinged"
        self.save()
        self.spawn(self._ping(recipient))

    async def _ping(self, recipient: str) -> None:
        reason = ""
        try:
            await self.channel.request(pb.Stanza(reachability_ping=pb.ReachabilityPing(recipient=recipient)))
        except StanzaError as exc:
            reason = exc.code
        except (ConnectionLost, asyncio.TimeoutError):
            reason = "connection_lost"
        self.event("reachability_result", peer=recipient, reason=reason)

    def is_blocked(self, peer: str) -> bool:
        return peer in self.state["blocked"] and not self.faults.on("ignore_blocklist")

    def hides_block_from(self, sender: str) -> bool:
        """CON-013: no delivery receipt to a sender its user blocked: the receipt would tell the
        blocked sender that its messages arrive, and its absence after unblocking would not."""
        return self.is_blocked(sender) and not self.faults.on("delivery_receipt_to_blocked")

    def block(self, peer: str, blocked: bool) -> None:
        current = set(self.state["blocked"])
        current.add(peer) if blocked else current.discard(peer)
        self.state["blocked"] = sorted(current)
        self.state["block_ops"].append({"op": "add" if blocked else "remove", "peer": peer})
        self.save()
        if self.connected and not self.faults.on("block_sent_on_reconnect_only"):
            self.spawn(self._flush_block_ops_quietly())

    async def _flush_block_ops_quietly(self) -> None:
        with contextlib.suppress(ConnectionLost, StanzaError, asyncio.TimeoutError):
            await self.flush_block_ops()

    async def flush_block_ops(self) -> None:
        while self.state["block_ops"]:
            op = self.state["block_ops"][0]
            body = pb.BlocklistSet(add=[op["peer"]]) if op["op"] == "add" else pb.BlocklistSet(remove=[op["peer"]])
            await self.channel.request(pb.Stanza(blocklist_set=body), ready=False)
            if self.state["block_ops"] and self.state["block_ops"][0] == op:
                self.state["block_ops"].pop(0)
            self.save()

    async def opt_out(self) -> None:
        if self.faults.on("no_deletion_on_opt_out"):
            self.state.update(opted_out=True, online=False)
            self.save()
            await self.disconnect(wake_on_push=False)
            await self.ctx.on_opt_out(self.user_visible_id)
            return
        self.state.update(opted_out=True, deletion_pending=bool(self.state["enlisted"]),
                          deletion_reason="opt_out")
        self.save()
        await self.ctx.on_opt_out(self.user_visible_id)
        await self._request_deletion()

    async def _request_deletion(self) -> None:
        """Send the pending deletion request now if G can be reached, else keep retrying it
        across reconnections until acknowledged (CON-008, CON-014)."""
        if self.state["deletion_pending"]:
            with contextlib.suppress(ClientError, ConnectionLost, StanzaError, asyncio.TimeoutError):
                if not self.connected:
                    await self.ensure_connected()
                await self.send_deletion()
            if self.state["deletion_pending"]:
                self.spawn(self.deletion_loop())
        if not self.state["deletion_pending"]:
            await self.close_channel(deliberate=True)

    async def delete_account(self) -> None:
        """CON-014: the user deletes their provider account. Unlike opting out (CON-008) the
        deletion request says so, and the conversations, sessions and keys are erased at once;
        the login and authkey are kept only until G acknowledges the request."""
        as_opt_out = self.faults.on("account_deletion_as_opt_out")
        self.state.update(opted_out=True, deletion_pending=bool(self.state["enlisted"]),
                          deletion_reason="opt_out" if as_opt_out else "account_deleted")
        self.fail_queued_all("account_deleted")
        if not as_opt_out:
            self.ctx.storage.erase_conversations(self.handle)
            self.store = ProtocolStore.generate()  # sessions, identity and pre-keys are gone
        self.save()
        await self.ctx.on_opt_out(self.user_visible_id)  # its media goes too (CON-009)
        if not self.state["deletion_pending"] and not as_opt_out and self.ctx.on_account_deleted:
            await self.ctx.on_account_deleted(self.handle)  # never enlisted: nothing to tell G
        await self._request_deletion()

    async def deletion_loop(self) -> None:
        delay = 1.0
        while self.state["deletion_pending"] and not self.stopped:
            await asyncio.sleep(delay)
            with contextlib.suppress(ClientError, ConnectionLost, StanzaError, asyncio.TimeoutError):
                if not self.connected:
                    await self.ensure_connected()
                await self.send_deletion()
            delay = min(delay * 2, 60)

    async def send_deletion(self) -> None:
        if not self.state["deletion_pending"]:
            return
        reason = (pb.DELETION_REASON_ACCOUNT_DELETED if self.state.get("deletion_reason") == "account_deleted"
                  else pb.DELETION_REASON_OPT_OUT)
        await self.channel.request(pb.Stanza(deletion_request=pb.DeletionRequest(reason=reason)),
                                   ready=False)
        # CON-008: never connect or send with this login or these keys again.
        self.state.update(deletion_pending=False, enlisted=False, login="", online=False)
        self.save()
        self.fail_queued_all("opted_out")
        await self.close_channel(deliberate=True)
        if self.state.get("deletion_reason") == "account_deleted" and self.ctx.on_account_deleted:
            await self.ctx.on_account_deleted(self.handle)  # CON-014: the account itself is gone
