"""Our E2E content against WhatsApp's own definitions, as the Baileys client ships them.

Baileys 6.17.16 (npm ``baileys``, MIT) carries ``WAProto/WAProto.proto`` and the protobufjs code
generated from it, which is what Baileys encodes and decodes ``proto.Message`` with. For every
message type of ``docs/spec/proto/content.proto`` this module checks:

* the schema: each of our fields has a WhatsApp field with the same tag, wire type, label and,
  for enums, the same value numbers and names (the correspondence is found by tag, never by a
  table written here);
* the bytes: our encoding decodes with Baileys' generated code to exactly our field values, and
  Baileys' encoding of the same values decodes with ours to an equal message, byte-identical;
  fixed cases plus hypothesis-generated messages driven by our descriptors (so a field added to
  content.proto is covered without touching this file);
* padding against ``writeRandomPadMax16`` / ``unpadRandomMax16`` and media keys against
  ``getMediaKeys`` / ``hkdfInfoKey`` for every media type, voice notes (``ptt``) included.

Skipped without node/npm, a failure under ``CI`` (the rule of the other interop peers).
"""
from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message as ProtoMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baileys_client  # noqa: E402
from peers_client import Peer, PeerError, ProvisioningError  # noqa: E402

from reference_impl.media.crypto import MediaType, derive_media_keys  # noqa: E402
from reference_impl.signal.errors import InvalidPaddingError  # noqa: E402
from reference_impl.signal.padding import MAX_PAD, MIN_PAD, pad, pad_with, unpad  # noqa: E402
from reference_impl.wire import content_pb2 as cpb  # noqa: E402
from reference_impl.wire.message_key import target_author, target_key  # noqa: E402

FD = FieldDescriptor
#: protobuf type names as WAProto.proto spells them, for our scalar field types.
_SCALAR_NAMES = {
    FD.TYPE_STRING: "string", FD.TYPE_BYTES: "bytes", FD.TYPE_BOOL: "bool",
    FD.TYPE_UINT32: "uint32", FD.TYPE_UINT64: "uint64", FD.TYPE_INT32: "int32",
    FD.TYPE_INT64: "int64", FD.TYPE_FIXED32: "fixed32", FD.TYPE_SINT64: "sint64",
}
_LONGS = {FD.TYPE_UINT64, FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_FIXED64, FD.TYPE_SFIXED64}
#: Where our field name is not WhatsApp's name in snake_case, the WhatsApp name of the same
#: concept. Tags and types alone would accept a string on the wrong string tag (1.0.0 had
#: `mimetype` on tag 1, WhatsApp's `url`); the names prove the concept.
_RENAMED = {
    "interop.content.Message.image": "imageMessage",
    "interop.content.Message.extended_text": "extendedTextMessage",
    "interop.content.Message.document": "documentMessage",
    "interop.content.Message.audio": "audioMessage",
    "interop.content.Message.video": "videoMessage",
    "interop.content.Message.protocol": "protocolMessage",
    "interop.content.Message.sticker": "stickerMessage",
    "interop.content.Message.reaction": "reactionMessage",
    "interop.content.Message.sender_key_distribution": "senderKeyDistributionMessage",
    "interop.content.ContextInfo.quoted_message_id": "stanzaId",
    "interop.content.ContextInfo.quoted_sender": "participant",
    "interop.content.ReactionMessage.emoji": "text",
    "interop.content.SenderKeyDistribution.distribution_message":
        "axolotlSenderKeyDistributionMessage",
}


def _wa_name(f: FieldDescriptor) -> str:
    if f.full_name in _RENAMED:
        return _RENAMED[f.full_name]
    head, *rest = f.name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


@pytest.fixture(scope="module")
def waproto() -> Iterator[Peer]:
    try:
        directory = baileys_client.ensure_baileys()
    except ProvisioningError as exc:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"Baileys content oracle unavailable under CI: {exc}", pytrace=False)
        pytest.skip(f"Baileys content oracle unavailable: {exc}")
    peer = baileys_client.waproto_peer(directory)
    assert "decode" in peer.ops() and peer.impl == "baileys-6.17.16"
    yield peer
    peer.close()


# ------------------------------------------------------------------------------ WhatsApp schema

