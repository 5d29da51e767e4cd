"""Redaction of secrets before anything is written: reports, wire logs, evidence bundles.

Two rules, both conservative: values under a secret-sounding key are replaced whatever they
are, and anything shaped like a JWT, a PEM private key or a bearer credential is replaced
wherever it appears. Hashes (fileSha256 and the like) stay: an auditor needs them.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["redact", "redact_text", "quote_untrusted", "SECRET_KEY_RE"]

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


def redact_text(text: str) -> str:
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
