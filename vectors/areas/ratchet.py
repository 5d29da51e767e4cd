"""Scripted Double Ratchet conversations (research §3.2–3.5): every message's keys and bytes,
out-of-order delivery, a dropped message, DH ratchet turns, and rejected deliveries."""
from __future__ import annotations

from typing import Any

from reference_impl.signal import session, xeddsa
from reference_impl.signal.crypto import aes_cbc_encrypt
from reference_impl.signal.keys import KeyPair
from reference_impl.signal.ratchet import compute_mac, derive_message_keys, next_chain_key
from reference_impl.signal.rng import DeterministicRng
from reference_impl.signal.store import ProtocolStore, SignedPreKeyRecord
from reference_impl.signal.wire import PreKeySignalMessage, SignalMessage
from reference_impl.signal.x3dh import PreKeyBundle

from .._check import FAILED, Outcome, unsupported_in, verdict
from .._common import Note, VectorFile, h

FILE = "ratchet_test.json"
TITLE = "DoubleRatchet"
SEED = "interop-vectors/ratchet/v1"

NOTES = {
    "Ktv": Note("BASIC", "A scripted conversation decrypted in delivery order.",
                "A failure means conversations with this implementation break."),
    "LibsignalKat": Note("BASIC", "libsignal's chain-key test vector (rust/protocol/src/ratchet/keys.rs "
                         "test_chain_key_derivation; Java ChainKeyTest); the IV was derived here.",
                         "A failure means message keys differ from libsignal's."),
    "OutOfOrder": Note("EDGE_CASE", "Messages arrive out of order within a chain; skipped message "
                       "keys must be kept.", "Rejecting them loses messages on reordering networks."),
    "DroppedMessage": Note("EDGE_CASE", "A message is never delivered; later ones must still decrypt.",
                           "Rejecting later messages stalls the conversation after one loss."),
    "DhRatchetTurn": Note("BASIC", "Both parties take DH ratchet steps (new ratchet keys).",
                          "A failure breaks every reply."),
    "LateOldChain": Note("EDGE_CASE", "A message from a previous sending chain of the peer arrives "
                         "after a DH ratchet turn.", "Rejecting it loses delayed messages."),
    "Replay": Note("REPLAY", "A message is delivered twice; the second delivery must be rejected "
                   "(libsignal DuplicatedMessage).", "Accepting replays lets an attacker repeat messages."),
    "ModifiedMac": Note("AUTH_BYPASS", "The 8-byte MAC of the SignalMessage is modified.",
                        "Accepting it is an authentication bypass."),
    "ModifiedCiphertext": Note("AUTH_BYPASS", "A ciphertext byte is modified; the MAC covers it.",
                               "Accepting it lets an attacker alter messages."),
    "StateNotAdvancedOnFailure": Note(
        "EDGE_CASE", "After a rejected forgery the genuine message with the same counter must still "
        "decrypt: a failed decryption must not change the session.",
        "npm libsignal advances the ratchet before the MAC check (research §12 item 9); a store that "
        "hands out live session objects then loses the genuine message."),
    "TooFarAhead": Note("DOS", "The counter jumps more than 25 000 (libsignal MAX_FORWARD_JUMPS) "
                        "past the chain; the message must be rejected before deriving keys.",
                        "Accepting it lets one message force unbounded key derivation."),
    "LargeSkip": Note("EDGE_CASE", "The counter jumps 2 500 ahead: within libsignal's 25 000 but "
                      "beyond npm libsignal's 2 000 (research §12 item 5).",
                      "Both answers occur among deployed v3 implementations."),
    "NoSession": Note("MISSING_STEP", "A SignalMessage arrives before any PreKeySignalMessage.",
                      "Must be rejected (NoSession); a crash here is a denial of service."),
    "UnknownPreKey": Note("MISSING_STEP", "The PreKeySignalMessage names a signed or one-time pre-key "
                          "id the responder does not hold.", "Must be rejected (InvalidPreKey)."),
}

