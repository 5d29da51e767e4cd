from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Message(_message.Message):
    __slots__ = ("conversation", "image", "extended_text", "document", "audio", "video", "protocol", "sticker", "reaction", "sender_key_distribution")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EXTENDED_TEXT_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    STICKER_FIELD_NUMBER: _ClassVar[int]
    REACTION_FIELD_NUMBER: _ClassVar[int]
    SENDER_KEY_DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    image: ImageMessage
    extended_text: ExtendedTextMessage
    document: DocumentMessage
    audio: AudioMessage
    video: VideoMessage
    protocol: ProtocolMessage
    sticker: StickerMessage
    reaction: ReactionMessage
    sender_key_distribution: SenderKeyDistribution
    def __init__(self, conversation: _Optional[str] = ..., image: _Optional[_Union[ImageMessage, _Mapping]] = ..., extended_text: _Optional[_Union[ExtendedTextMessage, _Mapping]] = ..., document: _Optional[_Union[DocumentMessage, _Mapping]] = ..., audio: _Optional[_Union[AudioMessage, _Mapping]] = ..., video: _Optional[_Union[VideoMessage, _Mapping]] = ..., protocol: _Optional[_Union[ProtocolMessage, _Mapping]] = ..., sticker: _Optional[_Union[StickerMessage, _Mapping]] = ..., reaction: _Optional[_Union[ReactionMessage, _Mapping]] = ..., sender_key_distribution: _Optional[_Union[SenderKeyDistribution, _Mapping]] = ...) -> None: ...

class MessageKey(_message.Message):
    __slots__ = ("remote_jid", "from_me", "id", "participant")
    REMOTE_JID_FIELD_NUMBER: _ClassVar[int]
    FROM_ME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    remote_jid: str
    from_me: bool
    id: str
    participant: str
    def __init__(self, remote_jid: _Optional[str] = ..., from_me: _Optional[bool] = ..., id: _Optional[str] = ..., participant: _Optional[str] = ...) -> None: ...

class ContextInfo(_message.Message):
    __slots__ = ("quoted_message_id", "quoted_sender")
    QUOTED_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    QUOTED_SENDER_FIELD_NUMBER: _ClassVar[int]
    quoted_message_id: str
    quoted_sender: str
    def __init__(self, quoted_message_id: _Optional[str] = ..., quoted_sender: _Optional[str] = ...) -> None: ...

class ExtendedTextMessage(_message.Message):
    __slots__ = ("text", "context_info")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_INFO_FIELD_NUMBER: _ClassVar[int]
    text: str
    context_info: ContextInfo
    def __init__(self, text: _Optional[str] = ..., context_info: _Optional[_Union[ContextInfo, _Mapping]] = ...) -> None: ...

class ImageMessage(_message.Message):
    __slots__ = ("mimetype", "caption", "file_sha256", "file_length", "height", "width", "media_key", "file_enc_sha256", "direct_path", "context_info")
    MIMETYPE_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
    FILE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    MEDIA_KEY_FIELD_NUMBER: _ClassVar[int]
    FILE_ENC_SHA256_FIELD_NUMBER: _ClassVar[int]
    DIRECT_PATH_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_INFO_FIELD_NUMBER: _ClassVar[int]
    mimetype: str
    caption: str
    file_sha256: bytes
    file_length: int
    height: int
    width: int
    media_key: bytes
    file_enc_sha256: bytes
    direct_path: str
    context_info: ContextInfo
    def __init__(self, mimetype: _Optional[str] = ..., caption: _Optional[str] = ..., file_sha256: _Optional[bytes] = ..., file_length: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., media_key: _Optional[bytes] = ..., file_enc_sha256: _Optional[bytes] = ..., direct_path: _Optional[str] = ..., context_info: _Optional[_Union[ContextInfo, _Mapping]] = ...) -> None: ...

class VideoMessage(_message.Message):
    __slots__ = ("mimetype", "file_sha256", "file_length", "seconds", "media_key", "caption", "height", "width", "file_enc_sha256", "direct_path", "context_info")
    MIMETYPE_FIELD_NUMBER: _ClassVar[int]
    FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
    FILE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_KEY_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    FILE_ENC_SHA256_FIELD_NUMBER: _ClassVar[int]
    DIRECT_PATH_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_INFO_FIELD_NUMBER: _ClassVar[int]
    mimetype: str
    file_sha256: bytes
    file_length: int
    seconds: int
    media_key: bytes
    caption: str
    height: int
    width: int
    file_enc_sha256: bytes
    direct_path: str
    context_info: ContextInfo
    def __init__(self, mimetype: _Optional[str] = ..., file_sha256: _Optional[bytes] = ..., file_length: _Optional[int] = ..., seconds: _Optional[int] = ..., media_key: _Optional[bytes] = ..., caption: _Optional[str] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., file_enc_sha256: _Optional[bytes] = ..., direct_path: _Optional[str] = ..., context_info: _Optional[_Union[ContextInfo, _Mapping]] = ...) -> None: ...

