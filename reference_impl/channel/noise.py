"""``Noise_XX_25519_AESGCM_SHA256`` handshake and transport for the chat channel.

The real framework uses WhatsApp's own Noise variant inside binary XMPP; the profile uses
the standard XX pattern (through the maintained ``noiseprotocol`` library, which matches
the cacophony vectors) with two bindings the framework has too:

- the client's static key is the ``authkey`` it enlisted with, so the gatekeeper knows
  which enlisted client it talks to without any other credential;
- the client's third handshake message carries a :class:`ClientHello` — the provider's
  JWT for the user, the protocol version and the enlisted login — encrypted under the
  handshake keys;
- the client checks the gatekeeper's static key (message 2) against the published one
  before it reveals anything in message 3 (spec CHN-003).

Each WebSocket binary message carries exactly one Noise message (at most 65535 bytes).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from noise.connection import Keypair, NoiseConnection
from cryptography.exceptions import InvalidTag
from noise.exceptions import (
    NoiseHandshakeError,
    NoiseInvalidMessage,
    NoiseMaxNonceError,
    NoiseValidationError,
    NoiseValueError,
)

from reference_impl.wire.stanzas_pb2 import HandshakePayload

__all__ = [
    "PROTOCOL_NAME",
    "PROLOGUE",
    "MAX_FRAME",
    "ChannelError",
    "ClientHello",
    "NoiseTransport",
    "NoiseInitiator",
    "NoiseResponder",
]

PROTOCOL_NAME = b"Noise_XX_25519_AESGCM_SHA256"
#: Binds the handshake to this profile; a peer speaking anything else fails the first MAC.
PROLOGUE = b"interop-chat/1"
#: Noise's own limit on one message, ciphertext and tag included.
MAX_FRAME = 65535
_TAG = 16
#: The largest ClientHello we accept: a 4 KiB token plus the other fields.
MAX_HELLO = 8192
#: The interop protocol version this implementation speaks (spec CHN-004, ENL-010).
PROTOCOL_VERSION = "1.0.0"


#: Everything ``noiseprotocol`` (and the AEAD under it) raises on hostile input.
NoiseError = (NoiseHandshakeError, NoiseInvalidMessage, NoiseMaxNonceError, NoiseValueError,
              NoiseValidationError, InvalidTag, ValueError, TypeError, IndexError)


class ChannelError(Exception):
    """The peer broke the channel protocol: bad handshake, bad frame, oversized message."""


@dataclass(frozen=True, slots=True)
class ClientHello:
    """The initiator's final handshake payload, a serialized ``interop.stanzas.HandshakePayload``
    (spec CHN-004): the user's JWT, the protocol version and the enlisted ``login``."""

    jwt: str
    protocol_version: str = PROTOCOL_VERSION
    login: str = ""

    def encode(self) -> bytes:
        return HandshakePayload(jwt=self.jwt, protocol_version=self.protocol_version,
                                login=self.login).SerializeToString()

    @classmethod
    def decode(cls, data: bytes) -> "ClientHello":
        if len(data) > MAX_HELLO:
            raise ChannelError(f"handshake payload of {len(data)} bytes exceeds {MAX_HELLO}")
        msg = HandshakePayload()
        try:
            msg.ParseFromString(bytes(data))
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ChannelError("handshake payload is not a HandshakePayload protobuf") from exc
        if not msg.jwt:
            raise ChannelError("handshake payload lacks the jwt")
        if not msg.protocol_version:
            raise ChannelError("handshake payload lacks the protocol_version")
        return cls(msg.jwt, msg.protocol_version, msg.login)


class NoiseTransport:
    """Post-handshake encryption in both directions; nonces are the library's counters."""

    def __init__(self, conn: NoiseConnection, remote_static: bytes, handshake_hash: bytes) -> None:
        self._conn = conn
        self.remote_static = remote_static
        self.handshake_hash = handshake_hash

    def encrypt(self, plaintext: bytes) -> bytes:
        if len(plaintext) + _TAG > MAX_FRAME:
            raise ChannelError(f"plaintext of {len(plaintext)} bytes does not fit one Noise frame")
        return bytes(self._conn.encrypt(bytes(plaintext)))

    def decrypt(self, frame: bytes) -> bytes:
        if not isinstance(frame, (bytes, bytearray)) or not _TAG <= len(frame) <= MAX_FRAME:
            raise ChannelError("frame size outside Noise limits")
        try:
            return bytes(self._conn.decrypt(bytes(frame)))
        except NoiseError as exc:
            raise ChannelError("frame failed Noise authentication") from exc


