"""Byte-exact codecs for the Signal v3 wire messages (WhatsApp-compatible layout).

Layouts (research §2):
- SignalMessage:        ``0x33 || protobuf || mac[8]``
- PreKeySignalMessage:  ``0x33 || protobuf`` (the inner SignalMessage carries the MAC)
- SenderKeyMessage:     ``0x33 || protobuf{id, iteration, ciphertext} || xeddsa_sig[64]``
- SenderKeyDistributionMessage: ``0x33 || protobuf{id, iteration, chain_key, signing_key}``

Encoding goes through ``protobuf`` (proto2: set zero values are written, fields in ascending
tag order, which is what libsignal and the v3 peers emit). Parsing turns every malformed
input into :class:`InvalidMessageError` (or a subclass) and never lets another exception out.
"""
from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from .errors import InvalidKeyError, InvalidMessageError, InvalidVersionError
from .keys import PublicKey
from .proto import whisper_pb2 as pb

__all__ = [
    "CURRENT_VERSION",
    "VERSION_BYTE",
    "MAC_LENGTH",
    "SignalMessage",
    "PreKeySignalMessage",
    "SenderKeyMessage",
    "SenderKeyDistributionMessage",
    "version_byte",
]

CURRENT_VERSION = 3
MAC_LENGTH = 8
SIGNATURE_LENGTH = 64
#: Upper bound on any message we parse; far above anything honest (a 64 KiB-ish ciphertext
#: plus headers) and low enough that hostile input cannot make us allocate much.
MAX_MESSAGE_SIZE = 1 << 20


def version_byte(version: int = CURRENT_VERSION) -> int:
    """``(version << 4) | version``: 0x33 for v3. Every v3 peer writes the same nibble twice;
    npm ``libsignal`` rejects a low nibble above 3, so libsignal's 0x34 is not v3-interoperable."""
    return ((version & 0xF) << 4) | (version & 0xF)


VERSION_BYTE = version_byte()


def _check_version(data: bytes, what: str) -> None:
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidMessageError(f"{what} must be bytes")
    if len(data) > MAX_MESSAGE_SIZE:
        raise InvalidMessageError(f"{what} is {len(data)} bytes, above the {MAX_MESSAGE_SIZE} limit")
    if len(data) < 1:
        raise InvalidMessageError(f"{what} is empty")
    if data[0] != VERSION_BYTE:
        raise InvalidVersionError(
            f"{what} version byte 0x{data[0]:02x}; this profile accepts only 0x{VERSION_BYTE:02x}"
        )


def _parse(msg: Message, data: bytes, what: str) -> None:
    try:
        msg.ParseFromString(bytes(data))
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidMessageError(f"{what}: malformed protobuf ({exc})") from exc
    if len(UnknownFieldSet(msg)):
        raise InvalidMessageError(f"{what}: unknown protobuf fields")


