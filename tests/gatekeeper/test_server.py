"""Running the simulator: the CLI, TLS with a generated CA, HTTP/2, stopping mid-handshake."""
from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys

import httpx
import pytest
from gk_client import ProviderClient
from websockets.asyncio.client import connect

from conformance.gatekeeper import Gatekeeper

pytestmark = pytest.mark.anyio


async def test_cli_prints_config_and_stops_on_sigterm():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conformance.cli", "serve-gatekeeper", "--port", "0",
        "--public-url", "https://gk.example:8443", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        info = json.loads(line)
        assert info["url"].startswith("http://127.0.0.1:")
        assert info["gatekeeper"]["enlist_url"] == "https://gk.example:8443/3p/interop_reg"
        assert info["gatekeeper"]["chat_url"] == "wss://gk.example:8443/chat"
        async with httpx.AsyncClient() as h:
            r = await h.get(info["url"] + "/.well-known/oauth/openid/jwks", timeout=5)
        assert r.status_code == 200 and r.json()["keys"][0]["alg"] == "RS256"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_tls_http2_and_wss(provider):
    async with Gatekeeper() as gk:
        await gk.stop()
        await gk.start(tls=True)
        gk.register_provider("prov", provider.jwks_url, provider.push_url, provider.media_base, provider.issuer)
        cfg = gk.config_for_provider()
        assert gk.url.startswith("https://127.0.0.1:") and "BEGIN CERTIFICATE" in cfg["ca_certificates"]
        ctx = ssl.create_default_context(cadata=cfg["ca_certificates"])
        async with httpx.AsyncClient(verify=ctx, http2=True) as h:
            r = await h.get(cfg["jwks_url"], timeout=5)
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        async with httpx.AsyncClient() as h:  # the system store does not trust the kit's CA
            with pytest.raises(httpx.ConnectError):
                await h.get(cfg["jwks_url"], timeout=5)
        c = ProviderClient(cfg, provider.token("tls@provider.test", cfg["audience"]), sub="tls@provider.test")
        assert (await c.enlist())["status"] == "ok"
        assert await c.connect() is None
        await c.close()


async def test_stop_closes_connections_still_in_handshake():
    gk = Gatekeeper()
    await gk.start()
    ws = await connect(gk.config_for_provider()["chat_url"], subprotocols=["interop.v1"], open_timeout=5)
    await gk.log.wait_for(kind="ws_connected", timeout=5)
    await asyncio.wait_for(gk.stop(), 10)
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 1001


async def test_binds_loopback_by_default():
    async with Gatekeeper() as gk:
        assert gk.url.startswith("http://127.0.0.1:")
