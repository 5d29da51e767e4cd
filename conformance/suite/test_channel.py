"""Chat channel and push (spec §5): CHN-001..CHN-020.

Client requirements (CHN-001..CHN-014) are judged on what the gatekeeper simulator saw on the
wire: the provider's client is driven through the harness (connect, disconnect, send) and the
simulator is scripted (forced disconnects, refused handshakes, unknown stanzas, pings); every
verdict reads the simulator's event log (``ws_connected``, ``connected``, ``handshake_failed``,
``stanza_received``/``stanza_sent``, ``acked``/``message_delivered``, ``violation``, ...), whose
connection id (``conn``) ties a WebSocket to the login that authenticated on it. For CHN-003
the simulator presents another Noise static key while the client connects
(``script.present_wrong_noise_key``: G cannot know who is connecting before message 3, so
there is no per-login hook) and restores it at once.

Push requirements (CHN-015..CHN-018) are black-box at ``--target``: the kit POSTs ``/push``
itself with bearer tokens signed by G's keys (``gk.keys``), by foreign keys, with ``alg: none``
or with bad claims, and reads the HTTP answer. They still need the harness: the provider learns
G's JWKS URL and issuer, and its users' enlistment, only through it. "Without waking any
client" is observed on an offline, wake-on-push client: it must not connect within a short
quiet window after the refused pushes. CHN-019 (SHOULD) lets G push for a real queued message
and times the wake-up.

Waits are event-driven and bounded (the ``channel`` area timeout, or the requirement's own
limit); the only quiet windows (≤ 2 s, nothing may happen) follow refused pushes, a push to an
online client (CHN-010) and a ``protocol_version`` refusal. Not observable within a check:
CHN-011's growth of the delay up to 60 s in real time (one failed attempt shows that it grows;
the rest is judged on the client's clock, advanced through the harness), and CHN-009
(MAY: the client's own keepalive pings), which has no check: whatever the client does is
allowed, and seeing it would take a minute of silence.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest

from conformance.gatekeeper import SimUser
from conformance.gatekeeper.tokens import SigningKey
from conformance.harness_client import HarnessClient, HarnessError
from conformance.redact import quote_untrusted
from conformance.verdicts import fail, not_tested
from reference_impl.wire import stanzas_pb2 as pb

from .clock import advance_client_clock
from .kit import PROVIDER_ID, Kit, ProviderUser

requirement = pytest.mark.requirement
#: Part of the verdict rests on the provider harness' word (inbox, events) alone.
harness_attested = pytest.mark.harness_attested
AREA = "channel"
Event = dict[str, Any]

SUBPROTOCOL = "interop.v1"
PROTOCOL_VERSION = "1.0.0"
MAX_PLAINTEXT = 65519
#: CHN-007 / CHN-008 limit, plus the 2 s of network slack the conventions allow.
ANSWER_LIMIT_S = 10.0 + 2.0
#: CHN-019: connected and acknowledged within 30 s of the push, plus slack.
WAKE_LIMIT_S = 30.0 + 2.0
#: Quiet windows (nothing may happen) are kept short.
QUIET_S = 2.0
#: Request stanzas a client sends, and answers to G's stanzas (§5.1 stanza exchange).
CLIENT_REQUESTS = frozenset({"message", "receipt", "ping", "key_fetch", "pre_key_upload",
                             "blocklist_get", "blocklist_set", "deletion_request",
                             "reachability_ping"})
CLIENT_ANSWERS = frozenset({"ack", "pong", "error"})
ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


# -- reading the simulator's log --------------------------------------------------------------
def _story(kit: Kit, since: int, login: str | None = None, limit: int = 14) -> str:
    """The last events of a login (or of everything) since ``since``, for failure messages."""
    events = kit.events(since=since)
    if login is not None:
        conns = {e["detail"].get("conn") for e in events if e["login"] == login} - {None}
        events = [e for e in events if e["login"] == login or e["detail"].get("conn") in conns]
    keep = ("conn", "type", "id", "reason", "code", "requirement", "detail", "status",
            "protocol_version", "subprotocols", "about")
    out = []
    for e in events[-limit:]:
        d = {k: v for k, v in e["detail"].items() if k in keep and v not in (None, "", [])}
        out.append(f"{e['t']:.0f}ms {e['kind']} {json.dumps(d)[:160]}")
    return "; ".join(out) or "no events"


def _wait(kit: Kit, expected: str, *, since: int, login: str | None = None,
          timeout: float | None = None, pred: Callable[[Event], bool] | None = None,
          **match: Any) -> Event:
    """:meth:`Kit.expect` in this area, with the channel story as the observation.
    ``login``, when given, must be the event's login (and scopes the failure message)."""
    if login is not None:
        match["login"] = login
    return kit.expect(expected, pred, since=since, area=AREA, timeout=timeout,
                      story=lambda: f"events: {_story(kit, since, login)}", **match)


def _connected(kit: Kit, login: str, since: int) -> Event:
    """The newest ``connected`` event of ``login`` since ``since`` (it must exist)."""
    events = kit.events(since=since, kind="connected", login=login)
    if not events:
        fail("a completed handshake for the login", f"none; events: {_story(kit, since, login)}")
    return events[-1]


def _opened(kit: Kit, conn: str, since: int = 0) -> Event:
    """The ``ws_connected`` event (WebSocket accepted, before the handshake) of ``conn``."""
    events = kit.events(since=since, kind="ws_connected", conn=conn)
    if not events:
        raise RuntimeError(f"kit: no ws_connected event for connection {conn}")
    return events[0]


def _conns_of(kit: Kit, login: str, since: int) -> set[str]:
    return {e["detail"]["conn"] for e in kit.events(since=since, login=login)
            if e["detail"].get("conn")}


def _handshake_tokens(kit: Kit, login: str) -> list[str]:
    return kit.call(lambda: [t.token for t in kit.gk.tokens_seen
                             if t.login == login and t.source == "handshake"])


