"""The gatekeeper's state core: accounts, users, groups, mailbox, media store, keys and the
evidence log, and the rules that route a stanza between them (spec §4.2, §5, §8).

Why apart from :mod:`.core`: this layer does no I/O and knows nothing of HTTP, WebSockets or
Noise. The protocol edges (:mod:`.enlist_handler`, :mod:`.handshake`, :mod:`.chat`,
:mod:`.routing`) call into it; it reaches a connection or a simulated user only through the
small protocols below, and asks its owner for I/O through one overridable hook
(:meth:`GatekeeperState.wake_offline`, a push in :class:`~.core.Gatekeeper`).
"""
from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections import deque
from collections.abc import Coroutine
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from conformance.redact import register_secret

from reference_impl.signal.keys import KeyPair, PrivateKey
from reference_impl.wa.certs import make_cert_chain
from reference_impl.wire import stanzas_pb2 as pb

from .directory import ProviderAccount, StanzaRejected
from .enlistment import EnlistmentForm
from .events import EventLog
from .clock import SimClock
from .faults import Faults
from .mailbox import Mailbox, MailboxFull
from .media import GMediaStore
from .observe import EnlistmentOverride, Recording
from .providers import Provider
from .settings import Settings
from .stanzas import fresh_id
from .tokens import DEFAULT_ALG, GatekeeperKeys

__all__ = ["Connection", "GatekeeperState", "Group", "TokenSeen", "UserEndpoint"]


@dataclasses.dataclass(frozen=True)
class TokenSeen:
    """A user JWT a provider presented (kept in memory for the suite's ID-005..ID-008 checks,
    never written to the evidence log)."""

    source: str           # "enlistment" or "handshake"
    token: str
    login: str | None
    accepted: bool
    reason: str = ""


@dataclasses.dataclass
class Group:
    group_id: str
    members: list[str]


class Connection(Protocol):
    """What the core needs of one chat connection (:class:`~.chat.ChatSession`)."""

    conn: str
    login: str | None
    account: ProviderAccount | None

    def log(self, kind: str, **detail: Any) -> None: ...
    def reply(self, stanza: pb.Stanza) -> None: ...
    def kick(self) -> None: ...
    def close_soon(self, code: int, reason: str) -> None: ...
    async def ping(self) -> asyncio.Future[None]: ...


class UserEndpoint(Protocol):
    """What the core needs of one simulated G user (:class:`~.users.SimUser`)."""

    id: str
    phone: str
    consent: str
    excluded: set[str]
    blocked: set[str]

    def consent_for(self, provider_id: str) -> bool: ...
    def receive(self, stanza: pb.Stanza) -> None: ...
    def take_bundle(self) -> pb.KeyBundle: ...
    def handle_reachability_ping(self, login: str) -> None: ...


