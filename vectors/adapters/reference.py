"""The reference implementation's adapter: every op of the vectors protocol (README "Adapter
protocol") answered by ``reference_impl`` plus ``noiseprotocol`` and ``PyJWT``.

Run as ``python -m vectors.adapters.reference`` it speaks JSON lines on stdin/stdout; the
checker also calls :func:`handle` in-process (the default, no subprocess).

Each op is a pure function of its request. Rejections of the *input* come back as
``{"ok": false, "error": <error class>, "message": ...}``; only a malformed *request* gives
``"error": "bad_request"``.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError

from reference_impl.media import crypto as media
from reference_impl.signal import padding, session, xeddsa
from reference_impl.signal.crypto import sha256
from reference_impl.signal.errors import SignalError
from reference_impl.signal.keys import KeyPair, PrivateKey, PublicKey
from reference_impl.signal.ratchet import compute_mac, derive_message_keys, next_chain_key
from reference_impl.signal.sender_keys import group_decrypt, process_distribution
from reference_impl.signal.store import ProtocolStore, SignedPreKeyRecord
from reference_impl.signal.wire import (
    PreKeySignalMessage,
    SenderKeyDistributionMessage,
    SenderKeyMessage,
    SignalMessage,
)
from reference_impl.signal.x3dh import PreKeyBundle, alice_agree, bob_agree
from reference_impl.wire import stanza_rules, stanzas_pb2

from .reference_wa import WA_OPS, WARejected

__all__ = ["OPS", "handle", "main"]

IMPLEMENTATION = {"name": "reference_impl (Python)", "version": "0.1.0"}


class Rejected(Exception):
    """The input was rejected for a reason outside ``SignalError`` (Noise, JWT)."""

    def __init__(self, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.error = error
        self.extra = extra


def _b(req: dict[str, Any], key: str) -> bytes:
    return bytes.fromhex(req[key])


def _ob(req: dict[str, Any], key: str) -> bytes | None:
    v = req.get(key)
    return None if v is None else bytes.fromhex(v)


def _pub(data: bytes) -> PublicKey:
    return PublicKey.from_bytes(data)


def _kp(data: bytes) -> KeyPair:
    return KeyPair.from_private(PrivateKey(data))


class ScriptedRng:
    """Hands out the given 32-byte private keys in order: the keys a party "generates"."""

    def __init__(self, keys: list[bytes]) -> None:
        self._keys = list(keys)
        self.pos = 0

    def __call__(self, n: int) -> bytes:
        if self.pos >= len(self._keys):
            raise Rejected("bad_request", "ratchet_private_keys exhausted: the vector supplies "
                           "one key per key pair the party generates")
        k = self._keys[self.pos]
        self.pos += 1
        if len(k) != n:
            raise Rejected("bad_request", f"scripted key of {len(k)} bytes, {n} requested")
        return k


# -- XEdDSA ---------------------------------------------------------------------------------
def op_xeddsa_sign(req: dict[str, Any]) -> dict[str, Any]:
    sig = xeddsa.sign(PrivateKey(_b(req, "private_key")), _b(req, "message"), z=_b(req, "z"))
    return {"signature": sig.hex()}


def op_xeddsa_verify(req: dict[str, Any]) -> dict[str, Any]:
    try:
        xeddsa.verify(_pub(_b(req, "public_key")), _b(req, "message"), _b(req, "signature"))
    except SignalError:
        return {"valid": False}
    return {"valid": True}


# -- X3DH and the ratchet --------------------------------------------------------------------
def op_x3dh(req: dict[str, Any]) -> dict[str, Any]:
    if req["role"] == "initiator":
        their_identity = _pub(_b(req, "their_identity_key"))
        spk = _pub(_b(req, "their_signed_pre_key"))
        xeddsa.verify(their_identity, spk.serialize(), _b(req, "their_signed_pre_key_signature"))
        opk = _ob(req, "their_one_time_pre_key")
        root, chain = alice_agree(_kp(_b(req, "identity_private")), _kp(_b(req, "base_private")),
                                  their_identity, spk, _pub(opk) if opk else None)
    elif req["role"] == "responder":
        opk = _ob(req, "one_time_pre_key_private")
        root, chain = bob_agree(_kp(_b(req, "identity_private")),
                                _kp(_b(req, "signed_pre_key_private")),
                                _kp(opk) if opk else None,
                                _pub(_b(req, "their_identity_key")), _pub(_b(req, "their_base_key")))
    else:
        raise Rejected("bad_request", f"unknown role {req['role']!r}")
    return {"root_key": root.hex(), "chain_key": chain.hex()}


def op_message_keys(req: dict[str, Any]) -> dict[str, Any]:
    ck = _b(req, "chain_key")
    mk = derive_message_keys(ck, 0)
    return {"cipher_key": mk.cipher_key.hex(), "mac_key": mk.mac_key.hex(), "iv": mk.iv.hex(),
            "next_chain_key": next_chain_key(ck).hex()}


PEER = "peer.1"


def op_ratchet_decrypt_sequence(req: dict[str, Any]) -> dict[str, Any]:
    keys = [bytes.fromhex(k) for k in req.get("ratchet_private_keys", [])]
    store = ProtocolStore(_kp(_b(req, "identity_private")), int(req["registration_id"]))
    if req["role"] == "responder":
        spk_id = int(req["signed_pre_key_id"])
        store.signed_pre_keys[spk_id] = SignedPreKeyRecord(
            spk_id, _kp(_b(req, "signed_pre_key_private")), b"")
        if req.get("one_time_pre_key_private"):
            store.pre_keys[int(req["one_time_pre_key_id"])] = _kp(_b(req, "one_time_pre_key_private"))
        rng = ScriptedRng(keys)
    elif req["role"] == "initiator":
        opk = _ob(req, "their_one_time_pre_key")
        bundle = PreKeyBundle(
            registration_id=int(req["their_registration_id"]),
            identity_key=_pub(_b(req, "their_identity_key")),
            signed_pre_key_id=int(req["their_signed_pre_key_id"]),
            signed_pre_key=_pub(_b(req, "their_signed_pre_key")),
            signed_pre_key_signature=_b(req, "their_signed_pre_key_signature"),
            pre_key_id=req.get("their_one_time_pre_key_id") if opk else None,
            pre_key=_pub(opk) if opk else None,
        )
        rng = ScriptedRng([_b(req, "base_private"), _b(req, "sending_ratchet_private"), *keys])
        session.process_prekey_bundle(store, PEER, bundle, rng)
    else:
        raise Rejected("bad_request", f"unknown role {req['role']!r}")
    results: list[dict[str, Any]] = []
    for m in req["messages"]:
        mark = rng.pos
        try:
            pt = session.decrypt(store, PEER, m["type"], bytes.fromhex(m["body"]), rng)
        except SignalError as exc:
            rng.pos = mark  # keys drawn for a rejected message go back to the queue
            results.append({"ok": False, "error": type(exc).__name__, "message": str(exc)})
        else:
            results.append({"ok": True, "plaintext": pt.hex()})
    return {"results": results}


# -- wire codecs ------------------------------------------------------------------------------
def _signal_fields(m: SignalMessage) -> dict[str, Any]:
    return {"version": m.body[0], "ratchet_key": m.ratchet_key.serialize().hex(),
            "counter": m.counter, "previous_counter": m.previous_counter,
            "ciphertext": m.ciphertext.hex(), "mac": m.mac.hex()}


def _check_mac(req: dict[str, Any], m: SignalMessage) -> None:
    if req.get("mac_key") is None:
        return
    expected = compute_mac(_b(req, "mac_key"), _pub(_b(req, "sender_identity")),
                           _pub(_b(req, "receiver_identity")), m.body)
    if expected != m.mac:
        from reference_impl.signal.errors import InvalidMacError
        raise InvalidMacError("SignalMessage MAC does not verify")


def op_wire_decode(req: dict[str, Any]) -> dict[str, Any]:
    kind, data = req["kind"], _b(req, "data")
    if kind == "signal_message":
        m = SignalMessage.parse(data)
        _check_mac(req, m)
        return {"fields": _signal_fields(m)}
    if kind == "prekey_signal_message":
        p = PreKeySignalMessage.parse(data)
        _check_mac(req, p.message)
        return {"fields": {
            "version": data[0], "registration_id": p.registration_id,
            "pre_key_id": p.pre_key_id, "signed_pre_key_id": p.signed_pre_key_id,
            "base_key": p.base_key.serialize().hex(), "identity_key": p.identity_key.serialize().hex(),
            "message": p.message.serialize().hex(),
        }}
    if kind == "sender_key_distribution_message":
        d = SenderKeyDistributionMessage.parse(data)
        return {"fields": {"version": data[0], "id": d.key_id, "iteration": d.iteration,
                           "chain_key": d.chain_key.hex(),
                           "signing_key": d.signing_key.serialize().hex()}}
    if kind == "sender_key_message":
        s = SenderKeyMessage.parse(data)
        return {"fields": {"version": data[0], "id": s.key_id, "iteration": s.iteration,
                           "ciphertext": s.ciphertext.hex(), "signature": s.signature.hex()}}
    raise Rejected("bad_request", f"unknown kind {kind!r}")


# -- sender keys ------------------------------------------------------------------------------
def op_sender_key_decrypt_sequence(req: dict[str, Any]) -> dict[str, Any]:
    store = ProtocolStore(KeyPair.from_private(PrivateKey(bytes(32))), 1)
    process_distribution(store, "group", "sender", _b(req, "distribution"))
    results: list[dict[str, Any]] = []
    for body in req["messages"]:
        try:
            pt = group_decrypt(store, "group", "sender", bytes.fromhex(body))
        except SignalError as exc:
            results.append({"ok": False, "error": type(exc).__name__, "message": str(exc)})
        else:
            results.append({"ok": True, "plaintext": pt.hex()})
    return {"results": results}


# -- media and padding --------------------------------------------------------------------------
def op_media_derive_keys(req: dict[str, Any]) -> dict[str, Any]:
    k = media.derive_media_keys(_b(req, "media_key"), req["media_type"])
    return {"iv": k.iv.hex(), "cipher_key": k.cipher_key.hex(), "mac_key": k.mac_key.hex(),
            "ref_key": k.ref_key.hex()}


def op_media_encrypt(req: dict[str, Any]) -> dict[str, Any]:
    e = media.encrypt_media(_b(req, "plaintext"), req["media_type"], _b(req, "media_key"))
    return {"blob": e.blob.hex(), "file_sha256": e.file_sha256.hex(),
            "file_enc_sha256": e.file_enc_sha256.hex(), "file_length": e.file_length}


def op_media_decrypt(req: dict[str, Any]) -> dict[str, Any]:
    pt = media.decrypt_media(_b(req, "blob"), _b(req, "media_key"), req["media_type"],
                             _b(req, "file_sha256"), _b(req, "file_enc_sha256"))
    return {"plaintext_sha256": sha256(pt).hex(), "plaintext_length": len(pt),
            **({"plaintext": pt.hex()} if req.get("return_plaintext") else {})}


def op_padding_unpad(req: dict[str, Any]) -> dict[str, Any]:
    return {"plaintext": padding.unpad(_b(req, "data")).hex()}


def op_padding_pad(req: dict[str, Any]) -> dict[str, Any]:
    return {"data": padding.pad_with(_b(req, "plaintext"), int(req["n"])).hex()}


# -- Noise -------------------------------------------------------------------------------------
def op_noise_handshake(req: dict[str, Any]) -> dict[str, Any]:
    import warnings

    from noise.connection import Keypair, NoiseConnection

    # noiseprotocol warns when an ephemeral key is preset; fixed ephemerals are the point here.
    warnings.filterwarnings("ignore", message="One of ephemeral keypairs is already set")
    role = req["role"]
    conn = NoiseConnection.from_name(req["protocol_name"].encode())
    (conn.set_as_initiator if role == "initiator" else conn.set_as_responder)()
    conn.set_prologue(_b(req, "prologue"))
    conn.set_keypair_from_private_bytes(Keypair.STATIC, _b(req, "static_private"))
    conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, _b(req, "ephemeral_private"))
    conn.start_handshake()
    me = 0 if role == "initiator" else 1
    outputs: list[str] = []
    for i, m in enumerate(req["messages"]):
        writing = i % 2 == me
        try:
            if not conn.handshake_finished:
                if writing:
                    outputs.append(bytes(conn.write_message(_b(m, "payload"))).hex())
                else:
                    outputs.append(bytes(conn.read_message(_b(m, "ciphertext"))).hex())
            elif writing:
                outputs.append(bytes(conn.encrypt(_b(m, "payload"))).hex())
            else:
                outputs.append(bytes(conn.decrypt(_b(m, "ciphertext"))).hex())
        except Exception as exc:  # noiseprotocol raises backend-specific errors
            raise Rejected("NoiseError", f"message {i}: {type(exc).__name__}: {exc}", index=i) from exc
    out: dict[str, Any] = {"outputs": outputs}
    if conn.handshake_finished:
        out["handshake_hash"] = bytes(conn.get_handshake_hash()).hex()
        rs = conn.noise_protocol.keypairs.get("rs")
        if rs is not None:
            out["remote_static"] = bytes(rs.public_bytes).hex()
    return out


# -- JWT ---------------------------------------------------------------------------------------
def op_jwt_verify(req: dict[str, Any]) -> dict[str, Any]:
    import jwt

    token: str = req["token"]
    if len(token.encode()) > int(req.get("max_length", 4096)):
        raise Rejected("TokenTooLarge", f"token is {len(token.encode())} bytes")
    try:
        header = jwt.get_unverified_header(token)
        jwks = jwt.PyJWKSet.from_dict(req["jwks"])
        alg = header.get("alg")
        allowed = {"RS256", "ES256", "EdDSA"}
        if alg not in allowed:
            raise Rejected("DisallowedAlgorithm", f"alg {alg!r} not in {sorted(allowed)}")
        key = next((k for k in jwks.keys if k.key_id == header.get("kid")), None)
        if key is None:
            raise Rejected("UnknownKid", f"no JWKS key with kid {header.get('kid')!r}")
        if key.algorithm_name != alg:
            raise Rejected("AlgorithmMismatch",
                           f"header alg {alg} but the JWK is for {key.algorithm_name}")
        claims = jwt.decode(
            token, key=key, algorithms=[alg], audience=req["audience"], issuer=req["issuer"],
            leeway=0, options={"require": ["exp", "iat", "iss", "aud", "sub"],
                               "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise Rejected(type(exc).__name__, str(exc)) from exc
    # PyJWT compares exp/nbf to the wall clock; the vectors carry their own "now".
    now = int(req["now"])
    if claims["exp"] <= now:
        raise Rejected("ExpiredSignatureError", f"exp {claims['exp']} <= now {now}")
    if "nbf" in claims and claims["nbf"] > now:
        raise Rejected("ImmatureSignatureError", f"nbf {claims['nbf']} > now {now}")
    if not isinstance(claims["iat"], int) or not isinstance(claims["exp"], int) \
            or claims["iat"] >= claims["exp"]:
        raise Rejected("InvalidClaims", "iat and exp must be integers with iat < exp (ID-007)")
    if claims["iat"] > now + 60:
        raise Rejected("ImmatureSignatureError", f"iat {claims['iat']} > now + 60 (ID-007)")
    return {"header": header, "claims": claims}


def op_stanza_decode(req: dict[str, Any]) -> dict[str, Any]:
    """A Stanza with the profile's rules for receipts and chatstates (stanza_rules)."""
    try:
        st = stanzas_pb2.Stanza.FromString(_b(req, "data"))
    except DecodeError as exc:
        raise Rejected("DecodeError", str(exc)) from exc
    body = st.WhichOneof("body")
    broken = (stanza_rules.receipt_problem(st.receipt) if body == "receipt"
              else stanza_rules.chatstate_problem(st.chatstate) if body == "chatstate" else None)
    if broken is not None:
        raise Rejected("Malformed", f"{broken.requirement}: {broken.detail}")
    return {"stanza": MessageToDict(st, preserving_proto_field_name=True),
            "encoded": st.SerializeToString(deterministic=True).hex()}


OPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "xeddsa_sign": op_xeddsa_sign,
    "xeddsa_verify": op_xeddsa_verify,
    "x3dh": op_x3dh,
    "message_keys": op_message_keys,
    "ratchet_decrypt_sequence": op_ratchet_decrypt_sequence,
    "wire_decode": op_wire_decode,
    "sender_key_decrypt_sequence": op_sender_key_decrypt_sequence,
    "media_derive_keys": op_media_derive_keys,
    "media_encrypt": op_media_encrypt,
    "media_decrypt": op_media_decrypt,
    "padding_unpad": op_padding_unpad,
    "padding_pad": op_padding_pad,
    "noise_handshake": op_noise_handshake,
    "jwt_verify": op_jwt_verify,
    "stanza_decode": op_stanza_decode,
    **WA_OPS,  # the `wa` binding's areas (reference_wa.py)
}


def handle(req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    if op == "ops":
        return {"ok": True, "ops": sorted(OPS), "implementation": IMPLEMENTATION,
                "capabilities": {"xeddsa_sign_uses_z": True}, "known_deviations": {}}
    fn = OPS.get(op)  # type: ignore[arg-type]
    if fn is None:
        return {"ok": False, "error": "unsupported", "message": f"op {op!r} not supported"}
    try:
        return {"ok": True, **fn(req)}
    except (Rejected, WARejected) as exc:
        return {"ok": False, "error": exc.error, "message": str(exc), **exc.extra}
    except SignalError as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    except (KeyError, TypeError, ValueError) as exc:
        return {"ok": False, "error": "bad_request", "message": f"{type(exc).__name__}: {exc}"}


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            resp = handle(req)
        except json.JSONDecodeError as exc:
            resp = {"ok": False, "error": "bad_request", "message": f"not JSON: {exc}"}
        if isinstance(req, dict) and "id" in req:
            resp["id"] = req["id"]
        sys.stdout.write(json.dumps(resp, sort_keys=True) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