def _fp(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _harness_try(fn: Callable[[], Any]) -> HarnessError | None:
    try:
        fn()
    except HarnessError as exc:
        return exc
    return None


def _connect(kit: Kit, harness: HarnessClient, user: ProviderUser, expected: str) -> None:
    """Bring the client online through the harness; a refused connection is the provider's."""
    mark = kit.mark()
    err = _harness_try(lambda: harness.connect(user.handle))
    if err is not None:
        fail(expected, f"harness connect failed ({err}); events: {_story(kit, mark, user.login)}")


def _offline(kit: Kit, harness: HarnessClient, user: ProviderUser, *, wake_on_push: bool) -> None:
    """Take the client offline through the harness and wait until G saw the connection end."""
    start = kit.mark()
    online = kit.call(kit.gk.is_connected, user.login)
    harness.disconnect(user.handle, wake_on_push=wake_on_push)
    if online:
        _wait(kit, "the client to close its connection when the harness takes it offline",
              since=start, login=user.login, kind="disconnected")


def _send_from_g(kit: Kit, g: SimUser, login: str, text: str) -> str:
    return kit.call(g.send_text, login, text)


def _stanza_sent_at(kit: Kit, login: str, sid: str, since: int) -> Event:
    return _wait(kit, f"G to send stanza {sid}", since=since, login=login, kind="stanza_sent",
                 id=sid)


# -- protobuf with unknown fields (CHN-013) ---------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _stanza(raw: bytes) -> pb.Stanza:
    st = pb.Stanza()
    st.ParseFromString(raw)  # unknown fields are kept and serialized again
    return st


# -- push (CHN-015..CHN-019) --------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _push_url(kit: Kit) -> str:
    return kit.gk.providers[PROVIDER_ID].push_url


def _claims(kit: Kit, sub: str, **overrides: Any) -> dict[str, Any]:
    now = int(kit.gk.clock())
    claims: dict[str, Any] = {"iss": kit.gk.settings.issuer,
                              "aud": kit.gk.providers[PROVIDER_ID].audience, "sub": sub,
                              "iat": now, "exp": now + kit.gk.settings.push_token_lifetime_s,
                              "jti": secrets.token_urlsafe(8)}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _g_token(kit: Kit, sub: str, key: SigningKey | None = None, **overrides: Any) -> str:
    return (key or kit.gk.keys.current).sign(_claims(kit, sub, **overrides))


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return (_b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode()) + ".")


def _push(kit: Kit, evidence, *, authorization: str | None, body: bytes,
          content_type: str = "application/json", what: str = "") -> Any:
    headers = {"content-type": content_type}
    if authorization is not None:
        headers["authorization"] = authorization
    res = kit.http.request("POST", _push_url(kit), evidence=evidence, headers=headers, content=body)
    evidence.record("push", attempt=what, status=res.status, body_bytes=len(res.body))
    if not res.ok:
        fail(f"an HTTP answer to POST /push ({what})", res.describe())
    return res


def _to(sub: str) -> bytes:
    return json.dumps({"to": sub}).encode()


def _describe(res: Any, what: str) -> str:
    """Status, and the body of a 2xx (where its emptiness matters)."""
    snippet = quote_untrusted(res.body) if res.body and 200 <= res.status < 300 else ""
    return f"{what}: {res.status}" + (f" with body {snippet}" if snippet else "")


def _assert_no_wake(kit: Kit, user: ProviderUser, since: int, what: str) -> None:
    woke = kit.within(QUIET_S, since=since, kind="connected", login=user.login)
    if woke is not None:
        fail(f"no client woken by {what}",
             f"the offline client connected at {woke['t']:.0f} ms; events: {_story(kit, since, user.login)}")


# == 5.1 connection and handshake ================================================================
@requirement("CHN-001")
def test_websocket_with_subprotocol_and_binary_messages(kit: Kit, harness: HarnessClient, new_user,
                                                        g_user):
    if not kit.gk.url.startswith("https://"):
        not_tested("the gatekeeper simulator is not serving TLS, so wss cannot be observed")
    start = kit.mark()
    user, g = new_user(connect=False), g_user()
    _connect(kit, harness, user, "a WebSocket connection carrying a completed Noise handshake")
    conn = _connected(kit, user.login, start)["detail"]["conn"]
    offered = _opened(kit, conn, start)["detail"].get("subprotocols") or []
    if SUBPROTOCOL not in offered:
        fail(f"the WebSocket upgrade offers subprotocol {SUBPROTOCOL}", f"offered {offered!r}")
    # Traffic both ways on the connection, so that every frame kind has been carried.
    mark = kit.mark()
    harness.send_text(user.handle, g.id, "chn-001 from the provider")
    _wait(kit, "the client's message to reach G's user", since=mark, login=user.login,
          kind="user_message", user=g.id)
    mid = _send_from_g(kit, g, user.login, "chn-001 from G")
    _wait(kit, "the client to acknowledge G's message", since=mark, login=user.login,
          kind="message_delivered", id=mid)
    conns = _conns_of(kit, user.login, start)
    bad = [e for e in kit.events(since=start)
           if e["detail"].get("conn") in conns and (
               (e["kind"] == "violation" and e["detail"].get("requirement") == "CHN-001")
               or e["kind"] in ("protocol_error", "handshake_failed"))]
    if bad:
        fail("only binary WebSocket messages, each one Noise message",
             "; ".join(f"{e['kind']}: {e['detail'].get('detail') or e['detail'].get('reason')}"
                       for e in bad))


@requirement("CHN-002")
def test_every_connection_starts_with_a_fresh_noise_handshake(kit: Kit, harness: HarnessClient,
                                                              new_user, g_user):
    """Two connections of one login: each completes the handshake under the enlisted authkey,
    decrypts with its own transport keys, and starts from a new ephemeral (G logs a fingerprint
    of handshake message 1), so no handshake state carries over from one connection."""
    start = kit.mark()
    user, g = new_user(connect=False), g_user()
    expected = "a connection with a complete Noise XX handshake under the enlisted authkey"
    _connect(kit, harness, user, expected)
    _offline(kit, harness, user, wake_on_push=False)
    mark = kit.mark()
    _connect(kit, harness, user, expected)
    _wait(kit, "a second connection of the login", since=mark, login=user.login, kind="connected")
    # Transport state of the new connection: G's message must be decrypted and acknowledged.
    mid = _send_from_g(kit, g, user.login, "chn-002 on the new connection")
    _wait(kit, "the message on the new connection acknowledged (fresh transport keys)",
          since=mark, login=user.login, kind="message_delivered", id=mid)
    conns = _conns_of(kit, user.login, start)
    bad = [e for e in kit.events(since=start)
           if e["kind"] in ("handshake_failed", "protocol_error")
           and (e["login"] == user.login or e["detail"].get("conn") in conns)]
    if bad:
        fail("every connection of the login completes the handshake and decrypts",
             "; ".join(f"{e['kind']} on {e['detail'].get('conn')}: {e['detail'].get('detail') or e['detail'].get('reason')}"
                       f" ({e['detail'].get('requirement')})" for e in bad))
    # A fresh handshake draws a fresh ephemeral ("e" is GENERATE_KEYPAIR in Noise): a client that
    # keeps one ephemeral across connections carries handshake state from one to the next.
    ephemerals: dict[str, list[str]] = {}
    for e in kit.events(since=start, kind="connected", login=user.login):
        d = e["detail"]
        ephemerals.setdefault(d.get("ephemeral") or "?", []).append(str(d.get("conn")))
    reused = {fp: conns for fp, conns in ephemerals.items() if fp != "?" and len(conns) > 1}
    if reused:
        fail("a new Noise ephemeral key in the handshake of every connection",
             "; ".join(f"ephemeral sha256:{fp} in the handshakes of connections {', '.join(c)}"
                       for fp, c in reused.items()))


