"""Consent, integrity and safety (spec §8): reachability pings, consent states and
notifications, blocking, deletion on opt-out, rate limiting, re-enlistment and the
undisclosed block (CON-001..CON-011, CON-013).

Almost everything here is provider-client behaviour, so the checks drive the client through the
harness and judge it by what the gatekeeper simulator saw on the chat channel (``stanza_received``,
``error_sent``, ``acked``, ``enlisted``, ``handshake_failed`` ... in ``gk.log``), and by what the
client surfaced (harness ``inbox`` / ``events``). The simulator's consent states, scripted errors
(``gk.script``) and simulated users make G do what the requirement reacts to.

Approach and its limits:
- "MUST NOT send X" is judged after a positive marker that must come later (the acknowledgement
  of a notification, a later message delivered to another user); where a client may
  legitimately hold a message back and send it late, a quiet period of at most 2 s follows
  (a bounded ``wait_event`` that must time out).
- A client may refuse an action locally: the harness answers 409 (``.../not-opted-in``,
  ``.../blocked``); that is accepted wherever the requirement only forbids sending.
- Minimum delays (CON-010) are measured between simulator event timestamps (``t``, ms): the gap
  G observes includes both network legs, so it is never shorter than the gap the client kept.
- Handshakes G refuses for an unknown ``authkey`` cannot be tied to a login (G never learnt
  one); they are attributed to the client under test by time window, while the kit drives only
  that client (CON-008, CON-011).
- CON-009 (media deletion, provider server) has no event to wait on: the kit fetches the blob as
  G would, at most every 0.5 s, bounded by the requirement's 60 s (+2 s slack).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from conformance.gatekeeper import SimUser
from conformance.harness_client import HarnessClient, HarnessError
from conformance.verdicts import fail, not_tested
from reference_impl.wire import stanzas_pb2 as pb

from .clock import advance_client_clock
from .kit import PROVIDER_ID, Kit, ProviderUser

requirement = pytest.mark.requirement
#: Part of the verdict rests on the provider harness' word (inbox, events) alone.
harness_attested = pytest.mark.harness_attested
AREA = "consent"
#: The spec's network slack on top of every time limit (§2).
SLACK_S = 2.0
#: Longest quiet period a check waits to see that something does not happen.
QUIET_S = 2.0
Event = dict[str, Any]


# -- waiting on the simulator --------------------------------------------------------------------
def _stanza(kind: str, login: str, **fields: Any) -> Callable[[Event], bool]:
    """A stanza of ``kind`` the client of ``login`` sent; each field value may be a tuple of
    accepted values, or a string that must be in a list field."""
    def pred(e: Event) -> bool:
        if e["kind"] != "stanza_received" or e["login"] != login or e["detail"].get("type") != kind:
            return False
        for k, want in fields.items():
            have = e["detail"].get(k)
            if isinstance(have, list):
                if want not in have:
                    return False
            elif isinstance(want, tuple):
                if have not in want:
                    return False
            elif have != want:
                return False
        return True
    pred.__name__ = f"{kind} stanza from {login}" + (f" with {fields}" if fields else "")
    return pred


def _to_user(login: str, g: SimUser) -> Callable[[Event], bool]:
    """A ``message`` or ``key_fetch`` stanza for the G user ``g``."""
    ids = (g.id, g.phone)

    def pred(e: Event) -> bool:
        if e["kind"] != "stanza_received" or e["login"] != login:
            return False
        d = e["detail"]
        return ((d.get("type") == "message" and d.get("recipient") in ids)
                or (d.get("type") == "key_fetch" and d.get("user") in ids))
    pred.__name__ = f"message or key_fetch for {g.id} from {login}"
    return pred


def _message_to(login: str, g: SimUser) -> Callable[[Event], bool]:
    return _stanza("message", login, recipient=(g.id, g.phone))


def _describe(e: Event) -> str:
    d = e["detail"]
    keys = ("type", "id", "recipient", "user", "code", "add", "remove", "reason", "detail")
    return f"{e['kind']} at t={e['t']} ms " + ", ".join(f"{k}={d[k]!r}" for k in keys if d.get(k))


def _notify(kit: Kit, login: str, action: Callable[[], Any]) -> str:
    """Run a simulator action on its loop; the id of the notification it queued for ``login``."""
    def run() -> list[str]:
        start = kit.gk.log.mark()
        action()
        return [e["detail"]["id"] for e in kit.gk.log.events(since=start, kind="queued", login=login,
                                                               type="notification")]
    ids = kit.call(run, area=AREA)
    if not ids:
        raise RuntimeError(f"the simulator queued no notification for {login}")
    return ids[-1]


def _acked(kit: Kit, login: str, stanza_id: str, since: int, what: str) -> Event:
    """The client's ack of a G stanza, needed as a marker; without it the check cannot judge."""
    try:
        return kit.wait_event(area=AREA, since=since, kind="acked", login=login, id=stanza_id)
    except TimeoutError:
        not_tested(f"the client did not acknowledge the {what} (CHN-007), so the kit cannot tell "
                   "when it was received")
        raise AssertionError("unreachable") from None


def _session_with(kit: Kit, harness: HarnessClient, u: ProviderUser, g: SimUser) -> str:
    """The provider user sends a first message to ``g`` and ``g`` receives it: from then on the
    client holds a Signal session, so later content to ``g`` goes out as a ``message`` stanza."""
    start = kit.mark()
    try:
        mid = harness.send_text(u.handle, g.id, "hello " + kit.unique("s"))
    except HarnessError as exc:
        fail("a message to an opted-in G user accepted (precondition)", str(exc))
    kit.expect(f"the first message reaches the opted-in G user {g.id}", since=start,
               kind="user_message", user=g.id, id=mid, area=AREA)
    return mid


