"""Redaction of secrets before anything is written: reports, wire logs, evidence bundles.

Two rules, both conservative: values under a secret-sounding key are replaced whatever they
are, and anything shaped like a JWT, a PEM private key or a bearer credential is replaced
wherever it appears. Hashes (fileSha256 and the like) stay: an auditor needs them.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["redact", "redact_text", "SECRET_KEY_RE"]

SECRET_KEY_RE = re.compile(
    r"(private|secret|password|passwd|token|jwt|authori[sz]ation|media_?key|mediakey|"
    r"authkey|chain_?key|root_?key|cipher_?key|mac_?key|signing_?key_private|seed|^d$|^p$|^q$|^dp$|^dq$|^qi$|^k$)",
    re.IGNORECASE,
)
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_PEM_RE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)
_BEARER_RE = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")


def redact_text(text: str) -> str:
    text = _PEM_RE.sub("<redacted:private-key>", text)
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