class GatekeeperState:
    def __init__(self, settings: Settings | None = None, *, noise_private: bytes | None = None,
                 key_alg: str = DEFAULT_ALG) -> None:
        self.settings = settings or Settings()
        self.log = EventLog(self.settings.max_events)
        #: All simulator time (see :mod:`.clock`): ``settings.clock`` plus what was advanced.
        self.clock = SimClock(lambda: self.settings.clock(), on_advance=self._clock_advanced)
        self.keys = GatekeeperKeys(key_alg)
        self.noise_private = noise_private or secrets.token_bytes(32)
        register_secret(self.noise_private, "gatekeeper Noise static key")
        self.noise_public = X25519PrivateKey.from_private_bytes(
            self.noise_private).public_key().public_bytes_raw()
        self.providers: dict[str, Provider] = {}
        self.accounts: dict[str, ProviderAccount] = {}
        self.users: dict[str, UserEndpoint] = {}
        self.groups: dict[str, Group] = {}
        self.mailbox = Mailbox(self.clock, self.settings.mailbox_retention_s,
                               self.settings.mailbox_max_per_login)
        self.media = GMediaStore()
        self.faults = Faults(self.log)
        #: The authenticated connection of each login (CHN-010: one per login).
        self.sessions: dict[str, Connection] = {}
        #: Every open connection, authenticated or still in its handshake.
        self.connections: set[Connection] = set()
        self.logins: dict[tuple[str, str], str] = {}
        self._enlist_times: dict[str, deque[float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: The last user JWTs presented at enlistment and handshake, newest last.
        self.tokens_seen: deque[TokenSeen] = deque(maxlen=1000)
        #: Open recordings and enlistment overrides (see :mod:`.observe`; opened by the script).
        self.recordings: list[Recording] = []
        self.enlistment_overrides: list[EnlistmentOverride] = []
        #: Static keys presented instead of the published one while set (CHN-003), newest last.
        self.noise_impostors: list[bytes] = []
        # wa binding (W14): G's certificate chain under the kit's own test root. The provider
        # under test learns the root's public key from the harness configuration.
        self._wa_root = PrivateKey.generate()
        register_secret(self._wa_root.serialize(), "gatekeeper wa root key")
        self.wa_root_public = self._wa_root.public_key().u
        self._wa_intermediate = KeyPair.generate()
        self._wa_chain: bytes | None = None

    def wa_cert_chain(self) -> bytes:
        """The chain proving the *published* static key: an impostor key (CHN-003) fails it."""
        if self._wa_chain is None:
            self._wa_chain = make_cert_chain(root=self._wa_root, intermediate=self._wa_intermediate,
                                             server_static=self.noise_public)
        return self._wa_chain

    def handshake_noise_private(self) -> bytes:
        """The Noise static key G uses for a handshake starting now."""
        return self.noise_impostors[-1] if self.noise_impostors else self.noise_private

    # -- time and background work --------------------------------------------------------------
    def now_ms(self) -> int:
        return self.clock.now_ms()

    def _clock_advanced(self, seconds: float, offset: float) -> None:
        self.log.append("clock_advanced", None, seconds=seconds, offset=offset)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Background work tied to the gatekeeper's lifetime (cancelled by ``stop``)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_tasks(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake_offline(self, login: str) -> None:
        """Hook: messages wait for ``login``, which has no connection. The simulator pushes."""

    # -- users and groups ------------------------------------------------------------------------
    def find_user(self, ident: str) -> UserEndpoint | None:
        user = self.users.get(ident)
        if user is None:
            user = next((u for u in self.users.values() if u.phone == ident), None)
        return user

    def create_group(self, owner: UserEndpoint, members: list[str]) -> Group:
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

    # -- consent (§8) ------------------------------------------------------------------------------
    def revoke_consent(self, user: UserEndpoint, provider_id: str | None = None) -> list[str]:
        """The user opts out (``provider_id`` None) or excludes one provider; every enlisted login
        concerned gets ``consent_revoked``. Returns the notified logins."""
        if provider_id is None:
            user.consent = "not_opted_in"
        else:
            user.consent = "excluded"
            user.excluded.add(provider_id)
        return self._broadcast(pb.Notification(consent_revoked=pb.ConsentRevoked(user=user.id)),
                               provider_id)

    def grant_consent(self, user: UserEndpoint, provider_id: str | None = None) -> list[str]:
        if provider_id is None:
            user.consent, user.excluded = "opted_in", set()
        else:
            if user.consent == "not_opted_in":
                user.excluded = set(self.providers)
            user.consent = "opted_in"
            user.excluded.discard(provider_id)
        return self._broadcast(pb.Notification(consent_granted=pb.ConsentGranted(user=user.id)),
                               provider_id)

    def _broadcast(self, note: pb.Notification, provider_id: str | None) -> list[str]:
        logins = [a.login for a in self.accounts.values()
                  if provider_id is None or a.provider_id == provider_id]
        for login in logins:
            self.notify(login, note)
        return logins

    # -- enlistment records (§4.2) -----------------------------------------------------------------
    def observe_enlist_rate(self, provider_id: str, sub: str) -> None:
        # ENL-007: at most 3 enlistment requests for the same user within 60 s (observed).
        now = self.clock()
        times = self._enlist_times.setdefault(f"{provider_id}/{sub}", deque(maxlen=8))
        times.append(now)
        if len([t for t in times if now - t < 60]) > 3:
            self.log.append("violation", self.logins.get((provider_id, sub)), requirement="ENL-007",
                            detail="more than 3 enlistment requests for one user within 60 s", sub=sub)

    def record_enlistment(self, provider: Provider, sub: str, form: EnlistmentForm,
                          peer: str) -> str:
        """Keep a validated enlistment: the same user keeps its login; a new authkey ends the
        old connection. Returns the login."""
        now = self.clock()
        login = self.logins.get((provider.provider_id, sub))
        if login is None:
            login = f"{provider.integrator}-{secrets.randbelow(10**14):014d}@interop"
            self.logins[(provider.provider_id, sub)] = login
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
        return login

    def account_for_authkey(self, authkey: bytes) -> ProviderAccount | None:
        return next((a for a in self.accounts.values() if a.authkey == authkey), None)

    def unenlist(self, login: str, reason: str) -> None:
        """Forget the enlistment (the login stays reserved for the same user)."""
        acct = self.accounts.pop(login, None)
        self.log.append("unenlisted", login, reason=reason, existed=acct is not None)

    def delete_account(self, login: str, *, close: bool = True) -> None:
        """Deletion request (§8, CON-008): enlistment, keys, mailbox and login are gone."""
        acct = self.accounts.pop(login, None)
        dropped = self.mailbox.clear(login)
        if acct is not None:
            self.logins.pop((acct.provider_id, acct.sub), None)
        self.log.append("deleted", login, mailbox_dropped=dropped)
        session = self.sessions.get(login)
        if close and session is not None:
            session.close_soon(1000, "deleted")

    # -- connections (§5.1) ------------------------------------------------------------------------
    def attach(self, session: Connection) -> None:
        """An authenticated connection takes over its login."""
        assert session.login is not None
        old = self.sessions.get(session.login)
        if old is not None and old is not session:
            # CHN-010: one connection per login; the newer one wins.
            old.log("connection_replaced", by=session.conn, requirement="CHN-010")
            old.close_soon(1008, "replaced by a newer connection")
        self.sessions[session.login] = session
        if session.account is not None:
            session.account.last_seen = self.clock()
        expired = self.mailbox.expire(session.login)
        if expired:
            self.log.append("mailbox_expired", session.login, count=len(expired))
        session.kick()

    def detach(self, session: Connection) -> None:
        if session.login and self.sessions.get(session.login) is session:
            del self.sessions[session.login]
            acct = self.accounts.get(session.login)
            if acct is not None:
                acct.last_seen = self.clock()

    def is_connected(self, login: str) -> bool:
        return login in self.sessions

    # -- routing (§5, §8) -----------------------------------------------------------------------------
    def check_route(self, sender: str, recipient: str, content: bool = True) -> bool:
        """Refuse what G would refuse: unknown user, missing consent (CON-002), a message to a
        user the sender blocked (CON-007). Returns False when G accepts the stanza but
        withholds it: the recipient blocked the sender. A block is never disclosed (CON-013):
        the blocked sender gets the same ack as for a delivered stanza and never an error."""
        acct = self.accounts.get(sender)
        user = self.users.get(recipient)
        if user is None and recipient not in self.accounts:
            raise StanzaRejected(pb.ERROR_CODE_UNKNOWN_USER, "no such user", user=recipient)
        if acct is not None and recipient in acct.blocklist and content:
            raise StanzaRejected(pb.ERROR_CODE_MALFORMED, "message to a user the sender blocked",
                                 "CON-007", user=recipient)
        if user is not None:
            if sender in user.blocked:
                self.log.append("withheld", sender, recipient=recipient,
                                reason="the recipient blocked the sender (not disclosed)")
                return False
            if content and acct is not None and not user.consent_for(acct.provider_id):
                raise StanzaRejected(pb.ERROR_CODE_NOT_OPTED_IN, "recipient has not opted in to this provider",
                                     "CON-002", user=recipient)
        return True

    def route(self, recipient: str, stanza: pb.Stanza) -> None:
        user = self.users.get(recipient)
        if user is not None:
            # After the ack has gone out: the SimUser's answers must follow G's ack.
            asyncio.get_running_loop().call_soon(self._to_user, user, stanza)
        else:
            self.deliver(recipient, stanza)

    def _to_user(self, user: UserEndpoint, stanza: pb.Stanza) -> None:
        try:
            user.receive(stanza)
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
        for st in self.faults.shape_delivery(login, stanza):
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
        elif self.mailbox.count(login):
            self.wake_offline(login)
        return True

    def relay_ephemeral(self, login: str, stanza: pb.Stanza) -> bool:
        """A chatstate for a provider login (§6.5): sent at once when it is connected, else
        dropped; never queued in the mailbox, never pushed. Returns whether it went out."""
        session = self.sessions.get(login)
        if session is None:
            self.log.append("ephemeral_dropped", login, id=stanza.id, type=stanza.WhichOneof("body"),
                            reason="offline")
            return False
        session.reply(stanza)
        return True

    def notify(self, login: str, notification: pb.Notification) -> str:
        sid = fresh_id("n")
        self.deliver(login, pb.Stanza(id=sid, notification=notification))
        return sid

    def maybe_low_pre_keys(self, acct: ProviderAccount) -> None:
        # E2E-020: tell the client once when its one-time pre-keys run low.
        if len(acct.one_time) < self.settings.low_pre_keys_threshold and not acct.low_notified:
            acct.low_notified = True
            self.notify(acct.login, pb.Notification(low_pre_keys=pb.LowPreKeys(count=len(acct.one_time))))
