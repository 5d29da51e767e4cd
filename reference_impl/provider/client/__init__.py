"""One provider client per user, split by the spec's sections.

- :mod:`.channel` — the chat channel's bytes: WebSocket, Noise, framing, requests and answers,
  back-off; it owns the connection and hands every other stanza to the client;
- :mod:`.connection` — when to connect, the start-up exchange, reconnecting, waking on push;
- :mod:`.enlistment` — enlistment and re-enlistment;
- :mod:`.sessions` — Signal sessions, pairwise decryption and retries, pre-keys;
- :mod:`.content` — sending, surfacing content, receipts, the inbox view;
- :mod:`.media` — media upload and verified download;
- :mod:`.consent` — consent, reachability pings, blocking, opt-out;
- :mod:`.groups` — sender keys and group messages;
- :mod:`.chatstates` — typing indicators, both ways;
- :mod:`.core` — :class:`ProviderClient`, the mixins together, and stanza routing;
- :mod:`.base`, :mod:`.context`, :mod:`.errors` — what they all share.
"""
from __future__ import annotations

from .channel import SUBPROTOCOL
from .context import MAX_PRE_KEY_ID, PROFILE_MAX_SKIPPED_KEYS, ClientContext, default_state
from .core import ProviderClient
from .errors import ClientError, ConnectFailed, EnlistFailed

__all__ = ["ProviderClient", "ClientContext", "ClientError", "ConnectFailed", "EnlistFailed",
           "default_state", "PROFILE_MAX_SKIPPED_KEYS", "MAX_PRE_KEY_ID", "SUBPROTOCOL"]
