"""The fault registry: enough faults, every area covered, valid requirement IDs, the docs
table in sync, every fault wired into the code, and a sample of faults changing behaviour."""
from __future__ import annotations

import base64
import json
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conformance.catalog import load_catalog
from reference_impl.provider import ReferenceProvider
from reference_impl.provider.faults import FAULTS, Faults, UnknownFaultError, render_table

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "reference_impl" / "provider"


def test_registry_is_large_and_covers_every_area() -> None:
    assert len(FAULTS) >= 30
    assert {f.area for f in FAULTS.values()} >= {"identity", "push", "media-server", "transport",
                                                  "enlistment", "channel", "e2e", "media-client",
                                                  "consent"}
    for f in FAULTS.values():
        assert re.fullmatch(r"[a-z0-9_]+", f.name) and f.description and f.requirements


def test_requirement_ids_exist_in_the_catalog() -> None:
    ids = {r.id for r in load_catalog()}
    for f in FAULTS.values():
        assert set(f.requirements) <= ids, (f.name, set(f.requirements) - ids)


def test_docs_table_matches_registry() -> None:
    doc = (ROOT / "docs" / "reference-provider.md").read_text("utf-8")
    table = doc.split("<!-- faults:begin -->\n", 1)[1].split("<!-- faults:end -->", 1)[0]
    assert table == render_table()


def test_every_fault_is_wired_into_the_provider() -> None:
    source = "\n".join(p.read_text("utf-8") for p in PKG.rglob("*.py") if p.name != "faults.py")
    for name in FAULTS:
        assert f'"{name}"' in source, f"fault {name} is never consulted"


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(UnknownFaultError):
        Faults(["no_such_fault"])
    with pytest.raises(UnknownFaultError):
        Faults().on("typo")


def test_cli_lists_faults() -> None:
    out = subprocess.run([sys.executable, "-m", "conformance.cli", "serve-reference", "--list-faults"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    for name in FAULTS:
        assert name in out


# ---------------------------------------------------------------- behaviour of a sample

@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_server_faults_change_only_their_behaviour(tmp_path) -> None:
    p = ReferenceProvider()
    await p.start(data_dir=tmp_path, faults=("jwks_private_params", "media_guessable_reference",
                                             "media_no_content_length", "push_response_body"))
    try:
        async with httpx.AsyncClient(base_url=p.target_url) as c:
            keys = (await c.get("/.well-known/oauth/openid/jwks")).json()["keys"]
            assert all("d" in k for k in keys)
            auth = {"authorization": "Bearer " + p.app.tokens.issue("a"),
                    "content-type": "application/octet-stream"}
            refs = [(await c.post("/media", content=b"x" * 50, headers=auth)).json()["storage_reference"]
                    for _ in range(2)]
            assert int(refs[1]) == int(refs[0]) + 1
            r = await c.get(f"/media/{refs[0]}")
            assert r.content == b"x" * 50 and "content-length" not in r.headers
            assert r.headers["content-type"] == "application/octet-stream"
    finally:
        await p.stop()


@pytest.mark.anyio
async def test_push_accept_expired_fault(tmp_path) -> None:
    from conformance.gatekeeper.tokens import GatekeeperKeys

    keys = GatekeeperKeys()

    async def fetch() -> dict:
        return keys.jwks()

    for faults, expected in (((), 403), (("push_accept_expired",), 200)):
        p = ReferenceProvider()
        await p.start(data_dir=tmp_path / str(expected), faults=faults)
        try:
            p.app.push.configure(fetch, "G", p.target_url)
            token = keys.push_token(issuer="G", audience=p.target_url, subject="x",
                                    now=time.time() - 7200, lifetime_s=3600)
            async with httpx.AsyncClient() as c:
                r = await c.post(p.target_url + "/push", json={"to": "x"},
                                 headers={"authorization": f"Bearer {token}"})
            assert r.status_code == expected
        finally:
            await p.stop()


@pytest.mark.anyio
@pytest.mark.parametrize("fault,check", [
    ("version_byte_0x34", "decrypt_failed"),
    ("mac_identity_order_swapped", "decrypt_failed"),
    ("no_padding", "decrypt_failed"),
])
async def test_wire_faults_break_what_g_users_decrypt(tmp_path, fault: str, check: str) -> None:
    from conftest import start_env, stop_env

    env = await start_env(tmp_path, faults=(fault,))
    try:
        handle, login = await env.user()
        bob = await env.gk.create_user("bob")
        r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": "x"})
        assert r.status_code == 202
        # G refuses the stanza itself, or its user fails to decrypt it
        await env.gk.log.wait_for(lambda e: e["kind"] == "rejected" or (
            e["kind"] == check and e["detail"].get("user") == bob.id), 10)
        assert not bob.inbox
    finally:
        await stop_env(env)


@pytest.mark.anyio
async def test_reuse_one_time_prekeys_is_refused_by_g(tmp_path) -> None:
    from conftest import start_env, stop_env

    env = await start_env(tmp_path, faults=("reuse_one_time_prekeys",))
    try:
        handle, login = await env.user()
        acct = env.gk.accounts[login]
        env.gk.script.low_pre_keys(login, 3)
        await env.gk.log.wait_for(lambda e: True, 10, kind="rejected", login=login)
        assert max(acct.one_time) == 100  # the second batch (ids 1..100 again) was refused
    finally:
        await stop_env(env)


@pytest.mark.anyio
async def test_silent_identity_change_and_ignore_blocklist(tmp_path) -> None:
    from conftest import start_env, stop_env

    env = await start_env(tmp_path, faults=("silent_identity_change", "ignore_blocklist"))
    try:
        handle, login = await env.user()
        bob = await env.gk.create_user("bob")
        bob.send_text(login, "before")
        await env.inbox_until(handle, 1)
        await env.h.post(f"/users/{handle}/block", json={"peer": bob.id})
        bob.change_identity()
        bob.send_text(login, "after")
        items = await env.inbox_until(handle, 2)
        assert items[-1]["text"] == "after"  # surfaced although blocked
        assert not [e for e in env.app.storage.events(handle) if e["type"] == "identity_changed"]
    finally:
        await stop_env(env)


@pytest.mark.anyio
async def test_cleartext_on_tls_port_serves_both_only_under_the_fault(tmp_path) -> None:
    """TRN-005's fault: the same port answers TLS and plain HTTP; without it, plain HTTP to
    the TLS port gets no JWKS."""
    path = "/.well-known/oauth/openid/jwks"
    for faults in ((), ("cleartext_on_tls_port",)):
        p = ReferenceProvider()
        await p.start(tls=True, data_dir=tmp_path / (faults[0] if faults else "clean"), faults=faults)
        try:
            assert p.ca_certificate is not None
            ctx = ssl.create_default_context(cafile=str(p.ca_certificate))
            async with httpx.AsyncClient(verify=ctx) as c:
                assert (await c.get(p.target_url + path)).json()["keys"]
            plain = p.target_url.replace("https://", "http://")
            async with httpx.AsyncClient() as c:
                try:
                    r = await c.get(plain + path, timeout=5)
                    status = r.status_code
                except httpx.HTTPError:
                    status = None
            if faults:
                assert status == 200 and r.json()["keys"]
            else:
                assert status != 200
        finally:
            await p.stop()