class WaSchema:
    """WAProto.proto's field tables, fetched from the oracle and cached per type name."""

    def __init__(self, peer: Peer):
        self.peer = peer
        self._types: dict[str, dict[str, Any]] = {}

    def type(self, name: str) -> dict[str, Any]:
        if name not in self._types:
            (described,) = self.peer.call("describe", check=True, types=[name])["types"]
            self._types[name] = described
        return self._types[name]

    def field(self, type_name: str, number: int) -> dict[str, Any] | None:
        return next((f for f in self.type(type_name)["fields"] if f["id"] == number), None)


@pytest.fixture(scope="module")
def schema(waproto: Peer) -> WaSchema:
    return WaSchema(waproto)


def _walk(ours: Descriptor, wa: str, schema: WaSchema, seen: dict[str, str],
          problems: list[str]) -> None:
    """Compare ``ours`` with WhatsApp type ``wa`` field by field, recursing into message types."""
    if ours.full_name in seen:
        if seen[ours.full_name] != wa:
            problems.append(f"{ours.full_name} stands for both {seen[ours.full_name]} and {wa}")
        return
    seen[ours.full_name] = wa
    for f in ours.fields:
        where = f"{ours.name}.{f.name} = {f.number}"
        theirs = schema.field(wa, f.number)
        if theirs is None:
            problems.append(f"{where}: WhatsApp's {wa} has no field {f.number}")
            continue
        if theirs["name"] != _wa_name(f):
            problems.append(f"{where}: WhatsApp's tag {f.number} is {theirs['name']}, "
                            f"not {_wa_name(f)}")
        if theirs["repeated"] != f.is_repeated:
            problems.append(f"{where}: repeated differs from {wa}.{theirs['name']}")
        if f.type == FD.TYPE_MESSAGE:
            if theirs["kind"] != "message":
                problems.append(f"{where}: a message, WhatsApp's {theirs['name']} is {theirs['type']}")
            else:
                _walk(f.message_type, theirs["type_name"], schema, seen, problems)
        elif f.type == FD.TYPE_ENUM:
            if theirs["kind"] != "enum":
                problems.append(f"{where}: an enum, WhatsApp's {theirs['name']} is {theirs['type']}")
            else:
                _compare_enum(f.enum_type, schema.type(theirs["type_name"]), where, problems)
        elif _SCALAR_NAMES.get(f.type) != theirs["type"]:
            problems.append(f"{where}: {_SCALAR_NAMES.get(f.type, f.type)}, WhatsApp's "
                            f"{wa}.{theirs['name']} is {theirs['type']}")


def _compare_enum(ours: EnumDescriptor, theirs: dict[str, Any], where: str,
                  problems: list[str]) -> None:
    by_number = {v: k for k, v in theirs["values"].items()}
    for v in ours.values:
        if by_number.get(v.number) != v.name:
            problems.append(f"{where}: enum value {v.name} = {v.number}, WhatsApp has "
                            f"{by_number.get(v.number)!r} = {v.number}")


@pytest.fixture(scope="module")
def type_map(schema: WaSchema) -> dict[str, str]:
    """Our message full name -> WhatsApp's type name, found by walking the tags from Message."""
    seen: dict[str, str] = {}
    problems: list[str] = []
    _walk(cpb.Message.DESCRIPTOR, "Message", schema, seen, problems)
    assert not problems, "content.proto differs from WAProto.proto:\n" + "\n".join(problems)
    return seen


def test_every_content_type_is_field_and_type_compatible(type_map: dict[str, str]) -> None:
    assert type_map == {
        "interop.content.Message": "Message",
        "interop.content.ImageMessage": "Message.ImageMessage",
        "interop.content.ContextInfo": "ContextInfo",
        "interop.content.ExtendedTextMessage": "Message.ExtendedTextMessage",
        "interop.content.DocumentMessage": "Message.DocumentMessage",
        "interop.content.AudioMessage": "Message.AudioMessage",
        "interop.content.VideoMessage": "Message.VideoMessage",
        "interop.content.ProtocolMessage": "Message.ProtocolMessage",
        "interop.content.MessageKey": "MessageKey",
        "interop.content.StickerMessage": "Message.StickerMessage",
        "interop.content.ReactionMessage": "Message.ReactionMessage",
        "interop.content.SenderKeyDistribution": "Message.SenderKeyDistributionMessage",
    }