TEST_PROPERTIES: dict[str, Any] = {
    "check": {"enum": ["decrypt", "keys"]},
    "role": {"enum": ["initiator", "responder"]},
    "ratchetPrivateKeys": {"type": "array", "items": {"$ref": "#/$defs/hex32"}},
    "deliveries": {"type": "array", "items": {
        "type": "object", "required": ["id", "type", "body", "expected"],
        "properties": {
            "id": {"type": "string"}, "type": {"enum": ["pkmsg", "msg"]}, "body": {"$ref": "#/$defs/hex"},
            "expected": {"type": "object", "properties": {
                "plaintext": {"$ref": "#/$defs/hex"}, "rejected": {"type": "boolean"},
                "acceptable": {"type": "boolean"}, "reason": {"type": "string"}},
                "additionalProperties": False},
        }, "additionalProperties": False}},
    "chainKey": {"$ref": "#/$defs/hex32"},
    "cipherKey": {"$ref": "#/$defs/hex32"},
    "macKey": {"$ref": "#/$defs/hex32"},
    "iv": {"$ref": "#/$defs/hex16"},
    "nextChainKey": {"$ref": "#/$defs/hex32"},
}
GROUP_PROPERTIES: dict[str, Any] = {
    "conversation": {"type": "string"},
    "initiator": {"type": "object"},
    "responder": {"type": "object"},
    "transcript": {"type": "array", "items": {"type": "object"}},
}
REQUIRED = {"ChainKeyDerivation": ["chainKey", "cipherKey", "macKey", "iv", "nextChainKey"],
            "RatchetConversation": ["check"]}


class _RecordingRng:
    """DeterministicRng that remembers the 32-byte draws (the key pairs a party generates)."""

    def __init__(self, seed: str) -> None:
        self._rng = DeterministicRng(seed)
        self.keys: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = self._rng(n)
        if n == 32:
            self.keys.append(out)
        return out


