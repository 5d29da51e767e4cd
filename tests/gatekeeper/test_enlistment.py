"""Enlistment (spec §4.2): every validation has a negative test; answers are the profile's."""
from __future__ import annotations

import base64
import re

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from conformance.gatekeeper.enlistment import b64url_encode

pytestmark = pytest.mark.anyio


async def _fail(client, **overrides):
    body = await client.enlist(**overrides)
    assert body["status"] == "fail", body
    return body["reason"]


async def test_ok_answer_and_login_format(gk, make_client):
    c = await make_client(connect=False)
    assert re.fullmatch(r"1-\d{14}@interop", c.login)
    ev = await gk.log.wait_for(kind="enlisted", login=c.login, timeout=1)
    assert ev["detail"]["sub"] == "alice@provider.test"
    first = c.login
    assert (await c.enlist())["login"] == first  # re-enlistment keeps the login


@pytest.mark.parametrize("field", ["authkey", "e_keytype", "e_regid", "e_ident", "e_skey_id",
                                   "e_skey_val", "e_skey_sig", "token"])
async def test_missing_field(gk, make_client, field):
    c = await make_client(enlist=False)
    assert await _fail(c, **{field: None}) == "malformed"
    ev = await gk.log.wait_for(kind="enlist_failed", timeout=1)
    assert ev["detail"]["requirement"] == "ENL-009"


async def test_eight_fields_and_the_1_0_0_version_field_are_both_accepted(gk, make_client):
    """ENL-009: the framework's eight fields suffice; a 1.0.0 client's ninth field, version,
    is still accepted (and checked, ENL-010), but only once."""
    c = await make_client(enlist=False)
    assert "version" not in c.form()
    assert (await c.enlist())["status"] == "ok"
    assert (await c.enlist(version="1.0.0"))["status"] == "ok"
    ev = await gk.log.wait_for(kind="enlisted", login=c.login, version="1.0.0", timeout=1)
    assert ev["detail"]["re_enlistment"] is True
    from urllib.parse import urlencode
    body = urlencode(list(c.form(version="1.0.0").items()) + [("version", "1.0.0")]).encode()
    assert (await c.enlist(content=body))["reason"] == "malformed"


async def test_extra_and_repeated_fields(make_client):
    c = await make_client(enlist=False)
    assert await _fail(c, extra="x") == "malformed"
    from urllib.parse import urlencode
    body = urlencode(list(c.form().items()) + [("authkey", c.form()["authkey"])]).encode()
    assert (await c.enlist(content=body))["reason"] == "malformed"


async def test_wrong_content_type(make_client, gk):
    import httpx
    c = await make_client(enlist=False)
    async with httpx.AsyncClient() as h:
        r = await h.post(gk.config_for_provider()["enlist_url"], json=c.form(), timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "fail", "reason": "malformed"}


@pytest.mark.parametrize("field,size", [("authkey", 32), ("e_keytype", 1), ("e_regid", 4),
                                        ("e_ident", 32), ("e_skey_id", 3), ("e_skey_val", 32),
                                        ("e_skey_sig", 64)])
@pytest.mark.parametrize("mutation", ["short", "long", "padded", "std_alphabet", "junk"])
async def test_field_encoding_and_size(gk, make_client, field, size, mutation):
    c = await make_client(enlist=False)
    raw = bytes(range(1, size + 1))
    value = {
        "short": b64url_encode(raw[:-1]) if size > 1 else "",
        "long": b64url_encode(raw + b"\x01"),
        "padded": base64.urlsafe_b64encode(b"\xfb" * size).decode(),
        "std_alphabet": base64.b64encode(b"\xfb\xff" * size)[: len(b64url_encode(raw))].decode(),
        "junk": "!!" + b64url_encode(raw)[2:],
    }[mutation]
    if mutation == "padded" and "=" not in value:
        value += "="
    assert await _fail(c, **{field: value}) == "malformed"
    ev = await gk.log.wait_for(kind="enlist_failed", timeout=1)
    assert ev["detail"]["requirement"] == "ENL-002"


@pytest.mark.parametrize("field,value", [
    ("e_keytype", b"\x06"), ("e_regid", (0).to_bytes(4, "big")),
    ("e_regid", (16381).to_bytes(4, "big")), ("e_skey_id", b"\x00\x00\x00")])
async def test_key_type_and_ids(gk, make_client, field, value):
    c = await make_client(enlist=False)
    assert await _fail(c, **{field: b64url_encode(value)}) == "malformed"
    assert (await gk.log.wait_for(kind="enlist_failed", timeout=1))["detail"]["requirement"] == "ENL-003"


async def test_authkey_must_differ_from_identity(gk, make_client):
    c = await make_client(enlist=False)
    assert await _fail(c, authkey=c.form()["e_ident"]) == "malformed"


async def test_bad_signed_pre_key_signature(gk, make_client):
    c = await make_client(enlist=False)
    sig = bytearray(c.spk.signature)
    sig[0] ^= 1
    assert await _fail(c, e_skey_sig=b64url_encode(bytes(sig))) == "bad_signature"
    assert (await gk.log.wait_for(kind="enlist_failed", timeout=1))["detail"]["requirement"] == "ENL-004"


@pytest.mark.parametrize("version,reason", [("2.0.0", "protocol_version"), ("1.0", "protocol_version"),
                                            ("1.4.2", None)])
async def test_protocol_version(make_client, version, reason):
    c = await make_client(enlist=False)
    body = await c.enlist(version=version)
    assert body.get("reason") == reason and body["status"] == ("ok" if reason is None else "fail")


