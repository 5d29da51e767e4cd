"""Identity (spec §4.1): the provider's JWK Set and the user JWTs it issues (ID-001..ID-008).

The JWK Set is checked black-box at ``--target``. Tokens are the ones the provider's client
really presents: the kit takes them from enlistment requests the gatekeeper simulator received.
"""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from conformance.redact import quote_untrusted
from conformance.verdicts import fail

from .kit import Kit

requirement = pytest.mark.requirement
JWKS_PATH = "/.well-known/oauth/openid/jwks"
PRIVATE_PARAMS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def fetch_jwks(kit: Kit, evidence, *, http2: bool | None = None,
               check_type: bool = False) -> dict[str, Any]:
    """The JWK Set document. ``check_type`` (ID-001's own clause) also requires the JSON
    media type; the checks of the keys themselves read the keys whatever it is."""
    res = kit.http.request("GET", kit.url(JWKS_PATH), evidence=evidence, http2=http2)
    if not res.ok:
        fail("200 with the JWK Set", res.describe())
    if res.status != 200:
        fail("HTTP 200", res.describe())
    ctype = res.headers.get("content-type", "").split(";")[0].strip().lower()
    if check_type and ctype not in ("application/json", "application/jwk-set+json"):
        fail("Content-Type application/json or application/jwk-set+json", f"{ctype!r}")
    try:
        doc = json.loads(res.body)
    except ValueError as exc:
        fail("a JSON object", f"unparseable body ({exc}): {quote_untrusted(res.body)}")
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]:
        fail("a JSON object whose `keys` is a non-empty array", f"{str(doc)[:200]}")
    return doc


def _b64(s: Any) -> bytes:
    if not isinstance(s, str):
        raise ValueError("not a string")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@requirement("ID-001")
def test_jwks_is_served_without_credentials(kit: Kit, evidence):
    doc = fetch_jwks(kit, evidence, check_type=True)
    for key in doc["keys"]:
        if not isinstance(key, dict):
            fail("every key a JSON object", repr(key)[:100])


@requirement("ID-002")
def test_jwks_kids_are_present_and_distinct(kit: Kit, evidence):
    keys = fetch_jwks(kit, evidence)["keys"]
    kids = [k.get("kid") for k in keys if isinstance(k, dict)]
    bad = [k for k in kids if not isinstance(k, str) or not k]
    if bad:
        fail("every key has a non-empty string kid", f"kids {kids!r}")
    if len(set(kids)) != len(kids):
        fail("pairwise distinct kids", f"kids {kids!r}")


def _check_key(key: dict[str, Any]) -> str | None:
    """Why ``key`` is not an acceptable public signing key, or None."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if key.get("use") != "sig":
        return f"use {key.get('use')!r}, expected 'sig'"
    alg, kty = key.get("alg"), key.get("kty")
    try:
        if alg == "RS256" and kty == "RSA":
            n, e = int.from_bytes(_b64(key["n"]), "big"), int.from_bytes(_b64(key["e"]), "big")
            if n.bit_length() < 2048:
                return f"RSA modulus of {n.bit_length()} bits, expected at least 2048"
            rsa.RSAPublicNumbers(e, n).public_key()
        elif alg == "ES256" and kty == "EC" and key.get("crv") == "P-256":
            x, y = _b64(key["x"]), _b64(key["y"])
            if len(x) != 32 or len(y) != 32:
                return "EC coordinates must be 32 bytes"
            ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                          ec.SECP256R1()).public_key()
        elif alg == "EdDSA" and kty == "OKP" and key.get("crv") == "Ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(_b64(key["x"]))
        else:
            return f"alg {alg!r} with kty {kty!r} crv {key.get('crv')!r} is not an allowed combination"
    except (KeyError, ValueError, TypeError) as exc:
        return f"not a valid {alg} public key: {exc}"
    return None


@requirement("ID-003")
def test_jwks_keys_are_signing_keys_of_allowed_algorithms(kit: Kit, evidence):
    problems = [f"kid {k.get('kid')!r}: {why}" for k in fetch_jwks(kit, evidence)["keys"]
                if (why := _check_key(k))]
    if problems:
        fail("use=sig and RS256 (>= 2048 bits) / ES256 (P-256) / EdDSA (Ed25519) public keys",
             "; ".join(problems))


@requirement("ID-004")
def test_jwks_holds_no_private_or_symmetric_parameters(kit: Kit, evidence):
    leaks = [f"kid {k.get('kid')!r} has {sorted(set(k) & set(PRIVATE_PARAMS))}"
             for k in fetch_jwks(kit, evidence)["keys"] if set(k) & set(PRIVATE_PARAMS)]
    if leaks:
        fail("no d, p, q, dp, dq, qi, oth or k parameters", "; ".join(leaks))
