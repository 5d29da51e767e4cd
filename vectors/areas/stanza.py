"""Chat-channel stanzas of the open profile that carry the 1.1.0 features: typing indicators
(``chatstate``, spec §6.5), sender-aggregated read receipts (E2E-023) and the account-deletion
request (CON-014). Bytes are serialized ``interop.stanzas.Stanza`` messages; the expected parse
is the protobuf JSON mapping with the .proto field names. Invalid cases break a rule of
``reference_impl.wire.stanza_rules`` (what G refuses with ``malformed``), or protobuf itself."""
from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict

from reference_impl.wire import stanzas_pb2 as pb

from .._check import Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, h

FILE = "stanza_test.json"
TITLE = "InteropStanza"

NOTES = {
    "Ktv": Note("BASIC", "A well-formed stanza as a conforming client or G sends it.",
                "A failure means typing, read receipts or account deletion cannot be exchanged."),
    "UnknownState": Note("MODIFIED_PARAMETER", "A chatstate whose state is unspecified (0) or not a "
                         "ChatStateType value (protobuf keeps unknown enum numbers).",
                         "Accepting it shows the user a typing state nobody sent."),
    "MissingParty": Note("MISSING_STEP", "A chatstate without its sender or its recipient.",
                         "Accepting it attributes typing to nobody, or routes it nowhere."),
    "DuplicateId": Note("MODIFIED_PARAMETER", "An aggregated read receipt names the same message id "
                        "twice (E2E-023: each once).", "Accepting it hides a sender bug that "
                        "double-counts reads."),
    "NoIds": Note("MISSING_STEP", "A receipt naming no message id, or a retry receipt naming two.",
                  "Accepting it applies a receipt to nothing, or retries the wrong message."),
    "Truncated": Note("EDGE_CASE", "The serialized stanza is cut inside a field.",
                      "A crash here is a denial of service."),
}
TEST_PROPERTIES: dict[str, Any] = {"encoded": {"$ref": "#/$defs/hex"}, "stanza": {"type": "object"}}
GROUP_PROPERTIES: dict[str, Any] = {}
REQUIRED = {"StanzaDecode": ["encoded"]}

A = "1-10853634039893@interop"  # a provider user's login
G = "g:4915112345678"           # a gatekeeper user


def _bytes(st: pb.Stanza) -> bytes:
    return st.SerializeToString(deterministic=True)


def _json(st: pb.Stanza) -> dict[str, Any]:
    return MessageToDict(st, preserving_proto_field_name=True)


def _chatstate(state: int, recipient: str = G, sender: str = A, sid: str = "cs1") -> pb.Stanza:
    return pb.Stanza(id=sid, chatstate=pb.ChatState(recipient=recipient, sender=sender, state=state))  # type: ignore[arg-type]


def _receipt(ids: list[str], rtype: int = pb.RECEIPT_TYPE_READ, **kw: Any) -> pb.Stanza:
    return pb.Stanza(id="r1", receipt=pb.Receipt(type=rtype, message_ids=ids, recipient=G,  # type: ignore[arg-type]
                                                 timestamp_ms=1733300000000, **kw))


def build() -> VectorFile:
    vf = VectorFile(TITLE, "stanza_test_schema.json", [
        "Stanzas of the interop profile 1.1.0 features (docs/spec/interop-profile.md §6.3, §6.5, §8; "
        "docs/spec/proto/stanzas.proto): chatstate (typing), sender-aggregated read receipts, the "
        "account-deletion request.",
        "StanzaDecode: parse 'encoded' as interop.stanzas.Stanza and apply the profile's rules for its "
        "body; for valid tests compare with 'stanza' (protobuf JSON mapping, .proto field names, enum "
        "names, 64-bit integers as strings) and re-encode deterministically to 'encoded'.",
    ], dict(NOTES))
    t = vf.group("StanzaDecode", op="stanza_decode")
    valid = [
        ("chatstate composing, client to G", _chatstate(pb.CHAT_STATE_TYPE_COMPOSING)),
        ("chatstate paused, client to G", _chatstate(pb.CHAT_STATE_TYPE_PAUSED)),
        ("chatstate composing relayed by G to a provider user", _chatstate(
            pb.CHAT_STATE_TYPE_COMPOSING, recipient=A, sender=G, sid="g.cs.1")),
        ("read receipt aggregating three messages of one sender, in the order received",
         _receipt(["m.0001", "m.0002", "m.0003"])),
        ("group read receipt aggregating two messages of one participant",
         _receipt(["gm.01", "gm.02"], group_id="grp.0a1b2c3d4e5f")),
        ("delivery receipt naming one message", _receipt(["m.0001"], pb.RECEIPT_TYPE_DELIVERY)),
        ("deletion request: the user deleted the account", pb.Stanza(
            id="d1", deletion_request=pb.DeletionRequest(reason=pb.DELETION_REASON_ACCOUNT_DELETED))),
        ("deletion request: the user opted out", pb.Stanza(
            id="d2", deletion_request=pb.DeletionRequest(reason=pb.DELETION_REASON_OPT_OUT))),
    ]
    for comment, st in valid:
        vf.add(t, comment, "valid", ["Ktv"], encoded=h(_bytes(st)), stanza=_json(st))
    invalid = [
        ("chatstate with state unspecified (0)", "UnknownState", _bytes(_chatstate(0))),
        ("chatstate with state 7", "UnknownState", _bytes(_chatstate(7))),
        ("chatstate without sender", "MissingParty", _bytes(_chatstate(pb.CHAT_STATE_TYPE_COMPOSING, sender=""))),
        ("chatstate without recipient", "MissingParty",
         _bytes(_chatstate(pb.CHAT_STATE_TYPE_PAUSED, recipient=""))),
        ("read receipt naming m.0002 twice", "DuplicateId", _bytes(_receipt(["m.0001", "m.0002", "m.0002"]))),
        ("read receipt naming no message", "NoIds", _bytes(_receipt([]))),
        ("retry receipt naming two messages", "NoIds", _bytes(_receipt(
            ["m.0001", "m.0002"], pb.RECEIPT_TYPE_RETRY, registration_id=1234, retry_count=1))),
        ("chatstate cut inside its recipient", "Truncated",
         _bytes(_chatstate(pb.CHAT_STATE_TYPE_COMPOSING))[:12]),
    ]
    for comment, flag, data in invalid:
        vf.add(t, comment, "invalid", [flag], encoded=h(data))
    return vf


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    resp = adapter.call("stanza_decode", data=test["encoded"])
    unsupported_in(resp)
    mismatch = None
    if resp["ok"] and "stanza" in test and resp.get("stanza") != test["stanza"]:
        mismatch = f"stanza {resp.get('stanza')} != {test['stanza']}"
    if mismatch is None and resp["ok"] and resp.get("encoded") not in (None, test["encoded"]):
        mismatch = f"re-encoded {resp.get('encoded')} != {test['encoded']}"
    return verdict(test["result"], resp["ok"], mismatch, resp)
