"""JWT/JWKS as the interop profile uses them: partner-issued user tokens (<= 4 KB; iss, sub,
aud, iat, exp; RS256 / ES256 / EdDSA) verified against a JWK Set at an explicit "now"."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from .._check import Outcome, unsupported_in, verdict
from .._common import Note, VectorFile

FILE = "jwt_test.json"
TITLE = "JwtJwks"
NOW = 1767225600  # 2026-01-01T00:00:00Z; every test carries it explicitly
ISSUER = "https://provider.example"
AUDIENCE = "https://gatekeeper.example/interop"
MAX_LENGTH = 4096
RSA_PEM = Path(__file__).resolve().parent.parent / "testdata" / "rsa2048-jwt-test-key.pem"

NOTES = {
    "Ktv": Note("BASIC", "A well-formed token signed by a key of the JWK Set, valid at 'now'.",
                "A failure means enlistment and chat-channel logins with this provider fail."),
    "AudienceArray": Note("EDGE_CASE", "aud is an array that contains the expected audience (RFC 7519 §4.1.3).",
                          "Rejecting it breaks issuers that name several audiences."),
    "MaxSize": Note("EDGE_CASE", "The token is exactly 4096 bytes, the profile's limit.",
                    "Rejecting it means the limit is applied off by one."),
    "Expired": Note("BASIC", "exp <= now (no leeway).", "Accepting it lets stolen old tokens log in."),
    "NotYetValid": Note("BASIC", "nbf > now, or iat more than 60 seconds after now (ID-007).",
                        "Accepting it ignores the issuer's validity window."),
    "ClockSkew": Note("EDGE_CASE", "iat up to 60 seconds in the future, which ID-007 allows.",
                      "Rejecting it breaks providers whose clock runs slightly ahead."),
    "WrongKid": Note("MODIFIED_PARAMETER", "The header's kid names no key of the JWK Set, or is missing.",
                     "Accepting it means the signature is checked with some other key or not at all."),
    "AlgNone": Note("AUTH_BYPASS", "alg 'none' (unsecured JWS), with or without a signature segment.",
                    "Accepting it is a complete authentication bypass."),
    "AlgConfusion": Note("AUTH_BYPASS", "HS256 keyed with the RSA public key, or an alg that differs "
                         "from the JWK's alg.", "Accepting it lets anyone who knows the public key forge tokens."),
    "WrongAudience": Note("MODIFIED_PARAMETER", "aud is not the gatekeeper's audience.",
                          "Accepting it lets a token minted for another service log in here."),
    "WrongIssuer": Note("MODIFIED_PARAMETER", "iss is not the provider's issuer.",
                        "Accepting it lets another issuer's tokens log in."),
    "Oversized": Note("DOS", "The token is larger than 4096 bytes (validly signed).",
                      "The profile caps tokens at 4 KB; accepting more breaks the enlistment form limit."),
    "ModifiedToken": Note("AUTH_BYPASS", "Payload or signature modified after signing.",
                          "Accepting it is an authentication bypass."),
    "MissingClaim": Note("MISSING_STEP", "A required claim (exp, sub, aud) is absent, or iat is not before "
                         "exp (ID-007).",
                         "Accepting a token without exp makes it valid forever."),
    "Malformed": Note("MODIFIED_PARAMETER", "Not three base64url segments, or a header that is not JSON.",
                      "A crash here is a denial of service."),
}
TEST_PROPERTIES: dict[str, Any] = {
    "token": {"type": "string"},
    "claims": {"type": "object"},
    "tokenLength": {"type": "integer"},
}
GROUP_PROPERTIES: dict[str, Any] = {
    "jwks": {"type": "object"}, "now": {"type": "integer"}, "audience": {"type": "string"},
    "issuer": {"type": "string"}, "maxLength": {"type": "integer"},
}
REQUIRED = {"JwtVerify": ["token"]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _int_b64(n: int, length: int | None = None) -> str:
    return _b64(n.to_bytes(length or (n.bit_length() + 7) // 8, "big"))


class _Keys:
    def __init__(self) -> None:
        self.ed = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"interop-vectors/jwt/ed25519").digest())
        scalar = int.from_bytes(hashlib.sha256(b"interop-vectors/jwt/p256").digest(), "big") % (2**255)
        self.ec = ec.derive_private_key(scalar, ec.SECP256R1())
        rsa_key = serialization.load_pem_private_key(RSA_PEM.read_bytes(), None)
        assert isinstance(rsa_key, RSAPrivateKey)
        self.rsa = rsa_key

    def jwks(self) -> dict[str, Any]:
        ed_pub = self.ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ecn = self.ec.public_key().public_numbers()
        rn = self.rsa.public_key().public_numbers()
        return {"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": _b64(ed_pub), "kid": "ed-1", "use": "sig", "alg": "EdDSA"},
            {"kty": "EC", "crv": "P-256", "x": _int_b64(ecn.x, 32), "y": _int_b64(ecn.y, 32), "kid": "ec-1",
             "use": "sig", "alg": "ES256"},
            {"kty": "RSA", "n": _int_b64(rn.n), "e": _int_b64(rn.e), "kid": "rsa-1", "use": "sig", "alg": "RS256"},
        ]}

    def sign(self, alg: str, data: bytes) -> bytes:
        if alg == "EdDSA":
            return self.ed.sign(data)
        if alg == "RS256":
            return self.rsa.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if alg == "ES256":
            from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
            der = self.ec.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
            r, s = decode_dss_signature(der)
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        raise ValueError(alg)

    def token(self, claims: dict[str, Any], alg: str = "EdDSA", kid: str | None = "ed-1",
              header_extra: dict[str, Any] | None = None) -> str:
        header: dict[str, Any] = {"alg": alg, "typ": "JWT", **(header_extra or {})}
        if kid is not None:
            header["kid"] = kid
        signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}".encode()
        return signing_input.decode() + "." + _b64(self.sign(alg, signing_input))


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": ISSUER, "sub": "+15550100001", "aud": AUDIENCE, "iat": NOW - 60,
                            "exp": NOW + 3600}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def chat_token() -> str:
    """The valid EdDSA token the Noise vectors carry in the final handshake payload."""
    return _Keys().token(claims())


def build() -> VectorFile:
    vf = VectorFile(
        TITLE, "jwt_test_schema.json",
        ["User tokens of the interop profile (ID-003, ID-005 to ID-007): compact JWS, alg RS256, ES256 or "
         "EdDSA equal to the JWK's alg, kid naming a key of the group's JWK Set, claims iss, sub, aud (string "
         "or array), iat < exp, iat at most 60 s after now (nbf honoured if present), at most 4096 bytes. "
         "Verification uses the group's 'now' (seconds since the epoch), never the wall clock, and no "
         "leeway: exp <= now is expired, nbf > now is not yet valid."],
        dict(NOTES),
    )
    k = _Keys()
    t = vf.group("JwtVerify", op="jwt_verify", jwks=k.jwks(), now=NOW, audience=AUDIENCE, issuer=ISSUER,
                 maxLength=MAX_LENGTH)

    def add(comment: str, result: str, flags: list[str], token: str, cl: dict[str, Any] | None = None) -> None:
        extra: dict[str, Any] = {"tokenLength": len(token)}
        if cl is not None:
            extra["claims"] = cl
        vf.add(t, comment, result, flags, token=token, **extra)

    for alg, kid in (("EdDSA", "ed-1"), ("RS256", "rsa-1"), ("ES256", "ec-1")):
        c = claims()
        add(f"{alg}, valid", "valid", ["Ktv"], k.token(c, alg, kid), c)
    c = claims(nbf=NOW)
    add("EdDSA, nbf = now", "valid", ["Ktv"], k.token(c), c)
    c = claims(exp=NOW + 1)
    add("EdDSA, exp = now + 1", "valid", ["Ktv"], k.token(c), c)
    c = claims(aud=["https://other.example", AUDIENCE])
    add("aud array containing the audience", "valid", ["AudienceArray"], k.token(c), c)
    pad = 0
    while True:
        c = claims(pad="x" * pad)
        tok = k.token(c)
        if len(tok) >= MAX_LENGTH:
            break
        pad += 1
    if len(tok) == MAX_LENGTH:
        add("exactly 4096 bytes", "valid", ["MaxSize"], tok, c)
    add("4097+ bytes", "invalid", ["Oversized"], k.token(claims(pad="x" * (pad + 1))))
    add("about 6 KB", "invalid", ["Oversized"], k.token(claims(pad="x" * 4500), "RS256", "rsa-1"))
    add("exp = now", "invalid", ["Expired"], k.token(claims(exp=NOW)))
    add("exp = now - 3600", "invalid", ["Expired"], k.token(claims(iat=NOW - 7200, exp=NOW - 3600)))
    add("RS256, expired", "invalid", ["Expired"], k.token(claims(exp=NOW - 1), "RS256", "rsa-1"))
    c = claims(iat=NOW + 60)
    add("iat = now + 60 (ID-007 tolerates up to 60 s of clock skew)", "valid", ["ClockSkew"], k.token(c), c)
    add("iat = now + 61", "invalid", ["NotYetValid"], k.token(claims(iat=NOW + 61)))
    add("iat = exp (ID-007: iat before exp)", "invalid", ["MissingClaim"], k.token(claims(iat=NOW + 3600)))
    add("nbf = now + 1", "invalid", ["NotYetValid"], k.token(claims(nbf=NOW + 1)))
    add("ES256, nbf = now + 3600", "invalid", ["NotYetValid"], k.token(claims(nbf=NOW + 3600), "ES256", "ec-1"))
    add("kid not in the JWK Set", "invalid", ["WrongKid"], k.token(claims(), kid="ed-2"))
    add("kid of another key type (ed key, kid rsa-1)", "invalid", ["WrongKid", "AlgConfusion"],
        k.token(claims(), "EdDSA", "rsa-1"))
    add("kid missing", "invalid", ["WrongKid"], k.token(claims(), kid=None))
    hdr = _b64(_json({"alg": "none", "kid": "ed-1", "typ": "JWT"}))
    body = _b64(_json(claims()))
    add("alg none, empty signature", "invalid", ["AlgNone"], f"{hdr}.{body}.")
    good = k.token(claims())
    add("alg none, EdDSA signature kept", "invalid", ["AlgNone"], f"{hdr}.{body}.{good.split('.')[2]}")
    add("alg 'None' (capitalised)", "invalid", ["AlgNone"],
        f"{_b64(_json({'alg': 'None', 'kid': 'ed-1', 'typ': 'JWT'}))}.{body}.")
    pem = k.rsa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    hs_in = f"{_b64(_json({'alg': 'HS256', 'kid': 'rsa-1', 'typ': 'JWT'}))}.{body}".encode()
    add("HS256 keyed with the RSA public key (PEM)", "invalid", ["AlgConfusion"],
        hs_in.decode() + "." + _b64(hmac.new(pem, hs_in, hashlib.sha256).digest()))
    rs_in = f"{_b64(_json({'alg': 'RS256', 'kid': 'ed-1', 'typ': 'JWT'}))}.{body}".encode()
    add("RS256 header naming the Ed25519 kid", "invalid", ["AlgConfusion"],
        rs_in.decode() + "." + _b64(k.sign("RS256", rs_in)))
    add("wrong aud", "invalid", ["WrongAudience"], k.token(claims(aud="https://other.example")))
    add("aud array without the audience", "invalid", ["WrongAudience"],
        k.token(claims(aud=["https://other.example"])))
    add("aud missing", "invalid", ["WrongAudience", "MissingClaim"], k.token(claims(aud=None)))
    add("wrong iss", "invalid", ["WrongIssuer"], k.token(claims(iss="https://evil.example")))
    add("exp missing", "invalid", ["MissingClaim"], k.token(claims(exp=None)))
    add("sub missing", "invalid", ["MissingClaim"], k.token(claims(sub=None)))
    h64, p64, s64 = good.split(".")
    other_body = _b64(_json(claims(sub="+15550100002")))
    add("payload swapped after signing (sub changed)", "invalid", ["ModifiedToken"], f"{h64}.{other_body}.{s64}")
    sig = bytearray(base64.urlsafe_b64decode(s64 + "=="))
    sig[0] ^= 1
    add("signature bit flipped", "invalid", ["ModifiedToken"], f"{h64}.{p64}.{_b64(bytes(sig))}")
    rs = k.token(claims(), "RS256", "rsa-1").split(".")
    add("RS256 signature truncated", "invalid", ["ModifiedToken"], f"{rs[0]}.{rs[1]}.{rs[2][:-4]}")
    add("two segments", "invalid", ["Malformed"], f"{h64}.{p64}")
    add("header is not JSON", "invalid", ["Malformed"], f"{_b64(b'not json')}.{p64}.{s64}")
    add("empty string", "invalid", ["Malformed"], "")
    return vf


def check(group: dict[str, Any], test: dict[str, Any], adapter: Any) -> Outcome:
    resp = adapter.call("jwt_verify", token=test["token"], jwks=group["jwks"], now=group["now"],
                        audience=group["audience"], issuer=group["issuer"], max_length=group["maxLength"])
    unsupported_in(resp)
    mismatch = None
    if resp["ok"] and "claims" in test and resp.get("claims") != test["claims"]:
        mismatch = f"claims {resp.get('claims')} != {test['claims']}"
    return verdict(test["result"], resp["ok"], mismatch, resp)
