"""Stanza semantics ↔ binary-XML nodes for the ``wa`` channel binding, sans-IO.

The protobuf ``Stanza`` (``docs/spec/proto/stanzas.proto``) stays the semantic model both
sides and every check work with; this module is the only place that knows how each stanza kind
looks as a WhatsApp node tree. Forms follow WhatsApp Web where it has one (observed: Baileys
6.17.16 ``lib/Socket/*.js``, whatsmeow): ``<message>`` with ``<enc v="2" type="pkmsg|msg|skmsg">``,
``<receipt>``, ``<ack>``, ``<iq>`` ping (``urn:xmpp:ping``), key fetch and pre-key upload
(``xmlns="encrypt"``), blocklist (``xmlns="blocklist"``), ``<notification>``; where it has
none (deletion, reachability ping, consent, error codes) the form is this profile's
(docs/wa-binding.md, "Stanza forms", provenance ``profile``). The mapping is lossless for every
stanza the profile defines: ``from_node(to_node(s)) == s``.

User ids become JIDs: a provider user ``"<integrator>-<user>@interop"`` is the interop JID
(token 245: user, device 0, integrator), a gatekeeper user ``"g:<number>"`` is
``<number>@s.whatsapp.net``, a group ``<id>@g.us``; anything else (an E.164 number in a
reachability ping) stays a string. A ``@interop`` JID without integrator is refused
(:class:`StanzaMapError` on the JID-form requirement).
"""
from __future__ import annotations

import re

from reference_impl.wa.binary_xml import INTEROP_SERVER, JID, Node, Value, WAError
from reference_impl.wire import stanzas_pb2 as pb

__all__ = ["SERVER", "StanzaMapError", "from_node", "jid_user", "to_node", "user_jid",
           "REQ_JID", "REQ_NODE"]

SERVER = JID("", "s.whatsapp.net")
GROUP_SERVER = "g.us"
#: Requirement ids the binding reports mapping failures on (spec §5.3).
REQ_JID = "CHN-034"
REQ_NODE = "CHN-033"
_INTEROP_USER = re.compile(r"(\d{1,5})-(\d{1,20})@interop")
_ENC = {pb.ENC_TYPE_PKMSG: "pkmsg", pb.ENC_TYPE_MSG: "msg", pb.ENC_TYPE_SKMSG: "skmsg"}
_ENC_BACK = {v: k for k, v in _ENC.items()}
_RECEIPT = {pb.RECEIPT_TYPE_DELIVERY: "delivery", pb.RECEIPT_TYPE_READ: "read",
            pb.RECEIPT_TYPE_RETRY: "retry"}
_RECEIPT_BACK = {v: k for k, v in _RECEIPT.items()}
_DELETION = {pb.DELETION_REASON_OPT_OUT: "opt_out",
             pb.DELETION_REASON_ACCOUNT_DELETED: "account_deleted"}
_DELETION_BACK = {v: k for k, v in _DELETION.items()}
#: ``<chatstate>`` children (observed: Baileys ``sendPresenceUpdate``; whatsmeow ``SendChatPresence``)
#: for the ``ChatState`` stanza of issue 12, mapped only where stanzas.proto has it.
_HAS_CHATSTATE = "chatstate" in pb.Stanza.DESCRIPTOR.fields_by_name
_CHATSTATE = {1: "composing", 2: "paused"}
_CHATSTATE_BACK = {v: k for k, v in _CHATSTATE.items()}


class StanzaMapError(WAError):
    """A node that is no stanza of the profile, or an address in the wrong JID form."""

    def __init__(self, detail: str, requirement: str = REQ_NODE) -> None:
        super().__init__(detail)
        self.requirement = requirement


# ------------------------------------------------------------------ addresses
def user_jid(user: str) -> Value:
    """A user id (or group id) as it travels: a JID where the id has a JID form."""
    m = _INTEROP_USER.fullmatch(user)
    if m:
        return JID(m.group(2), INTEROP_SERVER, 0, int(m.group(1)))
    if user.startswith("g:") and len(user) > 2:
        return JID(user[2:], "s.whatsapp.net")
    return user


def group_jid(group_id: str) -> JID:
    return JID(group_id, GROUP_SERVER)