class Conversation:
    def __init__(self, name: str, with_opk: bool) -> None:
        seed = f"{SEED}/{name}"
        keys = DeterministicRng(seed + "/static")
        self.a_id, self.b_id = KeyPair.generate(keys), KeyPair.generate(keys)
        self.b_spk, self.b_opk = KeyPair.generate(keys), KeyPair.generate(keys) if with_opk else None
        self.spk_sig = xeddsa.sign(self.b_id.private, self.b_spk.public.serialize(), z=keys(64))
        self.a_reg, self.b_reg, self.spk_id, self.opk_id = 1111, 2222, 7, 31 if with_opk else None
        self.a_rng, self.b_rng = _RecordingRng(seed + "/alice"), _RecordingRng(seed + "/bob")
        self.alice = ProtocolStore(self.a_id, self.a_reg)
        self.bob = ProtocolStore(self.b_id, self.b_reg)
        self.bob.signed_pre_keys[self.spk_id] = SignedPreKeyRecord(self.spk_id, self.b_spk, self.spk_sig)
        if self.b_opk:
            self.bob.pre_keys[self.opk_id] = self.b_opk
        bundle = PreKeyBundle(self.b_reg, self.b_id.public, self.spk_id, self.b_spk.public,
                              self.spk_sig, self.opk_id, self.b_opk.public if self.b_opk else None)
        session.process_prekey_bundle(self.alice, "bob.1", bundle, self.a_rng)
        self.sent: dict[str, dict[str, Any]] = {}
        self.transcript: list[dict[str, Any]] = []
        self.delivered: dict[str, list[dict[str, Any]]] = {"alice": [], "bob": []}
        self.count = {"alice": 0, "bob": 0}

    def store(self, party: str) -> ProtocolStore:
        return self.alice if party == "alice" else self.bob

    def send(self, party: str, text: str) -> str:
        self.count[party] += 1
        mid = f"{party[0].upper()}{self.count[party]}"
        store = self.store(party)
        peer = "bob.1" if party == "alice" else "alice.1"
        st = store.sessions[peer].current
        assert st is not None
        ck, idx, root, prev = st.sender_chain.key, st.sender_chain.index, st.root_key, st.previous_counter
        mk = derive_message_keys(ck, idx)
        ct = session.encrypt(store, peer, text.encode())
        inner = SignalMessage.parse(PreKeySignalMessage.parse(ct.body).message.serialize()
                                    if ct.type == "pkmsg" else ct.body)
        entry = {
            "id": mid, "sender": party, "type": ct.type, "body": h(ct.body), "plaintext": h(text.encode()),
            "rootKey": h(root), "ratchetKey": h(st.sender_chain.ratchet_key.serialize()),
            "counter": idx, "previousCounter": prev, "chainKey": h(ck), "cipherKey": h(mk.cipher_key),
            "macKey": h(mk.mac_key), "iv": h(mk.iv), "ciphertext": h(inner.ciphertext), "mac": h(inner.mac),
        }
        assert inner.counter == idx and inner.previous_counter == prev
        self.sent[mid] = entry
        self.transcript.append(entry)
        return mid

    def deliver(self, mid: str, *, body: bytes | None = None, expect_reject: str | None = None,
                acceptable: bool = False, label: str | None = None) -> None:
        entry = self.sent[mid]
        party = "bob" if entry["sender"] == "alice" else "alice"
        peer = "alice.1" if party == "bob" else "bob.1"
        rng = self.b_rng if party == "bob" else self.a_rng
        data = bytes.fromhex(entry["body"]) if body is None else body
        mark = len(rng.keys)
        try:
            pt = session.decrypt(self.store(party), peer, entry["type"], data, rng)
        except Exception as exc:
            del rng.keys[mark:]  # a rejected message consumes no generated key (README)
            if not expect_reject:
                raise
            assert type(exc).__name__ == expect_reject, (mid, exc)
            expected: dict[str, Any] = {"rejected": True, "reason": expect_reject}
            if acceptable:
                expected = {"acceptable": True, "reason": expect_reject}
        else:
            assert not expect_reject or acceptable, (mid, "accepted")
            assert pt.hex() == entry["plaintext"], mid
            expected = {"plaintext": entry["plaintext"]}
            if acceptable:
                expected["acceptable"] = True
        self.delivered[party].append({"id": label or mid, "type": entry["type"], "body": h(data),
                                      "expected": expected})

    def extra(self, party: str, mid: str, msg_type: str, data: bytes, reason: str,
              acceptable: bool = False) -> None:
        """Deliver hand-made bytes that must be rejected (or may be, when ``acceptable``)."""
        peer = "alice.1" if party == "bob" else "bob.1"
        rng = self.b_rng if party == "bob" else self.a_rng
        mark = len(rng.keys)
        try:
            pt = session.decrypt(self.store(party), peer, msg_type, data, rng)
            got: dict[str, Any] = {"plaintext": pt.hex(), "acceptable": True}
            assert acceptable, (mid, "accepted")
        except Exception as exc:
            del rng.keys[mark:]  # a rejected message consumes no generated key (README)
            if acceptable:
                got = {"acceptable": True, "reason": type(exc).__name__}
            else:
                assert type(exc).__name__ == reason, (mid, exc)
                got = {"rejected": True, "reason": reason}
        self.delivered[party].append({"id": mid, "type": msg_type, "body": h(data), "expected": got})

    def forge_ahead(self, sender: str, jump: int, text: bytes) -> bytes:
        """A correctly MACed SignalMessage ``jump`` counters past the sender's chain."""
        store = self.store(sender)
        peer = "bob.1" if sender == "alice" else "alice.1"
        st = store.sessions[peer].current
        assert st is not None
        ck, idx = st.sender_chain.key, st.sender_chain.index
        for _ in range(jump):
            ck = next_chain_key(ck)
        mk = derive_message_keys(ck, idx + jump)
        body = SignalMessage.encode_body(st.sender_chain.ratchet_key, idx + jump, st.previous_counter,
                                         aes_cbc_encrypt(mk.cipher_key, mk.iv, text))
        return body + compute_mac(mk.mac_key, st.local_identity, st.remote_identity, body)

    def group_params(self) -> dict[str, Any]:
        return {
            "initiator": {
                "identityPrivate": h(self.a_id.private.k), "identityKey": h(self.a_id.public.serialize()),
                "registrationId": self.a_reg, "basePrivate": h(self.a_rng.keys[0]),
                "sendingRatchetPrivate": h(self.a_rng.keys[1]),
            },
            "responder": {
                "identityPrivate": h(self.b_id.private.k), "identityKey": h(self.b_id.public.serialize()),
                "registrationId": self.b_reg, "signedPreKeyId": self.spk_id,
                "signedPreKeyPrivate": h(self.b_spk.private.k),
                "signedPreKey": h(self.b_spk.public.serialize()), "signedPreKeySignature": h(self.spk_sig),
                "oneTimePreKeyId": self.opk_id,
                "oneTimePreKeyPrivate": h(self.b_opk.private.k) if self.b_opk else None,
                "oneTimePreKey": h(self.b_opk.public.serialize()) if self.b_opk else None,
            },
            "transcript": self.transcript,
        }

    def emit(self, vf: VectorFile, title: str, flags: list[str], result: str,
             roles: tuple[str, ...] = ("responder", "initiator"), keys_test: bool = True) -> None:
        tests = vf.group("RatchetConversation", op="ratchet_decrypt_sequence", conversation=title,
                         **self.group_params())
        if keys_test:
            vf.add(tests, f"{title}: every message's chain key, message keys and header fields",
                   "valid", ["Ktv"], check="keys")
        for role in roles:
            party = "bob" if role == "responder" else "alice"
            rkeys = self.b_rng.keys if party == "bob" else self.a_rng.keys[2:]
            if not self.delivered[party]:
                continue
            vf.add(tests, f"{title}: decrypt as {role}", result, flags, check="decrypt", role=role,
                   ratchetPrivateKeys=[h(k) for k in rkeys], deliveries=self.delivered[party])


