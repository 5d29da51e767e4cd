"""What G knows about each registered provider, and the provider's JWK Set cache.

The JWKS is fetched with httpx (timeout on every request, size cap), cached, and refetched
once when a token names an unknown ``kid`` (rate-limited so a hostile token cannot make G
hammer the provider).
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from .events import EventLog
from .settings import Clock, Settings
from .tokens import TokenError

__all__ = ["Provider"]


@dataclass
class Provider:
    provider_id: str
    jwks_url: str
    push_url: str
    media_base: str
    issuer: str
    #: The ``aud`` of G's push and media tokens.
    audience: str
    integrator: int
    verify: Any = True          # httpx ``verify``: True, False or an ssl.SSLContext
    _keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    _fetched_at: float | None = None

    async def fetch_jwks(self, client: httpx.AsyncClient, settings: Settings,
                         log: EventLog, *, clock: Clock | None = None) -> None:
        now = (clock or settings.clock)()
        try:
            async with asyncio.timeout(settings.exchange_deadline_s), \
                    client.stream("GET", self.jwks_url, timeout=settings.http_timeout_s) as r:
                body = b""
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > settings.max_jwks_bytes:
                        raise TokenError("provider JWKS exceeds the size limit", "ID-001")
                status = r.status_code
        except httpx.HTTPError as exc:
            log.append("jwks_fetched", None, provider=self.provider_id, ok=False,
                       error=type(exc).__name__)
            raise TokenError(f"provider JWKS unreachable: {type(exc).__name__}", "ID-001") from None
        except TimeoutError:
            log.append("jwks_fetched", None, provider=self.provider_id, ok=False, error="deadline")
            raise TokenError(f"provider JWKS not complete within the {settings.exchange_deadline_s:g} s "
                             "deadline", "ID-001") from None
        self._fetched_at = now
        keys: dict[str, dict[str, Any]] = {}
        try:
            doc = json.loads(body)
            for k in doc["keys"]:
                if isinstance(k, dict) and isinstance(k.get("kid"), str):
                    keys.setdefault(k["kid"], k)
        except (ValueError, KeyError, TypeError):
            log.append("jwks_fetched", None, provider=self.provider_id, ok=False, status=status)
            raise TokenError("provider JWKS is not a JSON object with a keys array", "ID-001") from None
        if status != 200:
            raise TokenError(f"provider JWKS answered {status}", "ID-001")
        self._keys = keys
        log.append("jwks_fetched", None, provider=self.provider_id, ok=True, kids=sorted(keys))

    async def key_for(self, kid: str, client: httpx.AsyncClient, settings: Settings,
                      log: EventLog, *, clock: Clock | None = None) -> dict[str, Any]:
        """The JWK for ``kid``, refetching once if it is unknown or the cache is stale
        (``clock``: the simulator's, default ``settings.clock``)."""
        now = (clock or settings.clock)()
        stale = self._fetched_at is None or now - self._fetched_at > settings.jwks_cache_s
        may_refetch = self._fetched_at is None or now - self._fetched_at >= settings.jwks_min_refetch_s
        if stale or (kid not in self._keys and may_refetch):
            await self.fetch_jwks(client, settings, log, clock=clock)
        key = self._keys.get(kid)
        if key is None:
            raise TokenError(f"kid {kid!r} is not in the provider's JWKS", "ID-005")
        return key
