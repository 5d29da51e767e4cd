"""Media encryption as regular WhatsApp does it, assumed for interop media.

Source: the project research note ``meta-interop-facts.md`` §3 "Media" (scheme reverse-engineered
in whatsmeow ``download.go``/``upload.go``/``util/cbcutil``) and §8.6 item 21. The public
interop spec does not state the media crypto, so this is the regular-WA profile [C]:

1. ``mediaKey`` = 32 random bytes.
2. ``HKDF-SHA256(IKM=mediaKey, salt=none, info=<type label>, L=112)`` split into
   ``iv[0:16]``, ``cipherKey[16:48]``, ``macKey[48:80]``, ``refKey[80:112]``.
3. ``ciphertext = AES-256-CBC/PKCS#7(cipherKey, iv, plaintext)``.
4. ``mac = HMAC-SHA256(macKey, iv || ciphertext)[:10]``; the uploaded blob is
   ``ciphertext || mac``.
5. ``fileSha256 = SHA256(plaintext)``, ``fileEncSha256 = SHA256(blob)``.

The receiver checks fileEncSha256, then the MAC, then decrypts, then fileSha256, so
that a wrong download is reported before any key material touches it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from reference_impl.signal.crypto import (
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    constant_time_eq,
    hkdf_sha256,
    hmac_sha256,
    sha256,
)
from reference_impl.signal.errors import InvalidMediaError, InvalidMessageError
from reference_impl.signal.rng import Rng, system_rng

__all__ = [
    "MEDIA_KEY_LENGTH",
    "MAC_LENGTH",
    "EXPANDED_LENGTH",
    "MIN_BLOB_LENGTH",
    "MediaType",
    "MediaKeys",
    "EncryptedMedia",
    "derive_media_keys",
    "encrypt_media",
    "decrypt_media",
]

MEDIA_KEY_LENGTH = 32
MAC_LENGTH = 10
EXPANDED_LENGTH = 112
_BLOCK = 16
# PKCS#7 always adds at least one byte, so the shortest ciphertext is one block.
MIN_BLOB_LENGTH = _BLOCK + MAC_LENGTH


class MediaType(enum.Enum):
    """Attachment kinds; each selects an HKDF info label (see :attr:`info`)."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"

    @property
    def info(self) -> bytes:
        """The HKDF info label for this type."""
        return _INFO[self]


# meta-interop-facts.md §3 "Media", info strings: "WhatsApp Image Keys" (image, also
# sticker). Stickers therefore share the image label; a separate "WhatsApp Sticker Pack
# Keys" label exists but is for sticker *packs*, not single stickers.
_INFO: dict[MediaType, bytes] = {
    MediaType.IMAGE: b"WhatsApp Image Keys",
    MediaType.VIDEO: b"WhatsApp Video Keys",
    MediaType.AUDIO: b"WhatsApp Audio Keys",
    MediaType.DOCUMENT: b"WhatsApp Document Keys",
    MediaType.STICKER: b"WhatsApp Image Keys",
}


@dataclass(frozen=True, slots=True)
class MediaKeys:
    """The four keys expanded from one mediaKey."""

    iv: bytes
    cipher_key: bytes
    mac_key: bytes
    ref_key: bytes


@dataclass(frozen=True, slots=True)
class EncryptedMedia:
    """What the sender uploads (``blob``) and what the message carries (the rest)."""

    blob: bytes
    media_key: bytes
    file_sha256: bytes
    file_enc_sha256: bytes
    file_length: int


def _media_type(media_type: MediaType | str) -> MediaType:
    return media_type if isinstance(media_type, MediaType) else MediaType(media_type)