@requirement("CHN-003")
def test_client_refuses_a_gatekeeper_static_key_other_than_the_published_one(
        kit: Kit, harness: HarnessClient, new_user):
    user = new_user()
    _offline(kit, harness, user, wake_on_push=False)
    # G cannot know who connects before message 3, so the wrong key is presented to every
    # handshake that starts while the client is asked to connect, then restored at once.
    mark = kit.mark()
    impostor = kit.call(kit.gk.script.present_wrong_noise_key)
    try:
        err = _harness_try(lambda: harness.connect(user.handle))
    finally:
        kit.call(kit.gk.script.restore_noise_key, impostor)
    window_end = kit.mark()
    events = kit.events(since=mark)
    others = {e["detail"].get("conn") for e in events if e["login"] not in (None, user.login)}
    opened = [e["detail"]["conn"] for e in events
              if e["seq"] < window_end and e["kind"] == "ws_connected"
              and e["detail"]["conn"] not in others]
    if not opened:
        fail("a connection attempt when the harness asks the client to connect",
             f"no WebSocket reached G (harness: {err or 'connected'}); events: {_story(kit, mark)}")
    for conn in opened:
        # The first of: the client closed (right), or G got message 3 / gave up waiting (wrong).
        outcome = _wait(kit, "the client to close the connection after handshake message 2",
                        since=mark, conn=conn,
                        pred=lambda e: e["kind"] in ("disconnected", "connected", "handshake_failed"))
        reason = outcome["detail"].get("reason")
        if outcome["kind"] == "handshake_failed" and reason == "timeout":
            fail("the client closes the connection on a key mismatch",
                 "the connection stayed open until G's handshake timeout")
        if outcome["kind"] != "disconnected":
            fail("the connection closed without handshake message 3 when G's static key is not "
                 "the published one",
                 f"message 3 was sent ({outcome['kind']}"
                 + (f" {reason}" if reason else "") + ")"
                 + ("" if err is not None else "; the harness reported the connection as established")
                 + f"; events: {_story(kit, mark, user.login)}")
    # Control: with the published key the same client connects.
    err = _harness_try(lambda: harness.connect(user.handle))
    if err is not None:
        fail("a connection once G presents its published key again",
             f"harness connect failed ({err}); events: {_story(kit, window_end, user.login)}")
    _wait(kit, "the client to connect with the published key", since=window_end, login=user.login,
          kind="connected")


@requirement("CHN-004")
def test_handshake_payload_carries_token_version_and_login(kit: Kit, harness: HarnessClient,
                                                          new_user):
    start = kit.mark()
    user = new_user(connect=False)
    _connect(kit, harness, user, "a handshake payload G accepts")
    event = _connected(kit, user.login, start)
    version = event["detail"].get("protocol_version")
    if version != PROTOCOL_VERSION:
        fail(f"protocol_version {PROTOCOL_VERSION} in the handshake payload", repr(version))
    failed = kit.events(since=start, kind="handshake_failed", login=user.login)
    if failed:
        fail("a handshake payload G accepts",
             "; ".join(f"{e['detail'].get('reason')}: {e['detail'].get('detail')}" for e in failed))
    tokens = kit.call(lambda: [t for t in kit.gk.tokens_seen
                               if t.login == user.login and t.source == "handshake"])
    if not tokens or not tokens[-1].accepted:
        fail("a user JWT G verifies (ID-005..ID-007)",
             f"{tokens[-1].reason if tokens else 'no handshake token recorded'}")
    payload = tokens[-1].token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if claims.get("sub") != user.user_visible_id:
        fail("a JWT for the connecting user (sub = its user-visible id)",
             f"sub {claims.get('sub')!r}, user {user.user_visible_id!r}")


@requirement("CHN-005")
def test_each_transport_message_is_one_stanza(kit: Kit, harness: HarnessClient, new_user, g_user):
    start = kit.mark()
    user, g = new_user(), g_user()
    mark = kit.mark()
    harness.send_text(user.handle, g.id, "chn-005 " + "x" * 20_000)
    _wait(kit, "the client's 20 kB text to reach G's user", since=mark, login=user.login,
          kind="user_message", user=g.id)
    mid = _send_from_g(kit, g, user.login, "chn-005 from G")
    _wait(kit, "the client to acknowledge G's message", since=mark, login=user.login,
          kind="message_delivered", id=mid)
    conns = _conns_of(kit, user.login, start)
    received = kit.events(since=start, kind="stanza_received", login=user.login)
    bad = [f"{e['detail'].get('type')} of {e['detail'].get('size')} bytes" for e in received
           if e["detail"].get("type") == "unparseable" or (e["detail"].get("size") or 0) > MAX_PLAINTEXT]
    bad += [f"{e['kind']}: {e['detail'].get('detail')}" for e in kit.events(since=start)
            if e["detail"].get("conn") in conns and (
                e["kind"] == "protocol_error"
                or (e["kind"] == "rejected" and e["detail"].get("requirement") == "CHN-005"))]
    if bad:
        fail("every transport message one Stanza with one known body, plaintext ≤ 65519 bytes",
             "; ".join(bad))
    if not received:
        fail("stanzas from the client", f"none; events: {_story(kit, start, user.login)}")


@requirement("CHN-006")
def test_request_ids_are_well_formed_and_never_reused(kit: Kit, harness: HarnessClient, new_user,
                                                      g_user):
    start = kit.mark()
    user, g = new_user(), g_user()
    for round_ in (1, 2):
        mark = kit.mark()
        harness.send_text(user.handle, g.id, f"chn-006 round {round_}")
        _wait(kit, "the client's message to reach G's user", since=mark, login=user.login,
              kind="user_message", user=g.id)
        mid = _send_from_g(kit, g, user.login, f"chn-006 from G {round_}")
        _wait(kit, "the client to acknowledge G's message", since=mark, login=user.login,
              kind="message_delivered", id=mid)
        if round_ == 1:  # a second connection: ids must stay unique across connections
            _offline(kit, harness, user, wake_on_push=False)
            _connect(kit, harness, user, "the client to reconnect")
    events = kit.events(since=start)
    received = [e for e in events if e["kind"] == "stanza_received" and e["login"] == user.login]
    sent_ids = {e["detail"].get("id") for e in events
                if e["kind"] in ("stanza_sent", "error_sent") and e["login"] == user.login}
    problems: list[str] = []
    seen: dict[str, str] = {}
    for e in received:
        d = e["detail"]
        sid, kind = d.get("id") or "", d.get("type")
        if kind in CLIENT_REQUESTS:
            if not sid.startswith("<redacted") and not (1 <= len(sid) <= 64 and set(sid) <= ID_CHARS):
                problems.append(f"{kind} with id {sid!r}")
            resend = kind == "message" and (d.get("retry_count") or 0) > 0 and seen.get(sid) == "message"
            if sid in seen and not resend:
                problems.append(f"id {sid!r} of a {kind} reused (first used by a {seen[sid]})")
            seen.setdefault(sid, kind)
        elif kind in CLIENT_ANSWERS and sid not in sent_ids:
            problems.append(f"{kind} with id {sid!r} answering nothing G sent")
    problems += [f"{e['kind']}: {e['detail'].get('detail')}" for e in events
                 if e["login"] == user.login and e["detail"].get("requirement") == "CHN-006"]
    if problems:
        fail("fresh request ids of 1-64 [A-Za-z0-9._-] per login, answers repeating the request id",
             "; ".join(problems[:12]))
    if len(_conns_of(kit, user.login, start)) < 2 or not seen:
        fail("requests from the client on two connections", _story(kit, start, user.login))


