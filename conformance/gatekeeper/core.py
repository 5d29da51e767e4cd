"""The gatekeeper simulator: state, routing between provider logins and simulated G users,
mailbox and push, and the public API the suite and the reference provider use.

Start it with ``async with Gatekeeper() as gk:``; it serves one ASGI app (``app.py``) through
hypercorn. Everything a provider can observe, and everything it sends, lands in ``gk.log``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import ssl
from collections import deque
from typing import Any, Self

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from reference_impl.channel import ClientHello
from reference_impl.wire import stanzas_pb2 as pb

from .chat import ChatSession, HandshakeRejected
from .directory import ProviderAccount, StanzaRejected
from .enlistment import EnlistmentRejected, b64url_encode, check_version, parse_form
from .events import EventLog
from .mailbox import Mailbox, MailboxFull
from .media import GMediaStore, MediaFetch, fetch, storage_reference_of
from .providers import Provider
from .script import Script
from .settings import Settings
from .stanzas import fresh_id
from .tokens import (
    GatekeeperKeys,
    TokenError,
    check_user_token_claims,
    unverified_header,
    verify_signature,
)
from .users import Group, SimUser

__all__ = ["Gatekeeper", "PushResult", "TokenSeen"]


@dataclasses.dataclass(frozen=True)
class TokenSeen:
    """A user JWT a provider presented (kept in memory for the suite's ID-005..ID-008 checks,
    never written to the evidence log)."""

    source: str           # "enlistment" or "handshake"
    token: str
    login: str | None
    accepted: bool
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class PushResult:
    login: str
    status: int | None
    body_length: int
    http_version: str
    error: str | None = None


class Gatekeeper:
    def __init__(self, settings: Settings | None = None, *, noise_private: bytes | None = None,
                 key_alg: str = "EdDSA") -> None:
        self.settings = settings or Settings()
        self.log = EventLog(self.settings.max_events)
        self.keys = GatekeeperKeys(key_alg)
        self.noise_private = noise_private or secrets.token_bytes(32)
        self.noise_public = X25519PrivateKey.from_private_bytes(
            self.noise_private).public_key().public_bytes_raw()
        self.providers: dict[str, Provider] = {}
        self.accounts: dict[str, ProviderAccount] = {}
        self.users: dict[str, SimUser] = {}
        self.groups: dict[str, Group] = {}
        # Through a lambda, so that a clock swapped into the settings later is used too.
        self.mailbox = Mailbox(lambda: self.settings.clock(), self.settings.mailbox_retention_s,
                               self.settings.mailbox_max_per_login)
        self.media = GMediaStore()
        self.sessions: dict[str, ChatSession] = {}
        #: Every open connection, authenticated or still in its handshake.
        self._conns: set[ChatSession] = set()
        self.script = Script(self)
        self._logins: dict[tuple[str, str], str] = {}
        self._enlist_times: dict[str, deque[float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pushing: set[str] = set()
        #: The last user JWTs presented at enlistment and handshake, newest last.
        self.tokens_seen: deque[TokenSeen] = deque(maxlen=1000)
        self._clients: dict[tuple[str, bool], httpx.AsyncClient] = {}
        self._server: Any = None
        self.url = ""
        self.public_url = ""
        self.ca_pem = ""

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, listen: str = "127.0.0.1", port: int = 0, tls: bool = False,
                    public_url: str | None = None) -> None:
        from .app import make_app
        from .server import AsgiServer

        self._server = AsgiServer(make_app(self), listen=listen, port=port, tls=tls,
                                  max_ws_message=2 * self.settings.max_frame)
        self.url = await self._server.start()
        self.public_url = (public_url or self.url).rstrip("/")
        self.ca_pem = self._server.ca_pem
        if not self.settings.audience:
            self.settings.audience = self.public_url
        self.log.append("started", None, url=self.url, public_url=self.public_url, tls=tls)

    async def stop(self) -> None:
        for s in list(self._conns):
            s.close_soon(1001, "gatekeeper stopping")
        for s in list(self._conns):
            try:
                await s.wait_closed(2.0)
            except TimeoutError:
                pass
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
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

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Background work tied to the gatekeeper's lifetime (cancelled by ``stop``)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def now_ms(self) -> int:
        return int(self.settings.clock() * 1000)

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
        }

    def register_provider(self, provider_id: str, jwks_url: str, push_url: str, media_base: str,
                          issuer: str, audience: str | None = None, *,
                          ca_certificates: str | None = None) -> Provider:
        """Tell G about a provider: its JWKS, push receiver, media base and token issuer.
        ``audience`` is the ``aud`` of G's push tokens (defaults to ``provider_id``)."""
        verify: Any = True
        if ca_certificates:
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
        user = SimUser(self, name, f"g:{digits}", f"+{digits}", consent, exclude or set())
        self.users[user.id] = user
        self.log.append("user_created", None, user=user.id, name=name, consent=consent)
        return user

    def find_user(self, ident: str) -> SimUser | None:
        user = self.users.get(ident)
        if user is None:
            user = next((u for u in self.users.values() if u.phone == ident), None)
        return user

    def create_group(self, owner: SimUser, members: list[str]) -> Group:
        """A group of G users and provider logins; providers get a group_membership notice."""
        group = Group(f"grp.{secrets.token_hex(6)}", [owner.id] + [m for m in members if m != owner.id])
        self.groups[group.group_id] = group
        self.log.append("group_created", None, group_id=group.group_id, members=group.members)
        self._membership(group, added=group.members, removed=[])
        return group

    def change_group(self, group: Group, *, add: list[str] = (), remove: list[str] = ()) -> None:  # type: ignore[assignment]
        group.members = [m for m in group.members if m not in remove] + [a for a in add if a not in group.members]
        self.log.append("group_changed", None, group_id=group.group_id, added=list(add), removed=list(remove))
        self._membership(group, added=list(add), removed=list(remove), extra=list(remove))

    def _membership(self, group: Group, *, added: list[str], removed: list[str],
                    extra: list[str] = ()) -> None:  # type: ignore[assignment]
        note = pb.GroupMembership(group_id=group.group_id, participants=group.members,
                                  added=added, removed=removed)
        for m in list(group.members) + list(extra):
            if m in self.accounts:
                self.notify(m, pb.Notification(group_membership=note))

    # -- enlistment (§4.2) -----------------------------------------------------------------------
    async def enlist(self, body: bytes, content_type: str, peer: str = "") -> dict[str, str]:
        """Validate one enlistment request; returns the JSON body G answers (always HTTP 200)."""
        self.log.append("enlist_request", None, peer=peer, content_type=content_type[:80],
                        size=len(body))
        try:
            injected = self.script._take_enlistment_fault()
            form = parse_form(body, content_type)
            try:
                provider, sub = await self._verify_token(form.token, "ENL-005")
            except EnlistmentRejected as exc:
                self.tokens_seen.append(TokenSeen("enlistment", form.token, None, False, exc.reason))
                raise
            self._observe_enlist_rate(provider.provider_id, sub)
            if injected is not None:
                raise EnlistmentRejected(injected, "scripted", f"scripted failure {injected}")
        except EnlistmentRejected as exc:
            self.log.append("enlist_failed", None, reason=exc.reason, requirement=exc.requirement,
                            detail=exc.detail, peer=peer)
            return {"status": "fail", "reason": exc.reason}
        now = self.settings.clock()
        login = self._logins.get((provider.provider_id, sub))
        if login is None:
            login = f"{provider.integrator}-{secrets.randbelow(10**14):014d}@interop"
            self._logins[(provider.provider_id, sub)] = login
        self.tokens_seen.append(TokenSeen("enlistment", form.token, login, True))
        old = self.accounts.get(login)
        acct = ProviderAccount(
            login=login, provider_id=provider.provider_id, sub=sub, authkey=form.authkey,
            registration_id=form.registration_id, identity_key=form.identity_key,
            signed_pre_key_id=form.signed_pre_key_id, signed_pre_key=form.signed_pre_key,
            signed_pre_key_signature=form.signed_pre_key_signature, enlisted_at=now, last_seen=now,
            blocklist=old.blocklist if old else set(),
        )
        acct.used_signed_pre_key_ids.add(form.signed_pre_key_id)
        if old is not None:
            acct.used_pre_key_ids = old.used_pre_key_ids if old.identity_key == acct.identity_key else set()
            session = self.sessions.get(login)
            if session is not None and old.authkey != acct.authkey:
                session.close_soon(1008, "re-enlisted with another authkey")
        self.accounts[login] = acct
        self.log.append("enlisted", login, provider=provider.provider_id, sub=sub,
                        registration_id=form.registration_id, version=form.version,
                        re_enlistment=old is not None,
                        identity_changed=old is not None and old.identity_key != acct.identity_key,
                        peer=peer)
        return {"status": "ok", "login": login}

    def _observe_enlist_rate(self, provider_id: str, sub: str) -> None:
        # ENL-007: at most 3 enlistment requests for the same user within 60 s (observed).
        now = self.settings.clock()
        times = self._enlist_times.setdefault(f"{provider_id}/{sub}", deque(maxlen=8))
        times.append(now)
        if len([t for t in times if now - t < 60]) > 3:
            self.log.append("violation", self._logins.get((provider_id, sub)), requirement="ENL-007",
                            detail="more than 3 enlistment requests for one user within 60 s", sub=sub)

    async def _verify_token(self, token: str, requirement: str) -> tuple[Provider, str]:
        """Provider (by ``iss``) and ``sub`` of a user JWT, after every ID-005..007 check."""
        try:
            header = unverified_header(token, self.settings.max_token)
            try:
                unverified = jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                raise TokenError("token payload does not decode", "ID-005") from None
            provider = next((p for p in self.providers.values()
                             if p.issuer == unverified.get("iss")), None)
            if provider is None:
                raise EnlistmentRejected("bad_integrator", "ID-007",
                                         f"no registered provider issues {str(unverified.get('iss'))[:80]!r}")
            key = await provider.key_for(header["kid"], self._client(provider), self.settings, self.log)
            claims = verify_signature(token, key, header["alg"])
            sub = check_user_token_claims(claims, issuer=provider.issuer,
                                          audience=self.settings.audience,
                                          clock=self.settings.clock,
                                          iat_skew_s=self.settings.token_iat_skew_s)
        except TokenError as exc:
            raise EnlistmentRejected("bad_token", exc.requirement or requirement, exc.detail) from None
        return provider, sub

    # -- chat channel (§5.1) -----------------------------------------------------------------------
    async def _authenticate(self, remote_static: bytes, hello: ClientHello,
                            session: ChatSession) -> ProviderAccount:
        un = pb.ERROR_CODE_UN_ENLISTED
        acct = next((a for a in self.accounts.values() if a.authkey == remote_static), None)
        if acct is None:
            raise HandshakeRejected(un, "client static key is not an enlisted authkey", "CHN-002")
        session.login = acct.login
        if hello.login != acct.login:
            raise HandshakeRejected(un, "handshake login is not the login enlisted with this authkey", "CHN-004")
        if self.settings.clock() - acct.last_seen > self.settings.inactive_unenlist_s:
            self.unenlist(acct.login, reason="inactive 30 days")
            raise HandshakeRejected(un, "login un-enlisted after 30 days without a connection", "CON-011")
        try:
            check_version(hello.protocol_version, "CHN-004")
        except EnlistmentRejected as exc:
            raise HandshakeRejected(pb.ERROR_CODE_PROTOCOL_VERSION, exc.detail, "CHN-004") from None
        try:
            provider, sub = await self._verify_token(hello.jwt, "CHN-004")
        except EnlistmentRejected as exc:
            self.tokens_seen.append(TokenSeen("handshake", hello.jwt, acct.login, False, exc.reason))
            raise HandshakeRejected(pb.ERROR_CODE_BAD_TOKEN, exc.detail, exc.requirement) from None
        self.tokens_seen.append(TokenSeen("handshake", hello.jwt, acct.login, True))
        if provider.provider_id != acct.provider_id or sub != acct.sub:
            raise HandshakeRejected(pb.ERROR_CODE_BAD_TOKEN, "token names another user than the enlisted one", "CHN-004")
        fault = self.script._take_connect_fault(acct.login)
        if fault is not None:
            if fault == pb.ERROR_CODE_UN_ENLISTED:
                self.unenlist(acct.login, reason="scripted")
            raise HandshakeRejected(fault, "scripted connection failure", "scripted")
        return acct

    def _attach(self, session: ChatSession) -> None:
        assert session.login is not None
        old = self.sessions.get(session.login)
        if old is not None and old is not session:
            # CHN-010: one connection per login; the newer one wins.
            old.log("connection_replaced", by=session.conn, requirement="CHN-010")
            old.close_soon(1008, "replaced by a newer connection")
        self.sessions[session.login] = session
        if session.account is not None:
            session.account.last_seen = self.settings.clock()
        expired = self.mailbox.expire(session.login)
        if expired:
            self.log.append("mailbox_expired", session.login, count=len(expired))
        session.kick()

    def _detach(self, session: ChatSession) -> None:
        if session.login and self.sessions.get(session.login) is session:
            del self.sessions[session.login]
            acct = self.accounts.get(session.login)
            if acct is not None:
                acct.last_seen = self.settings.clock()

    def is_connected(self, login: str) -> bool:
        return login in self.sessions

    # -- routing (§5, §8) -----------------------------------------------------------------------------
    def check_route(self, sender: str, recipient: str, content: bool = True) -> None:
        """Refuse what G would refuse: unknown user, blocks, missing consent (CON-002, CON-012)."""
        acct = self.accounts.get(sender)
        user = self.users.get(recipient)
        if user is None and recipient not in self.accounts:
            raise StanzaRejected(pb.ERROR_CODE_UNKNOWN_USER, "no such user", user=recipient)
        if acct is not None and recipient in acct.blocklist and content:
            raise StanzaRejected(pb.ERROR_CODE_BLOCKED, "sender blocked the recipient", "CON-007", user=recipient)
        if user is not None:
            if sender in user.blocked:
                raise StanzaRejected(pb.ERROR_CODE_BLOCKED, "recipient blocked the sender", "CON-012", user=recipient)
            if content and acct is not None and not user.consent_for(acct.provider_id):
                raise StanzaRejected(pb.ERROR_CODE_NOT_OPTED_IN, "recipient has not opted in to this provider",
                                     "CON-002", user=recipient)

    def route(self, recipient: str, stanza: pb.Stanza) -> None:
        user = self.users.get(recipient)
        if user is not None:
            # After the ack has gone out: the SimUser's answers must follow G's ack.
            asyncio.get_running_loop().call_soon(self._to_user, user, stanza)
        else:
            self.deliver(recipient, stanza)

    def _to_user(self, user: SimUser, stanza: pb.Stanza) -> None:
        try:
            user._receive(stanza)
        except Exception as exc:  # noqa: BLE001 - a simulator bug must not end the run silently
            self.log.append("internal_error", stanza.message.sender or None, user=user.id,
                            id=stanza.id, error=f"{type(exc).__name__}: {exc}"[:300])

    def fan_out(self, group: Group, stanza: pb.Stanza) -> None:
        sender = stanza.message.sender
        self.log.append("group_fan_out", sender, group_id=group.group_id, id=stanza.id,
                        to=[m for m in group.members if m != sender])
        for member in group.members:
            if member != sender:
                copy = pb.Stanza()
                copy.CopyFrom(stanza)
                self.route(member, copy)

    def deliver(self, login: str, stanza: pb.Stanza) -> bool:
        """Queue a G-originated stanza for a provider login: mailbox first, then the socket
        if connected, else a push (§5.2). Scripted drops and reorders apply to messages."""
        if login not in self.accounts:
            self.log.append("delivery_failed", login, id=stanza.id, reason="not enlisted")
            return False
        for st in self.script._shape_delivery(login, stanza):
            try:
                self.mailbox.put(login, st)
            except MailboxFull as exc:
                self.log.append("delivery_failed", login, id=st.id, reason=str(exc))
                continue
            self.log.append("queued", login, id=st.id, type=st.WhichOneof("body"),
                            online=login in self.sessions, pending=self.mailbox.count(login))
        session = self.sessions.get(login)
        if session is not None:
            session.kick()
        elif self.mailbox.count(login) and login not in self._pushing:
            self.spawn(self._push_once(login))
        return True

    async def _push_once(self, login: str) -> None:
        # One push in flight per login: a burst of messages wakes the client once.
        self._pushing.add(login)
        try:
            await self.push(login)
        finally:
            self._pushing.discard(login)

    def notify(self, login: str, notification: pb.Notification) -> str:
        sid = fresh_id("n")
        self.deliver(login, pb.Stanza(id=sid, notification=notification))
        return sid

    def maybe_low_pre_keys(self, acct: ProviderAccount) -> None:
        # E2E-020: tell the client once when its one-time pre-keys run low.
        if len(acct.one_time) < self.settings.low_pre_keys_threshold and not acct.low_notified:
            acct.low_notified = True
            self.notify(acct.login, pb.Notification(low_pre_keys=pb.LowPreKeys(count=len(acct.one_time))))

    def unenlist(self, login: str, reason: str) -> None:
        """Forget the enlistment (the login stays reserved for the same user)."""
        acct = self.accounts.pop(login, None)
        self.log.append("unenlisted", login, reason=reason, existed=acct is not None)

    def delete_account(self, login: str, *, close: bool = True) -> None:
        """Deletion request (§8, CON-008): enlistment, keys, mailbox and login are gone."""
        acct = self.accounts.pop(login, None)
        dropped = self.mailbox.clear(login)
        if acct is not None:
            self._logins.pop((acct.provider_id, acct.sub), None)
        self.log.append("deleted", login, mailbox_dropped=dropped)
        session = self.sessions.get(login)
        if close and session is not None:
            session.close_soon(1000, "deleted")

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
                                         subject=acct.sub, now=self.settings.clock(),
                                         lifetime_s=self.settings.push_token_lifetime_s,
                                         **claim_overrides)
        payload = json.dumps({"to": acct.sub} if body is None else body).encode()
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        try:
            r = await self._client(provider).post(provider.push_url, content=payload, headers=headers,
                                                  timeout=self.settings.http_timeout_s)
            result = PushResult(login, r.status_code, len(r.content), r.http_version)
        except httpx.HTTPError as exc:
            result = PushResult(login, None, 0, "", f"{type(exc).__name__}: {exc}"[:200])
        self.log.append("push_sent", login, to=acct.sub, status=result.status,
                        body_length=result.body_length, http_version=result.http_version,
                        error=result.error, pending=self.mailbox.count(login))
        return result

    # -- media (§7) ------------------------------------------------------------------------------------
    async def fetch_provider_media(self, direct_path_or_ref: str,
                                   expected_enc_sha256: bytes | None = None, *,
                                   provider_id: str | None = None, method: str = "GET",
                                   http2: bool = False, with_token: bool = True,
                                   headers: dict[str, str] | None = None,
                                   login: str | None = None) -> MediaFetch:
        """``{method} {media_base}/{storage_reference}`` with G's bearer JWT (MED-009)."""
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
                                             subject="media", now=self.settings.clock(), lifetime_s=300)
                h["authorization"] = f"Bearer {token}"
            result = await fetch(self._client(provider, http2), f"{provider.media_base}/{ref}",
                                 method=method, headers=h, timeout=self.settings.http_timeout_s,
                                 max_bytes=self.settings.max_media_bytes,
                                 expected_enc_sha256=expected_enc_sha256)
        self.log.append("media_fetched", login, method=method, **result.summary())
        return result
