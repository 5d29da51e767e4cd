"""Media (spec §7): sending media (MED-001..MED-005), receiving media (MED-006, MED-017),
media hosting on the provider server (MED-008..MED-014) and voice notes (MED-015, MED-016).

Approach:
- Hosting is checked black-box with ``kit.http`` against ``kit.media_base``. Uploads need a
  user JWT, which only the provider issues and only for its own users, so the kit enlists a
  fresh provider user and takes the token its client presented to the gatekeeper simulator
  (``gk.tokens_seen``). Reads carry G's bearer JWT, as G's media proxy does.
- Sending is checked end to end: the harness makes the provider user send plaintext media to
  a simulated G user; the kit reads the media message the G user decrypted and fetches the
  blob from the provider as G does. The encryption is deterministic once the media key is
  known, so the kit recomputes the one correct blob and compares it with what the client
  uploaded and described; each requirement looks only at its own part (the cipher, the
  fields, the upload), so one defect fails one requirement.
- Receiving is checked by having a G user send media hosted by the simulator, intact, with
  unusual headers, tampered (``gk.script.tamper_media``) or with crafted inconsistencies that
  break exactly one check, and reading what the client surfaced (harness inbox) or rejected
  (harness ``media_rejected`` events). "Not surfaced" is decided after a later, valid media
  message of the same sender has surfaced and every bad blob has been fetched.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.bounded_http import HttpResult
from conformance.gatekeeper import InboxItem, SimUser
from conformance.harness_client import HarnessClient, HarnessError
from conformance.redact import quote_untrusted
from conformance.verdicts import fail, not_applicable, not_tested
from reference_impl.media.crypto import MediaType, derive_media_keys, encrypt_media
from reference_impl.wire import content_pb2 as cpb

from .kit import PROVIDER_ID, Kit, ProviderUser

requirement = pytest.mark.requirement
#: Part of the verdict rests on the provider harness' word (inbox, events) alone.
harness_attested = pytest.mark.harness_attested

AREA = "media"
OCTET = "application/octet-stream"
MIN_MAX_BLOB = 16 * 1024 * 1024
REF_CHARS = re.compile(r"[A-Za-z0-9_-]+")
DIRECT_PATH = re.compile(r"/interop/whatsapp/download/([^/]+)/([^/]+)/")
CHECK_REASONS = ("enc_sha256", "mac", "sha256", "length")


# -- provider-server helpers (MED-008..MED-014) ---------------------------------------------------
def _user_jwt(kit: Kit, user: ProviderUser) -> str:
    """The JWT the provider's client presented for ``user`` (enlistment or handshake)."""
    def pick() -> str | None:
        for seen in reversed(kit.gk.tokens_seen):
            if seen.login == user.login and seen.accepted:
                return seen.token
        return None
    token = kit.call(pick, area=AREA)
    if not token:
        raise RuntimeError(f"the simulator saw no accepted user JWT for {user.login}")
    return token


def _g_jwt(kit: Kit) -> str:
    """A G bearer JWT: an Authorization header G's media proxy does not send, but MED-018
    requires the provider to ignore."""
    def make() -> str:
        gk = kit.gk
        return gk.keys.push_token(issuer=gk.settings.issuer, audience=gk.providers[PROVIDER_ID].audience,
                                  now=gk.clock(), lifetime_s=300)
    return kit.call(make, area=AREA)


def _upload(kit: Kit, evidence, blob: Any, token: str | None, *, content_type: str = OCTET,
            raw_authorization: str | None = None, timeout: float | None = None) -> HttpResult:
    headers = {"content-type": content_type}
    if raw_authorization is not None:
        headers["authorization"] = raw_authorization
    elif token is not None:
        headers["authorization"] = f"Bearer {token}"
    return kit.http.request("POST", kit.media_base, evidence=evidence, headers=headers, content=blob,
                            timeout=timeout or kit.timeout(AREA))


def _reference_of(res: HttpResult) -> str | None:
    """The storage reference a 201 answer gives, or None."""
    try:
        doc = res.json()
    except ValueError:
        return None
    ref = doc.get("storage_reference") if isinstance(doc, dict) else None
    return ref if isinstance(ref, str) and ref else None


def _stored(kit: Kit, evidence, blob: bytes, token: str) -> str:
    """Upload ``blob`` as a precondition of a hosting check; its storage reference."""
    res = _upload(kit, evidence, blob, token)
    ref = _reference_of(res) if res.status == 201 else None
    if ref is not None:
        return ref
    not_tested(f"upload of a test blob failed (see MED-008): {res.describe()}")
    raise AssertionError("not reached")


def _media_url(kit: Kit, ref: str) -> str:
    return f"{kit.media_base.rstrip('/')}/{ref}"


def _fetch(kit: Kit, evidence, ref: str, *, method: str = "GET", token: str | None = "g",
           headers: dict[str, str] | None = None, http2: bool = False,
           max_body: int | None = None) -> HttpResult:
    """A media request. By default it carries a G bearer JWT, a header MED-018 requires the
    provider to ignore: the hosting checks (MED-010..MED-014) then judge only their own rule,
    and a provider that insists on credentials fails MED-018 (``token=None``), not all of them."""
    h = dict(headers or {})
    if token == "g":
        token = _g_jwt(kit)
    if token:
        h["authorization"] = f"Bearer {token}"
    return kit.http.request(method, _media_url(kit, ref), evidence=evidence, headers=h, http2=http2,
                            max_body=max_body, timeout=kit.timeout(AREA))