@requirement("CHN-007")
def test_message_receipt_and_notification_are_acknowledged_in_time(kit: Kit, harness: HarnessClient,
                                                                  new_user, g_user):
    user, g = new_user(), g_user()
    mark = kit.mark()
    out = harness.send_text(user.handle, g.id, "chn-007 from the provider")
    _wait(kit, "the client's message to reach G's user", since=mark, login=user.login,
          kind="user_message", user=g.id)
    ids = {
        "message": _send_from_g(kit, g, user.login, "chn-007 from G"),
        "receipt": kit.call(g.send_receipt, user.login, "read", [out]),
        "notification": kit.call(kit.gk.script.low_pre_keys, user.login, 5),
    }
    for what, sid in ids.items():
        _await_ack(kit, user.login, sid, what, mark)
    # Every other message, receipt and notification G sent meanwhile (e.g. G's user's automatic
    # delivery receipt) too.
    for e in kit.events(since=mark, kind="stanza_sent", login=user.login,
                        type=("message", "receipt", "notification")):
        _await_ack(kit, user.login, e["detail"]["id"], e["detail"]["type"], mark)


def _await_ack(kit: Kit, login: str, sid: str, what: str, since: int) -> None:
    """CHN-007: an ``ack`` with the stanza's id within 10 s of G sending it."""
    sent = _stanza_sent_at(kit, login, sid, since)
    answer = _wait(kit, f"an ack of G's {what} {sid} within 10 s", since=since, login=login,
                   timeout=ANSWER_LIMIT_S,
                   pred=lambda e: e["detail"].get("id") == sid and e["kind"] in (
                       "acked", "message_delivered", "client_error", "unexpected_answer"))
    if answer["kind"] == "client_error":
        fail(f"an ack of G's {what}", f"an error {answer['detail'].get('code')}")
    delay = (answer["t"] - sent["t"]) / 1000
    if delay > ANSWER_LIMIT_S:
        fail(f"the ack of G's {what} within 10 s", f"after {delay:.1f} s")


@requirement("CHN-008")
def test_ping_is_answered_with_pong(kit: Kit, evidence, harness: HarnessClient, new_user):
    user = new_user()
    mark = kit.mark()
    for _ in range(2):
        try:
            rtt = kit.run(kit.gk.script.ping(user.login, ANSWER_LIMIT_S), AREA, ANSWER_LIMIT_S + 2)
        except TimeoutError:
            fail("a pong with the ping's id within 10 s",
                 f"no pong; events: {_story(kit, mark, user.login)}")
        except KeyError:
            fail("the connection open to answer the ping", _story(kit, mark, user.login))
        evidence.record("ping", round_trip_s=round(rtt, 3))
        if rtt > ANSWER_LIMIT_S:
            fail("a pong within 10 s", f"after {rtt:.1f} s")
    stray = kit.events(since=mark, kind="pong", login=user.login, expected=False)
    if stray:
        fail("pongs repeating the ping's id", f"{len(stray)} pong(s) with another id")


@requirement("CHN-010")
def test_one_connection_per_login(kit: Kit, harness: HarnessClient, new_user):
    user = new_user()
    mark = kit.mark()
    conn = _connected(kit, user.login, 0)["detail"]["conn"]
    _harness_try(lambda: harness.connect(user.handle))  # already online: must not open another
    kit.run(kit.gk.push(user.login), AREA)               # a push to an online client: likewise
    second = kit.within(QUIET_S, since=mark,
                        predicate=lambda e: e["login"] == user.login
                        and e["kind"] in ("connected", "connection_replaced"))
    if second is not None:
        fail("no second connection for a login that is online",
             f"{second['kind']} at {second['t']:.0f} ms; events: {_story(kit, mark, user.login)}")
    mark = kit.mark()
    harness.disconnect(user.handle, wake_on_push=False)
    _wait(kit, "the connection closed when the client disconnects", since=mark, login=user.login,
          kind="disconnected", conn=conn)
    if kit.call(kit.gk.is_connected, user.login):
        fail("no connection left after the client disconnected", _story(kit, mark, user.login))


@requirement("CHN-011")
def test_reconnection_waits_and_backs_off(kit: Kit, evidence, harness: HarnessClient, new_user):
    user = new_user()
    mark = kit.mark()
    kit.call(kit.gk.script.fail_next_connect, user.login, "internal")
    if not kit.call(kit.gk.script.force_offline, user.login):
        fail("the client online after connecting", _story(kit, 0, user.login))
    lost = _wait(kit, "G to close the connection", since=mark, login=user.login, kind="disconnected")
    failed = _wait(kit, "a reconnection attempt after the connection was lost", since=lost["seq"],
                   login=user.login, kind="handshake_failed")
    attempt1 = _opened(kit, failed["detail"]["conn"], mark)
    refused = _wait(kit, "G to close the refused attempt", since=failed["seq"], login=user.login,
                    kind="disconnected", conn=failed["detail"]["conn"])
    ok = _wait(kit, "another attempt after the refused one, with a complete handshake",
               since=refused["seq"], login=user.login, kind="connected")
    attempt2 = _opened(kit, ok["detail"]["conn"], mark)
    first_delay = (attempt1["t"] - lost["t"]) / 1000
    second_delay = (attempt2["t"] - refused["t"]) / 1000
    evidence.record("reconnect_delays", first_delay_s=round(first_delay, 3),
                    second_delay_s=round(second_delay, 3))
    if first_delay < 1.0:
        fail("at least 1 s before the first reconnection attempt", f"{first_delay:.3f} s")
    if second_delay < first_delay + 0.1:
        fail("a longer delay after the failed attempt than before it",
             f"{first_delay:.3f} s, then {second_delay:.3f} s")


