"""Edwards25519 arithmetic in pure Python, for XEdDSA signing only.

Written by hand because no maintained library signs with a *given* scalar: pyca/cryptography's
Ed25519 derives the scalar from SHA-512(seed) (RFC 8032), while XEdDSA signs with the
Curve25519 private key itself (research §6). Verification does not use this module; it goes
through ``cryptography`` after the Montgomery→Edwards conversion.

Not constant time. It is a reference for conformance testing, not for protecting real keys.
"""
from __future__ import annotations

__all__ = ["P", "L", "scalarmult_base", "compress", "montgomery_to_edwards_y"]

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, P - 2, P)) % P
_BY = 4 * pow(5, P - 2, P) % P
_I = pow(2, (P - 1) // 4, P)


def _recover_x(y: int, sign: int) -> int:
    xx = (y * y - 1) * pow(_D * y * y + 1, P - 2, P) % P
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P:
        x = x * _I % P
    if x % 2 != sign:
        x = P - x
    return x


_BX = _recover_x(_BY, 0)
# Extended homogeneous coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z.
_B = (_BX, _BY, 1, _BX * _BY % P)
_IDENT = (0, 1, 1, 0)


def _add(p: tuple[int, int, int, int], q: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    # "add-2008-hwcd-3" for a = -1.
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * _D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _build_table() -> list[list[tuple[int, int, int, int]]]:
    # Fixed-base comb: table[i][j] = j * 16^i * B, so a scalar multiplication is 64 additions.
    table = []
    base = _B
    for _ in range(64):
        row = [_IDENT]
        for _ in range(15):
            row.append(_add(row[-1], base))
        table.append(row)
        for _ in range(4):
            base = _add(base, base)
    return table


_TABLE = _build_table()


def scalarmult_base(k: int) -> tuple[int, int, int, int]:
    k %= L
    acc = _IDENT
    for i in range(64):
        nib = (k >> (4 * i)) & 15
        if nib:
            acc = _add(acc, _TABLE[i][nib])
    return acc


def compress(pt: tuple[int, int, int, int]) -> bytes:
    x, y, z, _ = pt
    zi = pow(z, -1, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def montgomery_to_edwards_y(u: int) -> int | None:
    """y = (u - 1) / (u + 1) mod p; ``None`` for u = -1, which has no Edwards image."""
    u %= P
    if (u + 1) % P == 0:
        return None
    return (u - 1) * pow(u + 1, -1, P) % P