async def test_rs256_user_tokens_are_accepted(gk, make_client, provider):
    """The framework's sample JWK Set is RS256 (S2 §1.3.1): G verifies RS256 user tokens at
    enlistment and in the handshake, as it does EdDSA and ES256 ones."""
    c = await make_client(enlist=False, connect=False)
    c.token = provider.token(c.sub, gk.config_for_provider()["audience"], alg="RS256")
    assert jwt.get_unverified_header(c.token)["alg"] == "RS256"
    assert (await c.enlist())["status"] == "ok"
    assert await c.connect() is None
    assert [(t.source, t.accepted) for t in gk.tokens_seen] == [("enlistment", True), ("handshake", True)]


def _other_key_token(provider, aud):
    other = ed25519.Ed25519PrivateKey.generate()
    return provider.token("alice@provider.test", aud, key=other)


@pytest.mark.parametrize("case,reason,requirement", [
    ("expired", "bad_token", "ID-007"),
    ("iat_future", "bad_token", "ID-007"),
    ("wrong_aud", "bad_token", "ID-007"),
    ("no_sub", "bad_token", "ID-007"),
    ("iat_after_exp", "bad_token", "ID-007"),
    ("float_exp", "bad_token", "ID-007"),
    ("unknown_iss", "bad_integrator", "ID-007"),
    ("other_key", "bad_token", "ID-005"),
    ("unknown_kid", "bad_token", "ID-005"),
    ("alg_none", "bad_token", "ID-005"),
    ("alg_hs256", "bad_token", "ID-005"),
    ("too_long", "bad_token", "ID-006"),
    ("not_jws", "bad_token", "ID-005"),
])
async def test_token_checks(gk, make_client, provider, case, reason, requirement):
    c = await make_client(enlist=False)
    aud = gk.config_for_provider()["audience"]
    sub = "alice@provider.test"
    import time
    now = int(time.time())
    token = {
        "expired": lambda: provider.token(sub, aud, iat=now - 7200, exp=now - 3600),
        "iat_future": lambda: provider.token(sub, aud, iat=now + 600, exp=now + 3600),
        "wrong_aud": lambda: provider.token(sub, "someone-else"),
        "no_sub": lambda: provider.token(None, aud),
        "iat_after_exp": lambda: provider.token(sub, aud, iat=now + 30, exp=now + 20),
        "float_exp": lambda: provider.token(sub, aud, exp=now + 100.5),
        "unknown_iss": lambda: provider.token(sub, aud, iss="https://evil.test"),
        "other_key": lambda: _other_key_token(provider, aud),
        "unknown_kid": lambda: provider.token(sub, aud, headers={"kid": "nope"}),
        "alg_none": lambda: jwt.encode({"iss": provider.issuer, "sub": sub, "aud": aud, "iat": now,
                                        "exp": now + 60}, None, algorithm="none",
                                       headers={"kid": provider.kid}),
        "alg_hs256": lambda: jwt.encode({"iss": provider.issuer, "sub": sub, "aud": aud, "iat": now,
                                         "exp": now + 60}, "k" * 32, algorithm="HS256",
                                        headers={"kid": provider.kid}),
        "too_long": lambda: provider.token(sub, aud, pad="x" * 4096),
        "not_jws": lambda: "abc.def",
    }[case]()
    c.token = token
    assert await _fail(c) == reason
    ev = await gk.log.wait_for(kind="enlist_failed", timeout=1)
    assert ev["detail"]["requirement"] == requirement, ev
    # the evidence never carries the token itself
    assert token not in str(gk.log.dump())


async def test_unknown_kid_triggers_one_refetch(gk, make_client, provider):
    c = await make_client(enlist=False)
    assert (await c.enlist())["status"] == "ok"
    before = provider.jwks_requests
    c.token = provider.token(c.sub, gk.config_for_provider()["audience"], headers={"kid": "rotated"})
    gk.providers["prov"]._fetched_at = 0  # make the min refetch interval pass without waiting
    gk.settings.jwks_cache_s = 10**12
    assert await _fail(c) == "bad_token"
    assert provider.jwks_requests == before + 1


async def test_oversized_body_is_refused_unread(gk, make_client):
    c = await make_client(enlist=False)
    r = await c.enlist(content=b"a=" + b"x" * (17 * 1024))
    assert r["status"] == "fail"
    assert (await gk.log.wait_for(kind="enlist_failed", timeout=1))["detail"]["reason"] == "too_large"


async def test_scripted_failure_and_rate_observation(gk, make_client):
    c = await make_client(enlist=False)
    gk.script.fail_next_enlistment("rate_limited")
    assert await _fail(c) == "rate_limited"
    for _ in range(3):
        assert (await c.enlist())["status"] == "ok"
    ev = await gk.log.wait_for(kind="violation", timeout=1)
    assert ev["detail"]["requirement"] == "ENL-007"


async def test_get_is_not_allowed(gk):
    import httpx
    async with httpx.AsyncClient() as h:
        r = await h.get(gk.config_for_provider()["enlist_url"], timeout=5)
    assert r.status_code == 405


async def test_presented_tokens_are_kept_for_the_suite_but_not_logged(gk, make_client, provider):
    c = await make_client()
    sources = [(t.source, t.login, t.accepted) for t in gk.tokens_seen]
    assert sources == [("enlistment", c.login, True), ("handshake", c.login, True)]
    assert gk.tokens_seen[0].token == c.token and c.token not in str(gk.log.dump())
    c.token = provider.token(c.sub, "wrong-audience")
    assert (await c.enlist())["reason"] == "bad_token"
    assert gk.tokens_seen[-1].accepted is False and gk.tokens_seen[-1].reason == "bad_token"
    assert (await gk.log.wait_for(kind="enlist_request", timeout=1))["detail"]["content_type"].startswith(
        "application/x-www-form-urlencoded")