#: CHN-011 on the client's clock: refused attempts in a row (1, 2, 4, ... 32, 60 s is 7).
BACKOFF_ATTEMPTS = 9
#: The delay must reach 60 s; 1 s of it may be the kit's own observation latency.
BACKOFF_CAP_S = 60.0 - 1.0
#: Client-clock seconds after a refused attempt at which the kit looks for the next one.
BACKOFF_GRID_S = (0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 14, 17, 20, 24, 28, 32, 36, 40, 45, 50,
                  55, BACKOFF_CAP_S, 61, 66, 75, 90, 120, 180)
#: How long (real seconds) the kit waits for an attempt after each step of the grid.
BACKOFF_STEP_WAIT_S = 0.3


@requirement("CHN-011")
def test_back_off_grows_to_at_least_60_s_on_the_client_clock(kit: Kit, evidence,
                                                             harness: HarnessClient, new_user):
    # G refuses every attempt; after each refusal the kit advances the client's clock along a
    # grid and sees at which point the next attempt comes. A delay is known as an interval
    # (no attempt by `low` client seconds, one by `high`); it must grow after each failure
    # until it reaches 60 s, and the client must keep trying.
    user = new_user()
    advance_client_clock(harness, user, 0, "CHN-011's growth of the back-off to 60 s")
    for _ in range(BACKOFF_ATTEMPTS + 1):  # + 1: the cap's confirmation attempt is refused too
        kit.call(kit.gk.script.fail_next_connect, user.login, "internal")
    mark = kit.mark()
    if not kit.call(kit.gk.script.force_offline, user.login):
        fail("the client online after connecting", _story(kit, 0, user.login))
    lost = _wait(kit, "G to close the connection", since=mark, login=user.login, kind="disconnected")
    since, ref = lost["seq"], lost["t"]
    delays: list[tuple[float, float]] = []
    try:
        while len(delays) < BACKOFF_ATTEMPTS:
            low, high, attempt = _next_attempt(kit, harness, user, since, ref)
            if attempt is None:
                fail("another reconnection attempt after each refused one",
                     f"none by {high:.0f} s of client time after attempt {len(delays)}; "
                     f"delays so far {_intervals(delays)}")
            delays.append((low, high))
            evidence.record("reconnect_delay", attempt=len(delays), after_s=round(low, 2),
                            by_s=round(high, 2))
            if low >= BACKOFF_CAP_S:
                _confirm_cap(kit, harness, user, attempt, evidence)
                return
            if len(delays) > 1 and high <= delays[-2][0]:
                fail("a longer delay after each failed attempt until it reaches 60 s",
                     f"delays {_intervals(delays)} (client seconds: after..by)")
            since = attempt["seq"]
            if attempt["kind"] == "connected":
                break
            refused = _wait(kit, "G to close the refused attempt", since=since, login=user.login,
                            kind="disconnected", conn=attempt["detail"]["conn"])
            since, ref = refused["seq"], refused["t"]
        fail("the delay between attempts grown to at least 60 s",
             f"after {len(delays)} refused attempts in a row: {_intervals(delays)} "
             "(client seconds: after..by)")
    finally:  # stop the client's retries (G still holds refusals for this login)
        with contextlib.suppress(HarnessError):
            harness.disconnect(user.handle, wake_on_push=False)


def _reconnect_attempt(login: str) -> Callable[[Event], bool]:
    """A reconnection attempt of ``login`` as the kit sees it end: refused or completed."""
    return lambda e: e["login"] == login and e["kind"] in ("handshake_failed", "connected")


def _next_attempt(kit: Kit, harness: HarnessClient, user: ProviderUser, since: int,
                  ref: float) -> tuple[float, float, Event | None]:
    """Walk the client's clock along :data:`BACKOFF_GRID_S` (seconds after ``ref``, the
    refusal's event time in ms) until a new attempt shows; returns (no attempt by, attempt by,
    the attempt) in client seconds after the refusal.

    The attempt is placed by when its WebSocket was accepted (``ws_connected``), not by when the
    kit saw its handshake end: under load the handshake may end after the kit has advanced the
    clock further, and judging by that would stretch a short delay into a long one (a client
    capped at 30 s would pass). Every advance is placed on the event log's clock."""
    now = kit.gk.log.now_ms
    steps: list[tuple[float, float, float]] = []  # (log ms before, client s before, client s after)
    advanced = 0.0

    def elapsed(at_ms: float) -> float:
        return (at_ms - ref) / 1000 + advanced

    attempt = _reconnect_attempt(user.login)
    for target in BACKOFF_GRID_S:
        t = now()
        before = elapsed(t)
        if target > before:
            advance_client_clock(harness, user, target - before, "CHN-011")
            advanced += target - before
        steps.append((t, before, elapsed(t)))
        e = kit.within(BACKOFF_STEP_WAIT_S, attempt, since=since, area=AREA)
        if e is not None:
            opened = _opened(kit, e["detail"]["conn"], since)["t"]
            # The last advance begun before the WebSocket opened is the one that let the
            # attempt out (or an earlier one); the client's clock then read from ``low`` on.
            prior = [st for st in steps if st[0] <= opened] or steps[:1]
            t_step, low, after = prior[-1]
            high = after + (opened - t_step) / 1000
            return low, max(high, low), e
    return steps[-1][1], elapsed(now()), None


#: Real seconds the kit waits, below the cap, for an attempt that must not come (the cap's
#: confirmation): a client that is late by less than this cannot hide a short cap.
BACKOFF_CONFIRM_WAIT_S = 5.0


