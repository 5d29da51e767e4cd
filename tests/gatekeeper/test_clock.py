"""``gk.clock``: one controllable clock for everything the simulator judges by time (issue 13),
exercised over real loopback enlistment and chat channel."""
from __future__ import annotations

import math

import jwt
import pytest

from conformance.gatekeeper.clock import SimClock
from reference_impl.wire import stanzas_pb2 as pb

pytestmark = pytest.mark.anyio
DAY = 86_400


def test_clock_only_moves_forward_and_reports_it() -> None:
    seen: list[tuple[float, float]] = []
    wall = [1000.0]
    c = SimClock(lambda: wall[0], on_advance=lambda s, o: seen.append((s, o)))
    assert c() == 1000.0 and c.now_ms() == 1_000_000
    assert c.advance(60) == 1060.0 and c.offset == 60
    wall[0] = 1001.0  # the wall source is re-read: advancing adds to it
    assert c() == 1061.0
    for bad in (-1, math.nan):
        with pytest.raises(ValueError):
            c.advance(bad)
    assert seen == [(60, 60)]


async def test_advance_is_logged_and_stamps_what_g_sends(gk, make_client):
    c = await make_client()
    before = gk.now_ms()
    gk.clock.advance(7 * DAY)
    ev = await gk.log.wait_for(kind="clock_advanced", timeout=1)
    assert ev["detail"] == {"seconds": 7 * DAY, "offset": 7 * DAY}
    assert gk.now_ms() - before >= 7 * DAY * 1000
    ack = await c.request(pb.Stanza(ping=pb.Ping()))
    assert ack.WhichOneof("body") == "pong"
    g = await gk.create_user("bob")
    mid = g.send_text(c.login, "from the future")
    got = await c.next_inbound("message")
    assert got.id == mid and got.message.timestamp_ms - before >= 7 * DAY * 1000
    claims = jwt.decode(gk.keys.push_token(issuer="i", audience="a", subject="s",
                                           now=gk.clock(), lifetime_s=60),
                        options={"verify_signature": False})
    assert claims["iat"] >= before // 1000 + 7 * DAY


async def test_thirty_days_without_a_connection_unenlist(gk, make_client, provider):
    c = await make_client(connect=False)
    gk.clock.advance(31 * DAY)
    now = int(gk.clock())
    c.token = provider.token(c.sub, gk.config_for_provider()["audience"], iat=now, exp=now + 60)
    err = await c.connect()
    assert err is not None and err.error.code == pb.ERROR_CODE_UN_ENLISTED
    ev = await gk.log.wait_for(kind="handshake_failed", timeout=1)
    assert ev["detail"]["requirement"] == "CON-011"
    assert c.login not in gk.accounts


async def test_user_tokens_are_judged_by_the_simulator_clock(gk, make_client):
    c = await make_client(connect=False)
    gk.clock.advance(2 * 3600)  # the provider's token (1 h lifetime) is now expired for G
    err = await c.connect()
    assert err is not None and err.error.code == pb.ERROR_CODE_BAD_TOKEN


async def test_mailbox_retention_follows_the_clock(gk, make_client, provider):
    c = await make_client()
    g = await gk.create_user("bob")
    await c.close()
    await gk.log.wait_for(kind="disconnected", login=c.login, timeout=5)
    g.send_text(c.login, "old news")
    await gk.log.wait_for(kind="queued", login=c.login, timeout=5)
    gk.clock.advance(29 * DAY)  # within 30 days: still enlisted, mailbox still held
    gk.accounts[c.login].last_seen = gk.clock()
    gk.clock.advance(2 * DAY)
    now = int(gk.clock())
    c.token = provider.token(c.sub, gk.config_for_provider()["audience"], iat=now, exp=now + 600)
    assert await c.connect() is None
    ev = await gk.log.wait_for(kind="mailbox_expired", login=c.login, timeout=1)
    # the message, and the low_pre_keys notice G queued when bob took the last bundle
    assert ev["detail"]["count"] >= 1 and gk.mailbox.count(c.login) == 0


async def test_age_offline_moves_one_logins_time_only(gk, make_client, provider):
    """``script.age_offline``: the 30-day rules judge one offline login as if the clock had
    advanced, while the shared clock and every other login stay where they were."""
    c, other = await make_client(), await make_client("carol@provider.test")
    g = await gk.create_user("bob")
    await c.close()
    await gk.log.wait_for(kind="disconnected", login=c.login, timeout=5)
    with pytest.raises(ValueError):
        gk.script.age_offline(other.login, DAY)  # connected: refused
    before = gk.now_ms()
    mid = g.send_text(c.login, "queued long ago")
    await gk.log.wait_for(kind="queued", login=c.login, timeout=5)
    offset = gk.clock.offset
    assert gk.script.age_offline(c.login, 29 * DAY) >= 1
    assert gk.clock.offset == offset  # the shared clock did not move
    ack = await other.request(pb.Stanza(ping=pb.Ping()))
    assert ack.WhichOneof("body") == "pong"
    c.token = provider.token(c.sub, gk.config_for_provider()["audience"])
    assert await c.connect() is None  # 29 days: still enlisted, mailbox delivered
    got = await c.next_inbound("message")
    assert got.id == mid and before - got.message.timestamp_ms >= 29 * DAY * 1000 - 1000
    mark = gk.log.mark()
    await c.close()
    await gk.log.wait_for(kind="disconnected", login=c.login, timeout=5, since=mark)
    gk.script.age_offline(c.login, 31 * DAY)
    err = await c.connect()
    assert err is not None and err.error.code == pb.ERROR_CODE_UN_ENLISTED
    assert other.login in gk.accounts and c.login not in gk.accounts
    with pytest.raises(ValueError):
        gk.script.age_offline(c.login, -1)
