"""The provider's JWT identity: signing keys (persisted, rotated), its JWK Set, user tokens,
and verification of the gatekeeper's push tokens against G's JWK Set.

New keys are RS256 (RSA 2048, the framework's sample JWK Set, S2 §1.3.1); ES256 (P-256) keys
persisted by earlier versions load and stay published. Keys are generated on first start and
kept in ``keys.json`` in the data directory; :meth:`KeyStore.rotate` makes a new key current and
keeps publishing the previous one until every token it signed has expired (ID-005).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .faults import Faults

__all__ = ["SigningKey", "KeyStore", "TokenIssuer", "PushVerifier", "PushAuthError", "b64u",
           "PUSH_TOKEN_ALGS"]

#: G's push-token algorithms this provider accepts, as its declaration would list them (CHN-020).
PUSH_TOKEN_ALGS = ("RS256", "ES256", "EdDSA")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _uint(n: int) -> str:
    return b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    created: int
    #: When it stopped being current (0 while current).
    retired: int = 0

    @property
    def alg(self) -> str:
        return "RS256" if isinstance(self.private, rsa.RSAPrivateKey) else "ES256"

    @classmethod
    def generate(cls, now: int) -> "SigningKey":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(_thumbprint(_public_members(key)), key, now)

    def public_jwk(self) -> dict[str, str]:
        return {**_public_members(self.private), "kid": self.kid, "use": "sig", "alg": self.alg}

    def private_scalar(self) -> str:
        """The secret exponent or scalar, base64url (for the jwks_private_params fault only)."""
        nums = self.private.private_numbers()
        return _uint(nums.d if isinstance(nums, rsa.RSAPrivateNumbers) else nums.private_value)

    def to_dict(self) -> dict:
        pem = self.private.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        return {"kid": self.kid, "pem": pem.decode("ascii"), "created": self.created,
                "retired": self.retired}

    @classmethod
    def from_dict(cls, d: dict) -> "SigningKey":
        key = serialization.load_pem_private_key(d["pem"].encode("ascii"), None)
        assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
        return cls(d["kid"], key, int(d["created"]), int(d.get("retired", 0)))


def _public_members(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """The RFC 7638 required members of the public JWK."""
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.public_key().public_numbers()
        return {"e": _uint(n.e), "kty": "RSA", "n": _uint(n.n)}
    n = key.public_key().public_numbers()
    return {"crv": "P-256", "kty": "EC", "x": b64u(n.x.to_bytes(32, "big")),
            "y": b64u(n.y.to_bytes(32, "big"))}


def _thumbprint(members: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint: unique per key, stable across restarts."""
    canon = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return b64u(hashlib.sha256(canon.encode()).digest())[:22]


