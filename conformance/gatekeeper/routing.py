"""What G does with each stanza a client sends (spec §5.1 stanza exchange, §8 consent).

``handle`` answers every request with exactly one stanza carrying the same id; refusals are
:class:`~.directory.StanzaRejected` turned into ``error`` stanzas, and the connection stays
open. Requirement IDs sit next to the check that enforces or observes them.
"""
from __future__ import annotations

from reference_impl.wire import stanzas_pb2 as pb
from reference_impl.wire.stanza_rules import chatstate_problem, receipt_problem

from .chat import ChatSession
from .directory import StanzaRejected, take_bundle, upload_pre_keys
from .stanzas import CLIENT_ANSWERS, CLIENT_REQUESTS, ID_RE, chat_state_name, code_name, error_stanza
from .state import GatekeeperState

__all__ = ["handle"]

M = pb.ERROR_CODE_MALFORMED


async def handle(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> None:
    body = st.WhichOneof("body")
    if body == "message":
        for rec in gk.recordings:
            rec.note_message(s.login, st.message)
    assert s.login is not None and s.account is not None
    if body in CLIENT_ANSWERS:
        _on_answer(gk, s, st, body)
        return
    try:
        if body not in CLIENT_REQUESTS:
            raise StanzaRejected(M, f"clients do not send {body} stanzas", "CHN-005")
        # CHN-006: request ids are well-formed and not reused (a retried message keeps its id).
        if not ID_RE.fullmatch(st.id):
            raise StanzaRejected(M, "stanza id must be 1-64 characters from [A-Za-z0-9._-]", "CHN-006")
        resend = body == "message" and st.message.retry_count > 0
        if st.id in s.request_ids and not resend:
            s.log("violation", requirement="CHN-006", detail=f"request id {st.id} reused")
        s.request_ids.append(st.id)
        injected = gk.faults.take_request_fault(s.login, body)
        if injected is not None:
            if injected.code == pb.ERROR_CODE_UN_ENLISTED:
                gk.unenlist(s.login, reason="scripted")
            raise injected
        reply = await _HANDLERS[body](gk, s, st)
        if reply is not None:
            reply.id = st.id
            s.reply(reply)
    except StanzaRejected as exc:
        s.log("rejected", request=body, code=code_name(exc.code), detail=exc.detail,
              requirement=exc.requirement, user=exc.user)
        s.reply(error_stanza(st.id, exc.code, exc.detail, user=exc.user,
                             retry_after_ms=exc.retry_after_ms))
        if exc.code == pb.ERROR_CODE_UN_ENLISTED:
            s.close_soon(1008, "un_enlisted")


def _ack(gk: GatekeeperState) -> pb.Stanza:
    return pb.Stanza(ack=pb.Ack(timestamp_ms=gk.now_ms()))


def _on_answer(gk: GatekeeperState, s: ChatSession, st: pb.Stanza, body: str) -> None:
    assert s.login is not None
    if body == "pong":
        fut = s.pongs.pop(st.id, None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        s.log("pong", id=st.id, expected=fut is not None)
        return
    entry = gk.mailbox.ack(s.login, st.id)
    s.inflight.discard(st.id)
    if entry is None:
        s.log("unexpected_answer", type=body, id=st.id)
        return
    kind = entry.stanza.WhichOneof("body")
    if body == "error":
        s.log("client_error", id=st.id, about=kind, code=code_name(st.error.code), detail=st.error.detail)
    elif kind == "message":
        s.log("message_delivered", id=st.id, sender=entry.stanza.message.sender)
    else:
        s.log("acked", id=st.id, about=kind)
    s.kick()


async def _message(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> pb.Stanza | None:
    m = st.message
    # ENL-006: the sender is the login the client enlisted and connected with.
    if m.sender != s.login:
        raise StanzaRejected(M, f"sender {m.sender!r} is not this connection's login", "ENL-006")
    # E2E-001: pkmsg / msg / skmsg, version byte 0x33.
    if m.type not in (pb.ENC_TYPE_PKMSG, pb.ENC_TYPE_MSG, pb.ENC_TYPE_SKMSG):
        raise StanzaRejected(M, "message type must be pkmsg, msg or skmsg", "E2E-001")
    if not m.ciphertext or m.ciphertext[0] != 0x33:
        raise StanzaRejected(M, "ciphertext must start with the version byte 0x33", "E2E-001")
    if m.type == pb.ENC_TYPE_SKMSG or m.group_id:
        # GRP-002: one skmsg with group_id and no recipient; G fans it out.
        if m.type != pb.ENC_TYPE_SKMSG or not m.group_id or m.recipient:
            raise StanzaRejected(M, "group messages are skmsg with group_id and no recipient", "GRP-002")
        group = gk.groups.get(m.group_id)
        if group is None or s.login not in group.members:
            raise StanzaRejected(pb.ERROR_CODE_UNKNOWN_USER, "no such group, or not a member",
                                 "GRP-002", user=m.group_id)
        gk.fan_out(group, st)
        return _ack(gk)
    if gk.check_route(s.login, m.recipient):
        gk.route(m.recipient, st)
    return _ack(gk)  # also when withheld: a block is not disclosed (CON-013)


async def _receipt(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> pb.Stanza | None:
    assert s.login is not None
    r = st.receipt
    broken = receipt_problem(r)
    if broken is not None:
        raise StanzaRejected(M, broken.detail, broken.requirement)
    deliver = gk.check_route(s.login, r.recipient, content=False)
    r.sender = s.login  # set by G on delivery (stanzas.proto)
    gk.log.append("receipt", s.login, conn=s.conn, direction="from_provider",
                  receipt=pb.ReceiptType.Name(r.type), message_ids=list(r.message_ids)[:50],
                  recipient=r.recipient, group_id=r.group_id, retry_count=r.retry_count,
                  registration_id=r.registration_id)
    if deliver:
        gk.route(r.recipient, st)
    return _ack(gk)


async def _ping(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> pb.Stanza | None:
    return pb.Stanza(pong=pb.Pong())


async def _key_fetch(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> pb.Stanza | None:
    assert s.login is not None
    target = st.key_fetch.user
    user = gk.users.get(target)
    if user is not None:
        gk.check_route(s.login, target, content=True)  # no bundle without consent (CON-002)
        bundle = user.take_bundle()
    else:
        acct = gk.accounts.get(target)
        if acct is None:
            raise StanzaRejected(pb.ERROR_CODE_UNKNOWN_USER, "no such user", user=target)
        bundle = take_bundle(acct)
        gk.maybe_low_pre_keys(acct)
    s.log("key_fetch", user=target, one_time_pre_key=bundle.HasField("one_time_pre_key"))
    return pb.Stanza(key_bundle=bundle)


async def _pre_key_upload(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> pb.Stanza | None:
    assert s.account is not None
    cfg = gk.settings
    added, rotated = upload_pre_keys(s.account, st.pre_key_upload, max_held=cfg.max_one_time_pre_keys,
                                     max_batch=cfg.max_pre_keys_per_upload,
                                     threshold=cfg.low_pre_keys_threshold)
    s.log("pre_keys_uploaded", added=added, held=len(s.account.one_time),
          signed_pre_key_rotated=rotated, signed_pre_key_id=s.account.signed_pre_key_id)
    return _ack(gk)


async def _blocklist_get(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> pb.Stanza | None:
    assert s.account is not None
    s.log("blocklist_read", users=sorted(s.account.blocklist))
    return pb.Stanza(blocklist=pb.Blocklist(users=sorted(s.account.blocklist)))


async def _blocklist_set(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> pb.Stanza | None:
    assert s.account is not None
    b = st.blocklist_set
    if len(b.add) + len(b.remove) > 1000 or len(s.account.blocklist) + len(b.add) > 10_000:
        raise StanzaRejected(pb.ERROR_CODE_TOO_LARGE, "blocklist change too large")
    s.account.blocklist.update(b.add)
    s.account.blocklist.difference_update(b.remove)
    s.log("blocklist_changed", add=list(b.add), remove=list(b.remove),
          users=sorted(s.account.blocklist))
    return _ack(gk)


async def _deletion_request(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> pb.Stanza | None:
    # §8 / CON-008: ack, delete enlistment, keys and mailbox, then close.
    assert s.login is not None
    s.log("deletion_requested", reason=pb.DeletionReason.Name(st.deletion_request.reason)
          if st.deletion_request.reason in pb.DeletionReason.values() else st.deletion_request.reason)
    gk.delete_account(s.login, close=False)
    s.close_soon(1000, "deleted")
    return _ack(gk)


async def _reachability_ping(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> pb.Stanza | None:
    assert s.login is not None
    # CON-001: allowed whatever the recipient's consent; it carries no content.
    user = gk.find_user(st.reachability_ping.recipient)
    if user is None:
        raise StanzaRejected(pb.ERROR_CODE_UNKNOWN_USER, "no such gatekeeper user",
                             user=st.reachability_ping.recipient)
    s.log("reachability_ping", user=user.id, consent=user.consent_for(s.account.provider_id if s.account else ""))
    user.handle_reachability_ping(s.login)
    return _ack(gk)


async def _chatstate(gk: GatekeeperState, s: ChatSession, st: pb.Stanza) -> pb.Stanza | None:
    """§6.5: relay a typing indicator at once or not at all; never queued, never pushed."""
    assert s.login is not None and s.account is not None
    c = st.chatstate
    if c.sender != s.login:
        raise StanzaRejected(M, f"sender {c.sender!r} is not this connection's login", "ENL-006")
    broken = chatstate_problem(c)
    if broken is not None:
        raise StanzaRejected(M, broken.detail, broken.requirement)
    state = chat_state_name(c.state)
    user = gk.users.get(c.recipient)
    if user is None and c.recipient not in gk.accounts:
        raise StanzaRejected(pb.ERROR_CODE_UNKNOWN_USER, "no such user", user=c.recipient)
    if c.recipient in s.account.blocklist:
        # E2E-024: the client's own user blocked the recipient; G drops it and says so in the log.
        s.log("violation", requirement="E2E-024", detail=f"chatstate to {c.recipient}, whom this user blocked")
        s.log("chatstate_dropped", recipient=c.recipient, state=state, reason="sender blocked the recipient")
        return _ack(gk)
    if user is not None:
        if not user.consent_for(s.account.provider_id):
            raise StanzaRejected(pb.ERROR_CODE_NOT_OPTED_IN, "recipient has not opted in to this provider",
                                 "E2E-024", user=c.recipient)
        if s.login in user.blocked:  # acknowledged and dropped: the block is not disclosed
            s.log("chatstate_dropped", recipient=c.recipient, state=state, reason="recipient blocked the sender")
            return _ack(gk)
        s.log("chatstate", direction="from_provider", recipient=c.recipient, state=state)
        gk.route(c.recipient, st)
    else:
        s.log("chatstate", direction="from_provider", recipient=c.recipient, state=state)
        gk.relay_ephemeral(c.recipient, st)
    return _ack(gk)


_HANDLERS = {
    "message": _message, "receipt": _receipt, "ping": _ping, "key_fetch": _key_fetch,
    "pre_key_upload": _pre_key_upload, "blocklist_get": _blocklist_get,
    "blocklist_set": _blocklist_set, "deletion_request": _deletion_request,
    "reachability_ping": _reachability_ping, "chatstate": _chatstate,
}
