"""The `wa` binding's Noise handshake: WhatsApp's XX variant with the 'WA' header as prologue,
protobuf-wrapped handshake messages, the server certificate chain and the interop ClientPayload,
then transport frames (docs/wa-binding.md W10-W16). Fixed keys; observed rules (Baileys 6.17.16
lib/Utils/noise-handler.js, whatsmeow handshake.go)."""
from __future__ import annotations

from typing import Any

from reference_impl.signal.keys import KeyPair
from reference_impl.signal.rng import DeterministicRng
from reference_impl.wa.binary_xml import JID, Node, encode
from reference_impl.wa.certs import make_cert_chain
from reference_impl.wa.frame import connection_header, encode_frame, pack_payload
from reference_impl.wa.noise import WAClient, WAServer, interop_payload
from reference_impl.wa.wa_handshake_pb2 import CertChain, HandshakeMessage

from .._check import FAILED, Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, h
from .jwt_jwks import chat_token

FILE = "wa_handshake_test.json"
TITLE = "WANoiseHandshake"
SEED = "interop-vectors/wa-handshake/v1"
NOT_BEFORE, NOT_AFTER = 1_700_000_000, 2_000_000_000

NOTES = {
    "WAHandshake": Note("BASIC", "A complete WA handshake and two transport frames: the client sends 'WA' 6 2 "
                        "and clientHello{ephemeral}; the server answers serverHello{ephemeral, static, payload = "
                        "CertChain}; the client sends clientFinish{static = authkey, payload = ClientPayload "
                        "(product INTEROP, interopData{accountId, token = the user's JWT})}; then a ping iq and "
                        "its result, each a flag byte + binary-XML node under AES-GCM with a counter nonce.",
                        "A failure means the implementation cannot connect to the gatekeeper's chat server."),
    "WrongHeader": Note("MODIFIED_PARAMETER", "The connection header is not 'W' 'A' 6 <dict version 2>.",
                        "Accepting it means the prologue does not bind the protocol version."),
    "LowOrderKey": Note("EDGE_CASE", "The client ephemeral is the all-zero point: X25519 gives the zero secret.",
                        "Accepting it makes the handshake keys predictable."),
    "NotXX": Note("MODIFIED_PARAMETER", "A clientHello that also carries static/payload (the IK form) or a "
                  "handshake frame of the wrong kind.", "Accepting it confuses the state machine."),
    "ModifiedHandshake": Note("AUTH_BYPASS", "A byte of a handshake message is modified or the message is "
                              "truncated.", "Accepting it allows a man in the middle."),
    "WrongRoot": Note("AUTH_BYPASS", "The client checks the chain under another root key.",
                      "Accepting it means any server can impersonate the gatekeeper."),
    "CertSignature": Note("AUTH_BYPASS", "A chain whose leaf signature does not verify. Baileys 6.17.16 checks "
                          "no signature and would accept it; whatsmeow rejects it.",
                          "Accepting it means the certificate does not authenticate the server key."),
    "CertMismatch": Note("AUTH_BYPASS", "A correctly signed chain whose leaf is another key than the server "
                         "static, or whose intermediate issuerSerial is not 0.",
                         "Accepting it lets a certified key be replayed for another server."),
    "ModifiedTransport": Note("AUTH_BYPASS", "A transport frame is modified or replaced by a frame of the other "
                              "direction.", "Accepting it lets the network alter or reflect stanzas."),
}
_MSG = {"type": "object", "required": ["direction", "wire", "payload"],
        "properties": {"direction": {"enum": ["c2s", "s2c"]}, "wire": {"$ref": "#/$defs/hex"},
                       "payload": {"$ref": "#/$defs/hex"}}, "additionalProperties": False}
TEST_PROPERTIES: dict[str, Any] = {
    "role": {"enum": ["initiator", "responder"]},
    "messages": {"type": "array", "items": _MSG},
    "rootPublic": {"$ref": "#/$defs/hex32"},
    "handshakeHash": {"$ref": "#/$defs/hex32"},
    "clientStatic": {"$ref": "#/$defs/hex32"},
    "serverStatic": {"$ref": "#/$defs/hex32"},
    "rejectAt": {"type": "integer", "minimum": 0},
}
GROUP_PROPERTIES: dict[str, Any] = {
    "header": {"$ref": "#/$defs/hex"}, "protocolName": {"type": "string"},
    "clientStaticPrivate": {"$ref": "#/$defs/hex32"}, "clientEphemeralPrivate": {"$ref": "#/$defs/hex32"},
    "serverStaticPrivate": {"$ref": "#/$defs/hex32"}, "serverEphemeralPrivate": {"$ref": "#/$defs/hex32"},
    "rootPublic": {"$ref": "#/$defs/hex32"}, "intermediatePublic": {"$ref": "#/$defs/hex32"},
    "clientPayload": {"type": "object"},
}
REQUIRED = {"WAHandshake": ["role", "messages"]}


