"""Limits, timeouts and behaviour switches of the gatekeeper simulator, in one place.

Each default names where it comes from; tests and the suite override them per instance
(a ``Settings`` is a plain dataclass, copied with :func:`dataclasses.replace`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reference_impl.channel import MAX_FRAME

__all__ = ["DAY", "Clock", "Settings"]

#: Wall clock in Unix seconds. Logic never calls ``time.time()`` itself: it reads
#: ``gk.clock`` (:class:`~.clock.SimClock`), which is ``Settings.clock`` plus whatever a check
#: advanced; tests may also pass another callable here.
Clock = Callable[[], float]
DAY = 86_400.0


@dataclass(slots=True)
class Settings:
    clock: Clock = field(default=time.time)
    # -- chat channel ------------------------------------------------------------------------
    #: A client that has not finished the Noise handshake by then is dropped.
    handshake_timeout_s: float = 10.0
    #: The chat-channel binding G's endpoint speaks (``open`` or ``wa``, spec §5.3).
    wire: str = "open"
    #: G pings a quiet connection after this long; CHN-008 gives the client 10 s to answer.
    ping_interval_s: float = 30.0
    pong_timeout_s: float = 10.0
    #: One Noise message per WebSocket message (Noise's own 65535-byte limit, CHN-005).
    max_frame: int = MAX_FRAME
    #: Outbound stanzas waiting for the socket; a client that stops reading is disconnected.
    send_queue: int = 256
    #: G-originated stanzas on the wire without an ack; the rest wait in the mailbox.
    max_inflight: int = 64
    #: Request ids remembered per login to spot reuse (CHN-006).
    remembered_ids: int = 4096
    # -- enlistment and identity -------------------------------------------------------------
    max_enlist_body: int = 16 * 1024
    #: ID-006: a user JWT is at most 4096 bytes.
    max_token: int = 4096
    #: ID-007: iat at most 60 s in the future.
    token_iat_skew_s: float = 60.0
    #: §8: G un-enlists a client after 30 days without a connection.
    inactive_unenlist_s: float = 30 * DAY
    audience: str = ""        # defaults to the gatekeeper's URL
    #: The framework's sample push token names ``iss`` "WHATSAPP" (S2 §3.2.2).
    issuer: str = "WHATSAPP"
    # -- mailbox and push ---------------------------------------------------------------------
    #: CHN-012 / §5.2: G keeps an offline client's messages for 30 days.
    mailbox_retention_s: float = 30 * DAY
    mailbox_max_per_login: int = 10_000
    push_token_lifetime_s: int = 3600
    # -- key directory ------------------------------------------------------------------------
    #: G sends low_pre_keys when fewer one-time pre-keys remain (E2E-020 asks for 50).
    low_pre_keys_threshold: int = 10
    max_one_time_pre_keys: int = 5000
    max_pre_keys_per_upload: int = 1000
    # -- outbound HTTP (JWKS, push, media) ---------------------------------------------------
    http_timeout_s: float = 10.0
    #: Total wall-clock budget of one outbound exchange (issue 13 §1): ``http_timeout_s`` bounds
    #: each read, so a provider trickling a byte per read would otherwise hold G indefinitely.
    exchange_deadline_s: float = 30.0
    #: A push answer is empty (CHN-015); more than this is not read.
    max_push_answer_bytes: int = 64 * 1024
    jwks_cache_s: float = 300.0
    #: Refetch a provider's JWKS for an unknown kid at most this often.
    jwks_min_refetch_s: float = 1.0
    max_jwks_bytes: int = 64 * 1024
    #: MED-013: providers declare at least 16 MiB; the fetcher allows some headroom.
    max_media_bytes: int = 32 * 1024 * 1024
    # -- simulated users ----------------------------------------------------------------------
    auto_delivery_receipts: bool = True
    auto_retry_receipts: bool = True
    #: E2E-017: at most 5 retry receipts per message id.
    max_retry_receipts: int = 5
    #: Messages a SimUser keeps for answering retry receipts.
    sent_history: int = 1000
    # -- evidence -----------------------------------------------------------------------------
    max_events: int = 200_000
