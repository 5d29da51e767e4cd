"""Parsing and checking the enlistment form (spec §4.2), without I/O.

``parse_form`` turns the request body into an :class:`EnlistmentForm` or raises
:class:`EnlistmentRejected` with the profile's ``reason`` and the requirement it enforces.
The token is checked afterwards by the gatekeeper (it needs the provider's JWKS).
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from reference_impl.signal import InvalidSignatureError, PublicKey, xeddsa
from reference_impl.signal.errors import InvalidKeyError

__all__ = [
    "FIELDS",
    "FIELD_SIZES",
    "EnlistmentForm",
    "EnlistmentRejected",
    "b64url_decode",
    "b64url_encode",
    "check_version",
    "parse_form",
]

#: ENL-002: decoded sizes of the binary fields.
FIELD_SIZES = {"authkey": 32, "e_keytype": 1, "e_regid": 4, "e_ident": 32, "e_skey_id": 3,
               "e_skey_val": 32, "e_skey_sig": 64}
#: ENL-009: the framework's eight fields, each exactly once (S2 §1.2)...
FIELDS = frozenset(FIELD_SIZES) | {"token"}
#: ... and, optionally, the ``version`` field profile 1.0.0 required (ENL-009, ENL-010).
OPTIONAL_FIELDS = frozenset({"version"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_VERSION = re.compile(r"(\d{1,4})\.(\d{1,4})\.(\d{1,4})")
SUPPORTED_MAJOR = 1


class EnlistmentRejected(Exception):
    """Answered ``{"status":"fail","reason":reason}``."""

    def __init__(self, reason: str, requirement: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.requirement = requirement
        self.detail = detail


@dataclass(frozen=True, slots=True)
class EnlistmentForm:
    authkey: bytes
    registration_id: int
    identity_key: PublicKey
    signed_pre_key_id: int
    signed_pre_key: PublicKey
    signed_pre_key_signature: bytes
    token: str
    #: "" when the form carries no ``version`` (legal from profile 1.1.0 on).
    version: str


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Strict RFC 4648 §5 without padding: alphabet, no ``=``, canonical trailing bits."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:
        raise ValueError("non-canonical base64url (stray trailing bits)")
    return data


def check_version(version: str, requirement: str) -> None:
    """§3: G accepts any ``MAJOR.MINOR.PATCH`` with its own MAJOR."""
    m = _VERSION.fullmatch(version)
    if m is None or int(m.group(1)) != SUPPORTED_MAJOR:
        raise EnlistmentRejected("protocol_version", requirement,
                                 f"protocol version {version[:32]!r} is not {SUPPORTED_MAJOR}.x.y")


def parse_form(body: bytes, content_type: str) -> EnlistmentForm:
    # ENL-009: form-encoded POST with exactly the eight fields, each once, and optionally version.
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise EnlistmentRejected("malformed", "ENL-009",
                                 f"Content-Type {content_type[:80]!r} is not form-urlencoded")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True,
                          max_num_fields=len(FIELDS | OPTIONAL_FIELDS) + 1)
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnlistmentRejected("malformed", "ENL-009", f"form does not parse: {exc}") from None
    names = [k for k, _ in pairs]
    extra = sorted(set(names) - FIELDS - OPTIONAL_FIELDS)
    missing = sorted(FIELDS - set(names))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if extra or missing or repeated:
        raise EnlistmentRejected("malformed", "ENL-009",
                                 f"fields: missing {missing}, unexpected {extra[:5]}, "
                                 f"repeated {repeated}")
    form = dict(pairs)
    # ENL-002: base64url without padding, exact decoded sizes.
    raw: dict[str, bytes] = {}
    for name, size in FIELD_SIZES.items():
        try:
            raw[name] = b64url_decode(form[name])
        except ValueError as exc:
            raise EnlistmentRejected("malformed", "ENL-002", f"{name}: {exc}") from None
        if len(raw[name]) != size:
            raise EnlistmentRejected("malformed", "ENL-002",
                                     f"{name} decodes to {len(raw[name])} bytes, expected {size}")
    # ENL-003: key type, id ranges, distinct keys.
    if raw["e_keytype"] != b"\x05":
        raise EnlistmentRejected("malformed", "ENL-003",
                                 f"e_keytype is 0x{raw['e_keytype'].hex()}, expected 0x05")
    regid = int.from_bytes(raw["e_regid"], "big")
    if not 1 <= regid <= 16380:
        raise EnlistmentRejected("malformed", "ENL-003", f"e_regid {regid} outside 1..16380")
    skey_id = int.from_bytes(raw["e_skey_id"], "big")
    if skey_id == 0:
        raise EnlistmentRejected("malformed", "ENL-003", "e_skey_id is 0")
    if raw["authkey"] in (raw["e_ident"], raw["e_skey_val"]):
        raise EnlistmentRejected("malformed", "ENL-003",
                                 "authkey equals the identity key or the signed pre-key")
    try:
        ident = PublicKey.from_bytes(b"\x05" + raw["e_ident"])
        spk = PublicKey.from_bytes(b"\x05" + raw["e_skey_val"])
    except InvalidKeyError as exc:
        raise EnlistmentRejected("malformed", "ENL-002", f"key is not a valid Curve25519 key: {exc}") from None
    # ENL-004: XEdDSA by e_ident over 0x05 || e_skey_val.
    try:
        xeddsa.verify(ident, spk.serialize(), raw["e_skey_sig"])
    except InvalidSignatureError:
        raise EnlistmentRejected("bad_signature", "ENL-004",
                                 "e_skey_sig is not an XEdDSA signature by e_ident over 0x05||e_skey_val") from None
    # ENL-010: when sent, the version this client implements.
    if "version" in form:
        check_version(form["version"], "ENL-010")
    return EnlistmentForm(raw["authkey"], regid, ident, skey_id, spk, raw["e_skey_sig"],
                          form["token"], form.get("version", ""))