def _flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


def build() -> VectorFile:
    vf = VectorFile(
        TITLE, "ratchet_test_schema.json",
        ["Signal v3 Double Ratchet conversations between an initiator (Alice) and a responder (Bob). "
         "Each group holds both parties' fixed keys and a transcript of every message sent, with the "
         "sender's root key, chain key, message keys, counters and bytes. Each 'decrypt' test gives "
         "one party's deliveries in order and the key pairs that party generates (one per DH ratchet "
         "step, in order); the adapter decrypts them with fresh state built from the group's keys.",
         "Deliveries marked rejected must fail without changing the session: later deliveries "
         "in the same test expect the session as if the rejected message had never arrived."],
        dict(NOTES),
    )
    kat = vf.group("ChainKeyDerivation", op="message_keys")
    vf.add(kat, "libsignal test_chain_key_derivation", "valid", ["LibsignalKat"],
           chainKey="8ab72d6f4cc5ac0d387eaf463378ddb28edd07385b1cb01250c715982e7ad48f",
           cipherKey="bf51e9d75e0e31031051f82a2491ffc084fa298b7793bd9db620056febf45217",
           macKey="c6c77d6a73a354337a56435e34607dfe48e3ace14e77314dc6abc172e7a7030b",
           iv="afa8207986b692a116d4b40bbff72d6c",
           nextChainKey="28e8f8fee54b801eef7c5cfb2f17f32c7b334485bbb70fac6ec10342a246d15d")

    # 1. With a one-time pre-key: reordering both ways, a dropped message, three DH turns.
    c = Conversation("conversation-1", with_opk=True)
    a1, a2, a3 = (c.send("alice", t) for t in ("hello bob", "second pre-key message", "third"))
    c.deliver(a1); c.deliver(a3); c.deliver(a2)
    b1, b2 = c.send("bob", "hi alice"), c.send("bob", "how are you?")
    c.deliver(b2); c.deliver(b1)
    a4, a5, a6 = (c.send("alice", t) for t in ("fine", "this one is dropped", "after the drop"))
    c.deliver(a4); c.deliver(a6)
    b3 = c.send("bob", "got it")
    c.deliver(b3)
    a7 = c.send("alice", "bye")
    c.deliver(a7)
    del a5
    c.emit(vf, "conversation 1 (one-time pre-key, reordering, dropped A5, DH turns)",
           ["Ktv", "OutOfOrder", "DroppedMessage", "DhRatchetTurn"],
           "valid")

    # 2. Without a one-time pre-key: a message from an old chain arrives after a DH turn.
    c = Conversation("conversation-2", with_opk=False)
    a1 = c.send("alice", "no one-time pre-key")
    c.deliver(a1)
    b1 = c.send("bob", "reply")
    c.deliver(b1)
    a2, a3 = c.send("alice", "late one"), c.send("alice", "overtakes")
    c.deliver(a3)
    b2 = c.send("bob", "turn")
    c.deliver(b2)
    a4 = c.send("alice", "new chain")
    c.deliver(a4); c.deliver(a2)
    for i in range(3):
        c.deliver(c.send("bob", f"bob burst {i}"))
    c.deliver(c.send("alice", "final"))
    c.emit(vf, "conversation 2 (no one-time pre-key, late message from an old chain)",
           ["Ktv", "OutOfOrder", "LateOldChain", "DhRatchetTurn"], "valid")

    # 3. Rejections: replay, forged MAC / ciphertext (then the genuine message), too far ahead.
    c = Conversation("conversation-3", with_opk=True)
    a1 = c.send("alice", "first")
    c.deliver(a1)
    c.deliver(a1, expect_reject="DuplicateMessageError", label="A1 (replayed)")
    b1 = c.send("bob", "reply")
    c.deliver(b1)
    a2 = c.send("alice", "genuine")
    body = bytes.fromhex(c.sent[a2]["body"])
    c.extra("bob", "A2 with the last MAC byte flipped", "msg", _flip(body, len(body) - 1), "InvalidMacError")
    c.extra("bob", "A2 with a ciphertext byte flipped", "msg", _flip(body, len(body) - 12), "InvalidMacError")
    c.deliver(a2)
    c.deliver(a2, expect_reject="DuplicateMessageError", label="A2 (replayed)")
    c.extra("bob", "forged A+25001 (correct MAC, counter 25 001 ahead)", "msg",
            c.forge_ahead("alice", 25001, b"too far"), "TooManySkippedKeysError")
    a3 = c.send("alice", "still works")
    c.deliver(a3)
    c.deliver(b1, expect_reject="DuplicateMessageError", label="B1 (replayed)")
    c.emit(vf, "conversation 3 (replays, forged MAC and ciphertext, counter too far ahead)",
           ["Replay", "ModifiedMac", "ModifiedCiphertext", "StateNotAdvancedOnFailure", "TooFarAhead"],
           "invalid")

    # 4. A skip within libsignal's limit but beyond npm libsignal's.
    c = Conversation("conversation-4", with_opk=True)
    c.deliver(c.send("alice", "start"))
    c.deliver(c.send("bob", "ok"))
    c.extra("bob", "forged A+2500 (correct MAC, counter 2 500 ahead)", "msg",
            c.forge_ahead("alice", 2500, b"skip 2500"), "", acceptable=True)
    c.emit(vf, "conversation 4 (a 2 500-message skip)", ["LargeSkip"], "acceptable",
           roles=("responder",), keys_test=False)

    # 5. Messages with no session / unknown pre-keys.
    c = Conversation("conversation-5", with_opk=True)
    a1 = c.send("alice", "first")
    pkm = PreKeySignalMessage.parse(bytes.fromhex(c.sent[a1]["body"]))
    c.extra("bob", "inner SignalMessage of A1 sent as 'msg' before any session", "msg",
            pkm.message.serialize(), "NoSessionError")
    for what, spk_id, opk_id in (("signed pre-key id 8 (unknown)", 8, pkm.pre_key_id),
                                 ("one-time pre-key id 32 (unknown)", pkm.signed_pre_key_id, 32)):
        bad = PreKeySignalMessage.build(registration_id=pkm.registration_id, pre_key_id=opk_id,
                                        signed_pre_key_id=spk_id, base_key=pkm.base_key,
                                        identity_key=pkm.identity_key, message=pkm.message)
        c.extra("bob", f"A1 naming {what}", "pkmsg", bad.serialize(), "InvalidPreKeyError")
    c.deliver(a1)
    c.emit(vf, "conversation 5 (no session, unknown pre-key ids)", ["NoSession", "UnknownPreKey"],
           "invalid", roles=("responder",), keys_test=False)
    return vf


