"""Chat-channel handshake (spec §5.1): every refusal ends that connection with the right code."""
from __future__ import annotations

import asyncio
import os
import time

import pytest
from websockets.asyncio.client import connect

from conformance.gatekeeper import Settings
from reference_impl.channel import ChannelError, ClientHello, NoiseInitiator
from reference_impl.wire import stanzas_pb2 as pb

pytestmark = pytest.mark.anyio


async def _refused(client, expected_code, **kw):
    err = await client.connect(**kw)
    assert err is not None and err.WhichOneof("body") == "error", err
    assert err.error.code == expected_code
    assert await client.wait_closed() == 1008
    return err


async def test_good_handshake_binds_login(gk, make_client):
    c = await make_client()
    ev = await gk.log.wait_for(kind="connected", login=c.login, timeout=1)
    assert ev["detail"]["protocol_version"] == "1.0.0"
    assert gk.is_connected(c.login)


async def test_unenlisted_static_key(gk, make_client):
    c = await make_client(enlist=False)
    c.login = "1-00000000000000@interop"
    await _refused(c, pb.ERROR_CODE_UN_ENLISTED)
    ev = await gk.log.wait_for(kind="handshake_failed", timeout=1)
    assert ev["detail"]["requirement"] == "CHN-002"


async def test_login_mismatch(gk, make_client):
    c = await make_client(connect=False)
    await _refused(c, pb.ERROR_CODE_UN_ENLISTED, hello=ClientHello(c.token, "1.0.0", "1-1@interop"))


async def test_protocol_version(gk, make_client):
    c = await make_client(connect=False)
    await _refused(c, pb.ERROR_CODE_PROTOCOL_VERSION, hello=ClientHello(c.token, "2.0.0", c.login))


async def test_bad_token(gk, make_client, provider):
    c = await make_client(connect=False)
    now = int(time.time())
    expired = provider.token(c.sub, gk.config_for_provider()["audience"], iat=now - 100, exp=now - 10)
    await _refused(c, pb.ERROR_CODE_BAD_TOKEN, hello=ClientHello(expired, "1.0.0", c.login))
    assert expired not in str(gk.log.dump())


async def test_token_of_another_user(gk, make_client, provider):
    c = await make_client(connect=False)
    other = provider.token("mallory@provider.test", gk.config_for_provider()["audience"])
    await _refused(c, pb.ERROR_CODE_BAD_TOKEN, hello=ClientHello(other, "1.0.0", c.login))


async def test_malformed_hello(gk, make_client):
    c = await make_client(connect=False)
    await _refused(c, pb.ERROR_CODE_MALFORMED, hello=b"\xff\xff")


async def test_scripted_connect_faults(gk, make_client):
    c = await make_client(connect=False)
    gk.script.fail_next_connect(c.login, "bad_token")
    await _refused(c, pb.ERROR_CODE_BAD_TOKEN)
    assert await c.connect() is None  # one-shot


async def test_inactive_for_30_days_is_unenlisted(provider, make_client, gk):
    c = await make_client(connect=False)
    now = [time.time()]
    gk.settings.clock = lambda: now[0]
    now[0] += 31 * 86400
    c.token = provider.token(c.sub, gk.config_for_provider()["audience"], iat=int(now[0]), exp=int(now[0]) + 60)
    await _refused(c, pb.ERROR_CODE_UN_ENLISTED)
    assert c.login not in gk.accounts


async def _raw(gk):
    cfg = gk.config_for_provider()
    return await connect(cfg["chat_url"], subprotocols=["interop.v1"], open_timeout=5)


async def test_garbage_first_message_closes(gk):
    ws = await _raw(gk)
    await ws.send(os.urandom(10))
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 1002
    ev = await gk.log.wait_for(kind="handshake_failed", timeout=1)
    assert ev["detail"]["reason"] == "noise"


async def test_wrong_prologue_fails(gk, make_client):
    c = await make_client(connect=False)
    ws = await _raw(gk)
    init = NoiseInitiator(c.auth_private, prologue=b"other-prologue")
    await ws.send(init.start())
    msg2 = await asyncio.wait_for(ws.recv(), 5)
    with pytest.raises(ChannelError):
        init.finish(msg2, ClientHello(c.token, "1.0.0", c.login))
    await ws.close()


async def test_tampered_final_message(gk, make_client):
    c = await make_client(connect=False)
    ws = await _raw(gk)
    init = NoiseInitiator(c.auth_private)
    await ws.send(init.start())
    m3 = bytearray(init.finish(await asyncio.wait_for(ws.recv(), 5), ClientHello(c.token, "1.0.0", c.login)))
    m3[-1] ^= 1
    await ws.send(bytes(m3))
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 1002


async def test_text_frame_in_handshake(gk):
    ws = await _raw(gk)
    await ws.send("hello")
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 1002
    assert (await gk.log.wait_for(kind="violation", timeout=1))["detail"]["requirement"] == "CHN-001"


@pytest.fixture
def settings():
    return Settings(handshake_timeout_s=1.0)


async def test_handshake_timeout(gk):
    ws = await _raw(gk)
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 1008
    assert (await gk.log.wait_for(kind="handshake_failed", timeout=1))["detail"]["reason"] == "timeout"


async def test_missing_subprotocol_is_recorded(gk, make_client):
    c = await make_client(connect=False)
    assert await c.connect(subprotocols=["other"]) is None
    ev = await gk.log.wait_for(kind="violation", login=None, timeout=1)
    assert ev["detail"]["requirement"] == "CHN-001"


async def test_second_connection_replaces_first(gk, make_client):
    c = await make_client()
    first_conn = gk.sessions[c.login].conn
    import copy
    c2 = copy.copy(c)
    c2.inbound, c2.answers, c2.closed = asyncio.Queue(), {}, asyncio.Event()
    assert await c2.connect() is None
    ev = await gk.log.wait_for(kind="connection_replaced", timeout=5)
    assert ev["detail"]["conn"] == first_conn and ev["detail"]["requirement"] == "CHN-010"
    assert await c.wait_closed() == 1008
    await c2.close()
