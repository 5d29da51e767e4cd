"""The chat channel's framing layer: Noise XX over WebSocket binary messages.

Sans-IO: these objects turn bytes into bytes; the gatekeeper simulator and the reference
provider move them over a WebSocket.
"""
from __future__ import annotations

from .noise import (
    MAX_FRAME,
    PROLOGUE,
    PROTOCOL_NAME,
    PROTOCOL_VERSION,
    ChannelError,
    ClientHello,
    NoiseInitiator,
    NoiseResponder,
    NoiseTransport,
)

__all__ = [
    "MAX_FRAME",
    "PROLOGUE",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "ChannelError",
    "ClientHello",
    "NoiseInitiator",
    "NoiseResponder",
    "NoiseTransport",
]
