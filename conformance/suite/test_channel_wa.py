"""The wa binding's own rules (spec §5.3): CHN-030..CHN-035, judged on a ``--wire wa`` run only.

Every other channel requirement is written against stanza semantics and judged the same way on
both bindings (test_channel.py). These six are about bytes only the wa binding has: the
connection header, frame lengths, the payload flag, the binary-XML node, the JID form and the
``ClientPayload``. Each check brings a fresh client online and carries traffic both ways
(startup exchange, a message to a G user, a message from G), then reads the simulator's log:
the binding reports each broken rule as ``handshake_failed`` / ``protocol_error`` with the
requirement ID and the bytes' description. A connection that never authenticated (a bad header,
a payload without token) is tied to the check by its time window: the WebSocket opened while the
harness connected this client, and no other login claimed it.
"""
from __future__ import annotations

from typing import Any

import pytest

from conformance.catalog import load_catalog
from conformance.harness_client import HarnessClient, HarnessError
from conformance.verdicts import fail, not_applicable, not_tested

from .kit import Kit

requirement = pytest.mark.requirement
AREA = "channel"
#: The wa binding's rules (catalog ``wire: wa``); breaking one blocks the others' checks.
WA_RULES = frozenset(r.id for r in load_catalog() if r.wire == "wa")
_VIOLATIONS = ("handshake_failed", "protocol_error")


def _window_conns(kit: Kit, login: str, since: int) -> set[str]:
    """Connections opened since ``since`` that belong to ``login`` or to no login at all."""
    events = kit.events(since=since)
    others = {e["detail"].get("conn") for e in events if e["login"] not in (None, login)}
    return {e["detail"]["conn"] for e in events
            if e["kind"] == "ws_connected" and e["detail"]["conn"] not in others}


def _traffic(kit: Kit, harness: HarnessClient, new_user, g_user) -> tuple[Any, str, HarnessError | None]:
    """A fresh client connects and exchanges a message each way; waits end early on a close."""
    user, g = new_user(connect=False), g_user()
    try:
        harness.connect(user.handle)
    except HarnessError as exc:
        return user, "", exc
    mark = kit.mark()
    try:
        harness.send_text(user.handle, g.id, "wa binding check")
    except HarnessError as exc:
        return user, "", exc
    done = kit.within(kit.timeout(AREA), since=mark, area=AREA,
                      predicate=lambda e: (e["kind"] == "user_message" and e["detail"].get("user") == g.id)
                      or (e["login"] == user.login and e["kind"] == "disconnected"))
    if done is None or done["kind"] != "user_message":
        return user, "the client's message did not reach G's user", None
    mid = kit.call(g.send_text, user.login, "wa binding check from G")
    done = kit.within(kit.timeout(AREA), since=mark, area=AREA,
                      predicate=lambda e: e["login"] == user.login and (
                          (e["kind"] == "message_delivered" and e["detail"].get("id") == mid)
                          or e["kind"] == "disconnected"))
    if done is None or done["kind"] != "message_delivered":
        return user, "G's message was not acknowledged", None
    return user, "", None


def _judge(kit: Kit, harness: HarnessClient, new_user, g_user, rid: str, expected: str) -> None:
    if kit.gk.settings.wire != "wa":
        not_applicable(f"{rid} is a rule of the wa binding; this run uses the "
                       f"{kit.gk.settings.wire} binding (--wire wa)")
    start = kit.mark()
    user, short, err = _traffic(kit, harness, new_user, g_user)
    conns = _window_conns(kit, user.login, start)
    events = [e for e in kit.events(since=start)
              if e["kind"] in _VIOLATIONS and e["detail"].get("conn") in conns]
    mine = [e for e in events if e["detail"].get("requirement") == rid]
    if mine:
        fail(expected, "; ".join(f"{e['kind']} on {e['detail'].get('conn')}: {e['detail'].get('detail')}"
                                 for e in mine[:3]))
    if err is not None or short:
        # The client may break the rule only on its reconnection (after its back-off); a
        # connection refused before it authenticated has no login yet.
        late = kit.within(kit.timeout(AREA), since=start, area=AREA, predicate=lambda e: (
            e["kind"] in _VIOLATIONS and e["detail"].get("requirement") == rid
            and e["login"] in (user.login, None)))
        if late is not None:
            fail(expected, f"{late['kind']} on {late['detail'].get('conn')}: {late['detail'].get('detail')}")
        blocked = sorted({e["detail"].get("requirement") for e in events} & set(WA_RULES))
        why = f"harness: {err}" if err is not None else short
        not_tested(f"precondition failed: no working wa connection ({why})"
                   + (f"; blocked by {', '.join(blocked)}" if blocked else ""))
    received = kit.events(since=start, kind="stanza_received", login=user.login)
    if not received:
        fail(expected, "no stanza from the client reached G")


@requirement("CHN-030")
def test_wa_connection_header(kit: Kit, harness: HarnessClient, new_user, g_user):
    _judge(kit, harness, new_user, g_user, "CHN-030", "the connection header 'W' 'A' 6 2 first")


@requirement("CHN-031")
def test_wa_frame_lengths(kit: Kit, harness: HarnessClient, new_user, g_user):
    _judge(kit, harness, new_user, g_user, "CHN-031",
           "3-byte lengths that match each frame, whole frames per WebSocket message")


@requirement("CHN-032")
def test_wa_payload_flag(kit: Kit, harness: HarnessClient, new_user, g_user):
    _judge(kit, harness, new_user, g_user, "CHN-032",
           "a flag byte of 0 or 2, with 2 exactly when the node is deflated")


@requirement("CHN-033")
def test_wa_binary_xml_nodes(kit: Kit, harness: HarnessClient, new_user, g_user):
    _judge(kit, harness, new_user, g_user, "CHN-033",
           "well-formed binary-XML stanzas with dictionary version 2 tokens")


@requirement("CHN-034")
def test_wa_interop_jids(kit: Kit, harness: HarnessClient, new_user, g_user):
    _judge(kit, harness, new_user, g_user, "CHN-034",
           "provider users written as interop JIDs (token 245 with integrator)")


@requirement("CHN-035")
def test_wa_client_payload(kit: Kit, harness: HarnessClient, new_user, g_user):
    _judge(kit, harness, new_user, g_user, "CHN-035",
           "a ClientPayload with product INTEROP and interopData.token")