def _params(group: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    i, r = group["initiator"], group["responder"]
    common = {"ratchet_private_keys": test["ratchetPrivateKeys"],
              "messages": [{"type": d["type"], "body": d["body"]} for d in test["deliveries"]]}
    if test["role"] == "responder":
        return {"role": "responder", "identity_private": r["identityPrivate"],
                "registration_id": r["registrationId"], "signed_pre_key_id": r["signedPreKeyId"],
                "signed_pre_key_private": r["signedPreKeyPrivate"],
                "one_time_pre_key_id": r["oneTimePreKeyId"],
                "one_time_pre_key_private": r["oneTimePreKeyPrivate"], **common}
    return {"role": "initiator", "identity_private": i["identityPrivate"],
            "registration_id": i["registrationId"], "base_private": i["basePrivate"],
            "sending_ratchet_private": i["sendingRatchetPrivate"],
            "their_identity_key": r["identityKey"], "their_registration_id": r["registrationId"],
            "their_signed_pre_key_id": r["signedPreKeyId"], "their_signed_pre_key": r["signedPreKey"],
            "their_signed_pre_key_signature": r["signedPreKeySignature"],
            "their_one_time_pre_key_id": r["oneTimePreKeyId"],
            "their_one_time_pre_key": r["oneTimePreKey"], **common}


def check_deliveries(deliveries: list[dict[str, Any]], results: Any) -> tuple[bool, str | None]:
    """(all rejections expected happened, first mismatch). Shared with the sender-key area."""
    if not isinstance(results, list) or len(results) != len(deliveries):
        return False, f"expected {len(deliveries)} results, got {results!r:.200}"
    for d, r in zip(deliveries, results):
        exp = d["expected"]
        if exp.get("acceptable"):
            if r.get("ok") and "plaintext" in exp and r.get("plaintext") != exp["plaintext"]:
                return False, f"{d['id']}: wrong plaintext {r.get('plaintext')}"
            continue
        if exp.get("rejected"):
            if r.get("ok"):
                return False, f"{d['id']}: accepted, expected rejection ({exp.get('reason')})"
            continue
        if not r.get("ok"):
            return False, f"{d['id']}: rejected ({r.get('error')}: {r.get('message', '')})"
        if r.get("plaintext") != exp["plaintext"]:
            return False, f"{d['id']}: plaintext {r.get('plaintext')} != {exp['plaintext']}"
    return True, None


def _check_keys(group: dict[str, Any], adapter: Any) -> str | None:
    for m in group["transcript"]:
        resp = adapter.call("message_keys", chain_key=m["chainKey"])
        unsupported_in(resp)
        if not resp["ok"]:
            return f"{m['id']}: message_keys failed: {resp.get('message')}"
        for ours, theirs in (("cipher_key", "cipherKey"), ("mac_key", "macKey"), ("iv", "iv")):
            if resp[ours] != m[theirs]:
                return f"{m['id']}: {ours} {resp[ours]} != {m[theirs]}"
        inner = m["body"]
        if m["type"] == "pkmsg":
            d = adapter.call("wire_decode", kind="prekey_signal_message", data=m["body"])
            unsupported_in(d)
            if not d["ok"]:
                return f"{m['id']}: cannot decode the PreKeySignalMessage: {d.get('message')}"
            inner = d["fields"]["message"]
        d = adapter.call("wire_decode", kind="signal_message", data=inner, mac_key=m["macKey"],
                         sender_identity=group["initiator" if m["sender"] == "alice" else "responder"]["identityKey"],
                         receiver_identity=group["responder" if m["sender"] == "alice" else "initiator"]["identityKey"])
        unsupported_in(d)
        if not d["ok"]:
            return f"{m['id']}: cannot decode/verify the SignalMessage: {d.get('message')}"
        f = d["fields"]
        got = (f["ratchet_key"], f["counter"], f["previous_counter"], f["ciphertext"], f["mac"])
        exp = (m["ratchetKey"], m["counter"], m["previousCounter"], m["ciphertext"], m["mac"])
        if got != exp:
            return f"{m['id']}: header/ciphertext fields {got} != {exp}"
    return None


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    if group["type"] == "ChainKeyDerivation":
        resp = adapter.call("message_keys", chain_key=test["chainKey"])
        unsupported_in(resp)
        mismatch = None
        if resp["ok"]:
            got = (resp["cipher_key"], resp["mac_key"], resp["iv"], resp["next_chain_key"])
            exp = (test["cipherKey"], test["macKey"], test["iv"], test["nextChainKey"])
            mismatch = None if got == exp else f"{got} != {exp}"
        return verdict(test["result"], resp["ok"], mismatch, resp)
    if test["check"] == "keys":
        problem = _check_keys(group, adapter)
        return Outcome(FAILED, problem) if problem else verdict("valid", True, None, {"ok": True})
    resp = adapter.call("ratchet_decrypt_sequence", **_params(group, test))
    unsupported_in(resp)
    if not resp["ok"]:
        return Outcome(FAILED, f"adapter error {resp.get('error')}: {resp.get('message')}")
    ok, problem = check_deliveries(test["deliveries"], resp.get("results"))
    if ok:
        return Outcome("passed")
    return Outcome(FAILED, problem or "")
