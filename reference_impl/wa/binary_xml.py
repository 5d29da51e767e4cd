"""WhatsApp binary XML ("WABinary") node codec, both directions, sans-IO.

Hand-written because no maintained Python library implements this format; the layouts were
checked against Baileys 6.17.16 ``lib/WABinary/{encode,decode}.js`` and, for the interop JID
(token 245), whatsmeow ``binary/decoder.go`` (S13) — see ``docs/wa-binding.md``.

A node is a list ``[tag, k1, v1, …, kn, vn, content?]`` whose size prefix tells whether content is
present (even size). Strings are written as (in this order of preference, the same as Baileys'
encoder, so equal trees give equal bytes): a single-byte token, a double-byte dictionary token,
NIBBLE_8 packing (digits ``-`` ``.``), HEX_8 packing (``0-9A-F``), raw UTF-8 (BINARY_8/20/32).
JIDs are typed (:class:`JID`) and written as JID_PAIR, AD_JID or INTEROP_JID.

The decoder is strict: malformed input raises a subclass of :class:`WABinaryError`; non-canonical
but unambiguous forms (a token written raw, LIST_16 for a short list) are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from reference_impl.wa import tokens as _tokens

# Tag bytes (Baileys constants.js TAGS; 245 from whatsmeow binary/token).
LIST_EMPTY = 0
DICTIONARY_0, DICTIONARY_1, DICTIONARY_2, DICTIONARY_3 = 236, 237, 238, 239
INTEROP_JID = 245
FB_JID = 246
AD_JID = 247
LIST_8 = 248
LIST_16 = 249
JID_PAIR = 250
HEX_8 = 251
BINARY_8 = 252
BINARY_20 = 253
BINARY_32 = 254
NIBBLE_8 = 255
PACKED_MAX = 127

INTEROP_SERVER = "interop"
#: AD_JID domain-type byte → server (Baileys decode.js readAdJid).
AD_JID_DOMAINS = {0: "s.whatsapp.net", 1: "lid"}
_AD_JID_SERVERS = {v: k for k, v in AD_JID_DOMAINS.items()}


class WAError(Exception):
    """Root of every error raised by ``reference_impl.wa``."""


class WABinaryError(WAError):
    """Malformed binary XML, or a node that cannot be encoded."""


class TruncatedInput(WABinaryError):
    """The input ended inside a node."""


class TrailingBytes(WABinaryError):
    """Bytes follow the root node."""


class InvalidTag(WABinaryError):
    """A tag byte that is not valid where it appears (includes tokens outside the dictionary)."""


class InvalidPacked(WABinaryError):
    """A NIBBLE_8/HEX_8 value with a bad digit, bad padding or bad length."""


class InvalidJID(WABinaryError):
    """A JID whose parts are missing or of the wrong kind."""


class InvalidNode(WABinaryError):
    """A node list with size 0, an empty or non-string tag, a duplicate or non-string key."""


class InvalidUtf8(WABinaryError):
    """A raw string (tag name, key or attribute value) that is not UTF-8."""


class LimitExceeded(WABinaryError):
    """Depth, list length, attribute count, value or total size over its limit."""


class NotEncodable(WABinaryError):
    """A node tree the format cannot represent (bad type, too long, bad JID)."""


@dataclass(frozen=True)
class JID:
    """A WhatsApp address. ``device`` set → AD_JID (or INTEROP_JID with ``integrator``)."""

    user: str
    server: str
    device: int | None = None
    integrator: int | None = None

    def __str__(self) -> str:  # Baileys' text form; interop: our notation, not a wire rule
        if self.server == INTEROP_SERVER:
            return f"{self.integrator}-{self.user}:{self.device}@{self.server}"
        dev = f":{self.device}" if self.device else ""
        return f"{self.user}{dev}@{self.server}"


Value = Union[str, JID]
Content = Union[None, bytes, str, JID, list["Node"]]


@dataclass
class Node:
    """One stanza element. ``content``: None, bytes, str/JID (a string child) or child nodes."""

    tag: str
    attrs: dict[str, Value] = field(default_factory=dict)
    content: Content = None


@dataclass(frozen=True)
class Limits:
    """Named bounds the decoder (and encoder) enforce; defaults fit a 16 MiB frame."""

    max_depth: int = 64
    max_list_len: int = 65535
    max_attrs: int = 256
    max_value_len: int = (1 << 24) - 1
    max_total: int = (1 << 24) - 1


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Dictionary:
    """Token tables. ``single[0]`` is unused; a missing/empty entry is not a token."""

    single: tuple[str, ...]
    double: tuple[tuple[str, ...], ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        index: dict[str, tuple[int | None, int]] = {}
        # Double tokens first, then single, so a string in both gets the 1-byte form (Baileys'
        # TOKEN_MAP lets the double entry win; the two lists share no string today).
        for d, table in enumerate(self.double):
            for i, tok in enumerate(table):
                if tok:
                    index[tok] = (d, i)
        for i, tok in enumerate(self.single):
            if i and tok:
                index[tok] = (None, i)
        object.__setattr__(self, "_index", index)
        # For the decoder: tag byte -> its single-byte token, None where the byte is not one.
        object.__setattr__(self, "_by_tag", tuple(
            self.single[t] or None if 1 <= t < len(self.single) and t < DICTIONARY_0 else None
            for t in range(256)))

    def lookup(self, s: str) -> tuple[int | None, int] | None:
        return self._index.get(s)  # type: ignore[attr-defined]


DEFAULT_DICTIONARY = Dictionary(_tokens.SINGLE_BYTE_TOKENS, _tokens.DOUBLE_BYTE_TOKENS,
                                name=_tokens.DICTIONARY_NAME)


# ---------------------------------------------------------------- encoder

def _is_nibble(s: str) -> bool:
    return len(s) <= PACKED_MAX and all(c.isdigit() and c.isascii() or c in "-." for c in s)


def _is_hex(s: str) -> bool:
    return len(s) <= PACKED_MAX and all(c in "0123456789ABCDEF" for c in s)


_NIBBLE = {**{str(i): i for i in range(10)}, "-": 10, ".": 11}
_HEX = {c: i for i, c in enumerate("0123456789ABCDEF")}


class _Writer:
    def __init__(self, dictionary: Dictionary, limits: Limits) -> None:
        self.out = bytearray()
        self.d = dictionary
        self.limits = limits

    def length(self, n: int) -> None:
        if n > self.limits.max_value_len or n >= 1 << 32:
            raise NotEncodable(f"value of {n} bytes is over the limit")
        if n >= 1 << 20:
            self.out += bytes([BINARY_32]) + n.to_bytes(4, "big")
        elif n >= 256:
            self.out += bytes([BINARY_20]) + n.to_bytes(3, "big")
        else:
            self.out += bytes([BINARY_8, n])

    def list_start(self, n: int) -> None:
        if n > self.limits.max_list_len or n > 0xFFFF:
            raise NotEncodable(f"list of {n} items is over the limit")
        if n == 0:
            self.out.append(LIST_EMPTY)
        elif n < 256:
            self.out += bytes([LIST_8, n])
        else:
            self.out += bytes([LIST_16]) + n.to_bytes(2, "big")

    def packed(self, s: str, tag: int, table: dict[str, int]) -> None:
        self.out += bytes([tag, ((len(s) + 1) // 2) | (0x80 if len(s) % 2 else 0)])
        for i in range(0, len(s) - 1, 2):
            self.out.append(table[s[i]] << 4 | table[s[i + 1]])
        if len(s) % 2:
            self.out.append(table[s[-1]] << 4 | 0x0F)

    def string(self, s: str) -> None:
        tok = self.d.lookup(s)
        if not s:  # Baileys writes "" as token 0, i.e. LIST_EMPTY; a "" child reads back as []
            self.out.append(LIST_EMPTY)
        elif tok is not None:
            d, i = tok
            if d is not None:
                self.out.append(DICTIONARY_0 + d)
            self.out.append(i)
        elif _is_nibble(s):
            self.packed(s, NIBBLE_8, _NIBBLE)
        elif _is_hex(s):
            self.packed(s, HEX_8, _HEX)
        else:
            raw = s.encode("utf-8")
            self.length(len(raw))
            self.out += raw

    def value(self, v: object) -> None:
        if isinstance(v, JID):
            self.jid(v)
        elif isinstance(v, str):
            self.string(v)
        else:
            raise NotEncodable(f"attribute value of type {type(v).__name__}")

    def jid(self, j: JID) -> None:
        if j.server == INTEROP_SERVER:
            if j.device is None or j.integrator is None:
                raise NotEncodable(f"interop JID {j!r} needs device and integrator")
            self._u16(j.device, "device")
            self._u16(j.integrator, "integrator")
            self.out.append(INTEROP_JID)
            self.string(j.user)
            self.out += j.device.to_bytes(2, "big") + j.integrator.to_bytes(2, "big")
            self.string(j.server)
        elif j.integrator is not None:
            raise NotEncodable(f"integrator only exists on @{INTEROP_SERVER} JIDs: {j!r}")
        elif j.device is not None:
            if j.server not in _AD_JID_SERVERS or not 0 <= j.device <= 255:
                raise NotEncodable(f"AD_JID needs server s.whatsapp.net/lid, device<256: {j!r}")
            self.out += bytes([AD_JID, _AD_JID_SERVERS[j.server], j.device])
            self.string(j.user)
        else:
            if not j.server:
                raise NotEncodable("JID without server")
            self.out.append(JID_PAIR)
            if j.user:
                self.string(j.user)
            else:
                self.out.append(LIST_EMPTY)
            self.string(j.server)

    def _u16(self, v: int, what: str) -> None:
        if not 0 <= v <= 0xFFFF:
            raise NotEncodable(f"{what} {v} does not fit 16 bits")

    def node(self, n: Node, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise NotEncodable(f"node depth over {self.limits.max_depth}")
        if not isinstance(n, Node) or not isinstance(n.tag, str) or not n.tag:
            raise NotEncodable(f"not a node with a tag: {n!r}")
        if len(n.attrs) > self.limits.max_attrs:
            raise NotEncodable(f"{len(n.attrs)} attributes is over the limit")
        has_content = n.content is not None
        self.list_start(1 + 2 * len(n.attrs) + (1 if has_content else 0))
        self.string(n.tag)
        for k, v in n.attrs.items():
            if not isinstance(k, str) or not k:
                raise NotEncodable(f"attribute key {k!r}")
            self.string(k)
            self.value(v)
        c = n.content
        if c is None:
            return
        if isinstance(c, (bytes, bytearray, memoryview)):
            self.length(len(c))
            self.out += c
        elif isinstance(c, (str, JID)):
            self.value(c)
        elif isinstance(c, list):
            self.list_start(len(c))
            for child in c:
                self.node(child, depth + 1)
        else:
            raise NotEncodable(f"content of type {type(c).__name__} in <{n.tag}>")


def encode(node: Node, *, dictionary: Dictionary = DEFAULT_DICTIONARY,
           limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Encode one node tree (no flag byte; see ``frame.pack_payload``)."""
    w = _Writer(dictionary, limits)
    w.node(node, 1)
    if len(w.out) > limits.max_total:
        raise NotEncodable(f"encoded node of {len(w.out)} bytes is over the limit")
    return bytes(w.out)


