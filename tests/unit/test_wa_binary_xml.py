"""The WA binary-XML codec and framing: known answers, round trips, typed errors, limits."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.wa import binary_xml as bx
from reference_impl.wa import frame, tokens
from reference_impl.wa.binary_xml import JID, Dictionary, Limits, Node, decode, encode

FW = Dictionary(tokens.FRAMEWORK_EXAMPLE_SINGLE, (), name="framework-example")
#: The only bytes of the S2 §2.1 example that are public.
FW_PREFIX = bytes([248, 12, 19, 17, 250, 255, 134, 20, 21, 85, 81, 0, 31, 3])


def framework_example() -> Node:
    return Node("message", {
        "to": JID("14155551001", "s.whatsapp.net"), "from": JID("19175550123", "s.whatsapp.net"),
        "id": "123456", "type": "text", "notify": "joe"}, [Node("body", {}, b"Hello")])


def test_framework_example_prefix_and_round_trip_byte_for_byte() -> None:
    data = encode(framework_example(), dictionary=FW)
    assert data.startswith(FW_PREFIX)
    assert decode(data, dictionary=FW) == framework_example()
    assert encode(decode(data, dictionary=FW), dictionary=FW) == data


def test_known_answer_with_baileys_dictionary() -> None:
    # message=11, to=14, s.whatsapp.net=3, ping iq: verified by hand against constants.js
    ping = Node("iq", {"xmlns": "urn:xmpp:ping", "type": "get", "id": "0123"})
    assert encode(ping) == bytes([248, 7, 30, 25, 67, 4, 49, 8, 255, 2, 0x01, 0x23])
    assert decode(encode(ping)) == ping


def test_interop_jid_layout() -> None:
    data = encode(Node("to", {"jid": JID("alice", "interop", 1, 7)}))
    # 245, user (raw "alice"), device u16, integrator u16, server (raw "interop")
    assert data[4:] == (bytes([245, 252, 5]) + b"alice" + bytes([0, 1, 0, 7, 252, 7])
                        + b"interop")
    assert decode(data).attrs["jid"] == JID("alice", "interop", 1, 7)


def test_ad_jid_and_jid_pair_without_user() -> None:
    n = Node("x", {"a": JID("123", "s.whatsapp.net", 2), "b": JID("123", "lid", 0),
                   "c": JID("", "g.us")})
    assert decode(encode(n)) == n


@pytest.mark.parametrize("bad", [
    JID("alice", "interop", 1, None), JID("alice", "interop", None, 7),
    JID("a", "s.whatsapp.net", None, 7), JID("a", "g.us", 3), JID("a", ""),
    JID("alice", "interop", 1, 70000)])
def test_unencodable_jids(bad: JID) -> None:
    with pytest.raises(bx.NotEncodable):
        encode(Node("x", {"to": bad}))


def test_packing_nibble_hex_and_lengths() -> None:
    for s in ["", "0", "12", "1-2.3", "ABCDEF0", "F" * 127]:
        assert decode(encode(Node("x", {"v": s}))).attrs["v"] == s
    for n in [0, 255, 256, (1 << 20) - 1, 1 << 20]:
        assert decode(encode(Node("x", {}, b"\x01" * n))).content == b"\x01" * n
    kids = [Node("k") for _ in range(300)]
    assert len(decode(encode(Node("x", {}, kids))).content) == 300  # LIST_16


@pytest.mark.parametrize("data, error", [
    (b"", bx.TruncatedInput),
    (bytes([248, 2, 30]), bx.TruncatedInput),
    (bytes([248, 1, 30, 0]), bx.TrailingBytes),
    (bytes([0]), bx.InvalidNode),
    (bytes([248, 1, 240]), bx.InvalidTag),               # unassigned tag byte
    (bytes([30]), bx.InvalidTag),                        # root is not a list
    (bytes([248, 3, 30, 8, 255, 0x81, 0x1E]), bx.InvalidPacked),   # pad nibble is not 0xF
    (bytes([248, 3, 30, 8, 255, 0x01, 0xC1]), bx.InvalidPacked),   # nibble 12
    (bytes([248, 3, 30, 8, 255, 0x80]), bx.InvalidPacked),         # odd flag, no bytes
    (bytes([248, 3, 30, 8, 250, 0, 0]), bx.InvalidTag),            # JID_PAIR server is LIST_EMPTY
    (bytes([248, 3, 30, 8, 247, 9, 0, 252, 1, 0x31]), bx.InvalidJID),  # AD_JID domain 9
    (bytes([248, 3, 30, 8, 245, 252, 1, 0x61, 0, 1, 0, 2, 3]), bx.InvalidJID),  # server not interop
    (bytes([248, 5, 30, 8, 1 + 0, 8, 1]), bx.InvalidNode),         # duplicate key "id"
    (bytes([248, 1, 252, 2, 0xC3, 0x28]), bx.InvalidUtf8),
    (bytes([248, 2, 30, 253, 0x10, 0, 0]), bx.InvalidTag),         # BINARY_20 high nibble
])
def test_malformed_input_raises_typed_error(data: bytes, error: type) -> None:
    with pytest.raises(error):
        decode(data)


def test_token_outside_the_dictionary() -> None:
    with pytest.raises(bx.InvalidTag):
        decode(bytes([248, 1, 30]), dictionary=FW)       # single-byte token FW does not have
    with pytest.raises(bx.InvalidTag):
        decode(bytes([248, 1, 236, 0]), dictionary=FW)   # FW has no double-byte dictionaries


def test_limits_are_enforced() -> None:
    deep = Node("x")
    for _ in range(10):
        deep = Node("x", {}, [deep])
    data = encode(deep)
    with pytest.raises(bx.LimitExceeded):
        decode(data, limits=Limits(max_depth=5))
    with pytest.raises(bx.NotEncodable):
        encode(deep, limits=Limits(max_depth=5))
    with pytest.raises(bx.LimitExceeded):
        decode(encode(Node("x", {}, [Node("k")] * 20)), limits=Limits(max_list_len=10))
    with pytest.raises(bx.LimitExceeded):
        decode(encode(Node("x", {str(i): "v" for i in range(20)})), limits=Limits(max_attrs=10))
    with pytest.raises(bx.LimitExceeded):
        decode(encode(Node("x", {}, b"a" * 100)), limits=Limits(max_value_len=50))
    with pytest.raises(bx.LimitExceeded):
        decode(encode(Node("x", {}, b"a" * 100)), limits=Limits(max_total=50))


def test_all_errors_share_one_root() -> None:
    for cls in (bx.TruncatedInput, bx.InvalidTag, bx.NotEncodable, bx.LimitExceeded):
        assert issubclass(cls, bx.WABinaryError) and issubclass(cls, bx.WAError)
    assert issubclass(frame.BadPayload, bx.WAError)


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
_ATTR = st.one_of(_TEXT, st.sampled_from(["message", "type", "0123", "ABCD", "1.2-3"]),
                  st.builds(JID, st.from_regex(r"[0-9]{1,15}", fullmatch=True),
                            st.sampled_from(["s.whatsapp.net", "lid"]),
                            st.integers(0, 255)),
                  st.builds(JID, st.text(min_size=1, max_size=8), st.just("interop"),
                            st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)))
_TAG = st.one_of(st.sampled_from(["message", "receipt", "iq", "enc", "ack"]),
                 _TEXT.filter(bool))


def _nodes(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(Node, _TAG, st.dictionaries(_TAG, _ATTR, max_size=4),
                     st.one_of(st.none(), st.binary(max_size=40), children))


NODES = st.recursive(_nodes(st.none()), lambda kids: _nodes(st.lists(kids, max_size=4)),
                     max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(NODES)
def test_round_trip_random_trees(node: Node) -> None:
    data = encode(node)
    assert decode(data) == node
    assert encode(decode(data)) == data


_TIGHT = Limits(max_depth=3, max_list_len=5, max_attrs=2, max_value_len=10, max_total=400)


@settings(max_examples=300, deadline=None)
@given(NODES, st.data(), st.sampled_from([bx.DEFAULT_DICTIONARY, FW]),
       st.sampled_from([bx.DEFAULT_LIMITS, _TIGHT]))
def test_mutated_input_decodes_or_raises_a_typed_error(
        node: Node, data: st.DataObject, dictionary: Dictionary, limits: Limits) -> None:
    """The decoder indexes the input directly for speed: no edit may escape as another exception
    (IndexError, UnicodeDecodeError, ...)."""
    raw = bytearray(encode(node))
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["set", "cut", "insert", "drop"]))
        at = data.draw(st.integers(0, len(raw)))
        if op == "cut":
            del raw[at:]
        elif op == "insert":
            raw.insert(at, data.draw(st.integers(0, 255)))
        elif at < len(raw) and op == "set":
            raw[at] = data.draw(st.integers(0, 255))
        elif at < len(raw):
            del raw[at]
    try:
        assert isinstance(decode(bytes(raw), dictionary=dictionary, limits=limits), Node)
    except bx.WABinaryError:
        pass


# ---------------------------------------------------------------- framing

def test_frame_decoder_incremental_and_header() -> None:
    wire = frame.connection_header(2) + frame.encode_frame(b"abc") + frame.encode_frame(b"")
    wire += frame.encode_frame(b"x" * 70000)
    dec = frame.FrameDecoder(expect_header=True, dict_version=2)
    got = []
    for i in range(len(wire)):
        got += dec.feed(wire[i:i + 1])
    assert got == [b"abc", b"", b"x" * 70000] and dec.header == b"WA\x06\x02" and dec.pending == 0


@pytest.mark.parametrize("head", [b"XA\x06\x02", b"WA\x05\x02", b"WA\x06\x03"])
def test_bad_header(head: bytes) -> None:
    with pytest.raises(frame.BadHeader):
        frame.FrameDecoder(expect_header=True, dict_version=2).feed(head + b"\x00\x00\x00")


def test_frame_length_limit() -> None:
    with pytest.raises(frame.FrameTooLarge):
        frame.FrameDecoder(max_frame=10).feed(b"\x00\x00\x0b")
    with pytest.raises(frame.FrameTooLarge):
        frame.encode_frame(b"x" * 11, max_frame=10)


def test_payload_flag_and_compression() -> None:
    node = encode(framework_example())
    assert frame.unpack_payload(frame.pack_payload(node)) == node
    assert frame.unpack_payload(frame.pack_payload(node, compress=True)) == node
    with pytest.raises(frame.BadPayload):
        frame.unpack_payload(b"\x02" + node)              # flag lies: not zlib
    with pytest.raises(frame.BadPayload):
        frame.unpack_payload(b"\x04" + node)              # unknown flag bit
    with pytest.raises(frame.BadPayload):
        frame.unpack_payload(b"")
    bomb = b"\x02" + zlib.compress(b"\x00" * (1 << 22))
    with pytest.raises(frame.BadPayload):
        frame.unpack_payload(bomb, max_inflated=1 << 20)
    with pytest.raises(frame.BadPayload):
        frame.unpack_payload(b"\x02" + zlib.compress(node)[:-3])
