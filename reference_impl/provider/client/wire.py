"""The client's side of the chat-channel bindings (spec §5.1, §5.3): stanzas ↔ WebSocket messages.

Sans-IO, mirroring the gatekeeper's: :class:`~.channel.Channel` owns the WebSocket and asks the
binding what to send (``start``, ``handshake``, ``encode``) and what it received (``receive``).
Above it the client works on protobuf ``Stanza`` semantics only. ``open``: Noise XX with a
``ClientHello`` and one protobuf stanza per WebSocket message; ``wa``: WhatsApp's header, 3-byte
frames, WA Noise with a ``ClientPayload`` (the JWT in ``interopData.token``) and binary-XML
nodes (docs/wa-binding.md). The ``wa_*`` faults live here: each is one realistic encoding bug.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from google.protobuf.message import DecodeError

from reference_impl.channel import ChannelError, ClientHello, NoiseInitiator, NoiseTransport
from reference_impl.signal.keys import KeyPair
from reference_impl.wa import binary_xml, frame as waframe, noise as wanoise
from reference_impl.wa.certs import CertificateError, verify_cert_chain
from reference_impl.wa.wa_handshake_pb2 import CertChain
from reference_impl.wa.stanza_map import StanzaMapError, from_node, to_node
from reference_impl.wire import stanzas_pb2 as pb

from ..faults import Faults

__all__ = ["WIRES", "ClientWire", "OpenClientWire", "WAClientWire", "make_client_wire"]

WIRES = ("open", "wa")
#: Where fault ``fragment_large_stanzas`` cuts a stanza.
FRAGMENT = 16384
#: wa: stanzas above this size are sent deflated (flag 2), as G does.
COMPRESS_OVER = 1024
#: Fault ``wa_token_outside_dictionary``: a "newer" token table with single-byte tokens G's
#: dictionary version 2 does not have (the client writes ``text`` as token 240).
_NEWER_DICTIONARY = replace(binary_xml.DEFAULT_DICTIONARY,
                            single=binary_xml.DEFAULT_DICTIONARY.single + ("", "", "", "", "text"),
                            name="newer")


class ClientWire(Protocol):
    name: str

    def start(self) -> list[bytes]: ...
    def handshake(self, data: bytes) -> list[bytes] | None: ...
    def receive(self, data: bytes) -> list[pb.Stanza]: ...
    def encode(self, stanza: pb.Stanza) -> list[bytes]: ...


class OpenClientWire:
    name = "open"

    def __init__(self, authkey: bytes, hello: Callable[[], ClientHello],
                 expected_server_static: bytes | None, faults: Faults,
                 *, ephemeral_private: bytes | None = None) -> None:
        self._init = NoiseInitiator(authkey, ephemeral_private=ephemeral_private)
        self._hello = hello
        self._expected = expected_server_static
        self._faults = faults
        self._transport: NoiseTransport | None = None

    def start(self) -> list[bytes]:
        return [self._init.start()]

    def handshake(self, data: bytes) -> list[bytes] | None:
        msg3 = self._init.finish(data, self._hello(), expected_server_static=self._expected)
        self._transport = self._init.transport
        return [msg3]

    def receive(self, data: bytes) -> list[pb.Stanza]:
        assert self._transport is not None
        try:
            return [pb.Stanza.FromString(self._transport.decrypt(data))]
        except DecodeError as exc:
            raise ChannelError(f"undecodable stanza: {exc}") from None

    def encode(self, stanza: pb.Stanza) -> list[bytes]:
        assert self._transport is not None
        plain = stanza.SerializeToString()
        size = FRAGMENT if self._faults.on("fragment_large_stanzas") else len(plain) or 1
        return [self._transport.encrypt(plain[i:i + size]) for i in range(0, max(len(plain), 1), size)]


#: Fault ``wa_jid_without_integrator``: our encoder refuses a ``@interop`` JID_PAIR, so the
#: buggy client writes the server as this look-alike raw string and patches the one byte.
_LOOKALIKE = "interoP"


def _strip_integrator(node: binary_xml.Node) -> None:
    """Fault ``wa_jid_without_integrator``: interop JIDs written as plain ``user@interop`` pairs."""
    for k, v in list(node.attrs.items()):
        if isinstance(v, binary_xml.JID) and v.server == binary_xml.INTEROP_SERVER:
            node.attrs[k] = binary_xml.JID(v.user, _LOOKALIKE)
    if isinstance(node.content, list):
        for child in node.content:
            _strip_integrator(child)


def jid_pair_without_integrator(node: binary_xml.Node, dictionary: binary_xml.Dictionary) -> bytes:
    """The node's bytes with every interop JID as a JID_PAIR ``user@interop`` (fault, tests)."""
    _strip_integrator(node)
    raw = _LOOKALIKE.encode()
    return binary_xml.encode(node, dictionary=dictionary).replace(
        bytes([len(raw)]) + raw, bytes([len(raw)]) + binary_xml.INTEROP_SERVER.encode())