# ---------------------------------------------------------------- decoder
#
# Written for speed (profiled with cProfile: a method call per byte and per string dominated):
# the index is a local passed along, tokens come from a 256-entry table, packed values are
# unpacked with ``bytes.hex`` + ``str.translate``. Every check and error type of the plain
# reading is kept, in the same order.

#: NIBBLE_8 digits from ``bytes.hex()`` output: a-b → "-", "."; c-f (12-15) are not digits.
_NIBBLE_FROM_HEX = str.maketrans({"a": "-", "b": ".", "c": "\0", "d": "\0", "e": "\0", "f": "\0"})
_LISTS = (LIST_EMPTY, LIST_8, LIST_16)
_JIDS = (JID_PAIR, AD_JID, INTEROP_JID)


class _Reader:
    __slots__ = ("b", "end", "d", "limits", "tokens")

    def __init__(self, data: bytes, dictionary: Dictionary, limits: Limits) -> None:
        self.b = data
        self.end = len(data)
        self.d = dictionary
        self.limits = limits
        self.tokens: tuple[str | None, ...] = dictionary._by_tag  # type: ignore[attr-defined]

    def take(self, i: int, n: int) -> bytes:
        if i + n > self.end:
            raise TruncatedInput(f"need {n} bytes at offset {i}, have {self.end - i}")
        return self.b[i:i + n]

    def byte(self, i: int) -> int:
        if i >= self.end:
            raise TruncatedInput(f"input ends at offset {i}")
        return self.b[i]

    def list_size(self, tag: int, i: int) -> tuple[int, int]:
        if tag == LIST_8:
            n = self.byte(i)
            i += 1
        elif tag == LIST_16:
            n = int.from_bytes(self.take(i, 2), "big")
            i += 2
        elif tag == LIST_EMPTY:
            n = 0
        else:
            raise InvalidTag(f"tag {tag} at offset {i - 1} is not a list")
        if n > self.limits.max_list_len:
            raise LimitExceeded(f"list of {n} items over the limit {self.limits.max_list_len}")
        return n, i

    def blob_len(self, tag: int, i: int) -> tuple[int, int]:
        """Length of a BINARY_8/20/32 value whose tag byte was just read; -1 if not one."""
        if tag == BINARY_8:
            n = self.byte(i)
            i += 1
        elif tag == BINARY_20:
            raw = self.take(i, 3)
            i += 3
            if raw[0] & 0xF0:
                raise InvalidTag(f"BINARY_20 length with high bits set at offset {i - 3}")
            n = int.from_bytes(raw, "big")
        elif tag == BINARY_32:
            n = int.from_bytes(self.take(i, 4), "big")
            i += 4
        else:
            return -1, i
        if n > self.limits.max_value_len:
            raise LimitExceeded(f"value of {n} bytes over the limit {self.limits.max_value_len}")
        return n, i

    def packed(self, tag: int, i: int) -> tuple[str, int]:
        start = self.byte(i)
        i += 1
        n = start & 0x7F
        if i + n > self.end:
            raise TruncatedInput(f"input ends at offset {self.end}")
        h = self.b[i:i + n].hex()
        i += n
        if start & 0x80:
            if not h or h[-1] != "f":
                raise InvalidPacked(f"odd-length packed value without 0xF pad at {i - 1}")
            h = h[:-1]
        if tag == HEX_8:
            return h.upper(), i
        s = h.translate(_NIBBLE_FROM_HEX)
        if "\0" in s:
            raise InvalidPacked(f"packed value at offset {i - n} has a bad digit")
        return s, i

    def value(self, tag: int, i: int, allow_jid: bool = True,
              allow_empty: bool = False) -> tuple[Value, int]:
        """The string (or JID) whose tag byte ``tag`` was just read; ``i`` is past the tag."""
        tok = self.tokens[tag]
        if tok is not None:
            return tok, i
        # The branches below are disjoint by tag; the two commonest come first.
        if tag == BINARY_8:
            if i >= self.end:
                raise TruncatedInput(f"input ends at offset {i}")
            n = self.b[i]
            if n > self.limits.max_value_len:
                raise LimitExceeded(
                    f"value of {n} bytes over the limit {self.limits.max_value_len}")
            i += 1
            if i + n > self.end:
                raise TruncatedInput(f"need {n} bytes at offset {i}, have {self.end - i}")
            try:
                return self.b[i:i + n].decode("utf-8"), i + n
            except UnicodeDecodeError as exc:
                raise InvalidUtf8(f"raw string at offset {i} is not UTF-8: {exc}") from None
        if tag == NIBBLE_8 or tag == HEX_8:
            return self.packed(tag, i)
        if 1 <= tag < len(self.d.single) and tag < DICTIONARY_0:
            raise InvalidTag(f"token {tag} is not in dictionary {self.d.name}")
        if DICTIONARY_0 <= tag <= DICTIONARY_3:
            d, idx = tag - DICTIONARY_0, self.byte(i)
            table = self.d.double[d] if d < len(self.d.double) else ()
            if idx >= len(table) or not table[idx]:
                raise InvalidTag(f"double token {d}/{idx} is not in dictionary {self.d.name}")
            return table[idx], i + 1
        n, i = self.blob_len(tag, i)
        if n >= 0:
            raw = self.take(i, n)
            try:
                return raw.decode("utf-8"), i + n
            except UnicodeDecodeError as exc:
                raise InvalidUtf8(f"raw string at offset {i} is not UTF-8: {exc}") from None
        if tag == LIST_EMPTY and allow_empty:
            return "", i
        if allow_jid and tag in _JIDS:
            return self.jid(tag, i)
        raise InvalidTag(f"tag {tag} at offset {i - 1} is not a string here")

    def read(self, i: int, allow_jid: bool = False, allow_empty: bool = False) -> tuple[Value, int]:
        """The string (or JID, if allowed) whose tag byte is at ``i``; a token costs no call."""
        if i >= self.end:
            raise TruncatedInput(f"input ends at offset {i}")
        tag = self.b[i]
        tok = self.tokens[tag]
        if tok is not None:
            return tok, i + 1
        return self.value(tag, i + 1, allow_jid, allow_empty)

    def string(self, i: int) -> tuple[str, int]:
        """A string that may not be a JID or LIST_EMPTY (JID parts)."""
        v, i = self.read(i)
        assert isinstance(v, str)
        return v, i

    def jid(self, tag: int, i: int) -> tuple[JID, int]:
        if tag == JID_PAIR:
            t = self.byte(i)
            user: Value = ""
            if t == LIST_EMPTY:
                i += 1
            else:
                user, i = self.value(t, i + 1, False)
            server, i = self.string(i)
            if not server:
                raise InvalidJID(f"JID_PAIR without server at offset {i}")
            return JID(str(user), server), i
        if tag == AD_JID:
            domain = self.byte(i)
            device = self.byte(i + 1)
            if domain not in AD_JID_DOMAINS:
                raise InvalidJID(f"AD_JID domain type {domain} is unknown")
            user, i = self.string(i + 2)
            return JID(user, AD_JID_DOMAINS[domain], device), i
        # INTEROP_JID: user, device u16, integrator u16, server (whatsmeow readInteropJID)
        user, i = self.string(i)
        device = int.from_bytes(self.take(i, 2), "big")
        integrator = int.from_bytes(self.take(i + 2, 2), "big")
        server, i = self.string(i + 4)
        if server != INTEROP_SERVER:
            raise InvalidJID(f"INTEROP_JID with server {server!r}, expected {INTEROP_SERVER!r}")
        return JID(user, server, device, integrator), i

    def node(self, i: int, depth: int) -> tuple[Node, int]:
        limits = self.limits
        if depth > limits.max_depth:
            raise LimitExceeded(f"node depth over {limits.max_depth}")
        b, end, read = self.b, self.end, self.read
        if i >= end:
            raise TruncatedInput(f"input ends at offset {i}")
        t = b[i]
        if t == LIST_8 and i + 1 < end:  # the common case, inline
            size = b[i + 1]
            i += 2
            if size > limits.max_list_len:
                raise LimitExceeded(f"list of {size} items over the limit {limits.max_list_len}")
        else:
            size, i = self.list_size(t, i + 1)
        if size == 0:
            raise InvalidNode(f"node list of size 0 at offset {i - 1}")
        tag, i = read(i)  # no JID allowed: a str
        if not tag:
            raise InvalidNode("node with an empty tag")
        n_attrs = (size - 1) >> 1
        if n_attrs > limits.max_attrs:
            raise LimitExceeded(f"{n_attrs} attributes over the limit {limits.max_attrs}")
        attrs: dict[str, Value] = {}
        for _ in range(n_attrs):
            key, i = read(i)
            if not key or key in attrs:
                raise InvalidNode(f"empty or duplicate attribute key {key!r} in <{tag}>")
            v, i = read(i, True, True)
            attrs[str(key)] = v
        content: Content = None
        if not size & 1:
            if i >= end:
                raise TruncatedInput(f"input ends at offset {i}")
            t = b[i]
            i += 1
            if t in _LISTS:
                n, i = self.list_size(t, i)
                children = []
                for _ in range(n):
                    child, i = self.node(i, depth + 1)
                    children.append(child)
                content = children
            else:
                n, i = self.blob_len(t, i)
                if n >= 0:
                    content = self.take(i, n)
                    i += n
                else:
                    content, i = self.value(t, i)
        return Node(str(tag), attrs, content), i


def decode(data: bytes, *, dictionary: Dictionary = DEFAULT_DICTIONARY,
           limits: Limits = DEFAULT_LIMITS) -> Node:
    """Decode exactly one node tree (no flag byte); trailing bytes are an error."""
    if len(data) > limits.max_total:
        raise LimitExceeded(f"input of {len(data)} bytes over the limit {limits.max_total}")
    r = _Reader(bytes(data), dictionary, limits)
    node, i = r.node(0, 1)
    if i != r.end:
        raise TrailingBytes(f"{r.end - i} bytes after the root node")
    return node
