"""What every client shares (settings, storage, token issuer, HTTP clients) and the state a
new user starts with."""
from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ..config import GatekeeperSettings, ProviderConfig
from ..faults import Faults
from ..storage import Storage
from ..tokens import TokenIssuer

__all__ = ["ClientContext", "default_state", "now_ms", "PROFILE_MAX_SKIPPED_KEYS",
           "MAX_PRE_KEY_ID"]

#: E2E-005 / GRP-004: the profile allows at most 2000 skipped message keys (libsignal: 25 000).
PROFILE_MAX_SKIPPED_KEYS = 2000
#: Pre-key and signed pre-key ids are 24-bit.
MAX_PRE_KEY_ID = 0xFFFFFF


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class ClientContext:
    """What every client shares: settings, storage, the token issuer and HTTP clients."""

    config: ProviderConfig
    faults: Faults
    storage: Storage
    tokens: TokenIssuer
    gatekeeper: Callable[[], GatekeeperSettings | None]
    g_http: Callable[[], httpx.AsyncClient]
    upload_url: Callable[[], str]
    own_http: Callable[[], httpx.AsyncClient]
    on_opt_out: Callable[[str], Awaitable[None]]
    #: Called with the handle once G acknowledged an account's deletion request (CON-014).
    on_account_deleted: Callable[[str], Awaitable[None]] | None = None


def default_state() -> dict[str, Any]:
    return {
        "authkey": secrets.token_bytes(32).hex(), "login": "", "enlisted": False,
        "opted_out": False, "deletion_pending": False, "online": False, "wake_on_push": True,
        "next_pre_key_id": 1, "next_spk_id": 1, "spk_id": 0, "needs_pre_keys": False,
        "needs_blocklist": False, "spk_upload_pending": False, "blocked": [], "block_ops": [],
        "consent": {}, "pings": {}, "retry_sent": {}, "enlist_attempts": [],
        "identity_notified": {},
        # seconds the harness moved this client's clock ahead of wall time (ClientClock)
        "clock_offset_s": 0.0,
        # previous signed pre-key id (str) -> when it was replaced, on the client's clock (E2E-021)
        "spk_retired": {},
        # gid -> {"participants": [...], "member": bool, "key_holders": [...]}; key_holders are
        # the participants that were sent the client's current sender key (GRP-001, GRP-005).
        "groups": {},
        # f"{sender}\n{message id}" -> group id, for group messages we asked to be resent
        "retry_groups": {},
    }
