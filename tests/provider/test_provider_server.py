"""The provider server's public surfaces, black-box over TLS, HTTP/1.1 and HTTP/2:
JWKS, user tokens, push authentication, media hosting, health and bad input."""
from __future__ import annotations

import ssl
import asyncio
import base64
import json
import time

import httpx
import jwt
import pytest

from conformance.gatekeeper.tokens import GatekeeperKeys
from reference_impl.provider import ReferenceProvider
from reference_impl.provider.server import REF_PATTERN

pytestmark = pytest.mark.anyio
JWKS = "/.well-known/oauth/openid/jwks"
G_ISS = "gatekeeper.test"


def is_problem(r: httpx.Response, *statuses: int) -> bool:
    return (r.status_code in statuses and r.headers["content-type"].startswith("application/problem+json")
            and r.json()["status"] == r.status_code)


# ---------------------------------------------------------------- JWKS and tokens

@pytest.mark.parametrize("http2", [False, True])
async def test_jwks_shape_over_both_http_versions(provider: ReferenceProvider, http2: bool) -> None:
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=provider.ca_certificate), http2=http2) as c:
        r = await c.get(provider.target_url + JWKS)
    assert r.status_code == 200
    assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert r.headers["content-type"].startswith("application/json")
    keys = r.json()["keys"]
    assert keys and len({k["kid"] for k in keys}) == len(keys)
    for k in keys:
        # RS256, the framework's sample (S2 §1.3.1), at ID-003's 2048-bit floor
        assert k["use"] == "sig" and k["alg"] == "RS256" and k["kty"] == "RSA" and k["e"] == "AQAB"
        assert len(base64.urlsafe_b64decode(k["n"] + "==")) * 8 >= 2048
        assert not {"d", "p", "q", "dp", "dq", "qi", "oth", "k"} & set(k)
        jwt.PyJWK(k)  # a valid public key


async def test_user_token_verifies_against_jwks(provider: ReferenceProvider, https) -> None:
    provider.app.tokens.audience = "https://gk.test"
    token = provider.app.tokens.issue("alice@example.test")
    assert len(token) <= 4096
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["typ"] == "JWT"
    keys = {k["kid"]: k for k in (await https.get(JWKS)).json()["keys"]}
    claims = jwt.decode(token, jwt.PyJWK(keys[header["kid"]]).key, algorithms=["RS256"],
                        audience="https://gk.test", issuer=provider.target_url)
    assert claims["sub"] == "alice@example.test"
    assert claims["iat"] < claims["exp"] <= claims["iat"] + 24 * 3600
    assert claims["exp"] > time.time()


async def test_keys_persist_and_rotation_keeps_previous_key(tmp_path) -> None:
    p = ReferenceProvider()
    await p.start(data_dir=tmp_path)
    old_token = p.app.tokens.issue("bob")
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    await p.stop()
    p = ReferenceProvider()
    await p.start(data_dir=tmp_path)
    try:
        assert p.app.keys.current.kid == old_kid  # persisted across restarts
        new = p.app.keys.rotate()
        kids = [k["kid"] for k in p.app.keys.jwks()["keys"]]
        assert kids == [old_kid, new.kid]  # previous key published until its tokens expire
        assert jwt.get_unverified_header(p.app.tokens.issue("bob"))["kid"] == new.kid
    finally:
        await p.stop()


# ---------------------------------------------------------------- push

class _GJwks:
    def __init__(self) -> None:
        self.keys = GatekeeperKeys("EdDSA")
        self.fetches = 0

    async def fetch(self) -> dict:
        self.fetches += 1
        return self.keys.jwks()

    def token(self, aud: str, **over) -> str:
        return self.keys.push_token(issuer=G_ISS, audience=aud, subject="x", now=time.time(),
                                    lifetime_s=3600, **over)


@pytest.fixture
def g(provider: ReferenceProvider) -> _GJwks:
    g = _GJwks()
    provider.app.push.configure(g.fetch, G_ISS, provider.target_url)
    return g


async def _push(https, token: str | None, body=None, ctype="application/json") -> httpx.Response:
    headers = {"content-type": ctype}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    content = body if isinstance(body, bytes) else json.dumps({"to": "nobody"} if body is None else body).encode()
    return await https.post("/push", content=content, headers=headers)


async def test_push_valid_token_answers_200_empty(provider, https, g) -> None:
    r = await _push(https, g.token(provider.target_url))
    assert r.status_code == 200 and r.content == b""


@pytest.mark.parametrize("case", ["missing", "garbage", "alg_none", "bad_signature", "expired",
                                  "future_iat", "wrong_iss", "wrong_aud", "unknown_kid", "alg_mismatch"])
