"""The gatekeeper simulator: the kit's side of the wire (spec §4–§8).

``Gatekeeper`` serves enlistment, G's JWKS, G-hosted media and the chat channel (WebSocket +
Noise XX + protobuf stanzas) on loopback; ``SimUser`` objects are real Signal parties on the
reference implementation; ``gk.script`` injects errors and network faults; ``gk.log`` is the
redacted evidence log, awaitable with ``wait_for``.
"""
from __future__ import annotations

from .core import Gatekeeper, PushResult
from .events import EventLog
from .media import MediaFetch
from .observe import HTTP_500, EnlistmentOverride, EnlistmentRecord, HandshakeRecord, Recording
from .script import Script
from .settings import Settings
from .state import Group, TokenSeen
from .users import InboxItem, SimUser

__all__ = ["HTTP_500", "EnlistmentOverride", "EnlistmentRecord", "EventLog", "Gatekeeper", "Group",
           "HandshakeRecord", "InboxItem", "MediaFetch", "PushResult", "Recording", "Script",
           "Settings", "SimUser", "TokenSeen"]