def _block(harness: HarnessClient, u: ProviderUser, g: SimUser) -> None:
    """The user blocks ``g`` (effective on the client at once; the stanza is CON-005's matter)."""
    try:
        harness.block(u.handle, g.id)
    except HarnessError as exc:
        fail("the harness block action accepted (204)", str(exc))


# -- the harness view ----------------------------------------------------------------------------
def _refused(exc: HarnessError, *kinds: str) -> bool:
    """A local refusal by the client: 409 with one of the problem types ``kinds``."""
    return exc.status == 409 and any(exc.type.rstrip("/").endswith("/" + k) for k in kinds)


def _events(harness: HarnessClient, u: ProviderUser, after: int = 0) -> list[dict[str, Any]]:
    try:
        return harness.events(u.handle, after)
    except HarnessError as exc:
        fail("the harness events resource (200)", str(exc))
        raise AssertionError("unreachable") from None


def _inbox(harness: HarnessClient, u: ProviderUser) -> list[dict[str, Any]]:
    try:
        return harness.inbox(u.handle)
    except HarnessError as exc:
        fail("the harness inbox resource (200)", str(exc))
        raise AssertionError("unreachable") from None


def _last_seq(harness: HarnessClient, u: ProviderUser) -> int:
    evs = _events(harness, u)
    return max((int(e.get("seq", 0)) for e in evs), default=0)


def _failure_report(harness: HarnessClient, u: ProviderUser, mid: str) -> dict | None:
    """The failure report of message ``mid``: a ``send_failed`` event, or the message shown
    with status ``failed`` (both are "surfaced to its user")."""
    for e in _events(harness, u):
        if e.get("type") == "send_failed" and e.get("message_id") == mid:
            return e
    for item in _inbox(harness, u):
        if item.get("message_id") == mid and item.get("status") == "failed":
            return item
    return None


def _reported_failed(kit: Kit, harness: HarnessClient, u: ProviderUser, mid: str) -> dict | None:
    return (kit.poll(
        lambda: _failure_report(harness, u, mid),
        login=u.login,
        timeout=kit.timeout(AREA),
        area=AREA,
        step=0.25,
    ) or None)


# -- CON-001 / CON-003: reachability pings ---------------------------------------------------------
def _opted_out_contact(kit: Kit, harness: HarnessClient, u: ProviderUser, g: SimUser) -> None:
    """``g`` wrote to the provider user (the client holds a session with ``g``), then excluded
    this provider; returns once the client acknowledged the ``consent_revoked``."""
    start = kit.mark()
    mid = kit.call(g.send_text, u.login, "hi from " + g.name, area=AREA)
    kit.expect("the client acknowledges a message from a G user", since=start,
               kind="message_delivered", login=u.login, id=mid, area=AREA)
    start = kit.mark()
    nid = _notify(kit, u.login, lambda: kit.gk.script.revoke_consent(g, PROVIDER_ID))
    _acked(kit, u.login, nid, start, "consent_revoked notification")


