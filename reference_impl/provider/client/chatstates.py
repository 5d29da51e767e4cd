"""Typing indicators (spec §6.5): the user's composing / paused state sent as ``chatstate``
stanzas (E2E-024) and G users' typing surfaced as ``typing`` events (E2E-025).

A chatstate is ephemeral: sent only while connected, never queued or resent, and not
acknowledged when it arrives. Why the suppression rules live here and not in the UI: the
harness (like an app's text field) reports every keystroke, and only the client knows what it
already told G and who may hear it.
"""
from __future__ import annotations

import asyncio
import contextlib
import time

from reference_impl.wire import stanzas_pb2 as pb

from .base import ClientBase
from .errors import ClientError, ConnectionLost, StanzaError

__all__ = ["ChatStatesMixin", "CHAT_STATES", "REPEAT_AFTER_S"]

CHAT_STATES = {"composing": pb.CHAT_STATE_TYPE_COMPOSING, "paused": pb.CHAT_STATE_TYPE_PAUSED}
#: E2E-024: the same state is not sent to the same user again within this many seconds.
REPEAT_AFTER_S = 10.0
#: Consent states in which the client knows the peer may not be sent anything (§8).
_NO_CONSENT = ("pinged", "revoked", "not_opted_in")


class ChatStatesMixin(ClientBase):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: peer -> (last state sent, monotonic time it was sent)
        self._typing_sent: dict[str, tuple[str, float]] = {}

    def set_typing(self, peer: str, state: str) -> bool:
        """Its user started (``composing``) or stopped (``paused``) typing to ``peer``; returns
        whether a chatstate goes out (False: suppressed by E2E-024, or offline)."""
        if state not in CHAT_STATES:
            raise ClientError(400, "bad-request", f"unknown typing state {state!r}")
        if not self.state["enlisted"] or not self.login:
            raise ClientError(409, "not-enlisted", "enlist the user first")
        if peer in self.state["groups"]:
            raise ClientError(501, "unsupported", "typing indicators are sent in 1:1 conversations only")
        if self.is_blocked(peer) and not self.faults.on("typing_ignores_blocklist"):
            return False
        if self.state["consent"].get(peer) in _NO_CONSENT:
            return False
        now = time.monotonic()
        last = self._typing_sent.get(peer)
        if (last is not None and last[0] == state and now - last[1] < REPEAT_AFTER_S
                and not self.faults.on("typing_every_keystroke")):
            return False
        if not self.connected:
            return False  # ephemeral: nothing to tell G later
        self._typing_sent[peer] = (state, now)
        self.spawn(self._send_chatstate(peer, state))
        return True

    async def _send_chatstate(self, peer: str, state: str) -> None:
        st = pb.Stanza(chatstate=pb.ChatState(recipient=peer, sender=self.login,
                                              state=CHAT_STATES[state]))
        try:
            await self.channel.request(st, ready=False, max_rate_retries=0)
        except StanzaError as exc:
            if exc.code == "not_opted_in":  # like a refused message (CON-002): stop until asked
                self.set_consent(peer, "not_opted_in")
                self.save()
        except (ConnectionLost, asyncio.TimeoutError):
            with contextlib.suppress(KeyError):
                del self._typing_sent[peer]  # it may not have arrived: the next change re-sends

    def on_chatstate(self, st: pb.Stanza) -> None:
        """A G user's typing indicator: surfaced unless the user blocked them (E2E-025)."""
        c = st.chatstate
        if self.is_blocked(c.sender) and not self.faults.on("typing_from_blocked_surfaced"):
            return
        state = next((k for k, v in CHAT_STATES.items() if v == c.state), None)
        if state is None or not c.sender:
            return
        self.event("typing", peer=c.sender, state=state)
