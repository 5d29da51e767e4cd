"""WhatsApp-style media encryption (attachments travel outside the Signal session).

See :mod:`reference_impl.media.crypto` for the scheme and its sources.
"""
from __future__ import annotations

from .crypto import (
    MAC_LENGTH,
    MEDIA_KEY_LENGTH,
    EncryptedMedia,
    MediaKeys,
    MediaType,
    decrypt_media,
    derive_media_keys,
    encrypt_media,
)

__all__ = [
    "MAC_LENGTH",
    "MEDIA_KEY_LENGTH",
    "EncryptedMedia",
    "MediaKeys",
    "MediaType",
    "decrypt_media",
    "derive_media_keys",
    "encrypt_media",
]