async def test_push_rejects_bad_tokens(provider, https, g, case: str) -> None:
    aud = provider.target_url
    token = {
        "missing": None,
        "garbage": "not-a-jwt",
        "alg_none": jwt.encode({"iss": G_ISS, "aud": aud, "exp": int(time.time()) + 60}, None,
                               algorithm="none", headers={"kid": g.keys.current.kid}),
        "bad_signature": g.token(aud)[:-4] + "AAAA",
        "expired": g.token(aud, exp=int(time.time()) - 120, iat=int(time.time()) - 3600),
        "future_iat": g.token(aud, iat=int(time.time()) + 600),
        "wrong_iss": g.keys.push_token(issuer="someone-else", audience=aud, subject="x",
                                       now=time.time(), lifetime_s=60),
        "wrong_aud": g.token("https://other.example"),
        "unknown_kid": GatekeeperKeys("EdDSA").push_token(issuer=G_ISS, audience=aud, subject="x",
                                                          now=time.time(), lifetime_s=60),
        "alg_mismatch": None,
    }[case]
    if case == "alg_mismatch":
        es = g.keys.rotate("ES256")
        good = g.keys.push_token(issuer=G_ISS, audience=aud, subject="x", now=time.time(), lifetime_s=60)
        h, p, s = good.split(".")
        import base64
        hdr = json.loads(base64.urlsafe_b64decode(h + "=="))
        hdr["alg"] = "EdDSA"
        token = base64.urlsafe_b64encode(json.dumps(hdr).encode()).rstrip(b"=").decode() + f".{p}.{s}"
        assert es.kid == hdr["kid"]
    r = await _push(https, token)
    assert is_problem(r, 401, 403), (case, r.status_code, r.text)


async def test_push_refetches_jwks_once_for_a_new_kid(provider, https, g) -> None:
    aud = provider.target_url
    assert (await _push(https, g.token(aud))).status_code == 200
    assert g.fetches == 1
    g.keys.rotate()  # G publishes a new key and signs with it
    assert (await _push(https, g.token(aud))).status_code == 200
    assert g.fetches == 2
    unknown = GatekeeperKeys().push_token(issuer=G_ISS, audience=aud, subject="x", now=time.time(),
                                          lifetime_s=60)
    assert (await _push(https, unknown)).status_code in (401, 403)
    assert g.fetches == 3  # one refetch per unknown kid, no more


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"to": 5}', b"{}", b'"x"'])
async def test_push_malformed_body_is_400(provider, https, g, body: bytes) -> None:
    r = await _push(https, g.token(provider.target_url), body)
    assert is_problem(r, 400, 422)


async def test_push_wrong_content_type_is_4xx(provider, https, g) -> None:
    r = await _push(https, g.token(provider.target_url), ctype="text/plain")
    assert is_problem(r, 415)


async def test_push_without_configured_gatekeeper_is_401(tmp_path) -> None:
    async with ReferenceProvider() as p:
        async with httpx.AsyncClient() as c:
            r = await c.post(p.target_url + "/push", json={"to": "a"},
                             headers={"authorization": "Bearer a.b.c"})
    assert is_problem(r, 401)


# ---------------------------------------------------------------- media

def _auth(provider: ReferenceProvider, sub: str = "alice") -> dict[str, str]:
    return {"authorization": f"Bearer {provider.app.tokens.issue(sub)}",
            "content-type": "application/octet-stream"}


async def _upload(https, provider, blob: bytes, sub: str = "alice") -> str:
    r = await https.post("/media", content=blob, headers=_auth(provider, sub))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["size"] == len(blob)
    assert r.headers["location"].endswith(body["storage_reference"])
    return body["storage_reference"]


