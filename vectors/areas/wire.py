"""Wire codecs: SignalMessage and PreKeySignalMessage, valid encodings and malformed ones
(research §2; WhatsApp-compatible v3 layout, version byte 0x33)."""
from __future__ import annotations

from typing import Any

from reference_impl.signal.ratchet import compute_mac
from reference_impl.signal.wire import PreKeySignalMessage, SignalMessage

from .._check import Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, h
from .ratchet import Conversation

FILE = "wire_test.json"
TITLE = "SignalWire"

NOTES = {
    "Ktv": Note("BASIC", "A well-formed message from a real conversation (fields in ascending tag "
                "order, set zero values written).", "A failure means messages cannot be parsed."),
    "EdgeValue": Note("EDGE_CASE", "A legal edge value: counter 2^32 - 1, or previous_counter "
                      "absent (defaults to 0).", "Rejecting it is a parser bug."),
    "TruncatedMac": Note("MODIFIED_PARAMETER", "Bytes are cut off the end of the 8-byte MAC.",
                         "Accepting it weakens or removes authentication."),
    "ModifiedMac": Note("AUTH_BYPASS", "A MAC byte is modified.", "Accepting it is an authentication bypass."),
    "WrongMacIdentityOrder": Note(
        "AUTH_BYPASS", "The MAC is computed over receiver_identity || sender_identity instead of "
        "sender_identity || receiver_identity.", "Accepting it means the identity binding is not checked "
        "as specified, so reflected messages may verify."),
    "WrongVersion": Note("MODIFIED_PARAMETER", "The version byte is not 0x33 (the MAC is recomputed "
                         "over the modified byte). 0x34 is what libsignal >= 0.24 writes for v3 sessions "
                         "and accepts; the v3 interop profile requires exactly 0x33 because npm libsignal "
                         "and WhatsApp-style peers reject a low nibble > 3. 0x43/0x44 are version 4 "
                         "(PQXDH), 0x23/0x22 are pre-v3.",
                         "Accepting other versions invites downgrade or cross-version confusion."),
    "Version4WithoutKyber": Note(
        "MODIFIED_PARAMETER", "A PreKeySignalMessage whose outer version byte says 4 but which carries no "
        "Kyber fields (7, 8); libsignal requires them for version 4, the v3 profile accepts only 0x33. "
        "npm libsignal checks only 'high nibble >= 3 and low nibble <= 3' and accepts 0x43.",
        "Accepting it lets a v4-labelled message skip the post-quantum part (a downgrade)."),
    "MissingField": Note("MISSING_STEP", "A required protobuf field is absent (SignalMessage: ratchet_key, "
                         "counter, ciphertext; PreKeySignalMessage: base_key, identity_key, message, "
                         "signed_pre_key_id). The MAC, where present, is recomputed.",
                         "Accepting it means defaults (counter 0, empty key) are silently used."),
    "TrailingGarbage": Note("MODIFIED_PARAMETER", "Bytes are appended after the message.",
                            "Accepting it means message boundaries are not checked."),
    "UnknownField": Note("EDGE_CASE", "A well-formed unknown protobuf field (tag 15) is appended to a "
                         "PreKeySignalMessage, which has no outer MAC. protobuf runtimes (libsignal's prost, "
                         "protobufjs) skip unknown fields; the reference rejects them.",
                         "Either answer is acceptable: no field of v3 uses tag 15."),
    "OversizedVarint": Note("BER_ENCODING", "counter is encoded as a varint longer than 10 bytes: "
                            "malformed protobuf.", "Accepting it means the varint decoder overruns."),
    "CounterAbove32Bits": Note("BER_ENCODING", "counter is 2^32 + 5, which does not fit the uint32 field; "
                               "protobuf runtimes truncate to 32 bits (so the counter reads as 5), a "
                               "strict parser rejects. The MAC covers the bytes as sent.",
                               "Either answer is acceptable; honest senders never write it."),
    "WrongKeyType": Note("MODIFIED_PARAMETER", "A key field is empty or has a type byte other than 0x05.", "Accepting it means key encodings are not checked."),
    "Empty": Note("EDGE_CASE", "The message is empty or only a version byte.",
                  "A crash here is a denial of service."),
}