def _keys() -> dict[str, KeyPair]:
    rng = DeterministicRng(SEED)
    names = ("root", "intermediate", "server_static", "server_ephemeral", "client_static", "client_ephemeral")
    out = {n: KeyPair.generate(rng) for n in names}
    return out


def _chain(k: dict[str, KeyPair], **kw: Any) -> bytes:
    kw.setdefault("server_static", k["server_static"].public.u)
    return make_cert_chain(root=k["root"].private, intermediate=k["intermediate"],
                           not_before=NOT_BEFORE, not_after=NOT_AFTER,
                           rng=DeterministicRng(SEED + "/xeddsa"), **kw)


def _transcript(k: dict[str, KeyPair], chain: bytes, payload: bytes,
                frames: list[tuple[str, bytes]]) -> tuple[list[dict[str, str]], WAClient, WAServer]:
    client = WAClient(static=k["client_static"], ephemeral=k["client_ephemeral"], payload=payload,
                      root_public=k["root"].public.u)
    server = WAServer(static=k["server_static"], ephemeral=k["server_ephemeral"], cert_chain=chain)
    msgs = []
    client.start()
    m0 = client.data_to_send()
    server.receive_data(m0)
    msgs.append({"direction": "c2s", "wire": h(m0), "payload": ""})
    m1 = server.data_to_send()
    client.receive_data(m1)
    msgs.append({"direction": "s2c", "wire": h(m1), "payload": h(chain)})
    m2 = client.data_to_send()
    (auth,) = server.receive_data(m2)
    assert auth.payload_bytes == payload
    msgs.append({"direction": "c2s", "wire": h(m2), "payload": h(payload)})
    for direction, data in frames:
        a, b = (client, server) if direction == "c2s" else (server, client)
        a.send(data)
        wire = a.data_to_send()
        (ev,) = b.receive_data(wire)
        assert ev.data == data
        msgs.append({"direction": direction, "wire": h(wire), "payload": h(data)})
    return msgs, client, server


def _server_reply(k: dict[str, KeyPair], m0_wire: str, chain: bytes) -> str:
    server = WAServer(static=k["server_static"], ephemeral=k["server_ephemeral"], cert_chain=chain)
    server.receive_data(bytes.fromhex(m0_wire))
    return h(server.data_to_send())


def _flip(hexstr: str, index: int) -> str:
    b = bytearray(bytes.fromhex(hexstr))
    b[index] ^= 1
    return b.hex()


def _replace(msgs: list[dict[str, str]], index: int, wire: str) -> list[dict[str, str]]:
    return [dict(m, wire=wire) if n == index else m for n, m in enumerate(msgs)]


