"""G's own outbound exchanges (push, media fetch, JWKS fetch) have a total deadline (issue 13
§1): a provider that answers its headers and then trickles one byte per read, inside every
per-read timeout, ends the exchange at ``exchange_deadline_s`` with an error saying how far it
got, and a push answer cannot grow without bound."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from conformance.gatekeeper import Gatekeeper, Settings
from conformance.gatekeeper.events import EventLog
from conformance.gatekeeper.media import fetch
from conformance.gatekeeper.providers import Provider
from conformance.gatekeeper.tokens import TokenError

pytestmark = pytest.mark.anyio
DEADLINE, SLACK = 1.5, 5.0  # loose upper bound: "bounded", not "precise", on a loaded 2-core CI machine


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    try:
        for _ in range(100_000):
            writer.write(b"{")
            await writer.drain()
            await asyncio.sleep(0.2)  # far inside the 10 s per-read timeout
    except (ConnectionError, OSError):
        pass


async def _flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    try:
        while True:
            writer.write(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
            await writer.drain()
    except (ConnectionError, OSError):
        pass


@pytest.fixture
async def peer(request) -> AsyncIterator[str]:
    server = await asyncio.start_server(request.param, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()


@pytest.mark.parametrize("peer", [_trickle], indirect=True)
async def test_a_trickled_media_body_hits_the_total_deadline(peer: str):
    async with httpx.AsyncClient() as client:
        t0 = time.monotonic()
        res = await fetch(client, peer + "/blob", timeout=10, max_bytes=1 << 20,
                          expected_enc_sha256=b"\0" * 32, deadline=DEADLINE)
        wall = time.monotonic() - t0
    assert res.error and "total deadline" in res.error and res.sha256_ok is None, res.summary()
    assert wall <= DEADLINE + SLACK


@pytest.mark.parametrize("peer", [_trickle], indirect=True)
async def test_a_trickled_jwks_hits_the_total_deadline(peer: str):
    settings = Settings(exchange_deadline_s=DEADLINE)
    prov = Provider("p", peer + "/jwks", peer + "/push", peer + "/media", "iss", audience="p", integrator=1)
    log = EventLog(100)
    async with httpx.AsyncClient() as client:
        t0 = time.monotonic()
        with pytest.raises(TokenError, match="deadline"):
            await prov.fetch_jwks(client, settings, log)
        assert time.monotonic() - t0 <= DEADLINE + SLACK


@pytest.mark.parametrize(("peer", "expect"), [(_trickle, "total deadline"), (_flood, "exceeds")],
                         indirect=["peer"])
async def test_a_trickled_or_endless_push_answer_is_cut(peer: str, expect: str, make_client,
                                                        gk: Gatekeeper):
    client = await make_client("bob@provider.test", connect=False)
    gk.settings.exchange_deadline_s = DEADLINE
    gk.providers["prov"].push_url = peer + "/push"
    t0 = time.monotonic()
    assert len(gk.accounts) == 1 and client is not None
    result = await gk.push(next(iter(gk.accounts)))
    assert result.error and expect in result.error, result
    assert time.monotonic() - t0 <= DEADLINE + SLACK
