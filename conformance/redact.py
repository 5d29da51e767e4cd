"""Redaction of secrets before anything is written: reports, wire logs, evidence bundles, the
simulator's event log and check messages quoting a provider. The one module for it.

Two rules, both conservative: values under a secret-sounding key are replaced whatever they
are, and anything shaped like a JWT, a PEM private key or a bearer credential is replaced
wherever it appears. Hashes (fileSha256 and the like) stay: an auditor needs them.
:func:`redact` is for reports and wire logs, :func:`redact_event` for the simulator's event
log (it keeps fingerprints), :func:`quote_untrusted` for provider bytes in a message.
"""
from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["EVENT_SECRET_KEYS", "SECRET_KEY_RE", "quote_untrusted", "redact", "redact_event",
           "redact_known", "redact_text", "register_secret"]

SECRET_KEY_RE = re.compile(
    r"(private|secret|password|passwd|token|jwt|authori[sz]ation|media_?key|mediakey|"
    r"authkey|chain_?key|root_?key|cipher_?key|mac_?key|signing_?key_private|seed|^d$|^p$|^q$|^dp$|^dq$|^qi$|^k$)",
    re.IGNORECASE,
)
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_PEM_RE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)
# A PEM block cut off before its END line (a truncated quote of a body) is still a key.
_PEM_OPEN_RE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*", re.DOTALL)
# Runs of hex or base64 long enough to be a 32-byte key (64 hex / 43 base64 characters) or more.
# Only for bytes quoted from an untrusted peer: a provider's body has no hash an auditor needs
# in a check *message* (the wire log keeps fingerprints), but it may hold a raw key.
_KEYLIKE_RE = re.compile(r"(?<![A-Za-z0-9+/_=-])(?:[0-9A-Fa-f]{64,}|[A-Za-z0-9+/_-]{43,}={0,2})")
_BEARER_RE = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")


# -- the run's own secrets, by value -------------------------------------------------------------
# Shapes miss what has no shape: G's raw private keys quoted back by a provider, or a key the kit
# itself put into a message, in hex, base64 or base64url. Whoever creates a secret registers it
# here (process-wide: the simulator runs in the process that writes its checks' messages), and
# every text redaction replaces each of its encodings wherever it appears.
_MIN_SECRET_BYTES = 16  # shorter values would match innocent text
_known_lock = threading.Lock()
_known: dict[str, str] = {}  # encoded form -> label
_known_re: re.Pattern[str] | None = None


def _encodings(value: bytes) -> set[str]:
    b64, url = base64.b64encode(value).decode(), base64.urlsafe_b64encode(value).decode()
    return {value.hex(), value.hex().upper(), b64, b64.rstrip("="), url, url.rstrip("=")}


def register_secret(value: bytes, label: str) -> None:
    """Make every later text redaction replace ``value`` (raw key bytes) in any common encoding."""
    global _known_re
    if len(value) < _MIN_SECRET_BYTES:
        raise ValueError(f"a secret shorter than {_MIN_SECRET_BYTES} bytes cannot be redacted by value")
    with _known_lock:
        for form in _encodings(value):
            _known.setdefault(form, label)
        _known_re = None


def redact_known(text: str) -> str:
    """``text`` with every registered secret replaced by ``<redacted:known-secret:label>``."""
    global _known_re
    with _known_lock:
        if not _known:
            return text
        if _known_re is None:  # longest first, so a padded form wins over its unpadded prefix
            forms = sorted(_known, key=len, reverse=True)
            _known_re = re.compile("|".join(re.escape(f) for f in forms))
        pattern, labels = _known_re, dict(_known)
    return pattern.sub(lambda m: f"<redacted:known-secret:{labels[m.group(0)]}>", text)


def redact_text(text: str) -> str:
    text = redact_known(text)
    text = _PEM_RE.sub("<redacted:private-key>", text)
    text = _PEM_OPEN_RE.sub("<redacted:private-key>", text)
    text = _JWT_RE.sub("<redacted:jwt>", text)
    return _BEARER_RE.sub(r"\1 <redacted>", text)


def redact(value: Any, _key: str = "") -> Any:
    """Return a redacted deep copy of JSON-like ``value``."""
    if _key and SECRET_KEY_RE.search(_key) and value not in (None, "", [], {}):
        if isinstance(value, (str, bytes, int, float)):
            return "<redacted>"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, _key) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def quote_untrusted(data: bytes | str | None, limit: int = 80) -> str:
    """A short, safe quote of bytes a provider sent, for a check message.

    Why: a message travels into report.json, JUnit, HTML and the bundle; a provider that answers
    with its own private key (PEM, possibly cut off, or a raw hex/base64 key) must not have it
    republished. Redaction runs on the whole body *before* truncation, so a cut cannot split a
    secret into an unrecognisable fragment; the result is printable ASCII.
    """
    if data is None:
        return "<no body>"
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    text = _KEYLIKE_RE.sub(lambda m: f"<redacted:{len(m.group(0))}-char key-like run>",
                           redact_text(text))
    quoted = text[:limit].encode("ascii", "backslashreplace").decode("ascii")
    return repr(quoted) + ("…" if len(text) > limit else "")


# -- the simulator's event log ---------------------------------------------------------------------
#: Keys whose values are secrets whatever they look like.
EVENT_SECRET_KEYS = frozenset({
    "token", "jwt", "authorization", "media_key", "private", "private_key", "secret",
    "password", "chain_key", "cipher_key", "mac_key", "d",
})
_JWT_FP_RE = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
# 32-byte values: 64 hex digits, or 43/44 base64(url) characters, standing alone.
_HEX32 = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])")
_B64_32 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{43}=?(?![A-Za-z0-9+/_=-])")


def _fingerprint(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:8]


def _fingerprint_secrets(s: str) -> str:
    s = redact_known(s)
    s = _JWT_FP_RE.sub(lambda m: f"<redacted:jwt:{_fingerprint(m.group(0))}>", s)
    s = _HEX32.sub(lambda m: f"<redacted:key:{_fingerprint(m.group(0))}>", s)

    def b64(m: re.Match[str]) -> str:
        text = m.group(0)
        try:
            ok = len(base64.urlsafe_b64decode(text.rstrip("=").replace("+", "-").replace("/", "_")
                                              + "=")) == 32
        except (ValueError, TypeError):
            ok = False
        return f"<redacted:key:{_fingerprint(text)}>" if ok else text

    return _B64_32.sub(b64, s)


def redact_event(value: Any, _key: str = "") -> Any:
    """The simulator's event details, safe to publish: JWTs, 32-byte keys in hex or base64 and
    every value under a secret-sounding key become ``<redacted:…>``; bytes become a length and
    a short hash. Keys ending in ``sha256`` are digests, not secrets, and stay.

    Why a second policy next to :func:`redact`: the event log is read to correlate events (the
    same token or key seen twice), so what it removes keeps a short fingerprint, and it sees
    arbitrary Python values (bytes, sets, objects), not only JSON."""
    key = _key.lower()
    empty = value is None or (isinstance(value, (str, bytes, bytearray)) and not value)
    if key in EVENT_SECRET_KEYS and not empty:
        return f"<redacted:{key}>"
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if key.endswith("sha256"):
            return raw.hex()
        return {"len": len(raw), "sha256": _fingerprint(raw)}
    if isinstance(value, str):
        return value if key.endswith("sha256") else _fingerprint_secrets(value)
    if isinstance(value, Mapping):
        return {str(k): redact_event(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_event(v, _key) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _fingerprint_secrets(repr(value))