def _media_type_of(res: HttpResult) -> str:
    return res.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _require_whole_blob(res: HttpResult, blob: bytes, what: str) -> None:
    if not res.ok or res.status != 200:
        fail(f"{what}: 200 with the blob", res.describe())
    if res.body != blob:
        fail(f"{what}: the body byte-identical to the uploaded blob ({len(blob)} bytes)",
             f"{len(res.body)} bytes, {'different content' if len(res.body) == len(blob) else 'other length'}"
             f"{', Content-Encoding ' + res.headers['content-encoding'] if 'content-encoding' in res.headers else ''}")
    encoding = res.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":  # a client would decode the bytes: G would get another blob
        fail(f"{what}: the blob served as is, without a content coding",
             f"Content-Encoding {quote_untrusted(encoding)}")


# -- harness polling ------------------------------------------------------------------------------
def _traffic_of(login: str) -> Callable[[dict[str, Any]], bool]:
    """What may precede a change in the harness: an event of ``login`` or a media fetch."""
    return lambda e: e["login"] == login or e["kind"] == "media_served"


# -- sending media through the provider's client (MED-001..MED-005) ------------------------------
@dataclass
class Sent:
    """One media item the provider user sent, as the G user ``to`` received it.
    ``media_type`` is the content member the message arrived as (MED-001..003 judge the item
    by it); ``asked`` the type the user sent, which MED-004 compares it with."""

    media_type: str
    plaintext: bytes
    options: dict[str, Any]
    message_id: str
    to: str
    item: InboxItem
    asked: str = ""

    @property
    def media(self) -> Any:
        return getattr(self.item.content, self.item.kind)

    def expected(self) -> Any:
        """The one correct encryption of the plaintext under the media key the client chose."""
        key = bytes(self.media.media_key)
        if len(key) != 32:
            return None
        return encrypt_media(self.plaintext, MediaType(self.media_type), media_key=key)


TYPES_SENT: dict[str, tuple[str, dict[str, Any]]] = {
    "image": ("image/png", {"width": 640, "height": 480, "caption": "an image"}),
    "video": ("video/mp4", {"width": 1280, "height": 720, "seconds": 7, "caption": "a video"}),
    "audio": ("audio/ogg", {"seconds": 12}),
    "document": ("application/pdf", {"file_name": "report.pdf", "caption": "a document"}),
}
MEDIA_MEMBERS = ("image", "video", "audio", "document", "sticker")
STICKER = ("image/webp", {"width": 512, "height": 512})
VOICE_NOTE = ("audio/ogg; codecs=opus", {"seconds": 4, "ptt": True})
# A whole number of AES blocks (a full block of padding) and ragged lengths.
LENGTHS = {"image": 2048, "video": 3001, "audio": 1500, "document": 777, "sticker": 1024}


def _send_media(kit: Kit, harness: HarnessClient, user: ProviderUser, g: SimUser, media_type: str,
                plaintext: bytes | None = None, kind: tuple[str, dict[str, Any]] | None = None) -> Sent:
    """The user sends plaintext media to ``g``; waits until ``g`` decrypted the message.
    ``kind`` (mimetype, harness options) overrides the type's defaults, e.g. ``VOICE_NOTE``."""
    mimetype, options = kind or (STICKER if media_type == "sticker" else TYPES_SENT[media_type])
    data = plaintext if plaintext is not None else os.urandom(LENGTHS[media_type])
    mark = kit.mark()
    try:
        mid = harness.send_media(user.handle, g.id, data, media_type, mimetype, **options)
    except HarnessError as exc:
        if exc.status == 501 and media_type == "sticker":
            not_applicable(f"the client does not send stickers (harness: {exc})")
        if exc.status in (409, 422, 501, 502):
            fail(f"the client sends a {media_type} message", f"the harness refused: {exc}")
        raise
    try:
        kit.wait_event(kind="user_message", user=g.id, id=mid, since=mark, area=AREA)
    except TimeoutError:
        fail(f"the {media_type} message {mid} delivered to and decrypted by the G user",
             f"nothing within {kit.timeout(AREA)} s")
    item = kit.call(lambda: next(i for i in reversed(g.inbox) if i.message_id == mid), area=AREA)
    if item.kind not in MEDIA_MEMBERS:
        fail(f"a `{media_type}` content message", f"content member {item.kind!r}")
    # Another media member (a video sent as a document) is MED-004's failure; the other checks
    # judge the item as the member it is.
    return Sent(item.kind, data, {"mimetype": mimetype, **options}, mid, g.id, item, media_type)


def _send_each_type(kit: Kit, harness: HarnessClient, new_user, g_user) -> tuple[ProviderUser, SimUser, list[Sent]]:
    user, g = new_user(), g_user()
    return user, g, [_send_media(kit, harness, user, g, t) for t in TYPES_SENT]


def _fetch_as_g(kit: Kit, user: ProviderUser, direct_path: str) -> Any:
    """G's fetch (no credentials, S2 §5.1.1) of ``{media_base}/{storage_reference}`` for a direct path."""
    return kit.run(kit.gk.fetch_provider_media(direct_path, provider_id=PROVIDER_ID, login=user.login),
                   AREA)