TEST_PROPERTIES: dict[str, Any] = {
    "message": {"$ref": "#/$defs/hex"},
    "macKey": {"$ref": "#/$defs/hex32"},
    "senderIdentity": {"$ref": "#/$defs/hex"},
    "receiverIdentity": {"$ref": "#/$defs/hex"},
    "fields": {"type": "object"},
}
GROUP_PROPERTIES: dict[str, Any] = {"kind": {"enum": ["signal_message", "prekey_signal_message"]}}
REQUIRED = {"SignalMessageDecode": ["message", "macKey", "senderIdentity", "receiverIdentity"],
            "PreKeySignalMessageDecode": ["message"]}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def proto_field(tag: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(tag << 3) + _varint(value)
    return _varint((tag << 3) | 2) + _varint(len(value)) + value


def build() -> VectorFile:
    vf = VectorFile(
        TITLE, "wire_test_schema.json",
        ["SignalMessage = 0x33 || protobuf{1 ratchet_key, 2 counter, 3 previous_counter, 4 ciphertext} "
         "|| mac[8], mac = HMAC-SHA256(macKey, senderIdentity || receiverIdentity || 0x33 || protobuf)[:8]. "
         "PreKeySignalMessage = 0x33 || protobuf{5 registration_id, 1 pre_key_id, 6 signed_pre_key_id, "
         "2 base_key, 3 identity_key, 4 message}. A decoder must check the version byte, the required "
         "fields, the key encodings and (given macKey and the identities) the MAC."],
        dict(NOTES),
    )
    c = Conversation("wire", with_opk=True)
    a1 = c.send("alice", "wire format")
    c.deliver(a1)
    b1 = c.send("bob", "reply")
    e = c.sent[b1]
    sender, receiver = c.b_id.public, c.a_id.public
    mac_key = bytes.fromhex(e["macKey"])
    msg = SignalMessage.parse(bytes.fromhex(e["body"]))
    ids = {"macKey": e["macKey"], "senderIdentity": h(sender.serialize()), "receiverIdentity": h(receiver.serialize())}

    def fields(m: SignalMessage) -> dict[str, Any]:
        return {"version": m.body[0], "ratchet_key": h(m.ratchet_key.serialize()), "counter": m.counter,
                "previous_counter": m.previous_counter, "ciphertext": h(m.ciphertext), "mac": h(m.mac)}

    def sealed(proto: bytes, version: int = 0x33) -> bytes:
        body = bytes([version]) + proto
        return body + compute_mac(mac_key, sender, receiver, body)

    rk, ct = msg.ratchet_key.serialize(), msg.ciphertext
    sm = vf.group("SignalMessageDecode", op="wire_decode", kind="signal_message")
    vf.add(sm, "SignalMessage from a conversation", "valid", ["Ktv"], message=e["body"], fields=fields(msg), **ids)
    full = proto_field(1, rk) + proto_field(2, 4294967295) + proto_field(3, 7) + proto_field(4, ct)
    m = sealed(full)
    vf.add(sm, "counter 2^32 - 1", "valid", ["EdgeValue"], message=h(m), fields=fields(SignalMessage.parse(m)), **ids)
    m = sealed(proto_field(1, rk) + proto_field(2, 3) + proto_field(4, ct))
    vf.add(sm, "previous_counter absent (defaults to 0)", "valid", ["EdgeValue"], message=h(m),
           fields=fields(SignalMessage.parse(m)), **ids)
    body = bytes.fromhex(e["body"])
    for n in (1, 4, 8):
        vf.add(sm, f"MAC truncated by {n} byte(s)", "invalid", ["TruncatedMac"], message=h(body[:-n]), **ids)
    for i in (1, 8):
        bad = bytearray(body)
        bad[-i] ^= 0x80
        vf.add(sm, f"MAC byte {8 - i} modified", "invalid", ["ModifiedMac"], message=h(bad), **ids)
    swapped = body[:-8] + compute_mac(mac_key, receiver, sender, body[:-8])
    vf.add(sm, "MAC over receiver || sender", "invalid", ["WrongMacIdentityOrder"], message=h(swapped), **ids)
    proto = body[1:-8]
    for v in (0x23, 0x34, 0x43, 0x44, 0x22, 0x32, 0x00, 0xFF):
        vf.add(sm, f"version byte 0x{v:02x} (MAC recomputed)", "invalid", ["WrongVersion"],
               message=h(sealed(proto, v)), **ids)
    for name, p in (("ratchet_key", proto_field(2, 3) + proto_field(3, 0) + proto_field(4, ct)),
                    ("counter", proto_field(1, rk) + proto_field(3, 0) + proto_field(4, ct)),
                    ("ciphertext", proto_field(1, rk) + proto_field(2, 3) + proto_field(3, 0))):
        vf.add(sm, f"{name} missing (MAC recomputed)", "invalid", ["MissingField"], message=h(sealed(p)), **ids)
    vf.add(sm, "one zero byte after the MAC", "invalid", ["TrailingGarbage"], message=h(body + b"\x00"), **ids)
    vf.add(sm, "a whole second MAC after the MAC", "invalid", ["TrailingGarbage"],
           message=h(body + body[-8:]), **ids)
    vf.add(sm, "counter as an 11-byte varint (MAC recomputed)", "invalid", ["OversizedVarint"],
           message=h(sealed(proto_field(1, rk) + b"\x10" + b"\xff" * 10 + b"\x01" + proto_field(3, 0) + proto_field(4, ct))), **ids)
    vf.add(sm, "counter 2^32 + 5 (MAC recomputed)", "acceptable", ["CounterAbove32Bits"],
           message=h(sealed(proto_field(1, rk) + proto_field(2, 2**32 + 5) + proto_field(3, 0) + proto_field(4, ct))), **ids)
    vf.add(sm, "ratchet key with type byte 0x06 (MAC recomputed)", "invalid", ["WrongKeyType"],
           message=h(sealed(proto_field(1, b"\x06" + rk[1:]) + proto_field(2, 3) + proto_field(3, 0) + proto_field(4, ct))), **ids)
    vf.add(sm, "empty ratchet key (MAC recomputed)", "invalid", ["WrongKeyType"],
           message=h(sealed(proto_field(1, b"") + proto_field(2, 3) + proto_field(3, 0) + proto_field(4, ct))), **ids)
    vf.add(sm, "empty message", "invalid", ["Empty"], message="", **ids)
    vf.add(sm, "version byte only", "invalid", ["Empty"], message="33", **ids)

    pk = vf.group("PreKeySignalMessageDecode", op="wire_decode", kind="prekey_signal_message")
    pbody = bytes.fromhex(c.sent[a1]["body"])
    p = PreKeySignalMessage.parse(pbody)

    def pfields(x: PreKeySignalMessage, raw: bytes) -> dict[str, Any]:
        return {"version": raw[0], "registration_id": x.registration_id, "pre_key_id": x.pre_key_id,
                "signed_pre_key_id": x.signed_pre_key_id, "base_key": h(x.base_key.serialize()),
                "identity_key": h(x.identity_key.serialize()), "message": h(x.message.serialize())}

    vf.add(pk, "PreKeySignalMessage with a one-time pre-key", "valid", ["Ktv"], message=h(pbody),
           fields=pfields(p, pbody))
    c2 = Conversation("wire-2", with_opk=False)
    q = bytes.fromhex(c2.sent[c2.send("alice", "no one-time pre-key")]["body"])
    vf.add(pk, "PreKeySignalMessage without a one-time pre-key", "valid", ["Ktv"], message=h(q),
           fields=pfields(PreKeySignalMessage.parse(q), q))
    inner = p.message.serialize()
    bk, ik = p.base_key.serialize(), p.identity_key.serialize()
    f = {1: proto_field(1, p.pre_key_id or 0), 2: proto_field(2, bk), 3: proto_field(3, ik), 4: proto_field(4, inner),
         5: proto_field(5, p.registration_id), 6: proto_field(6, p.signed_pre_key_id)}

    def enc(skip: int | None = None, version: int = 0x33, **repl: bytes) -> bytes:
        parts = {**f, **{int(k[1:]): v for k, v in repl.items()}}
        return bytes([version]) + b"".join(v for t, v in sorted(parts.items()) if t != skip)

    assert enc() == pbody, "field order differs from the reference encoder"
    for v in (0x23, 0x34, 0x43, 0x44):
        vf.add(pk, f"outer version byte 0x{v:02x}", "invalid",
               ["WrongVersion"] + (["Version4WithoutKyber"] if v >> 4 == 4 else []), message=h(enc(version=v)))
    for tag, name in ((2, "base_key"), (3, "identity_key"), (4, "message"), (6, "signed_pre_key_id")):
        vf.add(pk, f"{name} missing", "invalid", ["MissingField"], message=h(enc(skip=tag)))
    vf.add(pk, "a 0xff byte after the protobuf (truncated varint)", "invalid", ["TrailingGarbage"],
           message=h(pbody + b"\xff"))
    vf.add(pk, "unknown field 15 appended", "acceptable", ["UnknownField"], message=h(pbody + proto_field(15, 1)))
    bad_inner = bytearray(inner)
    bad_inner[-1] ^= 1
    vf.add(pk, "inner SignalMessage MAC modified", "invalid", ["ModifiedMac"],
           message=h(enc(t4=proto_field(4, bytes(bad_inner)))), macKey=c.sent[a1]["macKey"],
           senderIdentity=h(c.a_id.public.serialize()), receiverIdentity=h(c.b_id.public.serialize()))
    inner34 = bytearray(inner)
    inner34[0] = 0x34
    vf.add(pk, "inner SignalMessage version 0x34", "invalid", ["WrongVersion"],
           message=h(enc(t4=proto_field(4, bytes(inner34)))))
    vf.add(pk, "base key with type byte 0x06", "invalid", ["WrongKeyType"],
           message=h(enc(t2=proto_field(2, b"\x06" + bk[1:]))))
    vf.add(pk, "identity key with type byte 0x00", "invalid", ["WrongKeyType"],
           message=h(enc(t3=proto_field(3, b"\x00" + ik[1:]))))
    vf.add(pk, "empty message", "invalid", ["Empty"], message="")
    return vf


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    params: dict[str, Any] = {"kind": group["kind"], "data": test["message"]}
    if "macKey" in test:
        params.update(mac_key=test["macKey"], sender_identity=test["senderIdentity"],
                      receiver_identity=test["receiverIdentity"])
    resp = adapter.call("wire_decode", **params)
    unsupported_in(resp)
    mismatch = None
    if resp["ok"] and "fields" in test:
        got = resp.get("fields", {})
        diff = {k: (got.get(k), v) for k, v in test["fields"].items() if got.get(k) != v}
        mismatch = f"fields differ (got, expected): {diff}" if diff else None
    return verdict(test["result"], resp["ok"], mismatch, resp)
