"""The chat channel's total handshake deadline (issue 13 §1, ``Settings.handshake_timeout_s``):
a real WebSocket client on loopback that sends nothing, or trickles a handshake message as
WebSocket fragments, is closed at the deadline, with an event saying how far it got."""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect

from conformance.gatekeeper import Settings
from reference_impl.channel import NoiseInitiator

pytestmark = pytest.mark.anyio
DEADLINE_S = 1.0


@pytest.fixture
def settings():
    return Settings(handshake_timeout_s=DEADLINE_S)


async def _raw(gk):
    return await connect(gk.config_for_provider()["chat_url"], subprotocols=["interop.v1"],
                         open_timeout=5)


async def _trickle(data: bytes) -> AsyncIterator[bytes]:
    """One byte per fragment, 5 per second: never idle, never done within the deadline."""
    for b in data:
        yield bytes([b])
        await asyncio.sleep(0.2)


async def _closed_at_deadline(gk, ws, started: float, sender: asyncio.Task | None = None) -> dict:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.wait_closed(), DEADLINE_S + 5)
    elapsed = time.monotonic() - started
    if sender is not None:
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
    assert ws.close_code == 1008
    assert DEADLINE_S - 0.1 <= elapsed < DEADLINE_S + 5, elapsed
    ev = await gk.log.wait_for(kind="handshake_failed", timeout=1)
    assert ev["detail"]["reason"] == "timeout" and ev["detail"]["deadline_s"] == DEADLINE_S
    return ev["detail"]


async def test_a_client_that_sends_nothing_is_closed_saying_so(gk):
    started = time.monotonic()
    ws = await _raw(gk)
    detail = await _closed_at_deadline(gk, ws, started)
    assert detail["got_to"] == "WebSocket accepted, waiting for handshake message 1"


async def test_a_trickled_first_message_does_not_extend_the_deadline(gk, make_client):
    c = await make_client(connect=False)
    started = time.monotonic()
    ws = await _raw(gk)
    sender = asyncio.create_task(ws.send(_trickle(NoiseInitiator(c.auth_private).start())))
    detail = await _closed_at_deadline(gk, ws, started, sender)
    # whole messages only reach G (ASGI): an unfinished message 1 is no progress
    assert detail["got_to"] == "WebSocket accepted, waiting for handshake message 1"


async def test_a_trickled_third_message_is_closed_after_message_2(gk, make_client):
    c = await make_client(connect=False)
    started = time.monotonic()
    ws = await _raw(gk)
    init = NoiseInitiator(c.auth_private)
    await ws.send(init.start())
    await asyncio.wait_for(ws.recv(), 5)  # message 2: G got that far
    sender = asyncio.create_task(ws.send(_trickle(bytes(200))))
    detail = await _closed_at_deadline(gk, ws, started, sender)
    assert detail["got_to"] == "message 2 sent, waiting for handshake message 3"