def _cipher_problem(kit: Kit, user: ProviderUser, sent: Sent) -> str | None:
    """Why the client's blob is not the MED-001 encryption of the plaintext, or None."""
    media = sent.media
    key = bytes(media.media_key)
    if len(key) != 32:
        return f"media_key of {len(key)} bytes, expected 32"
    expected = sent.expected()
    # Either the blob the client described or the one it uploaded witnesses its encryption.
    if bytes(media.file_enc_sha256) == expected.file_enc_sha256:
        return None
    fetched = _fetch_as_g(kit, user, media.direct_path) if media.direct_path else None
    body = fetched.body if fetched is not None and fetched.status == 200 and not fetched.error else None
    if body == expected.blob:
        return None
    for other in (MediaType.IMAGE, MediaType.VIDEO, MediaType.AUDIO, MediaType.DOCUMENT):
        if other.info == MediaType(sent.media_type).info:
            continue
        alt = encrypt_media(sent.plaintext, other, media_key=key)
        if alt.blob == body or alt.file_enc_sha256 == bytes(media.file_enc_sha256):
            return f"encrypted with the label {other.info.decode()!r}"
    where = f"the uploaded blob ({len(body)} bytes)" if body is not None else "the blob (not fetchable)"
    return (f"neither {where} nor file_enc_sha256 matches AES-256-CBC/PKCS#7 under "
            f"HKDF-SHA256(media_key, {MediaType(sent.media_type).info.decode()!r}) plus the 10-byte MAC")


def _encryption_check(kit: Kit, user: ProviderUser, sent: list[Sent]) -> None:
    problems = [f"{s.media_type} {s.message_id}: {why}" for s in sent
                if (why := _cipher_problem(kit, user, s))]
    if problems:
        fail("each blob = AES-256-CBC/PKCS#7 under HKDF-SHA256(media_key, no salt, type label, 112) "
             "|| HMAC-SHA256(mac_key, iv || ciphertext)[0:10]", "; ".join(problems))
    keys = [bytes(s.media.media_key) for s in sent]
    if len(set(keys)) != len(keys):
        fail("a fresh media key for every item",
             f"{len(keys) - len(set(keys))} media key(s) reused across {len(keys)} items")


@requirement("MED-001")
def test_sent_media_is_encrypted_with_a_fresh_key_and_the_type_label(kit: Kit, harness, new_user, g_user):
    user, g, sent = _send_each_type(kit, harness, new_user, g_user)
    # The same file again, to the same and to another G user: new media keys all the same.
    sent.append(_send_media(kit, harness, user, g, "image", sent[0].plaintext))
    sent.append(_send_media(kit, harness, user, g_user(), "image", sent[0].plaintext))
    _encryption_check(kit, user, sent)


def _field_problems(kit: Kit, user: ProviderUser, sent: Sent) -> list[str]:
    media, opts = sent.media, sent.options
    out: list[str] = []
    if len(bytes(media.media_key)) != 32:
        out.append(f"media_key of {len(bytes(media.media_key))} bytes")
    if bytes(media.file_sha256) != hashlib.sha256(sent.plaintext).digest():
        out.append("file_sha256 is not the SHA-256 of the plaintext")
    if media.file_length != len(sent.plaintext):
        out.append(f"file_length {media.file_length}, the plaintext has {len(sent.plaintext)} bytes")
    if media.mimetype != opts["mimetype"]:
        out.append(f"mimetype {media.mimetype!r}, the user's file is {opts['mimetype']!r}")
    if not media.direct_path:
        out.append("no direct_path")
    expected = sent.expected()
    enc = bytes(media.file_enc_sha256)
    if expected is None or enc != expected.file_enc_sha256:
        fetched = _fetch_as_g(kit, user, media.direct_path) if media.direct_path else None
        if fetched is None or fetched.status != 200 or enc != hashlib.sha256(fetched.body).digest():
            out.append("file_enc_sha256 is the SHA-256 of neither the uploaded blob nor the encrypted file")
    wanted = {"image": ("width", "height"), "sticker": ("width", "height"),
              "video": ("seconds", "width", "height"), "audio": ("seconds",)}.get(sent.media_type, ())
    for f in wanted:
        if getattr(media, f) != opts[f]:
            out.append(f"{f} {getattr(media, f)}, the user's file has {opts[f]}")
    return out


def _fields_check(kit: Kit, user: ProviderUser, sent: list[Sent]) -> None:
    problems = [f"{s.media_type} {s.message_id}: {p}" for s in sent for p in _field_problems(kit, user, s)]
    if problems:
        fail("media_key, file_sha256, file_enc_sha256, file_length, mimetype, direct_path and the "
             "per-type width/height/seconds, with their correct values", "; ".join(problems))


@requirement("MED-002")
def test_sent_media_messages_carry_the_required_fields(kit: Kit, harness, new_user, g_user):
    user, _, sent = _send_each_type(kit, harness, new_user, g_user)
    _fields_check(kit, user, sent)


