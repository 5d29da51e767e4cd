"""A tiny provider server for the simulator's tests: JWKS, push receiver, media host.

Real HTTP on loopback (served by the simulator's own ``AsgiServer``); it records what G sent
and verifies G's push JWT against G's JWKS, as a provider must (CHN-016).
"""
from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from conformance.gatekeeper.server import AsgiServer


class ProviderStub:
    def __init__(self, issuer: str = "https://provider.test") -> None:
        self.issuer = issuer
        self.kid = "p-" + secrets.token_hex(4)
        self._key = ed25519.Ed25519PrivateKey.generate()
        #: An RS256 key too (the framework's sample JWK Set is RSA), for RS256 user tokens.
        self.rsa_kid = "p-rsa-" + secrets.token_hex(4)
        self._rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pushes: list[dict[str, Any]] = []
        self.push_status = 200
        self.media: dict[str, bytes] = {}
        self.media_requests: list[dict[str, Any]] = []
        self.jwks_requests = 0
        self.g_jwks_url = ""
        self._server = AsgiServer(self._app)
        self.url = ""
        self._push_event = asyncio.Event()

    async def start(self) -> None:
        self.url = await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/oauth/openid/jwks"

    @property
    def push_url(self) -> str:
        return f"{self.url}/push"

    @property
    def media_base(self) -> str:
        return f"{self.url}/media"

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.get_algorithm_by_name("EdDSA").to_jwk(self._key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="EdDSA")
        rsa_jwk = json.loads(jwt.get_algorithm_by_name("RS256").to_jwk(self._rsa.public_key()))
        rsa_jwk.update(kid=self.rsa_kid, use="sig", alg="RS256")
        return {"keys": [jwk, rsa_jwk]}

    def token(self, sub: str, aud: str, *, lifetime: int = 3600, headers: dict[str, Any] | None = None,
              key: Any = None, alg: str = "EdDSA", **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {"iss": self.issuer, "sub": sub, "aud": aud, "iat": now, "exp": now + lifetime}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        rs256 = alg == "RS256"
        h = {"kid": self.rsa_kid if rs256 else self.kid}
        h.update(headers or {})
        return jwt.encode(body, key or (self._rsa if rs256 else self._key), algorithm=alg, headers=h)

    def upload(self, blob: bytes) -> str:
        ref = secrets.token_urlsafe(24)
        self.media[ref] = blob
        return ref

    async def wait_push(self, n: int, timeout: float = 5.0) -> dict[str, Any]:
        async def _wait() -> None:
            while len(self.pushes) < n:
                self._push_event.clear()
                await self._push_event.wait()
        await asyncio.wait_for(_wait(), timeout)
        return self.pushes[n - 1]

    async def _verify_push(self, auth: str) -> dict[str, Any] | str:
        if not auth.startswith("Bearer "):
            return "no bearer"
        token = auth[7:]
        async with httpx.AsyncClient() as c:
            jwks = (await c.get(self.g_jwks_url, timeout=5)).json()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return "not a JWS"
        jwk = next((k for k in jwks["keys"] if k["kid"] == header.get("kid")), None)
        if jwk is None:
            return "unknown kid"
        try:
            return jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]], audience="prov")
        except jwt.PyJWTError as exc:
            return f"invalid: {exc}"

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        path, method = scope["path"], scope["method"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        status, out, ctype = 404, b"", b"application/json"
        if path == "/.well-known/oauth/openid/jwks":
            self.jwks_requests += 1
            status, out = 200, json.dumps(self.jwks()).encode()
        elif path == "/push" and method == "POST":
            verified = await self._verify_push(headers.get("authorization", ""))
            self.pushes.append({"headers": headers, "body": json.loads(body or b"null"),
                                "verified": verified, "http_version": scope["http_version"],
                                "token": headers.get("authorization", "")[7:]})
            self._push_event.set()
            status = self.push_status if isinstance(verified, dict) else 401
        elif path.startswith("/media/"):
            ref = path[len("/media/"):]
            self.media_requests.append({"ref": ref, "authorization": headers.get("authorization", ""),
                                        "http_version": scope["http_version"]})
            if ref in self.media:
                status, out, ctype = 200, self.media[ref], b"application/octet-stream"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})
