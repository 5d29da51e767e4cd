"""Typed errors of the Signal core.

Every failure the core can report on untrusted input is one of these classes, so callers
(the gatekeeper simulator, the vectors checker, a provider's adapter) can map them to
verdicts without parsing messages. Anything else escaping the core is a bug.
"""
from __future__ import annotations

__all__ = [
    "SignalError",
    "InvalidKeyError",
    "InvalidKeyAgreementError",
    "InvalidSignatureError",
    "InvalidMessageError",
    "InvalidVersionError",
    "InvalidMacError",
    "DuplicateMessageError",
    "TooManySkippedKeysError",
    "NoSessionError",
    "UntrustedIdentityError",
    "InvalidPreKeyError",
    "InvalidPaddingError",
    "InvalidMediaError",
]


class SignalError(Exception):
    """Base class: the input was rejected for a protocol reason."""


class InvalidKeyError(SignalError):
    """A key has the wrong length or type byte (only 0x05 Curve25519 keys exist in v3)."""


class InvalidKeyAgreementError(InvalidKeyError):
    """X25519 produced the all-zero shared secret (a low-order public key)."""


class InvalidSignatureError(SignalError):
    """An XEdDSA signature does not verify."""


class InvalidMessageError(SignalError):
    """A message is malformed: truncated, missing a required field, bad protobuf, bad padding."""


class InvalidVersionError(InvalidMessageError):
    """The version byte is not one this profile accepts (v3 wants exactly 0x33)."""


class InvalidMacError(InvalidMessageError):
    """The message MAC does not match: tampered bytes or a wrong key."""


class DuplicateMessageError(SignalError):
    """The message key was already used: a replay, or a counter from the past."""


class TooManySkippedKeysError(InvalidMessageError):
    """The counter jumps further ahead than the skipped-key limits allow."""


class NoSessionError(SignalError):
    """No session with the peer exists (a SignalMessage arrived before any PreKey message)."""


class UntrustedIdentityError(SignalError):
    """The peer's identity key differs from the one on record; the caller must decide trust."""

    def __init__(self, name: str, identity_key: bytes) -> None:
        super().__init__(f"identity key of {name!r} changed; caller must decide trust")
        self.name = name
        self.identity_key = identity_key


class InvalidPreKeyError(SignalError):
    """A referenced one-time or signed pre-key is unknown (already used, or never issued)."""


class InvalidPaddingError(InvalidMessageError):
    """Plaintext padding is not 1-15 bytes each equal to the count."""


class InvalidMediaError(SignalError):
    """A media blob failed one of the checks: fileEncSha256, MAC, decryption, fileSha256."""

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check