def jid_user(value: Value | None) -> str:
    """Inverse of :func:`user_jid`; refuses an interop JID without integrator (JID form)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if value.server == INTEROP_SERVER:
        if value.integrator is None:
            raise StanzaMapError(f"interop JID {value.user}@{value.server} without integrator "
                                 "(not the INTEROP_JID form, token 245)", REQ_JID)
        return f"{value.integrator}-{value.user}@interop"
    if value.server == "s.whatsapp.net" and value.device is None:
        return f"g:{value.user}"
    if value.server == GROUP_SERVER:
        return value.user
    raise StanzaMapError(f"JID {value} has no user-id form in this profile", REQ_JID)


# ------------------------------------------------------------------ small helpers
def _attrs(**kv: Value | int | None) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for k, v in kv.items():
        if v is None or v == "" or (isinstance(v, int) and not isinstance(v, bool) and v == 0):
            continue
        out[k.rstrip("_")] = v if isinstance(v, (str, JID)) else str(v)
    return out


def _u(value: str) -> Value | None:
    return user_jid(value) if value else None


def _int(node: Node, key: str) -> int:
    v = node.attrs.get(key)
    if v is None:
        return 0
    if not isinstance(v, str) or not v.isdigit():
        raise StanzaMapError(f"<{node.tag}> attribute {key}={v!r} is not a number")
    return int(v)


def _str(node: Node, key: str) -> str:
    v = node.attrs.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise StanzaMapError(f"<{node.tag}> attribute {key} is a JID, expected a string")
    return v


def _children(node: Node) -> list[Node]:
    return node.content if isinstance(node.content, list) else []


def _child(node: Node, tag: str) -> Node | None:
    return next((c for c in _children(node) if c.tag == tag), None)


def _bytes(node: Node | None) -> bytes:
    if node is None or node.content is None:
        return b""
    if isinstance(node.content, bytes):
        return node.content
    if isinstance(node.content, str):
        return node.content.encode()
    raise StanzaMapError(f"<{node.tag}> should carry bytes")


def _blob(tag: str, data: bytes) -> Node:
    return Node(tag, {}, bytes(data))


def _key_node(tag: str, key_id: int, public: bytes, signature: bytes = b"") -> Node:
    kids = [_blob("id", key_id.to_bytes(3, "big")), _blob("value", public)]
    if signature:
        kids.append(_blob("signature", signature))
    return Node(tag, {}, kids)


def _key_from(node: Node) -> tuple[int, bytes, bytes]:
    return (int.from_bytes(_bytes(_child(node, "id")), "big"), _bytes(_child(node, "value")),
            _bytes(_child(node, "signature")))


def _iq(sid: str, type_: str, xmlns: str | None, kids: list[Node] | None = None, **extra: Value) -> Node:
    attrs = _attrs(id=sid)
    attrs.update(type=type_)
    if xmlns:
        attrs.update(xmlns=xmlns, to=SERVER)
    attrs.update(extra)
    return Node("iq", attrs, kids)


# ------------------------------------------------------------------ stanza -> node
def to_node(st: pb.Stanza) -> Node:
    body = st.WhichOneof("body")
    sid = st.id
    if body == "message":
        m = st.message
        to: Value | None = _u(m.recipient) if m.recipient else (group_jid(m.group_id) if m.group_id else None)
        attrs = _attrs(id=sid, to=to, from_=_u(m.sender), type="text", t=m.timestamp_ms,
                       group=group_jid(m.group_id) if m.group_id and m.recipient else None)
        enc = Node("enc", _attrs(v="2", type=_ENC.get(m.type, str(int(m.type))), count=m.retry_count),
                   bytes(m.ciphertext))
        return Node("message", attrs, [enc])
    if body == "receipt":
        r = st.receipt
        kids = [Node("list", {}, [Node("item", {"id": i}) for i in r.message_ids])]
        if r.registration_id:
            kids.append(_blob("registration", r.registration_id.to_bytes(4, "big")))
        if r.retry_count:
            kids.append(Node("retry", _attrs(count=r.retry_count)))
        attrs = _attrs(id=sid, to=_u(r.recipient), from_=_u(r.sender),
                       type=_RECEIPT.get(r.type, str(int(r.type))) if r.type else None,
                       group=group_jid(r.group_id) if r.group_id else None, t=r.timestamp_ms)
        return Node("receipt", attrs, kids)
    if body == "ack":
        return Node("ack", _attrs(id=sid, t=st.ack.timestamp_ms))
    if body == "ping":
        return _iq(sid, "get", "urn:xmpp:ping")
    if body == "pong":
        return _iq(sid, "result", None)
    if body == "key_fetch":
        return _iq(sid, "get", "encrypt", [Node("key", {}, [Node("user", _attrs(jid=_u(st.key_fetch.user)))])])
    if body == "key_bundle":
        b = st.key_bundle
        ik = bytes(b.identity_key)
        kids = [_blob("registration", b.registration_id.to_bytes(4, "big")),
                _blob("type", ik[:1]), _blob("identity", ik[1:])]
        if b.HasField("signed_pre_key"):
            s = b.signed_pre_key
            kids.append(_key_node("skey", s.id, bytes(s.public_key), bytes(s.signature)))
        if b.HasField("one_time_pre_key"):
            kids.append(_key_node("key", b.one_time_pre_key.id, bytes(b.one_time_pre_key.public_key)))
        user = Node("user", _attrs(jid=_u(b.user)), kids)
        return _iq(sid, "result", None, [Node("list", {}, [user])], **{"from": SERVER})
    if body == "pre_key_upload":
        u = st.pre_key_upload
        kids = [Node("list", {}, [_key_node("key", k.id, bytes(k.public_key)) for k in u.one_time_pre_keys])]
        if u.HasField("signed_pre_key"):
            s = u.signed_pre_key
            kids.append(_key_node("skey", s.id, bytes(s.public_key), bytes(s.signature)))
        return _iq(sid, "set", "encrypt", kids)
    if body == "blocklist_get":
        return _iq(sid, "get", "blocklist")
    if body == "blocklist_set":
        s = st.blocklist_set
        items = ([Node("item", _attrs(action="block", jid=_u(x))) for x in s.add]
                 + [Node("item", _attrs(action="unblock", jid=_u(x))) for x in s.remove])
        return _iq(sid, "set", "blocklist", items)
    if body == "blocklist":
        items = [Node("item", _attrs(jid=_u(x))) for x in st.blocklist.users]
        return _iq(sid, "result", None, [Node("list", {"type": "blocklist"}, items)], **{"from": SERVER})
    if body == "deletion_request":
        return _iq(sid, "set", "interop", [Node("delete", _attrs(
            reason=_DELETION.get(st.deletion_request.reason, str(int(st.deletion_request.reason)))
            if st.deletion_request.reason else None))])
    if body == "reachability_ping":
        return _iq(sid, "set", "interop", [Node("reachability", _attrs(jid=_u(st.reachability_ping.recipient)))])
    if body == "notification":
        return _notification_node(sid, st.notification)
    if body == "chatstate":  # issue 12's typing indicator (stanzas.proto field 25, where present)
        c = st.chatstate  # type: ignore[attr-defined]
        state = _CHATSTATE.get(int(c.state), str(int(c.state)))
        return Node("chatstate", _attrs(id=sid, to=_u(c.recipient), from_=_u(c.sender)), [Node(state)])
    if body == "error":
        e = st.error
        err = Node("error", _attrs(code=int(e.code), text=e.detail, jid=_u(e.user),
                                   backoff=e.retry_after_ms))
        return _iq(sid, "error", None, [err])
    # A stanza whose body this profile version does not know (e.g. from a later version).
    return Node("unknown", _attrs(id=sid))


def _notification_node(sid: str, n: pb.Notification) -> Node:
    kind = n.WhichOneof("kind")
    attrs = _attrs(id=sid)
    attrs["from"] = SERVER
    if kind == "identity_change":
        ic = n.identity_change
        attrs["type"] = "encrypt"
        return Node("notification", attrs, [Node("identity", _attrs(jid=_u(ic.user)), bytes(ic.identity_key))])
    if kind == "low_pre_keys":
        attrs["type"] = "encrypt"
        return Node("notification", attrs, [Node("count", {"value": str(n.low_pre_keys.count)})])
    if kind in ("consent_revoked", "consent_granted"):
        attrs["type"] = "interop"
        user = getattr(n, kind).user
        state = "revoked" if kind == "consent_revoked" else "granted"
        return Node("notification", attrs, [Node("consent", _attrs(state=state, jid=_u(user)))])
    if kind == "group_membership":
        g = n.group_membership
        attrs["type"] = "w:gp2"
        kids = [Node(tag, {}, [Node("participant", _attrs(jid=_u(p))) for p in ps])
                for tag, ps in (("participants", g.participants), ("add", g.added), ("remove", g.removed))]
        return Node("notification", attrs, [Node("group", _attrs(jid=group_jid(g.group_id)), kids)])
    attrs["type"] = "unknown"
    return Node("notification", attrs)


# ------------------------------------------------------------------ node -> stanza
def from_node(node: Node) -> pb.Stanza:
    """One decoded node as a stanza; a tag this profile does not define gives a body-less stanza
    (the receiver treats it as an unknown stanza, CHN-013)."""
    sid = _str(node, "id")
    st = pb.Stanza(id=sid)
    tag = node.tag
    if tag == "message":
        enc = _child(node, "enc")
        if enc is None:
            raise StanzaMapError("<message> without <enc>")
        to = node.attrs.get("to")
        group = node.attrs.get("group")
        m = st.message
        if isinstance(to, JID) and to.server == GROUP_SERVER:
            m.group_id = to.user
        else:
            m.recipient = jid_user(to)
        if isinstance(group, JID):
            m.group_id = group.user
        m.sender = jid_user(node.attrs.get("from"))
        m.timestamp_ms = _int(node, "t")
        etype = _str(enc, "type")
        m.type = _ENC_BACK.get(etype) or (int(etype) if etype.isdigit() else 0)  # type: ignore[assignment]
        if _str(enc, "v") != "2":
            raise StanzaMapError(f"<enc v={enc.attrs.get('v')!r}>, expected v=\"2\"")
        m.ciphertext = _bytes(enc)
        m.retry_count = _int(enc, "count")
        return st
    if tag == "receipt":
        r = st.receipt
        t = _str(node, "type")
        r.type = _RECEIPT_BACK.get(t) or (int(t) if t.isdigit() else 0)  # type: ignore[assignment]
        lst = _child(node, "list")
        if lst is not None:
            r.message_ids.extend(_str(i, "id") for i in _children(lst) if i.tag == "item")
        r.recipient = jid_user(node.attrs.get("to"))
        r.sender = jid_user(node.attrs.get("from"))
        group = node.attrs.get("group")
        r.group_id = group.user if isinstance(group, JID) else ""
        r.timestamp_ms = _int(node, "t")
        r.registration_id = int.from_bytes(_bytes(_child(node, "registration")), "big")
        retry = _child(node, "retry")
        r.retry_count = _int(retry, "count") if retry is not None else 0
        return st
    if tag == "ack":
        st.ack.timestamp_ms = _int(node, "t")
        return st
    if tag == "iq":
        return _from_iq(node, st)
    if tag == "notification":
        return _from_notification(node, st)
    if tag == "chatstate" and _HAS_CHATSTATE:
        c = st.chatstate  # type: ignore[attr-defined]
        c.recipient = jid_user(node.attrs.get("to"))
        c.sender = jid_user(node.attrs.get("from"))
        kid = _children(node)[0].tag if _children(node) else ""
        c.state = _CHATSTATE_BACK.get(kid) or (int(kid) if kid.isdigit() else 0)
        c.SetInParent()
        return st
    return st


def _from_iq(node: Node, st: pb.Stanza) -> pb.Stanza:
    type_, xmlns = _str(node, "type"), _str(node, "xmlns")
    if type_ == "get" and xmlns == "urn:xmpp:ping":
        st.ping.SetInParent()
    elif type_ == "get" and xmlns == "encrypt":
        key = _child(node, "key")
        user = _child(key, "user") if key is not None else None
        if user is None:
            raise StanzaMapError("key fetch <iq xmlns=encrypt> without <key><user jid>")
        st.key_fetch.user = jid_user(user.attrs.get("jid"))
    elif type_ == "set" and xmlns == "encrypt":
        u = st.pre_key_upload
        lst = _child(node, "list")
        for k in _children(lst) if lst is not None else []:
            kid, pub, _ = _key_from(k)
            u.one_time_pre_keys.add(id=kid, public_key=pub)
        skey = _child(node, "skey")
        if skey is not None:
            kid, pub, sig = _key_from(skey)
            u.signed_pre_key.id, u.signed_pre_key.public_key, u.signed_pre_key.signature = kid, pub, sig
        if lst is None and skey is None:
            u.SetInParent()
    elif type_ == "get" and xmlns == "blocklist":
        st.blocklist_get.SetInParent()
    elif type_ == "set" and xmlns == "blocklist":
        s = st.blocklist_set
        s.SetInParent()
        for item in _children(node):
            action = _str(item, "action")
            if action not in ("block", "unblock"):
                raise StanzaMapError(f"blocklist <item action={action!r}>")
            (s.add if action == "block" else s.remove).append(jid_user(item.attrs.get("jid")))
    elif type_ == "set" and xmlns == "interop":
        kid = _children(node)[0] if _children(node) else None
        if kid is not None and kid.tag == "delete":
            reason = _str(kid, "reason")
            st.deletion_request.reason = (_DELETION_BACK.get(reason)  # type: ignore[assignment]
                                          or (int(reason) if reason.isdigit() else 0))
            st.deletion_request.SetInParent()
        elif kid is not None and kid.tag == "reachability":
            st.reachability_ping.recipient = jid_user(kid.attrs.get("jid"))
            st.reachability_ping.SetInParent()
    elif type_ == "result":
        lst = _child(node, "list")
        if lst is None:
            st.pong.SetInParent()
        elif _str(lst, "type") == "blocklist":
            st.blocklist.users.extend(jid_user(i.attrs.get("jid")) for i in _children(lst))
            st.blocklist.SetInParent()
        else:
            user = _child(lst, "user")
            if user is None:
                raise StanzaMapError("key bundle <iq type=result> without <list><user>")
            b = st.key_bundle
            b.user = jid_user(user.attrs.get("jid"))
            b.registration_id = int.from_bytes(_bytes(_child(user, "registration")), "big")
            b.identity_key = _bytes(_child(user, "type")) + _bytes(_child(user, "identity"))
            skey = _child(user, "skey")
            if skey is not None:
                kid, pub, sig = _key_from(skey)
                b.signed_pre_key.id, b.signed_pre_key.public_key, b.signed_pre_key.signature = kid, pub, sig
            key = _child(user, "key")
            if key is not None:
                kid, pub, _ = _key_from(key)
                b.one_time_pre_key.id, b.one_time_pre_key.public_key = kid, pub
    elif type_ == "error":
        err = _child(node, "error")
        e = st.error
        e.SetInParent()
        if err is not None:
            e.code = _int(err, "code")  # type: ignore[assignment]
            e.detail = _str(err, "text")
            e.user = jid_user(err.attrs.get("jid"))
            e.retry_after_ms = _int(err, "backoff")
    return st


def _from_notification(node: Node, st: pb.Stanza) -> pb.Stanza:
    n = st.notification
    n.SetInParent()
    kids = _children(node)
    first = kids[0] if kids else None
    type_ = _str(node, "type")
    if first is None:
        return st
    if type_ == "encrypt" and first.tag == "identity":
        n.identity_change.user = jid_user(first.attrs.get("jid"))
        n.identity_change.identity_key = _bytes(first)
    elif type_ == "encrypt" and first.tag == "count":
        n.low_pre_keys.count = _int(first, "value")
        n.low_pre_keys.SetInParent()
    elif type_ == "interop" and first.tag == "consent":
        kind = n.consent_revoked if _str(first, "state") == "revoked" else n.consent_granted
        kind.user = jid_user(first.attrs.get("jid"))
        kind.SetInParent()
    elif type_ == "w:gp2" and first.tag == "group":
        g = n.group_membership
        jid = first.attrs.get("jid")
        g.group_id = jid.user if isinstance(jid, JID) else str(jid or "")
        for part in _children(first):
            users = [jid_user(p.attrs.get("jid")) for p in _children(part)]
            if part.tag == "participants":
                g.participants.extend(users)
            elif part.tag == "add":
                g.added.extend(users)
            elif part.tag == "remove":
                g.removed.extend(users)
        g.SetInParent()
    return st