def test_schema_walk_catches_a_moved_tag(schema: WaSchema) -> None:
    """The walk is not vacuous: the 1.0.0 layout (ptt on 5, contextInfo on 9) is reported."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    old = descriptor_pb2.FileDescriptorProto(name="old_audio.proto", package="old", syntax="proto3")
    msg = old.message_type.add(name="AudioMessage")
    msg.field.add(name="mimetype", number=1, type=FD.TYPE_STRING)
    msg.field.add(name="ptt", number=5, type=FD.TYPE_BOOL)
    desc = descriptor_pool.DescriptorPool().Add(old).message_types_by_name["AudioMessage"]
    problems: list[str] = []
    _walk(desc, "Message.AudioMessage", schema, {}, problems)
    assert any("mimetype = 1" in p and "url" in p for p in problems), problems
    assert any("ptt = 5" in p and "uint32" in p for p in problems), problems
    assert all("mimetype = 1" in p or "ptt = 5" in p for p in problems), problems


# ------------------------------------------------------------------------------ values as JSON

def to_wa_object(m: ProtoMessage, schema: WaSchema, wa: str) -> dict[str, Any]:
    """The protobufjs ``toObject`` form (longs as strings, bytes base64, enums numbers) of ``m``."""
    out: dict[str, Any] = {}
    for f, value in m.ListFields():
        field = schema.field(wa, f.number)
        assert field is not None, f"{wa} has no field {f.number}"
        out[field["name"]] = _wa_value(f, value, schema, field)
    return out


def _wa_value(f: FieldDescriptor, value: Any, schema: WaSchema, field: dict[str, Any]) -> Any:
    if f.is_repeated:
        return [_wa_scalar(f, v, schema, field) for v in value]
    return _wa_scalar(f, value, schema, field)


def _wa_scalar(f: FieldDescriptor, value: Any, schema: WaSchema, field: dict[str, Any]) -> Any:
    if f.type == FD.TYPE_MESSAGE:
        return to_wa_object(value, schema, field["type_name"])
    if f.type == FD.TYPE_BYTES:
        return base64.b64encode(value).decode()
    if f.type in _LONGS:
        return str(value)
    return value


def cross_check(peer: Peer, schema: WaSchema, m: cpb.Message) -> None:
    """Ours -> Baileys decode == our values; Baileys encode of those values -> ours == m."""
    ours = m.SerializeToString()
    expected = to_wa_object(m, schema, "Message")
    decoded = peer.call("decode", check=True, type="Message",
                        b64=base64.b64encode(ours).decode())["object"]
    assert decoded == expected, f"Baileys read our bytes {ours.hex()} differently"
    theirs = base64.b64decode(peer.call("encode", check=True, type="Message",
                                        object=expected)["b64"])
    back = cpb.Message.FromString(theirs)
    assert back == m, f"we read Baileys' bytes {theirs.hex()} as {back}"
    assert theirs == ours, f"encodings differ: ours {ours.hex()}, Baileys {theirs.hex()}"


# ------------------------------------------------------------------------------ fixed cases

_SHA = bytes(range(32))
_ENC = bytes(range(32, 64))
_KEY = bytes(range(64, 96))
_PATH = "/interop/whatsapp/download/int-1/ref-abc/"
_QUOTE = cpb.ContextInfo(quoted_message_id="3EB0AA", quoted_sender="1-491701234567@interop")
_COMMON = {"file_sha256": _SHA, "file_enc_sha256": _ENC, "media_key": _KEY, "direct_path": _PATH}

FIXED: dict[str, cpb.Message] = {
    "conversation": cpb.Message(conversation="hello, Grüße 👋"),
    "extended_text reply": cpb.Message(extended_text=cpb.ExtendedTextMessage(
        text="a reply", context_info=_QUOTE)),
    "image": cpb.Message(image=cpb.ImageMessage(
        mimetype="image/jpeg", caption="cap", file_length=123456, height=480, width=640,
        context_info=_QUOTE, **_COMMON)),
    "video": cpb.Message(video=cpb.VideoMessage(
        mimetype="video/mp4", caption="clip", file_length=9_000_000, seconds=12, height=720,
        width=1280, context_info=_QUOTE, **_COMMON)),
    "audio": cpb.Message(audio=cpb.AudioMessage(
        mimetype="audio/mpeg", file_length=4096, seconds=3, ptt=False, **_COMMON)),
    "voice note": cpb.Message(audio=cpb.AudioMessage(
        mimetype="audio/ogg; codecs=opus", file_length=2048, seconds=7, ptt=True, **_COMMON)),
    "document": cpb.Message(document=cpb.DocumentMessage(
        mimetype="application/pdf", file_name="report.pdf", caption="see p. 2",
        file_length=2**33 + 5, context_info=_QUOTE, **_COMMON)),
    "sticker": cpb.Message(sticker=cpb.StickerMessage(
        mimetype="image/webp", file_length=777, height=512, width=512, **_COMMON)),
    "reaction": cpb.Message(reaction=cpb.ReactionMessage(
        key=target_key(me="g:1", chat="1-2@interop", target_sender="1-2@interop",
                       target_id="m-42"), emoji="👍", sender_timestamp_ms=1733300000123)),
    "reaction removal": cpb.Message(reaction=cpb.ReactionMessage(
        key=target_key(me="g:1", chat="1-2@interop", target_sender="g:1", target_id="m-41"),
        emoji="", sender_timestamp_ms=1733300000999)),
    "group reaction": cpb.Message(reaction=cpb.ReactionMessage(
        key=target_key(me="g:1", chat="grp-7", target_sender="g:2", target_id="m-9", group=True),
        emoji="❤️", sender_timestamp_ms=1)),
    "revoke": cpb.Message(protocol=cpb.ProtocolMessage(
        key=target_key(me="g:1", chat="1-2@interop", target_sender="g:1", target_id="m-40"),
        type=cpb.ProtocolMessage.REVOKE)),
    "sender key distribution": cpb.Message(sender_key_distribution=cpb.SenderKeyDistribution(
        group_id="grp-7", distribution_message=b"\x33" + bytes(60))),
    "sender key distribution with text": cpb.Message(
        conversation="hi group", sender_key_distribution=cpb.SenderKeyDistribution(
            group_id="grp-7", distribution_message=b"\x33\x0a\x01")),
}


@pytest.mark.parametrize("name", list(FIXED))
def test_fixed_content_cross_decodes(waproto: Peer, schema: WaSchema, type_map: dict[str, str],
                                     name: str) -> None:
    cross_check(waproto, schema, FIXED[name])


def test_every_content_member_has_a_fixed_case() -> None:
    members = {f.name for f in cpb.Message.DESCRIPTOR.oneofs_by_name["content"].fields}
    covered = {m.WhichOneof("content") for m in FIXED.values()} - {None}
    assert covered == members
    assert any(m.HasField("sender_key_distribution") for m in FIXED.values())


def _wa(peer: Peer, obj: dict[str, Any]) -> cpb.Message:
    b64 = peer.call("encode", check=True, type="Message", object=obj)["b64"]
    return cpb.Message.FromString(base64.b64decode(b64))


def test_whatsapp_shaped_messages_read_with_our_field_names(waproto: Peer) -> None:
    """What a WhatsApp client fills in (url, timestamps, thumbnails, quotedMessage ...) does not
    disturb the fields the profile reads; the names below are WhatsApp's own."""
    b = lambda x: base64.b64encode(x).decode()  # noqa: E731
    image = _wa(waproto, {"imageMessage": {
        "url": "https://mmg.whatsapp.net/o1/v/t62/x", "mimetype": "image/jpeg", "caption": "c",
        "fileSha256": b(_SHA), "fileLength": "99", "height": 3, "width": 4, "mediaKey": b(_KEY),
        "fileEncSha256": b(_ENC), "directPath": _PATH, "mediaKeyTimestamp": "1733300000",
        "jpegThumbnail": b(b"\xff\xd8thumb"), "contextInfo": {
            "stanzaId": "3EB0AA", "participant": "g:2", "quotedMessage": {"conversation": "q"}},
        "viewOnce": False}, "messageContextInfo": {"deviceListMetadataVersion": 2}})
    assert image.WhichOneof("content") == "image"
    i = image.image
    assert (i.mimetype, i.caption, i.file_sha256, i.file_length, i.height, i.width, i.media_key,
            i.file_enc_sha256, i.direct_path, i.context_info.quoted_message_id,
            i.context_info.quoted_sender) == ("image/jpeg", "c", _SHA, 99, 3, 4, _KEY, _ENC, _PATH,
                                              "3EB0AA", "g:2")

    voice = _wa(waproto, {"audioMessage": {
        "url": "u", "mimetype": "audio/ogg; codecs=opus", "fileSha256": b(_SHA), "fileLength": "5",
        "seconds": 9, "ptt": True, "mediaKey": b(_KEY), "fileEncSha256": b(_ENC),
        "directPath": _PATH, "waveform": b(bytes(64))}})
    a = voice.audio
    assert (a.ptt, a.seconds, a.media_key, a.file_enc_sha256, a.direct_path) == (
        True, 9, _KEY, _ENC, _PATH)

    doc = _wa(waproto, {"documentMessage": {
        "mimetype": "application/pdf", "title": "Report", "fileName": "r.pdf", "caption": "cap",
        "pageCount": 3, "mediaKey": b(_KEY), "directPath": _PATH}})
    d = doc.document
    assert (d.file_name, d.caption, d.media_key, d.direct_path) == ("r.pdf", "cap", _KEY, _PATH)

    text = _wa(waproto, {"extendedTextMessage": {
        "text": "see https://example.org", "matchedText": "https://example.org",
        "contextInfo": {"stanzaId": "m1", "participant": "g:3"}}})
    assert (text.extended_text.text, text.extended_text.context_info.quoted_message_id,
            text.extended_text.context_info.quoted_sender) == ("see https://example.org", "m1", "g:3")

    # Baileys' sendMessage({react}) and sendMessage({delete: key}) shapes.
    react = _wa(waproto, {"reactionMessage": {
        "key": {"remoteJid": "1-2@interop", "fromMe": False, "id": "m-42"}, "text": "🔥",
        "senderTimestampMs": "1733300000123"}})
    assert react.reaction.emoji == "🔥" and react.reaction.sender_timestamp_ms == 1733300000123
    assert target_author(react.reaction.key, sender="g:1") == "1-2@interop"
    assert react.reaction.key.id == "m-42"
    revoke = _wa(waproto, {"protocolMessage": {
        "key": {"remoteJid": "1-2@interop", "fromMe": True, "id": "m-40"}, "type": 0}})
    p = revoke.protocol
    assert p.HasField("type") and p.type == cpb.ProtocolMessage.REVOKE and p.key.id == "m-40"
    assert target_author(p.key, sender="g:1") == "g:1"


