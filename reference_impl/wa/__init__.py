"""Sans-IO WhatsApp ("wa") wire layer: binary-XML stanzas and WA framing.

No sockets, no clock. Layout:

* :mod:`.binary_xml` — ``Node``/``JID``, ``encode(node)`` / ``decode(bytes)`` with a
  :class:`~.binary_xml.Dictionary` and :class:`~.binary_xml.Limits`; errors subclass
  :class:`~.binary_xml.WABinaryError` (root :class:`~.binary_xml.WAError`).
* :mod:`.frame` — connection header, 3-byte length framing (``FrameDecoder.feed``), the payload
  flag byte and zlib with an inflation limit (``pack_payload`` / ``unpack_payload``).
* :mod:`.tokens` — the dictionaries as data, with source and licence.

Intended use by a channel binding (next step): the binding owns the socket; on receive it feeds
bytes to ``FrameDecoder``, decrypts each frame with its Noise transport state, then
``decode(unpack_payload(plaintext))``; on send it does
``encode_frame(encrypt(pack_payload(encode(node))))``. Stanza semantics (message/receipt/iq …)
map onto ``Node`` trees in the binding, not here. Rules and provenance: ``docs/wa-binding.md``.
"""

from reference_impl.wa.binary_xml import (  # noqa: F401
    DEFAULT_DICTIONARY, DEFAULT_LIMITS, JID, Dictionary, Limits, Node, WABinaryError, WAError,
    decode, encode)