def _key(data: bytes, what: str) -> PublicKey:
    try:
        return PublicKey.from_bytes(data)
    except InvalidKeyError as exc:
        raise InvalidMessageError(f"{what}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SignalMessage:
    ratchet_key: PublicKey
    counter: int
    previous_counter: int
    ciphertext: bytes
    #: ``version || protobuf``: the bytes the MAC covers (after the two identity keys).
    body: bytes
    mac: bytes

    @classmethod
    def encode_body(
        cls, ratchet_key: PublicKey, counter: int, previous_counter: int, ciphertext: bytes
    ) -> bytes:
        m = pb.SignalMessage(
            ratchet_key=ratchet_key.serialize(),
            counter=counter,
            previous_counter=previous_counter,
            ciphertext=ciphertext,
        )
        return bytes([VERSION_BYTE]) + m.SerializeToString()

    @classmethod
    def parse(cls, data: bytes) -> "SignalMessage":
        _check_version(data, "SignalMessage")
        if len(data) < 1 + MAC_LENGTH + 1:
            raise InvalidMessageError(f"SignalMessage of {len(data)} bytes is too short")
        body, mac = bytes(data[:-MAC_LENGTH]), bytes(data[-MAC_LENGTH:])
        m = pb.SignalMessage()
        _parse(m, body[1:], "SignalMessage")
        for f in ("ratchet_key", "counter", "ciphertext"):
            if not m.HasField(f):
                raise InvalidMessageError(f"SignalMessage: required field {f} missing")
        return cls(
            ratchet_key=_key(m.ratchet_key, "SignalMessage.ratchet_key"),
            counter=m.counter,
            previous_counter=m.previous_counter,
            ciphertext=m.ciphertext,
            body=body,
            mac=mac,
        )

    def serialize(self) -> bytes:
        return self.body + self.mac


@dataclass(frozen=True, slots=True)
class PreKeySignalMessage:
    registration_id: int
    pre_key_id: int | None
    signed_pre_key_id: int
    base_key: PublicKey
    identity_key: PublicKey
    message: SignalMessage
    serialized: bytes

    @classmethod
    def build(
        cls,
        *,
        registration_id: int,
        pre_key_id: int | None,
        signed_pre_key_id: int,
        base_key: PublicKey,
        identity_key: PublicKey,
        message: SignalMessage,
    ) -> "PreKeySignalMessage":
        m = pb.PreKeySignalMessage(
            registration_id=registration_id,
            signed_pre_key_id=signed_pre_key_id,
            base_key=base_key.serialize(),
            identity_key=identity_key.serialize(),
            message=message.serialize(),
        )
        if pre_key_id is not None:
            m.pre_key_id = pre_key_id
        serialized = bytes([VERSION_BYTE]) + m.SerializeToString(deterministic=True)
        return cls(registration_id, pre_key_id, signed_pre_key_id, base_key, identity_key,
                   message, serialized)

    @classmethod
    def parse(cls, data: bytes) -> "PreKeySignalMessage":
        _check_version(data, "PreKeySignalMessage")
        m = pb.PreKeySignalMessage()
        _parse(m, data[1:], "PreKeySignalMessage")
        for f in ("base_key", "identity_key", "message", "signed_pre_key_id"):
            if not m.HasField(f):
                raise InvalidMessageError(f"PreKeySignalMessage: required field {f} missing")
        return cls(
            registration_id=m.registration_id,
            pre_key_id=m.pre_key_id if m.HasField("pre_key_id") else None,
            signed_pre_key_id=m.signed_pre_key_id,
            base_key=_key(m.base_key, "PreKeySignalMessage.base_key"),
            identity_key=_key(m.identity_key, "PreKeySignalMessage.identity_key"),
            message=SignalMessage.parse(m.message),
            serialized=bytes(data),
        )

    def serialize(self) -> bytes:
        return self.serialized


@dataclass(frozen=True, slots=True)
class SenderKeyMessage:
    key_id: int
    iteration: int
    ciphertext: bytes
    #: ``version || protobuf``: the bytes the signature covers.
    body: bytes
    signature: bytes

    @classmethod
    def encode_body(cls, key_id: int, iteration: int, ciphertext: bytes) -> bytes:
        m = pb.SenderKeyMessage(id=key_id, iteration=iteration, ciphertext=ciphertext)
        return bytes([VERSION_BYTE]) + m.SerializeToString()

    @classmethod
    def parse(cls, data: bytes) -> "SenderKeyMessage":
        _check_version(data, "SenderKeyMessage")
        if len(data) < 1 + SIGNATURE_LENGTH + 1:
            raise InvalidMessageError(f"SenderKeyMessage of {len(data)} bytes is too short")
        body, sig = bytes(data[:-SIGNATURE_LENGTH]), bytes(data[-SIGNATURE_LENGTH:])
        m = pb.SenderKeyMessage()
        _parse(m, body[1:], "SenderKeyMessage")
        for f in ("id", "iteration", "ciphertext"):
            if not m.HasField(f):
                raise InvalidMessageError(f"SenderKeyMessage: required field {f} missing")
        return cls(m.id, m.iteration, m.ciphertext, body, sig)

    def serialize(self) -> bytes:
        return self.body + self.signature


@dataclass(frozen=True, slots=True)
class SenderKeyDistributionMessage:
    key_id: int
    iteration: int
    chain_key: bytes
    signing_key: PublicKey

    def serialize(self) -> bytes:
        m = pb.SenderKeyDistributionMessage(
            id=self.key_id,
            iteration=self.iteration,
            chain_key=self.chain_key,
            signing_key=self.signing_key.serialize(),
        )
        return bytes([VERSION_BYTE]) + m.SerializeToString()

    @classmethod
    def parse(cls, data: bytes) -> "SenderKeyDistributionMessage":
        _check_version(data, "SenderKeyDistributionMessage")
        m = pb.SenderKeyDistributionMessage()
        _parse(m, data[1:], "SenderKeyDistributionMessage")
        for f in ("id", "iteration", "chain_key", "signing_key"):
            if not m.HasField(f):
                raise InvalidMessageError(f"SenderKeyDistributionMessage: required field {f} missing")
        if len(m.chain_key) != 32:
            raise InvalidMessageError("SenderKeyDistributionMessage: chain_key must be 32 bytes")
        return cls(m.id, m.iteration, m.chain_key,
                   _key(m.signing_key, "SenderKeyDistributionMessage.signing_key"))