def _upload_problems(kit: Kit, user: ProviderUser, sent: Sent) -> list[str]:
    media = sent.media
    m = DIRECT_PATH.fullmatch(media.direct_path)
    if m is None or not REF_CHARS.fullmatch(m.group(2)) or not re.fullmatch(r"[A-Za-z0-9_.-]+", m.group(1)):
        return [(f"direct_path {media.direct_path[:120]!r} is not "
                 "/interop/whatsapp/download/{integrator_id}/{storage_reference}/")]
    out: list[str] = []
    # The G user fetched the blob as soon as the message arrived: it had to be uploaded by then.
    try:
        kit.wait_event(kind="media_verified", user=sent.to, id=sent.message_id, area=AREA)
        at_arrival = sent.item.media.fetch if sent.item.media is not None else {}
    except TimeoutError:
        at_arrival = {}
    if at_arrival and at_arrival.get("status") != 200:
        out.append(f"when the message arrived, its blob was not served "
                   f"({at_arrival.get('status') or at_arrival.get('error')})")
    fetched = _fetch_as_g(kit, user, media.direct_path)
    if fetched.status != 200 or fetched.error:
        return out + [f"the storage reference in direct_path is not served ({fetched.status or fetched.error})"]
    blob = fetched.body
    key = bytes(media.media_key)
    leaked = []
    if len(key) == 32:
        keys = derive_media_keys(key, MediaType(sent.media_type))
        for name, value in (("media key", key), ("iv", keys.iv), ("cipher key", keys.cipher_key),
                            ("MAC key", keys.mac_key), ("ref key", keys.ref_key)):
            if value in blob:
                leaked.append(name)
    expected = sent.expected()
    if sent.plaintext in blob:
        out.append("the uploaded blob is (or contains) the plaintext")
    elif leaked:
        out.append(f"the uploaded blob contains the {', '.join(leaked)}")
    elif not ((expected is not None and blob == expected.blob)
              or hashlib.sha256(blob).digest() == bytes(media.file_enc_sha256)):
        out.append(f"the uploaded blob ({len(blob)} bytes) is neither the encrypted file nor the blob "
                   "file_enc_sha256 describes")
    return out


def _upload_check(kit: Kit, user: ProviderUser, sent: list[Sent]) -> None:
    problems = [f"{s.media_type} {s.message_id}: {p}" for s in sent for p in _upload_problems(kit, user, s)]
    if problems:
        fail("only the encrypted blob uploaded, before the message was sent, and direct_path "
             "/interop/whatsapp/download/{integrator_id}/{storage_reference}/ naming it", "; ".join(problems))


@requirement("MED-003")
def test_only_the_encrypted_blob_is_uploaded_before_sending(kit: Kit, harness, new_user, g_user):
    user, _, sent = _send_each_type(kit, harness, new_user, g_user)
    _upload_check(kit, user, sent)


@requirement("MED-004")
def test_image_video_audio_and_document_can_be_sent(kit: Kit, harness, new_user, g_user):
    _, _, sent = _send_each_type(kit, harness, new_user, g_user)  # each: accepted and delivered
    wrong = [f"{s.asked}: sent as a `{s.media_type}` message" for s in sent
             if s.media_type != s.asked]
    wrong += [f"{s.asked}: mimetype {s.media.mimetype!r}" for s in sent
              if s.media.mimetype != s.options["mimetype"]]
    if wrong:
        fail("each media message carrying the type and mimetype the user sent", "; ".join(wrong))


@requirement("MED-005")
def test_stickers_when_sent_follow_the_media_rules(kit: Kit, harness, new_user, g_user):
    user, g = new_user(), g_user()
    sent = [_send_media(kit, harness, user, g, "sticker")]
    _encryption_check(kit, user, sent)
    _fields_check(kit, user, sent)
    _upload_check(kit, user, sent)


@requirement("MED-015")
def test_voice_notes_are_sent_with_ptt_and_plain_audio_without(kit: Kit, harness, new_user, g_user):
    user, g = new_user(), g_user()
    voice = _send_media(kit, harness, user, g, "audio", kind=VOICE_NOTE)
    plain = _send_media(kit, harness, user, g, "audio")
    problems = []
    if not voice.media.ptt:
        problems.append(f"voice note {voice.message_id}: ptt "
                        f"{'false' if voice.media.HasField('ptt') else 'absent'}")
    if plain.media.ptt:
        problems.append(f"plain audio {plain.message_id}: ptt true")
    if problems:
        fail("an `audio` message with `ptt` true for the voice note, and `ptt` false or absent "
             "for plain audio", "; ".join(problems))


# -- media hosting on the provider server (MED-008..MED-014) -------------------------------------
def _forged_tokens(token: str) -> dict[str, str]:
    """Invalid variants of a real user JWT: bad signature, alg none, another key's signature."""
    head_b64, payload_b64, sig_b64 = token.split(".")
    sig = bytearray(base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4)))
    sig[len(sig) // 2] ^= 0x01
    flipped = base64.urlsafe_b64encode(bytes(sig)).rstrip(b"=").decode()
    header = json.loads(base64.urlsafe_b64decode(head_b64 + "=" * (-len(head_b64) % 4)))
    claims = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    none_head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    foreign = pyjwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                           headers={"kid": header.get("kid", "")})
    return {"signature altered": f"{head_b64}.{payload_b64}.{flipped}",
            "alg none": f"{none_head}.{payload_b64}.",
            "signed by another key under the same kid": foreign,
            "not a JWT": "not-a-jwt"}


@requirement("MED-008")
def test_upload_with_a_user_jwt_answers_201_with_a_storage_reference(kit: Kit, evidence, new_user):
    token = _user_jwt(kit, new_user(connect=False))
    blob = os.urandom(4096)
    res = _upload(kit, evidence, blob, token)
    if not res.ok or res.status != 201:
        fail("201 to an upload with the user's JWT", res.describe())
    try:
        doc = res.json()
    except ValueError:
        fail("a JSON object in the 201 answer", f"unparseable body {quote_untrusted(res.body)}")
    if not isinstance(doc, dict) or not isinstance(doc.get("storage_reference"), str) or not doc["storage_reference"]:
        fail("a JSON object with a non-empty string `storage_reference`", quote_untrusted(res.body, 200))
    got = _fetch(kit, evidence, doc["storage_reference"])
    if got.status != 200 or got.body != blob:
        fail("the blob stored under the storage reference given", got.describe())


