from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.signal import xeddsa
from reference_impl.signal.edwards import L
from reference_impl.signal.errors import InvalidSignatureError
from reference_impl.signal.keys import KeyPair, PublicKey
from reference_impl.signal.rng import DeterministicRng

KP = KeyPair.generate(DeterministicRng("xeddsa-unit"))
MSG = b"\x05" + bytes(range(32))


def _with_s(sig: bytes, s: int) -> bytes:
    top = sig[63] & 0x80
    b = bytearray(sig[:32] + s.to_bytes(32, "little"))
    b[63] |= top
    return bytes(b)


def test_sign_is_deterministic_for_fixed_z_and_varies_with_z():
    a = xeddsa.sign(KP.private, MSG, z=bytes(64))
    assert a == xeddsa.sign(KP.private, MSG, z=bytes(64))
    assert a != xeddsa.sign(KP.private, MSG, z=b"\x01" * 64)


def test_s_plus_l_is_accepted_like_libsignal():
    sig = xeddsa.sign(KP.private, MSG, z=bytes(64))
    s = int.from_bytes(sig[32:], "little") & ((1 << 255) - 1)
    assert s + L < 2**253
    xeddsa.verify(KP.public, MSG, _with_s(sig, s + L))


def test_s_at_or_above_2_253_is_rejected():
    sig = xeddsa.sign(KP.private, MSG, z=bytes(64))
    s = int.from_bytes(sig[32:], "little") & ((1 << 255) - 1)
    with pytest.raises(InvalidSignatureError, match="2\\^253"):
        xeddsa.verify(KP.public, MSG, _with_s(sig, s + 2**253))


def test_wrong_sign_bit_is_rejected():
    sig = bytearray(xeddsa.sign(KP.private, MSG, z=bytes(64)))
    sig[63] ^= 0x80
    with pytest.raises(InvalidSignatureError):
        xeddsa.verify(KP.public, MSG, bytes(sig))


@pytest.mark.parametrize("length", [0, 63, 65])
def test_wrong_length_is_rejected(length):
    with pytest.raises(InvalidSignatureError):
        xeddsa.verify(KP.public, MSG, bytes(length))


def test_u_minus_one_is_rejected():
    p = 2**255 - 19
    with pytest.raises(InvalidSignatureError):
        xeddsa.verify(PublicKey((p - 1).to_bytes(32, "little")), MSG, bytes(64))


@settings(max_examples=30, deadline=None)
@given(seed=st.binary(min_size=1, max_size=8), msg=st.binary(max_size=200), z=st.binary(min_size=64, max_size=64))
def test_sign_verify_round_trip(seed, msg, z):
    kp = KeyPair.generate(DeterministicRng(seed))
    sig = xeddsa.sign(kp.private, msg, z=z)
    xeddsa.verify(kp.public, msg, sig)
    with pytest.raises(InvalidSignatureError):
        xeddsa.verify(kp.public, msg + b"x", sig)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=L - 1))
def test_libsodium_and_pure_python_base_multiplication_agree(scalar):
    from reference_impl.signal.edwards import compress, scalarmult_base

    assert xeddsa.base_mult(scalar) == compress(scalarmult_base(scalar))
