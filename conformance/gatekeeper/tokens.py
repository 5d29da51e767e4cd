"""JWTs both ways: G's own signing keys (JWKS, push tokens) and verification of provider
user tokens against the provider's JWK Set (ID-005 to ID-007, ENL-010, CHN-004).

Signatures are checked with PyJWT; the claims are checked here against the injected clock,
so expiry is testable without waiting and every rejection names its requirement.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from conformance.redact import register_secret

from .settings import Clock

__all__ = [
    "ALLOWED_ALGS",
    "DEFAULT_ALG",
    "GatekeeperKeys",
    "SigningKey",
    "TokenError",
    "check_user_token_claims",
    "unverified_header",
    "verify_signature",
]

#: ID-003 / ID-005: the algorithms a provider may use; never ``none`` or HMAC.
ALLOWED_ALGS = frozenset({"RS256", "ES256", "EdDSA"})


class TokenError(Exception):
    """A token was refused; ``requirement`` names the rule, ``detail`` says what was seen."""

    def __init__(self, detail: str, requirement: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.requirement = requirement


#: The algorithm G signs with unless told otherwise: the framework's only sample push token is
#: RS256 (S2 §3.2.2, header ``{"alg":"RS256","kid":…,"typ":"JWT"}``); CHN-020.
DEFAULT_ALG = "RS256"
#: ID-003's RSA floor; G's own RSA keys use it.
RSA_BITS = 2048


@dataclass
class SigningKey:
    """One of G's keys: RS256 (RSA 2048) by default, ES256 or EdDSA on request (the declared
    alternatives of CHN-020)."""

    alg: str = DEFAULT_ALG
    kid: str = field(default_factory=lambda: "g-" + secrets.token_urlsafe(6))
    _key: Any = None

    def __post_init__(self) -> None:
        if self._key is None:
            if self.alg == "RS256":
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
            elif self.alg == "EdDSA":
                self._key = ed25519.Ed25519PrivateKey.generate()
            elif self.alg == "ES256":
                self._key = ec.generate_private_key(ec.SECP256R1())
            else:
                raise ValueError(f"unsupported gatekeeper key algorithm {self.alg!r}")
        for scalar in _private_scalars(self._key):
            register_secret(scalar, f"gatekeeper {self.alg} signing key")

    def public_jwk(self) -> dict[str, Any]:
        algo = jwt.get_algorithm_by_name(self.alg)
        jwk = json.loads(algo.to_jwk(self._key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg=self.alg)
        return jwk

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        h = {"kid": self.kid, "typ": "JWT"}
        h.update(headers or {})
        return jwt.encode(claims, self._key, algorithm=self.alg, headers=h)


def _private_scalars(key: Any) -> list[bytes]:
    """The secret numbers of a private key as raw bytes, for redaction by value."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return [key.private_bytes_raw()]
    numbers = key.private_numbers()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return [numbers.private_value.to_bytes((key.curve.key_size + 7) // 8, "big")]
    if isinstance(key, rsa.RSAPrivateKey):
        return [n.to_bytes((n.bit_length() + 7) // 8, "big") for n in (numbers.d, numbers.p, numbers.q)]
    return []


class GatekeeperKeys:
    """G's JWK Set. ``rotate`` publishes a new key and signs with it from then on (the old key
    stays published), which lets the suite check that providers refetch on an unknown kid.
    ``publish`` adds a key without signing with it, and ``retire`` withdraws one: a check can
    sign its own tokens with a fresh published key while G's other tokens stay unchanged."""

    def __init__(self, alg: str = DEFAULT_ALG) -> None:
        self.keys = [SigningKey(alg)]
        self._current = self.keys[0]

    @property
    def current(self) -> SigningKey:
        """The key G signs its push and media tokens with."""
        return self._current

    def rotate(self, alg: str = DEFAULT_ALG, *, retire_old: bool = False) -> SigningKey:
        key = SigningKey(alg)
        self.keys = [key] if retire_old else self.keys + [key]
        self._current = key
        return key

    def publish(self, alg: str = DEFAULT_ALG) -> SigningKey:
        """A new key in the JWK Set; G keeps signing with :attr:`current`."""
        key = SigningKey(alg)
        self.keys = self.keys + [key]
        return key

    def retire(self, kid: str) -> None:
        """Withdraw a key from the JWK Set; retiring the current key makes the newest remaining
        one current. The last key cannot be retired (G must always be able to sign)."""
        remaining = [k for k in self.keys if k.kid != kid]
        if len(remaining) == len(self.keys):
            raise KeyError(f"no published key {kid!r}")
        if not remaining:
            raise ValueError("cannot retire G's only signing key")
        self.keys = remaining
        if self._current.kid == kid:
            self._current = remaining[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    def push_token(self, *, issuer: str, audience: str, now: float, lifetime_s: int,
                   subject: str | None = None, **overrides: Any) -> str:
        """The bearer token of a push (§5.2) or media fetch, shaped like the framework's sample
        (S2 §3.2.2): header ``alg``/``kid``/``typ``, claims ``iss`` (G's issuer), ``aud`` (the
        provider's audience), ``iat``, ``exp``; ``sub`` only when a caller asks for one."""
        claims: dict[str, Any] = {"iss": issuer, "aud": audience, "sub": subject,
                                  "iat": int(now), "exp": int(now) + lifetime_s}
        claims.update(overrides)
        return self.current.sign({k: v for k, v in claims.items() if v is not None})


def unverified_header(token: str, max_len: int) -> dict[str, Any]:
    """The protected header, after the size and shape checks (ID-006, ID-005)."""
    if not isinstance(token, str) or not token:
        raise TokenError("token is missing", "ENL-010")
    if len(token.encode()) > max_len:
        raise TokenError(f"token is {len(token.encode())} bytes, above {max_len}", "ID-006")
    if token.count(".") != 2:
        raise TokenError("token is not a JWS in compact serialization", "ID-005")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError(f"token header does not decode: {exc}", "ID-005") from None
    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise TokenError(f"token alg {alg!r} is not one of RS256, ES256, EdDSA", "ID-005")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise TokenError("token header has no kid", "ID-005")
    return header


#: JWK members that carry private or symmetric key material (RFC 7518 §6).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def verify_signature(token: str, jwk: dict[str, Any], alg: str) -> dict[str, Any]:
    """Check the signature only; claims are :func:`check_user_token_claims`' job."""
    if jwk.get("alg") != alg:
        raise TokenError(f"token alg {alg!r} differs from its key's alg {jwk.get('alg')!r}",
                         "ID-005")
    # Only the public members: private ones a provider leaks are ID-004's finding, and an RSA
    # JWK with a lone ``d`` would not even load.
    public = {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS}
    try:
        key = jwt.PyJWK(public, alg).key
        return jwt.decode(token, key, algorithms=[alg], options={
            "verify_signature": True, "verify_exp": False, "verify_nbf": False,
            "verify_iat": False, "verify_aud": False, "verify_iss": False, "require": []})
    except jwt.InvalidSignatureError:
        raise TokenError("token signature does not verify", "ID-005") from None
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise TokenError(f"token or key unusable: {exc}", "ID-005") from None


def _numeric_date(claims: dict[str, Any], name: str) -> int:
    v = claims.get(name)
    if not isinstance(v, int) or isinstance(v, bool):
        raise TokenError(f"claim {name!r} is missing or not an integer NumericDate", "ID-007")
    return v


def check_user_token_claims(claims: dict[str, Any], *, issuer: str, audience: str,
                            clock: Clock, iat_skew_s: float) -> str:
    """ID-007: iss, sub, aud, iat < exp, exp in the future, iat at most 60 s ahead.
    Returns ``sub``, the user-visible identifier."""
    if claims.get("iss") != issuer:
        raise TokenError(f"iss {claims.get('iss')!r} is not the provider's {issuer!r}", "ID-007")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise TokenError("claim 'sub' is missing or empty", "ID-007")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if audience not in auds:
        raise TokenError(f"aud {aud!r} does not name the gatekeeper's {audience!r}", "ID-007")
    iat, exp = _numeric_date(claims, "iat"), _numeric_date(claims, "exp")
    if iat >= exp:
        raise TokenError("iat is not before exp", "ID-007")
    now = clock()
    if exp <= now:
        raise TokenError(f"token expired {int(now - exp)} s ago", "ID-007")
    if iat > now + iat_skew_s:
        raise TokenError(f"iat is {int(iat - now)} s in the future", "ID-007")
    return sub