@requirement("MED-008")
def test_upload_without_a_valid_user_jwt_is_refused_with_401(kit: Kit, evidence, new_user):
    token = _user_jwt(kit, new_user(connect=False))
    attempts: dict[str, str | None] = {"no Authorization header": None, **_forged_tokens(token)}
    problems = []
    for what, bad in attempts.items():
        res = _upload(kit, evidence, os.urandom(512), None,
                      raw_authorization=None if bad is None else f"Bearer {bad}")
        if not res.ok or res.status != 401:
            problems.append(f"{what}: {res.describe()}")
            ref = _reference_of(res) if res.ok else None
            if ref is not None and _fetch(kit, evidence, ref).status == 200:
                problems[-1] += " and the blob is retrievable"
    if problems:
        fail("401, nothing stored, when the user JWT is missing or invalid", "; ".join(problems))


@requirement("MED-018")
def test_blob_is_served_byte_identical_without_credentials(kit: Kit, evidence, new_user):
    token = _user_jwt(kit, new_user(connect=False))
    # Compressible, and starting like a gzip stream and a PNG: nothing may be decoded or recoded.
    blob = b"\x1f\x8b\x08\x00" + os.urandom(2000) + b"\x89PNG\r\n\x1a\n" + b"\x00" * 8192 + b"A" * 4096
    ref = _stored(kit, evidence, blob, token)
    # As G's media proxy fetches (S2 §5.1.1): no Authorization header, no cookies.
    _require_whole_blob(_fetch(kit, evidence, ref, token=None,
                               headers={"accept-encoding": "gzip, deflate, br"}),
                        blob, "GET without credentials, accepting compressed encodings")
    _require_whole_blob(_fetch(kit, evidence, ref, token=None), blob, "GET without credentials")
    # An Authorization header (a proxy may add one) must not change the answer.
    _require_whole_blob(_fetch(kit, evidence, ref), blob, "GET with an Authorization: Bearer header")


def _header_problems(res: HttpResult, size: int, what: str) -> list[str]:
    out = []
    lengths = [v for k, v in res.raw_headers if k == "content-length"]
    if not lengths:
        out.append(f"{what}: no Content-Length")
    elif len(set(lengths)) != 1 or lengths[0].strip() != str(size):
        out.append(f"{what}: Content-Length {', '.join(lengths)}, the blob has {size} bytes")
    if _media_type_of(res) != OCTET:
        out.append(f"{what}: Content-Type {res.headers.get('content-type')!r}")
    return out


@requirement("MED-010")
def test_media_responses_carry_length_and_type_and_head_matches_get(kit: Kit, evidence, new_user):
    token = _user_jwt(kit, new_user(connect=False))
    blob = os.urandom(70_000)  # more than one 64 KiB chunk
    ref = _stored(kit, evidence, blob, token)
    get = _fetch(kit, evidence, ref)
    head = _fetch(kit, evidence, ref, method="HEAD")
    if not get.ok or get.status != 200:
        fail("GET answers 200", get.describe())
    problems = _header_problems(get, len(blob), "GET")
    if not head.ok or head.status != get.status:
        problems.append(f"HEAD: {head.describe()}, GET answered {get.status}")
    else:
        problems += _header_problems(head, len(blob), "HEAD")
        if head.body:
            problems.append(f"HEAD: a body of {len(head.body)} bytes")
    if problems:
        fail("Content-Length = blob size and Content-Type application/octet-stream on GET, and HEAD "
             "with the same status and headers and no body", "; ".join(problems))


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@requirement("MED-011")
def test_single_range_requests_are_answered_206_or_200(kit: Kit, evidence, new_user):
    token = _user_jwt(kit, new_user(connect=False))
    size = 1000
    blob = os.urandom(size)
    ref = _stored(kit, evidence, blob, token)
    # (Range header, first byte, last byte) of satisfiable ranges, clipped to the blob.
    ranges = [("bytes=0-99", 0, 99), ("bytes=100-199", 100, 199), ("bytes=900-", 900, 999),
              ("bytes=-50", 950, 999), ("bytes=990-5000", 990, 999), ("bytes=0-0", 0, 0)]
    problems = []
    for header, first, last in ranges:
        res = _fetch(kit, evidence, ref, headers={"range": header})
        if not res.ok:
            problems.append(f"{header}: {res.describe()}")
        elif res.status == 200:
            if res.body != blob:
                problems.append(f"{header}: 200 with {len(res.body)} bytes that are not the whole blob")
        elif res.status == 206:
            m = _CONTENT_RANGE.fullmatch(res.headers.get("content-range", "").strip())
            if m is None or (int(m.group(1)), int(m.group(2))) != (first, last) or m.group(3) not in (str(size), "*"):
                problems.append(f"{header}: 206 with Content-Range {res.headers.get('content-range')!r}, "
                                f"expected bytes {first}-{last}/{size}")
            elif res.body != blob[first:last + 1]:
                problems.append(f"{header}: 206 with {len(res.body)} bytes, not bytes {first}-{last} "
                                f"({last - first + 1} bytes)")
        else:
            problems.append(f"{header}: status {res.status}, expected 206 or 200")
    for header in ("bytes=5000-6000", f"bytes={size}-"):
        res = _fetch(kit, evidence, ref, headers={"range": header})
        if not res.ok or res.status not in (416, 200):
            problems.append(f"{header} (unsatisfiable): {res.describe()}, expected 416 or 200")
        elif res.status == 200 and res.body != blob:
            problems.append(f"{header} (unsatisfiable): 200 without the whole blob")
    if problems:
        fail("206 with a matching Content-Range and exactly the bytes asked for, or 200 with the whole "
             "blob; 416 or 200 for an unsatisfiable range", "; ".join(problems))