def derive_media_keys(media_key: bytes, media_type: MediaType | str) -> MediaKeys:
    """HKDF-SHA256(mediaKey, zero salt, type label, 112) split as iv|cipher|mac|ref."""
    if not isinstance(media_key, (bytes, bytearray)) or len(media_key) != MEDIA_KEY_LENGTH:
        raise InvalidMediaError(
            f"media key must be {MEDIA_KEY_LENGTH} bytes", check="media_key"
        )
    okm = hkdf_sha256(bytes(media_key), _media_type(media_type).info, EXPANDED_LENGTH)
    return MediaKeys(iv=okm[0:16], cipher_key=okm[16:48], mac_key=okm[48:80], ref_key=okm[80:112])


def _digest_eq(actual: bytes, expected: object) -> bool:
    """Constant-time compare; a missing or non-bytes expected value never matches."""
    if not isinstance(expected, (bytes, bytearray, memoryview)):
        return False
    return constant_time_eq(actual, bytes(expected))


def _mac(keys: MediaKeys, ciphertext: bytes) -> bytes:
    return hmac_sha256(keys.mac_key, keys.iv + ciphertext)[:MAC_LENGTH]


def encrypt_media(
    plaintext: bytes,
    media_type: MediaType | str,
    media_key: bytes | None = None,
    rng: Rng = system_rng,
) -> EncryptedMedia:
    """Encrypt an attachment; a fresh mediaKey is drawn from ``rng`` unless given."""
    if media_key is None:
        media_key = rng(MEDIA_KEY_LENGTH)
    keys = derive_media_keys(media_key, media_type)
    plaintext = bytes(plaintext)
    ciphertext = aes_cbc_encrypt(keys.cipher_key, keys.iv, plaintext)
    blob = ciphertext + _mac(keys, ciphertext)
    return EncryptedMedia(
        blob=blob,
        media_key=bytes(media_key),
        file_sha256=sha256(plaintext),
        file_enc_sha256=sha256(blob),
        file_length=len(plaintext),
    )


def decrypt_media(
    blob: bytes,
    media_key: bytes,
    media_type: MediaType | str,
    file_sha256: bytes,
    file_enc_sha256: bytes,
) -> bytes:
    """Verify and decrypt a downloaded blob; every failure is an :class:`InvalidMediaError`.

    Order: ``length`` (structure: at least one cipher block plus the 10-byte MAC, and
    block-aligned; whatsmeow likewise rejects a too-short download with ErrTooShortFile
    before hashing) → ``file_enc_sha256`` → ``mac`` (constant time) → ``decrypt``
    (PKCS#7) → ``file_sha256``. The hashes must match exactly; unlike whatsmeow, a
    missing or wrong-length expected hash is a mismatch, not a skipped check.
    """
    blob = bytes(blob)
    if len(blob) < MIN_BLOB_LENGTH:
        raise InvalidMediaError(
            f"media blob is {len(blob)} bytes; at least {MIN_BLOB_LENGTH} "
            f"(one AES block + {MAC_LENGTH}-byte MAC) required",
            check="length",
        )
    ciphertext, mac = blob[:-MAC_LENGTH], blob[-MAC_LENGTH:]
    if len(ciphertext) % _BLOCK:
        raise InvalidMediaError(
            f"media ciphertext is {len(ciphertext)} bytes, not a multiple of {_BLOCK}",
            check="length",
        )
    if not _digest_eq(sha256(blob), file_enc_sha256):
        raise InvalidMediaError("SHA-256 of the blob does not match fileEncSha256",
                                check="file_enc_sha256")
    keys = derive_media_keys(media_key, media_type)
    if not constant_time_eq(_mac(keys, ciphertext), mac):
        raise InvalidMediaError("media MAC does not match", check="mac")
    try:
        plaintext = aes_cbc_decrypt(keys.cipher_key, keys.iv, ciphertext)
    except InvalidMessageError as exc:
        raise InvalidMediaError(f"media decryption failed: {exc}", check="decrypt") from exc
    if not _digest_eq(sha256(plaintext), file_sha256):
        raise InvalidMediaError("SHA-256 of the plaintext does not match fileSha256",
                                check="file_sha256")
    return plaintext
