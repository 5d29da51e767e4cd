"""Injectable randomness.

The core never calls ``os.urandom`` behind the caller's back: every function that needs
random bytes takes an ``rng`` (a callable ``n -> bytes``). Production passes
:func:`system_rng`; vector generation passes a :class:`DeterministicRng` so that the
published files are byte-identical on every run.
"""
from __future__ import annotations

import hashlib
import os
from typing import Callable

__all__ = ["Rng", "system_rng", "DeterministicRng"]

Rng = Callable[[int], bytes]


def system_rng(n: int) -> bytes:
    return os.urandom(n)


class DeterministicRng:
    """SHA-256 in counter mode over a seed. For tests and vectors only, never for keys in use."""

    def __init__(self, seed: bytes | str) -> None:
        self._seed = seed.encode() if isinstance(seed, str) else bytes(seed)
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        return bytes(out[:n])
