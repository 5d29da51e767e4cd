"""Transport (spec §9): TLS versions and suites, HTTP/1.1 and HTTP/2, no cleartext (TRN-001..005).

Handshakes are made with the standard ``ssl`` module against the target's host and port, with
the client side deliberately permissive (security level 0) so that a refusal is the server's,
not OpenSSL's default policy. TRN-006 (the client validating G's certificate) is in
``test_enlistment.py`` with the other client-side checks.
"""
from __future__ import annotations

import ssl
import warnings
from urllib.parse import urlsplit

import pytest

from conformance.bounded_socket import SocketDeadline
from conformance.verdicts import fail

from .kit import Kit

requirement = pytest.mark.requirement
AEAD_ECDHE_12 = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
                 "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
                 "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305")
WEAK_12 = ("AES128-SHA", "AES256-SHA", "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA256",
           "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA256",
           "ECDHE-ECDSA-AES128-SHA256", "DHE-RSA-AES128-SHA", "DES-CBC3-SHA")


def _endpoint(kit: Kit) -> tuple[str, int, bool]:
    u = urlsplit(kit.target)
    return u.hostname or "", u.port or (443 if u.scheme == "https" else 80), u.scheme == "https"


def _context(kit: Kit, *, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion,
             ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    verify = kit.http.verify
    if verify is False:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, ssl.SSLContext):
        ctx = _clone_trust(verify)  # trust what the kit trusts (a CA bundle for embedded runs)
    else:
        ctx.load_default_certs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are offered on purpose
        ctx.minimum_version, ctx.maximum_version = minimum, maximum
    ctx.set_ciphers((ciphers or "ALL") + ":@SECLEVEL=0")
    return ctx


def _clone_trust(base: ssl.SSLContext) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for cert in base.get_ca_certs(binary_form=True):
        ctx.load_verify_locations(cadata=ssl.DER_cert_to_PEM_cert(cert))
    return ctx


def _handshake(kit: Kit, evidence, ctx: ssl.SSLContext, what: str) -> tuple[str | None, str | None, str]:
    """(version, cipher, error) of one TLS handshake with the target."""
    version, cipher, _, err = _handshake_alpn(kit, evidence, ctx, what)
    return version, cipher, err


def _deadline(kit: Kit) -> SocketDeadline:
    """The probe's total budget (profile ``deadlines.exchange``); each step also within the area timeout."""
    return SocketDeadline(kit.profile.deadline("exchange"), op_timeout=kit.timeout("transport"))


def _handshake_alpn(kit: Kit, evidence, ctx: ssl.SSLContext,
                    what: str) -> tuple[str | None, str | None, str | None, str]:
    """(version, cipher, selected ALPN protocol, error) of one TLS handshake with the target.

    A peer that answers within the deadline (a handshake, an alert, a close) is an exchange. One
    that stays silent or trickles until the deadline is neither a handshake nor a refusal: the
    check FAILs on it, so a silent target cannot pass "old versions are refused"."""
    host, port, _ = _endpoint(kit)
    dl = _deadline(kit)
    try:
        raw = dl.connect(host, port)
    except OSError as exc:
        # No TCP connection: nothing was exchanged with the provider, so a refused handshake
        # proves nothing (a dead target must not pass "old versions are refused").
        evidence.record("tls", exchange=False, attempt=what, error=f"connect: {type(exc).__name__}: {exc}")
        return None, None, None, f"no connection: {type(exc).__name__}: {exc}"
    try:
        with raw, dl.watch(raw):
            raw.settimeout(dl.timeout())
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                version, cipher, alpn = tls.version(), tls.cipher()[0], tls.selected_alpn_protocol()
        evidence.record("tls", exchange=True, attempt=what, version=version, cipher=cipher, alpn=alpn)
        return version, cipher, alpn, ""
    except (ssl.SSLError, OSError) as exc:
        silent = dl.expired or isinstance(exc, TimeoutError)
        evidence.record("tls", exchange=True, attempt=what, error=f"{type(exc).__name__}: {exc}",
                        deadline_hit=dl.expired)
        if silent:
            bound = f"the {dl.seconds:g} s deadline" if dl.expired else \
                f"the {kit.timeout('transport'):g} s transport timeout"
            fail(f"an answer to the TLS handshake ({what}): completed, or refused with an alert or close",
                 f"the peer stayed silent or trickled until {bound}")
        return None, None, None, f"{type(exc).__name__}: {exc}"


def _require_https(kit: Kit) -> None:
    if not _endpoint(kit)[2]:
        fail("an https:// target (provider-server endpoints are served over TLS)", kit.target)


@requirement("TRN-001")
def test_tls_1_2_or_later_with_a_valid_certificate(kit: Kit, evidence):
    _require_https(kit)
    ctx = _context(kit, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.MAXIMUM_SUPPORTED)
    version, _, err = _handshake(kit, evidence, ctx, "TLS >= 1.2 with certificate and host-name checks")
    if version is None:
        fail("a TLS 1.2+ handshake with a certificate chain valid for the host name", err)


