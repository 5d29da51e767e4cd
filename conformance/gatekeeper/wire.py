"""G's side of the chat-channel bindings (spec §5.1, §5.3): WebSocket message bytes ↔ stanzas.

A binding is sans-IO: :class:`~.chat.ChatSession` feeds it each binary WebSocket message
(``receive``), writes out what it queued (``data_to_send``) and hands it stanzas to send
(``send``). It yields :class:`Hello` once the handshake is complete and :class:`Incoming` for
every stanza after it; everything above (authentication, routing, checks) works on the
protobuf ``Stanza`` semantics and never sees bytes. Two bindings:

- ``open`` — one Noise XX message per WebSocket message, protobuf ``Stanza`` plaintexts
  (:mod:`reference_impl.channel`);
- ``wa`` — WhatsApp's connection header, 3-byte frames, WA Noise with ``ClientPayload`` and
  binary-XML nodes (:mod:`reference_impl.wa`, docs/wa-binding.md).

Failures are typed: :class:`HandshakeFailed` before the handshake completes, :class:`FrameError`
(from :mod:`.stanzas`) after it, each naming the requirement it breaks.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from typing import Protocol

from reference_impl.channel import ChannelError, ClientHello, NoiseResponder, NoiseTransport
from reference_impl.signal.keys import KeyPair
from reference_impl.wa import binary_xml, frame as waframe, noise as wanoise
from reference_impl.wa.stanza_map import REQ_NODE, StanzaMapError, from_node, to_node
from reference_impl.wire import stanzas_pb2 as pb

from .stanzas import FrameError, parse_stanza

__all__ = ["WIRES", "HandshakeFailed", "Hello", "Incoming", "OpenServerWire", "ServerWire",
           "WAServerWire", "make_server_wire"]

WIRES = ("open", "wa")
#: ``-> e`` with an empty payload: one 32-byte X25519 key and nothing else.
_MSG1_SIZE = 32
#: wa: G deflates the stanzas it sends above this size (so clients must inflate, W3).
COMPRESS_OVER = 1024
#: Requirement ids of the wa-only rules (spec §5.3).
#: (CHN-033 node and CHN-034 JID form come from :mod:`reference_impl.wa.stanza_map`.)
REQ_HEADER, REQ_FRAME, REQ_FLAG, REQ_PAYLOAD = "CHN-030", "CHN-031", "CHN-032", "CHN-035"


class HandshakeFailed(Exception):
    """The handshake broke (G logs ``handshake_failed`` and closes without an answer)."""

    def __init__(self, detail: str, requirement: str = "CHN-002") -> None:
        super().__init__(detail)
        self.detail, self.requirement = detail, requirement


@dataclass(frozen=True)
class Hello:
    """The handshake completed: the client's static key and its payload (or why it is refused)."""

    remote_static: bytes
    hello: ClientHello | None
    #: ``(code, detail, requirement)`` when the payload itself is unacceptable.
    problem: tuple[int, str, str] | None = None
    #: The client's handshake ephemeral public key (CHN-002: fresh on every connection).
    ephemeral: bytes = b""


@dataclass(frozen=True)
class Incoming:
    stanza: pb.Stanza
    size: int


Event = Hello | Incoming


class ServerWire(Protocol):
    name: str
    #: How far the handshake got, for the timeout evidence.
    stage: str
    #: True once stanzas can be sent.
    ready: bool

    def receive(self, data: bytes) -> list[Event]: ...
    def data_to_send(self) -> list[bytes]: ...
    def send(self, stanza: pb.Stanza) -> int: ...