def chain_check_without_leaf_pin(root_public: bytes) -> Callable[[bytes, bytes], object]:
    """Fault ``no_gatekeeper_key_check`` on wa: the chain's signatures are verified under the
    root, but its leaf is never compared with the static key the server used in the handshake
    (so any key travels with a stolen valid chain)."""
    def check(chain: bytes, server_static: bytes) -> object:
        try:
            leaf = CertChain.NoiseCertificate.Details.FromString(CertChain.FromString(chain).leaf.details)
        except DecodeError as exc:
            raise CertificateError(f"certificate chain does not parse: {exc}") from None
        return verify_cert_chain(chain, server_static=leaf.key, root_public=root_public)
    return check


class WAClientWire:
    name = "wa"

    def __init__(self, authkey: bytes, hello: Callable[[], ClientHello], login: str,
                 root_public: bytes, expected_server_static: bytes | None, faults: Faults,
                 *, max_frame: int = waframe.MAX_FRAME,
                 ephemeral_private: bytes | None = None) -> None:
        self._faults = faults
        self._expected = expected_server_static
        h = hello()
        integrator, _, rest = login.partition("-")
        user = rest.partition("@")[0]
        token = b"" if faults.on("wa_payload_without_token") else h.jwt.encode()
        try:
            version = tuple(int(x) for x in h.protocol_version.split("."))
        except ValueError:
            version = ()
        payload = wanoise.interop_payload(
            token=token, account_id=int(integrator) if integrator.isdigit() else None,
            username=int(user) if user.isdigit() else None, device=0, app_version=version)
        header = b"WA\x05\x02" if faults.on("wa_wrong_header") else None
        ephemeral = KeyPair.from_private(ephemeral_private) if ephemeral_private else None
        cert_check = (chain_check_without_leaf_pin(root_public)
                      if faults.on("no_gatekeeper_key_check") else None)
        self._client = wanoise.WAClient(static=KeyPair.from_private(authkey), payload=payload,
                                        root_public=root_public, header=header, max_frame=max_frame,
                                        ephemeral=ephemeral, cert_check=cert_check)

    def start(self) -> list[bytes]:
        self._client.start()
        return [self._client.data_to_send()]

    def handshake(self, data: bytes) -> list[bytes] | None:
        try:
            events = self._client.receive_data(data)
        except binary_xml.WAError as exc:
            raise ChannelError(f"wa handshake: {type(exc).__name__}: {exc}") from None
        done = next((e for e in events if isinstance(e, wanoise.HandshakeComplete)), None)
        if done is None:
            return None
        if self._expected is not None and done.server_static != self._expected:
            raise ChannelError("gatekeeper static key differs from the published one")
        return [self._client.data_to_send()]

    def receive(self, data: bytes) -> list[pb.Stanza]:
        try:
            frames = self._client.receive_data(data)
            return [from_node(binary_xml.decode(waframe.unpack_payload(f.data)))
                    for f in frames if isinstance(f, wanoise.TransportFrame)]
        except (binary_xml.WAError, StanzaMapError) as exc:
            raise ChannelError(f"wa: {type(exc).__name__}: {exc}") from None

    def encode(self, stanza: pb.Stanza) -> list[bytes]:
        node = to_node(stanza)
        dictionary = (_NEWER_DICTIONARY if self._faults.on("wa_token_outside_dictionary")
                      else binary_xml.DEFAULT_DICTIONARY)
        if self._faults.on("wa_jid_without_integrator"):
            data = jid_pair_without_integrator(node, dictionary)
        else:
            data = binary_xml.encode(node, dictionary=dictionary)
        if self._faults.on("wa_compressed_flag_lie"):
            payload = bytes([waframe.FLAG_COMPRESSED]) + data  # flag says deflated, body is not
        else:
            payload = waframe.pack_payload(data, compress=len(data) > COMPRESS_OVER)
        self._client.send(payload)
        out = self._client.data_to_send()
        if self._faults.on("wa_frame_length_of_plaintext"):
            # The length written is the plaintext's, forgetting the 16-byte GCM tag.
            n = int.from_bytes(out[:3], "big") - wanoise.TAG_LEN
            out = n.to_bytes(3, "big") + out[3:]
        return [out]


def make_client_wire(wire: str, *, authkey: bytes, hello: Callable[[], ClientHello], login: str,
                     root_public: bytes | None, expected_server_static: bytes | None,
                     faults: Faults, ephemeral_private: bytes | None = None) -> ClientWire:
    """The client side of ``wire``; ``ephemeral_private`` pins the handshake ephemeral (only
    the ``noise_ephemeral_reused`` fault does: a fresh one per handshake is CHN-002)."""
    if wire == "wa":
        if root_public is None:
            raise ChannelError("wa binding without the gatekeeper's root key (harness wa_root_key)")
        return WAClientWire(authkey, hello, login, root_public, expected_server_static, faults,
                            ephemeral_private=ephemeral_private)
    if wire == "open":
        return OpenClientWire(authkey, hello, expected_server_static, faults,
                              ephemeral_private=ephemeral_private)
    raise ChannelError(f"unknown wire binding {wire!r}; one of {WIRES}")
