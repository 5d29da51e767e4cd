"""One module per vector area. Each exposes ``FILE``, ``TITLE``, ``build()`` (a
:class:`vectors._common.VectorFile`), ``TEST_PROPERTIES``/``GROUP_PROPERTIES`` (JSON Schema
fragments) and ``check(group, test, adapter)`` (an :class:`vectors._check.Outcome`)."""
from __future__ import annotations

from . import (jwt_jwks, media, noise_xx, padding, ratchet, sender_keys, stanza, wa_binary_xml, wa_handshake,
               wire, x3dh, xeddsa)

AREAS = (xeddsa, x3dh, ratchet, wire, sender_keys, media, padding, noise_xx, jwt_jwks, wa_binary_xml,
         wa_handshake, stanza)

__all__ = ["AREAS"]