def _estimated_bits(refs: list[str]) -> float:
    """Entropy estimate of one reference: positions that vary across ``refs`` (aligned from the
    start) times the bits per character of the alphabet they use."""
    chars = set("".join(refs))
    if chars <= set("0123456789"):
        per_char = math.log2(10)
    elif chars <= set("0123456789abcdef") or chars <= set("0123456789ABCDEF"):
        per_char = 4.0
    elif chars <= set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"):
        per_char = math.log2(62)
    else:
        per_char = 6.0
    n = min(len(r) for r in refs)
    varying = sum(1 for i in range(n) if len({r[i] for r in refs}) > 1)
    return varying * per_char


@requirement("MED-012")
def test_storage_references_are_random_distinct_and_unknown_ones_404(kit: Kit, evidence, new_user):
    token = _user_jwt(kit, new_user(connect=False))
    blob = os.urandom(256)
    refs = [_stored(kit, evidence, blob, token) for _ in range(12)]  # identical bytes each time
    bad = [r for r in refs if not REF_CHARS.fullmatch(r)]
    if bad:
        fail("storage references of [A-Za-z0-9_-] only", f"{bad[0][:80]!r}")
    if len(set(refs)) != len(refs):
        fail("distinct references for distinct uploads of the same bytes",
             f"{len(refs) - len(set(refs))} repeated among {len(refs)}")
    bits = _estimated_bits(refs)
    if bits < 128:
        fail("at least 128 random bits in each storage reference",
             f"about {bits:.0f} bits vary across {len(refs)} references (e.g. {refs[0]!r}, {refs[1]!r})")
    problems = []
    for _ in range(2):
        unknown = secrets.token_urlsafe(32)
        res = _fetch(kit, evidence, unknown)
        if not res.ok or res.status != 404:
            problems.append(f"{res.describe()}")
    if problems:
        fail("404 for a reference never issued", "; ".join(problems))


@requirement("MED-013")
def test_blobs_up_to_the_declared_maximum_are_accepted_and_larger_ones_413(kit: Kit, evidence, new_user):
    declared = kit.declaration.data.get("limits", {}).get("media_max_bytes")
    minimum = int(kit.profile.parameters.get("size_limits", {}).get("media_upload_min_bytes", MIN_MAX_BLOB))
    if declared is not None and declared < minimum:
        fail(f"a declared maximum blob size of at least {minimum} bytes", f"{declared} bytes declared")
    limit = int(declared) if declared is not None else minimum
    evidence.record("media_limit", declared=declared, tested=limit)
    token = _user_jwt(kit, new_user(connect=False))
    big = os.urandom(limit)
    timeout = max(kit.timeout(AREA), 60.0)
    res = _upload(kit, evidence, big, token, timeout=timeout)
    if not res.ok or res.status != 201 or _reference_of(res) is None:
        fail(f"201 with a storage reference for an upload of exactly {limit} bytes", res.describe())
    over = big + b"\x00"

    def chunked() -> Any:
        for i in range(0, len(over), 1 << 20):
            yield over[i:i + (1 << 20)]

    problems = []
    for what, content in (("with Content-Length", over), ("chunked, no Content-Length", chunked())):
        res = _upload(kit, evidence, content, token, timeout=timeout)
        if not res.ok or res.status != 413:
            problems.append(f"{limit + 1} bytes {what}: {res.describe()}")
        ref = _reference_of(res) if res.ok else None
        if ref is None and res.ok and res.headers.get("location"):
            ref = res.headers["location"].rstrip("/").rsplit("/", 1)[-1]
        if ref is not None:
            got = _fetch(kit, evidence, ref, method="HEAD")
            if got.ok and got.status not in (404, 410):
                problems.append(f"{limit + 1} bytes {what}: stored and retrievable ({got.status})")
    if problems:
        fail(f"413 for uploads above {limit} bytes, with nothing retrievable", "; ".join(problems))


@requirement("MED-014")
def test_only_the_uploader_deletes_and_deleted_blobs_are_gone(kit: Kit, evidence, new_user):
    owner, other = _user_jwt(kit, new_user(connect=False)), _user_jwt(kit, new_user(connect=False))
    blob = os.urandom(1024)
    ref = _stored(kit, evidence, blob, owner)
    url = _media_url(kit, ref)
    res = kit.http.request("DELETE", url, evidence=evidence, headers={"authorization": f"Bearer {other}"})
    if not res.ok or res.status not in (403, 404):
        fail("403 or 404 to a DELETE with another user's JWT", res.describe())
    still = _fetch(kit, evidence, ref)
    if still.status != 200 or still.body != blob:
        fail("the blob still retrievable after another user's DELETE was refused", still.describe())
    res = kit.http.request("DELETE", url, evidence=evidence, headers={"authorization": f"Bearer {owner}"})
    if not res.ok or res.status != 204:
        fail("204 to a DELETE with the uploader's JWT", res.describe())
    for method in ("GET", "HEAD"):
        gone = _fetch(kit, evidence, ref, method=method)
        if not gone.ok or gone.status not in (404, 410):
            fail(f"404 or 410 to {method} after deletion", gone.describe())


# -- receiving media from G users (MED-006, MED-017) ------------------------------------------------
@dataclass
class GMedia:
    """A media message a G user sent to the provider user, and what the client must do with it."""

    message_id: str
    direct_path: str
    plaintext: bytes
    expect: str            # "surface", or the first failing check: enc_sha256 / mac / sha256 / length
    what: str
    fields: dict[str, Any]


