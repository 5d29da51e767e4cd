"""Sender keys (groups), WhatsApp-style legacy layout (research §2.3, §7): distribution messages,
group messages, bad signatures, replays and iteration jumps beyond the limit."""
from __future__ import annotations

from typing import Any

from reference_impl.signal import xeddsa
from reference_impl.signal.crypto import aes_cbc_encrypt
from reference_impl.signal.keys import KeyPair
from reference_impl.signal.rng import DeterministicRng
from reference_impl.signal.sender_keys import create_distribution, group_encrypt, group_message_keys
from reference_impl.signal.store import ProtocolStore
from reference_impl.signal.wire import SenderKeyDistributionMessage, SenderKeyMessage

from .._check import FAILED, Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, h
from .ratchet import check_deliveries
from .wire import proto_field

FILE = "sender_keys_test.json"
TITLE = "SenderKeys"
SEED = "interop-vectors/sender-keys/v1"

NOTES = {
    "Ktv": Note("BASIC", "Group messages decrypted with the sender's distribution message.",
                "A failure means group messages from this sender cannot be read."),
    "OutOfOrder": Note("EDGE_CASE", "Iterations arrive out of order or with gaps (within the limit).",
                       "Rejecting them loses group messages on reordering networks."),
    "LateDistribution": Note("EDGE_CASE", "The distribution message was created after the sender had "
                             "already sent messages (iteration > 0).", "A failure breaks members who join later."),
    "BadSignature": Note("AUTH_BYPASS", "The XEdDSA signature over 0x33 || protobuf does not verify "
                         "(modified, made by another key, or the signed bytes were modified).",
                         "Accepting it lets any group member (or the server) forge messages as another sender."),
    "Replay": Note("REPLAY", "An iteration is delivered twice.", "Accepting replays repeats messages."),
    "TooFarAhead": Note("DOS", "The iteration is more than 25 000 past the chain (libsignal's limit).",
                        "Accepting it lets one message force unbounded key derivation "
                        "(python-axolotl's inverted check has no limit, research §12 item 5)."),
    "UnknownKeyId": Note("MISSING_STEP", "The message names a sender-key id no distribution introduced.",
                         "Must be rejected (NoSession)."),
    "BadPadding": Note("MODIFIED_PARAMETER", "Correctly signed, but the ciphertext decrypts to invalid PKCS#7.",
                       "Accepting it returns garbage plaintext."),
    "MalformedDistribution": Note("MODIFIED_PARAMETER", "A distribution message with a wrong version byte, "
                                  "a chain key that is not 32 bytes, a bad signing key or a missing field.",
                                  "Accepting it installs an unusable or attacker-shaped sender key."),
    "MalformedMessage": Note("MODIFIED_PARAMETER", "A sender-key message with a wrong version byte or a "
                             "truncated signature.", "Accepting it means the framing is not checked."),
}

TEST_PROPERTIES: dict[str, Any] = {
    "distribution": {"$ref": "#/$defs/hex"},
    "message": {"$ref": "#/$defs/hex"},
    "fields": {"type": "object"},
    "deliveries": {"type": "array", "items": {"type": "object", "required": ["id", "body", "expected"]}},
}
GROUP_PROPERTIES: dict[str, Any] = {
    "kind": {"enum": ["sender_key_distribution_message", "sender_key_message"]},
    "sender": {"type": "object"},
    "transcript": {"type": "array"},
}
REQUIRED = {"SenderKeyDecrypt": ["distribution", "deliveries"],
            "SenderKeyDistributionDecode": ["message"], "SenderKeyMessageDecode": ["message"]}


def _flip(data: bytes, i: int) -> bytes:
    b = bytearray(data)
    b[i] ^= 1
    return bytes(b)


