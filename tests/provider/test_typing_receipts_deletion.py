"""The reference provider's typing indicators, aggregated read receipts and account deletion
(spec §6.5, E2E-023, CON-014), driven through the harness against the gatekeeper simulator on
loopback (TLS, WebSocket + Noise). Waits are event-driven with timeouts."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def _typing(env, handle: str, peer: str, state: str, status: int = 202) -> None:
    r = await env.h.post(f"/users/{handle}/typing", json={"peer": peer, "state": state})
    assert r.status_code == status, r.text


async def test_typing_goes_out_on_change_only(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    for state in ("composing", "composing", "composing", "paused", "paused", "composing"):
        await _typing(env, handle, bob.id, state)
    await env.gk.log.wait_for(lambda e: len(bob.chatstates) >= 3, kind="user_chatstate_received",
                              user=bob.id, timeout=10)
    assert [r.state for r in bob.chatstates] == ["composing", "paused", "composing"]
    assert all(r.sender == login for r in bob.chatstates)
    await _typing(env, handle, bob.id, "typing", 400)
    r = await env.h.post("/users/nobody/typing", json={"peer": bob.id, "state": "paused"})
    assert r.status_code == 404


async def test_no_typing_to_blocked_or_pinged_users(env) -> None:
    handle, _ = await env.user()
    blocked = await env.gk.create_user("blocked")
    shy = await env.gk.create_user("shy", consent="not_opted_in")
    ok = await env.gk.create_user("ok")
    assert (await env.h.post(f"/users/{handle}/block", json={"peer": blocked.id})).status_code == 204
    assert (await env.h.post(f"/users/{handle}/reachability-ping", json={"recipient": shy.id})).status_code == 202
    for peer in (blocked.id, shy.id, ok.id):
        await _typing(env, handle, peer, "composing")
    await env.gk.log.wait_for(kind="user_chatstate_received", user=ok.id, timeout=10)
    assert not blocked.chatstates and not shy.chatstates
    assert not env.gk.log.events(kind="stanza_received", type="chatstate", recipient=blocked.id)


async def test_g_users_typing_is_an_event_and_not_acked(env) -> None:
    handle, login = await env.user()
    bob, blocked = await env.gk.create_user("bob"), await env.gk.create_user("blocked")
    assert (await env.h.post(f"/users/{handle}/block", json={"peer": blocked.id})).status_code == 204
    await env.gk.log.wait_for(kind="blocklist_changed", login=login, timeout=10)
    assert blocked.send_chatstate(login, "composing", racing_block=True)
    assert bob.send_chatstate(login, "composing")
    await env.event(handle, "typing", peer=bob.id, state="composing")
    assert bob.send_chatstate(login, "paused")
    await env.event(handle, "typing", peer=bob.id, state="paused")
    typing = [e for e in env.app.storage.events(handle) if e["type"] == "typing"]
    assert [(e["peer"], e["state"]) for e in typing] == [(bob.id, "composing"), (bob.id, "paused")]
    assert not env.gk.log.events(kind="unexpected_answer", login=login)


async def test_read_receipt_names_one_senders_messages_in_received_order(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    mids = [bob.send_text(login, f"m{i}") for i in range(3)]
    await env.inbox_until(handle, 3)
    r = await env.h.post(f"/users/{handle}/messages", json={"to": bob.id, "kind": "text", "text": "mine"})
    own = r.json()["message_id"]
    await env.inbox_until(handle, 4)
    assert (await env.h.post(f"/users/{handle}/read",
                             json={"peer": bob.id, "message_ids": [mids[2], own, mids[0], mids[1]]})).status_code == 204
    ev = await env.gk.log.wait_for(kind="receipt", login=login, direction="from_provider",
                                   receipt="RECEIPT_TYPE_READ", timeout=10)
    assert ev["detail"]["message_ids"] == mids and ev["detail"]["recipient"] == bob.id


async def test_delete_account_says_so_and_forgets_the_user(env) -> None:
    handle, login = await env.user()
    bob = await env.gk.create_user("bob")
    bob.send_text(login, "before")
    await env.inbox_until(handle, 1)
    assert (await env.h.post(f"/users/{handle}/delete-account")).status_code == 204
    ev = await env.gk.log.wait_for(kind="deletion_requested", login=login, timeout=10)
    assert ev["detail"]["reason"] == "DELETION_REASON_ACCOUNT_DELETED"
    await env.app.wait_until(lambda: handle not in env.app.clients, 10, "the user forgotten")
    assert login not in env.gk.accounts
    assert (await env.h.get(f"/users/{handle}/inbox")).status_code == 404
    assert not env.app.storage.inbox(handle) and not env.app.storage.events(handle)


async def test_opt_out_still_says_opt_out(env) -> None:
    handle, login = await env.user()
    assert (await env.h.post(f"/users/{handle}/opt-out")).status_code == 204
    ev = await env.gk.log.wait_for(kind="deletion_requested", login=login, timeout=10)
    assert ev["detail"]["reason"] == "DELETION_REASON_OPT_OUT"
    assert handle in env.app.clients  # the provider account stays