@requirement("TRN-001")
@pytest.mark.parametrize("old", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLS1.0", "TLS1.1"])
def test_old_protocol_versions_are_refused(kit: Kit, evidence, old):
    _require_https(kit)
    ctx = _context(kit, minimum=old, maximum=old)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    version, cipher, _ = _handshake(kit, evidence, ctx, f"only {old.name} offered")
    if version is not None:
        fail(f"the handshake offering only {old.name} refused", f"negotiated {version} / {cipher}")


@requirement("TRN-002")
def test_tls_1_3_is_chosen_when_offered(kit: Kit, evidence):
    _require_https(kit)
    ctx = _context(kit, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.MAXIMUM_SUPPORTED)
    version, _, err = _handshake(kit, evidence, ctx, "TLS 1.2 and 1.3 offered")
    if version != "TLSv1.3":
        fail("TLS 1.3 negotiated when the client offers it", version or err)


@requirement("TRN-003")
def test_tls_1_2_selects_only_ecdhe_aead_suites(kit: Kit, evidence):
    _require_https(kit)
    ctx = _context(kit, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2,
                   ciphers=":".join(WEAK_12))
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    version, cipher, _ = _handshake(kit, evidence, ctx, "TLS 1.2 offering only non-ECDHE or non-AEAD suites")
    if version is not None:
        fail("no TLS 1.2 handshake with a non-(EC)DHE or non-AEAD suite", f"negotiated {cipher}")
    ctx = _context(kit, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2)
    version, cipher, err = _handshake(kit, evidence, ctx, "TLS 1.2 offering every suite")
    if version is None:
        fail("a TLS 1.2 handshake when every suite is offered (TLS 1.2 support)", err)
    if cipher not in AEAD_ECDHE_12:
        fail("an ECDHE suite with AES-GCM or ChaCha20-Poly1305", f"{cipher}")


@requirement("TRN-004")
def test_http1_and_http2_serve_the_same_responses(kit: Kit, evidence):
    _require_https(kit)
    path = "/.well-known/oauth/openid/jwks"
    for offered, wanted in ((["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")):
        ctx = _context(kit, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.MAXIMUM_SUPPORTED)
        ctx.set_alpn_protocols(offered)
        _, _, alpn, err = _handshake_alpn(kit, evidence, ctx, f"ALPN {offered}")
        if alpn != wanted:
            fail(f"ALPN selects {wanted!r} when the client offers {offered}", alpn or err or "no ALPN")
    r1 = kit.http.request("GET", kit.url(path), evidence=evidence, http2=False)
    r2 = kit.http.request("GET", kit.url(path), evidence=evidence, http2=True)
    if r2.http_version != "HTTP/2":
        fail("HTTP/2 negotiated with ALPN h2", r2.describe())
    if r1.http_version != "HTTP/1.1":
        fail("HTTP/1.1 served when only http/1.1 is offered", r1.describe())
    if (r1.status, r1.body) != (r2.status, r2.body):
        fail("the same status and body over both", f"HTTP/1.1: {r1.describe()}; HTTP/2: {r2.describe()}")
    m1 = kit.http.request("HEAD", kit.media_base + "/" + "A" * 43, evidence=evidence, http2=False)
    m2 = kit.http.request("HEAD", kit.media_base + "/" + "A" * 43, evidence=evidence, http2=True)
    if m1.status != m2.status:
        fail("the same status for an unknown media reference over both",
             f"HTTP/1.1 {m1.status}, HTTP/2 {m2.status}")


@requirement("TRN-005")
def test_no_cleartext_service_on_the_target_port(kit: Kit, evidence):
    host, port, https = _endpoint(kit)
    if not https:
        fail("JWKS, push and media only over TLS", f"target is cleartext: {kit.target}")
    request = (f"GET /.well-known/oauth/openid/jwks HTTP/1.1\r\nHost: {host}\r\n"
               "Connection: close\r\n\r\n").encode()
    data = b""
    dl = _deadline(kit)
    try:
        conn = dl.connect(host, port)
    except OSError as exc:
        # A port that accepts no connection at all is a dead target, not a refusal of cleartext:
        # recorded as no exchange, so the vacuous-pass guard reports ERROR.
        evidence.record("cleartext", exchange=False, outcome=f"no connection: {exc}")
        return
    try:
        with conn as s, dl.watch(s):
            s.settimeout(dl.timeout())
            s.sendall(request)
            while len(data) < 65536:
                s.settimeout(dl.timeout())
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        if (dl.expired or isinstance(exc, TimeoutError)) and b"\r\n" not in data:
            # Silence (or a trickle) is neither a refusal nor a cleartext answer: no evidence
            # either way, so the vacuous-pass guard reports ERROR instead of a PASS.
            evidence.record("cleartext", exchange=False, deadline_hit=dl.expired,
                            outcome=f"no answer within the deadline after {len(data)} bytes: {exc}")
            return
        if b"\r\n" not in data:
            evidence.record("cleartext", exchange=True, outcome=f"refused: {exc}")
            return
        # A status line arrived before the trickle stalled: judge what was served.
    if dl.expired and b"\r\n" not in data:  # the watchdog's shutdown ends recv() with b""
        evidence.record("cleartext", exchange=False, deadline_hit=True,
                        outcome=f"no answer within the deadline after {len(data)} bytes")
        return
    evidence.record("cleartext", exchange=True, outcome=data[:120].decode("latin-1"))
    status_line = data.split(b"\r\n", 1)[0]
    parts = status_line.split()
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1] == b"200":
        fail("refusal, a bodiless redirect to https, or 4xx on cleartext HTTP",
             status_line.decode("latin-1"))
    if len(parts) >= 2 and parts[1].startswith(b"3") and b"\r\n\r\n" in data and data.split(b"\r\n\r\n", 1)[1].strip():
        fail("a redirect without a body", status_line.decode("latin-1") + " with a body")