@requirement("CON-001")
def test_reachability_ping_is_sent_and_no_message_before_consent(kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user()
    _opted_out_contact(kit, harness, u, g)
    start = kit.mark()
    try:
        harness.reachability_ping(u.handle, g.id)
    except HarnessError as exc:
        fail("the user's request to reach the G user accepted (202)", str(exc))
    kit.expect(f"a reachability_ping stanza naming {g.id}",
               _stanza("reachability_ping", u.login, recipient=(g.id, g.phone)), since=start,
                   area=AREA)
    try:
        mid = harness.send_text(u.handle, g.id, "are you there?")
    except HarnessError as exc:
        if not _refused(exc, "not-opted-in"):
            fail("before consent: the send refused locally (409 .../not-opted-in) or accepted "
                 "and held back", str(exc))
        mid = None
    # A client that accepted the send may hold it until consent: it must not go out meanwhile.
    sent = kit.within(QUIET_S if mid else 0, _message_to(u.login, g), since=start, area=AREA)
    if sent is not None:
        fail(f"no message stanza to {g.id} before G reports consent (none was reported)",
             _describe(sent))


@requirement("CON-003")
def test_second_reachability_ping_within_24h_is_not_sent(kit: Kit, harness, new_user, g_user):
    _second_ping_within_24h(kit, harness, new_user(), g_user("not_opted_in"), later_s=0)


#: CON-003 on the client's clock: the second request comes 23 h 50 min after the first ping.
PING_AGAIN_AFTER_S = 24 * 3600 - 600


@requirement("CON-003")
def test_second_reachability_ping_23h50_later_is_not_sent(kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user("not_opted_in")
    advance_client_clock(harness, u, 0, "CON-003's 24 h between reachability pings")
    _second_ping_within_24h(kit, harness, u, g, later_s=PING_AGAIN_AFTER_S)


def _second_ping_within_24h(kit: Kit, harness: HarnessClient, u: ProviderUser, g: SimUser, *,
                            later_s: float) -> None:
    """A first ping goes out; ``later_s`` seconds later on the client's clock the user asks
    again: refused (429) or accepted, no second ``reachability_ping`` may reach G."""
    start = kit.mark()
    try:
        harness.reachability_ping(u.handle, g.id)
    except HarnessError as exc:
        not_tested(f"the first reachability ping was not accepted: {exc}")
    ping = _stanza("reachability_ping", u.login, recipient=(g.id, g.phone))
    first = kit.expect(f"a first reachability_ping stanza naming {g.id}", ping, since=start,
                       area=AREA)
    if later_s:
        advance_client_clock(harness, u, later_s, "CON-003's 24 h between reachability pings")
    try:
        harness.reachability_ping(u.handle, g.id)
        accepted = True
    except HarnessError as exc:
        if exc.status != 429:
            fail("a repeated ping suppressed (429 .../rate-limited) or accepted without a stanza",
                 str(exc))
        accepted = False
    again = kit.within(QUIET_S if accepted else 0, ping, since=first["seq"] + 1, area=AREA)
    if again is not None:
        when = f"{later_s / 3600:g} h of client time and " if later_s else ""
        fail(f"at most one reachability_ping to {g.id} within 24 hours",
             f"a second one {when}{again['t'] - first['t']:.0f} ms after the first")


# -- CON-002: not opted in -------------------------------------------------------------------------
@harness_attested
@requirement("CON-002")
def test_not_opted_in_is_reported_and_not_resent(kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user("not_opted_in")
    start = kit.mark()
    try:
        mid = harness.send_text(u.handle, g.id, "hello?")
    except HarnessError as exc:
        if _refused(exc, "not-opted-in"):
            not_tested("the client refused the send locally, so G's not_opted_in error never came")
        fail("the send accepted (202) or refused locally (409 .../not-opted-in)", str(exc))
    err = kit.expect(f"the client asks G for {g.id} (key_fetch or message) and gets not_opted_in",
                     since=start, kind="error_sent", login=u.login, code="not_opted_in", area=AREA)
    if _reported_failed(kit, harness, u, mid) is None:
        fail(f"message {mid} reported as failed (send_failed event or status failed)",
             f"not within {kit.timeout(AREA):g} s of the not_opted_in error")
    again = kit.within(QUIET_S, _to_user(u.login, g), since=err["seq"] + 1, area=AREA)
    if again is not None:
        fail(f"no automatic resend: no further message or key_fetch for {g.id} without a new "
             "send or consent_granted", _describe(again))


# -- CON-004: consent revoked ----------------------------------------------------------------------
@harness_attested
@requirement("CON-004")
def test_consent_revoked_stops_queued_and_new_messages_and_is_surfaced(kit: Kit, harness, new_user,
                                                                       g_user):
    u, g = new_user(), g_user()
    _session_with(kit, harness, u, g)
    start = kit.mark()
    try:
        harness.disconnect(u.handle, wake_on_push=False)
    except HarnessError as exc:
        fail("the harness disconnect action accepted (204)", str(exc))
    kit.expect("the client's connection closed", since=start, kind="disconnected", login=u.login,
               area=AREA)
    cursor = _last_seq(harness, u)
    try:  # queued while offline, before the notification (a client may refuse offline sends)
        harness.send_text(u.handle, g.id, "queued while offline")
    except HarnessError:
        pass
    nid = _notify(kit, u.login, lambda: kit.gk.script.revoke_consent(g))
    start = kit.mark()
    try:
        harness.connect(u.handle)
    except HarnessError as exc:
        fail("the client reconnects (204)", str(exc))
    ack = _acked(kit, u.login, nid, start, "consent_revoked notification")
    try:
        harness.send_text(u.handle, g.id, "after the revocation")
    except HarnessError as exc:
        if not _refused(exc, "not-opted-in"):
            fail("the send refused locally (409 .../not-opted-in) or accepted and held back", str(exc))

    def surfaced() -> dict | None:
        return next((e for e in _events(harness, u, cursor) if e.get("type") == "consent_changed"
                     and e.get("peer") in (g.id, g.phone) and e.get("consent") == "revoked"), None)
    if (kit.poll(surfaced, login=u.login, timeout=kit.timeout(AREA), area=AREA,
                 step=0.25) or None) is None:
        fail(f"a consent_changed event for {g.id} with consent revoked",
             f"none within {kit.timeout(AREA):g} s of the acknowledgement")
    sent = kit.within(QUIET_S, _message_to(u.login, g), since=ack["seq"] + 1, area=AREA)
    if sent is not None:
        fail(f"no message stanza to {g.id} after its consent_revoked (queued or new)", _describe(sent))


# -- CON-005: blocking -----------------------------------------------------------------------------
@requirement("CON-005")
def test_block_and_unblock_send_blocklist_set_within_10_s(kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user()
    for action, field in (("block", "add"), ("unblock", "remove")):
        start, t0 = kit.mark(), time.monotonic()
        try:
            getattr(harness, action)(u.handle, g.id)
        except HarnessError as exc:
            fail(f"the harness {action} action accepted (204)", str(exc))
        left = 10 + SLACK_S - (time.monotonic() - t0)
        kit.expect(f"a blocklist_set stanza with {g.id} in `{field}` within 10 s of the {action}",
                   _stanza("blocklist_set", u.login, **{field: g.id}), since=start,
                       timeout=max(left, 0.1), area=AREA)


@requirement("CON-005")
def test_unacknowledged_blocklist_set_is_retried_after_reconnection(kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user()
    kit.call(kit.gk.script.fail_next, u.login, "internal", kind="blocklist_set", area=AREA)
    start = kit.mark()
    try:
        harness.block(u.handle, g.id)
    except HarnessError as exc:
        fail("the harness block action accepted (204)", str(exc))
    add = _stanza("blocklist_set", u.login, add=g.id)
    first = kit.expect(f"a blocklist_set stanza adding {g.id}", add, since=start,
                       timeout=10 + SLACK_S, area=AREA)
    kit.expect("G's scripted internal error", since=first["seq"], kind="error_sent", login=u.login,
               code="internal", id=first["detail"]["id"], area=AREA)
    kit.call(kit.gk.script.force_offline, u.login, area=AREA)  # a reconnection to retry after
    retry = kit.expect(f"the blocklist_set adding {g.id} sent again (G did not acknowledge it)",
                       add,
                       since=first["seq"] + 1, area=AREA)
    # Not an error this time: G acknowledges; nothing more is asked of the client.
    kit.expect("G's ack of the retried blocklist_set", since=retry["seq"], kind="blocklist_changed",
               login=u.login, area=AREA)


@requirement("CON-005")
def test_block_while_offline_is_sent_on_reconnection(kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user()
    start = kit.mark()
    try:
        harness.disconnect(u.handle, wake_on_push=False)
    except HarnessError as exc:
        fail("the harness disconnect action accepted (204)", str(exc))
    kit.expect("the client's connection closed", since=start, kind="disconnected", login=u.login,
               area=AREA)
    try:
        harness.block(u.handle, g.id)
    except HarnessError as exc:
        not_tested(f"the client does not accept a block while offline: {exc}")
    start = kit.mark()
    try:
        harness.connect(u.handle)
    except HarnessError as exc:
        fail("the client reconnects (204)", str(exc))
    kit.expect(f"after reconnecting, a blocklist_set adding {g.id} (blocked while offline)",
               _stanza("blocklist_set", u.login, add=g.id), since=start, timeout=10 + SLACK_S,
                   area=AREA)


# -- CON-006: blocklist synchronisation --------------------------------------------------------------
@harness_attested
@requirement("CON-006")
def test_blocklist_is_read_before_the_first_message_and_applied(kit: Kit, harness, new_user, g_user):
    u = new_user(connect=False)
    listed, local, other = g_user(), g_user(), g_user()
    kit.call(kit.gk.script.seed_blocklist, u.login, listed.id, area=AREA)
    start = kit.mark()
    try:
        harness.connect(u.handle)
    except HarnessError as exc:
        fail("the client connects (204)", str(exc))
    _block(harness, u, local)
    try:
        harness.send_text(u.handle, other.id, "first message")
    except HarnessError as exc:
        fail("a message to an opted-in G user accepted", str(exc))
    first_msg = kit.expect("the first message stanza", since=start, kind="stanza_received",
                           login=u.login, type="message", area=AREA)
    read = [e for e in kit.events(since=start, kind="stanza_received", login=u.login, type="blocklist_get")]
    if not read or read[0]["seq"] > first_msg["seq"]:
        fail("a blocklist_get stanza after the enlistment and before the first message stanza",
             "blocklist_get after the first message" if read else "no blocklist_get at all")
    # Applied as blocked: the user from G's answer is treated like one the user blocked here.
    mark = kit.mark()
    from_listed = kit.call(listed.send_text, u.login, "from the listed user", area=AREA)
    from_local = kit.call(local.send_text, u.login, "from the locally blocked user", area=AREA)
    marker = kit.call(other.send_text, u.login, "marker", area=AREA)
    for mid in (from_listed, from_local, marker):
        kit.expect("the client acknowledges each incoming message", since=mark,
                   kind="message_delivered", login=u.login, id=mid, area=AREA)

    def shown() -> set[str] | None:
        ids = {str(i.get("message_id")) for i in _inbox(harness, u)}
        return ids if marker in ids else None
    ids = (kit.poll(shown, login=u.login, timeout=kit.timeout(AREA), area=AREA, step=0.25) or None)
    if ids is None:
        not_tested("the marker message from an unblocked user was never surfaced")
    if from_listed in ids and from_local not in ids:
        fail(f"{listed.id}, blocked in G's blocklist answer, treated as blocked (like a user "
             "blocked on the client)", "its message was surfaced; the locally blocked user's was not")


# -- CON-007: blocked users ------------------------------------------------------------------------
@harness_attested
@requirement("CON-007")
def test_nothing_from_a_blocked_user_is_surfaced(kit: Kit, harness, new_user, g_user):
    u, g, other = new_user(), g_user(), g_user()
    kit.call(g.set_auto_receipts, delivery=False, area=AREA)
    mine = _session_with(kit, harness, u, g)
    _block(harness, u, g)
    cursor = _last_seq(harness, u)
    start = kit.mark()
    text = kit.call(g.send_text, u.login, "from a blocked user", area=AREA)
    kit.call(g.send_reaction, u.login, mine, u.login, "\U0001F44D", area=AREA)
    receipt = kit.call(g.send_receipt, u.login, "read", [mine], area=AREA)
    marker = kit.call(other.send_text, u.login, "marker", area=AREA)
    kit.expect("the client acknowledges the receipt", since=start, kind="acked", login=u.login,
               id=receipt, area=AREA)
    kit.expect("the client acknowledges the marker message", since=start,
               kind="message_delivered", login=u.login, id=marker, area=AREA)

    def shown() -> list[dict[str, Any]] | None:
        items = _inbox(harness, u)
        return items if any(i.get("message_id") == marker for i in items) else None
    items = (kit.poll(shown, login=u.login, timeout=kit.timeout(AREA), area=AREA,
                      step=0.25) or None)
    if items is None:
        not_tested("the marker message from an unblocked user was never surfaced")
    problems = []
    if any(i.get("message_id") == text for i in items):
        problems.append("the blocked user's message is in the inbox")
    own: dict[str, Any] = next((i for i in items if i.get("message_id") == mine), {})
    if any(r.get("sender") in (g.id, g.phone) for r in own.get("reactions") or []):
        problems.append("the blocked user's reaction is shown")
    if own.get("status") == "read":
        problems.append("the blocked user's read receipt changed the message status to read")
    for e in _events(harness, u, cursor):
        if e.get("type") == "receipt" and (e.get("peer") in (g.id, g.phone)
                                           or e.get("participant") in (g.id, g.phone)):
            problems.append(f"a receipt event from the blocked user: {e}")
    if problems:
        fail(f"no message, reaction or receipt from the blocked {g.id} surfaced", "; ".join(problems))


@requirement("CON-007")
def test_no_read_receipt_to_a_blocked_user(kit: Kit, harness, new_user, g_user):
    u, g, other = new_user(), g_user(), g_user()
    start = kit.mark()
    theirs = kit.call(g.send_text, u.login, "read me", area=AREA)
    marker = kit.call(other.send_text, u.login, "read me too", area=AREA)
    for mid in (theirs, marker):
        kit.expect("the client acknowledges each incoming message", since=start,
                   kind="message_delivered", login=u.login, id=mid, area=AREA)
    _block(harness, u, g)
    start = kit.mark()
    try:
        harness.read(u.handle, g.id, [theirs])
    except HarnessError as exc:
        if exc.status != 409:
            fail("marking read accepted (204) or refused locally (409)", str(exc))
    try:
        harness.read(u.handle, other.id, [marker])
    except HarnessError as exc:
        fail("marking a message of an unblocked user read accepted (204)", str(exc))

    def read_receipt(to: SimUser) -> Callable[[Event], bool]:
        return lambda e: (e["detail"].get("direction") == "from_provider"
                          and e["detail"].get("receipt") == "RECEIPT_TYPE_READ"
                          and e["detail"].get("recipient") in (to.id, to.phone))
    # The marker proves the client does send read receipts; a client that sends none at all
    # keeps CON-007 (E2E-015 judges that), so its absence makes this check NOT_TESTED.
    if kit.within(kit.timeout(AREA), read_receipt(other), since=start, kind="receipt",
                  login=u.login, area=AREA) is None:
        not_tested("precondition failed: no read receipt to an unblocked user either (see E2E-015)")
    sent = kit.within(QUIET_S / 2, read_receipt(g), since=start, kind="receipt", login=u.login,
                      area=AREA)
    if sent is not None:
        fail(f"no read receipt to the blocked {g.id}", _describe(sent))


@requirement("CON-007")
def test_no_message_to_a_blocked_user(kit: Kit, harness, new_user, g_user):
    u, g, other = new_user(), g_user(), g_user()
    _session_with(kit, harness, u, g)
    _block(harness, u, g)
    start = kit.mark()
    try:
        harness.send_text(u.handle, g.id, "while blocked")
    except HarnessError as exc:
        if not _refused(exc, "blocked"):
            fail("the send refused locally (409 .../blocked) or accepted and not sent", str(exc))
    try:
        marker = harness.send_text(u.handle, other.id, "marker")
    except HarnessError as exc:
        fail("a message to an unblocked G user accepted", str(exc))
    kit.expect("the marker message reaches the unblocked user", since=start, kind="user_message",
               user=other.id, id=marker, area=AREA)
    sent = kit.within(QUIET_S / 2, _message_to(u.login, g), since=start, area=AREA)
    if sent is not None:
        fail(f"no message stanza to the blocked {g.id} while the block lasts", _describe(sent))


# -- CON-008: deletion on opt-out ------------------------------------------------------------------
def _keys_of(kit: Kit, login: str) -> tuple[bytes, bytes, bytes]:
    def get() -> tuple[bytes, bytes, bytes]:
        a = kit.gk.accounts[login]
        return a.authkey, a.identity_key.serialize(), a.signed_pre_key.serialize()
    return kit.call(get, area=AREA)


def _login_retired(kit: Kit, harness, u: ProviderUser, g: SimUser, old_keys: tuple[bytes, bytes, bytes],
                   again_expected: str) -> None:
    """After G deleted ``u``'s login: the user tries to go online and to send again, and the
    old login and keys stay unused (CON-008, CON-014). A harness that no longer knows the user
    may refuse both actions."""
    after = kit.mark()
    for action in (lambda: harness.connect(u.handle),
                   lambda: harness.send_text(u.handle, g.id, "after the deletion")):
        try:
            action()
        except HarnessError:
            pass
    kit.within(0.5, lambda e: e["kind"] in ("stanza_received", "handshake_failed"), since=after,
               area=AREA)
    events = kit.events(since=after)
    used = [e for e in events if e["login"] == u.login and e["kind"] in ("connected", "stanza_received")]
    refused = [e for e in events if e["kind"] == "handshake_failed" and e["login"] is None
               and e["detail"].get("reason") == "un_enlisted"]
    if used or refused:
        fail(f"no connection or stanza with the deleted login {u.login} or its authkey",
             "; ".join(_describe(e) for e in (used + refused)[:3]))

    def reused() -> list[str]:
        return [a.login for a in kit.gk.accounts.values()
                if a.authkey == old_keys[0] or a.identity_key.serialize() == old_keys[1]
                or a.signed_pre_key.serialize() == old_keys[2]]
    again = kit.call(reused, area=AREA)
    if again:
        fail(again_expected, f"enlisted again as {again} with the deleted authkey or enlisted keys")


def _deletion_retried(kit: Kit, u: ProviderUser, start_deletion: Callable[[], None], action: str) -> Event:
    """G fails the first deletion request with ``internal`` and drops the connection: the
    client sends it again until G acknowledges it. Returns the retried request."""
    kit.call(kit.gk.script.fail_next, u.login, "internal", kind="deletion_request", area=AREA)
    start = kit.mark()
    try:
        start_deletion()
    except HarnessError as exc:
        fail(f"the harness {action} action accepted (204)", str(exc))
    deletion = _stanza("deletion_request", u.login)
    first = kit.expect("a deletion_request stanza", deletion, since=start, area=AREA)
    kit.expect("G's scripted internal error", since=first["seq"], kind="error_sent", login=u.login,
               code="internal", id=first["detail"]["id"], area=AREA)
    kit.call(kit.gk.script.force_offline, u.login, area=AREA)  # a reconnection to retry after
    retry = kit.expect("the deletion_request sent again until G acknowledges it", deletion,
                       since=first["seq"] + 1, area=AREA)
    kit.expect("G deleted the login", since=retry["seq"], kind="deleted", login=u.login, area=AREA)
    return retry


@requirement("CON-008")
def test_opt_out_sends_deletion_request_and_retires_the_login(kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user()
    old_keys = _keys_of(kit, u.login)
    start = kit.mark()
    try:
        harness.opt_out(u.handle)
    except HarnessError as exc:
        fail("the harness opt-out action accepted (204)", str(exc))
    req = kit.expect("a deletion_request stanza", _stanza("deletion_request", u.login),
                     since=start, area=AREA)
    kit.expect("G deleted the login (acknowledged the deletion request)", since=req["seq"],
               kind="deleted", login=u.login, area=AREA)
    kit.expect("the deleted login's connection closed", since=req["seq"], kind="disconnected",
               login=u.login, area=AREA)
    _login_retired(kit, harness, u, g, old_keys, "opting in again only with a new enlistment and new keys")


@requirement("CON-008")
def test_unacknowledged_deletion_request_is_retried(kit: Kit, harness, new_user):
    u = new_user()
    _deletion_retried(kit, u, lambda: harness.opt_out(u.handle), "opt-out")


# -- CON-014: account deletion ---------------------------------------------------------------------
#: DeletionReason values as G logs them (stanzas.proto).
_ACCOUNT_DELETED = pb.DELETION_REASON_ACCOUNT_DELETED


def _reason(e: Event) -> str:
    r = e["detail"].get("reason")
    return pb.DeletionReason.Name(r) if r in pb.DeletionReason.values() else repr(r)


@harness_attested
@requirement("CON-014")
def test_account_deletion_says_so_retires_the_login_and_erases_the_conversations(
        kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user()
    mid = kit.call(g.send_text, u.login, "CON-014 before the account is deleted", area=AREA)
    if not kit.poll(lambda: any(i.get("message_id") == mid for i in harness.inbox(u.handle, g.id)),
                    login=u.login, area=AREA, step=1.0):
        not_tested(f"the user's conversation needs {mid} surfaced first; it was not")
    old_keys = _keys_of(kit, u.login)
    start = kit.mark()
    try:
        harness.delete_account(u.handle)
    except HarnessError as exc:
        fail("the harness delete-account action accepted (204)", str(exc))
    req = kit.expect("a deletion_request stanza", _stanza("deletion_request", u.login),
                     since=start, area=AREA)
    if req["detail"].get("reason") != _ACCOUNT_DELETED:
        fail("the deletion request says the account was deleted (DELETION_REASON_ACCOUNT_DELETED)",
             f"reason {_reason(req)}")
    kit.expect("G deleted the login (acknowledged the deletion request)", since=req["seq"],
               kind="deleted", login=u.login, area=AREA)
    kit.expect("the deleted login's connection closed", since=req["seq"], kind="disconnected",
               login=u.login, area=AREA)
    _login_retired(kit, harness, u, g, old_keys, "the deleted account's authkey and keys never enlisted again")
    try:
        left = harness.inbox(u.handle)
    except HarnessError as exc:
        if exc.status != 404:
            fail("the deleted account's conversations gone (an empty inbox, or 404 unknown-user)",
                 str(exc))
        left = []
    if left:
        fail("nothing of the deleted account's conversations surfaced again",
             f"inbox still shows {[i.get('message_id') for i in left][:5]}")


@requirement("CON-014")
def test_unacknowledged_account_deletion_is_retried(kit: Kit, harness, new_user):
    u = new_user()
    retry = _deletion_retried(kit, u, lambda: harness.delete_account(u.handle), "delete-account")
    if retry["detail"].get("reason") != _ACCOUNT_DELETED:
        fail("the retried deletion request still says the account was deleted", f"reason {_reason(retry)}")


# -- CON-009: media deletion on opt-out -----------------------------------------------------------
@requirement("CON-009")
def test_opt_out_makes_the_users_blobs_unavailable_within_60_s(kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user()
    paths: list[str] = []
    for kind, mimetype, extra in (("image", "image/png", {"width": 1, "height": 1}),
                                  ("document", "application/pdf", {"file_name": "a.pdf"})):
        start = kit.mark()
        try:
            mid = harness.send_media(u.handle, g.id, kit.unique("blob-").encode() * 20, kind,
                                     mimetype, **extra)
        except HarnessError as exc:
            not_tested(f"the client did not send a {kind} message (media profile): {exc}")
        kit.expect(f"the {kind} message reaches the G user", since=start, kind="user_message",
                   user=g.id, id=mid, area=AREA)

        def direct_path(mid: str = mid, kind: str = kind) -> str:
            item = next(i for i in g.inbox if i.message_id == mid)
            return getattr(item.content, kind).direct_path
        paths.append(kit.call(direct_path, area=AREA))

    def fetch(path: str) -> Any:
        return kit.run(kit.gk.fetch_provider_media(path, login=u.login), AREA)
    for path in paths:
        before = fetch(path)
        if before.status != 200:
            not_tested(f"an uploaded blob is not retrievable before the opt-out ({before.status}, "
                       f"{before.error}), see MED-018")
    t0 = time.monotonic()
    start = kit.mark()
    try:
        harness.opt_out(u.handle)
    except HarnessError as exc:
        fail("the harness opt-out action accepted (204)", str(exc))
    deadline = t0 + 60 + SLACK_S
    pause = threading.Event()
    left = list(paths)
    last: dict[str, Any] = {}
    first_round = True
    while left:
        for path in list(left):
            res = fetch(path)
            last[path] = (res.status, res.error)
            if res.status in (404, 410):
                left.remove(path)
        if not left or time.monotonic() >= deadline:
            break
        if first_round:  # event-driven first: the opt-out reaching G (its deletion request)
            first_round = False
            if kit.within(min(kit.timeout(AREA), deadline - time.monotonic()), since=start,
                          kind="deleted", login=u.login, area=AREA) is not None:
                continue
        # Then a bounded poll: the server's deletion has no event the kit could wait on.
        pause.wait(min(0.5, max(0.0, deadline - time.monotonic())))
    if left:
        fail("every blob the user uploaded answers 404 or 410 within 60 s of the opt-out",
             f"{len(left)} of {len(paths)} still answer: {[last[p] for p in left]}")


# -- CON-010: rate limiting ------------------------------------------------------------------------
def _rate_limit_run(kit: Kit, harness: HarnessClient, u: ProviderUser, g: SimUser,
                    delays_ms: list[int], retry_after_ms: int) -> None:
    """Send one message; G answers ``rate_limited`` to the next ``len(delays_ms)`` message
    stanzas; each following message stanza must come at least ``delays_ms[i]`` later, on the same
    connection; finally the message is resent or reported as failed."""
    kit.call(kit.gk.script.rate_limit, u.login, retry_after_ms, kind="message", count=len(delays_ms),
             area=AREA)
    start = kit.mark()
    try:
        mid = harness.send_text(u.handle, g.id, "rate limited")
    except HarnessError as exc:
        fail("a message to an opted-in G user accepted", str(exc))
    is_msg = _stanza("message", u.login)
    cursor = start
    for i, need in enumerate(delays_ms):
        err = kit.expect("G's scripted rate_limited error", since=cursor, kind="error_sent",
                         login=u.login, code="rate_limited", area=AREA)
        nxt = kit.within(need / 1000 + SLACK_S, is_msg, since=err["seq"] + 1, area=AREA)
        if nxt is None:  # a later resend, or a failure report
            def outcome(after: int = err["seq"] + 1) -> tuple[str, Event | None] | None:
                resent = kit.within(0, is_msg, since=after, area=AREA)
                if resent is not None:
                    return "resent", resent
                return ("failed", None) if _failure_report(harness, u, mid) else None
            got = (kit.poll(outcome, login=u.login, timeout=kit.timeout(AREA), area=AREA,
                            step=0.25) or None)
            if got is None:
                fail("the rate-limited message resent after the delay or reported as failed",
                     f"neither within {need / 1000 + SLACK_S + kit.timeout(AREA):g} s")
            nxt = got[1]
            if nxt is None:
                if i == len(delays_ms) - 1:
                    break
                try:  # reported failed: a new send must still respect the delay
                    harness.send_text(u.handle, g.id, "after the failure")
                except HarnessError as exc:
                    fail("a new message accepted after the failure report", str(exc))
                nxt = kit.expect("the new message stanza", is_msg, since=err["seq"] + 1, area=AREA)
        gap = nxt["t"] - err["t"]
        if gap < need:
            fail(f"no message stanza within {need} ms of rate_limited (retry_after_ms="
                 f"{retry_after_ms}, consecutive error {i + 1})",
                 f"the next message stanza came {gap:.0f} ms after the error")
        cursor = nxt["seq"]
    reconnects = [e for e in kit.events(since=start, login=u.login)
                  if e["kind"] in ("connected", "disconnected")]
    if reconnects:
        fail("no reconnection to evade the rate limit", _describe(reconnects[0]))


@harness_attested
@requirement("CON-010")
def test_rate_limited_waits_retry_after_ms(kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user()
    _rate_limit_run(kit, harness, u, g, [1200], 1200)


@harness_attested
@requirement("CON-010")
def test_rate_limited_without_delay_waits_1_s_then_doubles(kit: Kit, harness, new_user, g_user):
    u, g = new_user(), g_user()
    _rate_limit_run(kit, harness, u, g, [1000, 2000], 0)


# -- CON-011: re-enlistment ------------------------------------------------------------------------
def _presented(kit: Kit, login: str) -> list[str]:
    return kit.call(lambda: [t.token for t in kit.gk.tokens_seen
                             if t.source == "enlistment" and t.login == login and t.accepted],
                                 area=AREA)


def _reenlisted(kit: Kit, u: ProviderUser, since: int, old_tokens: list[str], t_before: float) -> Event:
    """The enlistment after ``un_enlisted``: before any new connection attempt, with a fresh JWT;
    then the reconnection and the one-time pre-key upload. ``t_before``: wall time taken just
    before the action that draws the error. A fresh JWT issued in the same second as the earlier
    one is byte-identical to it (``iat`` in seconds, RS256 deterministic), so only a repeated JWT
    issued before that second is a reused one."""
    def enlisted_or_attempt(e: Event) -> bool:
        return ((e["kind"] == "enlisted" and e["login"] == u.login)
                or (e["kind"] == "connected" and e["login"] == u.login)
                or (e["kind"] == "handshake_failed" and e["detail"].get("reason") == "un_enlisted"
                    and e["login"] in (None, u.login)))
    first = kit.expect("a new enlistment after un_enlisted", enlisted_or_attempt, since=since,
                       area=AREA)
    if first["kind"] != "enlisted":
        fail("no connection with the old login before the new enlistment succeeded",
             _describe(first) + " (no successful enlistment before it)")
    tokens = _presented(kit, u.login)
    new = tokens[-1] if tokens else ""
    if new and new in old_tokens:
        iat = jwt.decode(new, options={"verify_signature": False}).get("iat", 0)
        if isinstance(iat, (int, float)) and iat < int(t_before):
            fail("the new enlistment with a fresh user JWT",
                 f"the JWT of an earlier enlistment (iat {iat}) presented again")
    kit.expect("the client reconnects after the new enlistment", since=first["seq"],
               kind="connected", login=u.login, area=AREA)
    kit.expect("one-time pre-keys uploaded after the new enlistment",
               lambda e: (e["detail"].get("added") or 0) > 0, since=first["seq"],
               kind="pre_keys_uploaded", login=u.login, area=AREA)
    return first


@requirement("CON-011")
def test_un_enlisted_on_a_stanza_leads_to_re_enlistment_before_reconnecting(kit: Kit, harness,
                                                                           new_user, g_user):
    u, g = new_user(), g_user()
    old_tokens = _presented(kit, u.login)
    kit.call(kit.gk.script.fail_next, u.login, "un_enlisted", kind="message", area=AREA)
    start, t_before = kit.mark(), time.time()
    try:
        text = "pending " + kit.unique("p")
        try:
            mid = harness.send_text(u.handle, g.id, text)
        except HarnessError as exc:
            fail("a message to an opted-in G user accepted", str(exc))
        err = kit.expect("G's scripted un_enlisted error", since=start, kind="error_sent",
                         login=u.login, code="un_enlisted", area=AREA)
        enlisted = _reenlisted(kit, u, err["seq"] + 1, old_tokens, t_before)
        kit.expect("the pending message sent after the new enlistment",
                   lambda e: e["detail"].get("id") == mid or e["detail"].get("text") == text,
                   since=enlisted["seq"], kind="user_message", user=g.id, area=AREA)
    finally:
        _quiet_disconnect(harness, u)


@requirement("CON-011")
def test_un_enlisted_at_connection_leads_to_re_enlistment_before_reconnecting(kit: Kit, harness,
                                                                             new_user):
    u = new_user(connect=False)
    old_tokens = _presented(kit, u.login)
    kit.call(kit.gk.script.fail_next_connect, u.login, "un_enlisted", area=AREA)
    start, t_before = kit.mark(), time.time()
    try:
        try:
            harness.connect(u.handle)
        except HarnessError:
            pass  # 502 connect-failed (reason un_enlisted) is expected; re-enlisting inside is too
        refused = kit.expect("the scripted un_enlisted handshake refusal", since=start,
                             kind="handshake_failed", login=u.login, reason="un_enlisted",
                                 area=AREA)
        _reenlisted(kit, u, refused["seq"] + 1, old_tokens, t_before)
    finally:
        _quiet_disconnect(harness, u)


#: One day past G's 30-day inactivity limit (CON-011, S2 Part 6).
INACTIVE_S = 31 * 86_400


@requirement("CON-011")
def test_thirty_days_without_a_connection_lead_to_re_enlistment(kit: Kit, harness, new_user):
    # Not scripted: G's own inactivity rule refuses the login once 31 days passed on G's clock
    # since its last connection. Only this check's offline login ages (Script.age_offline), so
    # the worker's shared clock, other logins and provider tokens are untouched.
    u = new_user()
    start = kit.mark()
    harness.disconnect(u.handle, wake_on_push=False)
    if kit.call(kit.gk.is_connected, u.login, area=AREA):
        kit.expect("the client to close its connection when the harness takes it offline",
                   since=start, kind="disconnected", login=u.login, area=AREA)
    old_tokens = _presented(kit, u.login)
    kit.call(kit.gk.script.age_offline, u.login, INACTIVE_S, area=AREA)
    start, t_before = kit.mark(), time.time()
    try:
        try:
            harness.connect(u.handle)
        except HarnessError:
            pass  # 502 connect-failed (reason un_enlisted) is expected; re-enlisting inside is too
        refused = kit.expect("G refuses the login inactive for 31 days with un_enlisted",
                             since=start, kind="handshake_failed", login=u.login,
                             reason="un_enlisted", area=AREA)
        _reenlisted(kit, u, refused["seq"] + 1, old_tokens, t_before)
    finally:
        _quiet_disconnect(harness, u)


def _quiet_disconnect(harness: HarnessClient, u: ProviderUser) -> None:
    """Stop a client the check left reconnecting (it would disturb the next checks)."""
    try:
        harness.disconnect(u.handle, wake_on_push=False)
    except HarnessError:
        pass


# -- CON-013: a block is not disclosed to the blocked sender ---------------------------------------
@requirement("CON-013")
def test_no_delivery_receipt_discloses_a_block(kit: Kit, harness, new_user, g_user):
    u, g, other = new_user(), g_user(), g_user()
    _session_with(kit, harness, u, g)
    _block(harness, u, g)
    start = kit.mark()
    theirs = kit.call(g.send_text, u.login, "am I blocked?", area=AREA)
    marker = kit.call(other.send_text, u.login, "marker", area=AREA)
    for mid in (theirs, marker):
        kit.expect("the client acknowledges each incoming message, a blocked sender's included",
                   since=start, kind="message_delivered", login=u.login, id=mid, area=AREA)

    def delivery_receipt(to: SimUser, mid: str) -> Callable[[Event], bool]:
        return lambda e: (e["detail"].get("direction") == "from_provider"
                          and e["detail"].get("receipt") == "RECEIPT_TYPE_DELIVERY"
                          and e["detail"].get("recipient") in (to.id, to.phone)
                          and mid in (e["detail"].get("message_ids") or []))
    # The marker proves the client does send delivery receipts; one that sends none at all
    # discloses nothing (E2E-015 judges it), so without the marker's receipt this is NOT_TESTED.
    if kit.within(kit.timeout(AREA), delivery_receipt(other, marker), since=start, kind="receipt",
                  login=u.login, area=AREA) is None:
        not_tested("precondition failed: no delivery receipt to an unblocked user either (see E2E-015)")
    sent = kit.within(QUIET_S / 2, delivery_receipt(g, theirs), since=start, kind="receipt",
                      login=u.login, area=AREA)
    if sent is not None:
        fail(f"no delivery receipt to the blocked {g.id} (it would disclose the block)", _describe(sent))
