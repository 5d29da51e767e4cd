"""Sans-IO WhatsApp ("wa") wire layer: binary-XML stanzas and WA framing.

No sockets, no clock. Layout:

* :mod:`.binary_xml` — ``Node``/``JID``, ``encode(node)`` / ``decode(bytes)`` with a
  :class:`~.binary_xml.Dictionary` and :class:`~.binary_xml.Limits`; errors subclass
  :class:`~.binary_xml.WABinaryError` (root :class:`~.binary_xml.WAError`).
* :mod:`.frame` — connection header, 3-byte length framing (``FrameDecoder.feed``), the payload
  flag byte and zlib with an inflation limit (``pack_payload`` / ``unpack_payload``).
* :mod:`.tokens` — the dictionaries as data, with source and licence.
* :mod:`.noise` — the WA Noise XX handshake and transport: ``WAClient`` (initiator) and
  ``WAServer`` (responder) take ``receive_data(bytes) -> [event]`` and give ``data_to_send()``;
  events ``ClientAuthenticated`` (server: the client's ``authkey`` and ``ClientPayload``),
  ``HandshakeComplete`` (client: the proven server key), ``TransportFrame`` (decrypted frame).
  ``interop_payload`` builds the ``ClientPayload`` (``product = INTEROP``, ``interopData``).
* :mod:`.certs` — the server certificate chain: ``make_cert_chain`` / ``verify_cert_chain``.
* ``wa_handshake_pb2`` — generated from ``docs/spec/proto/wa_handshake.proto``.

Intended use by a channel binding (next step): the binding owns the socket and one ``WAServer``
(simulator) or ``WAClient`` (provider client) per connection, which does the framing and the
crypto. On receive it passes the bytes to ``receive_data`` and, for each ``TransportFrame``, does
``decode(unpack_payload(event.data))``; on ``ClientAuthenticated`` it checks the ``authkey``
against enlistment and the payload's token, and closes or proceeds; on send it does
``conn.send(pack_payload(encode(node)))`` and writes ``conn.data_to_send()``. Typed errors
(``WAError`` subclasses) end the connection; a check turns them into a FAIL with the bytes. Stanza semantics (message/receipt/iq …)
map onto ``Node`` trees in the binding, not here. Rules and provenance: ``docs/wa-binding.md``.
"""

from reference_impl.wa.binary_xml import (  # noqa: F401
    DEFAULT_DICTIONARY, DEFAULT_LIMITS, JID, Dictionary, Limits, Node, WABinaryError, WAError,
    decode, encode)