def test_protocol_types_we_do_not_define_never_read_as_revoke(waproto: Peer) -> None:
    """WhatsApp's MESSAGE_EDIT (14) keeps its number with our open enum: not a revoke."""
    edit = _wa(waproto, {"protocolMessage": {"key": {"id": "m-1", "fromMe": True}, "type": 14,
                                             "editedMessage": {"conversation": "new"}}})
    assert edit.protocol.type == 14 and edit.protocol.type != cpb.ProtocolMessage.REVOKE


def test_a_revoke_without_type_is_a_revoke_in_both(waproto: Peer, schema: WaSchema) -> None:
    """proto2 reads an absent enum as its first value (REVOKE); so does our proto3 default."""
    m = cpb.Message(protocol=cpb.ProtocolMessage(key=cpb.MessageKey(id="m-3", from_me=True)))
    decoded = waproto.call("decode", check=True, type="Message",
                           b64=base64.b64encode(m.SerializeToString()).decode())["object"]
    assert "type" not in decoded["protocolMessage"] and m.protocol.type == 0


# ------------------------------------------------------------------------------ generated cases

def _scalar_strategy(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = f.type
    if t == FD.TYPE_STRING:
        return st.text(max_size=40)
    if t == FD.TYPE_BYTES:
        return st.binary(max_size=48)
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t == FD.TYPE_UINT32:
        return st.integers(0, 2**32 - 1)
    if t == FD.TYPE_UINT64:
        return st.integers(0, 2**64 - 1)
    if t == FD.TYPE_INT64:
        return st.integers(-(2**63), 2**63 - 1)
    if t == FD.TYPE_ENUM:
        return st.sampled_from([v.number for v in f.enum_type.values])
    raise AssertionError(f"no strategy for {f.full_name} (type {t}): extend _scalar_strategy")


@st.composite
def _message(draw: st.DrawFn, desc: Descriptor, depth: int = 0) -> ProtoMessage:
    """Any subset of ``desc``'s fields set (at most one member of a oneof)."""
    cls = getattr(cpb, desc.name)
    m = cls()
    for f in desc.fields:
        if f.containing_oneof is not None or not draw(st.booleans()):
            continue
        if f.type == FD.TYPE_MESSAGE:
            if depth < 3:
                getattr(m, f.name).CopyFrom(draw(_message(f.message_type, depth + 1)))
        else:
            setattr(m, f.name, draw(_scalar_strategy(f)))
    for oneof in desc.oneofs:
        f = draw(st.sampled_from(list(oneof.fields)))
        if f.type == FD.TYPE_MESSAGE:
            getattr(m, f.name).CopyFrom(draw(_message(f.message_type, depth + 1)))
        else:
            setattr(m, f.name, draw(_scalar_strategy(f)))
    return m


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=_message(cpb.Message.DESCRIPTOR))
def test_generated_content_cross_decodes(waproto: Peer, schema: WaSchema,
                                         type_map: dict[str, str], m: cpb.Message) -> None:
    cross_check(waproto, schema, m)


