"""Settings of the reference provider: one frozen dataclass, no globals.

Everything the server, the clients and the harness need to know about their environment is
here; the gatekeeper's coordinates (enlistment URL, chat URL, Noise key, JWKS, issuer,
audience) arrive later through the harness ``/reset`` call and live in :class:`GatekeeperSettings`.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "PROFILE_VERSION",
    "HARNESS_VERSION",
    "DEFAULT_MAX_BLOB_SIZE",
    "ProviderConfig",
    "GatekeeperSettings",
]

#: The interop profile version this provider implements (health, harness ``/info``).
PROFILE_VERSION = "1.1.0"
HARNESS_VERSION = "1.0.0"
#: MED-013: the declared maximum must be at least 16 MiB.
DEFAULT_MAX_BLOB_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class GatekeeperSettings:
    """What G publishes to the provider (spec §2), as the harness ``/reset`` hands it over."""

    enlist_url: str
    chat_url: str
    noise_static_key: bytes
    media_host: str
    ca_certificates: str = ""
    #: G's JWK Set, used to verify push tokens (CHN-016).
    jwks_url: str = ""
    #: G's issuer: the ``iss`` of G's push tokens (CHN-017).
    issuer: str = ""
    #: The ``aud`` value provider user tokens must name (ID-007).
    audience: str = ""
    #: The chat-channel binding G's endpoint speaks: ``open`` or ``wa`` (spec §5.3).
    wire: str = "open"
    #: wa: the root key G's certificate chain must chain up to (W14), 32 bytes.
    wa_root_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="refprov-")))
    #: Path prefix under which media is uploaded and served (provider-server.yaml: /media).
    media_base: str = "/media"
    max_blob_size: int = DEFAULT_MAX_BLOB_SIZE
    #: Largest JSON body any endpoint reads (push, harness).
    max_json_body: int = 64 * 1024
    #: Harness media bodies are base64 plaintext, so they may be larger than the blob limit.
    max_harness_body: int = 32 * 1024 * 1024
    #: Lifetime of user JWTs in seconds (ID-008: at most 24 h).
    token_lifetime: int = 3600
    #: Issuer of user tokens; empty means the server's base URL once it is known.
    issuer: str = ""
    #: The provider's own audience, which G names in push tokens; empty means the base URL.
    push_audience: str = ""
    #: ``integrator_id`` in media direct paths (MED-003).
    integrator_id: str = "refprov"
    #: One-time pre-keys: batch size after enlistment; replenish to this after low_pre_keys.
    prekey_batch: int = 100
    #: Default gatekeeper config (tests and the CLI may set it before /reset).
    gatekeeper: GatekeeperSettings | None = None
    faults: frozenset[str] = frozenset()
    #: Seconds any single network wait may take before the client gives up on it.
    network_timeout: float = 10.0

    def with_(self, **changes: object) -> "ProviderConfig":
        return replace(self, **changes)
