"""Enlistment (spec §4.2, ENL-002..ENL-010), the user JWTs the client presents to G
(ID-005..ID-008) and the client's validation of G's TLS certificates (TRN-006).

Approach:

* Everything is judged on what the provider's client really sends. While a check runs, a
  *tap* opens a recording on the kit's gatekeeper simulator (``gk.script.start_recording``,
  closed afterwards) that keeps the raw enlistment requests and handshake payloads in memory. The simulator's own log stops at the first problem and never holds raw
  forms or tokens; the tap lets each requirement be judged on its own (an extra form field
  does not hide a bad signature, a token refused for its ``aud`` is still checked for its
  signature). Tokens and keys never go into verdict messages, only claims and sizes.
* Token checks (ID-005..ID-008) use the tokens of a fresh user's enlistment request and, when
  G accepted it, of the handshake that follows: the tokens the provider server issued for use.
  ID-007's "exp in the future when handed over" is judged against the user's creation time
  (a token for a fresh user cannot have been handed over earlier); a token that expired after
  that but before it was sent is the client's fault (ENL-010).
* ENL-007 makes G give a failed answer (``status: fail`` with a known or unknown reason, ``ok``
  without a usable login, a body that is not a JSON object, HTTP 500). G keeps no enlistment,
  and the check asks the client, through the harness, to enlist (must be reported as failed,
  with the reason), to connect (must not open a channel with the refused keys or use any login
  from the answer), and to enlist again three times (at most 3 requests within 60 s).
* ENL-006 reads the sender of each message stanza from G's ``stanza_received`` events; ENL-008
  also taps the simulator's stanza handler and compares the registration id and identity key
  of every PreKeySignalMessage with what G enlisted, whatever G thinks of the rest of the
  message. Both need an enlistment G accepted; when G refused it for another requirement's
  sake they are NOT_TESTED, naming the reason.
* TRN-006 points the client, with ``/reset``, at a stand-in for G on another port that serves a
  chosen certificate: correct (the control: the client must complete TLS with it, otherwise a
  refusal proves nothing), issued by a CA the client was not given, expired, issued for another
  name, or only TLS 1.0/1.1. A bad variant passes when the stand-in never sees a completed
  handshake (in TLS 1.3 the server's handshake completes only after the client accepted the
  certificate). The enlistment, chat-channel and, when the client handles media, media
  connections are tried. ``/reset`` forgets every harness user; checks run one at a time per
  worker and make fresh users, and the original configuration is restored in ``finally``.
"""
from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Self, TypeGuard
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conformance.gatekeeper import HTTP_500, EnlistmentOverride, EnlistmentRecord, Recording
from conformance.gatekeeper.enlistment import FIELD_SIZES, FIELDS, OPTIONAL_FIELDS, b64url_decode
from conformance.gatekeeper.tokens import TokenError, verify_signature
from conformance.harness_client import HarnessClient, HarnessError
from conformance.plugin import option
from conformance.verdicts import fail as _fail_verdict
from conformance.verdicts import not_tested as _not_tested_verdict
from reference_impl.signal import InvalidSignatureError, PublicKey, xeddsa
from reference_impl.signal.errors import InvalidKeyError
from reference_impl.signal.wire import pb as whisper_pb
from reference_impl.wire import stanzas_pb2 as pb

from .kit import Kit

requirement = pytest.mark.requirement
#: Part of the verdict rests on the provider harness' word (inbox, events) alone.
harness_attested = pytest.mark.harness_attested
JWKS_PATH = "/.well-known/oauth/openid/jwks"
MAX_TOKEN_BYTES = 4096
MAX_LIFETIME_S = 24 * 3600
IAT_FUTURE_S = 60
SLACK_S = 2  # spec §2: network slack on top of time limits
FORM_TYPE = "application/x-www-form-urlencoded"
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def fail(expected: str, observed: str) -> NoReturn:
    """:func:`conformance.verdicts.fail`, typed as not returning."""
    _fail_verdict(expected, observed)
    raise RuntimeError("fail() returned")


def not_tested(reason: str) -> NoReturn:
    """:func:`conformance.verdicts.not_tested`, typed as not returning."""
    _not_tested_verdict(reason)
    raise RuntimeError("not_tested() returned")


# ---------------------------------------------------------------------------------------------
# The tap: raw enlistment requests and handshake payloads as G receives them
# ---------------------------------------------------------------------------------------------
@dataclass
class EnlistRequest:
    body: bytes
    content_type: str
    t: float
    #: What G answered instead of its own verdict (ENL-007), or None.
    substituted: Any = None

    def pairs(self) -> list[tuple[str, str]] | None:
        """The form as (name, value) pairs, or None when it does not parse strictly."""
        try:
            return parse_qsl(self.body.decode("ascii"), keep_blank_values=True, strict_parsing=True,
                             max_num_fields=64)
        except (UnicodeDecodeError, ValueError):
            return None

    def field(self, name: str) -> str | None:
        """First value of ``name`` (lenient parse, so that other checks can still look)."""
        try:
            text = self.body.decode("ascii", "replace")
        except ValueError:
            return None
        return next((v for k, v in parse_qsl(text, keep_blank_values=True) if k == name), None)

    @property
    def token(self) -> str | None:
        return self.field("token")

    @property
    def sub(self) -> Any:
        return _claims_or_none(self.token).get("sub")


@dataclass
class Handshake:
    remote_static: bytes
    login: str
    token: str
    version: str
    t: float


_RAISE_500 = HTTP_500  # substitute answer: G fails with HTTP 500


