from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EncType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENC_TYPE_UNSPECIFIED: _ClassVar[EncType]
    ENC_TYPE_PKMSG: _ClassVar[EncType]
    ENC_TYPE_MSG: _ClassVar[EncType]
    ENC_TYPE_SKMSG: _ClassVar[EncType]

class ReceiptType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECEIPT_TYPE_UNSPECIFIED: _ClassVar[ReceiptType]
    RECEIPT_TYPE_DELIVERY: _ClassVar[ReceiptType]
    RECEIPT_TYPE_READ: _ClassVar[ReceiptType]
    RECEIPT_TYPE_RETRY: _ClassVar[ReceiptType]

class ChatStateType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_STATE_TYPE_UNSPECIFIED: _ClassVar[ChatStateType]
    CHAT_STATE_TYPE_COMPOSING: _ClassVar[ChatStateType]
    CHAT_STATE_TYPE_PAUSED: _ClassVar[ChatStateType]

class DeletionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETION_REASON_UNSPECIFIED: _ClassVar[DeletionReason]
    DELETION_REASON_OPT_OUT: _ClassVar[DeletionReason]
    DELETION_REASON_ACCOUNT_DELETED: _ClassVar[DeletionReason]

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_OPTED_IN: _ClassVar[ErrorCode]
    ERROR_CODE_RATE_LIMITED: _ClassVar[ErrorCode]
    ERROR_CODE_UN_ENLISTED: _ClassVar[ErrorCode]
    ERROR_CODE_BAD_TOKEN: _ClassVar[ErrorCode]
    ERROR_CODE_PROTOCOL_VERSION: _ClassVar[ErrorCode]
    ERROR_CODE_MALFORMED: _ClassVar[ErrorCode]
    ERROR_CODE_TOO_LARGE: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN_USER: _ClassVar[ErrorCode]
    ERROR_CODE_BLOCKED: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]
ENC_TYPE_UNSPECIFIED: EncType
ENC_TYPE_PKMSG: EncType
ENC_TYPE_MSG: EncType
ENC_TYPE_SKMSG: EncType
RECEIPT_TYPE_UNSPECIFIED: ReceiptType
RECEIPT_TYPE_DELIVERY: ReceiptType
RECEIPT_TYPE_READ: ReceiptType
RECEIPT_TYPE_RETRY: ReceiptType
CHAT_STATE_TYPE_UNSPECIFIED: ChatStateType
CHAT_STATE_TYPE_COMPOSING: ChatStateType
CHAT_STATE_TYPE_PAUSED: ChatStateType
DELETION_REASON_UNSPECIFIED: DeletionReason
DELETION_REASON_OPT_OUT: DeletionReason
DELETION_REASON_ACCOUNT_DELETED: DeletionReason
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_NOT_OPTED_IN: ErrorCode
ERROR_CODE_RATE_LIMITED: ErrorCode
ERROR_CODE_UN_ENLISTED: ErrorCode
ERROR_CODE_BAD_TOKEN: ErrorCode
ERROR_CODE_PROTOCOL_VERSION: ErrorCode
ERROR_CODE_MALFORMED: ErrorCode
ERROR_CODE_TOO_LARGE: ErrorCode
ERROR_CODE_UNKNOWN_USER: ErrorCode
ERROR_CODE_BLOCKED: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode

class HandshakePayload(_message.Message):
    __slots__ = ("jwt", "protocol_version", "login")
    JWT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    jwt: str
    protocol_version: str
    login: str
    def __init__(self, jwt: _Optional[str] = ..., protocol_version: _Optional[str] = ..., login: _Optional[str] = ...) -> None: ...