def _confirm_cap(kit: Kit, harness: HarnessClient, user: ProviderUser, attempt: Event,
                 evidence) -> None:
    """Re-measure the delay after the attempt the grid judged capped, as an upper bound only.

    The grid gives an attempt to the last step begun before its WebSocket opened; a client slowed
    by a loaded machine can open after a later step began and so look capped at 60 s when it is
    capped at 30 s (seen under 4 parallel suites). Here the clock is moved in one step to
    ``cap - 9`` s, the kit waits ``BACKOFF_CONFIRM_WAIT_S`` real seconds (the clock reaches
    about ``cap - 4``), then moves it past 60 s. Any attempt is placed by when its WebSocket
    opened with only the advances made before that moment: lateness can only raise the figure,
    so an attempt below the cap is proof of a shorter delay."""
    refused = _wait(kit, "G to close the refused attempt", since=attempt["seq"], login=user.login,
                    kind="disconnected", conn=attempt["detail"]["conn"])
    since, ref = refused["seq"], refused["t"]
    now = kit.gk.log.now_ms
    advances: list[tuple[float, float]] = []  # (log ms before the advance, client s added)

    def bound(opened_ms: float) -> float:
        return (opened_ms - ref) / 1000 + sum(a for t, a in advances if t <= opened_ms)

    is_attempt = _reconnect_attempt(user.login)
    quiet_until = BACKOFF_CAP_S - BACKOFF_CONFIRM_WAIT_S - 4.0
    for target, wait in ((quiet_until, BACKOFF_CONFIRM_WAIT_S), (BACKOFF_CAP_S + 2.0, None)):
        t = now()
        step = target - bound(t)
        if step > 0:
            advance_client_clock(harness, user, step, "CHN-011")
            advances.append((t, step))
        e = kit.within(wait, is_attempt, since=since, area=AREA)
        if e is None:
            if wait is None:
                fail("another reconnection attempt once the delay reached 60 s",
                     f"none by {bound(now()):.0f} s of client time after the refused attempt")
            continue
        by = bound(_opened(kit, e["detail"]["conn"], since)["t"])
        evidence.record("reconnect_delay_confirmed", by_s=round(by, 2))
        if by < BACKOFF_CAP_S:
            fail("the delay between attempts kept at 60 s once reached",
                 f"the next attempt came by {by:.1f} s of client time (confirmation, with one "
                 f"clock step to {quiet_until:.0f} s and {BACKOFF_CONFIRM_WAIT_S:g} s real wait)")
        return


def _intervals(delays: list[tuple[float, float]]) -> str:
    return ", ".join(f"{lo:.1f}..{hi:.1f}" for lo, hi in delays)


def _poll_inbox(kit: Kit, harness: HarnessClient, user: ProviderUser, peer: str,
                want: list[str]) -> list[dict[str, Any]]:
    """The inbox once every wanted id is there (or the area timeout passed)."""
    return kit.poll(lambda: harness.inbox(user.handle, peer=peer),
                    lambda items: set(want) <= {i.get("message_id") for i in items},
                    login=user.login, area=AREA, step=1.0)


def _mailbox_surfaced(kit: Kit, harness: HarnessClient, user: ProviderUser, g: SimUser,
                      ids: list[str], mark: int) -> None:
    """Reconnect; every mailbox message is acknowledged, then surfaced exactly once in the order
    of the ``timestamp_ms`` G delivered it with (CHN-012)."""
    _connect(kit, harness, user, "the client to reconnect and receive its mailbox")
    for mid in ids:
        _wait(kit, f"the mailbox message {mid} acknowledged after reconnecting", since=mark,
              login=user.login, kind="message_delivered", id=mid)
    stamps: dict[str, int] = {}
    for e in kit.events(since=mark, kind="stanza_sent", login=user.login):
        if e["detail"].get("id") in ids:  # the last delivery counts (what the client got)
            stamps[e["detail"]["id"]] = e["detail"].get("timestamp_ms") or 0
    items = _poll_inbox(kit, harness, user, g.id, ids)
    shown: list[str] = [i["message_id"] for i in items if i.get("message_id") in ids]
    missing = [m for m in ids if m not in shown]
    twice = sorted({m for m in shown if shown.count(m) > 1})
    if missing or twice:
        fail("each mailbox message surfaced exactly once",
             f"missing {missing}, more than once {twice}; inbox ids {shown}")
    ts = [stamps.get(m, 0) for m in shown]
    if ts != sorted(ts):
        fail("mailbox messages surfaced in the order of their timestamp_ms",
             f"inbox order {shown} with timestamps {ts}")


@harness_attested
@requirement("CHN-012")
def test_offline_mailbox_is_surfaced_once_in_order(kit: Kit, harness: HarnessClient, new_user,
                                                   g_user):
    user, g = new_user(), g_user()
    _offline(kit, harness, user, wake_on_push=False)
    mark = kit.mark()
    ids = [_send_from_g(kit, g, user.login, f"chn-012 offline {i}") for i in range(3)]
    _mailbox_surfaced(kit, harness, user, g, ids, mark)


#: Within G's 30-day retention (CHN-012) and its 30-day inactivity limit (CON-011).
MAILBOX_AGE_S = 29 * 86_400


@harness_attested
@requirement("CHN-012")
def test_mailbox_kept_29_days_is_surfaced_once_in_order(kit: Kit, harness: HarnessClient,
                                                        new_user, g_user):
    # G keeps the mailbox 30 days: messages queued 29 days ago on G's clock (and stamped then)
    # are still delivered, and the client must surface them like fresh ones, before a message
    # queued just now. Only this check's own offline login ages (Script.age_offline): the
    # worker's shared clock, other logins and provider tokens are untouched.
    user, g = new_user(), g_user()
    _offline(kit, harness, user, wake_on_push=False)
    mark = kit.mark()
    ids = [_send_from_g(kit, g, user.login, f"chn-012 29 days ago {i}") for i in range(2)]
    aged = kit.call(kit.gk.script.age_offline, user.login, MAILBOX_AGE_S, area=AREA)
    if aged < len(ids):
        raise RuntimeError(f"kit: {aged} mailbox entries aged, expected at least {len(ids)}")
    ids.append(_send_from_g(kit, g, user.login, "chn-012 queued just now"))
    _mailbox_surfaced(kit, harness, user, g, ids, mark)


@requirement("CHN-013")
def test_unknown_fields_bodies_and_notifications_keep_the_connection(kit: Kit, harness: HarnessClient,
                                                                     new_user, g_user):
    user, g = new_user(), g_user()
    conn = _connected(kit, user.login, 0)["detail"]["conn"]
    mark = kit.mark()
    future = _len_field(1, b"from a future profile version")
    unknown_body = _stanza(pb.Stanza(id=f"u.{secrets.token_hex(6)}").SerializeToString()
                           + _len_field(40, future))
    unknown_kind = _stanza(pb.Stanza(id=f"u.{secrets.token_hex(6)}").SerializeToString()
                           + _len_field(23, _len_field(9, future)))
    known = pb.Notification(low_pre_keys=pb.LowPreKeys(count=5)).SerializeToString()
    extended = _stanza(pb.Stanza(id=f"u.{secrets.token_hex(6)}").SerializeToString()
                       + _len_field(23, known + _len_field(15, future) + _int_field(16, 7))
                       + _int_field(99, 1) + _len_field(98, future))
    if unknown_body.WhichOneof("body") is not None or not extended.notification.HasField("low_pre_keys"):
        raise RuntimeError("kit: the crafted stanzas did not parse as intended")
    for st in (unknown_body, unknown_kind, extended):
        kit.call(kit.gk.script.send_stanza, user.login, st)
    _wait(kit, "the known notification with unknown fields acknowledged", since=mark,
          login=user.login, kind="acked", id=extended.id)
    # A later message still flows on the same connection.
    mid = _send_from_g(kit, g, user.login, "chn-013 after the unknown stanzas")
    _wait(kit, "a message after the unknown stanzas acknowledged on the same connection",
          since=mark, login=user.login, kind="message_delivered", id=mid)
    closed = kit.events(since=mark, kind="disconnected", conn=conn)
    if closed:
        fail("the connection kept open", f"closed: {closed[0]['detail'].get('reason')}")
    for st in (unknown_body, unknown_kind):
        for e in kit.events(since=mark, kind="stanza_received", login=user.login, id=st.id):
            kind = e["detail"].get("type")
            code = e["detail"].get("code")
            if kind == "ack" or (kind == "error" and code == "malformed"):
                continue
            fail("an unknown stanza ignored, acknowledged or answered with error malformed",
                 f"answered with {kind}" + (f" {code}" if code else ""))