class KeyStore:
    """Current and still-published previous signing keys, persisted as JSON."""

    def __init__(self, path: Path, token_lifetime: int, faults: Faults,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.token_lifetime = token_lifetime
        self.faults = faults
        self.clock = clock
        self.keys: list[SigningKey] = []
        if path.exists():
            self.keys = [SigningKey.from_dict(d) for d in json.loads(path.read_text("utf-8"))]
        if not self.keys:
            self.keys = [SigningKey.generate(int(clock()))]
            self._save()
        # A staged key (fault token_unpublished_kid) and a next key (fault jwks_duplicate_kid)
        # exist only in memory.
        self._staged: SigningKey | None = None

    def _save(self) -> None:
        _atomic_write(self.path, json.dumps([k.to_dict() for k in self.keys], indent=1))

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def rotate(self) -> SigningKey:
        now = int(self.clock())
        old = self.current
        self.keys[-1] = SigningKey(old.kid, old.private, old.created, now)
        self.keys.append(SigningKey.generate(now))
        self._prune(now)
        self._save()
        return self.current

    def _prune(self, now: int) -> None:
        # Keep a retired key until every token it signed has expired (plus clock slack).
        self.keys = [k for k in self.keys
                     if not k.retired or k.retired + self.token_lifetime + 120 > now]

    def signing_key(self) -> SigningKey:
        if self.faults.on("token_unpublished_kid"):
            if self._staged is None:
                self._staged = SigningKey.generate(int(self.clock()))
            return self._staged
        return self.current

    def jwks(self) -> dict:
        self._prune(int(self.clock()))
        keys = []
        for k in self.keys:
            jwk = k.public_jwk()
            if self.faults.on("jwks_private_params"):
                jwk["d"] = k.private_scalar()
            if self.faults.on("jwks_no_use"):
                del jwk["use"]
            keys.append(jwk)
        if self.faults.on("jwks_duplicate_kid"):
            nxt = SigningKey.generate(int(self.clock())).public_jwk()
            nxt["kid"] = self.current.kid
            keys.append(nxt)
        return {"keys": keys}


class TokenIssuer:
    """Issues user JWTs (ID-005..ID-008)."""

    def __init__(self, keys: KeyStore, faults: Faults, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.faults = faults
        self.clock = clock
        self.issuer = ""
        #: G's audience value (ID-007); set from the gatekeeper settings.
        self.audience = ""

    def issue(self, sub: str, *, handle: str = "") -> str:
        now = int(self.clock())
        if self.faults.on("token_clock_behind"):
            now -= 2 * 3600
        key = self.keys.signing_key()
        claims = {
            "iss": self.issuer,
            "sub": handle if self.faults.on("token_sub_internal_id") and handle else sub,
            "aud": self.issuer if self.faults.on("token_wrong_audience") else self.audience,
            "iat": now,
            "exp": now + self.keys.token_lifetime,
        }
        if self.faults.on("token_oversized"):  # a profile blob embedded in every token
            claims["profile"] = {"avatar": "A" * 5000}
        return jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"})

    def verify(self, token: str) -> dict:
        """Verify one of our own user tokens (media upload/delete). Raises ``jwt.PyJWTError``."""
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        key = next((k for k in self.keys.keys if k.kid == kid), None)
        if key is None and self.keys._staged is not None and self.keys._staged.kid == kid:
            key = self.keys._staged
        if key is None or header.get("alg") != key.alg:
            raise jwt.InvalidTokenError("unknown kid or wrong alg")
        return jwt.decode(token, key.private.public_key(), algorithms=[key.alg], issuer=self.issuer,
                          options={"verify_aud": False, "require": ["exp", "iat", "sub", "iss"]},
                          leeway=60)


class PushAuthError(Exception):
    """The push token is not acceptable; ``status`` is 401 or 403."""

    def __init__(self, detail: str, status: int = 401) -> None:
        super().__init__(detail)
        self.status = status


_ALLOWED_ALGS = {"RS256", "ES256", "EdDSA", "PS256", "ES384", "RS384", "RS512"}


class PushVerifier:
    """Verifies G's bearer JWT on ``/push`` against G's JWK Set (CHN-016, CHN-017).

    ``fetch_jwks`` returns G's JWK Set; it is called on first use and once more whenever a
    token names an unknown ``kid`` (so a newly published G key is accepted).
    """

    def __init__(self, faults: Faults, clock: Callable[[], float] = time.time) -> None:
        self.faults = faults
        self.clock = clock
        self.fetch_jwks: Callable[[], Awaitable[dict]] | None = None
        self.issuer = ""
        self.audience = ""
        self._keys: dict[str, dict] = {}
        self._fetched = False

    def configure(self, fetch: Callable[[], Awaitable[dict]] | None, issuer: str,
                  audience: str) -> None:
        self.fetch_jwks, self.issuer, self.audience = fetch, issuer, audience
        self._keys, self._fetched = {}, False

    async def _refresh(self) -> None:
        if self.fetch_jwks is None:
            raise PushAuthError("no gatekeeper JWK Set configured")
        try:
            doc = await self.fetch_jwks()
        except Exception as exc:  # network or parse failure: cannot authenticate
            raise PushAuthError(f"cannot fetch the gatekeeper JWK Set: {exc}") from exc
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list):
            raise PushAuthError("gatekeeper JWK Set has no keys array")
        self._keys = {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}
        self._fetched = True

    async def verify(self, authorization: str | None) -> dict:
        if not authorization or not authorization.startswith(("Bearer ", "bearer ")):
            raise PushAuthError("missing bearer token")
        token = authorization.split(" ", 1)[1].strip()
        if token.count(".") != 2:
            raise PushAuthError("not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise PushAuthError(f"bad JWS header: {exc}") from exc
        alg, kid = header.get("alg"), header.get("kid")
        skip_sig = self.faults.on("push_accept_unsigned")
        if skip_sig:
            claims = jwt.decode(token, options={"verify_signature": False})
        else:
            if alg not in _ALLOWED_ALGS or (alg == "EdDSA" and self.faults.on("push_eddsa_unsupported")):
                raise PushAuthError(f"algorithm {alg!r} not accepted")
            if not isinstance(kid, str):
                raise PushAuthError("token has no kid")
            if not self._fetched:
                await self._refresh()
            jwk = self._keys.get(kid)
            if jwk is None and not self.faults.on("push_no_jwks_refresh"):
                await self._refresh()
                jwk = self._keys.get(kid)
            if jwk is None:
                raise PushAuthError(f"unknown kid {kid!r}")
            if jwk.get("alg") and jwk["alg"] != alg:
                raise PushAuthError(f"alg {alg!r} differs from the key's {jwk['alg']!r}")
            try:
                key = jwt.PyJWK(jwk, algorithm=alg).key
                claims = jwt.decode(token, key, algorithms=[alg],
                                    options={"verify_exp": False, "verify_iat": False,
                                             "verify_nbf": False, "verify_aud": False,
                                             "verify_iss": False})
            except jwt.PyJWTError as exc:
                raise PushAuthError(f"signature does not verify: {exc}") from exc
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict) -> None:
        now = self.clock()
        if not self.faults.on("push_accept_expired"):
            exp = claims.get("exp")
            if not isinstance(exp, (int, float)) or isinstance(exp, bool):
                raise PushAuthError("token has no numeric exp", 403)
            if exp < now - 60:
                raise PushAuthError("token expired", 403)
            for c in ("iat", "nbf"):
                v = claims.get(c)
                if v is not None and (not isinstance(v, (int, float)) or v > now + 60):
                    raise PushAuthError(f"token {c} is in the future", 403)
        if claims.get("iss") != self.issuer:
            raise PushAuthError("wrong issuer", 403)
        if not self.faults.on("push_ignore_audience"):
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if self.audience not in auds:
                raise PushAuthError("audience does not name this provider", 403)