class Stanza(_message.Message):
    __slots__ = ("id", "message", "receipt", "ack", "ping", "pong", "key_fetch", "key_bundle", "pre_key_upload", "blocklist_get", "blocklist_set", "blocklist", "deletion_request", "reachability_ping", "notification", "error", "chatstate")
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    KEY_FETCH_FIELD_NUMBER: _ClassVar[int]
    KEY_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    PRE_KEY_UPLOAD_FIELD_NUMBER: _ClassVar[int]
    BLOCKLIST_GET_FIELD_NUMBER: _ClassVar[int]
    BLOCKLIST_SET_FIELD_NUMBER: _ClassVar[int]
    BLOCKLIST_FIELD_NUMBER: _ClassVar[int]
    DELETION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    REACHABILITY_PING_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CHATSTATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    message: Message
    receipt: Receipt
    ack: Ack
    ping: Ping
    pong: Pong
    key_fetch: KeyFetchRequest
    key_bundle: KeyBundle
    pre_key_upload: PreKeyUpload
    blocklist_get: BlocklistGet
    blocklist_set: BlocklistSet
    blocklist: Blocklist
    deletion_request: DeletionRequest
    reachability_ping: ReachabilityPing
    notification: Notification
    error: Error
    chatstate: ChatState
    def __init__(self, id: _Optional[str] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., key_fetch: _Optional[_Union[KeyFetchRequest, _Mapping]] = ..., key_bundle: _Optional[_Union[KeyBundle, _Mapping]] = ..., pre_key_upload: _Optional[_Union[PreKeyUpload, _Mapping]] = ..., blocklist_get: _Optional[_Union[BlocklistGet, _Mapping]] = ..., blocklist_set: _Optional[_Union[BlocklistSet, _Mapping]] = ..., blocklist: _Optional[_Union[Blocklist, _Mapping]] = ..., deletion_request: _Optional[_Union[DeletionRequest, _Mapping]] = ..., reachability_ping: _Optional[_Union[ReachabilityPing, _Mapping]] = ..., notification: _Optional[_Union[Notification, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., chatstate: _Optional[_Union[ChatState, _Mapping]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("recipient", "sender", "type", "ciphertext", "timestamp_ms", "group_id", "retry_count")
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    recipient: str
    sender: str
    type: EncType
    ciphertext: bytes
    timestamp_ms: int
    group_id: str
    retry_count: int
    def __init__(self, recipient: _Optional[str] = ..., sender: _Optional[str] = ..., type: _Optional[_Union[EncType, str]] = ..., ciphertext: _Optional[bytes] = ..., timestamp_ms: _Optional[int] = ..., group_id: _Optional[str] = ..., retry_count: _Optional[int] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("type", "message_ids", "recipient", "sender", "group_id", "timestamp_ms", "registration_id", "retry_count")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    type: ReceiptType
    message_ids: _containers.RepeatedScalarFieldContainer[str]
    recipient: str
    sender: str
    group_id: str
    timestamp_ms: int
    registration_id: int
    retry_count: int
    def __init__(self, type: _Optional[_Union[ReceiptType, str]] = ..., message_ids: _Optional[_Iterable[str]] = ..., recipient: _Optional[str] = ..., sender: _Optional[str] = ..., group_id: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., registration_id: _Optional[int] = ..., retry_count: _Optional[int] = ...) -> None: ...

class ChatState(_message.Message):
    __slots__ = ("recipient", "sender", "state")
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    recipient: str
    sender: str
    state: ChatStateType
    def __init__(self, recipient: _Optional[str] = ..., sender: _Optional[str] = ..., state: _Optional[_Union[ChatStateType, str]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("timestamp_ms",)
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    timestamp_ms: int
    def __init__(self, timestamp_ms: _Optional[int] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Pong(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KeyFetchRequest(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class SignedPreKey(_message.Message):
    __slots__ = ("id", "public_key", "signature")
    ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    id: int
    public_key: bytes
    signature: bytes
    def __init__(self, id: _Optional[int] = ..., public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class OneTimePreKey(_message.Message):
    __slots__ = ("id", "public_key")
    ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    id: int
    public_key: bytes
    def __init__(self, id: _Optional[int] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class KeyBundle(_message.Message):
    __slots__ = ("user", "identity_key", "registration_id", "signed_pre_key", "one_time_pre_key")
    USER_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNED_PRE_KEY_FIELD_NUMBER: _ClassVar[int]
    ONE_TIME_PRE_KEY_FIELD_NUMBER: _ClassVar[int]
    user: str
    identity_key: bytes
    registration_id: int
    signed_pre_key: SignedPreKey
    one_time_pre_key: OneTimePreKey
    def __init__(self, user: _Optional[str] = ..., identity_key: _Optional[bytes] = ..., registration_id: _Optional[int] = ..., signed_pre_key: _Optional[_Union[SignedPreKey, _Mapping]] = ..., one_time_pre_key: _Optional[_Union[OneTimePreKey, _Mapping]] = ...) -> None: ...

class PreKeyUpload(_message.Message):
    __slots__ = ("signed_pre_key", "one_time_pre_keys")
    SIGNED_PRE_KEY_FIELD_NUMBER: _ClassVar[int]
    ONE_TIME_PRE_KEYS_FIELD_NUMBER: _ClassVar[int]
    signed_pre_key: SignedPreKey
    one_time_pre_keys: _containers.RepeatedCompositeFieldContainer[OneTimePreKey]
    def __init__(self, signed_pre_key: _Optional[_Union[SignedPreKey, _Mapping]] = ..., one_time_pre_keys: _Optional[_Iterable[_Union[OneTimePreKey, _Mapping]]] = ...) -> None: ...

class BlocklistGet(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BlocklistSet(_message.Message):
    __slots__ = ("add", "remove")
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    add: _containers.RepeatedScalarFieldContainer[str]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, add: _Optional[_Iterable[str]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class Blocklist(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, users: _Optional[_Iterable[str]] = ...) -> None: ...

class DeletionRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: DeletionReason
    def __init__(self, reason: _Optional[_Union[DeletionReason, str]] = ...) -> None: ...

class ReachabilityPing(_message.Message):
    __slots__ = ("recipient",)
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    recipient: str
    def __init__(self, recipient: _Optional[str] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("identity_change", "consent_revoked", "low_pre_keys", "consent_granted", "group_membership")
    IDENTITY_CHANGE_FIELD_NUMBER: _ClassVar[int]
    CONSENT_REVOKED_FIELD_NUMBER: _ClassVar[int]
    LOW_PRE_KEYS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_GRANTED_FIELD_NUMBER: _ClassVar[int]
    GROUP_MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    identity_change: IdentityChange
    consent_revoked: ConsentRevoked
    low_pre_keys: LowPreKeys
    consent_granted: ConsentGranted
    group_membership: GroupMembership
    def __init__(self, identity_change: _Optional[_Union[IdentityChange, _Mapping]] = ..., consent_revoked: _Optional[_Union[ConsentRevoked, _Mapping]] = ..., low_pre_keys: _Optional[_Union[LowPreKeys, _Mapping]] = ..., consent_granted: _Optional[_Union[ConsentGranted, _Mapping]] = ..., group_membership: _Optional[_Union[GroupMembership, _Mapping]] = ...) -> None: ...

class IdentityChange(_message.Message):
    __slots__ = ("user", "identity_key")
    USER_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    user: str
    identity_key: bytes
    def __init__(self, user: _Optional[str] = ..., identity_key: _Optional[bytes] = ...) -> None: ...

class ConsentRevoked(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class ConsentGranted(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class LowPreKeys(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class GroupMembership(_message.Message):
    __slots__ = ("group_id", "participants", "added", "removed")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    participants: _containers.RepeatedScalarFieldContainer[str]
    added: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group_id: _Optional[str] = ..., participants: _Optional[_Iterable[str]] = ..., added: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "detail", "retry_after_ms", "user")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    detail: str
    retry_after_ms: int
    user: str
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., detail: _Optional[str] = ..., retry_after_ms: _Optional[int] = ..., user: _Optional[str] = ...) -> None: ...