# ------------------------------------------------------------------------------ padding

def _call_b64(peer: Peer, op: str, data: bytes) -> bytes:
    return base64.b64decode(peer.call(op, check=True, b64=base64.b64encode(data).decode())["b64"])


@pytest.mark.parametrize("n", range(MIN_PAD, MAX_PAD + 1))
def test_our_padding_is_stripped_by_unpadRandomMax16(waproto: Peer, n: int) -> None:
    body = FIXED["image"].SerializeToString()
    assert _call_b64(waproto, "unpad", pad_with(body, n)) == body


def test_writeRandomPadMax16_output_is_accepted_by_our_strict_unpad(waproto: Peer) -> None:
    body = FIXED["reaction"].SerializeToString()
    lengths = set()
    for _ in range(300):
        padded = _call_b64(waproto, "pad", body)
        lengths.add(len(padded) - len(body))
        assert unpad(padded) == body
        assert _call_b64(waproto, "unpad", pad(body)) == body
    # Baileys draws N in 1..15 (a random nibble, 0 -> 15); 300 draws see most of them.
    assert lengths <= set(range(MIN_PAD, MAX_PAD + 1)) and len(lengths) >= 10, sorted(lengths)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64))
def test_what_we_accept_baileys_reads_the_same(waproto: Peer, data: bytes) -> None:
    """Our unpad is stricter than Baileys' (E2E-009): whatever it accepts, Baileys strips to the
    same bytes, and what Baileys rejects (empty, length byte above the size) ours rejects too."""
    try:
        ours: bytes | None = unpad(data)
    except InvalidPaddingError:
        ours = None
    try:
        theirs: bytes | None = _call_b64(waproto, "unpad", data)
    except PeerError:
        theirs = None
    if ours is not None:
        assert theirs == ours
    if theirs is None:
        assert ours is None