def build() -> VectorFile:
    vf = VectorFile(TITLE, "wa_handshake_test_schema.json", [
        "WhatsApp's Noise XX as the `wa` binding uses it (docs/wa-binding.md; observed in Baileys 6.17.16 and "
        "whatsmeow, not public): h = ck = 'Noise_XX_25519_AESGCM_SHA256\\0\\0\\0\\0'; MixHash(header); "
        "-> e (MixHash(e); unlike standard Noise the empty payload is NOT hashed); <- e, ee, s, es, payload; "
        "-> s, se, payload; Split. AES-256-GCM, nonce = 8 zero bytes || uint32_be(counter), associated data "
        "h during the handshake and empty afterwards. Handshake tokens travel as HandshakeMessage protobuf "
        "fields (docs/spec/proto/wa_handshake.proto), every frame as a 3-byte big-endian length + bytes.",
        "Each test plays one role with the group's fixed private keys. 'wire' is every byte of the message as "
        "sent (message 0 starts with the 4-byte header). The role must produce exactly 'wire' for the "
        "messages of its direction (message 1 from its static key and the chain in message 1's 'payload', "
        "message 2 from the ClientPayload in message 2's 'payload', transport messages from their "
        "'payload') and must read the others, giving 'payload' (the decrypted CertChain for message 1, "
        "the ClientPayload for message 2, the flag byte + node for transport). The initiator checks the "
        "chain under 'rootPublic' (the test's, else the group's). Invalid tests must fail at 'rejectAt'.",
    ], dict(NOTES))
    k = _keys()
    chain = _chain(k)
    token = chat_token()
    payload_msg = interop_payload(token=token.encode(), account_id=10853634039893, app_version=(1, 0, 0))
    payload = payload_msg.SerializeToString(deterministic=True)
    ping = Node("iq", {"id": "0123", "to": JID("", "s.whatsapp.net"), "type": "get", "xmlns": "urn:xmpp:ping"},
                [Node("ping")])
    pong = Node("iq", {"id": "0123", "from": JID("", "s.whatsapp.net"), "type": "result"})
    msgs, client, server = _transcript(k, chain, payload, [("c2s", pack_payload(encode(ping))),
                                                           ("s2c", pack_payload(encode(pong), compress=True))])
    assert client.handshake_hash == server.handshake_hash and client.handshake_hash is not None
    g = vf.group(
        "WAHandshake", op="wa_handshake", header=h(connection_header()),
        protocolName="Noise_XX_25519_AESGCM_SHA256\\0\\0\\0\\0 (WA variant)",
        clientStaticPrivate=h(k["client_static"].private.serialize()),
        clientEphemeralPrivate=h(k["client_ephemeral"].private.serialize()),
        serverStaticPrivate=h(k["server_static"].private.serialize()),
        serverEphemeralPrivate=h(k["server_ephemeral"].private.serialize()),
        rootPublic=h(k["root"].public.u), intermediatePublic=h(k["intermediate"].public.u),
        clientPayload={"product": "INTEROP", "interopData": {"accountId": 10853634039893, "token": token},
                       "userAgent": {"appVersion": {"primary": 1, "secondary": 0, "tertiary": 0}}})
    common = {"handshakeHash": h(client.handshake_hash), "clientStatic": h(k["client_static"].public.u),
              "serverStatic": h(k["server_static"].public.u)}
    for role in ("initiator", "responder"):
        vf.add(g, f"WA handshake, ping and compressed result, as {role}", "valid", ["WAHandshake"],
               role=role, messages=msgs, **common)

    m0, m1, m2 = (msgs[i]["wire"] for i in range(3))
    # -- the responder reads bad client messages
    vf.add(g, "header 'WA' 5 2", "invalid", ["WrongHeader"], role="responder",
           messages=_replace(msgs, 0, h(b"WA\x05\x02") + m0[8:]), rejectAt=0)
    vf.add(g, "header 'WA' 6 3 (another dictionary version)", "invalid", ["WrongHeader"], role="responder",
           messages=_replace(msgs, 0, h(b"WA\x06\x03") + m0[8:]), rejectAt=0)
    zero = HandshakeMessage()
    zero.clientHello.ephemeral = bytes(32)
    vf.add(g, "client ephemeral all zeros", "invalid", ["LowOrderKey"], role="responder",
           messages=_replace(msgs, 0, h(connection_header() + encode_frame(zero.SerializeToString()))), rejectAt=0)
    ik = HandshakeMessage()
    ik.clientHello.ephemeral = k["client_ephemeral"].public.u
    ik.clientHello.static = bytes(48)
    vf.add(g, "clientHello with a static field (IK form)", "invalid", ["NotXX"], role="responder",
           messages=_replace(msgs, 0, h(connection_header() + encode_frame(ik.SerializeToString()))), rejectAt=0)
    fin_first = HandshakeMessage()
    fin_first.clientFinish.static = bytes(48)
    vf.add(g, "clientFinish where clientHello belongs", "invalid", ["NotXX"], role="responder",
           messages=_replace(msgs, 0, h(connection_header() + encode_frame(fin_first.SerializeToString()))),
           rejectAt=0)
    vf.add(g, "client ephemeral modified (caught at message 2)", "invalid", ["ModifiedHandshake"], role="responder",
           messages=_replace(msgs, 0, _flip(m0, 4 + 3 + 4 + 5)), rejectAt=2)
    vf.add(g, "message 2: encrypted ClientPayload modified", "invalid", ["ModifiedHandshake"], role="responder",
           messages=_replace(msgs, 2, _flip(m2, len(m2) // 2 - 3)), rejectAt=2)
    vf.add(g, "message 2: encrypted client static modified", "invalid", ["ModifiedHandshake"], role="responder",
           messages=_replace(msgs, 2, _flip(m2, 3 + 2 + 3 + 10)), rejectAt=2)
    vf.add(g, "transport message 3 modified", "invalid", ["ModifiedTransport"], role="responder",
           messages=_replace(msgs, 3, _flip(msgs[3]["wire"], 5)), rejectAt=3)
    # -- the initiator reads bad server messages
    vf.add(g, "chain checked under the intermediate key instead of the root", "invalid", ["WrongRoot"],
           role="initiator", messages=msgs, rootPublic=h(k["intermediate"].public.u), rejectAt=1)
    vf.add(g, "message 1: encrypted server static modified", "invalid", ["ModifiedHandshake"], role="initiator",
           messages=_replace(msgs, 1, _flip(m1, 3 + 2 + 3 + 34 + 2 + 5)), rejectAt=1)
    vf.add(g, "message 1: server ephemeral modified", "invalid", ["ModifiedHandshake"], role="initiator",
           messages=_replace(msgs, 1, _flip(m1, 3 + 2 + 3 + 2 + 7)), rejectAt=1)
    vf.add(g, "message 1: truncated by one byte (length fixed)", "invalid", ["ModifiedHandshake"],
           role="initiator", messages=_replace(msgs, 1, h(encode_frame(bytes.fromhex(m1)[3:-1]))), rejectAt=1)
    bad_sig = CertChain()
    bad_sig.ParseFromString(chain)
    bad_sig.leaf.signature = bytes([bad_sig.leaf.signature[0] ^ 1]) + bad_sig.leaf.signature[1:]
    vf.add(g, "chain with a corrupted leaf signature", "invalid", ["CertSignature"], role="initiator",
           messages=_replace(msgs, 1, _server_reply(k, m0, bad_sig.SerializeToString())), rejectAt=1)
    vf.add(g, "chain certifying the client's key instead of the server's", "invalid", ["CertMismatch"],
           role="initiator", messages=_replace(msgs, 1, _server_reply(
               k, m0, _chain(k, server_static=k["client_static"].public.u))), rejectAt=1)
    from reference_impl.signal import xeddsa
    D = CertChain.NoiseCertificate.Details
    serial1 = CertChain()
    serial1.intermediate.details = D(serial=1, issuerSerial=1, key=k["intermediate"].public.u).SerializeToString()
    serial1.intermediate.signature = xeddsa.sign(k["root"].private, serial1.intermediate.details,
                                                 DeterministicRng(SEED + "/serial"))
    serial1.leaf.details = D(serial=2, issuerSerial=1, key=k["server_static"].public.u).SerializeToString()
    serial1.leaf.signature = xeddsa.sign(k["intermediate"].private, serial1.leaf.details,
                                         DeterministicRng(SEED + "/serial2"))
    vf.add(g, "intermediate with issuerSerial 1 (Baileys' only check)", "invalid", ["CertMismatch"],
           role="initiator", messages=_replace(msgs, 1, _server_reply(k, m0, serial1.SerializeToString())),
           rejectAt=1)
    vf.add(g, "transport message 4 replaced by message 3 (reflection)", "invalid", ["ModifiedTransport"],
           role="initiator", messages=_replace(msgs, 4, msgs[3]["wire"]), rejectAt=4)
    vf.add(g, "transport message 4 with a short frame (15 bytes)", "invalid", ["ModifiedTransport"],
           role="initiator", messages=_replace(msgs, 4, h(encode_frame(bytes(15)))), rejectAt=4)
    return vf


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    role = test["role"]
    who = "client" if role == "initiator" else "server"
    resp = adapter.call("wa_handshake", role=role, header=group["header"],
                        static_private=group[f"{who}StaticPrivate"],
                        ephemeral_private=group[f"{who}EphemeralPrivate"],
                        root_public=test.get("rootPublic", group["rootPublic"]), messages=test["messages"])
    unsupported_in(resp)
    mismatch = None
    mine = "c2s" if role == "initiator" else "s2c"
    if resp["ok"]:
        outs = resp.get("outputs", [])
        for n, m in enumerate(test["messages"]):
            want = m["wire"] if m["direction"] == mine else m["payload"]
            if n >= len(outs) or outs[n] != want:
                mismatch = f"message {n}: {outs[n] if n < len(outs) else None} != {want}"
                break
        for key, field in (("handshake_hash", "handshakeHash"), ("client_static", "clientStatic"),
                           ("server_static", "serverStatic")):
            if mismatch is None and field in test and key in resp and resp[key] != test[field]:
                mismatch = f"{key} {resp[key]} != {test[field]}"
    out = verdict(test["result"], resp["ok"], mismatch, resp)
    if out.status == "passed" and test["result"] == "invalid" and resp.get("index") not in (None, test["rejectAt"]):
        return Outcome(FAILED, f"rejected at message {resp.get('index')}, expected {test['rejectAt']}")
    return out
