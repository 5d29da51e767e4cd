"""WhatsApp binary XML (the `wa` binding's stanza codec): node trees <-> bytes, and the frame
payload (flag byte, zlib). Observed rules (docs/wa-binding.md W3-W9); dictionary data from
Baileys 6.17.16 ``lib/WABinary/constants.js`` (MIT)."""
from __future__ import annotations

import zlib
from typing import Any

from reference_impl.wa import tokens
from reference_impl.wa.binary_xml import JID, Dictionary, Node, encode
from reference_impl.wa.frame import pack_payload
from reference_impl.wa.node_json import node_to_json

from .._check import Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, h

FILE = "wa_binary_xml_test.json"
TITLE = "WABinaryXML"

NOTES = {
    "Stanza": Note("BASIC", "A stanza kind the interop channel carries (message/enc, receipt, ack, ping, "
                   "key fetch, pre-key upload, blocklist, ib, notification, chatstate), in the canonical "
                   "encoding: decoding gives the node, encoding the node gives exactly these bytes.",
                   "A failure means the implementation cannot exchange this stanza with the gatekeeper."),
    "FrameworkExample": Note("BASIC", "The public framework example (S2 §2.1): <message to from id type notify>"
                             "<body/></message>, under a dictionary holding only the three tokens the "
                             "example reveals (3 s.whatsapp.net, 17 to, 19 message); the first 14 bytes "
                             "are the published ones, the rest completes the example with raw strings.",
                             "A failure means the codec disagrees with the only public encoding."),
    "InteropJid": Note("BASIC", "INTEROP_JID (tag 245): user, device u16 BE, integrator u16 BE, server "
                       "'interop' (whatsmeow/whatsapp-rust; Baileys 6.17.16 lacks it).",
                       "A failure means interop users cannot be addressed."),
    "TokenKinds": Note("BASIC", "Each string form: single-byte token, DICTIONARY_0..3, NIBBLE_8, HEX_8 (odd "
                       "and even lengths), BINARY_8/20, LIST_16, JID_PAIR, AD_JID.",
                       "A failure means some attribute values or contents are garbled."),
    "NonCanonical": Note("EDGE_CASE", "An unambiguous but non-canonical form (a token written as raw "
                         "bytes, LIST_16 for a short list, BINARY_20 for a short string). Decoding may "
                         "accept it (giving the node) or reject it.",
                         "Policy latitude: the reference accepts, as Baileys does."),
    "Truncated": Note("MISSING_STEP", "The input ends inside a node, a length or a JID.",
                      "Accepting it means reading past the end (crash or garbage)."),
    "TrailingBytes": Note("EDGE_CASE", "Bytes follow the root node.", "Accepting them hides smuggled data."),
    "BadToken": Note("MODIFIED_PARAMETER", "A token index that the dictionary does not hold, an unassigned "
                     "tag byte, or a root that is not a list.", "Accepting it means decoding to a wrong string."),
    "BadPacked": Note("MODIFIED_PARAMETER", "NIBBLE_8/HEX_8 with a digit outside its alphabet or a pad "
                      "nibble other than 0xF.", "Accepting it garbles ids and phone numbers."),
    "BadJid": Note("MODIFIED_PARAMETER", "A JID with an unknown AD_JID domain, an interop JID whose server is "
                   "not 'interop', or a JID_PAIR without a server.", "Accepting it misroutes stanzas."),
    "BadNode": Note("MODIFIED_PARAMETER", "A list of size 0 as a node, a duplicate attribute key, invalid "
                    "UTF-8, a BINARY_20 length with the high nibble set.",
                    "Accepting it makes two implementations see different stanzas."),
    "PayloadFlag": Note("BASIC", "A decrypted frame: flag byte 0 (plain) or 2 (zlib-deflated) then a node.",
                        "A failure means compressed stanzas from the gatekeeper are lost."),
    "CompressionLie": Note("MODIFIED_PARAMETER", "Flag 2 (compressed) on data that is not a zlib stream, a "
                           "truncated stream, or bytes after it.", "Accepting it decodes garbage."),
    "UnknownFlagBits": Note("EDGE_CASE", "Flag bits other than 0x02 set. Baileys ignores them; the reference "
                            "rejects them.", "Policy latitude; the meaning of other bits is not public."),
    "InflationBomb": Note("DOS", "A small zlib stream that inflates past 16 MiB, the frame size limit.",
                          "Inflating without a cap lets a peer exhaust memory; a cap may reject it."),
}

