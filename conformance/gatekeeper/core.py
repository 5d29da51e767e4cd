"""The gatekeeper simulator: the object that wires the state core, the protocol edges and the
HTTP server together, and owns the simulator's outbound I/O (JWKS, push, media fetches).

Start it with ``async with Gatekeeper() as gk:``; it serves one ASGI app (``app.py``) through
hypercorn. Everything a provider can observe, and everything it sends, lands in ``gk.log``.
Layers, lowest first (each imports only lower ones):

- leaves: ``settings``, ``events``, ``stanzas``, ``tokens``, ``enlistment`` (form parsing),
  ``directory``, ``mailbox``, ``media``, ``providers``, ``tls``;
- ``faults`` (pending injected faults), then ``state`` (the no-I/O core: accounts, users,
  groups, mailbox, routing rules);
- ``users`` (simulated G users) and the protocol edges: ``identity`` (token checks),
  ``enlist_handler``, ``handshake``, ``chat`` (the channel driver), ``routing`` (stanza
  semantics);
- ``script`` (the public fault-injection API) and ``app`` (the ASGI routes);
- this module, which wires them; ``server`` and ``cli`` around it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import ssl
from typing import Any, Self

import httpx

from reference_impl.channel import ClientHello

from .app import make_app
from .chat import ChatSession
from .directory import ProviderAccount
from .enlist_handler import enlist
from .enlistment import b64url_encode
from .handshake import authenticate
from .identity import TokenVerifier
from .media import MediaFetch, fetch, storage_reference_of
from .providers import Provider
from .routing import handle as handle_stanza
from .script import Script
from .server import AsgiServer
from .settings import Settings
from .state import Connection, GatekeeperState, TokenSeen
from .tokens import DEFAULT_ALG
from .users import SimUser

__all__ = ["Gatekeeper", "PushResult", "TokenSeen"]


@dataclasses.dataclass(frozen=True)
class PushResult:
    login: str
    status: int | None
    body_length: int
    http_version: str
    error: str | None = None


class Gatekeeper(GatekeeperState):
    def __init__(self, settings: Settings | None = None, *, noise_private: bytes | None = None,
                 key_alg: str = DEFAULT_ALG) -> None:
        super().__init__(settings, noise_private=noise_private, key_alg=key_alg)
        self.script = Script(self)
        self.verifier = TokenVerifier(self, self._client)
        self._pushing: set[str] = set()
        self._clients: dict[tuple[str, bool], httpx.AsyncClient] = {}
        self._server: Any = None
        self.url = ""
        self.public_url = ""
        self.ca_pem = ""

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, listen: str = "127.0.0.1", port: int = 0, tls: bool = False,
                    public_url: str | None = None) -> None:
        app = make_app(self, enlist=self.enlist, chat=self.open_chat)
        self._server = AsgiServer(app, listen=listen, port=port, tls=tls,
                                  max_ws_message=2 * self.settings.max_frame)
        self.url = await self._server.start()
        self.public_url = (public_url or self.url).rstrip("/")
        self.ca_pem = self._server.ca_pem
        if not self.settings.audience:
            self.settings.audience = self.public_url
        self.log.append("started", None, url=self.url, public_url=self.public_url, tls=tls)

    async def stop(self) -> None:
        for s in list(self.connections):
            s.close_soon(1001, "gatekeeper stopping")
        for s in list(self.connections):
            try:
                await s.wait_closed(2.0)  # type: ignore[attr-defined]
            except TimeoutError:
                pass
        await self.cancel_tasks()
        for c in self._clients.values():
            await c.aclose()
        self._clients.clear()
        if self._server is not None:
            await self._server.stop()
            self._server = None
        self.log.append("stopped", None)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what G publishes --------------------------------------------------------------------------
    def config_for_provider(self) -> dict[str, str]:
        """The harness ``GatekeeperConfig`` plus jwks_url, issuer and audience (spec §2)."""
        base = self.public_url
        ws = "wss" if base.startswith("https") else "ws"
        return {
            "enlist_url": f"{base}/3p/interop_reg",
            "chat_url": f"{ws}{base[base.index(':'):]}/chat",
            "noise_static_key": b64url_encode(self.noise_public),
            "media_host": f"{base}/media",
            "ca_certificates": self.ca_pem,
            "jwks_url": f"{base}/.well-known/oauth/openid/jwks",
            "issuer": self.settings.issuer,
            "audience": self.settings.audience,
            # The chat binding this endpoint speaks and, for wa, the root of its certificate
            # chain (spec §5.3): optional harness fields a provider may ignore under ``open``.
            "wire": self.settings.wire,
            "wa_root_key": b64url_encode(self.wa_root_public),
        }

    def register_provider(self, provider_id: str, jwks_url: str, push_url: str, media_base: str,
                          issuer: str, audience: str | None = None, *,
                          ca_certificates: str | None = None, verify_tls: bool = True) -> Provider:
        """Tell G about a provider: its JWKS, push receiver, media base and token issuer.
        ``audience`` is the ``aud`` of G's push tokens (defaults to ``provider_id``);
        ``verify_tls`` False: G does not verify the provider's certificate (``--insecure``)."""
        verify: Any = True
        if not verify_tls:
            verify = False
        elif ca_certificates:
            verify = ssl.create_default_context(cadata=ca_certificates)
        provider = Provider(provider_id, jwks_url, push_url, media_base.rstrip("/"), issuer,
                            audience or provider_id, integrator=len(self.providers) + 1,
                            verify=verify)
        self.providers[provider_id] = provider
        self.log.append("provider_registered", None, provider=provider_id, jwks_url=jwks_url,
                        push_url=push_url, media_base=media_base, issuer=issuer)
        return provider

    def _client(self, provider: Provider, http2: bool = False) -> httpx.AsyncClient:
        key = (provider.provider_id, http2)
        if key not in self._clients:
            self._clients[key] = httpx.AsyncClient(verify=provider.verify, http2=http2,
                                                   timeout=self.settings.http_timeout_s,
                                                   follow_redirects=False)
        return self._clients[key]

    # -- simulated users -------------------------------------------------------------------------
    async def create_user(self, name: str, consent: str = "opted_in", *,
                          exclude: set[str] | None = None) -> SimUser:
        digits = "49" + "".join(str(secrets.randbelow(10)) for _ in range(10))
        if consent == "excluded" and exclude is None:
            exclude = set(self.providers)
        user = SimUser(self, name, f"g:{digits}", f"+{digits}", consent, exclude or set(),
                       fetch_media=self.fetch_provider_media)
        self.users[user.id] = user
        self.log.append("user_created", None, user=user.id, name=name, consent=consent)
        return user

    # -- protocol edges --------------------------------------------------------------------------
    async def enlist(self, body: bytes, content_type: str, peer: str = "") -> dict[str, str]:
        """Validate one enlistment request; returns the JSON body G answers (always HTTP 200)."""
        return await enlist(self, self.verifier, body, content_type, peer)

    async def open_chat(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Run one chat WebSocket: Noise handshake, :func:`.handshake.authenticate`, then
        :func:`.routing.handle` for each stanza."""
        await ChatSession(self, scope, receive, send, authenticate=self.authenticate,
                          handle=lambda session, stanza: handle_stanza(self, session, stanza)).run()

    async def authenticate(self, remote_static: bytes, hello: ClientHello,
                           session: Connection) -> ProviderAccount:
        return await authenticate(self, self.verifier, remote_static, hello, session)

    def wake_offline(self, login: str) -> None:
        if login not in self._pushing:
            self.spawn(self._push_once(login))

    async def _push_once(self, login: str) -> None:
        # One push in flight per login: a burst of messages wakes the client once.
        self._pushing.add(login)
        try:
            await self.push(login)
        finally:
            self._pushing.discard(login)

    # -- push (§5.2) ----------------------------------------------------------------------------------
    async def push(self, login: str, *, token: str | None = None,
                   body: Any = None, **claim_overrides: Any) -> PushResult:
        """``POST {push_url}`` with ``{"to": sub}`` and G's bearer JWT; the outcome is logged.
        ``token``, ``body`` and claim overrides let the suite send malformed pushes."""
        acct = self.accounts.get(login)
        if acct is None:
            return PushResult(login, None, 0, "", "not enlisted")
        provider = self.providers[acct.provider_id]
        if token is None:
            token = self.keys.push_token(issuer=self.settings.issuer, audience=provider.audience,
                                         now=self.clock(),
                                         lifetime_s=self.settings.push_token_lifetime_s,
                                         **claim_overrides)
        payload = json.dumps({"to": acct.sub} if body is None else body).encode()
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        result = await self._post_push(provider, payload, headers, login)
        self.log.append("push_sent", login, to=acct.sub, status=result.status,
                        body_length=result.body_length, http_version=result.http_version,
                        error=result.error, pending=self.mailbox.count(login))
        return result

    async def _post_push(self, provider: Provider, payload: bytes, headers: dict[str, str],
                         login: str) -> PushResult:
        """One push exchange, bounded in time (``exchange_deadline_s``) and in answer size."""
        limit, size = self.settings.max_push_answer_bytes, 0
        try:
            async with asyncio.timeout(self.settings.exchange_deadline_s), self._client(provider).stream(
                    "POST", provider.push_url, content=payload, headers=headers,
                    timeout=self.settings.http_timeout_s) as r:
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        return PushResult(login, r.status_code, size, r.http_version,
                                          f"push answer exceeds {limit} bytes")
                return PushResult(login, r.status_code, size, r.http_version)
        except httpx.HTTPError as exc:
            return PushResult(login, None, 0, "", f"{type(exc).__name__}: {exc}"[:200])
        except TimeoutError:
            return PushResult(login, None, size, "", f"total deadline of "
                              f"{self.settings.exchange_deadline_s:g} s reached after {size} bytes")

    # -- media (§7) ------------------------------------------------------------------------------------
    async def fetch_provider_media(self, direct_path_or_ref: str,
                                   expected_enc_sha256: bytes | None = None, *,
                                   provider_id: str | None = None, method: str = "GET",
                                   http2: bool = False, with_token: bool = False,
                                   headers: dict[str, str] | None = None,
                                   login: str | None = None) -> MediaFetch:
        """``{method} {media_base}/{storage_reference}`` as G's media proxy does it: without
        credentials, as the public flow shows (S2 §5.1.1, MED-018); ``with_token`` adds a G
        bearer JWT, which the provider must ignore."""
        if provider_id is None:
            provider_id = self.accounts[login].provider_id if login in self.accounts else next(iter(self.providers))
        provider = self.providers[provider_id]
        ref = storage_reference_of(direct_path_or_ref)
        if ref is None:
            result = MediaFetch(url="", error="direct_path is not /interop/whatsapp/download/{id}/{ref}/ (MED-003)")
        else:
            h = dict(headers or {})
            if with_token:
                token = self.keys.push_token(issuer=self.settings.issuer, audience=provider.audience,
                                             now=self.clock(), lifetime_s=300)
                h["authorization"] = f"Bearer {token}"
            result = await fetch(self._client(provider, http2), f"{provider.media_base}/{ref}",
                                 method=method, headers=h, timeout=self.settings.http_timeout_s,
                                 max_bytes=self.settings.max_media_bytes,
                                 expected_enc_sha256=expected_enc_sha256,
                                 deadline=self.settings.exchange_deadline_s)
        self.log.append("media_fetched", login, method=method, **result.summary())
        return result
