"""The client's clock (``ClientClock``) and the harness action that moves it
(``POST /users/{user}/clock``): the time windows CHN-011, E2E-021 and CON-003 run on it."""
from __future__ import annotations

import asyncio

import pytest

from reference_impl.provider.client.clock import ClientClock

pytestmark = pytest.mark.anyio


async def test_sleep_ends_at_an_advance_that_passes_its_deadline() -> None:
    clock = ClientClock()
    sleeper = asyncio.ensure_future(clock.sleep(3600))
    await asyncio.sleep(0)
    clock.advance(1800)  # half way: still asleep
    await asyncio.sleep(0.05)
    assert not sleeper.done()
    clock.advance(1800)
    # Woken by the advance, not by real time (3600 s): the generous bound only absorbs a loaded
    # CI machine's scheduling stalls.
    await asyncio.wait_for(sleeper, 30)


async def test_sleep_also_ends_in_real_time_and_the_clock_never_goes_back() -> None:
    clock = ClientClock(offset=10)
    before = clock.time()
    await asyncio.wait_for(clock.sleep(0.05), 2)
    assert clock.time() >= before + 0.05
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError):
            clock.advance(bad)
    assert clock.offset == 10


async def test_harness_clock_action(env) -> None:
    handle, _ = await env.user(enlist=False, connect=False)
    r = await env.h.post(f"/users/{handle}/clock", json={"advance_s": 3600})
    assert r.status_code == 200 and r.json() == {"offset_s": 3600}
    r = await env.h.post(f"/users/{handle}/clock", json={"advance_s": 60})
    assert r.json() == {"offset_s": 3660}
    assert env.client(handle).state["clock_offset_s"] == 3660  # persisted with the user
    for body, status in (({"advance_s": -1}, 400), ({}, 400), ({"advance_s": "1"}, 400),
                         ({"advance_s": 10**9}, 400)):
        r = await env.h.post(f"/users/{handle}/clock", json=body)
        assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
    assert (await env.h.post("/users/nobody/clock", json={"advance_s": 1})).status_code == 404


async def test_ping_window_and_signed_pre_key_retention_follow_the_clock(env) -> None:
    handle, login = await env.user()
    carol = await env.gk.create_user("carol", consent="not_opted_in")
    ping = {"recipient": carol.id}
    assert (await env.h.post(f"/users/{handle}/reachability-ping", json=ping)).status_code == 202
    await env.h.post(f"/users/{handle}/clock", json={"advance_s": 23 * 3600})
    assert (await env.h.post(f"/users/{handle}/reachability-ping", json=ping)).status_code == 429
    await env.h.post(f"/users/{handle}/clock", json={"advance_s": 3601})
    assert (await env.h.post(f"/users/{handle}/reachability-ping", json=ping)).status_code == 202

    client = env.client(handle)
    old = client.state["spk_id"]
    await env.h.post(f"/users/{handle}/clock", json={"advance_s": 8 * 86400})
    assert (await env.h.post(f"/users/{handle}/rotate-signed-prekey")).status_code == 204
    await env.h.post(f"/users/{handle}/clock", json={"advance_s": 29 * 86400})
    client.prune_signed_pre_keys()
    assert old in client.store.signed_pre_keys  # kept 30 days after the rotation
    await env.h.post(f"/users/{handle}/clock", json={"advance_s": 2 * 86400})
    client.prune_signed_pre_keys()
    assert old not in client.store.signed_pre_keys and client.state["spk_retired"] == {}