_DICT_FIELDS = {"dictionaryName": {"type": "string"},
                "singleByteTokens": {"type": "array", "items": {"type": "string"}},
                "doubleByteTokens": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
                "source": {"type": "string"}}
TEST_PROPERTIES: dict[str, Any] = {"node": {"type": "object"}, "encoded": {"$ref": "#/$defs/hex"},
                                   "payload": {"$ref": "#/$defs/hex"}, "publicPrefix": {"$ref": "#/$defs/hex"}}
GROUP_PROPERTIES: dict[str, Any] = dict(_DICT_FIELDS)
REQUIRED = {"NodeCodec": ["encoded"], "FramePayload": ["payload"]}

S = "s.whatsapp.net"


def _j(user: str, device: int | None = None) -> JID:
    return JID(user, S, device)


def stanzas() -> list[tuple[str, Node]]:
    """Every stanza kind of the channel; also the benchmark's node trees."""
    peer = "491711234567"
    server = JID("", S)
    return [
        ("message with enc pkmsg, msg, skmsg", Node("message", {"to": _j(peer), "id": "3EB0A1B2C3", "type": "text"},
         [Node("enc", {"v": "2", "type": t}, b"\x33" + bytes(range(40))) for t in ("pkmsg", "msg", "skmsg")])),
        ("read receipt to a device (AD_JID)", Node("receipt", {"to": _j(peer, 3), "id": "3EB0A1B2C3",
                                                              "type": "read", "t": "1733300000"})),
        ("delivery receipt with a list of ids", Node("receipt", {"to": _j(peer), "id": "3EB0A1B2C3"},
         [Node("list", {}, [Node("item", {"id": f"3EB0{i:06X}"}) for i in range(3)])])),
        ("retry receipt", Node("receipt", {"to": _j(peer), "id": "3EB0A1B2C3", "type": "retry"},
         [Node("retry", {"count": "1", "id": "3EB0A1B2C3", "t": "1733300000", "v": "1"}),
          Node("registration", {}, b"\x00\x00\x12\x34")])),
        ("ack", Node("ack", {"class": "message", "id": "3EB0A1B2C3", "to": _j(peer)})),
        ("ping iq (urn:xmpp:ping)", Node("iq", {"id": "0123", "to": server, "type": "get",
                                                 "xmlns": "urn:xmpp:ping"}, [Node("ping")])),
        ("key fetch iq (xmlns encrypt)", Node("iq", {"id": "0124", "xmlns": "encrypt", "type": "get", "to": server},
         [Node("key", {}, [Node("user", {"jid": _j(peer)})])])),
        ("pre-key upload iq", Node("iq", {"id": "0125", "xmlns": "encrypt", "type": "set", "to": server},
         [Node("registration", {}, b"\x00\x00\x12\x34"), Node("type", {}, b"\x05"), Node("identity", {}, bytes(32)),
          Node("list", {}, [Node("key", {}, [Node("id", {}, i.to_bytes(3, "big")), Node("value", {}, bytes([i]) * 32)])
                            for i in range(1, 4)]),
          Node("skey", {}, [Node("id", {}, b"\x00\x00\x01"), Node("value", {}, bytes(32)),
                            Node("signature", {}, bytes(64))])])),
        ("blocklist set iq", Node("iq", {"id": "0126", "xmlns": "blocklist", "type": "set", "to": server},
         [Node("item", {"action": "block", "jid": _j(peer)})])),
        ("blocklist get iq", Node("iq", {"id": "0127", "xmlns": "blocklist", "type": "get", "to": server})),
        ("ib offline", Node("ib", {}, [Node("offline", {"count": "0"})])),
        ("notification (low pre-keys)", Node("notification", {"from": _j(peer), "type": "encrypt", "id": "77"},
         [Node("count", {"value": "5"})])),
        ("chatstate composing", Node("chatstate", {"to": _j(peer)}, [Node("composing")])),
        ("message to an interop user", Node("message", {"to": JID("10853634039893", "interop", 1, 7),
                                                         "id": "3EB0A1B2C4", "type": "text"},
         [Node("enc", {"v": "2", "type": "msg"}, b"\x33" + bytes(16))])),
    ]


