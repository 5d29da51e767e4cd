"""The naive provider's server: JWK Set, user tokens, push receiver, media hosting; and the
throw-away CA that makes it reachable over TLS. Written from docs/spec alone.

In-memory only. Tokens are EdDSA (Ed25519) JWS signed with one key generated at start.
"""
from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .cuts import TOKEN_LIFETIME_S

MAX_BLOB = 16 * 1024 * 1024 + 1024  # declared maximum (>= 16 MiB, MED-013)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_tls(dir_: Path, host: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``host`` (plus localhost / 127.0.0.1)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "naive provider test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        ip = ipaddress.ip_address(host)
        if str(ip) != "127.0.0.1":
            sans.append(x509.IPAddress(ip))
    except ValueError:
        sans.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    dir_.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = dir_ / "ca.pem", dir_ / "server.pem", dir_ / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


@dataclass
class Blob:
    owner: str
    data: bytes


@dataclass
class ProviderServer:
    """State and ASGI app of the provider server. ``gatekeeper`` is the harness's last
    GatekeeperConfig (G's JWKS URL, issuer, CA); ``enlisted`` maps user-visible ids to logins."""

    issuer: str = ""
    gatekeeper: dict[str, Any] = field(default_factory=dict)
    enlisted: Callable[[str], bool] = lambda uvid: False
    blobs: dict[str, Blob] = field(default_factory=dict)
    _key: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    _kid: str = field(default_factory=lambda: "naive-" + secrets.token_hex(4))
    _g_keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- identity (ID-001..ID-008) --------------------------------------------------------------
    def jwk(self) -> dict[str, str]:
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw), "kid": self._kid, "use": "sig", "alg": "EdDSA"}

    def issue_token(self, sub: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": sub, "aud": self.gatekeeper.get("audience", ""),
                  "iat": now, "exp": now + TOKEN_LIFETIME_S, "jti": secrets.token_hex(8)}
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self._kid})

    def token_subject(self, token: str) -> str | None:
        """The ``sub`` of a valid token of ours, else None (media upload / delete)."""
        try:
            claims = jwt.decode(token, self._key.public_key(), algorithms=["EdDSA"],
                                options={"verify_aud": False})
        except jwt.PyJWTError:
            return None
        return claims.get("sub") if claims.get("iss") == self.issuer else None

    # -- push (CHN-015..CHN-019) -----------------------------------------------------------------
    async def _g_jwks(self) -> None:
        import ssl
        ctx = ssl.create_default_context(cadata=self.gatekeeper["ca_certificates"])
        async with httpx.AsyncClient(verify=ctx, timeout=5) as c:
            r = await c.get(self.gatekeeper["jwks_url"])
            self._g_keys = {k["kid"]: k for k in r.json().get("keys", []) if isinstance(k, dict) and "kid" in k}

    async def verify_push_token(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 2 or not self.gatekeeper.get("jwks_url"):
            return False
        try:
            header = jwt.get_unverified_header(token)
            kid, alg = header.get("kid"), header.get("alg")
            if kid not in self._g_keys:
                await self._g_jwks()  # refetch once for an unknown kid
            jwk = self._g_keys.get(kid)
            if jwk is None or not alg or alg.lower() == "none" or alg != jwk.get("alg"):
                return False
            key = jwt.PyJWK(jwk).key
            claims = jwt.decode(token, key, algorithms=[alg], audience=self.issuer,
                                issuer=self.gatekeeper.get("issuer"), leeway=60,
                                options={"require": ["exp"], "verify_iat": False})
        except (jwt.PyJWTError, httpx.HTTPError, ValueError, KeyError, TypeError):
            return False
        now = time.time()
        for claim in ("iat", "nbf"):
            if claim in claims and (not isinstance(claims[claim], (int, float)) or claims[claim] > now + 60):
                return False
        return True

    async def push(self, request: Request) -> Response:
        raw = await request.body()  # read it first: an unread body can cost the keep-alive connection
        if not await self.verify_push_token(request.headers.get("authorization", "")):
            return Response(status_code=401)
        try:
            body = json.loads(raw)
        except ValueError:
            return Response(status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("to"), str):
            return Response(status_code=400)
        if not self.enlisted(body["to"]):
            return Response(status_code=404)
        # CUT (CHN-019): the push is accepted and then ignored; nothing wakes the client.
        return Response(status_code=200)

    # -- media hosting (MED-008..MED-014; media profile) -------------------------------------------
    def _uploader(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return self.token_subject(token) if scheme.lower() == "bearer" else None

    async def upload(self, request: Request) -> Response:
        owner = self._uploader(request)
        if owner is None:
            return Response(status_code=401)
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_BLOB:
                return Response(status_code=413)
        ref = secrets.token_urlsafe(24)
        self.blobs[ref] = Blob(owner, data)
        return JSONResponse({"storage_reference": ref, "size": len(data)}, status_code=201,
                            headers={"location": f"/media/{ref}"})

    async def blob(self, request: Request) -> Response:
        ref = request.path_params["ref"]
        blob = self.blobs.get(ref)
        if request.method == "DELETE":
            owner = self._uploader(request)
            if owner is None:
                return Response(status_code=401)
            if blob is None or blob.owner != owner:
                return Response(status_code=404)
            del self.blobs[ref]
            return Response(status_code=204)
        if blob is None:
            return Response(status_code=404)
        headers = {"content-type": "application/octet-stream", "content-length": str(len(blob.data))}
        if request.method == "HEAD":
            return Response(b"", headers=headers)
        return Response(blob.data, headers=headers)  # Range ignored: 200 with the whole blob (MED-011)

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.jwk()]}, headers={"cache-control": "max-age=60"})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "profile_version": "1.0.0"})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/.well-known/oauth/openid/jwks", self.jwks, methods=["GET"]),
            Route("/push", self.push, methods=["POST"]),
            Route("/media", self.upload, methods=["POST"]),
            Route("/media/{ref}", self.blob, methods=["GET", "HEAD", "DELETE"]),
            Route("/health", self.health, methods=["GET"]),
        ])