def _g_media(kit: Kit, g: SimUser, login: str, what: str, plaintext: bytes, media_type: str = "image", *,
             mimetype: str = "image/png", tamper: str | None = None, content_type: str | None = OCTET,
             send_length: bool = True, expect: str = "surface", **fields: Any) -> GMedia:
    """``g`` sends media hosted at G; served altered or with other headers when asked (set in
    the same loop step as the send, before the client can fetch)."""
    def send() -> tuple[str, str]:
        mid, path = g.send_media(login, plaintext, media_type, mimetype=mimetype, **fields)
        if tamper is not None:
            kit.gk.script.tamper_media(path, tamper)
        if content_type != OCTET or not send_length:
            kit.gk.script.media_quirks(path, content_type=content_type, send_length=send_length)
        return mid, path
    mid, path = kit.call(send, area=AREA)
    return GMedia(mid, path, plaintext, expect, what, {"type": media_type, "mimetype": mimetype, **fields})


def _g_crafted(kit: Kit, g: SimUser, login: str, what: str, expect: str, *, bad_mac: bool = False,
               wrong_sha256: bool = False, wrong_length: bool = False) -> GMedia:
    """An image whose blob and message disagree in exactly the ways asked, while the blob's
    SHA-256 always matches file_enc_sha256 (so the later checks are reached)."""
    plaintext = os.urandom(1200)
    enc = encrypt_media(plaintext, MediaType.IMAGE)
    blob = enc.blob
    if bad_mac:  # the ciphertext still decrypts to the right plaintext: only the MAC is wrong
        blob = blob[:-10] + bytes(b ^ 0x5A for b in blob[-10:])

    def send() -> tuple[str, str]:
        path = kit.gk.media.put(blob)
        msg = cpb.Message(image=cpb.ImageMessage(
            mimetype="image/png", width=10, height=10, media_key=enc.media_key, direct_path=path,
            file_enc_sha256=hashlib.sha256(blob).digest(),
            file_sha256=hashlib.sha256(b"another file").digest() if wrong_sha256 else enc.file_sha256,
            file_length=enc.file_length + 16 if wrong_length else enc.file_length))
        return g.send_content(login, msg), path
    mid, path = kit.call(send, area=AREA)
    return GMedia(mid, path, plaintext, expect, what, {})


def _media_outcomes(kit: Kit, harness: HarnessClient, user: ProviderUser, items: list[GMedia],
                    mark: int) -> tuple[dict[str, dict], dict[str, str]]:
    """Poll the harness until every item to surface has surfaced and every other item has been
    rejected, or has been fetched with a later good item already surfaced. Returns the inbox
    items that show media (by message id) and the media_rejected reasons (by message id)."""
    good = [i for i in items if i.expect == "surface"]
    bad = [i for i in items if i.expect != "surface"]

    def read() -> tuple[dict[str, dict], dict[str, str], set[str]]:
        inbox = {i["message_id"]: i for i in harness.inbox(user.handle)
                 if isinstance(i.get("media"), dict) and i["media"].get("sha256")}
        rejected = {e.get("message_id", ""): str(e.get("reason", "")) for e in harness.events(user.handle)
                    if e.get("type") == "media_rejected"}
        served = {e["detail"].get("direct_path") for e in kit.events(since=mark, kind="media_served")}
        return inbox, rejected, served

    def settled(v: tuple[dict[str, dict], dict[str, str], set[str]]) -> bool:
        inbox, rejected, _ = v
        return (all(i.message_id in inbox for i in good)
                and all(i.message_id in inbox or i.message_id in rejected for i in bad))

    def fetched(v: tuple[dict[str, dict], dict[str, str], set[str]]) -> bool:
        inbox, rejected, served = v
        return (all(i.message_id in inbox for i in good)
                and all(i.message_id in inbox or i.message_id in rejected or i.direct_path in served
                        for i in bad))

    # A client that reports no rejections: the later good items and the fetches are the marker,
    # then at most 2 s more for a late report.
    value = kit.poll(read, fetched, login=user.login, wake=_traffic_of(user.login), area=AREA)
    if not settled(value) and fetched(value):
        value = kit.poll(read, settled, login=user.login, timeout=2.0,
                         wake=_traffic_of(user.login), area=AREA)
    inbox, rejected, served = value
    missing = [i for i in items if i.direct_path not in served]
    if missing:
        fail("the client fetches https://{G media host}{direct_path} of each media message",
             "never fetched: " + ", ".join(f"{i.what} ({i.message_id})" for i in missing))
    return inbox, rejected


def _verify_outcomes(items: list[GMedia], inbox: dict[str, dict], rejected: dict[str, str]) -> list[str]:
    problems = []
    for i in items:
        shown = inbox.get(i.message_id)
        if i.expect == "surface":
            if shown is None:
                problems.append(f"{i.what}: not surfaced" + (f" (rejected: {rejected[i.message_id]})"
                                                             if i.message_id in rejected else ""))
            elif str(shown["media"]["sha256"]).lower() != hashlib.sha256(i.plaintext).hexdigest():
                problems.append(f"{i.what}: surfaced with another plaintext")
        elif shown is not None:
            problems.append(f"{i.what}: surfaced although the {i.expect} check fails")
        elif rejected.get(i.message_id) in CHECK_REASONS and rejected[i.message_id] != i.expect:
            problems.append(f"{i.what}: rejected for {rejected[i.message_id]!r}, but the first check in "
                            f"order that fails is {i.expect!r}")
    return problems