def _dict_fields(d: Dictionary, source: str) -> dict[str, Any]:
    return {"dictionaryName": d.name, "singleByteTokens": list(d.single),
            "doubleByteTokens": [list(t) for t in d.double], "source": source}


FW = Dictionary(tokens.FRAMEWORK_EXAMPLE_SINGLE, (), name="framework-example")
FW_PREFIX = bytes([248, 12, 19, 17, 250, 255, 134, 20, 21, 85, 81, 0, 31, 3])


def framework_example() -> Node:
    return Node("message", {"to": JID("14155551001", S), "from": JID("19175550123", S),
                            "id": "123456", "type": "text", "notify": "joe"}, [Node("body", {}, b"Hello")])


def build() -> VectorFile:
    from reference_impl.wa.binary_xml import DEFAULT_DICTIONARY as D

    vf = VectorFile(TITLE, "wa_binary_xml_test_schema.json", [
        "WhatsApp binary XML as the `wa` binding of the interop profile uses it (docs/wa-binding.md). Every "
        "rule is observed (Baileys 6.17.16 lib/WABinary, whatsmeow binary/, whatsapp-rust wacore/binary) "
        "unless the framework overview states it; the gatekeeper's confidential documentation is authoritative.",
        "Nodes are JSON: {tag, attrs: [[key, string | JID], ...] (in wire order), content: null | {bytes: hex} | {str} | {jid} | "
        "[node]}; a JID is {user, server, device?, integrator?}. Each group carries its token dictionary "
        "(single-byte tokens, index 0 unused; four double-byte dictionaries); the Baileys lists are MIT data.",
        "NodeCodec: decode 'encoded' (no flag byte) and compare with 'node'; for valid tests also encode "
        "'node' and compare with 'encoded'. FramePayload: 'payload' is a decrypted frame (flag byte, then "
        "the node, zlib-deflated when the flag is 2); decode it and compare with 'node'.",
    ], dict(NOTES))
    src = "Baileys 6.17.16 lib/WABinary/constants.js (MIT), dictionary version 2"
    t = vf.group("NodeCodec", op="wa_binary_decode", **_dict_fields(D, src))
    for comment, node in stanzas():
        flag = "InteropJid" if "interop" in comment else "Stanza"
        vf.add(t, comment, "valid", [flag], node=node_to_json(node), encoded=h(encode(node)))
    kinds = [
        ("single-byte token value and tag", Node("iq", {"type": "get"})),
        ("double-byte token (DICTIONARY_0)", Node("iq", {"to": D.double[0][1]})),
        ("double-byte token (DICTIONARY_3)", Node("iq", {"to": D.double[3][5]})),
        ("NIBBLE_8, odd length", Node("iq", {"id": "12345"})),
        ("NIBBLE_8 with - and .", Node("iq", {"id": "1.2-3"})),
        ("HEX_8, even length", Node("iq", {"id": "ABCDEF"})),
        ("HEX_8, odd length", Node("iq", {"id": "ABC"})),
        ("raw string (BINARY_8) with UTF-8", Node("iq", {"id": "héllo wörld"})),
        ("empty string value", Node("iq", {"id": ""})),
        ("BINARY_20 content (300 bytes)", Node("enc", {}, bytes(range(256)) + bytes(44))),
        ("LIST_16 (256 children)", Node("list", {}, [Node("item") for _ in range(256)])),
        ("JID_PAIR without user", Node("iq", {"to": JID("", S)})),
        ("JID_PAIR with user", Node("iq", {"to": JID("491711234567", "g.us")})),
        ("AD_JID domain 1 (lid)", Node("iq", {"to": JID("123456", "lid", 2)})),
        ("AD_JID device 0", Node("iq", {"to": JID("123456", S, 0)})),
        ("INTEROP_JID device 0 integrator 65535", Node("iq", {"to": JID("1", "interop", 0, 65535)})),
        ("string content (a token)", Node("body", {}, "text")),
        ("string content (nibble-packed)", Node("body", {}, "0123")),
        ("JID content", Node("user", {}, JID("491711234567", S))),
    ]
    for comment, node in kinds:
        vf.add(t, comment, "valid", ["InteropJid" if "INTEROP" in comment else "TokenKinds"],
               node=node_to_json(node), encoded=h(encode(node)))
    jid = Node("to", {"jid": JID("alice", "interop", 1, 7)})
    vf.add(t, "interop JID layout: 245, user, device u16, integrator u16, server", "valid", ["InteropJid"],
           node=node_to_json(jid), encoded=h(bytes([248, 3]) + encode(jid)[2:]))
    iq = node_to_json(Node("iq", {"type": "get"}))
    vf.add(t, "token 'iq' written raw (BINARY_8)", "acceptable", ["NonCanonical"], node=iq,
           encoded=h(bytes([248, 3, 252, 2]) + b"iq" + bytes([4, 49])))
    vf.add(t, "LIST_16 for a 3-element list", "acceptable", ["NonCanonical"], node=iq,
           encoded=h(bytes([249, 0, 3, 30, 4, 49])))
    vf.add(t, "BINARY_20 for a 2-byte tag", "acceptable", ["NonCanonical"], node=iq,
           encoded=h(bytes([248, 3, 253, 0, 0, 2]) + b"iq" + bytes([4, 49])))
    bad = [
        ("list ends early", "Truncated", bytes([248, 2, 30])),
        ("LIST_16 claims 65535 elements", "Truncated", bytes([249, 255, 255, 30])),
        ("BINARY_8 length past the end", "Truncated", bytes([248, 1, 252, 9]) + b"iq"),
        ("BINARY_32 length past the end", "Truncated", bytes([248, 1, 254, 0, 0, 0, 9]) + b"iq"),
        ("AD_JID cut after the domain byte", "Truncated", bytes([248, 3, 30, 8, 247, 0])),
        ("interop JID cut inside the device", "Truncated", bytes([248, 3, 30, 8, 245, 252, 1, 0x61, 0])),
        ("empty input", "Truncated", b""),
        ("a byte after the root node", "TrailingBytes", bytes([248, 1, 30, 0])),
        ("node list of size 0", "BadNode", bytes([0])),
        ("unassigned tag byte 240", "BadToken", bytes([248, 1, 240])),
        ("root is a token, not a list", "BadToken", bytes([30])),
        ("FB_JID tag 246 (not used by the channel) as the tag", "BadToken", bytes([248, 1, 246])),
        ("NIBBLE_8 pad nibble 0xE", "BadPacked", bytes([248, 3, 30, 8, 255, 0x81, 0x1E])),
        ("NIBBLE_8 digit 12", "BadPacked", bytes([248, 3, 30, 8, 255, 0x01, 0xC1])),
        ("NIBBLE_8 odd flag with no bytes", "BadPacked", bytes([248, 3, 30, 8, 255, 0x80])),
        ("JID_PAIR server LIST_EMPTY", "BadJid", bytes([248, 3, 30, 8, 250, 0, 0])),
        ("AD_JID domain 9", "BadJid", bytes([248, 3, 30, 8, 247, 9, 0, 252, 1, 0x31])),
        ("interop JID with server 's.whatsapp.net'", "BadJid",
         bytes([248, 3, 30, 8, 245, 252, 1, 0x61, 0, 1, 0, 2, 3])),
        ("duplicate attribute key", "BadNode", bytes([248, 5, 30, 8, 1, 8, 1])),
        ("tag is invalid UTF-8", "BadNode", bytes([248, 1, 252, 2, 0xC3, 0x28])),
        ("BINARY_20 length with high nibble set", "BadNode", bytes([248, 2, 30, 253, 0x10, 0, 0])),
    ]
    for comment, flag, data in bad:
        vf.add(t, comment, "invalid", [flag], encoded=h(data))

    g = vf.group("NodeCodec", op="wa_binary_decode",
                 **_dict_fields(FW, "S2 §2.1: the three tokens the public example reveals"))
    ex = framework_example()
    data = encode(ex, dictionary=FW)
    assert data.startswith(FW_PREFIX)
    vf.add(g, "framework example <message to from id type notify='joe'><body/></message>", "valid",
           ["FrameworkExample"], node=node_to_json(ex), encoded=h(data), publicPrefix=h(FW_PREFIX))
    vf.add(g, "single-byte token 30 is not in the framework-example dictionary", "invalid", ["BadToken"],
           encoded=h(bytes([248, 1, 30])))
    vf.add(g, "DICTIONARY_0: the framework-example dictionary has no double-byte tables", "invalid",
           ["BadToken"], encoded=h(bytes([248, 1, 236, 0])))

    p = vf.group("FramePayload", op="wa_payload_decode", **_dict_fields(D, src))
    node = stanzas()[0][1]
    raw = encode(node)
    vf.add(p, "flag 0: plain node", "valid", ["PayloadFlag"], node=node_to_json(node), payload=h(pack_payload(raw)))
    vf.add(p, "flag 2: zlib-deflated node", "valid", ["PayloadFlag"], node=node_to_json(node),
           payload=h(bytes([2]) + zlib.compress(raw, 9)))
    big = Node("list", {}, [Node("item", {"id": "3EB0A1B2C3"}) for _ in range(260)])
    vf.add(p, "flag 2: a 260-child list (LIST_16) deflated", "valid", ["PayloadFlag"], node=node_to_json(big),
           payload=h(bytes([2]) + zlib.compress(encode(big), 9)))
    vf.add(p, "flag 2 on an uncompressed node", "invalid", ["CompressionLie"], payload=h(bytes([2]) + raw))
    vf.add(p, "flag 2, zlib stream truncated", "invalid", ["CompressionLie"],
           payload=h(bytes([2]) + zlib.compress(raw)[:-6]))
    vf.add(p, "flag 2, bytes after the zlib stream", "invalid", ["CompressionLie"],
           payload=h(bytes([2]) + zlib.compress(raw) + b"\x00"))
    vf.add(p, "flag 0 on a deflated node", "invalid", ["CompressionLie"], payload=h(bytes([0]) + zlib.compress(raw)))
    vf.add(p, "empty payload (no flag byte)", "invalid", ["Truncated"], payload="")
    vf.add(p, "flag 0x04 with a plain node", "acceptable", ["UnknownFlagBits"], node=node_to_json(node),
           payload=h(bytes([4]) + raw))
    vf.add(p, "flag 0x06 with a deflated node", "acceptable", ["UnknownFlagBits"], node=node_to_json(node),
           payload=h(bytes([6]) + zlib.compress(raw)))
    bomb = zlib.compress(bytes([248, 1, 252]) + bytes(17 << 20), 9)
    vf.add(p, "flag 2, 17 MiB of zeros behind a BINARY_8 tag (inflation bomb)", "acceptable",
           ["InflationBomb"], payload=h(bytes([2]) + bomb))
    return vf


def dictionary_request(group: dict[str, Any]) -> dict[str, Any]:
    return {"name": group["dictionaryName"], "single": group["singleByteTokens"],
            "double": group["doubleByteTokens"]}


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    d = dictionary_request(group)
    if group["type"] == "FramePayload":
        resp = adapter.call("wa_payload_decode", dictionary=d, data=test["payload"])
    else:
        resp = adapter.call("wa_binary_decode", dictionary=d, data=test["encoded"])
    unsupported_in(resp)
    mismatch = None
    if resp["ok"] and "node" in test and resp.get("node") != test["node"]:
        mismatch = f"decoded {resp.get('node')} != {test['node']}"
    if mismatch is None and test["result"] == "valid" and group["type"] == "NodeCodec" \
            and adapter.supports("wa_binary_encode"):
        e = adapter.call("wa_binary_encode", dictionary=d, node=test["node"])
        if not e["ok"]:
            mismatch = f"encode failed: {e.get('error')}: {e.get('message')}"
        elif e.get("data") != test["encoded"]:
            mismatch = f"encode gave {e.get('data')} != {test['encoded']}"
    return verdict(test["result"], resp["ok"], mismatch, resp)