class OpenServerWire:
    """The open binding: WebSocket + standard Noise XX + protobuf ``Stanza``."""

    name = "open"

    def __init__(self, static_private: bytes) -> None:
        self._responder = NoiseResponder(static_private)
        self._transport: NoiseTransport | None = None
        self._out: list[bytes] = []
        self._step = 0
        self._ephemeral = b""
        self.stage = "WebSocket accepted, waiting for handshake message 1"

    @property
    def ready(self) -> bool:
        return self._transport is not None

    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def receive(self, data: bytes) -> list[Event]:
        if self._step == 0:
            if len(data) != _MSG1_SIZE:
                # CHN-004: message 1 is the bare ephemeral key; its payload must be empty.
                raise HandshakeFailed(f"first handshake message is {len(data)} bytes, not {_MSG1_SIZE} "
                                      "(an ephemeral key and an empty payload)")
            try:
                self._out.append(self._responder.respond(data))
            except ChannelError as exc:
                raise HandshakeFailed(str(exc)) from None
            self._ephemeral = bytes(data)
            self._step = 1
            self.stage = "message 2 sent, waiting for handshake message 3"
            return []
        if self._step == 1:
            self.stage = "message 3 received, authenticating"
            try:
                payload = self._responder.finish(data)
            except ChannelError as exc:
                raise HandshakeFailed(str(exc)) from None
            self._step = 2
            self._transport = self._responder.transport
            assert self._transport is not None
            try:
                hello = ClientHello.decode(payload)
            except ChannelError as exc:
                return [Hello(self._transport.remote_static, None,
                              (pb.ERROR_CODE_MALFORMED, str(exc), "CHN-004"), self._ephemeral)]
            return [Hello(self._transport.remote_static, hello, ephemeral=self._ephemeral)]
        assert self._transport is not None
        try:
            plaintext = self._transport.decrypt(data)
        except ChannelError as exc:
            raise FrameError(pb.ERROR_CODE_MALFORMED, str(exc), "CHN-005") from None
        try:
            return [Incoming(parse_stanza(plaintext), len(plaintext))]
        except FrameError as exc:
            exc.unparseable_size = len(plaintext)
            raise

    def send(self, stanza: pb.Stanza) -> int:
        assert self._transport is not None
        data = stanza.SerializeToString()
        self._out.append(self._transport.encrypt(data))
        return len(data)


def _frames_tile(data: bytes, start: int) -> str | None:
    """wa: a WebSocket message carries whole frames; why not, or None."""
    i = start
    while i < len(data):
        if len(data) - i < 3:
            return f"{len(data) - i} stray bytes after the last frame (a length needs 3)"
        n = int.from_bytes(data[i:i + 3], "big")
        if i + 3 + n > len(data):
            return (f"frame at offset {i} declares {n} bytes but the WebSocket message has "
                    f"{len(data) - i - 3} left")
        i += 3 + n
    return None


def _version(payload: wanoise.ClientPayload) -> str:
    v = payload.userAgent.appVersion
    if not payload.HasField("userAgent") or not payload.userAgent.HasField("appVersion"):
        return ""
    return f"{v.primary}.{v.secondary}.{v.tertiary}"