@pytest.mark.parametrize("http2", [False, True])
async def test_media_round_trip_headers_head_range(provider, http2: bool) -> None:
    blob = bytes(range(256)) * 40
    async with httpx.AsyncClient(base_url=provider.target_url, verify=ssl.create_default_context(cafile=provider.ca_certificate),
                                 http2=http2) as c:
        ref = await _upload(c, provider, blob)
        assert REF_PATTERN.match(ref) and len(ref) >= 22
        r = await c.get(f"/media/{ref}")
        assert r.status_code == 200 and r.content == blob
        assert r.headers["content-length"] == str(len(blob))
        assert r.headers["content-type"] == "application/octet-stream"
        h = await c.head(f"/media/{ref}")
        assert h.status_code == 200 and h.content == b""
        assert h.headers["content-length"] == str(len(blob))
        assert h.headers["content-type"] == "application/octet-stream"
        r = await c.get(f"/media/{ref}", headers={"range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == blob[100:200]
        assert r.headers["content-range"] == f"bytes 100-199/{len(blob)}"
        r = await c.get(f"/media/{ref}", headers={"range": "bytes=-10"})
        assert r.status_code == 206 and r.content == blob[-10:]
        r = await c.get(f"/media/{ref}", headers={"range": f"bytes={len(blob)}-"})
        assert is_problem(r, 416)


async def test_media_references_unique_and_unknown_404(provider, https) -> None:
    refs = {await _upload(https, provider, b"same bytes") for _ in range(5)}
    assert len(refs) == 5
    assert is_problem(await https.get("/media/" + "A" * 32), 404)
    assert is_problem(await https.get("/media/short"), 404)


async def test_media_upload_needs_a_valid_user_token(provider, https) -> None:
    for headers in ({}, {"authorization": "Bearer nope"},
                    {"authorization": "Bearer " + jwt.encode({"sub": "x"}, "k", algorithm="HS256")}):
        r = await https.post("/media", content=b"x" * 100,
                             headers={"content-type": "application/octet-stream", **headers})
        assert is_problem(r, 401)
    assert not list(provider.app.storage.blob_dir.iterdir())


async def test_media_size_limit(tmp_path) -> None:
    from reference_impl.provider import ProviderConfig

    p = ReferenceProvider()
    await p.start(data_dir=tmp_path, config=ProviderConfig(max_blob_size=1000))
    try:
        async with httpx.AsyncClient(base_url=p.target_url, http2=True) as c:
            assert (await c.post("/media", content=b"x" * 1000, headers=_auth(p))).status_code == 201
            r = await c.post("/media", content=b"x" * 1001, headers=_auth(p))
            assert is_problem(r, 413)

            async def chunked():  # no Content-Length: the limit applies while streaming
                for _ in range(5):
                    yield b"y" * 300
            r = await c.post("/media", content=chunked(), headers=_auth(p))
            assert is_problem(r, 413)
            assert (await c.get("/health")).status_code == 200
        assert len(list(p.app.storage.blob_dir.iterdir())) == 1
        assert not list(p.app.storage.tmp_dir.iterdir())
    finally:
        await p.stop()


async def test_default_limit_accepts_16_mib(provider, https) -> None:
    blob = b"\x5a" * (16 * 1024 * 1024)
    ref = await _upload(https, provider, blob)
    r = await https.head(f"/media/{ref}")
    assert r.headers["content-length"] == str(len(blob))


async def test_media_delete_by_owner_only(provider, https) -> None:
    ref = await _upload(https, provider, b"secret ciphertext", sub="alice")
    r = await https.delete(f"/media/{ref}", headers=_auth(provider, "mallory"))
    assert is_problem(r, 403)
    assert (await https.get(f"/media/{ref}")).status_code == 200
    assert is_problem(await https.delete(f"/media/{ref}"), 401)
    r = await https.delete(f"/media/{ref}", headers=_auth(provider, "alice"))
    assert r.status_code == 204
    assert (await https.get(f"/media/{ref}")).status_code in (404, 410)
    assert (await https.head(f"/media/{ref}")).status_code in (404, 410)
    assert not provider.app.storage.blob_path(ref).exists()


async def test_interrupted_upload_leaves_nothing(provider) -> None:
    """Atomic writes: a client that disconnects mid-upload leaves no blob and no reference."""
    host, port = provider.target_url.rsplit("//", 1)[1].rsplit(":", 1)
    import ssl
    ctx = ssl.create_default_context(cafile=str(provider.ca_certificate))
    reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
    token = provider.app.tokens.issue("alice")
    writer.write((f"POST /media HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                  "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n").encode()
                 + b"x" * 5000)
    await writer.drain()
    writer.close()
    async with httpx.AsyncClient(base_url=provider.target_url, verify=ssl.create_default_context(cafile=provider.ca_certificate)) as c:
        assert (await c.get("/health")).status_code == 200  # the server keeps serving
    assert not list(provider.app.storage.blob_dir.iterdir())
    assert provider.app.storage.db.execute("SELECT COUNT(*) FROM media").fetchone()[0] == 0


# ---------------------------------------------------------------- health and bad input

async def test_health(https) -> None:
    r = await https.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "profile_version": "1.1.0"}


@pytest.mark.parametrize("method,path,kw,statuses", [
    ("GET", "/no/such/path", {}, (404,)),
    ("DELETE", JWKS, {}, (405,)),
    ("PUT", "/push", {}, (405,)),
    ("POST", "/health", {}, (405,)),
    ("POST", "/media", {"content": b"x", "headers": {"content-type": "text/plain"}}, (401, 415)),
    ("POST", "/media", {"content": b"x", "headers": {"authorization": "Basic abc"}}, (401,)),
    ("GET", "/media/..%2F..%2Fetc%2Fpasswd", {}, (404,)),
    ("POST", "/push", {"content": b"\xff\xfe" * 10}, (401,)),
    ("POST", "/push", {"content": b"x" * 200_000, "headers": {"content-type": "application/json"}}, (401, 413)),
])
async def test_bad_input_gets_problem_json_and_server_keeps_serving(https, method, path, kw, statuses) -> None:
    r = await https.request(method, path, **kw)
    assert is_problem(r, *statuses), (r.status_code, r.text)
    assert (await https.get("/health")).status_code == 200


async def test_oversized_push_body_after_auth_is_413(provider, https, g) -> None:
    r = await _push(https, g.token(provider.target_url), b'{"to": "' + b"x" * 100_000 + b'"}')
    assert is_problem(r, 413)