def _connection(static_private: bytes, initiator: bool, prologue: bytes,
                ephemeral_private: bytes | None) -> NoiseConnection:
    conn = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_keypair_from_private_bytes(Keypair.STATIC, bytes(static_private))
    if ephemeral_private is not None:  # fixed ephemerals are for vectors only
        conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, bytes(ephemeral_private))
    conn.set_prologue(prologue)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # noiseprotocol warns about fixed ephemerals
        conn.start_handshake()
    return conn


def _finish(conn: NoiseConnection, hs: object) -> NoiseTransport:
    rs = getattr(hs, "rs", None)
    remote = bytes(rs.public_bytes) if rs is not None and hasattr(rs, "public_bytes") else b""
    return NoiseTransport(conn, remote, bytes(conn.get_handshake_hash()))


class NoiseInitiator:
    """Client side: ``start() -> msg1``; ``finish(msg2, hello) -> msg3``; then :attr:`transport`."""

    def __init__(self, static_private: bytes, *, prologue: bytes = PROLOGUE,
                 ephemeral_private: bytes | None = None) -> None:
        self._conn = _connection(static_private, True, prologue, ephemeral_private)
        self.transport: NoiseTransport | None = None
        self.server_payload = b""
        self.server_static = b""

    def start(self) -> bytes:
        return bytes(self._conn.write_message())

    def finish(self, msg2: bytes, hello: ClientHello | bytes, *,
               expected_server_static: bytes | None = None) -> bytes:
        """Read message 2 and write message 3. With ``expected_server_static`` (32 bytes) a
        gatekeeper presenting another static key is refused before message 3 is written."""
        hs = self._conn.noise_protocol.handshake_state
        try:
            self.server_payload = bytes(self._conn.read_message(bytes(msg2)))
            rs = getattr(hs, "rs", None)
            self.server_static = bytes(rs.public_bytes) if hasattr(rs, "public_bytes") else b""
            if expected_server_static is not None and self.server_static != expected_server_static:
                raise ChannelError("gatekeeper static key differs from the published one")
            payload = hello.encode() if isinstance(hello, ClientHello) else bytes(hello)
            msg3 = bytes(self._conn.write_message(payload))
        except NoiseError as exc:
            raise ChannelError(f"Noise handshake failed: {exc}") from exc
        self.transport = _finish(self._conn, hs)
        return msg3


class NoiseResponder:
    """Server side: ``respond(msg1) -> msg2``; ``finish(msg3) -> payload``; then :attr:`transport`.

    :attr:`transport.remote_static` is the client's static public key (32 bytes), which the
    gatekeeper compares with the enlisted ``authkey``.
    """

    def __init__(self, static_private: bytes, *, prologue: bytes = PROLOGUE,
                 ephemeral_private: bytes | None = None) -> None:
        self._conn = _connection(static_private, False, prologue, ephemeral_private)
        self.transport: NoiseTransport | None = None

    def respond(self, msg1: bytes, payload: bytes = b"") -> bytes:
        if not isinstance(msg1, (bytes, bytearray)) or not 32 <= len(msg1) <= MAX_FRAME:
            raise ChannelError("first handshake message has the wrong size")
        try:
            self._conn.read_message(bytes(msg1))
            return bytes(self._conn.write_message(payload))
        except NoiseError as exc:
            raise ChannelError(f"Noise handshake failed: {exc}") from exc

    def finish(self, msg3: bytes) -> bytes:
        if not isinstance(msg3, (bytes, bytearray)) or not 64 <= len(msg3) <= MAX_FRAME:
            raise ChannelError("final handshake message has the wrong size")
        hs = self._conn.noise_protocol.handshake_state
        try:
            payload = bytes(self._conn.read_message(bytes(msg3)))
        except NoiseError as exc:
            raise ChannelError(f"Noise handshake failed: {exc}") from exc
        self.transport = _finish(self._conn, hs)
        return payload
