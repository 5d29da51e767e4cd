"""WA connection framing, sans-IO: the 4-byte header, 3-byte lengths, the payload flag byte.

Layouts observed in Baileys 6.17.16 ``lib/Utils/noise-handler.js`` (``encodeFrame`` /
``decodeFrame``) and ``lib/WABinary/decode.js`` (``decompressingIfRequired``): the client sends
``b"WA" + bytes([6, dict_version])`` once, before its first frame; every frame is a 3-byte
big-endian length and that many bytes. After the handshake each decrypted frame starts with a flag
byte; flag value 2 (bit 1) means the rest is zlib-deflated.
"""

from __future__ import annotations

import zlib

from reference_impl.wa.binary_xml import WAError

MAX_FRAME = (1 << 24) - 1
FLAG_COMPRESSED = 0x02
DEFAULT_MAX_INFLATED = 1 << 24


class WAFrameError(WAError):
    """Bad connection header, frame length or payload flag/compression."""


class BadHeader(WAFrameError):
    """The connection does not start with ``W A 6 <dict version>``."""


class FrameTooLarge(WAFrameError):
    """A frame length over the limit."""


class BadPayload(WAFrameError):
    """Unknown flag bits, corrupt zlib data, or inflation over the limit (a bomb)."""


def connection_header(dict_version: int = 2) -> bytes:
    return b"WA" + bytes([6, dict_version])


def encode_frame(data: bytes, *, max_frame: int = MAX_FRAME) -> bytes:
    if len(data) > max_frame:
        raise FrameTooLarge(f"frame of {len(data)} bytes over the limit {max_frame}")
    return len(data).to_bytes(3, "big") + data


class FrameDecoder:
    """Incremental decoder: ``feed(bytes) -> list[frame]``; never buffers more than one frame.

    ``expect_header``: the server side first reads and checks the 4-byte connection header
    (``header`` is then the bytes received, for the Noise prologue).
    """

    def __init__(self, *, expect_header: bool = False, dict_version: int | None = None,
                 max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._need_header = expect_header
        self._dict_version = dict_version
        self.max_frame = max_frame
        self.header: bytes | None = None

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        if self._need_header:
            if len(self._buf) < 4:
                if not b"WA\x06".startswith(bytes(self._buf[:3])):
                    raise BadHeader(f"connection starts with {bytes(self._buf)!r}")
                return frames
            head = bytes(self._buf[:4])
            if head[:3] != b"WA\x06" or (self._dict_version is not None
                                          and head[3] != self._dict_version):
                raise BadHeader(f"connection header {head.hex()} is not 'WA' 6 <dict version>")
            self.header = head
            del self._buf[:4]
            self._need_header = False
        while len(self._buf) >= 3:
            n = int.from_bytes(self._buf[:3], "big")
            if n > self.max_frame:
                raise FrameTooLarge(f"frame length {n} over the limit {self.max_frame}")
            if len(self._buf) < 3 + n:
                break
            frames.append(bytes(self._buf[3:3 + n]))
            del self._buf[:3 + n]
        return frames

    @property
    def pending(self) -> int:
        """Bytes buffered towards an incomplete frame (0 at a clean frame boundary)."""
        return len(self._buf)


def pack_payload(node_bytes: bytes, *, compress: bool = False) -> bytes:
    """Flag byte + (optionally zlib-deflated) binary-XML node."""
    if compress:
        return bytes([FLAG_COMPRESSED]) + zlib.compress(node_bytes)
    return b"\x00" + node_bytes


def unpack_payload(payload: bytes, *, max_inflated: int = DEFAULT_MAX_INFLATED) -> bytes:
    """Inverse of :func:`pack_payload`; inflation stops at ``max_inflated`` bytes."""
    if not payload:
        raise BadPayload("empty payload (no flag byte)")
    flag, body = payload[0], payload[1:]
    if flag & ~FLAG_COMPRESSED:
        raise BadPayload(f"unknown flag bits in {flag:#04x}")
    if not flag & FLAG_COMPRESSED:
        return body
    d = zlib.decompressobj()
    try:
        out = d.decompress(body, max_inflated + 1)
    except zlib.error as exc:
        raise BadPayload(f"flag says compressed but zlib fails: {exc}") from None
    if len(out) > max_inflated or d.unconsumed_tail:
        raise BadPayload(f"payload inflates to more than {max_inflated} bytes")
    if not d.eof:
        raise BadPayload("truncated zlib stream")
    if d.unused_data:
        raise BadPayload("bytes after the zlib stream")
    return out