@harness_attested
@requirement("MED-006")
def test_received_media_is_fetched_without_relying_on_its_headers(kit: Kit, harness, new_user, g_user):
    user, g = new_user(), g_user()
    mark = kit.mark()
    items = [
        _g_media(kit, g, user.login, "served without Content-Length", os.urandom(3000), send_length=False),
        _g_media(kit, g, user.login, "served as text/html without Content-Length", os.urandom(1600),
                 content_type="text/html", send_length=False),
        _g_media(kit, g, user.login, "served without Content-Type", os.urandom(64), content_type=None),
    ]
    problems = _verify_outcomes(items, *_media_outcomes(kit, harness, user, items, mark))
    if problems:
        fail("media fetched, verified and surfaced whatever the Content-Type and Content-Length",
             "; ".join(problems))


@harness_attested
@requirement("MED-006")
def test_tampered_blobs_are_not_surfaced(kit: Kit, harness, new_user, g_user):
    user, g = new_user(), g_user()
    mark = kit.mark()
    items = [_g_media(kit, g, user.login, f"blob served with {mode}", os.urandom(1000 + 37 * n),
                      tamper=mode, expect="enc_sha256")
             for n, mode in enumerate(("flip_byte", "flip_mac", "truncate", "append", "replace"))]
    items.append(_g_media(kit, g, user.login, "an intact blob after them", os.urandom(900)))
    problems = _verify_outcomes(items, *_media_outcomes(kit, harness, user, items, mark))
    if problems:
        fail("a blob whose SHA-256 differs from file_enc_sha256 rejected, not surfaced", "; ".join(problems))


@harness_attested
@requirement("MED-006")
def test_mac_plaintext_hash_and_length_are_checked_in_order(kit: Kit, harness, new_user, g_user):
    user, g = new_user(), g_user()
    mark = kit.mark()
    items = [
        _g_crafted(kit, g, user.login, "wrong MAC (ciphertext and hashes otherwise right)", "mac", bad_mac=True),
        _g_crafted(kit, g, user.login, "wrong MAC, file_sha256 and file_length", "mac",
                   bad_mac=True, wrong_sha256=True, wrong_length=True),
        _g_crafted(kit, g, user.login, "wrong file_sha256", "sha256", wrong_sha256=True),
        _g_crafted(kit, g, user.login, "wrong file_sha256 and file_length", "sha256",
                   wrong_sha256=True, wrong_length=True),
        _g_crafted(kit, g, user.login, "wrong file_length", "length", wrong_length=True),
        _g_media(kit, g, user.login, "an intact blob after them", os.urandom(700)),
    ]
    problems = _verify_outcomes(items, *_media_outcomes(kit, harness, user, items, mark))
    if problems:
        fail("file_enc_sha256, then the MAC, then file_sha256 and file_length checked, in this order, "
             "and failing media not surfaced", "; ".join(problems))


@harness_attested
@requirement("MED-017")
def test_every_media_type_is_surfaced_with_its_metadata(kit: Kit, harness, new_user, g_user):
    user, g = new_user(), g_user()
    mark = kit.mark()
    items = [
        _g_media(kit, g, user.login, "image", os.urandom(2100), "image", mimetype="image/jpeg",
                 caption="look at this", width=800, height=600),
        _g_media(kit, g, user.login, "video", os.urandom(4000), "video", mimetype="video/mp4",
                 caption="a clip", width=1920, height=1080, seconds=42),
        _g_media(kit, g, user.login, "audio", os.urandom(1500), "audio", mimetype="audio/ogg; codecs=opus",
                 seconds=9),
        _g_media(kit, g, user.login, "document", os.urandom(999), "document", mimetype="application/pdf",
                 caption="the contract", file_name="contract.pdf"),
    ]  # no sticker: unsupported in third-party chats (S7, S9); E2E-011 covers it
    inbox, rejected = _media_outcomes(kit, harness, user, items, mark)
    problems = _verify_outcomes(items, inbox, rejected)
    for i in items:
        shown = inbox.get(i.message_id)
        if shown is None:
            continue
        media = shown["media"]
        for k, v in i.fields.items():
            if media.get(k) != v:
                problems.append(f"{i.what}: {k} {media.get(k)!r}, sent {v!r}")
    if problems:
        fail("image, video, audio and document surfaced with plaintext, mimetype, caption, "
             "file_name, width, height and seconds", "; ".join(problems))


@harness_attested
@requirement("MED-016")
def test_received_voice_notes_are_surfaced_as_voice_notes(kit: Kit, harness, new_user, g_user):
    user, g = new_user(), g_user()
    mark = kit.mark()
    items = [
        _g_media(kit, g, user.login, "voice note", os.urandom(1300), "audio",
                 mimetype="audio/ogg; codecs=opus", seconds=6, ptt=True),
        _g_media(kit, g, user.login, "plain audio", os.urandom(1400), "audio",
                 mimetype="audio/mpeg", seconds=3),
    ]
    inbox, rejected = _media_outcomes(kit, harness, user, items, mark)
    problems = _verify_outcomes(items, inbox, rejected)
    voice, plain = (inbox.get(i.message_id) for i in items)
    if voice is not None and voice["media"].get("ptt") is not True:
        problems.append(f"voice note: media.ptt {voice['media'].get('ptt')!r}, expected true")
    if plain is not None and plain["media"].get("ptt") not in (None, False):
        problems.append(f"plain audio: media.ptt {plain['media'].get('ptt')!r}, expected false or absent")
    if problems:
        fail("a voice note (`ptt` true) surfaced with media.ptt true and plain audio without it",
             "; ".join(problems))
