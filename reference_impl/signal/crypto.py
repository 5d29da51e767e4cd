"""The symmetric primitives Signal v3 uses, as thin wrappers over ``cryptography``.

Kept in one place so that every KDF label and length is visible next to its use and
known-answer tests (RFC 5869, RFC 4231, Wycheproof) exercise exactly this code.
"""
from __future__ import annotations

import hmac as _hmac
import hashlib

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives import hmac as _chmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import InvalidMessageError

__all__ = [
    "hkdf_sha256",
    "hmac_sha256",
    "aes_cbc_encrypt",
    "aes_cbc_decrypt",
    "constant_time_eq",
    "sha256",
]


def hkdf_sha256(ikm: bytes, info: bytes, length: int, salt: bytes | None = None) -> bytes:
    """RFC 5869 HKDF-SHA256. ``salt=None`` means 32 zero bytes, as in libsignal.

    Plain RFC 5869 only: the legacy "HKDFv2" (counter from 0) was for pre-v3 sessions.
    """
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    h = _chmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def constant_time_eq(a: bytes, b: bytes) -> bool:
    return _hmac.compare_digest(a, b)


def aes_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-256-CBC with PKCS#7 padding."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """AES-256-CBC with strict PKCS#7 removal.

    Rejects an empty input or one not a multiple of 16 bytes, as libsignal's aes_cbc does,
    with :class:`InvalidMessageError` rather than a ``ValueError`` from the backend.
    """
    if not ciphertext or len(ciphertext) % 16:
        raise InvalidMessageError(
            f"AES-CBC ciphertext length {len(ciphertext)} is not a positive multiple of 16"
        )
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    data = dec.update(ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(data) + unpadder.finalize()
    except ValueError as exc:
        raise InvalidMessageError("bad PKCS#7 padding after AES-CBC decryption") from exc
