"""Message-plaintext padding as the interop profile uses it.

Regular WhatsApp appends N bytes each equal to N, with N in 1..15, to the serialized
message before it enters the Signal session cipher (meta-interop-facts.md §8.5 item 19:
"pad plaintexts with N∈[1,15] bytes of value N, and MUST tolerate padded input"). The
padding hides short-message lengths at byte granularity; it is *not* PKCS#7 (which the
AES-CBC layer applies separately and which allows N = 16).

``unpad`` is strict so that a conformance run can tell a peer that pads wrongly from one
that pads correctly; each rejection names the rule it broke.
"""
from __future__ import annotations

from .errors import InvalidPaddingError
from .rng import Rng, system_rng

__all__ = ["MIN_PAD", "MAX_PAD", "pad", "pad_with", "unpad"]

MIN_PAD = 1
MAX_PAD = 15


def pad_with(plaintext: bytes, n: int) -> bytes:
    """Append ``n`` bytes of value ``n`` (deterministic; for vectors and tests)."""
    if not isinstance(n, int) or isinstance(n, bool) or not MIN_PAD <= n <= MAX_PAD:
        raise ValueError(f"padding length must be in {MIN_PAD}..{MAX_PAD}, got {n!r}")
    return bytes(plaintext) + bytes([n]) * n


def pad(plaintext: bytes, rng: Rng = system_rng) -> bytes:
    """Append N in 1..15 bytes of value N, N drawn from ``rng``.

    One random byte is reduced mod 15; the slight bias (256 = 17·15 + 1, so N = 1 is one
    256th likelier) is irrelevant for length hiding and keeps the rng draw to one byte,
    which makes deterministic vectors easy to reproduce.
    """
    n = rng(1)[0] % MAX_PAD + MIN_PAD
    return pad_with(plaintext, n)


def unpad(data: bytes) -> bytes:
    """Remove the padding, rejecting anything but N in 1..15 bytes all equal to N."""
    if len(data) == 0:
        raise InvalidPaddingError("padded plaintext is empty: no padding byte present")
    n = data[-1]
    if n == 0:
        raise InvalidPaddingError("padding length byte is 0; must be 1..15")
    if n > MAX_PAD:
        raise InvalidPaddingError(f"padding length byte is {n}; must be 1..15")
    if len(data) < n:
        raise InvalidPaddingError(
            f"padding length {n} exceeds the {len(data)}-byte padded plaintext"
        )
    tail = data[-n:]
    if tail != bytes([n]) * n:
        raise InvalidPaddingError(
            f"padding bytes are not all equal to {n}: {tail.hex()}"
        )
    return bytes(data[:-n])
