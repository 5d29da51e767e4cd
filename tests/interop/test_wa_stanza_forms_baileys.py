"""Every stanza form of the ``wa`` binding (``stanza_map``) through Baileys 6.17.16's codec.

``test_wa_baileys.py`` shows the binary-XML codecs agree on arbitrary trees; this module shows the
trees the binding actually writes survive Baileys: for one representative ``Stanza`` of every kind
(the body oneof of ``stanzas.proto``, notifications per kind) our ``to_node`` + ``encode`` is read
by Baileys' ``decodeDecompressedBinaryNode`` as the same tree, and Baileys' ``encodeBinaryNode`` of
that tree (built in JS from its JSON) gives our ``from_node(decode(...))`` the same ``Stanza``.

Baileys has no interop JID (token 245, docs/wa-binding.md disagreement 2). A case addressed to a
provider user is therefore checked twice: as written, asserting that declared deviation in both
directions (Baileys refuses the bytes; what Baileys writes for such a JID is refused by us on
CHN-034), and as its *gatekeeper twin* (every provider user replaced by a ``g:`` user), which must
agree in full. Nothing is skipped silently.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from google.protobuf.message import Message

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_wa_baileys
from peers_client import Peer
from test_wa_baileys import to_json

from reference_impl.wa import frame, stanza_map
from reference_impl.wa.binary_xml import INTEROP_SERVER, JID, Node, decode, encode
from reference_impl.wire import stanzas_pb2 as pb

#: The Baileys binary-XML oracle fixture of test_wa_baileys.py (provisioning, skip/CI rules).
baileys = test_wa_baileys.baileys

P1, P2 = "7-491700000001@interop", "7-491700000002@interop"     # provider users (integrator 7)
G1, G2 = "g:491711234567", "g:491711234568"                     # gatekeeper users
GROUP = "120363000000000001"
KEY33 = b"\x05" + bytes(range(32))
SIG = bytes(range(64))


def kinds() -> set[str]:
    """Every stanza kind the profile defines: the ``body`` oneof, a notification per ``kind``."""
    body = {f.name for f in pb.Stanza.DESCRIPTOR.oneofs_by_name["body"].fields}
    notes = {f"notification.{f.name}" for f in pb.Notification.DESCRIPTOR.oneofs_by_name["kind"].fields}
    return (body - {"notification"}) | notes


def kind_of(st: pb.Stanza) -> str:
    body = st.WhichOneof("body") or "unknown"
    return f"notification.{st.notification.WhichOneof('kind')}" if body == "notification" else body


def _s(sid: str, **body: object) -> pb.Stanza:
    return pb.Stanza(id=sid, **body)  # type: ignore[arg-type]


ENC = pb.ENC_TYPE_PKMSG, pb.ENC_TYPE_MSG, pb.ENC_TYPE_SKMSG
#: (case id, stanza): at least one per kind, plus the sub-forms the binding distinguishes.
CASES: list[tuple[str, pb.Stanza]] = [
    *[(f"message-{pb.EncType.Name(t)[9:].lower()}", _s(
        f"M{t}", message=pb.Message(recipient=G1, sender=P1, type=t, ciphertext=b"\x33" + SIG,
                                    timestamp_ms=1733300000123))) for t in ENC[:2]],
    ("message-skmsg-group", _s("M3", message=pb.Message(
        sender=P1, type=pb.ENC_TYPE_SKMSG, ciphertext=b"\x33" + SIG + SIG, group_id=GROUP,
        timestamp_ms=1733300000124))),
    ("message-group-fanout-retry", _s("M4", message=pb.Message(
        recipient=P2, sender=G1, type=pb.ENC_TYPE_MSG, ciphertext=b"\x33" + SIG, group_id=GROUP,
        timestamp_ms=1733300000125, retry_count=2))),
    ("receipt-delivery", _s("R1", receipt=pb.Receipt(
        type=pb.RECEIPT_TYPE_DELIVERY, message_ids=["3EB0A1"], recipient=G1, sender=P1,
        timestamp_ms=1733300001000))),
    ("receipt-read-aggregated", _s("R2", receipt=pb.Receipt(
        type=pb.RECEIPT_TYPE_READ, message_ids=["3EB0A1", "3EB0A2", "3EB0A3"], recipient=P1,
        sender=G1, timestamp_ms=1733300002000))),
    ("receipt-read-group", _s("R3", receipt=pb.Receipt(
        type=pb.RECEIPT_TYPE_READ, message_ids=["3EB0B1", "3EB0B2"], recipient=G2, sender=P1,
        group_id=GROUP, timestamp_ms=1733300003000))),
    ("receipt-retry", _s("R4", receipt=pb.Receipt(
        type=pb.RECEIPT_TYPE_RETRY, message_ids=["3EB0C1"], recipient=P1, sender=G1,
        timestamp_ms=1733300004000, registration_id=12345, retry_count=1))),
    ("ack", _s("A1", ack=pb.Ack(timestamp_ms=1733300005000))),
    ("ping", _s("I1", ping=pb.Ping())),
    ("pong", _s("I1", pong=pb.Pong())),
    ("key_fetch", _s("I2", key_fetch=pb.KeyFetchRequest(user=G1))),
    ("key_bundle", _s("I2", key_bundle=pb.KeyBundle(
        user=G1, identity_key=KEY33, registration_id=16380,
        signed_pre_key=pb.SignedPreKey(id=1, public_key=KEY33, signature=SIG),
        one_time_pre_key=pb.OneTimePreKey(id=0xFFFFFF, public_key=KEY33)))),
    ("key_bundle-no-one-time-key", _s("I3", key_bundle=pb.KeyBundle(
        user=P1, identity_key=KEY33, registration_id=1,
        signed_pre_key=pb.SignedPreKey(id=2, public_key=KEY33, signature=SIG)))),
    ("pre_key_upload", _s("I4", pre_key_upload=pb.PreKeyUpload(
        signed_pre_key=pb.SignedPreKey(id=3, public_key=KEY33, signature=SIG),
        one_time_pre_keys=[pb.OneTimePreKey(id=i, public_key=KEY33) for i in (10, 11, 12)]))),
    ("blocklist_get", _s("I5", blocklist_get=pb.BlocklistGet())),
    ("blocklist_set", _s("I6", blocklist_set=pb.BlocklistSet(add=[G1, G2], remove=[P2]))),
    ("blocklist", _s("I5", blocklist=pb.Blocklist(users=[G1, P2]))),
    ("deletion_request", _s("I7", deletion_request=pb.DeletionRequest(
        reason=pb.DELETION_REASON_ACCOUNT_DELETED))),
    ("reachability_ping-e164", _s("I8", reachability_ping=pb.ReachabilityPing(
        recipient="+491711234567"))),
    ("reachability_ping-user", _s("I9", reachability_ping=pb.ReachabilityPing(recipient=G2))),
    ("notification-identity_change", _s("N1", notification=pb.Notification(
        identity_change=pb.IdentityChange(user=P1, identity_key=KEY33)))),
    ("notification-consent_revoked", _s("N2", notification=pb.Notification(
        consent_revoked=pb.ConsentRevoked(user=P1)))),
    ("notification-low_pre_keys", _s("N3", notification=pb.Notification(
        low_pre_keys=pb.LowPreKeys(count=5)))),
    ("notification-consent_granted", _s("N4", notification=pb.Notification(
        consent_granted=pb.ConsentGranted(user=P1)))),
    ("notification-group_membership", _s("N5", notification=pb.Notification(
        group_membership=pb.GroupMembership(group_id=GROUP, participants=[G1, G2, P1],
                                            added=[P1], removed=[P2])))),
    ("error-rate_limited", _s("I10", error=pb.Error(
        code=pb.ERROR_CODE_RATE_LIMITED, detail="slow down", retry_after_ms=30000))),
    ("error-not_opted_in", _s("M5", error=pb.Error(code=pb.ERROR_CODE_NOT_OPTED_IN, user=G2))),
    ("chatstate-composing", _s("C1", chatstate=pb.ChatState(
        recipient=G1, sender=P1, state=pb.CHAT_STATE_TYPE_COMPOSING))),
    ("chatstate-paused", _s("C2", chatstate=pb.ChatState(
        recipient=P1, sender=G1, state=pb.CHAT_STATE_TYPE_PAUSED))),
]
IDS = [c for c, _ in CASES]
_PROVIDER_USER = re.compile(r"\d{1,5}-(\d{1,20})@interop")


def gatekeeper_twin(st: Message) -> Message:
    """A copy of ``st`` with every provider user id replaced by the gatekeeper user of the same
    number: the same form, but with no interop JID, so Baileys can read all of it."""
    out = type(st)()
    out.CopyFrom(st)
    _rewrite(out)
    return out


def _sub(user: str) -> str:
    return _PROVIDER_USER.sub(r"g:\1", user)


def _rewrite(m: Message) -> None:
    for field, value in m.ListFields():
        if field.type == field.TYPE_STRING:
            if isinstance(value, str):
                setattr(m, field.name, _sub(value))
            else:  # repeated (FieldDescriptor.label is gone from recent protobuf)
                value[:] = [_sub(v) for v in value]
        elif field.type == field.TYPE_MESSAGE:
            for v in ([value] if isinstance(value, Message) else value):
                _rewrite(v)


def has_interop_jid(n: Node) -> bool:
    vals = [*n.attrs.values(), n.content]
    if any(isinstance(v, JID) and v.server == INTEROP_SERVER for v in vals):
        return True
    return isinstance(n.content, list) and any(has_interop_jid(k) for k in n.content)


def test_every_kind_has_a_case() -> None:
    """A kind added to stanzas.proto (or to stanza_map) without a case here fails this test."""
    covered = {kind_of(st) for _, st in CASES}
    assert covered == kinds(), f"missing: {sorted(kinds() - covered)}, unknown: {sorted(covered - kinds())}"
    mapped = {kind_of(stanza_map.from_node(stanza_map.to_node(st))) for _, st in CASES}
    assert mapped == kinds(), "stanza_map maps some kind to no body"
    assert len(set(IDS)) == len(IDS)


def test_interop_deviation_is_exercised() -> None:
    """The deviation checks below must not go vacuous: most kinds carry a provider user."""
    with_interop = {kind_of(st) for _, st in CASES if has_interop_jid(stanza_map.to_node(st))}
    assert {"message", "receipt", "key_bundle", "blocklist_set", "blocklist", "chatstate",
            "notification.identity_change", "notification.consent_revoked",
            "notification.consent_granted", "notification.group_membership"} <= with_interop


def _baileys_reads(baileys: Peer, node: Node) -> None:
    ours = encode(node)
    got = baileys.call("decode", hex=ours.hex(), check=True)
    assert got["consumed"] == len(ours)
    assert got["node"] == to_json(node)      # tag, attrs (JIDs in Baileys' text form), content
    whole = baileys.call("decode_payload", hex=frame.pack_payload(ours, compress=True).hex(),
                         check=True)
    assert whole["node"] == to_json(node)


@pytest.mark.parametrize("stanza", [st for _, st in CASES], ids=IDS)
def test_baileys_decodes_our_form(baileys: Peer, stanza: pb.Stanza) -> None:
    node = stanza_map.to_node(stanza)
    if has_interop_jid(node):  # declared deviation (docs/wa-binding.md, disagreement 2)
        got = baileys.call("decode", hex=encode(node).hex())
        assert not got["ok"] and "245" in got["message"], got
        node = stanza_map.to_node(gatekeeper_twin(stanza))
        assert not has_interop_jid(node)
    _baileys_reads(baileys, node)


def _from_baileys(baileys: Peer, node: Node) -> pb.Stanza:
    theirs = bytes.fromhex(baileys.call("encode", node=to_json(node), check=True)["hex"])
    assert theirs == frame.pack_payload(encode(node))  # same bytes, flag byte included
    return stanza_map.from_node(decode(frame.unpack_payload(theirs)))


@pytest.mark.parametrize("stanza", [st for _, st in CASES], ids=IDS)
def test_baileys_encoding_maps_back(baileys: Peer, stanza: pb.Stanza) -> None:
    node = stanza_map.to_node(stanza)
    if has_interop_jid(node):
        # Baileys writes "<integrator>-<user>:0@interop" as an AD_JID on s.whatsapp.net: the
        # interop server and integrator are lost, and we refuse the address on the JID form.
        theirs = bytes.fromhex(baileys.call("encode", node=to_json(node), check=True)["hex"])
        assert theirs != frame.pack_payload(encode(node))
        with pytest.raises(stanza_map.StanzaMapError) as err:
            stanza_map.from_node(decode(frame.unpack_payload(theirs)))
        assert err.value.requirement == stanza_map.REQ_JID
        stanza = gatekeeper_twin(stanza)
        node = stanza_map.to_node(stanza)
    assert _from_baileys(baileys, node) == stanza


# ------------------------------------------------------------------ Baileys' own builders
# The node shapes Baileys 6.17.16 builds for the same stanzas (read in lib/Socket/*.js and
# lib/Utils/signal.js; written here from that reading), encoded by Baileys and read by our
# from_node. Each pins what the profile makes of a disagreement listed in docs/wa-binding.md
# ("Stanza forms: Baileys' builders"), so a change of reading shows up here.
SRV = JID("", "s.whatsapp.net")
U1, U2 = JID("491711234567", "s.whatsapp.net"), JID("491711234568", "s.whatsapp.net")
KEY32 = bytes(range(32))


def _k(tag: str, kid: int, pub: bytes, sig: bytes | None = None) -> Node:
    kids = [Node("id", {}, kid.to_bytes(3, "big")), Node("value", {}, pub)]
    return Node(tag, {}, kids + ([Node("signature", {}, sig)] if sig else []))


BAILEYS_SHAPES: list[tuple[str, Node, pb.Stanza]] = [
    # socket.js keep-alive: xmlns "w:p" and a <ping/> child; the profile's ping is the
    # server-ping form "urn:xmpp:ping" (S13), so Baileys' keep-alive is an unknown stanza here.
    ("keepalive-w:p", Node("iq", {"id": "K1", "to": SRV, "type": "get", "xmlns": "w:p"},
                           [Node("ping")]), _s("K1")),
    # messages-send.js sendReceipt: the first message id is the receipt's `id`, only the rest go
    # in <list>; `t` in seconds. The profile keeps Stanza.id apart, so the first id is no message id.
    ("read-receipt-aggregated", Node("receipt", {"id": "3EB0A1", "t": "1733300002", "to": U1,
                                                 "type": "read"},
                                     [Node("list", {}, [Node("item", {"id": "3EB0A2"}),
                                                        Node("item", {"id": "3EB0A3"})])]),
     _s("3EB0A1", receipt=pb.Receipt(type=pb.RECEIPT_TYPE_READ, message_ids=["3EB0A2", "3EB0A3"],
                                     recipient=G1, timestamp_ms=1733300002))),
    # messages-recv.js sendRetryRequest: <retry count id t v="1"/> + 4-byte <registration>; the
    # profile reads count and registration and ignores id/t/v (its message id is in <list>).
    ("retry-receipt", Node("receipt", {"id": "3EB0C1", "type": "retry", "to": U1},
                           [Node("retry", {"count": "1", "id": "3EB0C1", "t": "1733300004",
                                           "v": "1"}),
                            Node("registration", {}, (12345).to_bytes(4, "big"))]),
     _s("3EB0C1", receipt=pb.Receipt(type=pb.RECEIPT_TYPE_RETRY, recipient=G1,
                                     registration_id=12345, retry_count=1))),
    # messages-recv.js sendMessageAck: `to` and `class` (and type/participant), no `t`.
    ("ack", Node("ack", {"id": "A1", "to": U1, "class": "message"}), _s("A1", ack=pb.Ack())),
    # chats.js sendPresenceUpdate: <chatstate from to> without id.
    ("chatstate", Node("chatstate", {"from": U2, "to": U1}, [Node("composing")]),
     _s("", chatstate=pb.ChatState(recipient=G1, sender=G2, state=pb.CHAT_STATE_TYPE_COMPOSING))),
    # messages-send.js assertSessions: several <user> in one <key>; the profile fetches one user.
    ("key-fetch-several-users", Node("iq", {"id": "I2", "xmlns": "encrypt", "type": "get",
                                            "to": SRV},
                                     [Node("key", {}, [Node("user", {"jid": U1}),
                                                       Node("user", {"jid": U2})])]),
     _s("I2", key_fetch=pb.KeyFetchRequest(user=G1))),
    # Utils/signal.js getNextPreKeysNode: <registration><type><identity> too, and 32-byte keys
    # (the 0x05 byte stripped); the profile reads the keys as sent, so they arrive 32 bytes long.
    ("pre-key-upload", Node("iq", {"xmlns": "encrypt", "type": "set", "to": SRV},
                            [Node("registration", {}, (12345).to_bytes(4, "big")),
                             Node("type", {}, b"\x05"), Node("identity", {}, KEY32),
                             Node("list", {}, [_k("key", 10, KEY32)]),
                             _k("skey", 3, KEY32, SIG)]),
     _s("", pre_key_upload=pb.PreKeyUpload(
         signed_pre_key=pb.SignedPreKey(id=3, public_key=KEY32, signature=SIG),
         one_time_pre_keys=[pb.OneTimePreKey(id=10, public_key=KEY32)]))),
    # chats.js updateBlockStatus / fetchBlocklist: the same forms (one item per set).
    ("block", Node("iq", {"xmlns": "blocklist", "to": SRV, "type": "set"},
                   [Node("item", {"action": "block", "jid": U1})]),
     _s("", blocklist_set=pb.BlocklistSet(add=[G1]))),
    ("blocklist-get", Node("iq", {"xmlns": "blocklist", "to": SRV, "type": "get"}),
     _s("", blocklist_get=pb.BlocklistGet())),
    # messages-recv.js handleEncryptNotification: the changed user is the notification's `from`
    # and <identity> has no jid; the profile names the user in <identity jid>, so it reads none.
    ("identity-notification", Node("notification", {"from": U1, "type": "encrypt", "id": "N1"},
                                   [Node("identity", {}, KEY33)]),
     _s("N1", notification=pb.Notification(identity_change=pb.IdentityChange(
         identity_key=KEY33)))),
    # messages-recv.js handleEncryptNotification: <count value> from s.whatsapp.net: agrees.
    ("count-notification", Node("notification", {"from": SRV, "type": "encrypt", "id": "N3"},
                                [Node("count", {"value": "5"})]),
     _s("N3", notification=pb.Notification(low_pre_keys=pb.LowPreKeys(count=5)))),
    # messages-recv.js w:gp2: `from` is the group, the action (<add>/<remove>) is the first child;
    # the profile wraps them in <group jid>, so Baileys' form carries no membership here.
    ("group-notification", Node("notification", {"from": JID(GROUP, "g.us"), "type": "w:gp2",
                                                 "id": "N5", "participant": U1},
                                [Node("add", {}, [Node("participant", {"jid": U2})])]),
     _s("N5", notification=pb.Notification())),
]


@pytest.mark.parametrize("node,expected", [(n, e) for _, n, e in BAILEYS_SHAPES],
                         ids=[i for i, _, _ in BAILEYS_SHAPES])
def test_baileys_builder_shapes_as_the_profile_reads_them(baileys: Peer, node: Node,
                                                          expected: pb.Stanza) -> None:
    assert _from_baileys(baileys, node) == expected


def test_baileys_device_fanout_message_is_no_profile_message(baileys: Peer) -> None:
    """messages-send.js relayMessage: a 1:1 message carries one ``<enc>`` per device inside
    ``<participants><to jid="user:device@…">``; the profile has one recipient and ``<enc>`` as
    the direct child, so Baileys' form is refused on the node requirement (CHN-033)."""
    enc = Node("enc", {"v": "2", "type": "pkmsg"}, b"\x33" + SIG)
    node = Node("message", {"id": "M1", "type": "text", "to": U1},
                [Node("participants", {}, [Node("to", {"jid": JID("491711234567", "s.whatsapp.net", 1)},
                                                [enc])])])
    with pytest.raises(stanza_map.StanzaMapError) as err:
        _from_baileys(baileys, node)
    assert err.value.requirement == stanza_map.REQ_NODE