@requirement("CHN-014")
def test_bad_token_means_a_new_token_before_reconnecting(kit: Kit, harness: HarnessClient, new_user):
    # The connection is lost and the client's own reconnection is refused: its next attempt
    # comes after its back-off, so even a provider whose tokens are deterministic (EdDSA or
    # RS256 over the same claims) mints a different one when it really fetches a new token.
    user = new_user()
    before = len(_handshake_tokens(kit, user.login))
    kit.call(kit.gk.script.fail_next_connect, user.login, "bad_token")
    mark = kit.mark()
    if not kit.call(kit.gk.script.force_offline, user.login):
        fail("the client online after connecting", _story(kit, 0, user.login))
    refused = _wait(kit, "a reconnection attempt (G refuses it with bad_token)", since=mark,
                    login=user.login, kind="handshake_failed", reason="bad_token")
    # Reconnecting on its own is the client's choice; if it does not, the user connects.
    again = kit.within(kit.timeout(AREA), since=refused["seq"], kind="connected",
                       login=user.login)
    if again is None:
        _connect(kit, harness, user, "a reconnection with a new user JWT after bad_token")
        _wait(kit, "a reconnection after bad_token", since=refused["seq"], login=user.login,
              kind="connected")
    tokens = _handshake_tokens(kit, user.login)[before:]
    if len(tokens) < 2:
        raise RuntimeError(f"kit: {len(tokens)} handshake token(s) recorded for a refused and a "
                           "successful handshake")
    rejected, later = tokens[0], tokens[1:]
    if rejected in later:
        fail("a new user JWT after bad_token; the rejected one never presented again",
             f"rejected token {_fp(rejected)} presented again "
             f"({[_fp(t) for t in later]})")


@harness_attested
@requirement("CHN-014")
def test_protocol_version_refusal_is_reported_and_not_retried(kit: Kit, harness: HarnessClient,
                                                              new_user):
    start = kit.mark()
    user = new_user()
    version = _connected(kit, user.login, start)["detail"].get("protocol_version")
    _offline(kit, harness, user, wake_on_push=False)
    kit.call(kit.gk.script.fail_next_connect, user.login, "protocol_version")
    mark = kit.mark()
    err = _harness_try(lambda: harness.connect(user.handle))
    refused = _wait(kit, "a connection attempt (G refuses it with protocol_version)", since=mark,
                    login=user.login, kind="handshake_failed", reason="protocol_version")
    same = kit.within(QUIET_S, since=refused["seq"], kind="connected", login=user.login,
                      protocol_version=version)
    if same is not None:
        fail(f"no reconnection with protocol version {version} after protocol_version",
             f"reconnected with {version}; events: {_story(kit, mark, user.login)}")
    reported = err is not None and "protocol_version" in json.dumps(err.problem)
    if not reported:
        reported = any("protocol_version" in json.dumps(e) for e in harness.events(user.handle))
    if not reported:
        fail("the protocol_version failure reported to the user (harness connect answer or event)",
             f"harness connect: {err or 'succeeded'}; no event names protocol_version")


# == 5.2 push ===================================================================================
def _accepted(res: Any, enlisted: bool) -> bool:
    """An accepted push: 200 with an empty body (CHN-015), or 404 for a user nobody enlisted
    (CHN-018)."""
    return (res.status == 200 and not res.body) or (not enlisted and res.status == 404)


@requirement("CHN-015")
def test_push_for_an_enlisted_user_is_answered_200_empty(kit: Kit, evidence, new_user):
    user = new_user()
    sub = user.user_visible_id
    audience = kit.gk.providers[PROVIDER_ID].audience
    cases = [
        ("application/json", _g_token(kit, sub), "a valid push"),
        ("application/json; charset=utf-8", _g_token(kit, sub), "Content-Type with a charset parameter"),
        ("application/json", _g_token(kit, sub, aud=[audience, "https://other.example"]),
         "aud as an array naming the provider"),
    ]
    wrong = []
    for ctype, token, what in cases:
        res = _push(kit, evidence, authorization=f"Bearer {token}", body=_to(sub),
                    content_type=ctype, what=what)
        if res.status != 200 or res.body:
            wrong.append(_describe(res, what))
    if wrong:
        fail("200 with an empty body for a valid push naming an enlisted user", "; ".join(wrong))


@requirement("CHN-016")
def test_push_accepts_a_newly_published_gatekeeper_key(kit: Kit, evidence, new_user):
    user = new_user()
    sub = user.user_visible_id
    res = _push(kit, evidence, authorization=f"Bearer {_g_token(kit, sub)}", body=_to(sub),
                what="push signed with G's current key")
    if res.status != 200:  # accepted; the empty body is CHN-015's business
        fail("200 for a push signed with G's published key", _describe(res, "current key"))
    # Published, not made current: G's own push and media tokens (other checks) stay signed
    # with the key every provider already knows.
    new = kit.call(kit.gk.keys.publish, kit.gk.keys.current.alg)
    try:
        res = _push(kit, evidence, authorization=f"Bearer {_g_token(kit, sub, key=new)}",
                    body=_to(sub), what="push signed with a key G has just published")
    finally:
        kit.call(kit.gk.keys.retire, new.kid)
    if res.status != 200:
        fail("200 after refetching G's JWK Set for the unknown kid",
             _describe(res, f"push signed with the new key {new.kid}"))