class AudioMessage(_message.Message):
    __slots__ = ("mimetype", "file_sha256", "file_length", "seconds", "ptt", "media_key", "file_enc_sha256", "direct_path", "context_info")
    MIMETYPE_FIELD_NUMBER: _ClassVar[int]
    FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
    FILE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    PTT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_KEY_FIELD_NUMBER: _ClassVar[int]
    FILE_ENC_SHA256_FIELD_NUMBER: _ClassVar[int]
    DIRECT_PATH_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_INFO_FIELD_NUMBER: _ClassVar[int]
    mimetype: str
    file_sha256: bytes
    file_length: int
    seconds: int
    ptt: bool
    media_key: bytes
    file_enc_sha256: bytes
    direct_path: str
    context_info: ContextInfo
    def __init__(self, mimetype: _Optional[str] = ..., file_sha256: _Optional[bytes] = ..., file_length: _Optional[int] = ..., seconds: _Optional[int] = ..., ptt: _Optional[bool] = ..., media_key: _Optional[bytes] = ..., file_enc_sha256: _Optional[bytes] = ..., direct_path: _Optional[str] = ..., context_info: _Optional[_Union[ContextInfo, _Mapping]] = ...) -> None: ...

class DocumentMessage(_message.Message):
    __slots__ = ("mimetype", "file_sha256", "file_length", "media_key", "file_name", "file_enc_sha256", "direct_path", "context_info", "caption")
    MIMETYPE_FIELD_NUMBER: _ClassVar[int]
    FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
    FILE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MEDIA_KEY_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_ENC_SHA256_FIELD_NUMBER: _ClassVar[int]
    DIRECT_PATH_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_INFO_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    mimetype: str
    file_sha256: bytes
    file_length: int
    media_key: bytes
    file_name: str
    file_enc_sha256: bytes
    direct_path: str
    context_info: ContextInfo
    caption: str
    def __init__(self, mimetype: _Optional[str] = ..., file_sha256: _Optional[bytes] = ..., file_length: _Optional[int] = ..., media_key: _Optional[bytes] = ..., file_name: _Optional[str] = ..., file_enc_sha256: _Optional[bytes] = ..., direct_path: _Optional[str] = ..., context_info: _Optional[_Union[ContextInfo, _Mapping]] = ..., caption: _Optional[str] = ...) -> None: ...

class StickerMessage(_message.Message):
    __slots__ = ("file_sha256", "file_enc_sha256", "media_key", "mimetype", "height", "width", "direct_path", "file_length", "context_info")
    FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
    FILE_ENC_SHA256_FIELD_NUMBER: _ClassVar[int]
    MEDIA_KEY_FIELD_NUMBER: _ClassVar[int]
    MIMETYPE_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    DIRECT_PATH_FIELD_NUMBER: _ClassVar[int]
    FILE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_INFO_FIELD_NUMBER: _ClassVar[int]
    file_sha256: bytes
    file_enc_sha256: bytes
    media_key: bytes
    mimetype: str
    height: int
    width: int
    direct_path: str
    file_length: int
    context_info: ContextInfo
    def __init__(self, file_sha256: _Optional[bytes] = ..., file_enc_sha256: _Optional[bytes] = ..., media_key: _Optional[bytes] = ..., mimetype: _Optional[str] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., direct_path: _Optional[str] = ..., file_length: _Optional[int] = ..., context_info: _Optional[_Union[ContextInfo, _Mapping]] = ...) -> None: ...

class ReactionMessage(_message.Message):
    __slots__ = ("key", "emoji", "sender_timestamp_ms")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    SENDER_TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    key: MessageKey
    emoji: str
    sender_timestamp_ms: int
    def __init__(self, key: _Optional[_Union[MessageKey, _Mapping]] = ..., emoji: _Optional[str] = ..., sender_timestamp_ms: _Optional[int] = ...) -> None: ...

class ProtocolMessage(_message.Message):
    __slots__ = ("key", "type")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REVOKE: _ClassVar[ProtocolMessage.Type]
    REVOKE: ProtocolMessage.Type
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    key: MessageKey
    type: ProtocolMessage.Type
    def __init__(self, key: _Optional[_Union[MessageKey, _Mapping]] = ..., type: _Optional[_Union[ProtocolMessage.Type, str]] = ...) -> None: ...

class SenderKeyDistribution(_message.Message):
    __slots__ = ("group_id", "distribution_message")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    distribution_message: bytes
    def __init__(self, group_id: _Optional[str] = ..., distribution_message: _Optional[bytes] = ...) -> None: ...
