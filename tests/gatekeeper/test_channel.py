"""Stanza exchange after the handshake (spec §5.1): answers, protocol errors, limits, pings."""
from __future__ import annotations

import re

import pytest

from conformance.gatekeeper import Settings
from reference_impl.channel import MAX_FRAME
from reference_impl.wire import stanzas_pb2 as pb

pytestmark = pytest.mark.anyio


async def _closed_with_error(c, code, close_code):
    err = await c.next_inbound("error")
    assert err.error.code == code and err.id == ""
    assert await c.wait_closed() == close_code


async def test_ping_pong(make_client):
    c = await make_client()
    st = await c.request(pb.Stanza(ping=pb.Ping()))
    assert st.WhichOneof("body") == "pong"


async def test_g_pings_and_measures(gk, make_client):
    c = await make_client()
    rtt = await gk.script.ping(c.login, timeout=5)
    assert rtt >= 0
    await gk.log.wait_for(kind="pong", login=c.login, expected=True, timeout=1)


async def test_unparseable_stanza_closes_only_that_connection(gk, make_client):
    c = await make_client()
    other = await make_client("other@provider.test")
    await c.ws.send(c.transport.encrypt(b"\xff\xff\xff"))
    await _closed_with_error(c, pb.ERROR_CODE_MALFORMED, 1002)
    assert (await other.request(pb.Stanza(ping=pb.Ping()))).WhichOneof("body") == "pong"


async def test_unknown_body_closes(gk, make_client):
    c = await make_client()
    # field 99, length-delimited: a body member this profile version does not know
    await c.ws.send(c.transport.encrypt(b"\x0a\x02id" + b"\x9a\x06\x00"))
    await _closed_with_error(c, pb.ERROR_CODE_MALFORMED, 1002)


async def test_undecryptable_frame_closes(gk, make_client):
    c = await make_client()
    await c.ws.send(b"\x00" * 40)
    await _closed_with_error(c, pb.ERROR_CODE_MALFORMED, 1002)


async def test_oversized_frame_is_too_large(gk, make_client):
    c = await make_client()
    await c.ws.send(b"\x00" * (MAX_FRAME + 1))
    await _closed_with_error(c, pb.ERROR_CODE_TOO_LARGE, 1009)


async def test_text_message_after_handshake(gk, make_client):
    c = await make_client()
    await c.ws.send("text")
    await _closed_with_error(c, pb.ERROR_CODE_MALFORMED, 1002)


@pytest.mark.parametrize("bad_id", ["", "x" * 65, "a b", "é"])
async def test_bad_request_id_gets_error_and_keeps_connection(make_client, bad_id):
    c = await make_client()
    await c.send(pb.Stanza(id=bad_id, ping=pb.Ping()))
    err = await c.next_inbound("error")
    assert err.error.code == pb.ERROR_CODE_MALFORMED and err.id == ""
    assert (await c.request(pb.Stanza(ping=pb.Ping()))).WhichOneof("body") == "pong"


async def test_reused_request_id_is_recorded(gk, make_client):
    c = await make_client()
    for _ in range(2):
        await c.request(pb.Stanza(id="same", ping=pb.Ping()))
    ev = await gk.log.wait_for(kind="violation", login=c.login, timeout=1)
    assert ev["detail"]["requirement"] == "CHN-006"


@pytest.mark.parametrize("body", ["key_bundle", "blocklist", "notification"])
async def test_g_only_stanzas_from_client_are_refused(make_client, body):
    c = await make_client()
    st = pb.Stanza()
    getattr(st, body).SetInParent()
    answer = await c.request(st)
    assert answer.WhichOneof("body") == "error" and answer.error.code == pb.ERROR_CODE_MALFORMED


async def test_sender_must_be_own_login(gk, make_client):
    c = await make_client()
    bob = await gk.create_user("bob")
    st = pb.Stanza(message=pb.Message(recipient=bob.id, sender="1-1@interop", type=pb.ENC_TYPE_MSG,
                                      ciphertext=b"\x33abc"))
    answer = await c.request(st)
    assert answer.error.code == pb.ERROR_CODE_MALFORMED
    assert (await gk.log.wait_for(kind="rejected", timeout=1))["detail"]["requirement"] == "ENL-006"


async def test_wrong_version_byte_is_refused(gk, make_client):
    c = await make_client()
    bob = await gk.create_user("bob")
    st = pb.Stanza(message=pb.Message(recipient=bob.id, sender=c.login, type=pb.ENC_TYPE_MSG,
                                      ciphertext=b"\x44abc"))
    assert (await c.request(st)).error.code == pb.ERROR_CODE_MALFORMED
    assert (await gk.log.wait_for(kind="rejected", timeout=1))["detail"]["requirement"] == "E2E-001"


async def test_unknown_recipient(make_client):
    c = await make_client()
    st = pb.Stanza(message=pb.Message(recipient="g:0", sender=c.login, type=pb.ENC_TYPE_MSG,
                                      ciphertext=b"\x33abc"))
    answer = await c.request(st)
    assert answer.error.code == pb.ERROR_CODE_UNKNOWN_USER and answer.error.user == "g:0"


@pytest.fixture
def settings():
    return Settings(ping_interval_s=0.2, pong_timeout_s=0.3)


async def test_silent_client_is_dropped_after_ping_timeout(gk, make_client):
    c = await make_client()
    c.auto_pong = False
    ping = await c.next_inbound("ping", timeout=5)
    assert ping.id
    assert await c.wait_closed(5) == 1001
    await gk.log.wait_for(kind="ping_timeout", login=c.login, timeout=1)


async def test_answering_client_stays(gk, make_client):
    c = await make_client()
    await gk.log.wait_for(kind="pong", login=c.login, timeout=5)
    assert not c.closed.is_set()


async def test_events_are_per_connection(gk, make_client):
    c = await make_client()
    conn = gk.sessions[c.login].conn
    kinds = gk.log.kinds(conn=conn)
    assert kinds.index("ws_connected") < kinds.index("connected")
    assert all(e["detail"]["conn"] == conn for e in gk.log.events(conn=conn))


async def test_connected_event_names_the_handshake_ephemeral(gk, make_client):
    """CHN-002's check compares these across a login's connections (a reused ephemeral)."""
    a, b = await make_client("a@provider.test"), await make_client("b@provider.test")
    fps = [gk.log.events(kind="connected", login=c.login)[0]["detail"]["ephemeral"] for c in (a, b)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", fp) for fp in fps)
    assert fps[0] != fps[1]
