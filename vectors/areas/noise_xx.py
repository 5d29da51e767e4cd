"""The chat channel's Noise handshake: Noise_XX_25519_AESGCM_SHA256 with fixed keys, the
profile's prologue and final client payload, cross-checked against the cacophony XX vector."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reference_impl.signal.rng import DeterministicRng

from .._check import FAILED, Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, h
from .jwt_jwks import chat_token

FILE = "noise_xx_test.json"
TITLE = "NoiseXX"
SEED = "interop-vectors/noise-xx/v1"
PROTOCOL = "Noise_XX_25519_AESGCM_SHA256"
PROLOGUE = b"interop-chat/1"  # interop profile CHN-002
PROTOCOL_VERSION = "1.0.0"    # CHN-004
LOGIN = "1-10853634039893@interop"
CACOPHONY = Path(__file__).resolve().parent.parent / "thirdparty" / "cacophony" / "noise_xx_25519_aesgcm_sha256.json"

NOTES = {
    "Cacophony": Note("BASIC", "The cacophony test vector for Noise_XX_25519_AESGCM_SHA256 "
                      "(vectors/thirdparty/cacophony, MIT).",
                      "A failure means the Noise implementation disagrees with an independent one."),
    "ChatChannel": Note("BASIC", "The chat-channel handshake of the interop profile (CHN-002, CHN-004): "
                        "prologue 'interop-chat/1', the client (initiator) static key is the enlisted authkey, "
                        "messages 1 and 2 have empty payloads, message 3's payload is a serialized "
                        "interop.stanzas.HandshakePayload{jwt, protocol_version '1.0.0', login}; then two "
                        "transport messages, each one serialized Stanza (ping id 'p1', pong id 'p1').",
                        "A failure means the client cannot log in."),
    "WrongPrologue": Note("MODIFIED_PARAMETER", "The reading party uses another prologue; the handshake "
                          "hash differs, so the first encrypted payload fails to decrypt.",
                          "Accepting it means the prologue does not bind the session to the protocol."),
    "ModifiedHandshake": Note("AUTH_BYPASS", "A byte of a handshake message is modified.",
                              "Accepting it allows a man in the middle."),
    "ModifiedTransport": Note("AUTH_BYPASS", "A transport message is modified, truncated or replayed.",
                              "Accepting it lets the network alter or repeat stanzas."),
}
TEST_PROPERTIES: dict[str, Any] = {
    "role": {"enum": ["initiator", "responder"]},
    "prologue": {"$ref": "#/$defs/hex"},
    "messages": {"type": "array", "items": {"type": "object", "required": ["payload", "ciphertext"],
                                            "properties": {"payload": {"$ref": "#/$defs/hex"},
                                                           "ciphertext": {"$ref": "#/$defs/hex"}},
                                            "additionalProperties": False}},
    "handshakeHash": {"$ref": "#/$defs/hex32"},
    "rejectAt": {"type": "integer", "minimum": 0},
}
GROUP_PROPERTIES: dict[str, Any] = {
    "protocolName": {"type": "string"}, "initiatorStatic": {"$ref": "#/$defs/hex32"},
    "initiatorEphemeral": {"$ref": "#/$defs/hex32"}, "responderStatic": {"$ref": "#/$defs/hex32"},
    "responderEphemeral": {"$ref": "#/$defs/hex32"}, "finalPayload": {"type": "object"},
    "source": {"type": "string"},
}
REQUIRED = {"NoiseHandshake": ["role", "prologue", "messages"]}


def _run(protocol: str, prologue: bytes, i_s: bytes, i_e: bytes, r_s: bytes, r_e: bytes,
         payloads: list[bytes]) -> tuple[list[dict[str, str]], bytes]:
    import warnings

    from noise.connection import Keypair, NoiseConnection

    warnings.filterwarnings("ignore", message="One of ephemeral keypairs is already set")
    ends = []
    for role, s, e in (("i", i_s, i_e), ("r", r_s, r_e)):
        c = NoiseConnection.from_name(protocol.encode())
        c.set_as_initiator() if role == "i" else c.set_as_responder()
        c.set_prologue(prologue)
        c.set_keypair_from_private_bytes(Keypair.STATIC, s)
        c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, e)
        c.start_handshake()
        ends.append(c)
    msgs = []
    for n, p in enumerate(payloads):
        w, r = ends[n % 2], ends[(n + 1) % 2]
        if not w.handshake_finished:
            ct = bytes(w.write_message(p))
            assert bytes(r.read_message(ct)) == p
        else:
            ct = bytes(w.encrypt(p))
            assert bytes(r.decrypt(ct)) == p
        msgs.append({"payload": h(p), "ciphertext": h(ct)})
    hh = bytes(ends[0].get_handshake_hash())
    assert hh == bytes(ends[1].get_handshake_hash())
    return msgs, hh


def _flip(hexstr: str, index: int) -> str:
    b = bytearray(bytes.fromhex(hexstr))
    b[index] ^= 1
    return b.hex()


def build() -> VectorFile:
    vf = VectorFile(
        TITLE, "noise_xx_test_schema.json",
        ["Noise XX handshakes (-> e; <- e, ee, s, es; -> s, se) followed by transport messages, initiator "
         "and responder alternating. Each test plays one role with the group's fixed static and ephemeral "
         "private keys: it writes the messages whose index has its parity (initiator even, responder "
         "odd) from 'payload' and must produce 'ciphertext'; it reads the others from 'ciphertext' and "
         "must produce 'payload'. Invalid tests must fail at message 'rejectAt'."],
        dict(NOTES),
    )
    cac = json.loads(CACOPHONY.read_text())["vectors"][0]
    g = vf.group("NoiseHandshake", op="noise_handshake", protocolName=cac["protocol_name"],
                 source="cacophony (vectors/thirdparty/cacophony)",
                 initiatorStatic=cac["init_static"], initiatorEphemeral=cac["init_ephemeral"],
                 responderStatic=cac["resp_static"], responderEphemeral=cac["resp_ephemeral"])
    msgs, hh = _run(cac["protocol_name"], bytes.fromhex(cac["init_prologue"]),
                    *(bytes.fromhex(cac[k]) for k in ("init_static", "init_ephemeral", "resp_static", "resp_ephemeral")),
                    [bytes.fromhex(m["payload"]) for m in cac["messages"]])
    assert msgs == cac["messages"] and hh.hex() == cac["handshake_hash"], "noiseprotocol disagrees with cacophony"
    for role in ("initiator", "responder"):
        vf.add(g, f"cacophony XX as {role}", "valid", ["Cacophony"], role=role, prologue=cac["init_prologue"],
               messages=cac["messages"], handshakeHash=cac["handshake_hash"])

    rng = DeterministicRng(SEED)
    i_s, i_e, r_s, r_e = rng(32), rng(32), rng(32), rng(32)
    from reference_impl.wire import stanzas_pb2 as st

    final = {"jwt": chat_token(), "protocol_version": PROTOCOL_VERSION, "login": LOGIN}
    final_bytes = st.HandshakePayload(**final).SerializeToString(deterministic=True)
    ping = st.Stanza(id="p1", ping=st.Ping()).SerializeToString(deterministic=True)
    pong = st.Stanza(id="p1", pong=st.Pong()).SerializeToString(deterministic=True)
    payloads = [b"", b"", final_bytes, ping, pong]
    msgs, hh = _run(PROTOCOL, PROLOGUE, i_s, i_e, r_s, r_e, payloads)
    g = vf.group("NoiseHandshake", op="noise_handshake", protocolName=PROTOCOL, source="interop profile chat channel",
                 initiatorStatic=h(i_s), initiatorEphemeral=h(i_e), responderStatic=h(r_s),
                 responderEphemeral=h(r_e), finalPayload=final)
    pro = h(PROLOGUE)
    for role in ("initiator", "responder"):
        vf.add(g, f"chat channel as {role}", "valid", ["ChatChannel"], role=role, prologue=pro,
               messages=msgs, handshakeHash=h(hh))
    wrong = h(b"interop-chat/2")
    vf.add(g, "initiator with prologue 'interop-chat/2'", "invalid", ["WrongPrologue"], role="initiator",
           prologue=wrong, messages=msgs, rejectAt=1)
    vf.add(g, "responder with an empty prologue", "invalid", ["WrongPrologue"], role="responder",
           prologue="", messages=msgs, rejectAt=2)

    def mod(index: int, ct: str) -> list[dict[str, str]]:
        return [dict(m, ciphertext=ct) if n == index else m for n, m in enumerate(msgs)]

    vf.add(g, "message 1: encrypted responder static modified", "invalid", ["ModifiedHandshake"],
           role="initiator", prologue=pro, messages=mod(1, _flip(msgs[1]["ciphertext"], 40)), rejectAt=1)
    vf.add(g, "message 1: tag modified", "invalid", ["ModifiedHandshake"], role="initiator", prologue=pro,
           messages=mod(1, _flip(msgs[1]["ciphertext"], len(msgs[1]["ciphertext"]) // 2 - 1)), rejectAt=1)
    vf.add(g, "message 0: initiator ephemeral modified (caught at message 2)", "invalid", ["ModifiedHandshake"],
           role="responder", prologue=pro, messages=mod(0, _flip(msgs[0]["ciphertext"], 3)), rejectAt=2)
    vf.add(g, "message 2: encrypted payload (token) modified", "invalid", ["ModifiedHandshake"], role="responder",
           prologue=pro, messages=mod(2, _flip(msgs[2]["ciphertext"], 100)), rejectAt=2)
    vf.add(g, "message 2: truncated by 1 byte", "invalid", ["ModifiedHandshake"], role="responder",
           prologue=pro, messages=mod(2, msgs[2]["ciphertext"][:-2]), rejectAt=2)
    vf.add(g, "transport message 3 modified", "invalid", ["ModifiedTransport"], role="initiator", prologue=pro,
           messages=mod(3, _flip(msgs[3]["ciphertext"], 0)), rejectAt=3)
    vf.add(g, "transport message 4 replaced by message 3 (replay of the other direction)", "invalid",
           ["ModifiedTransport"], role="responder", prologue=pro, messages=mod(4, msgs[3]["ciphertext"]), rejectAt=4)
    vf.add(g, "transport message 4 truncated to 15 bytes", "invalid", ["ModifiedTransport"], role="responder",
           prologue=pro, messages=mod(4, msgs[4]["ciphertext"][:30]), rejectAt=4)
    return vf


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    role = test["role"]
    s, e = (("initiatorStatic", "initiatorEphemeral") if role == "initiator"
            else ("responderStatic", "responderEphemeral"))
    resp = adapter.call("noise_handshake", role=role, protocol_name=group["protocolName"], prologue=test["prologue"],
                        static_private=group[s], ephemeral_private=group[e], messages=test["messages"])
    unsupported_in(resp)
    mismatch = None
    me = 0 if role == "initiator" else 1
    if resp["ok"]:
        outs = resp.get("outputs", [])
        for n, m in enumerate(test["messages"]):
            want = m["ciphertext"] if n % 2 == me else m["payload"]
            if n >= len(outs) or outs[n] != want:
                mismatch = f"message {n}: {outs[n] if n < len(outs) else None} != {want}"
                break
        if mismatch is None and "handshakeHash" in test and resp.get("handshake_hash") != test["handshakeHash"]:
            mismatch = f"handshake hash {resp.get('handshake_hash')} != {test['handshakeHash']}"
    out = verdict(test["result"], resp["ok"], mismatch, resp)
    if out.status == "passed" and test["result"] == "invalid" and resp.get("index") not in (None, test["rejectAt"]):
        return Outcome(FAILED, f"rejected at message {resp.get('index')}, expected {test['rejectAt']}")
    return out