def build() -> VectorFile:
    vf = VectorFile(
        TITLE, "sender_keys_test_schema.json",
        ["Sender keys in the legacy layout: SenderKeyDistributionMessage = 0x33 || protobuf{1 id, "
         "2 iteration, 3 chain_key, 4 signing_key}; SenderKeyMessage = 0x33 || protobuf{1 id, "
         "2 iteration, 3 ciphertext} || XEdDSA signature[64]. Message keys: HKDF-SHA256(HMAC(CK, 0x01), "
         "salt none, 'WhisperGroup', 48) -> iv[0:16], cipher_key[16:48]; next CK = HMAC(CK, 0x02).",
         "Each SenderKeyDecrypt test installs the distribution message in a fresh store and decrypts "
         "the deliveries in order."],
        dict(NOTES),
    )
    rng = DeterministicRng(SEED)
    store = ProtocolStore(KeyPair.generate(rng), 5)
    skdm0 = create_distribution(store, "group", "alice.1", rng)
    state = store.sender_keys[("group", "alice.1")].states[0]  # type: ignore[attr-defined]
    sent: list[bytes] = []
    transcript = []
    for i in range(8):
        ck = state.chain_key
        iv, key = group_message_keys(ck)
        text = f"group message {i}".encode()
        body = group_encrypt(store, "group", "alice.1", text, rng)
        sent.append(body)
        transcript.append({"iteration": i, "chainKey": h(ck), "iv": h(iv), "cipherKey": h(key),
                           "plaintext": h(text), "body": h(body)})
        if i == 1:
            skdm2 = SenderKeyDistributionMessage(state.key_id, state.iteration, state.chain_key,
                                                 state.signing_public)
    signing_private = state.signing_private
    assert signing_private is not None
    pt = [bytes.fromhex(t["plaintext"]) for t in transcript]
    dist0 = skdm0.serialize()

    def ok(i: int, label: str | None = None, body: bytes | None = None) -> dict[str, Any]:
        return {"id": label or f"#{i}", "body": h(body or sent[i]), "expected": {"plaintext": h(pt[i])}}

    def rej(label: str, body: bytes, reason: str) -> dict[str, Any]:
        return {"id": label, "body": h(body), "expected": {"rejected": True, "reason": reason}}

    def forged(iteration: int, ck: bytes, ciphertext_pt: bytes | None = None, raw_ct: bytes | None = None) -> bytes:
        iv, key = group_message_keys(ck)
        ct = raw_ct if raw_ct is not None else aes_cbc_encrypt(key, iv, ciphertext_pt or b"forged")
        body = SenderKeyMessage.encode_body(state.key_id, iteration, ct)
        return body + xeddsa.sign(signing_private, body, z=bytes(64))

    tests = vf.group("SenderKeyDecrypt", op="sender_key_decrypt_sequence",
                     sender={"signingPrivate": h(signing_private.k), "id": state.key_id,
                             "signingKey": h(state.signing_public.serialize())},
                     transcript=transcript)
    vf.add(tests, "iterations 0, 1, 2 in order", "valid", ["Ktv"], distribution=h(dist0),
           deliveries=[ok(0), ok(1), ok(2)])
    vf.add(tests, "iterations 3, 0, 2, 1 (reordered)", "valid", ["OutOfOrder"], distribution=h(dist0),
           deliveries=[ok(3), ok(0), ok(2), ok(1)])
    vf.add(tests, "iteration 7 first, then 4", "valid", ["OutOfOrder"], distribution=h(dist0),
           deliveries=[ok(7), ok(4)])
    vf.add(tests, "distribution at iteration 2, then 2, 3", "valid", ["LateDistribution"],
           distribution=h(skdm2.serialize()), deliveries=[ok(2), ok(3)])
    vf.add(tests, "distribution at iteration 2, then iteration 1 (before the distribution)", "invalid",
           ["LateDistribution", "Replay"], distribution=h(skdm2.serialize()),
           deliveries=[rej("#1", sent[1], "DuplicateMessageError"), ok(2)])
    m = sent[0]
    vf.add(tests, "signature byte modified", "invalid", ["BadSignature"], distribution=h(dist0),
           deliveries=[rej("#0 sig modified", _flip(m, len(m) - 40), "InvalidSignatureError"), ok(0)])
    vf.add(tests, "ciphertext byte modified (signature no longer matches)", "invalid", ["BadSignature"],
           distribution=h(dist0),
           deliveries=[rej("#0 ct modified", _flip(m, len(m) - 70), "InvalidSignatureError"), ok(0)])
    other = KeyPair.generate(rng)
    resigned = m[:-64] + xeddsa.sign(other.private, m[:-64], z=bytes(64))
    vf.add(tests, "signed by another key", "invalid", ["BadSignature"], distribution=h(dist0),
           deliveries=[rej("#0 other signer", resigned, "InvalidSignatureError"), ok(0)])
    vf.add(tests, "sign bit of the signature flipped", "invalid", ["BadSignature"], distribution=h(dist0),
           deliveries=[rej("#0 sign bit", m[:-1] + bytes([m[-1] ^ 0x80]), "InvalidSignatureError")])
    vf.add(tests, "iteration 1 delivered twice", "invalid", ["Replay"], distribution=h(dist0),
           deliveries=[ok(1), rej("#1 again", sent[1], "DuplicateMessageError"), ok(2)])
    ck = bytes.fromhex(transcript[0]["chainKey"])
    from reference_impl.signal.crypto import hmac_sha256
    for _ in range(25001):
        ck = hmac_sha256(ck, b"\x02")
    vf.add(tests, "iteration 25 001 (correctly signed), 25 001 past the chain", "invalid", ["TooFarAhead"],
           distribution=h(dist0),
           deliveries=[rej("#25001", forged(25001, ck, b"too far"), "TooManySkippedKeysError"), ok(0)])
    other_id = SenderKeyMessage.encode_body(state.key_id ^ 1, 0, bytes.fromhex(transcript[0]["body"])[-80:-64])
    vf.add(tests, "unknown sender-key id", "invalid", ["UnknownKeyId"], distribution=h(dist0),
           deliveries=[rej("id ^ 1", other_id + xeddsa.sign(signing_private, other_id, z=bytes(64)),
                           "NoSessionError")])
    ck0 = bytes.fromhex(transcript[0]["chainKey"])
    iv0, key0 = group_message_keys(ck0)
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    enc = Cipher(algorithms.AES(key0), modes.CBC(iv0)).encryptor()
    badpad = enc.update(b"x" * 15 + b"\x00") + enc.finalize()
    vf.add(tests, "correctly signed, PKCS#7 padding byte 0", "invalid", ["BadPadding"], distribution=h(dist0),
           deliveries=[rej("#0 bad padding", forged(0, ck0, raw_ct=badpad), "InvalidMessageError"), ok(0)])

    dd = vf.group("SenderKeyDistributionDecode", op="wire_decode", kind="sender_key_distribution_message")
    vf.add(dd, "distribution message at iteration 0", "valid", ["Ktv"], message=h(dist0),
           fields={"version": 0x33, "id": state.key_id, "iteration": 0, "chain_key": h(skdm0.chain_key),
                   "signing_key": h(state.signing_public.serialize())})
    f = {1: proto_field(1, state.key_id), 2: proto_field(2, 0), 3: proto_field(3, skdm0.chain_key),
         4: proto_field(4, state.signing_public.serialize())}

    def enc_d(version: int = 0x33, skip: int | None = None, **repl: bytes) -> bytes:
        parts = {**f, **{int(k[1:]): v for k, v in repl.items()}}
        return bytes([version]) + b"".join(v for t, v in sorted(parts.items()) if t != skip)

    assert enc_d() == dist0
    for name, data in (("version byte 0x34", enc_d(0x34)), ("version byte 0x23", enc_d(0x23)),
                       ("chain key of 31 bytes", enc_d(t3=proto_field(3, skdm0.chain_key[:31]))),
                       ("chain key of 33 bytes", enc_d(t3=proto_field(3, skdm0.chain_key + b"\x00"))),
                       ("signing key type byte 0x06", enc_d(t4=proto_field(4, b"\x06" + state.signing_public.u))),
                       ("signing key missing", enc_d(skip=4)), ("chain key missing", enc_d(skip=3)),
                       ("id missing", enc_d(skip=1))):
        vf.add(dd, name, "invalid", ["MalformedDistribution"], message=h(data))

    md = vf.group("SenderKeyMessageDecode", op="wire_decode", kind="sender_key_message")
    msg = SenderKeyMessage.parse(sent[0])
    vf.add(md, "sender-key message at iteration 0", "valid", ["Ktv"], message=h(sent[0]),
           fields={"version": 0x33, "id": msg.key_id, "iteration": 0, "ciphertext": h(msg.ciphertext),
                   "signature": h(msg.signature)})
    vf.add(md, "version byte 0x34", "invalid", ["MalformedMessage"], message=h(b"\x34" + sent[0][1:]))
    vf.add(md, "signature truncated to 63 bytes", "invalid", ["MalformedMessage"], message=h(sent[0][:-1]))
    return vf


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    if group["type"] == "SenderKeyDecrypt":
        resp = adapter.call("sender_key_decrypt_sequence", distribution=test["distribution"],
                            messages=[d["body"] for d in test["deliveries"]])
        unsupported_in(resp)
        if not resp["ok"]:
            return Outcome(FAILED, f"adapter error {resp.get('error')}: {resp.get('message')}")
        good, problem = check_deliveries(test["deliveries"], resp.get("results"))
        return Outcome("passed") if good else Outcome(FAILED, problem or "")
    resp = adapter.call("wire_decode", kind=group["kind"], data=test["message"])
    unsupported_in(resp)
    mismatch = None
    if resp["ok"] and "fields" in test:
        got = resp.get("fields", {})
        diff = {k: (got.get(k), v) for k, v in test["fields"].items() if got.get(k) != v}
        mismatch = f"fields differ (got, expected): {diff}" if diff else None
    return verdict(test["result"], resp["ok"], mismatch, resp)
