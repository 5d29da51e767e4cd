"""Who may open the chat channel (spec §5.1): the checks after a Noise XX handshake completes.

The client's static key must be an enlisted authkey, the ``ClientHello`` must name that
login, a supported version and a valid token of the same user; a scripted connect fault
applies last. :class:`~.chat.ChatSession` calls :func:`authenticate` through the callable the
simulator wires in, so the channel driver knows nothing of accounts or tokens.
"""
from __future__ import annotations

from reference_impl.channel import ClientHello
from reference_impl.wire import stanzas_pb2 as pb

from .directory import ProviderAccount
from .enlistment import EnlistmentRejected, check_version
from .identity import TokenVerifier
from .observe import HandshakeRecord
from .state import Connection, GatekeeperState, TokenSeen

__all__ = ["HandshakeRejected", "authenticate"]


class HandshakeRejected(Exception):
    """The handshake completed cryptographically but G refuses the client (§5.1)."""

    def __init__(self, code: int, detail: str, requirement: str) -> None:
        super().__init__(detail)
        self.code, self.detail, self.requirement = code, detail, requirement


async def authenticate(state: GatekeeperState, verifier: TokenVerifier, remote_static: bytes,
                       hello: ClientHello, session: Connection) -> ProviderAccount:
    if state.recordings:
        record = HandshakeRecord(bytes(remote_static), hello.login, hello.jwt,
                                 hello.protocol_version, state.clock())
        for rec in state.recordings:
            rec.handshakes.append(record)
    un = pb.ERROR_CODE_UN_ENLISTED
    acct = state.account_for_authkey(remote_static)
    if acct is None:
        raise HandshakeRejected(un, "client static key is not an enlisted authkey", "CHN-002")
    session.login = acct.login
    if hello.login != acct.login:
        raise HandshakeRejected(un, "handshake login is not the login enlisted with this authkey", "CHN-004")
    if state.clock() - acct.last_seen > state.settings.inactive_unenlist_s:
        state.unenlist(acct.login, reason="inactive 30 days")
        raise HandshakeRejected(un, "login un-enlisted after 30 days without a connection", "CON-011")
    try:
        check_version(hello.protocol_version, "CHN-004")
    except EnlistmentRejected as exc:
        raise HandshakeRejected(pb.ERROR_CODE_PROTOCOL_VERSION, exc.detail, "CHN-004") from None
    try:
        provider, sub = await verifier.verify(hello.jwt, "CHN-004")
    except EnlistmentRejected as exc:
        state.tokens_seen.append(TokenSeen("handshake", hello.jwt, acct.login, False, exc.reason))
        raise HandshakeRejected(pb.ERROR_CODE_BAD_TOKEN, exc.detail, exc.requirement) from None
    state.tokens_seen.append(TokenSeen("handshake", hello.jwt, acct.login, True))
    if provider.provider_id != acct.provider_id or sub != acct.sub:
        raise HandshakeRejected(pb.ERROR_CODE_BAD_TOKEN, "token names another user than the enlisted one", "CHN-004")
    fault = state.faults.take_connect_fault(acct.login)
    if fault is not None:
        if fault == pb.ERROR_CODE_UN_ENLISTED:
            state.unenlist(acct.login, reason="scripted")
        raise HandshakeRejected(fault, "scripted connection failure", "scripted")
    return acct