class WAServerWire:
    """The wa binding: WA frames in WebSocket binary messages, WA Noise, binary-XML stanzas."""

    name = "wa"

    def __init__(self, static: KeyPair, cert_chain: bytes, *, max_frame: int) -> None:
        self._server = wanoise.WAServer(static=static, cert_chain=cert_chain, max_frame=max_frame)
        self._first = True
        self._ready = False
        self.stage = "WebSocket accepted, waiting for the connection header and clientHello"

    @property
    def ready(self) -> bool:
        return self._ready

    def data_to_send(self) -> list[bytes]:
        out = self._server.data_to_send()
        return [out] if out else []

    def receive(self, data: bytes) -> list[Event]:
        first, self._first = self._first, False
        if first and data[:4] != waframe.connection_header():
            raise HandshakeFailed(f"connection header {data[:4].hex() or 'missing'} is not "
                                  f"{waframe.connection_header().hex()} ('W' 'A' 6 <dict version 2>)",
                                  REQ_HEADER)
        problem = _frames_tile(data, 4 if first else 0)
        if problem:
            if self._ready:
                raise FrameError(pb.ERROR_CODE_MALFORMED, problem, REQ_FRAME)
            raise HandshakeFailed(problem, REQ_FRAME)
        try:
            events = self._server.receive_data(data)
        except waframe.BadHeader as exc:
            raise HandshakeFailed(str(exc), REQ_HEADER) from None
        except waframe.FrameTooLarge as exc:
            if self._ready:
                raise FrameError(pb.ERROR_CODE_TOO_LARGE, str(exc), REQ_FRAME, close_code=1009) from None
            raise HandshakeFailed(str(exc), REQ_FRAME) from None
        except binary_xml.WAError as exc:
            if self._ready:
                raise FrameError(pb.ERROR_CODE_MALFORMED, f"{type(exc).__name__}: {exc}", "CHN-005") from None
            raise HandshakeFailed(f"{type(exc).__name__}: {exc}") from None
        if not events and not self._ready:
            self.stage = "serverHello sent, waiting for clientFinish"
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, wanoise.ClientAuthenticated):
                self._ready = True
                self.stage = "clientFinish received, authenticating"
                out.append(dataclasses.replace(self._hello(ev),
                                               ephemeral=self._server.remote_ephemeral or b""))
            elif isinstance(ev, wanoise.TransportFrame):
                out.append(self._stanza(ev.data))
        return out

    @staticmethod
    def _hello(ev: wanoise.ClientAuthenticated) -> Hello:
        p = ev.payload
        if p.product != wanoise.ClientPayload.INTEROP:
            return Hello(ev.client_static, None, (pb.ERROR_CODE_MALFORMED,
                         f"ClientPayload.product is {p.product}, not INTEROP (2)", REQ_PAYLOAD))
        if not p.HasField("interopData") or not p.interopData.token:
            return Hello(ev.client_static, None, (pb.ERROR_CODE_MALFORMED,
                         "ClientPayload without interopData.token (the user's JWT)", REQ_PAYLOAD))
        try:
            jwt = p.interopData.token.decode("ascii")
        except UnicodeDecodeError:
            return Hello(ev.client_static, None, (pb.ERROR_CODE_MALFORMED,
                         "interopData.token is not an ASCII JWT", REQ_PAYLOAD))
        login = (f"{p.interopData.accountId}-{p.username:014d}@interop"
                 if p.HasField("username") and p.interopData.HasField("accountId") else "")
        return Hello(ev.client_static, ClientHello(jwt, _version(p), login))

    @staticmethod
    def _stanza(payload: bytes) -> Incoming:
        try:
            node_bytes = waframe.unpack_payload(payload)
        except waframe.BadPayload as exc:
            raise FrameError(pb.ERROR_CODE_MALFORMED, f"payload flag byte {payload[:1].hex()}: {exc}",
                             REQ_FLAG) from None
        size = len(node_bytes)
        try:
            st = from_node(binary_xml.decode(node_bytes))
        except StanzaMapError as exc:
            raise FrameError(pb.ERROR_CODE_MALFORMED, str(exc), exc.requirement,
                             unparseable_size=size) from None
        except binary_xml.WAError as exc:
            raise FrameError(pb.ERROR_CODE_MALFORMED, f"binary XML: {type(exc).__name__}: {exc}"[:200],
                             REQ_NODE, unparseable_size=size) from None
        if st.WhichOneof("body") is None:
            raise FrameError(pb.ERROR_CODE_MALFORMED, "node is no stanza of the profile", "CHN-005",
                             unparseable_size=size)
        return Incoming(st, len(node_bytes))

    def send(self, stanza: pb.Stanza) -> int:
        data = binary_xml.encode(to_node(stanza))
        self._server.send(waframe.pack_payload(data, compress=len(data) > COMPRESS_OVER))
        return len(data)


def make_server_wire(wire: str, *, static_private: bytes, cert_chain: bytes, max_frame: int) -> ServerWire:
    if wire == "wa":
        return WAServerWire(KeyPair.from_private(static_private), cert_chain, max_frame=max_frame)
    if wire == "open":
        return OpenServerWire(static_private)
    raise ValueError(f"unknown wire binding {wire!r}; one of {WIRES}")
