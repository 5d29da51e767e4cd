"""The WA Noise handshake (XX, "Noise_XX_25519_AESGCM_SHA256") and its transport, sans-IO.

No sockets, no clock, injectable randomness (``rng``). Two connection objects in the style of
h11 — :class:`WAClient` (initiator) and :class:`WAServer` (responder): feed received bytes with
``receive_data(data) -> list[Event]``, collect what to send with ``data_to_send()``, and after the
handshake ``send(payload)`` a transport frame. They own the framing (:mod:`.frame`), so the bytes
in and out are exactly the bytes on the wire (inside WebSocket binary messages or a TCP stream).

Why hand-written on ``cryptography`` and not ``noiseprotocol``: WhatsApp's Noise is standard XX
except in two places that library cannot express (observed in Baileys 6.17.16
``lib/Utils/noise-handler.js`` + ``lib/Socket/socket.js`` and whatsmeow ``handshake.go``):

1. message 1 carries no payload and **its empty payload is not hashed** (standard Noise calls
   ``EncryptAndHash(payload)`` on every message, i.e. ``h = SHA256(h)`` here) — so a standard XX
   peer disagrees on ``h`` from message 2 on (asserted in ``tests/unit/test_wa_noise.py``);
2. the handshake tokens are not concatenated but carried as fields of a ``HandshakeMessage``
   protobuf (``docs/spec/proto/wa_handshake.proto``), and the nonce is a 32-bit big-endian
   counter in bytes 8..12 (standard Noise: 64-bit at bytes 4..12; equal below 2^32).

Everything else is Noise: initial ``h = ck =`` the 32-byte protocol name
``Noise_XX_25519_AESGCM_SHA256\\0\\0\\0\\0`` (Baileys ``Defaults.NOISE_MODE``), ``MixHash`` of the
connection header as prologue, HKDF-SHA256 ``MixKey``, AES-256-GCM with ``h`` as associated data,
``Split`` into two transport keys used with empty associated data. :class:`SymmetricState` holds
those primitives and is checked against ``noiseprotocol`` on a standard XX run in the tests.

The server proves its static key with a certificate chain (:mod:`.certs`); the client sends a
``ClientPayload`` (``product = INTEROP``, ``interopData`` field 38, :func:`interop_payload`).

Channel bindings (next step) use it like this::

    server = WAServer(static=gk_static, cert_chain=make_cert_chain(...), rng=rng)
    for event in server.receive_data(await sock.recv()):
        if isinstance(event, ClientAuthenticated): check event.client_static / event.payload
        elif isinstance(event, TransportFrame): node = decode(unpack_payload(event.data))
    await sock.send(server.data_to_send())
    server.send(pack_payload(encode(node)))

``WAClient(static=authkey, payload=interop_payload(...), root_public=...)`` mirrors it:
``start()`` queues header + message 1; ``HandshakeComplete`` comes with message 3 queued.
Every malformed input raises a subclass of :class:`WANoiseError` (itself a ``WAError``); after an
error the connection is dead (:class:`ConnectionClosed` on further use).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from google.protobuf.message import DecodeError

from reference_impl.signal.errors import InvalidKeyAgreementError
from reference_impl.signal.keys import KeyPair, PublicKey
from reference_impl.signal.rng import Rng, system_rng
from reference_impl.wa.binary_xml import WAError
from reference_impl.wa.certs import CertificateError, verify_cert_chain
from reference_impl.wa.frame import MAX_FRAME, FrameDecoder, WAFrameError, connection_header, encode_frame
from reference_impl.wa.wa_handshake_pb2 import ClientPayload, HandshakeMessage

__all__ = [
    "NOISE_MODE", "MAX_NONCE", "KEY_LEN", "TAG_LEN",
    "WANoiseError", "MalformedHandshake", "DecryptFailed", "BadPeerKey", "NonceExhausted",
    "ConnectionClosed", "UnexpectedMessage", "CertificateError",
    "CipherState", "SymmetricState", "Transport",
    "ClientAuthenticated", "HandshakeComplete", "TransportFrame",
    "WAClient", "WAServer", "interop_payload", "parse_client_payload",
]

#: The protocol name, exactly 32 bytes, so it is used as the initial hash without hashing.
NOISE_MODE = b"Noise_XX_25519_AESGCM_SHA256\x00\x00\x00\x00"
#: The nonce is a 32-bit counter (Baileys ``generateIV``: ``setUint32(8, counter)``).
MAX_NONCE = (1 << 32) - 1
KEY_LEN = 32
TAG_LEN = 16
#: Upper bound on a decrypted ClientPayload (a 4 KiB JWT plus the rest, with room to spare).
MAX_CLIENT_PAYLOAD = 16384


class WANoiseError(WAError):
    """Anything wrong in the WA Noise handshake or transport."""


class MalformedHandshake(WANoiseError):
    """A handshake frame that does not parse, has the wrong message kind or wrong field sizes."""


class UnexpectedMessage(MalformedHandshake):
    """A handshake message out of order (e.g. a clientFinish where a clientHello belongs)."""


class DecryptFailed(WANoiseError):
    """An AES-GCM tag did not verify (wrong key, wrong transcript, tampered bytes)."""


class BadPeerKey(WANoiseError):
    """A peer public key that gives the all-zero X25519 secret (low order)."""


class NonceExhausted(WANoiseError):
    """The 32-bit counter nonce would wrap; the connection must end."""


class ConnectionClosed(WANoiseError):
    """Use of a connection after it failed or before it may send."""


# ------------------------------------------------------------------------------ primitives

def _nonce(n: int) -> bytes:
    return bytes(8) + n.to_bytes(4, "big")


def _hkdf2(ck: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """Noise's HKDF(ck, ikm, 2) is RFC 5869 HKDF-SHA256 with salt = ck and empty info."""
    out = HKDF(hashes.SHA256(), 2 * KEY_LEN, salt=ck, info=b"").derive(ikm)
    return out[:KEY_LEN], out[KEY_LEN:]


