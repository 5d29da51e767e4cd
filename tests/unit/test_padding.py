"""Message-plaintext padding (reference_impl.signal.padding): N in 1..15 bytes of value N."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_impl.signal.errors import InvalidMessageError, InvalidPaddingError
from reference_impl.signal.padding import MAX_PAD, MIN_PAD, pad, pad_with, unpad
from reference_impl.signal.rng import DeterministicRng


@pytest.mark.parametrize("n", range(1, 16))
def test_pad_with_round_trip(n: int) -> None:
    padded = pad_with(b"hello", n)
    assert padded == b"hello" + bytes([n]) * n
    assert unpad(padded) == b"hello"


@pytest.mark.parametrize("n", range(1, 16))
def test_round_trip_empty_plaintext(n: int) -> None:
    assert unpad(pad_with(b"", n)) == b""


def test_plaintext_ending_in_padding_like_bytes_survives() -> None:
    msg = b"abc" + b"\x03\x03\x03"
    assert unpad(pad_with(msg, 1)) == msg


@pytest.mark.parametrize("n", [0, 16, 255, -1])
def test_pad_with_rejects_out_of_range(n: int) -> None:
    with pytest.raises(ValueError):
        pad_with(b"x", n)


def test_pad_uses_injected_rng() -> None:
    # One rng byte b gives N = b % 15 + 1.
    assert pad(b"m", lambda k: bytes([0]) * k) == b"m\x01"
    assert pad(b"m", lambda k: bytes([14]) * k) == b"m" + b"\x0f" * 15
    assert pad(b"m", lambda k: bytes([15]) * k) == b"m\x01"
    assert pad(b"m", lambda k: bytes([255]) * k) == b"m" + b"\x01"  # 255 % 15 == 0


def test_pad_covers_whole_range() -> None:
    rng = DeterministicRng("padding-range")
    seen = {len(pad(b"", rng)) for _ in range(500)}
    assert seen == set(range(MIN_PAD, MAX_PAD + 1))


def test_unpad_rejects_zero() -> None:
    with pytest.raises(InvalidPaddingError, match="is 0"):
        unpad(b"abc\x00")


@pytest.mark.parametrize("n", [16, 17, 0x80, 0xFF])
def test_unpad_rejects_above_15(n: int) -> None:
    with pytest.raises(InvalidPaddingError, match=f"is {n}; must be 1..15"):
        unpad(b"a" * 40 + bytes([n]) * n)


def test_unpad_rejects_pkcs7_full_block() -> None:
    # PKCS#7 would allow 16 x 0x10; this padding does not.
    with pytest.raises(InvalidPaddingError):
        unpad(b"\x10" * 16)


@pytest.mark.parametrize(
    "data",
    [b"abc\x01\x03\x03", b"abc\x03\x02\x03", b"abcdefghij\x05\x05\x00\x05\x05"],
)
def test_unpad_rejects_inconsistent_bytes(data: bytes) -> None:
    with pytest.raises(InvalidPaddingError, match="not all equal"):
        unpad(data)


@pytest.mark.parametrize("data", [b"\x02", b"\x05\x05\x05\x05", b"\x0f" * 14])
def test_unpad_rejects_too_short(data: bytes) -> None:
    with pytest.raises(InvalidPaddingError, match="exceeds"):
        unpad(data)


def test_unpad_rejects_empty() -> None:
    with pytest.raises(InvalidPaddingError, match="empty"):
        unpad(b"")


def test_padding_error_is_a_message_error() -> None:
    # Callers mapping verdicts treat bad padding as a malformed message.
    assert issubclass(InvalidPaddingError, InvalidMessageError)


@given(st.binary(max_size=512), st.integers(min_value=1, max_value=15))
def test_round_trip_property(msg: bytes, n: int) -> None:
    padded = pad_with(msg, n)
    assert len(padded) == len(msg) + n
    assert unpad(padded) == msg


@given(st.binary(max_size=512), st.binary(min_size=1, max_size=1))
def test_round_trip_random_pad_property(msg: bytes, rng_byte: bytes) -> None:
    padded = pad(msg, lambda k: rng_byte * k)
    assert 1 <= len(padded) - len(msg) <= 15
    assert unpad(padded) == msg


@given(st.binary(max_size=64))
def test_unpad_never_raises_anything_else(data: bytes) -> None:
    try:
        out = unpad(data)
    except InvalidPaddingError:
        return
    n = data[-1]
    assert 1 <= n <= 15 and data[-n:] == bytes([n]) * n and out == data[:-n]