@requirement("CHN-016")
def test_push_without_a_valid_signature_is_refused(kit: Kit, evidence, harness: HarnessClient,
                                                   new_user):
    user = new_user()
    sub = user.user_visible_id
    _offline(kit, harness, user, wake_on_push=True)
    current = kit.gk.keys.current
    other_alg = "ES256" if current.alg == "EdDSA" else "EdDSA"
    good = _g_token(kit, sub)
    head, _, sig = good.split(".")
    forged_payload = _b64(json.dumps(_claims(kit, sub, jti="forged")).encode())
    jwk = current.public_jwk()
    public = base64.urlsafe_b64decode((jwk.get("x") or jwk["n"]) + "==")  # OKP/EC x, RSA modulus
    cases: list[tuple[str, str | None]] = [
        ("no Authorization header", None),
        ("Basic scheme", "Basic " + base64.b64encode(b"gatekeeper:secret").decode()),
        ("a G token under another scheme", f"Token {good}"),
        ("a bearer scheme without a token", "Bearer"),
        ("a bearer that is not a compact JWS", "Bearer not-a-jws"),
        ("a bearer with two segments", "Bearer " + ".".join(good.split(".")[:2])),
        ("alg none", "Bearer " + _unsigned({"alg": "none", "typ": "JWT", "kid": current.kid},
                                           _claims(kit, sub))),
        ("a payload changed under G's signature", f"Bearer {head}.{forged_payload}.{sig}"),
        ("a foreign key under G's kid",
         "Bearer " + _g_token(kit, sub, key=SigningKey(current.alg, kid=current.kid))),
        (f"alg {other_alg} under G's {current.alg} kid",
         "Bearer " + _g_token(kit, sub, key=SigningKey(other_alg, kid=current.kid))),
        ("HS256 keyed with G's public key under G's kid",
         "Bearer " + pyjwt.encode(_claims(kit, sub), public, algorithm="HS256",
                                  headers={"kid": current.kid})),
        ("a kid G does not publish (after a refetch)",
         "Bearer " + _g_token(kit, sub, key=SigningKey(current.alg))),
    ]
    mark = kit.mark()
    wrong = []
    for what, auth in cases:
        res = _push(kit, evidence, authorization=auth, body=_to(sub), what=what)
        if res.status not in (401, 403):
            wrong.append(_describe(res, what))
    if wrong:
        fail("401 or 403 for every push without a valid G signature", "; ".join(wrong))
    _assert_no_wake(kit, user, mark, "a refused push")


@requirement("CHN-017")
def test_push_with_bad_claims_is_refused(kit: Kit, evidence, harness: HarnessClient, new_user):
    user = new_user()
    sub = user.user_visible_id
    _offline(kit, harness, user, wake_on_push=True)
    now = int(kit.gk.clock())
    cases: list[tuple[str, dict[str, Any]]] = [
        ("exp 90 s in the past", {"iat": now - 3690, "exp": now - 90}),
        ("iat 90 s in the future", {"iat": now + 90, "exp": now + 3690}),
        ("nbf 90 s in the future", {"nbf": now + 90}),
        ("another iss", {"iss": "https://not-the-gatekeeper.invalid"}),
        ("an aud naming someone else", {"aud": "https://someone-else.invalid"}),
        ("an aud array without the provider", {"aud": ["https://a.invalid", "https://b.invalid"]}),
    ]
    mark = kit.mark()
    wrong = []
    for what, claims in cases:
        res = _push(kit, evidence, authorization=f"Bearer {_g_token(kit, sub, **claims)}",
                    body=_to(sub), what=what)
        if res.status not in (401, 403):
            wrong.append(_describe(res, what))
    if wrong:
        fail("401 or 403 for every push whose token claims are out of bounds", "; ".join(wrong))
    _assert_no_wake(kit, user, mark, "a refused push")


@requirement("CHN-018")
def test_push_for_unknown_users_and_malformed_bodies(kit: Kit, evidence, new_user):
    nobody = f"+1555{secrets.randbelow(10**8):08d}"
    stranger = new_user(enlist=False)
    unknown = [("a user-visible id nobody has", nobody),
               ("a provider user who never enlisted", stranger.user_visible_id)]
    problems = []
    for what, to in unknown:
        res = _push(kit, evidence, authorization=f"Bearer {_g_token(kit, to)}", body=_to(to), what=what)
        if not _accepted(res, enlisted=False):
            problems.append(_describe(res, what) + " (expected 200 empty or 404)")
    bodies = [("an array", b"[]"), ("a string", b'"+15550100"'), ("an empty object", b"{}"),
              ("to a number", b'{"to": 15550100}'), ("to null", b'{"to": null}'),
              ("to an array", b'{"to": ["+15550100"]}'), ("to an object", b'{"to": {"id": 1}}'),
              ("not JSON", b"to=+15550100"), ("truncated JSON", b'{"to": "+1555'),
              ("an empty body", b"")]
    for what, body in bodies:
        res = _push(kit, evidence, authorization=f"Bearer {_g_token(kit, nobody)}", body=body,
                    what=what)
        if res.status not in (400, 422):
            problems.append(_describe(res, what) + " (expected 400 or 422)")
    if problems:
        fail("200 empty or 404 for unknown users, 400 or 422 for malformed bodies, never 5xx",
             "; ".join(problems))


@requirement("CHN-019")
def test_push_wakes_the_offline_client(kit: Kit, evidence, harness: HarnessClient, new_user,
                                      g_user):
    user, g = new_user(), g_user()
    _offline(kit, harness, user, wake_on_push=True)
    mark = kit.mark()
    mid = _send_from_g(kit, g, user.login, "chn-019 while you were away")
    pushed = _wait(kit, "G's push for the queued message", since=mark, login=user.login,
                   kind="push_sent")
    if pushed["detail"].get("status") != 200:
        not_tested(f"the provider answered G's push with {pushed['detail'].get('status')} "
                   f"({pushed['detail'].get('error') or 'see CHN-015..CHN-017'}), not 200")
    done = _wait(kit, "the woken client to connect and acknowledge the message within 30 s",
                 since=mark, login=user.login, timeout=WAKE_LIMIT_S, kind="message_delivered", id=mid)
    took = (done["t"] - pushed["t"]) / 1000
    evidence.record("wake", push_to_ack_s=round(took, 3))
    if took > WAKE_LIMIT_S:
        fail("connected and acknowledged within 30 s of the push", f"after {took:.1f} s")


@requirement("CHN-020")
def test_push_tokens_in_rs256_and_the_declared_algorithms_are_accepted(kit: Kit, evidence,
                                                                       new_user):
    """G signs RS256 (the framework's sample); ES256 and EdDSA are accepted only when declared,
    each with the key G has published for it since the start of the run."""
    user = new_user()
    sub = user.user_visible_id
    declared = kit.declared_push_algs()
    evidence.record("push_algorithms", required=sorted(declared))
    wrong = []
    for alg in sorted(declared):
        key = kit.push_key(alg)
        token = _g_token(kit, sub, key=key)
        res = _push(kit, evidence, authorization=f"Bearer {token}", body=_to(sub),
                    what=f"push signed {alg} (header {pyjwt.get_unverified_header(token)})")
        if res.status != 200:
            wrong.append(_describe(res, f"{alg} with G's published key {key.kid}"))
    if wrong:
        fail(f"200 for valid pushes signed {', '.join(sorted(declared))} (RS256 always, the others "
             "as declared in push_token_algs)", "; ".join(wrong))