class Tap:
    """Keeps, through the simulator's public hooks, the raw enlistment requests and handshake
    payloads G receives (``gk.script.start_recording``) and, with ``messages``, the
    ``message`` stanzas clients send; several taps may be open at once.

    ``substitute(request)`` may return an answer G sends instead of its own (the request is
    still validated and logged by G, with a scripted failure so that no enlistment is kept),
    ``_RAISE_500`` for an HTTP 500, or None to let G answer. ``force_ok`` turns a refusal by G
    into ``{"status":"ok"}`` with a made-up login (TRN-006: to reach the chat channel); with
    ``subs`` only for requests whose token names one of them (or has no readable token).
    """

    def __init__(self, kit: Kit, *, substitute: Callable[[EnlistRequest], Any] | None = None,
                 force_ok: bool = False, messages: bool = False,
                 subs: set[str] | None = None) -> None:
        self.kit = kit
        self.substitute = substitute
        self.force_ok = force_ok
        self.subs = subs
        self.capture_messages = messages
        self._rec: Recording | None = None
        self._override: EnlistmentOverride | None = None

    def __enter__(self) -> Self:
        self.kit.call(self._install, area="enlistment")
        return self

    def __exit__(self, *exc: object) -> None:
        self.kit.call(self._uninstall, area="enlistment")

    def _install(self) -> None:
        script = self.kit.gk.script
        self._rec = script.start_recording()
        if self.substitute is not None or self.force_ok:
            user_substitute = self.substitute

            def substitute(rec: EnlistmentRecord) -> Any:
                return user_substitute(_request(rec)) if user_substitute is not None else None

            def force_ok(rec: EnlistmentRecord) -> bool:
                if not self.force_ok:
                    return False
                sub = _request(rec).sub
                return self.subs is None or sub is None or sub in self.subs

            self._override = script.override_enlistments(substitute=substitute, force_ok=force_ok)

    def _uninstall(self) -> None:
        script = self.kit.gk.script
        if self._override is not None:
            script.end_override(self._override)
        if self._rec is not None:
            script.stop_recording(self._rec)

    @property
    def requests(self) -> list[EnlistRequest]:
        assert self._rec is not None
        return [_request(r) for r in list(self._rec.enlistments)]

    @property
    def handshakes(self) -> list[Handshake]:
        assert self._rec is not None
        return [Handshake(h.remote_static, h.login, h.token, h.version, h.t)
                for h in list(self._rec.handshakes)]

    def snapshot_messages(self) -> list[tuple[str | None, pb.Message]]:
        assert self._rec is not None
        rec = self._rec
        if not self.capture_messages:
            return []
        return self.kit.call(lambda: list(rec.messages), area="enlistment")


def _request(rec: EnlistmentRecord) -> EnlistRequest:
    return EnlistRequest(rec.body, rec.content_type, rec.t, rec.substituted)


def _only_mine(items: list[Any], is_mine: Callable[[Any], bool]) -> list[Any]:
    """Items captured during one harness call: normally exactly one; with more (a stray
    request of an earlier check's user), those that name this user, else all."""
    if len(items) <= 1:
        return items
    mine = [i for i in items if is_mine(i)]
    return mine or items


# ---------------------------------------------------------------------------------------------
# One fresh user through enlistment (and optionally the handshake)
# ---------------------------------------------------------------------------------------------
@dataclass
class Attempt:
    handle: str
    visible: str
    t_created: float
    mark: int
    login: str = ""
    error: HarnessError | None = None
    requests: list[EnlistRequest] = field(default_factory=list)
    connect_error: HarnessError | None = None
    handshakes: list[Handshake] = field(default_factory=list)
    t_done: float = 0.0

    def is_mine(self, req: EnlistRequest) -> bool:
        return req.sub in (self.visible, self.handle)

    @property
    def tokens(self) -> list[tuple[str, str]]:
        out = [("enlistment", r.token) for r in self.requests if r.token]
        out += [("handshake", h.token) for h in self.handshakes if h.token]
        return out


def enlist_fresh_user(kit: Kit, harness: HarnessClient, *, connect: bool = False,
                      tap: Tap | None = None) -> Attempt:
    t_created = time.time()
    created = harness.create_user(kit.unique("+1555"))
    att = Attempt(created["user"], created["user_visible_id"], t_created, kit.mark())
    with (nullcontext(tap) if tap is not None else Tap(kit)) as t:
        n = len(t.requests)
        try:
            att.login = str(harness.enlist(att.handle).get("login", ""))
        except HarnessError as exc:
            att.error = exc
        att.requests = _only_mine(t.requests[n:], att.is_mine)
        if connect and att.error is None:
            n = len(t.handshakes)
            try:
                harness.connect(att.handle)
            except HarnessError as exc:
                att.connect_error = exc
            att.handshakes = _only_mine(t.handshakes[n:], lambda h: h.login == att.login)
    att.t_done = time.time()
    return att


def g_verdict(kit: Kit, att: Attempt) -> dict[str, Any] | None:
    """G's own verdict on the attempt: the ``enlisted`` or ``enlist_failed`` event."""
    events = kit.events(since=att.mark)
    ok = [e for e in events if e["kind"] == "enlisted" and e["detail"].get("sub") in (att.visible, att.handle)]
    if ok:
        return ok[-1]
    bad = [e for e in events if e["kind"] == "enlist_failed"]
    return bad[-1] if bad else None


def require_accepted_enlistment(kit: Kit, att: Attempt, what: str) -> str:
    """The login G assigned; NOT_TESTED when G refused (another requirement's failure)."""
    verdict = g_verdict(kit, att)
    if verdict is None:
        not_tested(f"{what} needs an enlistment G accepts; no enlistment request reached G "
                   f"(harness: {att.error or 'no error'})")
    if verdict["kind"] == "enlist_failed":
        d = verdict["detail"]
        not_tested(f"{what} needs an enlistment G accepts; G refused it with reason "
                   f"{d.get('reason')!r} ({d.get('requirement')}: {d.get('detail')})")
    return str(verdict["login"])