class CipherState:
    """One AES-256-GCM key with its counter nonce (Noise §5.1)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_LEN:
            raise ValueError("cipher key must be 32 bytes")
        self._aead = AESGCM(key)
        self.n = 0

    def _next(self) -> bytes:
        if self.n > MAX_NONCE:
            raise NonceExhausted("32-bit nonce counter exhausted")
        nonce = _nonce(self.n)
        self.n += 1
        return nonce

    def encrypt(self, ad: bytes, plaintext: bytes) -> bytes:
        return self._aead.encrypt(self._next(), plaintext, ad)

    def decrypt(self, ad: bytes, ciphertext: bytes) -> bytes:
        if len(ciphertext) < TAG_LEN:
            raise DecryptFailed(f"ciphertext of {len(ciphertext)} bytes is shorter than the tag")
        nonce = self._next()  # a failed decryption still uses the nonce, as in Baileys
        try:
            return self._aead.decrypt(nonce, ciphertext, ad)
        except InvalidTag:
            raise DecryptFailed("AES-GCM tag mismatch") from None


class SymmetricState:
    """Noise's SymmetricState (§5.2): ``h``, ``ck`` and the handshake cipher."""

    def __init__(self, protocol_name: bytes = NOISE_MODE) -> None:
        h = protocol_name if len(protocol_name) == 32 else (
            protocol_name.ljust(32, b"\0") if len(protocol_name) < 32
            else hashlib.sha256(protocol_name).digest())
        self.h = h
        self.ck = h
        self._cipher: CipherState | None = None

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, k = _hkdf2(self.ck, ikm)
        self._cipher = CipherState(k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ct = plaintext if self._cipher is None else self._cipher.encrypt(self.h, plaintext)
        self.mix_hash(ct)
        return ct

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        pt = ciphertext if self._cipher is None else self._cipher.decrypt(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return pt

    def split(self) -> tuple[CipherState, CipherState]:
        """(initiator-to-responder, responder-to-initiator) transport ciphers."""
        k1, k2 = _hkdf2(self.ck, b"")
        return CipherState(k1), CipherState(k2)


def _dh(pair: KeyPair, public: bytes) -> bytes:
    try:
        return pair.private.agree(PublicKey(public))
    except InvalidKeyAgreementError as exc:
        raise BadPeerKey(str(exc)) from None


@dataclass
class Transport:
    """The two transport ciphers after ``Split``; associated data is empty (Baileys ``finishInit``)."""

    send_cipher: CipherState
    recv_cipher: CipherState

    def encrypt(self, plaintext: bytes) -> bytes:
        return self.send_cipher.encrypt(b"", plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        return self.recv_cipher.decrypt(b"", ciphertext)


# ------------------------------------------------------------------------------ payload

def interop_payload(*, token: bytes, account_id: int | None = None,
                    enable_read_receipts: bool | None = None, username: int | None = None,
                    device: int | None = None, app_version: tuple[int, ...] = (),
                    product: int = ClientPayload.INTEROP) -> ClientPayload:
    """A ``ClientPayload`` for an interop client: ``product = INTEROP`` and ``interopData``.

    Which other fields the gatekeeper requires is not public; ``app_version`` is where this
    binding puts the interop protocol version (an assumption, see docs/wa-binding.md W15).
    """
    p = ClientPayload(product=product)
    p.interopData.token = token
    if account_id is not None:
        p.interopData.accountId = account_id
    if enable_read_receipts is not None:
        p.interopData.enableReadReceipts = enable_read_receipts
    if username is not None:
        p.username = username
    if device is not None:
        p.device = device
    if app_version:
        names = ("primary", "secondary", "tertiary", "quaternary", "quinary")
        if len(app_version) > len(names):
            raise ValueError("app_version has at most 5 parts")
        for name, value in zip(names, app_version):
            setattr(p.userAgent.appVersion, name, value)
    return p


def parse_client_payload(data: bytes) -> ClientPayload:
    """Parse a decrypted ClientPayload; bytes that are no protobuf raise :class:`MalformedHandshake`.

    Policy (is ``product`` INTEROP, is there a token) belongs to the caller: a conformance check
    reports it with evidence instead of dropping the connection here.
    """
    if len(data) > MAX_CLIENT_PAYLOAD:
        raise MalformedHandshake(f"ClientPayload of {len(data)} bytes over {MAX_CLIENT_PAYLOAD}")
    p = ClientPayload()
    try:
        p.ParseFromString(data)
    except DecodeError as exc:
        raise MalformedHandshake(f"ClientPayload does not parse: {exc}") from None
    return p


def _parse_handshake(frame: bytes, want: str) -> HandshakeMessage:
    msg = HandshakeMessage()
    try:
        msg.ParseFromString(frame)
    except DecodeError as exc:
        raise MalformedHandshake(f"handshake frame is not a HandshakeMessage: {exc}") from None
    present = [f.name for f, _ in msg.ListFields()]
    if present != [want]:
        if want in present:
            raise MalformedHandshake(f"{want} frame also carries {sorted(set(present) - {want})}")
        raise UnexpectedMessage(f"expected {want}, got {present or 'an empty message'}")
    return msg


def _field(value: bytes, name: str, size: int | None = None, *, minimum: int | None = None) -> bytes:
    if size is not None and len(value) != size:
        raise MalformedHandshake(f"{name} is {len(value)} bytes, expected {size}")
    if minimum is not None and len(value) < minimum:
        raise MalformedHandshake(f"{name} is {len(value)} bytes, at least {minimum} expected")
    return value


# ------------------------------------------------------------------------------ events

@dataclass(frozen=True)
class ClientAuthenticated:
    """Server side, message 3 read: who the client is (its ``authkey``) and what it sent."""

    client_static: bytes
    payload: ClientPayload
    payload_bytes: bytes


@dataclass(frozen=True)
class HandshakeComplete:
    """Client side, message 2 verified and message 3 queued: the server's proven static key."""

    server_static: bytes


@dataclass(frozen=True)
class TransportFrame:
    """One decrypted transport frame: a flag byte and a binary-XML node (see :mod:`.frame`)."""

    data: bytes


Event = ClientAuthenticated | HandshakeComplete | TransportFrame


class _State(Enum):
    START = "start"
    WAIT_HELLO = "wait clientHello"
    WAIT_SERVER_HELLO = "wait serverHello"
    WAIT_FINISH = "wait clientFinish"
    TRANSPORT = "transport"
    CLOSED = "closed"


class _Connection:
    def __init__(self, *, header: bytes, rng: Rng, ephemeral: KeyPair | None,
                 max_frame: int, expect_header: bool) -> None:
        self.header = header
        self._rng = rng
        self._e = ephemeral
        self._ss = SymmetricState()
        self._out = bytearray()
        self._decoder = FrameDecoder(expect_header=expect_header, max_frame=max_frame,
                                     dict_version=header[3] if expect_header else None)
        self.max_frame = max_frame
        self.transport: Transport | None = None
        self.handshake_hash: bytes | None = None
        self._state = _State.START

    @property
    def state(self) -> str:
        return self._state.value

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def _queue(self, frame: bytes) -> None:
        self._out += encode_frame(frame, max_frame=self.max_frame)

    def send(self, payload: bytes) -> None:
        """Encrypt one transport frame (a flag byte + node, :func:`.frame.pack_payload`) and queue it."""
        if self._state is not _State.TRANSPORT or self.transport is None:
            raise ConnectionClosed(f"cannot send in state {self._state.value}")
        self._queue(self.transport.encrypt(payload))

    def receive_data(self, data: bytes) -> list[Event]:
        if self._state is _State.CLOSED:
            raise ConnectionClosed("connection already failed")
        try:
            events: list[Event] = []
            for frame in self._decoder.feed(data):
                if self._state is _State.CLOSED:
                    break
                events.extend(self._on_frame(frame))
            return events
        except (WANoiseError, WAFrameError, CertificateError):
            self._state = _State.CLOSED
            raise

    def _on_frame(self, frame: bytes) -> list[Event]:
        if self._state is _State.TRANSPORT:
            assert self.transport is not None
            return [TransportFrame(self.transport.decrypt(frame))]
        return self._on_handshake(frame)

    def _on_handshake(self, frame: bytes) -> list[Event]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self, initiator: bool) -> None:
        c1, c2 = self._ss.split()
        self.handshake_hash = self._ss.h
        self.transport = Transport(c1, c2) if initiator else Transport(c2, c1)
        self._state = _State.TRANSPORT


class WAClient(_Connection):
    """The initiator: a provider client connecting to the gatekeeper's chat server.

    ``static`` is the enlisted ``authkey``; ``root_public`` (32 bytes) the key the server's
    certificate chain must chain up to; ``now`` (seconds) enables the validity-time check.
    """

    def __init__(self, *, static: KeyPair, payload: ClientPayload | bytes, root_public: bytes,
                 header: bytes | None = None, rng: Rng = system_rng,
                 ephemeral: KeyPair | None = None, now: int | None = None,
                 max_frame: int = MAX_FRAME,
                 cert_check: Callable[[bytes, bytes], object] | None = None) -> None:
        super().__init__(header=header or connection_header(), rng=rng, ephemeral=ephemeral,
                         max_frame=max_frame, expect_header=False)
        self._s = static
        #: ``(chain, server_static)``; default :func:`.certs.verify_cert_chain` under ``root_public``.
        self._cert_check = cert_check
        self._payload = payload if isinstance(payload, bytes) else payload.SerializeToString()
        self._root = root_public
        self._now = now
        self.server_static: bytes | None = None
        #: The decrypted ``CertChain`` of message 2 (for evidence and vectors).
        self.cert_chain: bytes | None = None

    def start(self) -> None:
        """Queue the connection header and message 1 (``clientHello``)."""
        if self._state is not _State.START:
            raise ConnectionClosed("start() called twice")
        if self._e is None:
            self._e = KeyPair.generate(self._rng)
        self._ss.mix_hash(self.header)
        e_pub = self._e.public.u
        self._ss.mix_hash(e_pub)  # no MixHash of the empty payload: WA deviation 1
        msg = HandshakeMessage()
        msg.clientHello.ephemeral = e_pub
        self._out += self.header
        self._queue(msg.SerializeToString())
        self._state = _State.WAIT_SERVER_HELLO

    def _on_handshake(self, frame: bytes) -> list[Event]:
        if self._state is not _State.WAIT_SERVER_HELLO:
            raise ConnectionClosed("receive_data() before start()")
        assert self._e is not None
        hello = _parse_handshake(frame, "serverHello").serverHello
        re = _field(hello.ephemeral, "serverHello.ephemeral", 32)
        enc_s = _field(hello.static, "serverHello.static", 32 + TAG_LEN)
        enc_cert = _field(hello.payload, "serverHello.payload", minimum=TAG_LEN)
        ss = self._ss
        ss.mix_hash(re)
        ss.mix_key(_dh(self._e, re))                       # ee
        rs = ss.decrypt_and_hash(enc_s)
        ss.mix_key(_dh(self._e, rs))                       # es
        cert = ss.decrypt_and_hash(enc_cert)
        self.cert_chain = cert
        if self._cert_check is not None:
            self._cert_check(cert, rs)
        else:
            verify_cert_chain(cert, server_static=rs, root_public=self._root, now=self._now)
        self.server_static = rs
        finish = HandshakeMessage()
        finish.clientFinish.static = ss.encrypt_and_hash(self._s.public.u)
        ss.mix_key(_dh(self._s, re))                       # se
        finish.clientFinish.payload = ss.encrypt_and_hash(self._payload)
        self._queue(finish.SerializeToString())
        self._finish(initiator=True)
        return [HandshakeComplete(rs)]


class WAServer(_Connection):
    """The responder: the gatekeeper's chat server (the kit's simulator side).

    ``cert_chain`` is a serialized ``CertChain`` whose leaf key is ``static`` (see
    :func:`.certs.make_cert_chain`). The connection header is read from the wire and checked
    (``'W' 'A' 6 <dict_version>``) before it becomes the prologue.
    """

    def __init__(self, *, static: KeyPair, cert_chain: bytes, rng: Rng = system_rng,
                 ephemeral: KeyPair | None = None, dict_version: int = 2,
                 max_frame: int = MAX_FRAME) -> None:
        super().__init__(header=connection_header(dict_version), rng=rng, ephemeral=ephemeral,
                         max_frame=max_frame, expect_header=True)
        self._s = static
        self._cert = cert_chain
        self._state = _State.WAIT_HELLO
        self._re: bytes | None = None

    @property
    def remote_ephemeral(self) -> bytes | None:
        """The client's handshake ephemeral (clientHello), once read."""
        return self._re

    def _on_handshake(self, frame: bytes) -> list[Event]:
        ss = self._ss
        if self._state is _State.WAIT_HELLO:
            assert self._decoder.header is not None
            hello = _parse_handshake(frame, "clientHello").clientHello
            if hello.HasField("static") or hello.HasField("payload"):
                raise MalformedHandshake("clientHello with static/payload is IK, not XX")
            re = _field(hello.ephemeral, "clientHello.ephemeral", 32)
            if self._e is None:
                self._e = KeyPair.generate(self._rng)
            ss.mix_hash(self._decoder.header)
            ss.mix_hash(re)
            e_pub = self._e.public.u
            ss.mix_hash(e_pub)
            ss.mix_key(_dh(self._e, re))                   # ee
            reply = HandshakeMessage()
            reply.serverHello.ephemeral = e_pub
            reply.serverHello.static = ss.encrypt_and_hash(self._s.public.u)
            ss.mix_key(_dh(self._s, re))                   # es
            reply.serverHello.payload = ss.encrypt_and_hash(self._cert)
            self._re = re
            self._queue(reply.SerializeToString())
            self._state = _State.WAIT_FINISH
            return []
        assert self._state is _State.WAIT_FINISH and self._e is not None
        fin = _parse_handshake(frame, "clientFinish").clientFinish
        enc_s = _field(fin.static, "clientFinish.static", 32 + TAG_LEN)
        enc_p = _field(fin.payload, "clientFinish.payload", minimum=TAG_LEN)
        rs = ss.decrypt_and_hash(enc_s)
        ss.mix_key(_dh(self._e, rs))                       # se
        payload_bytes = ss.decrypt_and_hash(enc_p)
        payload = parse_client_payload(payload_bytes)
        self._finish(initiator=False)
        return [ClientAuthenticated(rs, payload, payload_bytes)]
