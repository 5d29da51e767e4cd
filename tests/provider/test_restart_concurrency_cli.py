"""Restart (the conversation continues with nothing lost), 50 concurrent users (exactly once,
in per-sender order), and the ``serve-reference`` command (ready line, clean shutdown)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from conftest import register, start_env, stop_env
from reference_impl.provider import ReferenceProvider

pytestmark = pytest.mark.anyio


async def test_restart_mid_conversation_loses_nothing(tmp_path) -> None:
    env = await start_env(tmp_path)
    try:
        handle, login = await env.user()
        bob = await env.gk.create_user("bob")
        for i in range(3):
            r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": f"a{i}"})
            await bob.next_message(lambda m, mid=r.json()["message_id"]: m.message_id == mid)
        sent_before = [bob.send_text(login, f"b{i}") for i in range(3)]
        await env.inbox_until(handle, 6)
        port = int(env.provider.target_url.rsplit(":", 1)[1])
        data_dir = env.provider.data_dir
        # kill the provider mid-conversation: messages keep arriving at G while it is down
        await env.app.stop_clients()
        await env.app.close_http()
        await env.provider.stop()
        await env.gk.log.wait_for(lambda e: not env.gk.is_connected(login) or None, 10)
        while_down = [bob.send_text(login, f"c{i}") for i in range(3)]
        p2 = ReferenceProvider()
        await p2.start(tls=True, data_dir=data_dir, port=port)
        env.provider = p2
        env.h = httpx.AsyncClient(base_url=p2.harness_url, timeout=30)
        assert handle in p2.app.clients  # the user, its keys and sessions are back
        # the client reconnects by itself (it was online) and fetches its mailbox
        items = await env.inbox_until(handle, 9, timeout=20)
        received = [i["message_id"] for i in items if i["sender"] == bob.id]
        assert received == sent_before + while_down
        r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": "d"})
        mid = r.json()["message_id"]
        msg = await bob.next_message(lambda m: m.message_id == mid)
        assert msg.type == "msg"  # the old session continues
        assert len([i for i in (await env.h.get(f"/users/{handle}/inbox")).json()["items"]]) == 10
    finally:
        await stop_env(env)


async def test_fifty_users_exactly_once_in_order(tmp_path) -> None:
    env = await start_env(tmp_path)
    n_users, n_msgs = 50, 4
    try:
        users = await asyncio.gather(*(env.user() for _ in range(n_users)))
        peers = await asyncio.gather(*(env.gk.create_user(f"g{i}") for i in range(n_users)))

        async def provider_sends(i: int) -> list[str]:
            handle, _ = users[i]
            ids = []
            for k in range(n_msgs):
                r = await env.h.post(f"/users/{handle}/messages",
                                     json={"to": peers[i].id, "kind": "text", "text": f"{i}:{k}"})
                assert r.status_code == 202
                ids.append(r.json()["message_id"])
            return ids

        sent = await asyncio.gather(*(provider_sends(i) for i in range(n_users)))
        g_sent = [[peers[i].send_text(users[i][1], f"g{i}:{k}") for k in range(n_msgs)]
                  for i in range(n_users)]

        def all_in() -> bool:
            return all(len([m for m in peers[i].inbox if m.kind == "conversation"]) >= n_msgs
                       for i in range(n_users))
        await env.gk.log.wait_for(lambda e: all_in() or None, 60)
        for i in range(n_users):
            got = [m.message_id for m in peers[i].inbox if m.kind == "conversation"]
            assert got == sent[i]
            assert [m.content.conversation for m in peers[i].inbox] == [f"{i}:{k}" for k in range(n_msgs)]
        for i in range(n_users):
            items = await env.inbox_until(users[i][0], 2 * n_msgs, timeout=60)
            incoming = [x["message_id"] for x in items if x["sender"] == peers[i].id]
            assert incoming == g_sent[i]
    finally:
        await stop_env(env)


async def test_serve_reference_command(tmp_path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conformance.cli", "serve-reference", "--tls", "--fault", "no_pong",
        "--data-dir", str(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        ready = json.loads(line)
        assert ready["target_url"].startswith("https://") and ready["faults"] == ["no_pong"]
        import ssl
        ctx = ssl.create_default_context(cafile=ready["ca_certificate"])
        async with httpx.AsyncClient(verify=ctx, http2=True) as c:
            r = await c.get(ready["target_url"] + "/health")
            assert r.status_code == 200 and r.http_version == "HTTP/2"
        async with httpx.AsyncClient() as c:
            assert (await c.get(ready["harness_url"] + "/info")).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_unknown_fault_exits_2() -> None:
    r = subprocess.run([sys.executable, "-m", "conformance.cli", "serve-reference", "--fault", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "nope" in r.stderr