def _record_forms(evidence: Any, requests: list[EnlistRequest]) -> None:
    for r in requests:
        pairs = r.pairs()
        evidence.record("enlistment_form", content_type=r.content_type[:80], size=len(r.body),
                        fields=[k for k, _ in pairs] if pairs is not None else "unparseable",
                        version=r.field("version"), substituted_answer=r.substituted)


def _require_requests(att: Attempt, what: str) -> list[EnlistRequest]:
    if not att.requests:
        not_tested(f"{what}: no enlistment request reached G during the harness enlist call "
                   f"(harness: {att.error or 'answered without error'})")
    return att.requests


# ---------------------------------------------------------------------------------------------
# JWT helpers (no verification: the kit checks each property separately)
# ---------------------------------------------------------------------------------------------
def _b64json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


class MalformedToken(ValueError):
    pass


def _jwt_parts(token: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS; MalformedToken when it is not one."""
    if not isinstance(token, str) or not _COMPACT_JWS.fullmatch(token):
        raise MalformedToken("not a JWS in compact serialization (three base64url segments)")
    head, payload, _ = token.split(".")
    try:
        header, claims = _b64json(head), _b64json(payload)
    except (ValueError, TypeError) as exc:
        raise MalformedToken(f"header or payload is not base64url JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise MalformedToken("header or payload is not a JSON object")
    return header, claims


def _claims_or_none(token: str | None) -> dict[str, Any]:
    try:
        return _jwt_parts(token)[1]
    except ValueError:
        return {}


def _numeric_date(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _presented_tokens(kit: Kit, harness: HarnessClient, evidence: Any) -> tuple[Attempt, list[tuple[str, str]]]:
    att = enlist_fresh_user(kit, harness, connect=True)
    _record_forms(evidence, att.requests)
    tokens = att.tokens
    if not tokens:
        not_tested("the client presented no user JWT to G (no enlistment request with a token; "
                   f"harness: {att.error or 'no error'})")
    for source, tok in tokens:
        try:
            header, claims = _jwt_parts(tok)
            shown: dict[str, Any] = {"header": header, "claims": {k: claims.get(k) for k in
                                                                  ("iss", "sub", "aud", "iat", "exp")}}
        except ValueError as exc:
            shown = {"error": str(exc)}
        evidence.record("user_jwt", source=source, size=len(tok.encode()), **shown)
    return att, tokens


# ---------------------------------------------------------------------------------------------
# ID-005 .. ID-008: the tokens the client presents
# ---------------------------------------------------------------------------------------------
@requirement("ID-005")
def test_presented_tokens_are_signed_with_a_published_key(kit: Kit, harness, evidence):
    _, tokens = _presented_tokens(kit, harness, evidence)
    res = kit.http.request("GET", kit.url(JWKS_PATH), evidence=evidence)
    try:
        keys = json.loads(res.body)["keys"] if res.status == 200 else None
    except (ValueError, KeyError, TypeError):
        keys = None
    if not isinstance(keys, list):
        fail("the JWK Set (ID-001) to verify the presented tokens against", res.describe())
    by_kid = {k.get("kid"): k for k in keys if isinstance(k, dict)}
    problems = []
    for source, tok in tokens:
        try:
            header, _ = _jwt_parts(tok)
        except ValueError as exc:
            problems.append(f"{source} token: {exc}")
            continue
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg.lower() == "none" or alg.upper().startswith("HS"):
            problems.append(f"{source} token: alg {alg!r} (none and HMAC are not allowed)")
            continue
        key = by_kid.get(kid) if isinstance(kid, str) and kid else None
        if key is None:
            problems.append(f"{source} token: kid {kid!r} is not in the published JWK Set "
                            f"(published: {sorted(map(str, by_kid))})")
            continue
        if key.get("alg") != alg:
            problems.append(f"{source} token: alg {alg!r} differs from its key's alg {key.get('alg')!r}")
            continue
        try:
            verify_signature(tok, key, alg)
        except TokenError as exc:
            problems.append(f"{source} token (kid {kid!r}): {exc.detail}")
    if problems:
        fail("compact JWS whose kid names a published key, alg equal to that key's alg, and a "
             "signature that verifies with it", "; ".join(problems))


@requirement("ID-006")
def test_presented_tokens_are_at_most_4096_bytes(kit: Kit, harness, evidence):
    _, tokens = _presented_tokens(kit, harness, evidence)
    big = [f"{source} token of {len(tok.encode())} bytes" for source, tok in tokens
           if len(tok.encode()) > MAX_TOKEN_BYTES]
    if big:
        fail(f"user JWTs of at most {MAX_TOKEN_BYTES} bytes", "; ".join(big))


@requirement("ID-007")
def test_presented_tokens_carry_the_required_claims(kit: Kit, harness, evidence):
    att, tokens = _presented_tokens(kit, harness, evidence)
    audience = kit.gk.settings.audience
    problems, issuers = [], set()
    for source, tok in tokens:
        try:
            _, c = _jwt_parts(tok)
        except ValueError as exc:
            problems.append(f"{source} token: {exc}")
            continue
        where = f"{source} token"
        issuers.add(json.dumps(c.get("iss")))
        if c.get("iss") != kit.issuer:
            problems.append(f"{where}: iss {c.get('iss')!r}, declared issuer is {kit.issuer!r}")
        if c.get("sub") != att.visible:
            problems.append(f"{where}: sub {c.get('sub')!r}, the user-visible id is {att.visible!r}")
        aud = c.get("aud")
        if not (aud == audience or (isinstance(aud, list) and audience in aud)):
            problems.append(f"{where}: aud {aud!r} does not name G's audience {audience!r}")
        iat, exp = c.get("iat"), c.get("exp")
        if not _numeric_date(iat) or not _numeric_date(exp):
            problems.append(f"{where}: iat {iat!r} / exp {exp!r} are not integer NumericDates")
            continue
        if iat >= exp:
            problems.append(f"{where}: iat {iat} is not before exp {exp}")
        if exp <= att.t_created - SLACK_S:
            problems.append(f"{where}: expired {int(att.t_created - exp)} s before the user even "
                            "existed, so it was expired when handed to the client")
        if iat > att.t_done + IAT_FUTURE_S + SLACK_S:
            problems.append(f"{where}: iat is {int(iat - att.t_done)} s in the future")
    if len(issuers) > 1:
        problems.append(f"iss differs between tokens: {sorted(issuers)}")
    if problems:
        fail("iss = the declared issuer (same in every token), sub = the user-visible id, aud "
             "naming G's audience, integer iat < exp, exp in the future and iat at most 60 s "
             "ahead when handed over", "; ".join(problems))


@requirement("ID-008")
def test_presented_tokens_live_at_most_24_hours(kit: Kit, harness, evidence):
    _, tokens = _presented_tokens(kit, harness, evidence)
    lifetimes = []
    for source, tok in tokens:
        c = _claims_or_none(tok)
        if _numeric_date(c.get("iat")) and _numeric_date(c.get("exp")):
            lifetimes.append((source, c["exp"] - c["iat"]))
    if not lifetimes:
        not_tested("no presented token has integer iat and exp (see ID-007)")
    long = [f"{source} token lives {life} s" for source, life in lifetimes if life > MAX_LIFETIME_S]
    if long:
        fail(f"exp - iat at most {MAX_LIFETIME_S} s (24 h)", "; ".join(long))


# ---------------------------------------------------------------------------------------------
# ENL-009, ENL-002 .. ENL-004, ENL-010: the enlistment request
# ---------------------------------------------------------------------------------------------
def _enlistment_forms(kit: Kit, harness: HarnessClient, evidence: Any) -> Attempt:
    att = enlist_fresh_user(kit, harness)
    _record_forms(evidence, att.requests)
    return att


def _decoded_fields(req: EnlistRequest) -> dict[str, bytes]:
    """The binary fields decoded (ENL-002 rules); NOT_TESTED when they cannot be (that is
    ENL-009's or ENL-002's failure, not the calling check's)."""
    out = {}
    for name, size in FIELD_SIZES.items():
        value = req.field(name)
        why = f"field {name} is missing" if value is None else ""
        if value is not None:
            try:
                out[name] = b64url_decode(value)
            except ValueError as exc:
                why = f"{name}: {exc}"
            else:
                if len(out[name]) != size:
                    why = f"{name} decodes to {len(out[name])} bytes, not {size}"
        if why:
            not_tested(f"the binary fields cannot be read ({why}; see ENL-009/ENL-002)")
    return out


#: The interop protocol version of profiles 1.0.0 and 1.1.0 (spec §3).
PROTOCOL_VERSION = "1.0.0"


@requirement("ENL-009")
def test_enlistment_is_a_form_post_with_exactly_the_eight_fields(kit: Kit, harness, evidence):
    att = _enlistment_forms(kit, harness, evidence)
    requests = att.requests
    if not requests:
        refused = kit.events(since=att.mark, kind="enlist_failed")
        fail("a form-encoded POST to G's enlistment URL over HTTPS",
             f"none reached G during the harness enlist call (G: {[e['detail'] for e in refused]}; "
             f"harness: {att.error or 'answered without error'})")
    problems = []
    for r in requests:
        ctype = r.content_type.split(";")[0].strip().lower()
        if ctype != FORM_TYPE:
            problems.append(f"Content-Type {r.content_type[:80]!r}")
        pairs = r.pairs()
        if pairs is None:
            problems.append(f"body does not parse as a form ({len(r.body)} bytes)")
            continue
        names = [k for k, _ in pairs]
        missing = sorted(FIELDS - set(names))
        extra = sorted(set(names) - FIELDS - OPTIONAL_FIELDS)  # version: allowed, not required
        repeated = sorted({n for n in names if names.count(n) > 1})
        if missing or extra or repeated:
            problems.append(f"fields missing {missing}, unexpected {extra[:8]}, repeated {repeated}")
    if problems:
        fail(f"Content-Type {FORM_TYPE} and each of {sorted(FIELDS)} exactly once, nothing else "
             f"but an optional single {sorted(OPTIONAL_FIELDS)}",
             "; ".join(problems))


@requirement("ENL-002")
def test_enlistment_binary_fields_are_unpadded_base64url_of_exact_sizes(kit: Kit, harness, evidence):
    att = _enlistment_forms(kit, harness, evidence)
    problems = []
    for r in _require_requests(att, "ENL-002"):
        for name, size in FIELD_SIZES.items():
            value = r.field(name)
            if value is None:
                continue  # a missing field is ENL-009's
            try:
                raw = b64url_decode(value)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if len(raw) != size:
                problems.append(f"{name} decodes to {len(raw)} bytes, expected {size}")
    if problems:
        fail("base64url without padding, decoding to 32/1/4/32/3/32/64 bytes", "; ".join(problems))


@requirement("ENL-003")
def test_enlistment_key_type_ids_and_distinct_keys(kit: Kit, harness, evidence):
    att = _enlistment_forms(kit, harness, evidence)
    problems = []
    for r in _require_requests(att, "ENL-003"):
        raw = _decoded_fields(r)
        if raw["e_keytype"] != b"\x05":
            problems.append(f"e_keytype 0x{raw['e_keytype'].hex()}")
        regid = int.from_bytes(raw["e_regid"], "big")
        if not 1 <= regid <= 16380:
            problems.append(f"e_regid {regid}")
        if int.from_bytes(raw["e_skey_id"], "big") == 0:
            problems.append("e_skey_id 0")
        if raw["authkey"] == raw["e_ident"]:
            problems.append("authkey equals e_ident")
        if raw["authkey"] == raw["e_skey_val"]:
            problems.append("authkey equals e_skey_val")
    if problems:
        fail("e_keytype 0x05, e_regid in 1..16380, e_skey_id not 0, authkey distinct from "
             "e_ident and e_skey_val", "; ".join(problems))


@requirement("ENL-004")
def test_enlistment_signed_pre_key_signature_verifies(kit: Kit, harness, evidence):
    att = _enlistment_forms(kit, harness, evidence)
    problems = []
    for r in _require_requests(att, "ENL-004"):
        raw = _decoded_fields(r)
        try:
            ident = PublicKey.from_bytes(b"\x05" + raw["e_ident"])
            xeddsa.verify(ident, b"\x05" + raw["e_skey_val"], raw["e_skey_sig"])
        except InvalidKeyError as exc:
            problems.append(f"e_ident is not a usable Curve25519 key ({exc})")
        except InvalidSignatureError:
            hint = ""
            for what, key, msg in (("e_ident over the raw 32-byte key", raw["e_ident"], raw["e_skey_val"]),
                                   ("authkey over 0x05 || e_skey_val", raw["authkey"], b"\x05" + raw["e_skey_val"])):
                try:
                    xeddsa.verify(PublicKey.from_bytes(b"\x05" + key), msg, raw["e_skey_sig"])
                    hint = f" (it is a signature by {what})"
                    break
                except (InvalidSignatureError, InvalidKeyError):
                    pass
            problems.append("e_skey_sig does not verify with e_ident over 0x05 || e_skey_val" + hint)
    if problems:
        fail("an XEdDSA signature by e_ident over the 33 bytes 0x05 || e_skey_val", "; ".join(problems))


@requirement("ENL-010")
def test_enlistment_token_and_version_when_sent(kit: Kit, harness, evidence):
    a = _enlistment_forms(kit, harness, evidence)
    b = _enlistment_forms(kit, harness, evidence)
    version = PROTOCOL_VERSION  # ENL-010's text names it; spec §3: 1.1.0 kept the wire version
    problems = []
    subs = {}
    for att in (a, b):
        for r in _require_requests(att, "ENL-010"):
            v = r.field("version")
            if v is not None and v != version:  # absent is legal since 1.1.0
                problems.append(f"version {v!r}, this profile is {version!r}")
            tok = r.token
            if not tok:
                problems.append("no token")
                continue
            try:
                _, claims = _jwt_parts(tok)
            except ValueError as exc:
                problems.append(f"token altered or wrapped: {exc}")
                continue
            subs[att.handle] = claims.get("sub")
            exp = claims.get("exp")
            # Expired after the user was created but before it was sent: held too long by the
            # client (a token already expired when issued is the server's fault, ID-007).
            if _numeric_date(exp) and att.t_created + SLACK_S < exp <= r.t:
                problems.append(f"token expired {int(r.t - exp)} s before it was sent")
    if a.handle in subs and b.handle in subs:
        sa, sb = subs[a.handle], subs[b.handle]
        if sa == sb or sa == b.visible or sb == a.visible:
            problems.append(f"two users enlisted with tokens for sub {sa!r} and {sb!r} "
                            f"(user-visible ids {a.visible!r}, {b.visible!r}): not each user's own token")
    if problems:
        fail(f"the user's own unexpired JWT, unchanged, and version {version!r} when sent", "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# ENL-006 .. ENL-008: the client's handling of G's answer
# ---------------------------------------------------------------------------------------------
@requirement("ENL-006")
def test_client_adopts_the_login_from_an_ok_answer(kit: Kit, harness, evidence, g_user):
    att = enlist_fresh_user(kit, harness, connect=True)
    login = require_accepted_enlistment(kit, att, "ENL-006")
    if att.error is not None:
        fail(f"the enlistment reported as done with login {login!r}", f"harness: {att.error}")
    if att.login != login:
        fail(f"the client's user id is G's login {login!r}", f"harness enlist answered login {att.login!r}")
    wrong = [h.login for h in att.handshakes if h.login != login]
    if wrong:
        fail(f"handshake payload login {login!r}", f"handshake login(s) {wrong!r}")
    if att.connect_error is not None:
        not_tested(f"the sender check needs a connection; connect failed: {att.connect_error}")
    if not att.handshakes:
        not_tested("no handshake reached G during the harness connect call")
    peer = g_user()
    mark = kit.mark()
    mid = harness.send_text(att.handle, peer.id, "ENL-006 sender check")
    try:  # G logs every stanza it receives on this login's connection, with its sender
        kit.wait_event(area="enlistment", since=mark, kind="stanza_received", login=login,
                       type="message")
    except TimeoutError:
        not_tested(f"the message {mid!r} to a G user never reached G (no sender to check)")
    senders = [e["detail"].get("sender") for e in kit.events(since=att.mark, kind="stanza_received",
                                                              login=login, type="message")]
    wrong = [s for s in senders if s != login]
    if wrong:
        fail(f"every message stanza with sender {login!r}",
             f"{len(wrong)} of {len(senders)} with sender {sorted(set(map(str, wrong)))}")


def _prekey_identity(ciphertext: bytes) -> tuple[int, bytes] | None:
    """(registration id, identity key) of a PreKeySignalMessage, read leniently (whatever its
    version byte: that is E2E-001's business), or None when it does not parse."""
    m = whisper_pb.PreKeySignalMessage()
    try:
        m.ParseFromString(ciphertext[1:])
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError and friends
        return None
    if not m.HasField("identity_key"):
        return None
    return m.registration_id, bytes(m.identity_key)


@requirement("ENL-008")
def test_prekey_messages_carry_the_enlisted_identity(kit: Kit, harness, evidence, g_user):
    with Tap(kit, messages=True) as tap:
        att = enlist_fresh_user(kit, harness, connect=True, tap=tap)
        login = require_accepted_enlistment(kit, att, "ENL-008")
        if att.connect_error is not None or att.error is not None:
            not_tested(f"needs an enlisted, connected client; harness: {att.error or att.connect_error}")
        acct = kit.call(lambda: kit.gk.accounts.get(login), area="enlistment")
        if acct is None:
            not_tested(f"G no longer holds the enlistment of {login}")
        enlisted = (acct.registration_id, acct.identity_key.serialize())
        for n, peer in enumerate((g_user(), g_user())):
            if n == 1:
                try:  # a new signed pre-key does not change what was enlisted
                    harness.rotate_signed_prekey(att.handle)
                except HarnessError as exc:
                    evidence.record("note", detail=f"rotate-signed-prekey not available: {exc}")
            mark = kit.mark()
            harness.send_text(att.handle, peer.id, f"ENL-008 check {n}")
            try:
                kit.wait_event(area="enlistment", since=mark, kind="stanza_received", login=login,
                               type="message", recipient=peer.id)
            except TimeoutError:
                not_tested(f"the client's first message to G user {n + 1} never reached G")
        sent = [m for who, m in tap.snapshot_messages() if who == login]
    prekey = [m for m in sent if m.type == pb.ENC_TYPE_PKMSG]
    evidence.record("prekey_messages", sent=len(sent), pkmsg=len(prekey))
    if not prekey:
        not_tested(f"no PreKeySignalMessage to inspect ({len(sent)} messages, none pkmsg; see E2E-002)")
    problems = []
    for m in prekey:
        got = _prekey_identity(bytes(m.ciphertext))
        if got is None:
            problems.append(f"to {m.recipient}: not a parseable PreKeySignalMessage")
        elif got != enlisted:
            what = [w for w, mine, want in (("registration id", got[0], enlisted[0]),
                                      ("identity key", got[1], enlisted[1])) if mine != want]
            problems.append(f"to {m.recipient}: {' and '.join(what)} not the enlisted one "
                            f"(registration id {got[0]} vs {enlisted[0]})")
    violations = kit.events(since=att.mark, kind="violation", login=login)
    problems += [f"G: {e['detail'].get('detail')}" for e in violations
                 if e["detail"].get("requirement") == "ENL-008"]
    if problems:
        fail("every PreKeySignalMessage with the enlisted registration id and 0x05 || e_ident",
             "; ".join(problems))


_FAILED_ANSWERS: dict[str, tuple[Any, str | None]] = {
    "fail_known_reason": ({"status": "fail", "reason": "bad_integrator"}, "bad_integrator"),
    "fail_unknown_reason": ({"status": "fail", "reason": "kit_future_reason"}, "kit_future_reason"),
    "ok_without_login": ({"status": "ok"}, None),
    "ok_empty_login": ({"status": "ok", "login": ""}, None),
    "not_a_json_object": ([{"status": "ok", "login": "9-00000000000001@interop"}], None),
    "http_500": (_RAISE_500, None),
}


def _reported(harness: HarnessClient, handle: str, exc: HarnessError | None, after: int,
              reason: str | None) -> str | None:
    """None when the failure was reported (422 enlistment-failed, or an enlistment_failed
    event), with ``reason`` when G gave one; else what was seen instead."""
    problem = exc.problem if exc is not None and exc.status == 422 else None
    problem_ok = problem is not None and exc is not None and exc.type.endswith("enlistment-failed")
    try:
        events = [e for e in harness.events(handle, after) if e.get("type") == "enlistment_failed"]
    except HarnessError:
        events = []
    if not problem_ok and not events:
        return f"harness answered {exc.status if exc else 200}: {exc or 'enlisted'} and no enlistment_failed event"
    if reason is not None:
        given = ([problem.get("reason")] if problem_ok and problem else []) + [e.get("reason") for e in events]
        if reason not in given:
            return f"failure reported with reason(s) {given!r}, not G's {reason!r}"
    return None


@harness_attested
@requirement("ENL-007")
@pytest.mark.parametrize("answer", list(_FAILED_ANSWERS), ids=list(_FAILED_ANSWERS))
def test_failed_enlistment_is_reported_and_not_used(kit: Kit, harness, evidence, answer):
    body, reason = _FAILED_ANSWERS[answer]
    created = harness.create_user(kit.unique("+1555"))
    handle, visible = created["user"], created["user_visible_id"]
    try:
        after = max([int(e.get("seq", 0)) for e in harness.events(handle)] + [0])
    except HarnessError:
        after = 0

    def substitute(req: EnlistRequest) -> Any:
        tok = req.token
        mine = req.sub in (visible, handle) or not _claims_or_none(tok)
        return body if mine else None

    problems: list[str] = []
    with Tap(kit, substitute=substitute) as tap:
        try:
            got = harness.enlist(handle)
            problems.append(f"harness reported the user enlisted (login {got.get('login')!r})")
            exc = None
        except HarnessError as e:
            exc = e
        if not problems:
            why = _reported(harness, handle, exc, after, reason)
            if why:
                problems.append(why)
        # The user tries to go online: no channel with the refused keys, no login from the answer.
        try:
            harness.connect(handle)
        except HarnessError:
            pass
        # The user retries three times at once: at most 3 requests within 60 s.
        for _ in range(3):
            try:
                got = harness.enlist(handle)
                problems.append(f"a retry was reported enlisted (login {got.get('login')!r})")
            except HarnessError:
                pass
        mine = [r for r in tap.requests if r.substituted is not None]
        handshakes = list(tap.handshakes)
    _record_forms(evidence, mine)
    if not mine:
        not_tested("no enlistment request of this user reached G, so no failed answer was given "
                   "(see ENL-009)")
    authkeys = set()
    for r in mine:
        try:
            authkeys.add(b64url_decode(r.field("authkey") or ""))
        except ValueError:
            pass
    fake = body[0]["login"] if isinstance(body, list) else None
    used = [h for h in handshakes if h.remote_static in authkeys or (fake and h.login == fake)]
    if used:
        problems.append(f"{len(used)} chat-channel handshake(s) with the refused keys "
                        f"(logins {[h.login for h in used]!r})")
    span = mine[-1].t - mine[0].t
    if len(mine) > 3 and span < 60:
        problems.append(f"{len(mine)} enlistment requests for the user within {span:.1f} s")
    if problems:
        fail(f"answer {answer} treated as a failed enlistment: reported to the user"
             + (f" with reason {reason!r}" if reason else "")
             + ", no chat-channel connection with the tried keys, at most 3 requests per 60 s",
             "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# TRN-006: the client validates G's certificate
# ---------------------------------------------------------------------------------------------
class _Ca:
    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=30))
                     .not_valid_after(now + datetime.timedelta(days=7))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                                    critical=False)
                     .sign(self.key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, names: list[str], *, expired: bool = False) -> tuple[str, str]:
        now = datetime.datetime.now(datetime.UTC)
        start, end = ((now - datetime.timedelta(days=20), now - datetime.timedelta(days=1)) if expired
                      else (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=7)))
        san: list[x509.GeneralName] = []
        for n in dict.fromkeys(names):
            try:
                san.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                san.append(x509.DNSName(n))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(self.name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName(san), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        pem = serialization.Encoding.PEM
        return (cert.public_bytes(pem).decode(),
                key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode())


def _server_context(cert_key: tuple[str, str], *, old_tls: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="decoy-tls-") as d:
        cert, key = Path(d, "cert.pem"), Path(d, "key.pem")
        cert.write_text(cert_key[0])
        key.write_text(cert_key[1])
        ctx.load_cert_chain(cert, key)
    ctx.options |= ssl.OP_NO_TICKET  # no resumption across variants
    ctx.num_tickets = 0
    if old_tls:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version, ctx.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


#: Stand-in variants; "valid" is the control and always goes first.
MODES = ("valid", "untrusted", "expired", "wrong_name", "tls_1_1")
_MODE_TEXT = {"untrusted": "a certificate from a CA the client was not given",
              "expired": "an expired certificate", "wrong_name": "a certificate for another name",
              "tls_1_1": "TLS 1.0/1.1 only"}


class Decoy:
    """A TLS endpoint standing in for G (threads, blocking sockets). Each accepted connection
    is served with the current ``mode``'s certificate; after a completed handshake it reads
    the request head and answers 503. ``records`` says what each connection got to."""

    def __init__(self, bind: str, host: str) -> None:
        self.trusted = _Ca("Conformance kit stand-in CA")
        impostor = _Ca("Conformance kit impostor CA (not given to the client)")
        names = [host, bind, "localhost", "127.0.0.1", "::1"]
        names = [n for n in names if n not in ("0.0.0.0", "::")]
        self.contexts = {
            "valid": _server_context(self.trusted.issue(names)),
            "untrusted": _server_context(impostor.issue(names)),
            "expired": _server_context(self.trusted.issue(names, expired=True)),
            "wrong_name": _server_context(self.trusted.issue(["gatekeeper-impostor.invalid"])),
            "tls_1_1": _server_context(self.trusted.issue(names), old_tls=True),
        }
        self.mode = "valid"
        self.records: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self._sock = socket.create_server((bind, 0), family=family)
        self._sock.settimeout(0.5)
        port = self._sock.getsockname()[1]
        self.base = f"https://{f'[{host}]' if ':' in host else host}:{port}"
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, name="tls-decoy", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            rec = {"mode": self.mode, "peer": f"{peer[0]}:{peer[1]}", "outcome": "pending",
                   "closed": False}
            with self._cond:
                self.records.append(rec)
                self._cond.notify_all()
            threading.Thread(target=self._serve, args=(conn, rec), daemon=True).start()

    def _serve(self, conn: socket.socket, rec: dict[str, Any]) -> None:
        conn.settimeout(5)
        tls = None
        try:
            tls = self.contexts[rec["mode"]].wrap_socket(conn, server_side=True)
            rec.update(outcome="completed", version=tls.version())
            self._notify()
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                head += chunk
            rec["request"] = head.split(b"\r\n", 1)[0][:120].decode("latin-1")
            tls.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                        b"Connection: close\r\n\r\n")
        except (ssl.SSLError, OSError) as exc:
            if rec["outcome"] == "pending":
                rec.update(outcome="refused", error=f"{type(exc).__name__}: {exc}"[:200])
        finally:
            try:
                (tls or conn).close()
            except OSError:
                pass
            rec["closed"] = True
            self._notify()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.records)

    def settled(self, since: int, *, need: int = 0, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Connections from ``since`` on, once at least ``need`` arrived and all are over
        (bounded; a handshake still pending at the end counts as not completed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                recs = self.records[since:]
                if len(recs) >= need and all(r["closed"] for r in recs):
                    return [dict(r) for r in recs]
                left = deadline - time.monotonic()
                if left <= 0:
                    return [dict(r) for r in recs]
                self._cond.wait(left)

    def close(self) -> None:
        self._stop = True
        try:
            self._sock.close()
        finally:
            self._thread.join(2)


@pytest.fixture
def decoy(kit: Kit, pytestconfig: pytest.Config) -> Iterator[Decoy]:
    listen = option(pytestconfig, "gatekeeper_listen") or "127.0.0.1:0"
    bind = listen.rpartition(":")[0].strip("[]") or "127.0.0.1"
    host = urlsplit(kit.gk.public_url).hostname or "127.0.0.1"
    d = Decoy(bind, host)
    try:
        yield d
    finally:
        d.close()


@contextmanager
def pointed_at(kit: Kit, harness: HarnessClient, decoy: Decoy, **urls: str) -> Iterator[None]:
    """``/reset`` the harness to G's configuration with some URLs on the stand-in (whose CA is
    added to the trusted bundle); the real configuration is restored afterwards."""
    config = dict(kit.gk.config_for_provider())
    config.update(urls)
    config["ca_certificates"] = config["ca_certificates"].rstrip("\n") + "\n" + decoy.trusted.pem
    harness.reset(config)
    try:
        yield
    finally:
        harness.reset(kit.gk.config_for_provider())


def _judge_mode(evidence: Any, mode: str, records: list[dict[str, Any]], what: str,
                problems: list[str]) -> bool:
    """Record the stand-in's view; add a problem when a bad variant was accepted. Returns
    whether any handshake completed."""
    for r in records:
        evidence.record("stand_in_tls", exchange=True, connection=what,
                        **{k: v for k, v in r.items() if k != "closed"})
    done = [r for r in records if r["outcome"] == "completed"]
    if mode != "valid" and done:
        problems.append(f"{what}: completed TLS {done[0].get('version')} with {_MODE_TEXT[mode]}"
                        + (f", then sent {done[0]['request']!r}" if done[0].get("request") else ""))
    return bool(done)


def _control_failed(what: str, records: list[dict[str, Any]]) -> None:
    not_tested(f"the client did not complete TLS with a correctly certified stand-in for G on its "
               f"{what} connection (seen: {records or 'no connection'}), so a refusal of a bad "
               "certificate could not be told from a broken setup")


@requirement("TRN-006")
def test_client_validates_g_certificate_on_enlistment(kit: Kit, harness, evidence, decoy: Decoy):
    problems: list[str] = []
    with pointed_at(kit, harness, decoy, enlist_url=decoy.base + "/3p/interop_reg"):
        for mode in MODES:
            decoy.mode = mode
            since = decoy.mark()
            handle = harness.create_user(kit.unique("+1555"))["user"]  # fresh: no rate limit
            try:
                got = harness.enlist(handle)
                if mode != "valid":
                    problems.append(f"enlistment with {_MODE_TEXT[mode]} reported done ({got})")
            except HarnessError:
                pass
            records = decoy.settled(since)
            if not _judge_mode(evidence, mode, records, "enlistment", problems) and mode == "valid":
                _control_failed("enlistment", records)
    if problems:
        fail("the enlistment connection aborted on an untrusted, expired or wrongly named "
             "certificate and on TLS below 1.2", "; ".join(problems))


def _claims_media(kit: Kit, harness: HarnessClient) -> bool:
    if any(r.startswith("MED-") for r in kit.profile.ids()):
        return True
    try:
        return "media" in harness.info().get("profiles", [])
    except HarnessError:
        return False


@requirement("TRN-006")
def test_client_validates_g_certificate_on_chat_and_media(kit: Kit, harness, evidence, decoy: Decoy,
                                                         g_user):
    problems: list[str] = []
    chat = "wss" + decoy.base[len("https"):] + "/chat"
    with pointed_at(kit, harness, decoy, chat_url=chat):
        created = harness.create_user(kit.unique("+1555"))
        handle = created["user"]
        # G's answer is forced to ok if G refuses (another requirement's failure), so that the
        # client goes on to the chat channel, which is the stand-in anyway.
        with Tap(kit, force_ok=True, subs={handle, created["user_visible_id"]}):
            try:
                harness.enlist(handle)
            except HarnessError as exc:
                not_tested(f"the client did not enlist, so it has no chat channel to open: {exc}")
        for mode in MODES:
            decoy.mode = mode
            since = decoy.mark()
            try:
                harness.connect(handle)
                if mode != "valid":
                    problems.append(f"chat channel with {_MODE_TEXT[mode]} reported connected")
            except HarnessError:
                pass
            records = decoy.settled(since)
            if not _judge_mode(evidence, mode, records, "chat channel", problems) and mode == "valid":
                _control_failed("chat-channel", records)
    if _claims_media(kit, harness):
        _media_part(kit, harness, evidence, decoy, g_user, problems)
    else:
        evidence.record("note", detail="the client does not handle media: media connections not tried")
    if problems:
        fail("chat-channel and media connections aborted on an untrusted, expired or wrongly "
             "named certificate and on TLS below 1.2", "; ".join(problems))


def _media_part(kit: Kit, harness: HarnessClient, evidence: Any, decoy: Decoy, g_user: Any,
                problems: list[str]) -> None:
    """Media downloads from a stand-in media host; needs a working channel with G, so it is
    skipped (with a note) when G refuses this client for another requirement's sake."""
    with pointed_at(kit, harness, decoy, media_host=decoy.base + "/media"):
        att = enlist_fresh_user(kit, harness, connect=True)
        if att.error is not None or att.connect_error is not None or not kit.gk.is_connected(att.login):
            evidence.record("note", detail="media connections not tried: no channel with G "
                            f"({att.error or att.connect_error})")
            return
        peer = g_user()
        for mode in MODES:
            decoy.mode = mode
            since = decoy.mark()
            mid, _ = kit.call(peer.send_media, att.login, secrets.token_bytes(512), "image",
                              mimetype="image/jpeg", area="media")
            records = decoy.settled(since, need=1, timeout=kit.timeout("media"))
            if not records:
                evidence.record("note", detail=f"media {mid} ({mode}): no download attempt")
                if mode == "valid":
                    evidence.record("note", detail="media connections not judged: the client did "
                                    "not fetch media from the media host")
                    return
                continue
            if not _judge_mode(evidence, mode, records, "media", problems) and mode == "valid":
                evidence.record("note", detail="media connections not judged: no TLS completed "
                                "with a correctly certified media host")
                return