def test_padding_bytes_baileys_tolerates_but_the_profile_rejects(waproto: Peer) -> None:
    """Differences on purpose (E2E-009): writeRandomPadMax16 never produces these."""
    for bad in (b"abc\x00", b"a" * 20 + b"\x10" * 16, b"abc\x02\x03"):
        assert _call_b64(waproto, "unpad", bad) == bad[: len(bad) - bad[-1]]
        with pytest.raises(InvalidPaddingError):
            unpad(bad)


# ------------------------------------------------------------------------------ media keys

#: Baileys media type -> ours. A voice note ("ptt") is an AudioMessage and uses the audio label.
_MEDIA = {"image": MediaType.IMAGE, "video": MediaType.VIDEO, "audio": MediaType.AUDIO,
          "ptt": MediaType.AUDIO, "document": MediaType.DOCUMENT, "sticker": MediaType.STICKER}


def test_every_media_type_is_compared() -> None:
    assert set(_MEDIA.values()) == set(MediaType)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(media_key=st.binary(min_size=32, max_size=32), wa_type=st.sampled_from(sorted(_MEDIA)))
def test_media_keys_match_getMediaKeys(waproto: Peer, media_key: bytes, wa_type: str) -> None:
    theirs = waproto.call("media_keys", check=True, media_key=base64.b64encode(media_key).decode(),
                          media_type=wa_type)
    ours = derive_media_keys(media_key, _MEDIA[wa_type])
    assert theirs["info"].encode() == _MEDIA[wa_type].info
    assert (base64.b64decode(theirs["iv"]), base64.b64decode(theirs["cipher_key"]),
            base64.b64decode(theirs["mac_key"])) == (ours.iv, ours.cipher_key, ours.mac_key)
